//! The hybrid post-quantum Noise handshake, bound to enclave evidence.
//!
//! `Noise_NXpsk2_25519_ChaChaPoly_SHA256` with the pre-shared key made by ML-KEM-768
//! ([`crate::pq`]): the client sends an ephemeral X25519 key, a fresh random nonce (it has no
//! long-term identity the enclave could track) and an ephemeral ML-KEM encapsulation key; the
//! enclave answers with an ML-KEM ciphertext, then its ephemeral and static X25519 keys and,
//! encrypted under keys that depend on both key agreements, an [`AttestationPayload`] whose
//! evidence it made for this handshake, over that nonce. The client holds a
//! [`PendingSession`] until [`PendingSession::verify`] has checked the evidence and its binding
//! to the static key and manifest, and then an [`Attested`] until [`Attested::admit`] has found
//! a logged, unrevoked release that lists the measured build; only then does it get a
//! [`Session`] to send on.
//!
//! On the wire: the hello is one Noise message of [`HELLO_LEN`] bytes; the answer is the
//! [`pq::CIPHERTEXT_LEN`]-byte ciphertext followed by the second Noise message.

use serde::{Deserialize, Serialize};
use sotto_release::{Admitted, Claims, ReleaseSet};
use sotto_verify::{Evidence, Policy, Verdict};
use sotto_verify_core::UnixTime;
use zeroize::Zeroizing;

use crate::binding::{manifest_digest, report_data, NONCE_LEN};
use crate::frame::MAX_FRAME;
use crate::manifest::Manifest;
use crate::pq::{self, KemSecret};
use crate::transport::Session;
use crate::ChannelError;

pub const NOISE_PARAMS: &str = "Noise_NXpsk2_25519_ChaChaPoly_SHA256";
/// Mixed into the handshake hash, so a transcript from another protocol or version never
/// completes.
pub const PROLOGUE: &[u8] = b"sotto/channel/v3";
/// Where `NXpsk2` mixes the pre-shared key: at the end of the enclave's message.
const PSK_SLOT: usize = 2;
/// What the client's hello carries inside Noise: the nonce, then the ML-KEM encapsulation key.
const HELLO_PAYLOAD_LEN: usize = NONCE_LEN + pq::PUBLIC_LEN;
const DH_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// The client's hello: its ephemeral X25519 key and the payload, which the psk modifier's
/// `e` (MixKey) already encrypts.
pub const HELLO_LEN: usize = DH_LEN + HELLO_PAYLOAD_LEN + TAG_LEN;
/// The hello of the previous protocol (`Noise_NX`, X25519 only): an ephemeral key and a nonce.
const V2_HELLO_LEN: usize = DH_LEN + NONCE_LEN;

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
    kem: KemSecret,
}

/// The bytes of the client's first handshake message.
pub struct ClientHello(pub Vec<u8>);

impl ClientHandshake {
    pub fn start() -> Result<(Self, ClientHello), ChannelError> {
        let mut state = builder()?.build_initiator().map_err(noise_err)?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce)
            .map_err(|e| ChannelError::Handshake(format!("no randomness for the nonce: {e}")))?;
        let kem = KemSecret::generate();
        let mut payload = Vec::with_capacity(HELLO_PAYLOAD_LEN);
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(kem.public());
        let mut msg = vec![0u8; HELLO_LEN];
        let n = state.write_message(&payload, &mut msg).map_err(noise_err)?;
        msg.truncate(n);
        Ok((ClientHandshake { state, nonce, kem }, ClientHello(msg)))
    }

    /// Reads the enclave's answer. The result is not yet usable for sending.
    pub fn read_response(mut self, message: &[u8]) -> Result<PendingSession, ChannelError> {
        if message.len() > MAX_FRAME {
            return Err(ChannelError::FrameTooLarge {
                len: message.len(),
                max: MAX_FRAME,
            });
        }
        let (ciphertext, message) = message
            .split_first_chunk::<{ pq::CIPHERTEXT_LEN }>()
            .ok_or_else(|| {
                ChannelError::Handshake(format!(
                    "the enclave's answer of {} bytes is too short to start with an ML-KEM-768 \
                     ciphertext (an enclave of an older protocol than {}?)",
                    message.len(),
                    String::from_utf8_lossy(PROLOGUE)
                ))
            })?;
        let psk = self.kem.decapsulate(ciphertext)?;
        self.state.set_psk(PSK_SLOT, &*psk).map_err(noise_err)?;
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
    /// Sent in front of the Noise answer; the key it hides is already set as the psk.
    ciphertext: [u8; pq::CIPHERTEXT_LEN],
}

impl ServerHandshake {
    /// Reads a client's first message: an ephemeral key, the nonce the evidence must commit
    /// to and an ML-KEM encapsulation key. A hello of any other length (an older client, or
    /// not this protocol) is refused before any cryptography.
    pub fn read_hello(key: &StaticKey, hello: &[u8]) -> Result<ServerHello, ChannelError> {
        if hello.len() != HELLO_LEN {
            let older = if hello.len() == V2_HELLO_LEN {
                "a client of protocol sotto/channel/v2, which has no post-quantum key agreement"
            } else {
                "a client of another protocol version?"
            };
            return Err(ChannelError::Handshake(format!(
                "the client hello is {} bytes, not the {HELLO_LEN} of {} ({older})",
                hello.len(),
                String::from_utf8_lossy(PROLOGUE)
            )));
        }
        let mut state = builder()?
            .local_private_key(&key.private)
            .build_responder()
            .map_err(noise_err)?;
        let mut scratch = Zeroizing::new(vec![0u8; hello.len()]);
        let n = state.read_message(hello, &mut scratch).map_err(noise_err)?;
        let (nonce, public) = scratch[..n]
            .split_first_chunk::<NONCE_LEN>()
            .and_then(|(nonce, rest)| Some((*nonce, rest.try_into().ok()?)))
            .ok_or_else(|| {
                ChannelError::Handshake(format!(
                    "the client hello carries {n} bytes instead of a {NONCE_LEN}-byte nonce and \
                     a {}-byte ML-KEM key",
                    pq::PUBLIC_LEN
                ))
            })?;
        let (ciphertext, psk) = pq::encapsulate(public)?;
        state.set_psk(PSK_SLOT, &*psk).map_err(noise_err)?;
        Ok(ServerHello {
            state,
            nonce,
            ciphertext,
        })
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

    /// Answers with the ML-KEM ciphertext and the Noise message carrying the attestation
    /// payload made for this hello's nonce.
    pub fn respond(mut self, payload: &[u8]) -> Result<(Vec<u8>, Session), ChannelError> {
        let mut msg = vec![0u8; MAX_FRAME];
        msg[..pq::CIPHERTEXT_LEN].copy_from_slice(&self.ciphertext);
        let n = self
            .state
            .write_message(payload, &mut msg[pq::CIPHERTEXT_LEN..])
            .map_err(noise_err)?;
        msg.truncate(pq::CIPHERTEXT_LEN + n);
        let transport = self.state.into_transport_mode().map_err(noise_err)?;
        Ok((msg, Session::new(transport)))
    }
}

/// Two ends of a finished handshake, for tests of the transport alone.
#[cfg(test)]
pub(crate) fn session_pair() -> (Session, Session) {
    let mut initiator = builder().unwrap().build_initiator().unwrap();
    let key = StaticKey::generate().unwrap();
    let mut responder = builder()
        .unwrap()
        .local_private_key(&key.private)
        .build_responder()
        .unwrap();
    for end in [&mut initiator, &mut responder] {
        end.set_psk(PSK_SLOT, &[7; 32]).unwrap();
    }
    let mut buf = vec![0u8; MAX_FRAME];
    let mut out = vec![0u8; MAX_FRAME];
    let n = initiator.write_message(&[], &mut buf).unwrap();
    responder.read_message(&buf[..n], &mut out).unwrap();
    let n = responder.write_message(&[], &mut buf).unwrap();
    initiator.read_message(&buf[..n], &mut out).unwrap();
    (
        Session::new(initiator.into_transport_mode().unwrap()),
        Session::new(responder.into_transport_mode().unwrap()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hello a client of the previous protocol (X25519-only `Noise_NX`) sends.
    fn v2_hello() -> Vec<u8> {
        let params = "Noise_NX_25519_ChaChaPoly_SHA256".parse().unwrap();
        let mut initiator = snow::Builder::new(params)
            .prologue(b"sotto/channel/v2")
            .build_initiator()
            .unwrap();
        let mut hello = vec![0u8; 128];
        let n = initiator
            .write_message(&[9u8; NONCE_LEN], &mut hello)
            .unwrap();
        hello.truncate(n);
        hello
    }

    #[test]
    fn a_hello_of_another_protocol_is_refused_by_name() {
        let key = StaticKey::generate().unwrap();
        let err = ServerHandshake::read_hello(&key, &v2_hello())
            .err()
            .unwrap();
        assert!(err.to_string().contains("sotto/channel/v2"), "{err}");
        let (_, hello) = ClientHandshake::start().unwrap();
        assert_eq!(hello.0.len(), HELLO_LEN);
        for len in [0, 1, HELLO_LEN - 1, HELLO_LEN + 1] {
            let mut other = hello.0.clone();
            other.resize(len, 0);
            let err = ServerHandshake::read_hello(&key, &other).err().unwrap();
            assert!(
                err.to_string().contains("another protocol version"),
                "{err}"
            );
        }
        let mut flipped = hello.0.clone();
        flipped[DH_LEN + 3] ^= 1;
        assert!(matches!(
            ServerHandshake::read_hello(&key, &flipped),
            Err(ChannelError::Handshake(_))
        ));
        let (_, again) = ClientHandshake::start().unwrap();
        let a = ServerHandshake::read_hello(&key, &hello.0).unwrap();
        let b = ServerHandshake::read_hello(&key, &again.0).unwrap();
        assert_ne!(a.nonce(), b.nonce(), "every handshake has its own nonce");
    }

    #[test]
    fn an_answer_without_the_kem_ciphertext_or_with_another_is_refused() {
        let key = StaticKey::generate().unwrap();
        let (client, hello) = ClientHandshake::start().unwrap();
        let (reply, _) = ServerHandshake::respond(&key, &hello.0, |_| Ok(vec![1])).unwrap();
        let err = client.read_response(&reply[..200]).err().unwrap();
        assert!(err.to_string().contains("ML-KEM-768 ciphertext"), "{err}");

        // The X25519 half alone is not enough: an answer whose ciphertext was swapped (so the
        // psk differs) does not decrypt.
        let (client, hello) = ClientHandshake::start().unwrap();
        let (mut reply, _) = ServerHandshake::respond(&key, &hello.0, |_| Ok(vec![1])).unwrap();
        reply[100] ^= 1;
        assert!(matches!(
            client.read_response(&reply),
            Err(ChannelError::Handshake(_))
        ));
    }

    #[test]
    fn both_key_agreements_feed_the_transport_keys() {
        let key = StaticKey::generate().unwrap();
        let (client, hello) = ClientHandshake::start().unwrap();
        let mut server = ServerHandshake::read_hello(&key, &hello.0).unwrap();
        // An enclave that encapsulated to some other key (a relay that replaced the client's
        // ML-KEM key, say) holds a different psk, and the client cannot read its answer.
        let stranger = KemSecret::generate();
        let (ciphertext, psk) = pq::encapsulate(stranger.public()).unwrap();
        server.ciphertext = ciphertext;
        server.state.set_psk(PSK_SLOT, &*psk).unwrap();
        let (reply, _) = server.respond(b"attestation").unwrap();
        assert!(matches!(
            client.read_response(&reply),
            Err(ChannelError::Handshake(_))
        ));
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
