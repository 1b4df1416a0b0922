//! c2sp.org/signed-note: text signed by one or more keys, with Ed25519 note signatures (type
//! 0x01) and c2sp.org/tlog-cosignature `cosignature/v1` timestamped cosignatures (type 0x04).
//!
//! A note's text means nothing until a signature by a key the caller trusts has verified.
//! Signature lines from unknown keys are ignored, as the spec requires; a line from a known key
//! that does not verify makes the whole note malformed.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Signature type of plain Ed25519 note signatures.
pub const TYPE_ED25519: u8 = 0x01;
/// Signature type of `cosignature/v1` timestamped Ed25519 cosignatures.
pub const TYPE_COSIGNATURE_V1: u8 = 0x04;
/// Notes larger than this are refused before parsing.
pub const MAX_NOTE: usize = 1 << 20;
/// More signature lines than this are refused (the spec requires at least 16).
pub const MAX_SIGNATURES: usize = 128;

const DASH: &str = "\u{2014} ";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("note of more than {MAX_NOTE} bytes")]
    TooLarge,
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("malformed key: {0}")]
    Key(&'static str),
    #[error("the signature by {name} (a trusted key) does not verify")]
    BadSignature { name: String },
    #[error("a {0} key cannot make this kind of signature")]
    WrongKeyType(&'static str),
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && !name.chars().any(char::is_whitespace)
}

fn valid_text(text: &str) -> bool {
    text.ends_with('\n') && !text.chars().any(|c| c < ' ' && c != '\n')
}

/// The key ID the spec recommends: `SHA-256(name || "\n" || type || public key)[:4]`.
pub fn key_id(name: &str, kind: u8, public: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', kind]);
    h.update(public);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// One `— name base64(key id || signature)` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureLine {
    pub name: String,
    pub key_id: u32,
    pub signature: Vec<u8>,
}

impl SignatureLine {
    pub fn to_line(&self) -> String {
        let mut raw = self.key_id.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.signature);
        format!("{DASH}{} {}\n", self.name, B64.encode(raw))
    }

    /// Parses one line without its newline.
    pub fn parse(line: &str) -> Result<Self, NoteError> {
        let rest = line.strip_prefix(DASH).ok_or(NoteError::Malformed(
            "signature line does not start with an em dash",
        ))?;
        let (name, sig) = rest
            .split_once(' ')
            .ok_or(NoteError::Malformed("signature line has no signature"))?;
        if !valid_name(name) {
            return Err(NoteError::Malformed("bad key name in a signature line"));
        }
        let raw = B64
            .decode(sig)
            .map_err(|_| NoteError::Malformed("signature is not base64"))?;
        if raw.len() < 5 {
            return Err(NoteError::Malformed("signature too short"));
        }
        Ok(SignatureLine {
            name: name.to_string(),
            key_id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
            signature: raw[4..].to_vec(),
        })
    }
}

/// Parses signature lines only (a witness's add-checkpoint answer).
pub fn parse_signature_lines(body: &[u8]) -> Result<Vec<SignatureLine>, NoteError> {
    if body.len() > MAX_NOTE {
        return Err(NoteError::TooLarge);
    }
    let body = std::str::from_utf8(body).map_err(|_| NoteError::Malformed("not UTF-8"))?;
    if !body.ends_with('\n') {
        return Err(NoteError::Malformed(
            "signature lines do not end in a newline",
        ));
    }
    let lines: Vec<&str> = body[..body.len() - 1].split('\n').collect();
    if lines.len() > MAX_SIGNATURES {
        return Err(NoteError::Malformed("too many signatures"));
    }
    lines.into_iter().map(SignatureLine::parse).collect()
}

/// A signed note: its text (ending in a newline) and its signature lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<SignatureLine>,
}

/// A signature that verified, by which trusted key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub name: String,
    pub key_id: u32,
    pub kind: u8,
    /// The cosignature's time (POSIX seconds); `None` for plain signatures.
    pub timestamp: Option<u64>,
}

impl Note {
    /// An unsigned note over `text`, which must end in a newline and hold no control
    /// characters other than newlines.
    pub fn new(text: impl Into<String>) -> Result<Self, NoteError> {
        let text = text.into();
        if !valid_text(&text) {
            return Err(NoteError::Malformed(
                "note text must end in a newline and hold no control characters",
            ));
        }
        if text.len() > MAX_NOTE {
            return Err(NoteError::TooLarge);
        }
        Ok(Note {
            text,
            signatures: Vec::new(),
        })
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, NoteError> {
        if bytes.len() > MAX_NOTE {
            return Err(NoteError::TooLarge);
        }
        let s = std::str::from_utf8(bytes).map_err(|_| NoteError::Malformed("not UTF-8"))?;
        if !valid_text(s) {
            return Err(NoteError::Malformed(
                "control characters, or no final newline",
            ));
        }
        let split = s
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let text = &s[..split + 1];
        let block = &s[split + 2..];
        if block.is_empty() {
            return Err(NoteError::Malformed("no signatures"));
        }
        let signatures = parse_signature_lines(block.as_bytes())?;
        Ok(Note {
            text: text.to_string(),
            signatures,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn signatures(&self) -> &[SignatureLine] {
        &self.signatures
    }

    /// Adds a signature line; an identical one already present is not repeated.
    pub fn add_signature(&mut self, line: SignatureLine) {
        if !self.signatures.contains(&line) {
            self.signatures.push(line);
        }
    }

    /// Drops every signature by the key with this name and ID (e.g. a stale cosignature).
    pub fn remove_signatures_by(&mut self, name: &str, key_id: u32) {
        self.signatures
            .retain(|s| !(s.name == name && s.key_id == key_id));
    }

    /// The note as served: text, blank line, signature lines.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.text.clone();
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.to_line());
        }
        out.into_bytes()
    }

    /// Verifies every signature line made by one of `trusted`; ignores the others. Fails if a
    /// trusted key's line does not verify. Returns the keys whose signatures verified (it may
    /// be empty: the caller decides how many it needs).
    pub fn verify(&self, trusted: &[Verifier]) -> Result<Vec<Verified>, NoteError> {
        let mut out: Vec<Verified> = Vec::new();
        for line in &self.signatures {
            let Some(v) = trusted
                .iter()
                .find(|v| v.name == line.name && v.key_id == line.key_id)
            else {
                continue;
            };
            let timestamp =
                v.check(&self.text, &line.signature)
                    .ok_or_else(|| NoteError::BadSignature {
                        name: line.name.clone(),
                    })?;
            let verified = Verified {
                name: v.name.clone(),
                key_id: v.key_id,
                kind: v.kind,
                timestamp,
            };
            // A key counts once, with its newest cosignature.
            match out
                .iter_mut()
                .find(|o| o.name == verified.name && o.key_id == verified.key_id)
            {
                Some(o) if o.timestamp < verified.timestamp => *o = verified,
                Some(_) => {}
                None => out.push(verified),
            }
        }
        Ok(out)
    }
}

fn cosigned_message(text: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{text}").into_bytes()
}

/// A public key a note may be signed with, as a `name+hexid+base64(type||key)` vkey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key_id: u32,
    kind: u8,
    key: VerifyingKey,
}

impl Verifier {
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::Key("a vkey is name+id+key"));
        };
        if !valid_name(name) {
            return Err(NoteError::Key("bad key name"));
        }
        if id.len() != 8 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(NoteError::Key("the key ID is not 8 lower-case hex digits"));
        }
        let id = u32::from_str_radix(id, 16).map_err(|_| NoteError::Key("bad key ID"))?;
        let raw = B64
            .decode(key)
            .map_err(|_| NoteError::Key("key is not base64"))?;
        let (&kind, public) = raw.split_first().ok_or(NoteError::Key("empty key"))?;
        if kind != TYPE_ED25519 && kind != TYPE_COSIGNATURE_V1 {
            return Err(NoteError::Key("unsupported signature type"));
        }
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| NoteError::Key("an Ed25519 key is 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| NoteError::Key("not an Ed25519 point"))?;
        if key_id(name, kind, &public) != id {
            return Err(NoteError::Key("the key ID does not match the key"));
        }
        Ok(Verifier {
            name: name.to_string(),
            key_id: id,
            kind,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn kind(&self) -> u8 {
        self.kind
    }

    pub fn to_vkey(&self) -> String {
        let mut raw = vec![self.kind];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, B64.encode(raw))
    }

    /// `Some(timestamp)` (`Some(None)` for a plain signature) when the signature verifies.
    fn check(&self, text: &str, signature: &[u8]) -> Option<Option<u64>> {
        match self.kind {
            TYPE_ED25519 => {
                let sig = ed25519_dalek::Signature::from_slice(signature).ok()?;
                self.key.verify_strict(text.as_bytes(), &sig).ok()?;
                Some(None)
            }
            TYPE_COSIGNATURE_V1 => {
                let (ts, sig) = signature.split_first_chunk::<8>()?;
                let ts = u64::from_be_bytes(*ts);
                if ts > i64::MAX as u64 {
                    return None;
                }
                let sig = ed25519_dalek::Signature::from_slice(sig).ok()?;
                self.key
                    .verify_strict(&cosigned_message(text, ts), &sig)
                    .ok()?;
                Some(Some(ts))
            }
            _ => None,
        }
    }
}

/// A private key that signs notes: a log's or a release key's (type 0x01) or a witness's
/// (type 0x04). It never prints its secret; [`Signer::to_skey`] is the one way out, zeroized.
pub struct Signer {
    name: String,
    kind: u8,
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A key from 32 random bytes the caller drew (this crate has no randomness of its own).
    pub fn from_seed(name: &str, kind: u8, seed: &[u8; 32]) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::Key("bad key name"));
        }
        if kind != TYPE_ED25519 && kind != TYPE_COSIGNATURE_V1 {
            return Err(NoteError::Key("unsupported signature type"));
        }
        Ok(Signer {
            name: name.to_string(),
            kind,
            key: SigningKey::from_bytes(seed),
        })
    }

    /// Parses `PRIVATE+KEY+name+hexid+base64(type||seed)`, the format Go's note package
    /// uses for signer keys.
    pub fn parse(skey: &str) -> Result<Self, NoteError> {
        let rest = skey
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::Key("a signer key starts with PRIVATE+KEY+"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::Key("a signer key is PRIVATE+KEY+name+id+key"));
        };
        let raw = Zeroizing::new(
            B64.decode(key)
                .map_err(|_| NoteError::Key("key is not base64"))?,
        );
        let (&kind, seed) = raw.split_first().ok_or(NoteError::Key("empty key"))?;
        let seed: &[u8; 32] = seed
            .try_into()
            .map_err(|_| NoteError::Key("an Ed25519 seed is 32 bytes"))?;
        let signer = Signer::from_seed(name, kind, seed)?;
        if format!("{:08x}", signer.key_id()) != id {
            return Err(NoteError::Key("the key ID does not match the key"));
        }
        Ok(signer)
    }

    pub fn to_skey(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new(vec![self.kind]);
        raw.extend_from_slice(self.key.as_bytes());
        Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id(),
            B64.encode(raw.as_slice())
        ))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        key_id(&self.name, self.kind, self.key.verifying_key().as_bytes())
    }

    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            key_id: self.key_id(),
            kind: self.kind,
            key: self.key.verifying_key(),
        }
    }

    /// An Ed25519 note signature over `text` (type 0x01 keys only).
    pub fn sign(&self, text: &str) -> Result<SignatureLine, NoteError> {
        if self.kind != TYPE_ED25519 {
            return Err(NoteError::WrongKeyType("cosignature"));
        }
        Ok(SignatureLine {
            name: self.name.clone(),
            key_id: self.key_id(),
            signature: self.key.sign(text.as_bytes()).to_bytes().to_vec(),
        })
    }

    /// A `cosignature/v1` over a checkpoint's text as of `timestamp` (type 0x04 keys only).
    pub fn cosign(&self, text: &str, timestamp: u64) -> Result<SignatureLine, NoteError> {
        if self.kind != TYPE_COSIGNATURE_V1 {
            return Err(NoteError::WrongKeyType("note-signing"));
        }
        if timestamp > i64::MAX as u64 {
            return Err(NoteError::Malformed("timestamp above 2^63-1"));
        }
        let mut signature = timestamp.to_be_bytes().to_vec();
        signature.extend_from_slice(&self.key.sign(&cosigned_message(text, timestamp)).to_bytes());
        Ok(SignatureLine {
            name: self.name.clone(),
            key_id: self.key_id(),
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_verifies() {
        let v = Verifier::parse(
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        )
        .unwrap();
        let note = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
        let n = Note::parse(note.as_bytes()).unwrap();
        assert_eq!(n.text(), "This is an example message.\n");
        let ok = n.verify(std::slice::from_ref(&v)).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(n.to_bytes(), note.as_bytes());
        assert_eq!(
            v.to_vkey(),
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
        );
        let tampered = note.replace("example message", "exemple message");
        let err = Note::parse(tampered.as_bytes()).unwrap().verify(&[v]);
        assert!(matches!(err, Err(NoteError::BadSignature { .. })));
    }

    #[test]
    fn cosignatures_carry_their_time_and_unknown_keys_are_ignored() {
        let log = Signer::from_seed("example.com/log", TYPE_ED25519, &[1; 32]).unwrap();
        let w = Signer::from_seed("witness.example/w1", TYPE_COSIGNATURE_V1, &[2; 32]).unwrap();
        let stranger = Signer::from_seed("example.com/log", TYPE_ED25519, &[3; 32]).unwrap();
        let text = "example.com/log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let mut n = Note::new(text).unwrap();
        n.add_signature(log.sign(text).unwrap());
        n.add_signature(stranger.sign(text).unwrap());
        n.add_signature(w.cosign(text, 1_700_000_000).unwrap());
        n.add_signature(w.cosign(text, 1_700_000_100).unwrap());
        let parsed = Note::parse(&n.to_bytes()).unwrap();
        let got = parsed.verify(&[log.verifier(), w.verifier()]).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].timestamp, Some(1_700_000_100));
        assert!(w.sign(text).is_err());
        assert!(log.cosign(text, 1).is_err());
        let vk = Verifier::parse(&w.verifier().to_vkey()).unwrap();
        assert_eq!(vk, w.verifier());
        let back = Signer::parse(&w.to_skey()).unwrap();
        assert_eq!(back.verifier(), w.verifier());
        assert!(!format!("{back:?}").contains(&w.to_skey()[12..]));
    }

    #[test]
    fn malformed_notes_are_refused() {
        for bad in [
            &b"no blank line\n\xe2\x80\x94 a AAAAAAA=\n"[..],
            b"text\n\n",
            b"text\n\n\xe2\x80\x94 a AAAAAAA=",
            b"te\x01xt\n\n\xe2\x80\x94 a AAAAAAA=\n",
            b"text\n\n- a AAAAAAA=\n",
            b"text\n\n\xe2\x80\x94 a+b AAAAAAA=\n",
            b"text\n\n\xe2\x80\x94 a AAAA\n",
            b"\xff\n\n\xe2\x80\x94 a AAAAAAA=\n",
        ] {
            assert!(
                Note::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(Note::new("no newline").is_err());
        for bad in [
            "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U",
            "example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            "example.com/foo",
        ] {
            assert!(Verifier::parse(bad).is_err(), "{bad}");
        }
    }
}
