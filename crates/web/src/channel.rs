//! One attested chat channel as the browser drives it: JSON and bytes in, JSON and bytes out,
//! over `sotto_channel`'s handshake and transport.
//!
//! Trust: every byte handed to [`ChannelCore::finish`] and [`ChannelCore::open`] came through
//! the untrusted server relay; the policy JSON comes from the web app itself. The states below
//! carry the channel crate's guarantee across the JS boundary: `finish` verifies the evidence
//! and its binding (the channel is then attested, still with no session), and only `admit`,
//! given a verified release log ([`crate::release::LogCheckCore`]) with a release that lists
//! the measured build, yields the session, so nothing can be sealed before both checks
//! passed; any failure closes the channel for good, as the transport requires.

use serde::{Deserialize, Serialize};
use sotto_channel::handshake::{Attested, ClientHandshake, Expectations, Verified};
use sotto_channel::manifest::{EngineManifest, ModelManifest};
use sotto_channel::messages::{
    ClientMessage, ErrorKind, GenParams, Role, ServerMessage, Stats, WireMessage,
};
use sotto_channel::{ChannelError, Session};
use sotto_verify::{Policy, Verdict};
use sotto_verify_core::UnixTime;
use zeroize::Zeroizing;

use crate::error::{json, json_quiet, WebError};
use crate::release::{LogCheckCore, LogSummary};

/// What the web app requires of an enclave. Unknown fields are refused, so a misspelt
/// requirement cannot silently fall back to "accept anything".
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyIn {
    /// Accept the simulated development platform (the CLI's `--insecure-simulated`).
    #[serde(default)]
    pub allow_simulated: bool,
    /// The simulated platform's root certificate (DER, standard base64); without it any
    /// simulated enclave is accepted when `allow_simulated` is set.
    #[serde(default)]
    pub simulated_root: Option<String>,
    /// The launch measurement (48 bytes, hex): SEV-SNP MEASUREMENT or TDX MRTD.
    #[serde(default)]
    pub expect_measurement: Option<String>,
    /// The model's SHA-256 (hex) the manifest must name.
    #[serde(default)]
    pub expect_model_sha256: Option<String>,
}

fn hex_array<const N: usize>(text: &str, field: &'static str) -> Result<[u8; N], WebError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text.trim(), &mut out).map_err(|_| WebError::Hex { field, bytes: N })?;
    Ok(out)
}

impl PolicyIn {
    pub fn parse(policy_json: &str) -> Result<Self, WebError> {
        serde_json::from_str(policy_json).map_err(json("policy JSON"))
    }

    /// The same policy the CLI builds from its flags.
    pub fn build(&self) -> Result<(Policy, Expectations), WebError> {
        use base64::Engine as _;
        let mut policy = Policy {
            allow_simulated: self.allow_simulated,
            ..Policy::default()
        };
        if let Some(root) = &self.simulated_root {
            let engine = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            );
            policy.simulated_root =
                Some(engine.decode(root.trim()).map_err(|_| WebError::Base64 {
                    field: "simulated_root",
                })?);
        }
        if let Some(m) = &self.expect_measurement {
            let m = hex_array::<48>(m, "expect_measurement")?;
            policy.snp.allowed_measurements = vec![m];
            policy.tdx.expected_mrtd = Some(m);
        }
        let expect = Expectations {
            model_sha256: self
                .expect_model_sha256
                .as_deref()
                .map(|h| hex_array::<32>(h, "expect_model_sha256"))
                .transpose()?,
        };
        Ok((policy, expect))
    }
}

/// What the user is shown about the enclave they are about to talk to: after `finish` the
/// evidence, after `admit` also the logged release and the log.
#[derive(Serialize)]
pub struct Summary<'a> {
    pub platform: &'static str,
    /// True for the development platform, whose evidence proves nothing about hardware.
    pub simulated: bool,
    /// Whether the simulated root was pinned by the policy (false: any simulated enclave).
    pub simulated_root_pinned: bool,
    /// SEV-SNP MEASUREMENT or TDX MRTD, hex.
    pub measurement: String,
    /// The release the enclave's manifest claims.
    pub release: &'a str,
    pub model: &'a ModelManifest,
    pub engine: &'a EngineManifest,
    pub gpu_attested: bool,
    /// The enclave's Noise static key the evidence commits to, hex.
    pub enclave_static_key: String,
    /// Every verified detail: TCB, policy bits, TDX status and advisories, GPU verdict, the
    /// checks that passed.
    pub verdict: &'a Verdict,
    /// The logged, quorum-signed release that lists this build (after `admit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admitted: Option<&'a sotto_release::Admitted>,
    /// The verified log it is in (after `admit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<&'a LogSummary>,
}

/// One chat message as the web app sends it; roles are lower-case.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageIn {
    role: RoleIn,
    content: Zeroizing<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RoleIn {
    System,
    User,
    Assistant,
}

/// Generation parameters; absent fields take the CLI's defaults.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ParamsIn {
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    seed: Option<u64>,
}

/// An event of the streamed answer, as JSON for the UI.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Event<'a> {
    Token(&'a str),
    Done(Stats),
    Error {
        kind: &'static str,
        message: &'a str,
    },
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ContextExceeded => "context_exceeded",
        ErrorKind::BadRequest => "bad_request",
        ErrorKind::Busy => "busy",
        ErrorKind::Internal => "internal",
    }
}

enum State {
    AwaitingResponse(Box<ClientHandshake>),
    /// The evidence verified; no release admitted the build yet.
    Attested(Box<Attested>),
    Open(Box<Session>),
    Closed(String),
}

/// A channel from handshake to verified session.
pub struct ChannelCore {
    policy: Policy,
    expect: Expectations,
    hello: Vec<u8>,
    state: State,
}

impl ChannelCore {
    /// Parses the policy and starts the handshake; [`Self::hello`] is the first frame to send.
    pub fn new(policy_json: &str) -> Result<Self, WebError> {
        Self::new_in_build(policy_json, true)
    }

    /// [`Self::new`] in a build that may refuse the simulated platform whatever the policy
    /// says (`simulated_built`: compiled with `SOTTO_WEB_ALLOW_SIMULATED=1`).
    pub fn new_in_build(policy_json: &str, simulated_built: bool) -> Result<Self, WebError> {
        let policy_in = PolicyIn::parse(policy_json)?;
        if policy_in.allow_simulated && !simulated_built {
            return Err(WebError::SimulatedNotBuilt);
        }
        let (policy, expect) = policy_in.build()?;
        let (handshake, hello) = ClientHandshake::start()?;
        Ok(ChannelCore {
            policy,
            expect,
            hello: hello.0,
            state: State::AwaitingResponse(Box::new(handshake)),
        })
    }

    /// The client's handshake message: an ephemeral public key and nothing else.
    pub fn hello(&self) -> &[u8] {
        &self.hello
    }

    fn close(&mut self, e: WebError) -> WebError {
        self.state = State::Closed(e.to_string());
        e
    }

    /// Takes the state a step starts from. `pick` returns what the step needs of it, or hands
    /// the state back, kept as it was, with why the step cannot start there. A closed channel
    /// stays closed and says why; while the step runs, the channel reads as closed by
    /// `interrupted`.
    fn take<T>(
        &mut self,
        interrupted: &str,
        pick: impl FnOnce(State) -> Result<T, (State, &'static str)>,
    ) -> Result<T, WebError> {
        match std::mem::replace(&mut self.state, State::Closed(interrupted.into())) {
            State::Closed(why) => {
                self.state = State::Closed(why.clone());
                Err(WebError::Closed(why))
            }
            state => pick(state).map_err(|(state, wrong)| {
                self.state = state;
                WebError::State(wrong)
            }),
        }
    }

    /// Reads the enclave's answer and verifies its evidence, binding and manifest as of `at`.
    /// Returns the summary JSON; the channel is then attested but cannot seal until
    /// [`Self::admit`]. On any failure the channel is closed.
    pub fn finish(&mut self, response: &[u8], at: UnixTime) -> Result<String, WebError> {
        let handshake = self.take("the handshake was interrupted", |state| match state {
            State::AwaitingResponse(h) => Ok(h),
            other => Err((other, "the handshake has already been finished")),
        })?;
        let attested = handshake
            .read_response(response)
            .and_then(|pending| pending.verify(&self.policy, &self.expect, at))
            .map_err(|e| self.close(e.into()))?;
        let summary = summary_json(&Parts {
            verdict: attested.verdict(),
            manifest: attested.manifest(),
            enclave_static_key: attested.enclave_static_key(),
            root_pinned: self.policy.simulated_root.is_some(),
            admitted: None,
            log: None,
        })?;
        self.state = State::Attested(Box::new(attested));
        Ok(summary)
    }

    /// Requires a release of the verified log `log` to list the attested enclave's
    /// measurement, model and engine; only then does the channel get its session. Returns the
    /// summary JSON, now with the admitted release and the log. On any failure (the log not
    /// checked, no release listing this build) the channel is closed.
    pub fn admit(&mut self, log: &LogCheckCore) -> Result<String, WebError> {
        let attested = self.take("the admission was interrupted", |state| match state {
            State::Attested(a) => Ok(a),
            open @ State::Open(_) => Err((open, "the enclave has already been admitted")),
            other => Err((
                other,
                "the enclave's evidence has not been verified: finish() must succeed before admit()",
            )),
        })?;
        let checked = log.checked().map_err(|e| self.close(e))?;
        let (session, verified) = attested
            .admit(&checked.releases)
            .map_err(|e| self.close(e.into()))?;
        let summary = admitted_json(&verified, self.policy.simulated_root.is_some(), checked)?;
        self.state = State::Open(Box::new(session));
        Ok(summary)
    }

    fn session(&mut self) -> Result<&mut Session, WebError> {
        match &mut self.state {
            State::Open(session) => Ok(session),
            State::Closed(why) => Err(WebError::Closed(why.clone())),
            State::AwaitingResponse(_) => Err(WebError::State(
                "the enclave's evidence has not been verified: nothing can be sent before finish() and admit() succeed",
            )),
            State::Attested(_) => Err(WebError::State(
                "no logged release has admitted this enclave: nothing can be sent before admit() succeeds",
            )),
        }
    }

    /// Encrypts a chat request (the whole conversation) into frames, each one WebSocket
    /// binary message.
    pub fn seal_chat(
        &mut self,
        messages_json: &str,
        params_json: &str,
    ) -> Result<Vec<Vec<u8>>, WebError> {
        let messages: Vec<MessageIn> =
            serde_json::from_str(messages_json).map_err(json_quiet("messages JSON"))?;
        let params: ParamsIn = if params_json.trim().is_empty() {
            ParamsIn::default()
        } else {
            serde_json::from_str(params_json).map_err(json("params JSON"))?
        };
        let defaults = GenParams::default();
        let request = ClientMessage::Chat {
            messages: messages
                .into_iter()
                .map(|m| WireMessage {
                    role: match m.role {
                        RoleIn::System => Role::System,
                        RoleIn::User => Role::User,
                        RoleIn::Assistant => Role::Assistant,
                    },
                    content: m.content,
                })
                .collect(),
            params: GenParams {
                max_tokens: params.max_tokens.unwrap_or(defaults.max_tokens),
                temperature: params.temperature.unwrap_or(defaults.temperature),
                top_p: params.top_p.unwrap_or(defaults.top_p),
                seed: params.seed.or(defaults.seed),
            },
        }
        .encode();
        match self.session()?.seal(&request) {
            Ok(frames) => Ok(frames),
            // Refused before anything was encrypted: the session's nonces are untouched, so
            // the user can shorten the conversation and go on.
            Err(e @ ChannelError::MessageTooLarge { .. }) => Err(e.into()),
            Err(e) => Err(self.close(e.into())),
        }
    }

    /// Decrypts one frame from the enclave. `Ok(None)` while a long message's later frames
    /// are still to come; otherwise the event JSON: `{"token":"…"}`, `{"done":{…stats}}` (with
    /// `"stop"`: `"end"`, `"max_tokens"` or `"context_full"`, why the answer ended) or
    /// `{"error":{"kind":…,"message":…}}`. A frame that fails closes the channel.
    pub fn open(&mut self, frame: &[u8]) -> Result<Option<Zeroizing<String>>, WebError> {
        let opened = self.session()?.open(frame);
        let Some(plain) = opened.map_err(|e| self.close(e.into()))? else {
            return Ok(None);
        };
        let message = ServerMessage::decode(&plain).map_err(|e| self.close(e.into()))?;
        let event = match &message {
            ServerMessage::Token(piece) => Event::Token(piece),
            ServerMessage::Done(stats) => Event::Done(*stats),
            ServerMessage::Error { kind, message } => Event::Error {
                kind: kind_name(*kind),
                message,
            },
        };
        serde_json::to_string(&event)
            .map(|s| Some(Zeroizing::new(s)))
            .map_err(json("event"))
    }
}

struct Parts<'a> {
    verdict: &'a Verdict,
    manifest: &'a sotto_channel::manifest::Manifest,
    enclave_static_key: &'a [u8; 32],
    root_pinned: bool,
    admitted: Option<&'a sotto_release::Admitted>,
    log: Option<&'a LogSummary>,
}

fn summary_json(p: &Parts<'_>) -> Result<String, WebError> {
    let m = p.manifest;
    serde_json::to_string(&Summary {
        platform: p.verdict.platform_name(),
        simulated: p.verdict.is_simulated(),
        simulated_root_pinned: p.verdict.is_simulated() && p.root_pinned,
        measurement: hex::encode(p.verdict.launch_measurement()),
        release: &m.release,
        model: &m.model,
        engine: &m.engine,
        gpu_attested: p.verdict.gpu.is_some(),
        enclave_static_key: hex::encode(p.enclave_static_key),
        verdict: p.verdict,
        admitted: p.admitted,
        log: p.log,
    })
    .map_err(json("summary"))
}

fn admitted_json(
    verified: &Verified,
    root_pinned: bool,
    checked: &crate::release::Checked,
) -> Result<String, WebError> {
    summary_json(&Parts {
        verdict: &verified.verdict,
        manifest: &verified.manifest,
        enclave_static_key: &verified.enclave_static_key,
        root_pinned,
        admitted: Some(&verified.release),
        log: Some(&checked.summary),
    })
}

/// The relay URL preferring an enclave picked by `random` among those the server's list
/// (`GET /v1/enclaves`: `status`, `body`) shows up and not draining; `relay` unchanged when it
/// lists none to choose between.
pub fn relay_with_enclave(
    relay: &str,
    status: u16,
    body: &[u8],
    random: u32,
) -> Result<String, WebError> {
    let list = sotto_client::enclaves::read(&sotto_client::Response::new(status, body.to_vec()))?;
    Ok(
        match sotto_client::enclaves::pick(&list, u64::from(random)) {
            Some(id) => sotto_client::enclaves::relay_for(relay, id, false)?,
            None => relay.to_owned(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_fields_are_strict() {
        assert!(matches!(
            PolicyIn::parse(r#"{"allow_simulted": true}"#),
            Err(WebError::Json { .. })
        ));
        let p = PolicyIn::parse(r#"{"expect_measurement": "ab"}"#).unwrap();
        assert!(matches!(
            p.build(),
            Err(WebError::Hex {
                field: "expect_measurement",
                bytes: 48
            })
        ));
        let p = PolicyIn::parse(r#"{"simulated_root": "not base64!"}"#).unwrap();
        assert!(matches!(p.build(), Err(WebError::Base64 { .. })));
        let (policy, expect) = PolicyIn::parse("{}").unwrap().build().unwrap();
        assert!(!policy.allow_simulated);
        assert!(expect.model_sha256.is_none());
        let m = "ab".repeat(48);
        let (policy, _) = PolicyIn::parse(&format!(r#"{{"expect_measurement":"{m}"}}"#))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(policy.snp.allowed_measurements, vec![[0xab; 48]]);
        assert_eq!(policy.tdx.expected_mrtd, Some([0xab; 48]));
    }

    #[test]
    fn the_page_prefers_an_enclave_it_picked_itself() {
        let list = br#"{"enclaves":[{"id":"0a1b","up":true,"draining":false},{"id":"2c3d","up":false,"draining":false}]}"#;
        for random in [0, 1, 7] {
            assert_eq!(
                relay_with_enclave("ws://h/v1/relay", 200, list, random).unwrap(),
                "ws://h/v1/relay?prefer=0a1b"
            );
        }
        assert_eq!(
            relay_with_enclave("ws://h/v1/relay", 404, b"", 3).unwrap(),
            "ws://h/v1/relay"
        );
        assert!(relay_with_enclave("ws://h/v1/relay", 200, b"[1]", 3).is_err());
    }

    #[test]
    fn nothing_is_sealed_or_opened_before_verification() {
        let mut c = ChannelCore::new("{}").unwrap();
        assert!(!c.hello().is_empty());
        assert!(matches!(
            c.seal_chat(r#"[{"role":"user","content":"secret"}]"#, ""),
            Err(WebError::State(_))
        ));
        assert!(matches!(c.open(&[0u8; 40]), Err(WebError::State(_))));
        // Garbage from the relay fails the handshake and closes the channel for good.
        assert!(matches!(
            c.finish(&[1u8; 10], UnixTime(0)),
            Err(WebError::Channel(_))
        ));
        assert!(matches!(
            c.finish(&[1u8; 10], UnixTime(0)),
            Err(WebError::Closed(_))
        ));
        assert!(matches!(
            c.seal_chat(r#"[{"role":"user","content":"secret"}]"#, ""),
            Err(WebError::Closed(_))
        ));
    }
}
