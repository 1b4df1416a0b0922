//! Sotto's embedded inference engine: llama.cpp (through the `llama-cpp-2` crate) running a
//! GGUF chat model inside the enclave.
//!
//! Trust: the model file is trusted (the enclave checks it against its manifest before calling
//! [`Engine::load`]); conversations are the user's plaintext and must never leave this process
//! except as the streamed answer. So:
//! - llama.cpp's own logging is switched off before anything is loaded, and the engine refuses
//!   to start when `LLAMA_BATCH_DEBUG` is set (llama.cpp would log every token's text through a
//!   path that bypasses nothing but our log sink);
//! - this crate logs only counts and timings, never prompt or token text;
//! - conversation text, rendered prompts and streamed text live in zeroizing buffers. Token-id
//!   vectors, minijinja's internal copies and llama.cpp's own buffers (KV cache, logits) are
//!   freed without being wiped; they live in the confidential VM's encrypted memory and are not
//!   reachable from outside it.
//!
//! One [`Engine`] serves many conversations concurrently, two ways: a [`Batcher`] decodes them
//! together on one llama.cpp context (continuous batching, what the enclave runs), and each
//! [`Engine::generate`] call gets a fresh context of its own. Context creation is serialized
//! (the crate documents creating contexts in parallel as unsound).

mod batch;
pub mod bench;
mod template;
mod utf8;

use std::ffi::OsStr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::{send_logs_to_tracing, LogOptions};
use zeroize::Zeroizing;

pub use batch::{BatchConfig, Batcher, BoxSink, Offer, Sink};
use batch::{Job, Progress, Scheduler};
use template::{ChatTemplate, RenderError};

/// Environment variables that make llama.cpp log conversation content (token text, tensor
/// values, cache contents). Any value counts: llama.cpp parses them with `atoi`, and refusing
/// all values is simpler to audit than agreeing with its parser.
pub const FORBIDDEN_ENV_VARS: [&str; 3] = [
    "LLAMA_BATCH_DEBUG",
    "LLAMA_GRAPH_RESULT_DEBUG",
    "LLAMA_KV_CACHE_DEBUG",
];

/// Errors of the engine. None of them carries conversation text.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("refusing to start: environment variable {0} is set, and it makes llama.cpp log conversation text")]
    DebugEnvSet(&'static str),
    #[error("llama.cpp backend could not be initialised: {0}")]
    Backend(String),
    #[error("model file {0} does not exist or is not a file")]
    ModelNotFound(PathBuf),
    #[error("llama.cpp could not load model {path}: {reason}")]
    ModelLoad { path: PathBuf, reason: String },
    #[error("the model has no chat template (tokenizer.chat_template), so conversations cannot be formatted for it")]
    NoChatTemplate,
    #[error("the chat template could not be applied by minijinja ({jinja}) nor by llama.cpp's built-in templates ({builtin})")]
    Template { jinja: String, builtin: String },
    #[error(transparent)]
    TemplateRejected(#[from] TemplateRejected),
    #[error("invalid generation parameter: {0}")]
    InvalidParams(&'static str),
    #[error("the conversation is {prompt_tokens} tokens long, but the context holds {context} tokens including at least one for the answer: shorten the conversation")]
    ContextExceeded { prompt_tokens: usize, context: u32 },
    #[error("llama.cpp could not create a context of {0} tokens")]
    Context(u32),
    #[error("llama.cpp failed to decode a batch: {0}")]
    Decode(#[from] llama_cpp_2::DecodeError),
    #[error("batch too small: {0}")]
    Batch(#[from] llama_cpp_2::llama_batch::BatchAddError),
    #[error("token position {0} does not fit llama.cpp's position type")]
    Position(usize),
    #[error("the engine is busy: every slot is taken and the queue is full; try again shortly")]
    Busy,
    #[error("the engine failed: its batching thread or engine process is gone, or it answered out of protocol")]
    Internal,
}

/// The chat template raised an exception for this conversation. The message is the template's
/// own text, which a template could build from the conversation: do not log it.
#[derive(Debug, thiserror::Error)]
#[error("the model's chat template rejected the conversation: {0}")]
pub struct TemplateRejected(pub String);

/// How to run the model.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// CPU threads for llama.cpp (prompt and generation).
    pub threads: NonZeroU32,
    /// Tokens of context per conversation (prompt plus answer). Capped at the model's training
    /// context.
    pub context_size: NonZeroU32,
    /// Tokens decoded per llama.cpp call while reading the prompt.
    pub batch_size: NonZeroU32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .ok()
            .and_then(|n| u32::try_from(n.get()).ok())
            .and_then(NonZeroU32::new)
            .unwrap_or(NonZeroU32::MIN);
        Self {
            threads: cores,
            context_size: NonZeroU32::new(4096).unwrap_or(NonZeroU32::MIN),
            batch_size: NonZeroU32::new(512).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// Who wrote a message.
pub use sotto_api::Role;

/// One message of a conversation. Deliberately has no `Debug` or `Display`: its content is the
/// user's plaintext.
#[derive(Clone)]
pub struct ChatMessage {
    pub role: Role,
    pub content: Zeroizing<String>,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: Zeroizing::new(content.into()),
        }
    }
}

/// Sampling and length of one answer.
#[derive(Clone, Debug, PartialEq)]
pub struct GenParams {
    /// At most this many tokens are generated (at least 1).
    pub max_tokens: u32,
    /// 0 means greedy (always the most likely token); otherwise the softmax temperature.
    pub temperature: f32,
    /// Nucleus sampling mass, in (0, 1]; ignored when greedy.
    pub top_p: f32,
    /// Keep only the k most likely tokens before top-p; ignored when greedy.
    pub top_k: Option<NonZeroU32>,
    /// Seed of the sampler; `None` draws a fresh one. Ignored when greedy.
    pub seed: Option<u32>,
}

impl GenParams {
    /// Deterministic decoding of at most `max_tokens` tokens.
    pub fn greedy(max_tokens: u32) -> Self {
        Self {
            max_tokens,
            temperature: 0.0,
            top_p: 1.0,
            top_k: None,
            seed: None,
        }
    }

    fn validate(&self) -> Result<(), EngineError> {
        if self.max_tokens == 0 {
            return Err(EngineError::InvalidParams("max_tokens must be at least 1"));
        }
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(EngineError::InvalidParams(
                "temperature must be a finite number >= 0",
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(EngineError::InvalidParams("top_p must be in (0, 1]"));
        }
        Ok(())
    }
}

impl Default for GenParams {
    fn default() -> Self {
        Self {
            max_tokens: 1024,
            temperature: 0.7,
            top_p: 0.9,
            top_k: None,
            seed: None,
        }
    }
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-generation token (e.g. `<|im_end|>`).
    EndOfGeneration,
    /// `max_tokens` were generated.
    MaxTokens,
    /// The context is full.
    ContextFull,
    /// The caller's callback asked to stop.
    Cancelled,
}

/// Counts and timings of one [`Engine::generate`] call.
#[derive(Clone, Debug, PartialEq)]
pub struct GenStats {
    pub prompt_tokens: usize,
    /// Tokens sampled, including a final end-of-generation token.
    pub generated_tokens: usize,
    /// Time to read the prompt (all prompt batches).
    pub prompt_eval: Duration,
    /// From the start of the call to the first sampled token.
    pub time_to_first_token: Duration,
    /// From the first sampled token to the end.
    pub generation: Duration,
    pub stop: StopReason,
}

/// How conversations are turned into prompt text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateRenderer {
    /// The model's Jinja template, rendered by minijinja.
    Jinja,
    /// minijinja could not compile the template; llama.cpp's built-in copy of the template
    /// family is used instead.
    LlamaCppBuiltin,
}

/// What the loaded model is.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub architecture: String,
    pub name: Option<String>,
    pub n_ctx_train: u32,
    pub n_vocab: i32,
    pub n_layer: u32,
    pub n_embd: i32,
    pub n_params: u64,
    pub size_bytes: u64,
    /// Context size each conversation gets (the configured size capped at `n_ctx_train`).
    pub context_size: u32,
    pub renderer: TemplateRenderer,
}

/// A loaded model, ready to answer conversations from many threads.
pub struct Engine {
    model: LlamaModel,
    jinja: Option<ChatTemplate>,
    builtin: LlamaChatTemplate,
    jinja_compile_error: Option<String>,
    cfg: EngineConfig,
    context_size: u32,
    info: ModelInfo,
}

/// llama.cpp may be initialised once per process; every engine shares it.
static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

/// Serializes context creation (see the crate docs of `LlamaModel::new_context`).
static CONTEXT_CREATION: Mutex<()> = Mutex::new(());

fn backend() -> Result<&'static LlamaBackend, EngineError> {
    BACKEND
        .get_or_init(|| {
            // Before init, so not a single line from llama.cpp or ggml reaches stderr.
            send_logs_to_tracing(LogOptions::default().with_logs_enabled(false));
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Backend(e.clone()))
}

/// Refuses to run when any of [`FORBIDDEN_ENV_VARS`] is set. `lookup` is the environment
/// (`std::env::var_os` in production), passed in so the check is testable without mutating the
/// process environment.
pub fn check_environment<'a, F>(lookup: F) -> Result<(), EngineError>
where
    F: Fn(&'static str) -> Option<&'a OsStr>,
{
    match FORBIDDEN_ENV_VARS
        .into_iter()
        .find(|name| lookup(name).is_some())
    {
        Some(name) => Err(EngineError::DebugEnvSet(name)),
        None => Ok(()),
    }
}

fn check_process_environment() -> Result<(), EngineError> {
    let values: Vec<(&'static str, std::ffi::OsString)> = FORBIDDEN_ENV_VARS
        .into_iter()
        .filter_map(|name| std::env::var_os(name).map(|v| (name, v)))
        .collect();
    check_environment(|name| {
        values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_os_str())
    })
}

impl Engine {
    /// Loads a GGUF model. Fails if a forbidden debug variable is set, if the file is missing
    /// or not loadable, or if the model has no chat template.
    pub fn load(path: &Path, cfg: &EngineConfig) -> Result<Engine, EngineError> {
        Self::load_inner(path, cfg, LlamaModelParams::default())
    }

    /// Like [`Engine::load`], reporting loading progress (0.0 to 1.0) to `progress`.
    pub fn load_with_progress<F>(
        path: &Path,
        cfg: &EngineConfig,
        mut progress: F,
    ) -> Result<Engine, EngineError>
    where
        F: FnMut(f32) + 'static,
    {
        let params = LlamaModelParams::default().with_progress_callback(move |p| {
            progress(p);
            true
        });
        Self::load_inner(path, cfg, params)
    }

    fn load_inner(
        path: &Path,
        cfg: &EngineConfig,
        params: LlamaModelParams,
    ) -> Result<Engine, EngineError> {
        check_process_environment()?;
        let backend = backend()?;
        // llama-cpp-2 only debug-asserts that the file exists; check it properly.
        if !path.is_file() {
            return Err(EngineError::ModelNotFound(path.to_path_buf()));
        }
        let started = Instant::now();
        let model = LlamaModel::load_from_file(backend, path, &params).map_err(|e| {
            EngineError::ModelLoad {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        let builtin = model
            .chat_template(None)
            .map_err(|_| EngineError::NoChatTemplate)?;
        let source = builtin.to_str().map_err(|_| EngineError::NoChatTemplate)?;
        let vocab = model.vocab();
        let token_text = |t: LlamaToken| {
            String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned()
        };
        let (bos, eos) = (token_text(vocab.bos()), token_text(vocab.eos()));
        let (jinja, jinja_compile_error) = match ChatTemplate::compile(source, bos, eos) {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(e.to_string())),
        };

        let n_ctx_train = model.n_ctx_train();
        let context_size = match n_ctx_train {
            0 => cfg.context_size.get(),
            train => cfg.context_size.get().min(train),
        };
        let info = ModelInfo {
            architecture: model
                .meta_val_str("general.architecture")
                .unwrap_or_default(),
            name: model.meta_val_str("general.name").ok(),
            n_ctx_train,
            n_vocab: model.n_vocab(),
            n_layer: model.n_layer(),
            n_embd: model.n_embd(),
            n_params: model.n_params(),
            size_bytes: model.size(),
            context_size,
            renderer: if jinja.is_some() {
                TemplateRenderer::Jinja
            } else {
                TemplateRenderer::LlamaCppBuiltin
            },
        };
        tracing::info!(
            architecture = %info.architecture,
            n_params = info.n_params,
            context_size,
            load_ms = started.elapsed().as_millis() as u64,
            "model loaded"
        );
        Ok(Engine {
            model,
            jinja,
            builtin,
            jinja_compile_error,
            cfg: cfg.clone(),
            context_size,
            info,
        })
    }

    pub fn model_info(&self) -> &ModelInfo {
        &self.info
    }

    /// The prompt text for `messages`, as the model will read it.
    pub fn render_prompt(
        &self,
        messages: &[ChatMessage],
    ) -> Result<Zeroizing<String>, EngineError> {
        let jinja_error = match &self.jinja {
            Some(t) => match t.render(messages) {
                Ok(prompt) => return Ok(prompt),
                Err(RenderError::Rejected(m)) => return Err(TemplateRejected(m).into()),
                Err(RenderError::Engine(e)) => e,
            },
            None => self.jinja_compile_error.clone().unwrap_or_default(),
        };
        let chat = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.as_str().to_owned(), m.content.to_string()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EngineError::Template {
                jinja: jinja_error.clone(),
                builtin: e.to_string(),
            })?;
        self.model
            .apply_chat_template(&self.builtin, &chat, true)
            .map(Zeroizing::new)
            .map_err(|e| EngineError::Template {
                jinja: jinja_error,
                builtin: e.to_string(),
            })
    }

    /// Tokens of the rendered prompt, control tokens such as `<|im_start|>` parsed as such.
    fn tokenize(&self, prompt: &str) -> Vec<LlamaToken> {
        let vocab = self.model.vocab();
        // Templates usually write the BOS token themselves; add it only when the model wants
        // one and the template did not, so it is never doubled.
        let mut tokens = vocab.tokenize(prompt.as_bytes(), false, true);
        if vocab.should_add_bos() && tokens.first() != Some(&vocab.bos()) {
            tokens.insert(0, vocab.bos());
        }
        tokens
    }

    /// A fresh context of `n_ctx` tokens shared by `n_seq` sequences. Creation is serialized
    /// across all engines.
    fn new_context(&self, n_ctx: u32, n_seq: u32) -> Result<LlamaContext<'_>, EngineError> {
        check_process_environment()?;
        let backend = backend()?;
        let threads = i32::try_from(self.cfg.threads.get()).unwrap_or(i32::MAX);
        let batch = self.cfg.batch_size.get().min(n_ctx);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(batch)
            .with_n_ubatch(batch.min(512))
            .with_n_threads(threads)
            .with_n_threads_batch(threads)
            .with_n_seq_max(n_seq)
            // Each sequence its own part of the cache: one conversation can never use (or
            // see) another's cells.
            .with_kv_unified(false);
        let _guard = CONTEXT_CREATION
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.model
            .new_context(backend, params)
            .map_err(|_| EngineError::Context(n_ctx))
    }

    /// Checks the parameters and turns the conversation into prompt tokens that leave room
    /// for at least one answer token.
    fn prepare(
        &self,
        messages: &[ChatMessage],
        params: &GenParams,
    ) -> Result<Vec<LlamaToken>, EngineError> {
        params.validate()?;
        let prompt = self.render_prompt(messages)?;
        let tokens = self.tokenize(&prompt);
        if tokens.len() + 1 > self.context_size as usize {
            return Err(EngineError::ContextExceeded {
                prompt_tokens: tokens.len(),
                context: self.context_size,
            });
        }
        Ok(tokens)
    }

    /// Answers the conversation on a context of its own, streaming text to `on_piece` as it
    /// is generated. `on_piece` returning `false` stops generation. Pieces are whole UTF-8
    /// text: a character split across tokens is delivered once complete.
    pub fn generate(
        &self,
        messages: &[ChatMessage],
        params: &GenParams,
        on_piece: &mut dyn FnMut(&str) -> bool,
    ) -> Result<GenStats, EngineError> {
        let submitted = Instant::now();
        let tokens = self.prepare(messages, params)?;
        let wanted = tokens.len().saturating_add(params.max_tokens as usize);
        let n_ctx = u32::try_from(wanted)
            .unwrap_or(u32::MAX)
            .min(self.context_size);
        let ctx = self.new_context(n_ctx, 1)?;
        let mut result = None;
        let mut scheduler = Scheduler::new(self, ctx, 1, n_ctx as usize);
        scheduler.admit(Job {
            tokens,
            params: params.clone(),
            sink: Callback {
                on_piece,
                result: &mut result,
            },
            submitted,
        });
        while scheduler.step() != Progress::Idle {}
        drop(scheduler);
        let stats = result.unwrap_or(Err(EngineError::Internal))?;
        tracing::debug!(
            prompt_tokens = stats.prompt_tokens,
            generated_tokens = stats.generated_tokens,
            prompt_eval_ms = stats.prompt_eval.as_millis() as u64,
            generation_ms = stats.generation.as_millis() as u64,
            stop = ?stats.stop,
            "generation finished"
        );
        Ok(stats)
    }
}

/// [`Engine::generate`]'s sink: the caller's callback, which is never full.
struct Callback<'a> {
    on_piece: &'a mut dyn FnMut(&str) -> bool,
    result: &'a mut Option<Result<GenStats, EngineError>>,
}

impl Sink for Callback<'_> {
    fn offer(&mut self, piece: Zeroizing<String>) -> Offer {
        if (self.on_piece)(&piece) {
            Offer::Taken
        } else {
            Offer::Closed
        }
    }

    fn finish(&mut self, result: Result<GenStats, EngineError>) {
        *self.result = Some(result);
    }
}

fn position(pos: usize) -> Result<i32, EngineError> {
    i32::try_from(pos).map_err(|_| EngineError::Position(pos))
}

/// Greedy at temperature 0; otherwise llama.cpp's usual order: top-k, top-p, temperature, then
/// a draw from the remaining distribution.
fn sampler(params: &GenParams) -> LlamaSampler {
    if params.temperature == 0.0 {
        return LlamaSampler::greedy();
    }
    let mut chain = Vec::with_capacity(4);
    if let Some(k) = params.top_k {
        chain.push(LlamaSampler::top_k(
            i32::try_from(k.get()).unwrap_or(i32::MAX),
        ));
    }
    chain.push(LlamaSampler::top_p(params.top_p, 1));
    chain.push(LlamaSampler::temp(params.temperature));
    // u32::MAX is llama.cpp's LLAMA_DEFAULT_SEED: it asks for a random seed.
    chain.push(LlamaSampler::dist(params.seed.unwrap_or(u32::MAX)));
    LlamaSampler::chain_simple(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_env_vars_are_refused_whatever_their_value() {
        let set = OsStr::new("0");
        assert!(check_environment(|_| None).is_ok());
        for forbidden in FORBIDDEN_ENV_VARS {
            let err = check_environment(|name| (name == forbidden).then_some(set)).unwrap_err();
            assert!(matches!(err, EngineError::DebugEnvSet(n) if n == forbidden));
        }
        let err = check_environment(|name| (name == "LLAMA_BATCH_DEBUG").then_some(set));
        assert!(err.unwrap_err().to_string().contains("LLAMA_BATCH_DEBUG"));
    }

    #[test]
    fn params_are_validated() {
        assert!(GenParams::greedy(1).validate().is_ok());
        assert!(GenParams::default().validate().is_ok());
        let bad = [
            GenParams::greedy(0),
            GenParams {
                temperature: -1.0,
                ..GenParams::default()
            },
            GenParams {
                temperature: f32::NAN,
                ..GenParams::default()
            },
            GenParams {
                top_p: 0.0,
                ..GenParams::default()
            },
            GenParams {
                top_p: 1.5,
                ..GenParams::default()
            },
        ];
        for p in bad {
            assert!(matches!(p.validate(), Err(EngineError::InvalidParams(_))));
        }
    }
}
