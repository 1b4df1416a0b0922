//! The key hierarchy. A random vault key is the root of a user's history; passkeys and the
//! recovery code never encrypt history themselves, they only wrap the vault key, so adding or
//! removing a way in never re-encrypts anything. Every derivation is domain-separated and bound
//! to the account (and, for passkeys, to the credential id), so a wrapped key cannot be moved
//! between accounts or credentials.

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::VaultError;

const HKDF_SALT: &[u8] = b"sotto/vault/v1";

/// The PRF input every Sotto client sends (`prf.eval.first`). One fixed salt lets a discoverable
/// sign-in evaluate the PRF before the client knows which credential the user will pick; the
/// credential id is bound in later, by the HKDF info.
pub fn prf_salt() -> [u8; 32] {
    Sha256::digest(b"sotto/webauthn-prf-salt/v1").into()
}

pub(crate) fn random32() -> Result<Zeroizing<[u8; 32]>, VaultError> {
    let mut k = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(k.as_mut()).map_err(|_| VaultError::Randomness)?;
    Ok(k)
}

/// Concatenates length-prefixed parts so that no two different part lists give the same bytes.
pub(crate) fn framed(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

pub(crate) fn derive(ikm: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    let info = framed(info);
    // HKDF-SHA256 can produce up to 8160 bytes; 32 never fails.
    let _ = Hkdf::<Sha256>::new(Some(HKDF_SALT), ikm).expand(&info, out.as_mut());
    out
}

/// The root key of an account's history. Never leaves a client unwrapped.
pub struct VaultKey(pub(crate) Zeroizing<[u8; 32]>);

/// The constructors the 32-byte secret key types share: fresh randomness, or exactly 32 bytes
/// unwrapped from storage.
macro_rules! key_constructors {
    ($key:ident) => {
        impl $key {
            pub fn generate() -> Result<Self, VaultError> {
                random32().map($key)
            }

            pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, VaultError> {
                let arr: [u8; 32] = bytes.try_into().map_err(|_| VaultError::BadKeyLength)?;
                Ok($key(Zeroizing::new(arr)))
            }
        }
    };
}

key_constructors!(VaultKey);

/// A key-encryption key: unwraps the vault key and nothing else.
pub struct Kek(pub(crate) Zeroizing<[u8; 32]>);

impl Kek {
    /// From a passkey's PRF output. The credential id is part of the derivation so that one
    /// passkey's wrapping can never be presented as another's.
    pub fn from_prf(prf_output: &[u8; 32], account: &str, credential_id: &[u8]) -> Self {
        Kek(derive(
            prf_output,
            &[b"kek/passkey", account.as_bytes(), credential_id],
        ))
    }
}

/// The key of one conversation, wrapped by the vault key; destroying its wrapping destroys the
/// conversation (crypto-shredding), even in backups that kept the ciphertext.
pub struct ConversationKey(pub(crate) Zeroizing<[u8; 32]>);

key_constructors!(ConversationKey);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passkey_keks_are_bound_to_account_and_credential() {
        let prf = [7u8; 32];
        let a = Kek::from_prf(&prf, "acct-a", b"cred-1");
        assert_eq!(*a.0, *Kek::from_prf(&prf, "acct-a", b"cred-1").0);
        assert_ne!(*a.0, *Kek::from_prf(&prf, "acct-b", b"cred-1").0);
        assert_ne!(*a.0, *Kek::from_prf(&prf, "acct-a", b"cred-2").0);
        assert_ne!(*a.0, *Kek::from_prf(&[8u8; 32], "acct-a", b"cred-1").0);
        // Length framing: moving a byte across the boundary changes the key.
        assert_ne!(
            *Kek::from_prf(&prf, "acct-ac", b"red").0,
            *Kek::from_prf(&prf, "acct-a", b"cred").0
        );
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(
            *VaultKey::generate().unwrap().0,
            *VaultKey::generate().unwrap().0
        );
    }
}
