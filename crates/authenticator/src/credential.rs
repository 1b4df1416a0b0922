//! One software passkey: its in-memory form, its form in the keyring file, and the
//! conversions to and from the `passkey` crates' `Passkey`.
//!
//! The file form is untrusted: every field is decoded and checked (base64url, lengths, the
//! private key really being a P-256 key, the hmac-secret seed being 32 bytes) before a
//! [`Credential`] exists, so the ceremonies can rely on a well-formed credential.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use passkey_crypto::coset::iana::{self, EnumI64 as _};
use passkey_crypto::coset::{CoseKey, KeyType, Label, RegisteredLabelWithPrivate};
use passkey_crypto::rust_crypto::RustCryptoSecretKey;
use passkey_crypto::{Pkcs8 as _, SecretKeyT as _};
use passkey_types::{CredentialExtensions, Passkey, StoredHmacSecret};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of the hmac-secret seed (CredRandom) the authenticator generates.
pub(crate) const HMAC_SECRET_LEN: usize = 32;
/// WebAuthn bounds a credential id to 1023 bytes; the authenticator makes at least 16.
const CREDENTIAL_ID_LEN: std::ops::RangeInclusive<usize> = 16..=1023;
/// WebAuthn bounds a user handle to 64 bytes, and it may not be empty.
const USER_HANDLE_LEN: std::ops::RangeInclusive<usize> = 1..=64;

/// A credential held in memory. Secrets zeroize on drop; no `Debug`.
pub(crate) struct Credential {
    pub rp_id: String,
    pub credential_id: Vec<u8>,
    pub user_handle: Vec<u8>,
    pub user_name: String,
    /// PKCS#8 DER of the P-256 private key.
    pub private_key: Zeroizing<Vec<u8>>,
    pub counter: u32,
    /// CredRandom used when user verification was performed (always, for this authenticator).
    pub hmac_secret: Zeroizing<Vec<u8>>,
    pub label: String,
    /// Seconds since the Unix epoch, as given by the caller at registration.
    pub created_at: u64,
}

/// A secret-free description of one credential in a keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialInfo {
    /// The relying party id the credential is bound to.
    pub rp_id: String,
    /// The credential id the relying party knows it by.
    pub credential_id: Vec<u8>,
    /// The relying party's user handle (for webauthn-rs: the user's UUID bytes).
    pub user_handle: Vec<u8>,
    /// The user name the relying party gave at registration.
    pub user_name: String,
    /// The caller's label for this credential.
    pub label: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
    /// The signature counter the next assertion will exceed.
    pub counter: u32,
}

impl From<&Credential> for CredentialInfo {
    fn from(c: &Credential) -> Self {
        Self {
            rp_id: c.rp_id.clone(),
            credential_id: c.credential_id.clone(),
            user_handle: c.user_handle.clone(),
            user_name: c.user_name.clone(),
            label: c.label.clone(),
            created_at: c.created_at,
            counter: c.counter,
        }
    }
}

impl Credential {
    /// Rebuild the `passkey` crates' view of this credential for one ceremony.
    pub(crate) fn to_passkey(&self) -> Result<Passkey, String> {
        let key = RustCryptoSecretKey::from_pkcs8(&self.private_key)
            .map_err(|e| format!("private key does not parse: {e}"))?
            .to_cose_key();
        Ok(Passkey {
            key,
            credential_id: self.credential_id.clone().into(),
            rp_id: self.rp_id.clone(),
            user_handle: Some(self.user_handle.clone().into()),
            username: Some(self.user_name.clone()),
            user_display_name: None,
            counter: Some(self.counter),
            extensions: CredentialExtensions {
                hmac_secret: Some(StoredHmacSecret {
                    cred_with_uv: self.hmac_secret.to_vec(),
                    cred_without_uv: None,
                }),
            },
        })
    }

    /// Keep a credential the authenticator just made, refusing anything this keyring could not
    /// use later (another algorithm, no user handle, no hmac-secret seed).
    pub(crate) fn from_new_passkey(
        passkey: &Passkey,
        label: &str,
        created_at: u64,
    ) -> Result<Self, String> {
        check_p256(&passkey.key)?;
        let private_key = Zeroizing::new(
            RustCryptoSecretKey::from_cose_key(&passkey.key)
                .map_err(|e| format!("private key does not convert: {e:?}"))?
                .to_pkcs8()
                .map_err(|e| format!("private key does not encode as PKCS#8: {e}"))?,
        );
        let user_handle = passkey
            .user_handle
            .as_ref()
            .map(|h| h.to_vec())
            .ok_or("the credential has no user handle (not discoverable)")?;
        let hmac_secret = passkey
            .extensions
            .hmac_secret
            .as_ref()
            .map(|s| Zeroizing::new(s.cred_with_uv.clone()))
            .ok_or("the credential has no hmac-secret seed (PRF unavailable)")?;
        let credential = Self {
            rp_id: passkey.rp_id.clone(),
            credential_id: passkey.credential_id.to_vec(),
            user_handle,
            user_name: passkey.username.clone().unwrap_or_default(),
            private_key,
            counter: passkey.counter.unwrap_or(0),
            hmac_secret,
            label: label.to_owned(),
            created_at,
        };
        credential.check_shape()?;
        Ok(credential)
    }

    fn check_shape(&self) -> Result<(), String> {
        if self.rp_id.is_empty() {
            return Err("rp_id is empty".into());
        }
        let within = |field: &str, len: usize, range: &std::ops::RangeInclusive<usize>| {
            if range.contains(&len) {
                return Ok(());
            }
            let (start, end) = (range.start(), range.end());
            Err(format!("{field} is {len} bytes, outside {start}..={end}"))
        };
        within(
            "credential_id",
            self.credential_id.len(),
            &CREDENTIAL_ID_LEN,
        )?;
        within("user_handle", self.user_handle.len(), &USER_HANDLE_LEN)?;
        if self.hmac_secret.len() != HMAC_SECRET_LEN {
            return Err(format!(
                "hmac_secret is {} bytes, expected {HMAC_SECRET_LEN}",
                self.hmac_secret.len()
            ));
        }
        Ok(())
    }

    /// The file form of this credential.
    pub(crate) fn to_stored(&self) -> StoredCredential {
        StoredCredential {
            rp_id: self.rp_id.clone(),
            credential_id: URL_SAFE_NO_PAD.encode(&self.credential_id),
            user_handle: URL_SAFE_NO_PAD.encode(&self.user_handle),
            user_name: self.user_name.clone(),
            private_key_pkcs8: URL_SAFE_NO_PAD.encode(self.private_key.as_slice()),
            counter: self.counter,
            hmac_secret: URL_SAFE_NO_PAD.encode(self.hmac_secret.as_slice()),
            label: self.label.clone(),
            created_at: self.created_at,
        }
    }

    /// Decode and check the file form of a credential.
    pub(crate) fn from_stored(stored: &StoredCredential) -> Result<Self, String> {
        let credential = Self {
            rp_id: stored.rp_id.clone(),
            credential_id: decode_field("credential_id", &stored.credential_id)?,
            user_handle: decode_field("user_handle", &stored.user_handle)?,
            user_name: stored.user_name.clone(),
            private_key: Zeroizing::new(decode_field(
                "private_key_pkcs8",
                &stored.private_key_pkcs8,
            )?),
            counter: stored.counter,
            hmac_secret: Zeroizing::new(decode_field("hmac_secret", &stored.hmac_secret)?),
            label: stored.label.clone(),
            created_at: stored.created_at,
        };
        credential.check_shape()?;
        let key = RustCryptoSecretKey::from_pkcs8(&credential.private_key)
            .map_err(|e| format!("private_key_pkcs8 is not a PKCS#8 private key: {e}"))?;
        check_p256(&key.to_cose_key()).map_err(|e| format!("private_key_pkcs8: {e}"))?;
        Ok(credential)
    }
}

fn decode_field(name: &str, value: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|e| format!("{name} is not unpadded base64url: {e}"))
}

/// The keyring promises P-256 (ES256) keys; anything else is refused rather than carried.
fn check_p256(key: &CoseKey) -> Result<(), String> {
    if key.kty != KeyType::Assigned(iana::KeyType::EC2) {
        return Err("key is not an EC2 key".into());
    }
    if key.alg != Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ES256)) {
        return Err("key algorithm is not ES256".into());
    }
    let crv_label = Label::Int(iana::Ec2KeyParameter::Crv.to_i64());
    let crv = key
        .params
        .iter()
        .find(|(label, _)| *label == crv_label)
        .and_then(|(_, value)| value.as_integer())
        .and_then(|v| i64::try_from(v).ok());
    if crv != Some(iana::EllipticCurve::P_256.to_i64()) {
        return Err("key curve is not P-256".into());
    }
    Ok(())
}

/// A credential as it appears in the keyring file (inside the sealed payload when sealed).
/// Binary fields are unpadded base64url.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoredCredential {
    rp_id: String,
    credential_id: String,
    user_handle: String,
    user_name: String,
    private_key_pkcs8: String,
    counter: u32,
    hmac_secret: String,
    label: String,
    created_at: u64,
}
