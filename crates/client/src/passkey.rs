//! What the core asks of an authenticator, and what it gets back. The PRF output is the only
//! secret: it becomes a key-encryption key here and is never sent anywhere.

use zeroize::Zeroizing;

use crate::http::ClientError;

/// A passkey's PRF output for Sotto's salt. No Debug, zeroized when dropped.
pub struct Prf(Zeroizing<[u8; 32]>);

impl Prf {
    pub fn new(bytes: [u8; 32]) -> Self {
        Prf(Zeroizing::new(bytes))
    }

    /// From the bytes a browser hands over; anything but 32 bytes is refused.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ClientError> {
        let b: [u8; 32] = bytes
            .try_into()
            .map_err(|_| ClientError::Protocol("the passkey's PRF output is not 32 bytes"))?;
        Ok(Prf::new(b))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A ceremony for the authenticator: the server's WebAuthn options, Sotto's PRF salt, and (for
/// a new passkey) the label the user gave it.
pub struct PasskeyRequest {
    pub options: serde_json::Value,
    pub salt: [u8; 32],
    pub name: Option<String>,
}

/// A new passkey: the registration response (WebAuthn JSON, no PRF results in it), its id,
/// and its PRF output (evaluated at creation, or by a follow-up local assertion).
pub struct NewPasskey {
    pub credential: serde_json::Value,
    pub credential_id: Vec<u8>,
    pub prf: Prf,
}

/// An assertion: the response (WebAuthn JSON, no PRF results), the credential that made it,
/// and its PRF output when the authenticator has one.
pub struct Assertion {
    pub credential: serde_json::Value,
    pub credential_id: Vec<u8>,
    pub prf: Option<Prf>,
}

/// The relying party a ceremony's options name.
pub fn rp_id_of(options: &serde_json::Value) -> Result<String, ClientError> {
    options
        .pointer("/publicKey/rp/id")
        .or_else(|| options.pointer("/publicKey/rpId"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or(ClientError::Protocol(
            "the server's WebAuthn options name no relying party",
        ))
}
