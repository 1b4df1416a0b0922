//! The Noise NX handshake, bound to enclave evidence.
//!
//! `Noise_NX_25519_ChaChaPoly_SHA256`: the client sends an ephemeral key and a fresh random
//! nonce (it has no long-term identity the enclave could track); the enclave answers with its
//! ephemeral and static keys and, encrypted under the handshake keys, an
//! [`AttestationPayload`] whose evidence it made for this handshake, over that nonce. The client
//! holds a [`PendingSession`] until [`PendingSession::verify`] has checked the evidence and its
//! binding to the static key and manifest, and then an [`Attested`] until
//! [`Attested::admit`] has found a logged, unrevoked release that lists the measured build;
//! only then does it get a [`Session`] to send on.

use serde::{Deserialize, Serialize};
use sotto_release::{Admitted, Claims, ReleaseSet};
use sotto_verify::{Evidence, Policy, Verdict};
use sotto_verify_core::UnixTime;
use zeroize::Zeroizing;

use crate::binding::{manifest_digest, report_data, NONCE_LEN};
use crate::frame::MAX_FRAME;
use crate::manifest::Manifest;
use crate::transport::Session;
use crate::ChannelError;

pub const NOISE_PARAMS: &str = "Noise_NX_25519_ChaChaPoly_SHA256";
/// Mixed into the handshake hash, so a transcript from another protocol or version never
/// completes.
pub const PROLOGUE: &[u8] = b"sotto/channel/v2";

fn builder<'a>() -> Result<snow::Builder<'a>, ChannelError> {
    let params = NOISE_PARAMS
        .parse()
        .map_err(|e: snow::Error| ChannelError::Handshake(e.to_string()))?;
    Ok(snow::Builder::new(params).prologue(PROLOGUE))
}

fn noise_err(e: snow::Error) -> ChannelError {
    ChannelError::Handshake(e.to_string())
}

/// What the enclave proves about itself in the handshake.
#[derive(Clone, Serialize, Deserialize)]
pub struct AttestationPayload {
    /// The exact manifest bytes whose SHA-256 is bound into REPORT_DATA.
    pub manifest: Vec<u8>,
    pub evidence: Evidence,
}

impl AttestationPayload {
    pub fn encode(&self) -> Result<Vec<u8>, ChannelError> {
        postcard::to_stdvec(self).map_err(|e| ChannelError::Payload(e.to_string()))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ChannelError> {
        postcard::from_bytes(bytes).map_err(|e| ChannelError::Payload(e.to_string()))
    }
}

/// The enclave's long-term Noise key: generated in enclave memory, never written anywhere.
pub struct StaticKey {
    private: Zeroizing<Vec<u8>>,
    public: [u8; 32],
}

impl StaticKey {
    pub fn generate() -> Result<Self, ChannelError> {
        let kp = builder()?.generate_keypair().map_err(noise_err)?;
        let public: [u8; 32] = kp
            .public
            .as_slice()
            .try_into()
            .map_err(|_| ChannelError::Handshake("bad key length".into()))?;
        Ok(StaticKey {
            private: Zeroizing::new(kp.private),
            public,
        })
    }

    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }
}

/// The client's first message is sent; the enclave's answer is awaited.
pub struct ClientHandshake {
    state: snow::HandshakeState,
    nonce: [u8; NONCE_LEN],
}

/// The bytes of the client's first handshake message.
pub struct ClientHello(pub Vec<u8>);

impl ClientHandshake {
    pub fn start() -> Result<(Self, ClientHello), ChannelError> {
        let mut state = builder()?.build_initiator().map_err(noise_err)?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce)
            .map_err(|e| ChannelError::Handshake(format!("no randomness for the nonce: {e}")))?;
        let mut msg = vec![0u8; 128];
        let n = state.write_message(&nonce, &mut msg).map_err(noise_err)?;
        msg.truncate(n);
        Ok((ClientHandshake { state, nonce }, ClientHello(msg)))
    }

    /// Reads the enclave's answer. The result is not yet usable for sending.
    pub fn read_response(mut self, message: &[u8]) -> Result<PendingSession, ChannelError> {
        if message.len() > MAX_FRAME {
            return Err(ChannelError::FrameTooLarge {
                len: message.len(),
                max: MAX_FRAME,
            });
        }
        let mut payload = vec![0u8; message.len()];
        let n = self
            .state
            .read_message(message, &mut payload)
            .map_err(noise_err)?;
        let payload = AttestationPayload::decode(&payload[..n])?;
        let remote_static: [u8; 32] = self
            .state
            .get_remote_static()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| ChannelError::Handshake("enclave sent no static key".into()))?;
        if !self.state.is_handshake_finished() {
            return Err(ChannelError::Handshake("handshake did not finish".into()));
        }
        let transport = self.state.into_transport_mode().map_err(noise_err)?;
        Ok(PendingSession {
            transport,
            remote_static,
            nonce: self.nonce,
            payload,
        })
    }
}

/// A finished handshake whose evidence has not been checked: it offers no way to send.
pub struct PendingSession {
    transport: snow::TransportState,
    remote_static: [u8; 32],
    /// What this client sent in its hello; the evidence must commit to it.
    nonce: [u8; NONCE_LEN],
    payload: AttestationPayload,
}

/// What the client checked before it sent anything.
#[derive(Clone, Debug)]
pub struct Verified {
    pub verdict: Verdict,
    pub manifest: Manifest,
    pub enclave_static_key: [u8; 32],
    /// The logged release that lists this enclave's measurement.
    pub release: Admitted,
}

/// What a client requires of an enclave beyond the evidence policy.
#[derive(Clone, Debug, Default)]
pub struct Expectations {
    /// When set, the manifest must name a model with this SHA-256.
    pub model_sha256: Option<[u8; 32]>,
}

impl PendingSession {
    pub fn remote_static(&self) -> &[u8; 32] {
        &self.remote_static
    }

    pub fn payload(&self) -> &AttestationPayload {
        &self.payload
    }

    /// The nonce this client sent, which the evidence must commit to.
    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }

    /// Verifies the evidence, its binding to this handshake's static key and to the manifest,
    /// and the manifest against `expect`. The result still cannot send: a logged release must
    /// admit the build first ([`Attested::admit`]).
    pub fn verify(
        self,
        policy: &Policy,
        expect: &Expectations,
        at: UnixTime,
    ) -> Result<Attested, ChannelError> {
        let digest = manifest_digest(&self.payload.manifest);
        let expected_report_data = report_data(&self.remote_static, &digest, &self.nonce);
        let manifest = Manifest::parse(&self.payload.manifest)?;
        let binding = sotto_verify::Binding {
            report_data: expected_report_data,
            gpu_nonce: sotto_verify::gpu_nonce(&self.remote_static),
            gpu_evidence_sha256: manifest.gpu_evidence_sha256.clone(),
        };
        let verdict = sotto_verify::verify(&self.payload.evidence, policy, &binding, at)?;
        if verdict.platform_name() != manifest.platform {
            return Err(ChannelError::Manifest(format!(
                "manifest claims platform {} but evidence is {}",
                manifest.platform,
                verdict.platform_name()
            )));
        }
        if let Some(want) = expect.model_sha256 {
            if manifest.model_sha256()? != want {
                return Err(ChannelError::Manifest(
                    "enclave serves a different model than expected".into(),
                ));
            }
        }
        Ok(Attested {
            transport: self.transport,
            verdict,
            manifest,
            enclave_static_key: self.remote_static,
        })
    }
}

/// An enclave whose evidence and binding verified, not yet matched to a release: still no
/// way to send.
pub struct Attested {
    transport: snow::TransportState,
    verdict: Verdict,
    manifest: Manifest,
    enclave_static_key: [u8; 32],
}

impl Attested {
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The Noise static key the evidence commits to.
    pub fn enclave_static_key(&self) -> &[u8; 32] {
        &self.enclave_static_key
    }

    /// Requires a release of the verified log to list this enclave's measurement, model and
    /// engine; only then does the session become usable.
    pub fn admit(self, releases: &ReleaseSet) -> Result<(Session, Verified), ChannelError> {
        let m = &self.manifest;
        let release = releases.admit(
            &self.verdict,
            &Claims {
                release: &m.release,
                model_sha256: &m.model.sha256,
                model_size: m.model.size,
                engine_name: &m.engine.name,
                engine_version: &m.engine.version,
                engine_context: m.engine.context,
            },
        )?;
        let verified = Verified {
            verdict: self.verdict,
            manifest: self.manifest,
            enclave_static_key: self.enclave_static_key,
            release,
        };
        Ok((Session::new(self.transport), verified))
    }
}

/// The enclave side of the handshake.
pub struct ServerHandshake;

/// A client's hello, read: its nonce is known, the answer not yet sent.
pub struct ServerHello {
    state: snow::HandshakeState,
    nonce: [u8; NONCE_LEN],
}

impl ServerHandshake {
    /// Reads a client's first message: an ephemeral key and the nonce the evidence must
    /// commit to. A hello without exactly that nonce (an older client, or not this protocol)
    /// is refused.
    pub fn read_hello(key: &StaticKey, hello: &[u8]) -> Result<ServerHello, ChannelError> {
        if hello.len() > MAX_FRAME {
            return Err(ChannelError::FrameTooLarge {
                len: hello.len(),
                max: MAX_FRAME,
            });
        }
        let mut state = builder()?
            .local_private_key(&key.private)
            .build_responder()
            .map_err(noise_err)?;
        let mut scratch = vec![0u8; hello.len()];
        let n = state.read_message(hello, &mut scratch).map_err(noise_err)?;
        let nonce: [u8; NONCE_LEN] = scratch[..n].try_into().map_err(|_| {
            ChannelError::Handshake(format!(
                "the client hello carries {n} bytes instead of a {NONCE_LEN}-byte nonce (a \
                 client of another protocol version?)"
            ))
        })?;
        Ok(ServerHello { state, nonce })
    }

    /// [`ServerHandshake::read_hello`], then the answer with the payload `make_payload`
    /// builds for the client's nonce. The session is ready at once (the client speaks first
    /// after verifying).
    pub fn respond(
        key: &StaticKey,
        hello: &[u8],
        make_payload: impl FnOnce(&[u8; NONCE_LEN]) -> Result<Vec<u8>, ChannelError>,
    ) -> Result<(Vec<u8>, Session), ChannelError> {
        let hello = Self::read_hello(key, hello)?;
        let payload = make_payload(hello.nonce())?;
        hello.respond(&payload)
    }
}

impl ServerHello {
    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }

    /// Answers with the attestation payload made for this hello's nonce.
    pub fn respond(mut self, payload: &[u8]) -> Result<(Vec<u8>, Session), ChannelError> {
        let mut msg = vec![0u8; MAX_FRAME];
        let n = self
            .state
            .write_message(payload, &mut msg)
            .map_err(noise_err)?;
        msg.truncate(n);
        let transport = self.state.into_transport_mode().map_err(noise_err)?;
        Ok((msg, Session::new(transport)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_without_exactly_a_nonce_is_refused() {
        let key = StaticKey::generate().unwrap();
        for payload in [&b""[..], b"short", &[7u8; 33]] {
            let mut initiator = builder().unwrap().build_initiator().unwrap();
            let mut hello = vec![0u8; 128];
            let n = initiator.write_message(payload, &mut hello).unwrap();
            let err = ServerHandshake::read_hello(&key, &hello[..n])
                .err()
                .unwrap();
            assert!(err.to_string().contains("nonce"), "{err}");
        }
        let (_, hello) = ClientHandshake::start().unwrap();
        let (_, again) = ClientHandshake::start().unwrap();
        let a = ServerHandshake::read_hello(&key, &hello.0).unwrap();
        let b = ServerHandshake::read_hello(&key, &again.0).unwrap();
        assert_ne!(a.nonce(), b.nonce(), "every handshake has its own nonce");
    }

    #[test]
    fn handshake_and_chunked_transport_round_trip() {
        let key = StaticKey::generate().unwrap();
        let (client, hello) = ClientHandshake::start().unwrap();
        let (reply, mut server) =
            ServerHandshake::respond(&key, &hello.0, |_| Ok(b"attestation".to_vec())).unwrap();
        // The payload here is not a valid AttestationPayload, so the client refuses it...
        assert!(matches!(
            client.read_response(&reply),
            Err(ChannelError::Payload(_))
        ));
        // ...while the server session already encrypts: a message over one Noise frame is split.
        let parts = server.seal(&vec![7u8; 200_000]).unwrap();
        assert_eq!(parts.len(), 4);
        assert!(parts.iter().all(|p| p.len() <= crate::frame::MAX_FRAME));
    }
}
