//! A software passkey for Sotto's CLI: a WebAuthn authenticator with the PRF extension
//! (CTAP2 hmac-secret), whose credentials live in one file in the user's config directory.
//!
//! The ceremonies are run by 1Password's `passkey` crates (client + authenticator); this
//! crate supplies the credential storage ([`Keyring`]), the file format, and the glue that
//! turns a relying party's JSON options into the JSON response a WebAuthn server
//! (webauthn-rs) verifies. The PRF output stays on this side: it is removed from the JSON
//! response and handed to the caller separately, to unlock the vault.
//!
//! What this authenticator is, honestly:
//! - **Storage.** Credentials (P-256 private keys and hmac-secret seeds) are kept in a file
//!   with 0600 permissions. Without a passphrase they are stored *in the clear* in that file,
//!   like an unencrypted ssh key: anyone who can read the file can use the passkey and derive
//!   its PRF outputs. With a passphrase the credential list is sealed with
//!   XChaCha20-Poly1305 under a key derived by Argon2id.
//! - **User verification.** The authenticator reports user verification (the UV flag) as
//!   performed on every ceremony. The "verification" is that the caller could open the
//!   keyring: knowing its passphrase, or being the OS user allowed to read the 0600 file.
//!   There is no biometric or PIN; a relying party that trusts UV trusts exactly that.
//! - **Signature counter.** Each credential has a counter that increases on every assertion
//!   (including local [`Keyring::prf`] evaluations). The counter lives in the [`Keyring`] in
//!   memory: the caller must [`Keyring::save`] after each ceremony, or the next ceremony
//!   reuses an old counter value and a server checking counters will refuse it.
//! - **Origins.** `https` origins are accepted for their registrable domain; plain `http` is
//!   accepted only for `localhost` (rp id `localhost`). IP-literal origins such as
//!   `http://127.0.0.1` are refused by the WebAuthn client (an IP address cannot be an RP ID,
//!   in browsers either).
//!
//! Inputs this crate may not trust: the keyring file (any content is parsed without panic and
//! refused with a precise error), and the relying party's options (validated by the WebAuthn
//! client; the rp id must match the origin).

mod ceremony;
mod credential;
mod error;
mod file;

pub use ceremony::{Assertion, PrfOutput, Registration};
pub use credential::CredentialInfo;
pub use error::Error;
pub use file::{FORMAT_NAME, FORMAT_VERSION};

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// `N` bytes from the operating system's random source.
fn random<const N: usize>() -> Result<[u8; N]> {
    use rand_core::RngCore as _;
    let mut bytes = [0u8; N];
    rand_core::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| Error::Random {
            reason: e.to_string(),
        })?;
    Ok(bytes)
}

/// The set of software passkeys kept in one keyring file.
///
/// Secrets (private keys, hmac-secret seeds) are zeroized when the keyring is dropped.
/// There is deliberately no `Debug`: use [`Keyring::credentials`] for a secret-free listing.
#[derive(Default)]
pub struct Keyring {
    credentials: Vec<credential::Credential>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// A secret-free description of each credential, in the order they were created.
    pub fn credentials(&self) -> Vec<CredentialInfo> {
        self.credentials.iter().map(CredentialInfo::from).collect()
    }

    /// Forget the credential with this rp id and credential id. Returns whether one was removed.
    ///
    /// The server still knows the credential; removing it here only makes it unusable from
    /// this keyring (and its PRF output underivable), so wrapped vault keys under it are lost.
    pub fn remove(&mut self, rp_id: &str, credential_id: &[u8]) -> bool {
        let before = self.credentials.len();
        self.credentials
            .retain(|c| !(c.rp_id == rp_id && c.credential_id == credential_id));
        self.credentials.len() != before
    }
}
