//! The OpenAI chat-completions API, translated to and from the attested channel's messages:
//! what `sotto proxy` accepts and answers. Pure: requests are parsed and checked, answers and
//! errors are built as JSON; the proxy's HTTP edge carries them.
//!
//! Trust: a request comes from a local program the user runs (the proxy listens on loopback
//! with a Host allowlist and an optional key); it is checked like any input. Answers come from
//! an enclave the client verified. Nothing here logs: prompts and answers stay in [`Zeroizing`]
//! buffers.

use serde::Deserialize;
use serde_json::{json, Value};
use sotto_channel::messages::{GenParams, Role, Stats, Stop, WireMessage};
use zeroize::Zeroizing;

/// At most this many stop sequences, as OpenAI allows.
const MAX_STOPS: usize = 4;

/// A refused request or a failed answer, as OpenAI shapes it.
#[derive(Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub param: Option<&'static str>,
    pub message: String,
}

impl ApiError {
    pub fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: None,
            param: Some(param),
            message: message.into(),
        }
    }

    pub fn model_not_found(model: &str, served: &str) -> Self {
        ApiError {
            status: 404,
            kind: "invalid_request_error",
            code: Some("model_not_found"),
            param: Some("model"),
            message: format!(
                "the model `{model}` does not exist here: the verified enclave serves `{served}`"
            ),
        }
    }

    pub fn context_exceeded(message: String) -> Self {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: Some("context_length_exceeded"),
            param: Some("messages"),
            message,
        }
    }

    /// The enclave could not be verified, or refused to be: nothing was sent to it.
    pub fn unverified(why: String) -> Self {
        ApiError {
            status: 502,
            kind: "unverified_enclave",
            code: Some("unverified_enclave"),
            param: None,
            message: format!("the enclave was not verified, so nothing was sent to it: {why}"),
        }
    }

    /// The relay wants a token this proxy could not get (for example, not signed in).
    pub fn no_token(why: String) -> Self {
        ApiError {
            status: 503,
            kind: "api_error",
            code: Some("relay_token"),
            param: None,
            message: format!("no relay token for this request, so nothing was sent: {why}"),
        }
    }

    /// The enclave's batch and queue are full; the SDKs retry a 503 by themselves.
    pub fn busy(message: String) -> Self {
        ApiError {
            status: 503,
            kind: "server_error",
            code: Some("engine_overloaded"),
            param: None,
            message,
        }
    }

    /// The verified enclave's answer broke off, or it refused the request.
    pub fn upstream(why: String) -> Self {
        ApiError {
            status: 502,
            kind: "api_error",
            code: None,
            param: None,
            message: format!("the enclave did not answer: {why}"),
        }
    }

    pub fn unauthorized() -> Self {
        ApiError {
            status: 401,
            kind: "invalid_request_error",
            code: Some("invalid_api_key"),
            param: None,
            message: "this proxy needs its API key (Authorization: Bearer KEY)".into(),
        }
    }

    pub fn body(&self) -> Value {
        json!({ "error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(Zeroizing<String>),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<Zeroizing<String>>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: Option<Content>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StopField {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct Body {
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    stop: Option<StopField>,
    seed: Option<i64>,
    n: Option<u32>,
}

/// A checked chat-completions request.
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<WireMessage>,
    pub params: GenParams,
    pub stream: bool,
    pub include_usage: bool,
    pub stops: Vec<String>,
}

impl ChatRequest {
    /// Parses and checks a request body. `max_tokens` is what an answer may take when the
    /// request sets no limit.
    pub fn parse(body: &[u8], max_tokens: u32) -> Result<Self, ApiError> {
        let body: Body = serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid("body", format!("the request is not valid: {e}")))?;
        if body.n.is_some_and(|n| n != 1) {
            return Err(ApiError::invalid("n", "only n = 1 is supported"));
        }
        let temperature = body.temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::invalid(
                "temperature",
                "temperature is between 0 and 2",
            ));
        }
        let top_p = body.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::invalid("top_p", "top_p is in (0, 1]"));
        }
        let limit = match (body.max_completion_tokens, body.max_tokens) {
            (Some(0), _) | (None, Some(0)) => {
                return Err(ApiError::invalid("max_tokens", "max_tokens is at least 1"))
            }
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => max_tokens,
        };
        let stops = match body.stop {
            None => Vec::new(),
            Some(StopField::One(s)) => vec![s],
            Some(StopField::Many(v)) => v,
        };
        if stops.len() > MAX_STOPS || stops.iter().any(String::is_empty) {
            return Err(ApiError::invalid(
                "stop",
                format!("stop is up to {MAX_STOPS} non-empty strings"),
            ));
        }
        let messages = body
            .messages
            .into_iter()
            .map(wire)
            .collect::<Result<Vec<_>, _>>()?;
        if messages.last().is_none_or(|m| m.role != Role::User) {
            return Err(ApiError::invalid(
                "messages",
                "the conversation must end with a user message",
            ));
        }
        Ok(ChatRequest {
            model: body.model,
            messages,
            params: GenParams {
                max_tokens: limit,
                temperature,
                top_p,
                // The same 64 bits either way: a negative seed is as good a seed.
                seed: body.seed.map(|s| s as u64),
            },
            stream: body.stream,
            include_usage: body.stream_options.is_some_and(|o| o.include_usage),
            stops,
        })
    }
}

fn wire(m: Message) -> Result<WireMessage, ApiError> {
    let role = match m.role.as_str() {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(ApiError::invalid(
                "messages",
                format!("messages of role `{other}` are not supported (no tools here)"),
            ))
        }
    };
    let content = match m.content {
        None => Zeroizing::new(String::new()),
        Some(Content::Text(text)) => text,
        Some(Content::Parts(parts)) => {
            let mut text = Zeroizing::new(String::new());
            for part in parts {
                match (part.kind.as_str(), part.text) {
                    ("text", Some(t)) => text.push_str(&t),
                    (kind, _) => {
                        return Err(ApiError::invalid(
                            "messages",
                            format!("content parts of type `{kind}` are not supported"),
                        ))
                    }
                }
            }
            text
        }
    };
    Ok(WireMessage { role, content })
}

/// Cuts an answer at the first stop sequence, holding back what could still become one, so
/// a streamed answer never shows a stop sequence or text after it.
pub struct StopFilter {
    stops: Vec<String>,
    held: Zeroizing<String>,
    stopped: bool,
}

impl StopFilter {
    pub fn new(stops: Vec<String>) -> Self {
        StopFilter {
            stops,
            held: Zeroizing::new(String::new()),
            stopped: false,
        }
    }

    /// Whether a stop sequence has been seen: nothing more is to be shown.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Takes the next piece; returns what may be shown now.
    pub fn push(&mut self, piece: &str) -> Zeroizing<String> {
        if self.stopped {
            return Zeroizing::new(String::new());
        }
        self.held.push_str(piece);
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            self.stopped = true;
            let shown = Zeroizing::new(self.held[..at].to_string());
            self.held = Zeroizing::new(String::new());
            return shown;
        }
        // Keep back the longest tail that is a proper prefix of some stop sequence.
        let keep = self
            .stops
            .iter()
            .flat_map(|s| {
                (1..s.len())
                    .filter(|&n| s.is_char_boundary(n))
                    .map(|n| &s[..n])
            })
            .filter(|prefix| self.held.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let shown = Zeroizing::new(self.held[..cut].to_string());
        self.held = Zeroizing::new(self.held[cut..].to_string());
        shown
    }

    /// The end of the answer: whatever was held back is shown after all.
    pub fn finish(&mut self) -> Zeroizing<String> {
        std::mem::replace(&mut self.held, Zeroizing::new(String::new()))
    }
}

/// OpenAI's `finish_reason` for how the enclave stopped (or a stop sequence ended it).
pub fn finish_reason(stop: Stop, stop_sequence: bool) -> &'static str {
    match stop {
        _ if stop_sequence => "stop",
        Stop::End => "stop",
        Stop::MaxTokens | Stop::ContextFull => "length",
    }
}

pub fn usage(stats: &Stats) -> Value {
    json!({
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.generated_tokens,
        "total_tokens": stats.prompt_tokens.saturating_add(stats.generated_tokens),
    })
}

/// A whole (non-streamed) chat completion.
pub fn completion(
    id: &str,
    created: u64,
    model: &str,
    text: &str,
    finish: &str,
    stats: &Stats,
) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": text },
            "finish_reason": finish,
        }],
        "usage": usage(stats),
    })
}

/// One `chat.completion.chunk` of a streamed answer: the first carries the role, the last the
/// finish reason; with `include_usage`, a final chunk with no choices carries the usage.
pub fn chunk(
    id: &str,
    created: u64,
    model: &str,
    delta: Value,
    finish: Option<&str>,
    usage: Option<Value>,
) -> Value {
    let choices = if usage.is_some() {
        json!([])
    } else {
        json!([{ "index": 0, "delta": delta, "finish_reason": finish }])
    };
    let mut chunk = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
    });
    if let Some(usage) = usage {
        chunk["usage"] = usage;
    }
    chunk
}

/// `GET /v1/models`: the one model the verified enclave serves.
pub fn models(model: &str, created: u64) -> Value {
    json!({
        "object": "list",
        "data": [{ "id": model, "object": "model", "created": created, "owned_by": "sotto" }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<ChatRequest, ApiError> {
        ChatRequest::parse(body.to_string().as_bytes(), 512)
    }

    #[test]
    fn a_request_maps_to_the_channel_with_its_parameters() {
        let r = parse(json!({
            "model": "m",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]},
            ],
            "temperature": 0, "top_p": 0.5, "max_completion_tokens": 7, "max_tokens": 99,
            "seed": -1, "stop": "END", "stream": true, "stream_options": {"include_usage": true},
        }))
        .unwrap();
        assert_eq!(r.messages.len(), 2);
        assert_eq!(r.messages[0].role, Role::System);
        assert_eq!(&*r.messages[1].content, "hi there");
        assert_eq!(r.params.max_tokens, 7, "max_completion_tokens wins");
        assert_eq!(r.params.seed, Some(u64::MAX));
        assert_eq!((r.params.temperature, r.params.top_p), (0.0, 0.5));
        assert!(r.stream && r.include_usage);
        assert_eq!(r.stops, ["END"]);
        let r =
            parse(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})).unwrap();
        assert_eq!(r.params.max_tokens, 512);
        assert!(!r.stream && r.stops.is_empty());
    }

    #[test]
    fn bad_requests_are_refused_naming_the_parameter() {
        let user = json!([{"role": "user", "content": "x"}]);
        for (body, param) in [
            (json!({"model": "m"}), "body"),
            (json!({"model": "m", "messages": user, "n": 2}), "n"),
            (
                json!({"model": "m", "messages": user, "temperature": 3}),
                "temperature",
            ),
            (json!({"model": "m", "messages": user, "top_p": 0}), "top_p"),
            (
                json!({"model": "m", "messages": user, "max_tokens": 0}),
                "max_tokens",
            ),
            (
                json!({"model": "m", "messages": user, "stop": ["a", "b", "c", "d", "e"]}),
                "stop",
            ),
            (
                json!({"model": "m", "messages": user, "stop": [""]}),
                "stop",
            ),
            (
                json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
                "messages",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
                "messages",
            ),
            (
                json!({"model": "m", "messages": [{"role": "assistant", "content": "x"}]}),
                "messages",
            ),
        ] {
            let err = parse(body).err().unwrap();
            assert_eq!(
                (err.status, err.param),
                (400, Some(param)),
                "{}",
                err.message
            );
        }
        assert!(ChatRequest::parse(b"{not json", 1).is_err());
    }

    #[test]
    fn a_stop_sequence_cuts_the_stream_even_across_pieces() {
        let mut f = StopFilter::new(vec!["STOP".into(), "\n\n".into()]);
        let mut shown = String::new();
        for piece in ["Hel", "lo S", "TO", "x", " wor", "ld ST", "OP and more"] {
            shown.push_str(&f.push(piece));
        }
        assert!(f.stopped());
        assert_eq!(shown, "Hello STOx world ");
        assert_eq!(&*f.push("later"), "");

        let mut f = StopFilter::new(vec!["END".into()]);
        let mut shown = String::new();
        for piece in ["the E", "N"] {
            shown.push_str(&f.push(piece));
        }
        assert_eq!(shown, "the ", "a possible stop is held back");
        shown.push_str(&f.finish());
        assert_eq!(shown, "the EN", "and shown when the answer ends without it");
        assert!(!f.stopped());
    }

    #[test]
    fn answers_have_openais_shape() {
        let stats = Stats {
            prompt_tokens: 5,
            generated_tokens: 3,
            stop: Stop::MaxTokens,
            ..Stats::default()
        };
        let c = completion(
            "id",
            1,
            "m",
            "Paris",
            finish_reason(stats.stop, false),
            &stats,
        );
        assert_eq!(c["choices"][0]["finish_reason"], "length");
        assert_eq!(c["usage"]["total_tokens"], 8);
        assert_eq!(finish_reason(Stop::MaxTokens, true), "stop");
        let last = chunk("id", 1, "m", json!({}), None, Some(usage(&stats)));
        assert_eq!(last["choices"], json!([]));
        assert_eq!(
            ApiError::model_not_found("x", "m").body()["error"]["code"],
            "model_not_found"
        );
    }
}
