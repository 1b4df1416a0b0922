//! Continuous batching: one llama.cpp context decodes many conversations at once.
//!
//! Each conversation is a llama.cpp sequence with its own slot of the KV cache. Every step
//! builds one batch holding the next token of each conversation that is generating and, in the
//! room left, a chunk of the prompt of each that is still reading; one decode serves them all,
//! so concurrent conversations share the cost of reading the weights. Conversations join a
//! running batch as slots free up and leave it when they end.
//!
//! A conversation whose reader is slow does not hold the others up: a piece its [`Sink`] has
//! no room for is kept, and that conversation sits out the steps until the reader takes it,
//! while the rest decode on. [`Scheduler`] is the step logic over one context, run inline by
//! [`Engine::generate`] for a single conversation and on a thread of its own by [`Batcher`]
//! for many, behind a bounded queue that answers [`EngineError::Busy`] when it is full.

use std::num::NonZeroU32;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::DecodeError;
use zeroize::Zeroizing;

use crate::utf8::Utf8Stream;
use crate::{position, sampler, ChatMessage, Engine, EngineError, GenParams, GenStats, StopReason};

/// What a [`Sink`] did with a piece.
pub enum Offer {
    Taken,
    /// No room now: the piece comes back, and is offered again on a later step.
    Full(Zeroizing<String>),
    /// Nobody reads any more: the conversation is cancelled.
    Closed,
}

/// Where one conversation's answer goes. Called on the engine's thread, so it must not block.
pub trait Sink {
    /// Takes the next piece of text (whole UTF-8, never empty).
    fn offer(&mut self, piece: Zeroizing<String>) -> Offer;
    /// Whether the reader is gone, so the conversation can stop before its next piece.
    fn closed(&self) -> bool {
        false
    }
    /// The end: how the conversation went. Called once, after the last piece was taken.
    fn finish(&mut self, result: Result<GenStats, EngineError>);
}

/// A conversation ready to decode: its prompt tokens and how to sample its answer.
pub(crate) struct Job<S> {
    pub(crate) tokens: Vec<LlamaToken>,
    pub(crate) params: GenParams,
    pub(crate) sink: S,
    pub(crate) submitted: Instant,
}

/// One conversation in a slot of the context.
struct Seq<S> {
    sink: S,
    prompt: Vec<LlamaToken>,
    /// Prompt tokens decoded so far.
    fed: usize,
    /// Tokens in this sequence's KV cache, and so the position of the next one.
    pos: usize,
    /// The token sampled last, to decode next.
    next: Option<LlamaToken>,
    /// Where this sequence's logits are in the batch just decoded.
    logits: Option<i32>,
    sampler: LlamaSampler,
    max_tokens: usize,
    text: Utf8Stream,
    /// A piece the sink had no room for.
    held: Option<Zeroizing<String>>,
    /// Why it stops, once it does; it leaves when its last piece is taken.
    stopping: Option<StopReason>,
    generated: usize,
    submitted: Instant,
    prompt_done: Option<Instant>,
    first_token: Option<Instant>,
}

impl<S: Sink> Seq<S> {
    fn stats(&self, stop: StopReason) -> GenStats {
        let now = Instant::now();
        let first = self.first_token.unwrap_or(now);
        let since = |t: Instant| t.duration_since(self.submitted);
        GenStats {
            prompt_tokens: self.prompt.len(),
            generated_tokens: self.generated,
            prompt_eval: self.prompt_done.map_or(Duration::ZERO, since),
            time_to_first_token: since(first),
            generation: now.duration_since(first),
            stop,
        }
    }

    /// Hands the sink the held piece; false when it is still held.
    fn deliver_held(&mut self) -> bool {
        let Some(piece) = self.held.take() else {
            return true;
        };
        self.offer(piece);
        self.held.is_none()
    }

    fn offer(&mut self, piece: Zeroizing<String>) {
        match self.sink.offer(piece) {
            Offer::Taken => {}
            Offer::Full(piece) => self.held = Some(piece),
            Offer::Closed => self.stopping = Some(StopReason::Cancelled),
        }
    }
}

/// What one [`Scheduler::step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// A batch was decoded.
    Decoded,
    /// Every conversation waits for its reader.
    Blocked,
    /// No conversation is left.
    Idle,
}

/// Conversations decoding together in one context, one slot (llama.cpp sequence) each.
pub(crate) struct Scheduler<'m, S> {
    engine: &'m Engine,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    slots: Vec<Option<Seq<S>>>,
    /// Tokens each sequence may hold.
    seq_ctx: usize,
}

impl<'m, S: Sink> Scheduler<'m, S> {
    /// `ctx` must have been created for `slots` sequences of `seq_ctx` tokens each.
    pub(crate) fn new(
        engine: &'m Engine,
        ctx: LlamaContext<'m>,
        slots: usize,
        seq_ctx: usize,
    ) -> Self {
        let n_batch = ctx.n_batch().max(1) as usize;
        Self {
            engine,
            ctx,
            batch: LlamaBatch::new(n_batch, 1),
            slots: (0..slots).map(|_| None).collect(),
            seq_ctx,
        }
    }

    pub(crate) fn has_room(&self) -> bool {
        self.slots.iter().any(Option::is_none)
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// Puts `job` in a free slot; without one it is finished as [`EngineError::Busy`].
    pub(crate) fn admit(&mut self, job: Job<S>) {
        let Some(slot) = self.slots.iter_mut().find(|s| s.is_none()) else {
            let mut sink = job.sink;
            sink.finish(Err(EngineError::Busy));
            return;
        };
        *slot = Some(Seq {
            sink: job.sink,
            fed: 0,
            pos: 0,
            next: None,
            logits: None,
            sampler: sampler(&job.params),
            max_tokens: job.params.max_tokens as usize,
            prompt: job.tokens,
            text: Utf8Stream::default(),
            held: None,
            stopping: None,
            generated: 0,
            submitted: job.submitted,
            prompt_done: None,
            first_token: None,
        });
    }

    /// Decodes one batch for every conversation that can go on, then samples their next
    /// tokens and hands out the pieces.
    pub(crate) fn step(&mut self) -> Progress {
        self.settle();
        if self.is_idle() {
            return Progress::Idle;
        }
        if let Err(e) = self.fill_batch() {
            self.fail_all(&e);
            return Progress::Decoded;
        }
        if self.batch.n_tokens() == 0 {
            return Progress::Blocked;
        }
        if let Err(e) = self.ctx.decode(&mut self.batch) {
            self.fail_all(&EngineError::Decode(copy_decode_error(&e)));
            return Progress::Decoded;
        }
        let decoded = Instant::now();
        let vocab = self.engine.model.vocab();
        let mut piece = Zeroizing::new(Vec::new());
        for seq in self.slots.iter_mut().flatten() {
            if seq.fed == seq.prompt.len() {
                seq.prompt_done.get_or_insert(decoded);
            }
            let Some(idx) = seq.logits.take() else {
                continue;
            };
            let token = seq.sampler.sample(&self.ctx, idx);
            seq.generated += 1;
            seq.first_token.get_or_insert_with(Instant::now);
            if vocab.is_eog(token) {
                seq.stopping = Some(StopReason::EndOfGeneration);
                continue;
            }
            piece.clear();
            vocab.token_to_piece_into(token, &mut piece, false, None);
            let complete = seq.text.push(&piece);
            if !complete.is_empty() {
                seq.offer(complete);
            }
            if seq.stopping.is_some() {
                continue;
            }
            if seq.generated >= seq.max_tokens {
                seq.stopping = Some(StopReason::MaxTokens);
            } else if seq.pos + 1 > self.seq_ctx {
                seq.stopping = Some(StopReason::ContextFull);
            } else {
                seq.next = Some(token);
            }
        }
        self.settle();
        Progress::Decoded
    }

    /// The batch for this step: the next token of each generating conversation whose reader
    /// keeps up, then prompt chunks in the room left.
    fn fill_batch(&mut self) -> Result<(), EngineError> {
        self.batch.clear();
        let room = self.ctx.n_batch().max(1) as usize;
        for (id, seq) in self.slots.iter_mut().enumerate() {
            let Some(seq) = seq else { continue };
            if seq.held.is_some() || seq.stopping.is_some() {
                continue;
            }
            if usize::try_from(self.batch.n_tokens()).unwrap_or(room) >= room {
                break;
            }
            if let Some(token) = seq.next.take() {
                self.batch
                    .add(token, position(seq.pos)?, &[seq_id(id)], true)?;
                seq.logits = Some(self.batch.n_tokens() - 1);
                seq.pos += 1;
            }
        }
        for (id, seq) in self.slots.iter_mut().enumerate() {
            let Some(seq) = seq else { continue };
            let left = room.saturating_sub(usize::try_from(self.batch.n_tokens()).unwrap_or(room));
            if left == 0 {
                break;
            }
            if seq.stopping.is_some() || seq.fed == seq.prompt.len() {
                continue;
            }
            let take = left.min(seq.prompt.len() - seq.fed);
            for i in 0..take {
                let last = seq.fed + i + 1 == seq.prompt.len();
                self.batch.add(
                    seq.prompt[seq.fed + i],
                    position(seq.pos)?,
                    &[seq_id(id)],
                    last,
                )?;
                if last {
                    seq.logits = Some(self.batch.n_tokens() - 1);
                }
                seq.pos += 1;
            }
            seq.fed += take;
        }
        Ok(())
    }

    /// Delivers held pieces, and lets every conversation that has stopped and whose reader
    /// has everything leave, freeing its slot.
    fn settle(&mut self) {
        for id in 0..self.slots.len() {
            let Some(seq) = self.slots[id].as_mut() else {
                continue;
            };
            if seq.stopping.is_none() && seq.sink.closed() {
                seq.stopping = Some(StopReason::Cancelled);
            }
            if !seq.deliver_held() {
                continue;
            }
            let Some(stop) = seq.stopping else { continue };
            if stop != StopReason::Cancelled {
                // A character cut short by the end is reported once, as U+FFFD.
                let rest = seq.text.finish();
                if !rest.is_empty() {
                    seq.offer(rest);
                    if seq.held.is_some() {
                        continue;
                    }
                }
            }
            let stop = seq.stopping.unwrap_or(stop);
            let stats = seq.stats(stop);
            self.leave(id, Ok(stats));
        }
    }

    fn leave(&mut self, id: usize, result: Result<GenStats, EngineError>) {
        if let Some(mut seq) = self.slots[id].take() {
            // A slot is free only once its cache is: the next conversation starts at position 0.
            let _ = self
                .ctx
                .clear_kv_cache_seq(u32::try_from(id).ok(), None, None);
            seq.sink.finish(result);
        }
    }

    /// A failed decode leaves the cache in no known state: every conversation ends with it.
    fn fail_all(&mut self, error: &EngineError) {
        for id in 0..self.slots.len() {
            let again = match error {
                EngineError::Decode(e) => EngineError::Decode(copy_decode_error(e)),
                EngineError::Position(p) => EngineError::Position(*p),
                _ => EngineError::Internal,
            };
            self.leave(id, Err(again));
        }
        self.ctx.clear_kv_cache();
    }
}

fn seq_id(slot: usize) -> i32 {
    i32::try_from(slot).unwrap_or(i32::MAX)
}

fn copy_decode_error(e: &DecodeError) -> DecodeError {
    match e {
        DecodeError::NoKvCacheSlot => DecodeError::NoKvCacheSlot,
        DecodeError::NTokensZero => DecodeError::NTokensZero,
        DecodeError::Unknown(c) => DecodeError::Unknown(*c),
    }
}

/// How the [`Batcher`] shares its context.
#[derive(Clone, Copy, Debug)]
pub struct BatchConfig {
    /// Conversations decoded together; each gets the engine's full context size.
    pub sequences: NonZeroU32,
    /// Conversations that may wait for a free slot; past that, [`Batcher::submit`] answers
    /// [`EngineError::Busy`].
    pub queue: usize,
}

/// A boxed sink, as the batching thread holds them.
pub type BoxSink = Box<dyn Sink + Send>;

impl Sink for BoxSink {
    fn offer(&mut self, piece: Zeroizing<String>) -> Offer {
        (**self).offer(piece)
    }
    fn closed(&self) -> bool {
        (**self).closed()
    }
    fn finish(&mut self, result: Result<GenStats, EngineError>) {
        (**self).finish(result);
    }
}

/// Many conversations on one context, decoded together on a thread of their own.
pub struct Batcher {
    engine: Arc<Engine>,
    queue: SyncSender<Job<BoxSink>>,
}

/// How long the batching thread waits for slow readers before it looks again.
const BLOCKED_WAIT: Duration = Duration::from_millis(1);

impl Batcher {
    /// Creates the shared context (sized for `config.sequences` full conversations) and starts
    /// the thread that decodes on it.
    pub fn start(engine: Arc<Engine>, config: BatchConfig) -> Result<Batcher, EngineError> {
        let (queue, jobs) = mpsc::sync_channel(config.queue);
        let (ready_tx, ready) = mpsc::sync_channel(1);
        let shared = engine.clone();
        std::thread::Builder::new()
            .name("sotto-batch".into())
            .spawn(move || run(&shared, config.sequences, &jobs, &ready_tx))
            .map_err(|_| EngineError::Internal)?;
        ready.recv().map_err(|_| EngineError::Internal)??;
        Ok(Batcher { engine, queue })
    }

    /// Renders and tokenizes the conversation here, then queues it for a slot. The answer
    /// goes to `sink`; an error here means it never reached the queue (and `sink` is dropped
    /// without being called).
    pub fn submit(
        &self,
        messages: &[ChatMessage],
        params: &GenParams,
        sink: BoxSink,
    ) -> Result<(), EngineError> {
        let submitted = Instant::now();
        let tokens = self.engine.prepare(messages, params)?;
        let job = Job {
            tokens,
            params: params.clone(),
            sink,
            submitted,
        };
        self.queue.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => EngineError::Busy,
            TrySendError::Disconnected(_) => EngineError::Internal,
        })
    }
}

/// The batching thread: admits queued conversations while slots are free and steps until
/// every sender is gone and the last conversation has ended.
fn run(
    engine: &Engine,
    sequences: NonZeroU32,
    jobs: &Receiver<Job<BoxSink>>,
    ready: &SyncSender<Result<(), EngineError>>,
) {
    let slots = sequences.get();
    let seq_ctx = engine.context_size;
    let ctx = match engine.new_context(seq_ctx.saturating_mul(slots), slots) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut scheduler = Scheduler::new(engine, ctx, slots as usize, seq_ctx as usize);
    loop {
        while scheduler.has_room() {
            let job = if scheduler.is_idle() {
                match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            } else {
                match jobs.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            };
            scheduler.admit(job);
        }
        if scheduler.step() == Progress::Blocked {
            std::thread::sleep(BLOCKED_WAIT);
        }
    }
}
