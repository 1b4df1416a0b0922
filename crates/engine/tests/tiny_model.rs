//! The engine end to end on a real (tiny, random-weight) GGUF model written by sotto-testkit:
//! llama.cpp loads it, the chat template renders, tokens stream and every stop condition holds.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use sotto_engine::{
    ChatMessage, Engine, EngineConfig, EngineError, GenParams, Role, StopReason, TemplateRenderer,
};
use sotto_testkit::gguf::{TinyQwen2, TINY_CONTEXT_LENGTH, TINY_VOCAB};

/// A seed whose greedy answer to [`conversation`] is at least a few tokens long (with random
/// weights some seeds answer `<|im_end|>` at once, which would leave streaming untested).
const SEED: u64 = 1;

fn model_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

fn model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = model_dir().join("tiny.gguf");
        sotto_testkit::write_tiny_qwen2_gguf(&path, SEED).expect("write model");
        path
    })
    .clone()
}

fn config(context: u32) -> EngineConfig {
    EngineConfig {
        threads: NonZeroU32::new(2).unwrap(),
        context_size: NonZeroU32::new(context).unwrap(),
        ..EngineConfig::default()
    }
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::load(&model_path(), &config(256)).expect("load tiny model"))
}

fn conversation() -> Vec<ChatMessage> {
    vec![
        ChatMessage::new(Role::System, "You answer the question."),
        ChatMessage::new(Role::User, "in the inn, the heron ate"),
    ]
}

/// Runs a generation and returns the streamed pieces and the stats.
fn run(engine: &Engine, params: &GenParams) -> (Vec<String>, sotto_engine::GenStats) {
    let mut pieces = Vec::new();
    let stats = engine
        .generate(&conversation(), params, &mut |p| {
            pieces.push(p.to_owned());
            true
        })
        .expect("generate");
    (pieces, stats)
}

#[test]
fn model_info_matches_the_file() {
    let info = engine().model_info();
    assert_eq!(info.architecture, "qwen2");
    assert_eq!(info.name.as_deref(), Some("sotto-tiny-qwen2"));
    assert_eq!(info.n_ctx_train, TINY_CONTEXT_LENGTH);
    assert_eq!(info.n_vocab, TINY_VOCAB as i32);
    assert_eq!(info.n_layer, 2);
    assert_eq!(info.n_embd, 64);
    assert_eq!(info.context_size, 256);
    assert_eq!(info.renderer, TemplateRenderer::Jinja);
}

#[test]
fn context_size_is_capped_at_training_context() {
    let engine = Engine::load(&model_path(), &config(100_000)).unwrap();
    assert_eq!(engine.model_info().context_size, TINY_CONTEXT_LENGTH);
}

#[test]
fn template_renders_chatml_with_default_system_turn() {
    let prompt = engine()
        .render_prompt(&[ChatMessage::new(Role::User, "Hi")])
        .unwrap();
    assert_eq!(
        prompt.as_str(),
        "<|im_start|>system\nYou are a tiny test model.<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let prompt = engine().render_prompt(&conversation()).unwrap();
    assert!(prompt.starts_with("<|im_start|>system\nYou answer the question.<|im_end|>\n"));
    assert_eq!(prompt.matches("<|im_start|>").count(), 3);
}

#[test]
fn greedy_generation_is_deterministic_and_streams() {
    let params = GenParams::greedy(12);
    let (a, stats_a) = run(engine(), &params);
    let (b, stats_b) = run(engine(), &params);
    assert!(
        stats_a.generated_tokens >= 3,
        "seed {SEED} answers too briefly: {stats_a:?}"
    );
    assert!(!a.is_empty(), "no piece was streamed");
    assert!(a.iter().all(|p| !p.is_empty()));
    assert_eq!(a, b);
    assert_eq!(stats_a.generated_tokens, stats_b.generated_tokens);
    assert_eq!(stats_a.stop, stats_b.stop);
    // 3 turns of ChatML plus the texts: well over 20 tokens, fewer than bytes.
    assert!(stats_a.prompt_tokens > 20, "{stats_a:?}");
    let prompt_bytes = engine().render_prompt(&conversation()).unwrap().len();
    assert!(stats_a.prompt_tokens < prompt_bytes);
    assert!(stats_a.time_to_first_token >= stats_a.prompt_eval);
}

#[test]
fn max_tokens_is_honoured() {
    let (_, stats) = run(engine(), &GenParams::greedy(2));
    assert_eq!(stats.generated_tokens, 2);
    assert_eq!(stats.stop, StopReason::MaxTokens);
}

#[test]
fn callback_returning_false_stops_generation() {
    let mut calls = 0;
    let stats = engine()
        .generate(&conversation(), &GenParams::greedy(12), &mut |_| {
            calls += 1;
            false
        })
        .unwrap();
    assert_eq!(calls, 1);
    assert_eq!(stats.stop, StopReason::Cancelled);
    let (full, _) = run(engine(), &GenParams::greedy(12));
    assert!(full.len() > 1, "the full answer has more than one piece");
}

#[test]
fn seeded_sampling_is_reproducible() {
    let params = GenParams {
        max_tokens: 10,
        temperature: 0.9,
        top_p: 0.95,
        top_k: NonZeroU32::new(40),
        seed: Some(42),
    };
    let (a, _) = run(engine(), &params);
    let (b, _) = run(engine(), &params);
    assert_eq!(a, b);
}

#[test]
fn over_long_conversation_is_refused_with_its_size() {
    let engine = Engine::load(&model_path(), &config(32)).unwrap();
    let long = ChatMessage::new(Role::User, "the heron in the inn ".repeat(10));
    let err = engine
        .generate(&[long], &GenParams::greedy(4), &mut |_| true)
        .expect_err("must not fit");
    match &err {
        EngineError::ContextExceeded {
            prompt_tokens,
            context,
        } => {
            assert_eq!(*context, 32);
            assert!(*prompt_tokens > 32);
            assert!(err.to_string().contains(&prompt_tokens.to_string()));
        }
        other => panic!("wrong error: {other}"),
    }
}

#[test]
fn generation_stops_when_the_context_is_full() {
    // A context just big enough for the prompt plus a few tokens.
    let prompt_tokens = run(engine(), &GenParams::greedy(1)).1.prompt_tokens as u32;
    let engine = Engine::load(&model_path(), &config(prompt_tokens + 2)).unwrap();
    let mut pieces = 0;
    let stats = engine
        .generate(&conversation(), &GenParams::greedy(50), &mut |_| {
            pieces += 1;
            true
        })
        .unwrap();
    assert!(stats.generated_tokens <= 3, "{stats:?}");
    assert!(matches!(
        stats.stop,
        StopReason::ContextFull | StopReason::EndOfGeneration
    ));
}

#[test]
fn parallel_generations_match_sequential_ones() {
    let params = GenParams::greedy(10);
    let (expected, _) = run(engine(), &params);
    let results = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..2 {
            let results = Arc::clone(&results);
            let params = params.clone();
            s.spawn(move || {
                let (pieces, _) = run(engine(), &params);
                results.lock().unwrap().push(pieces);
            });
        }
    });
    let results = results.lock().unwrap();
    assert_eq!(results.len(), 2);
    for r in results.iter() {
        assert_eq!(r, &expected);
    }
}

#[test]
fn progress_is_reported_up_to_completion() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    Engine::load_with_progress(&model_path(), &config(64), move |p| {
        sink.lock().unwrap().push(p)
    })
    .unwrap();
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(seen.last().copied(), Some(1.0));
}

#[test]
fn model_without_chat_template_is_refused() {
    let path = model_dir().join("no-template.gguf");
    let model = TinyQwen2 {
        chat_template: None,
        ..TinyQwen2::new(SEED)
    };
    std::fs::write(&path, model.to_bytes()).unwrap();
    assert!(matches!(
        Engine::load(&path, &config(64)),
        Err(EngineError::NoChatTemplate)
    ));
}

#[test]
fn missing_or_corrupt_model_files_are_errors() {
    let missing = model_dir().join("missing.gguf");
    assert!(matches!(
        Engine::load(&missing, &config(64)),
        Err(EngineError::ModelNotFound(p)) if p == missing
    ));
    let corrupt = model_dir().join("corrupt.gguf");
    let mut bytes = TinyQwen2::new(SEED).to_bytes();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&corrupt, bytes).unwrap();
    assert!(matches!(
        Engine::load(&corrupt, &config(64)),
        Err(EngineError::ModelLoad { .. })
    ));
}

#[test]
fn template_exceptions_reach_the_caller() {
    let path = model_dir().join("strict.gguf");
    let model = TinyQwen2 {
        chat_template: Some(
            "{% for m in messages %}{% if m.role == 'system' %}\
             {{ raise_exception('System role not supported') }}{% endif %}\
             {{ m.content }}{% endfor %}"
                .to_owned(),
        ),
        ..TinyQwen2::new(SEED)
    };
    std::fs::write(&path, model.to_bytes()).unwrap();
    let engine = Engine::load(&path, &config(64)).unwrap();
    match engine.generate(&conversation(), &GenParams::greedy(2), &mut |_| true) {
        Err(EngineError::TemplateRejected(r)) => assert_eq!(r.0, "System role not supported"),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("template should have refused the system turn"),
    }
}

mod batching {
    //! The batcher against the engine's own one-context path: the same answers, a slow
    //! reader that holds up no one else, a bounded queue.

    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    use sotto_engine::{BatchConfig, Batcher, GenStats, Offer, Sink};
    use zeroize::Zeroizing;

    use super::*;

    enum Event {
        /// The sink was offered its first piece.
        Started,
        Done(String, Result<GenStats, EngineError>),
    }

    /// Collects one answer; takes nothing while `open` is false, and reads as gone once
    /// `gone` is set.
    struct TestSink {
        open: Arc<AtomicBool>,
        gone: Arc<AtomicBool>,
        started: bool,
        text: String,
        events: mpsc::Sender<Event>,
    }

    impl Sink for TestSink {
        fn offer(&mut self, piece: Zeroizing<String>) -> Offer {
            if !std::mem::replace(&mut self.started, true) {
                let _ = self.events.send(Event::Started);
            }
            if self.gone.load(Ordering::SeqCst) {
                return Offer::Closed;
            }
            if !self.open.load(Ordering::SeqCst) {
                return Offer::Full(piece);
            }
            self.text.push_str(&piece);
            Offer::Taken
        }

        fn closed(&self) -> bool {
            self.gone.load(Ordering::SeqCst)
        }

        fn finish(&mut self, result: Result<GenStats, EngineError>) {
            let _ = self
                .events
                .send(Event::Done(std::mem::take(&mut self.text), result));
        }
    }

    struct Reader {
        open: Arc<AtomicBool>,
        gone: Arc<AtomicBool>,
        events: mpsc::Receiver<Event>,
    }

    impl Reader {
        fn started(&self) {
            match self.events.recv_timeout(Duration::from_secs(60)) {
                Ok(Event::Started) => {}
                Ok(Event::Done(_, r)) => panic!("ended before its first piece: {:?}", r.err()),
                Err(e) => panic!("no first piece: {e}"),
            }
        }

        fn done(&self) -> (String, GenStats) {
            loop {
                match self.events.recv_timeout(Duration::from_secs(60)) {
                    Ok(Event::Started) => {}
                    Ok(Event::Done(text, r)) => return (text, r.expect("generation")),
                    Err(e) => panic!("no end: {e}"),
                }
            }
        }
    }

    fn sink(open: bool) -> (Box<TestSink>, Reader) {
        let (events, rx) = mpsc::channel();
        let open = Arc::new(AtomicBool::new(open));
        let gone = Arc::new(AtomicBool::new(false));
        let sink = Box::new(TestSink {
            open: open.clone(),
            gone: gone.clone(),
            started: false,
            text: String::new(),
            events,
        });
        let reader = Reader {
            open,
            gone,
            events: rx,
        };
        (sink, reader)
    }

    fn batcher(sequences: u32, queue: usize) -> Batcher {
        let engine = Engine::load(&model_path(), &config(256)).expect("load tiny model");
        let config = BatchConfig {
            sequences: NonZeroU32::new(sequences).unwrap(),
            queue,
        };
        Batcher::start(Arc::new(engine), config).expect("batcher starts")
    }

    fn question(i: usize) -> Vec<ChatMessage> {
        let mut c = conversation();
        c.push(ChatMessage::new(Role::Assistant, "the inn"));
        c.push(ChatMessage::new(Role::User, "heron ".repeat(i + 1)));
        c
    }

    fn alone(c: &[ChatMessage], params: &GenParams) -> (String, GenStats) {
        let mut text = String::new();
        let stats = engine()
            .generate(c, params, &mut |p| {
                text.push_str(p);
                true
            })
            .unwrap();
        (text, stats)
    }

    #[test]
    fn conversations_decoded_together_answer_as_they_do_alone() {
        let params = GenParams::greedy(12);
        let batcher = batcher(4, 8);
        // Six conversations on four slots: two wait, then join a running batch.
        let readers: Vec<Reader> = (0..6)
            .map(|i| {
                let (sink, reader) = sink(true);
                batcher.submit(&question(i), &params, sink).unwrap();
                reader
            })
            .collect();
        for (i, reader) in readers.iter().enumerate() {
            let (text, stats) = reader.done();
            let (want, want_stats) = alone(&question(i), &params);
            assert_eq!(text, want, "conversation {i}");
            assert_eq!(stats.generated_tokens, want_stats.generated_tokens);
            assert_eq!(stats.prompt_tokens, want_stats.prompt_tokens);
            assert_eq!(stats.stop, want_stats.stop);
        }
    }

    #[test]
    fn a_reader_that_takes_nothing_holds_up_no_one_else() {
        let params = GenParams::greedy(12);
        let batcher = batcher(2, 4);
        let (slow, slow_reader) = sink(false);
        batcher.submit(&question(0), &params, slow).unwrap();
        slow_reader.started();
        let (fast, fast_reader) = sink(true);
        batcher.submit(&question(1), &params, fast).unwrap();
        let (text, _) = fast_reader.done();
        assert_eq!(text, alone(&question(1), &params).0);
        // The slow one lost nothing while it waited.
        slow_reader.open.store(true, Ordering::SeqCst);
        let (text, _) = slow_reader.done();
        assert_eq!(text, alone(&question(0), &params).0);
    }

    #[test]
    fn past_the_queue_the_answer_is_busy_and_a_gone_reader_frees_its_slot() {
        let params = GenParams::greedy(12);
        let batcher = batcher(1, 1);
        let (first, first_reader) = sink(false);
        batcher.submit(&question(0), &params, first).unwrap();
        first_reader.started();
        // The one slot is taken and the queue holds one: the third is refused.
        let (second, second_reader) = sink(true);
        batcher.submit(&question(1), &params, second).unwrap();
        let (third, _) = sink(true);
        let err = batcher.submit(&question(2), &params, third).unwrap_err();
        assert!(matches!(err, EngineError::Busy), "{err}");
        assert!(err.to_string().contains("busy"));
        // The first reader leaves: its conversation ends cancelled and the waiting one runs.
        first_reader.gone.store(true, Ordering::SeqCst);
        let (_, stats) = first_reader.done();
        assert_eq!(stats.stop, StopReason::Cancelled);
        let (text, _) = second_reader.done();
        assert_eq!(text, alone(&question(1), &params).0);
    }

    #[test]
    fn every_stop_reason_holds_in_a_batch() {
        let batcher = batcher(2, 2);
        let (sink_a, a) = sink(true);
        batcher
            .submit(&question(0), &GenParams::greedy(2), sink_a)
            .unwrap();
        let (sink_b, b) = sink(true);
        batcher
            .submit(&question(1), &GenParams::greedy(500), sink_b)
            .unwrap();
        let (_, stats) = a.done();
        assert_eq!(
            (stats.generated_tokens, stats.stop),
            (2, StopReason::MaxTokens)
        );
        let (text, stats) = b.done();
        assert!(
            matches!(
                stats.stop,
                StopReason::EndOfGeneration | StopReason::ContextFull
            ),
            "{stats:?}"
        );
        // The cache holds 256 tokens; the last token sampled is never decoded.
        assert!(
            stats.prompt_tokens + stats.generated_tokens <= 257,
            "{stats:?}"
        );
        let (want, want_stats) = alone(&question(1), &GenParams::greedy(500));
        assert_eq!(text, want);
        assert_eq!(stats.stop, want_stats.stop);
        assert_eq!(stats.generated_tokens, want_stats.generated_tokens);
    }
}
