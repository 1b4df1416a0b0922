//! Application messages carried inside the encrypted channel.
//!
//! Content fields are [`Zeroizing`] and none of these types implements `Debug`, so a careless
//! `{:?}` cannot put a prompt or an answer into a log line.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::ChannelError;

pub use sotto_api::Role;

#[derive(Clone, Serialize, Deserialize)]
pub struct WireMessage {
    pub role: Role,
    pub content: Zeroizing<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenParams {
    pub max_tokens: u32,
    /// 0 selects greedy decoding.
    pub temperature: f32,
    pub top_p: f32,
    pub seed: Option<u64>,
}

impl Default for GenParams {
    fn default() -> Self {
        GenParams {
            max_tokens: 512,
            temperature: 0.0,
            top_p: 0.95,
            seed: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub enum ClientMessage {
    /// The whole conversation so far; the enclave keeps nothing between requests.
    Chat {
        messages: Vec<WireMessage>,
        params: GenParams,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    ContextExceeded,
    BadRequest,
    Busy,
    Internal,
}

/// Why the enclave stopped generating. The enclave is the one party that knows, and it is
/// attested, so a client records a cut-short answer from this rather than guessing from counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// The model ended its answer.
    #[default]
    End,
    /// The answer reached `max_tokens` (or the enclave's own cap) first.
    MaxTokens,
    /// The conversation filled the model's context first.
    ContextFull,
}

impl Stop {
    /// Whether the answer is the whole one the model would have given.
    pub fn is_complete(self) -> bool {
        self == Stop::End
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub prompt_tokens: u32,
    pub generated_tokens: u32,
    pub time_to_first_token_ms: f64,
    pub generation_ms: f64,
    pub stop: Stop,
}

#[derive(Serialize, Deserialize)]
pub enum ServerMessage {
    /// A piece of the answer, streamed as soon as it is generated.
    Token(Zeroizing<String>),
    Done(Stats),
    /// The message never echoes request content.
    Error {
        kind: ErrorKind,
        message: String,
    },
}

fn encode<T: Serialize>(value: &T) -> Zeroizing<Vec<u8>> {
    // postcard only fails on writer errors, and a Vec writer never fails.
    Zeroizing::new(postcard::to_stdvec(value).unwrap_or_default())
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ChannelError> {
    postcard::from_bytes(bytes).map_err(|e| ChannelError::Message(e.to_string()))
}

impl ClientMessage {
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        encode(self)
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, ChannelError> {
        decode(bytes)
    }
}

impl ServerMessage {
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        encode(self)
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, ChannelError> {
        decode(bytes)
    }
}
