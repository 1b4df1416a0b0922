//! The WebAuthn ceremonies: registration, assertion, and local PRF evaluation, run by the
//! `passkey` client and authenticator over the credentials of a [`Keyring`].
//!
//! Trusted: the `passkey` crates to implement CTAP2/WebAuthn correctly (origin / rp id
//! checks, client data, signatures, hmac-secret). Untrusted: the relying party's options JSON
//! and the origin string, which are parsed and checked before use.
//!
//! The PRF extension is always requested here, with the caller's salt; its result is taken
//! out of the client's extension outputs and never written into the JSON for the server.

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use passkey_authenticator::extensions::HmacSecretConfig;
use passkey_authenticator::{
    Authenticator, CredentialIdLength, CredentialStore, DiscoverabilitySupport, StoreInfo, UiHint,
    UserCheck, UserValidationMethod,
};
use passkey_client::{Client, DefaultClientData, WebauthnError};
use passkey_crypto::coset::iana;
use passkey_crypto::rust_crypto::RustCryptoBackend;
use passkey_types::ctap2::extensions::{AuthenticatorPrfInputs, AuthenticatorPrfValues};
use passkey_types::ctap2::make_credential::{
    Options, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
};
use passkey_types::ctap2::{get_assertion, Aaguid, Ctap2Error, StatusCode};
use passkey_types::webauthn::{
    self, AuthenticationExtensionsPrfOutputs, AuthenticatorTransport,
    PublicKeyCredentialDescriptor, PublicKeyCredentialType,
};
use passkey_types::Passkey;
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};
use url::Url;
use zeroize::Zeroizing;

use crate::credential::Credential;
use crate::{Error, Keyring, Result};

/// Length of a PRF output (and of the salt this crate accepts).
const PRF_LEN: usize = 32;
/// Credential ids are 32 random bytes: long enough to be unguessable, and one fixed length
/// so that all Sotto software passkeys look alike.
const CREDENTIAL_ID_LEN: u8 = 32;

/// One PRF output (WebAuthn PRF `results.first`): 32 secret bytes, zeroized on drop.
/// Deliberately neither `Debug` nor `Clone`.
pub struct PrfOutput(Zeroizing<[u8; PRF_LEN]>);

impl PrfOutput {
    /// The secret bytes; derive keys from them, do not log or store them.
    pub fn as_bytes(&self) -> &[u8; PRF_LEN] {
        &self.0
    }
}

/// The outcome of a registration ceremony.
pub struct Registration {
    /// The `PublicKeyCredential` JSON to send to the server (webauthn-rs deserializes it as
    /// `RegisterPublicKeyCredential`). Contains no PRF output.
    pub response: Value,
    /// The new credential's id.
    pub credential_id: Vec<u8>,
    /// The PRF output for the salt, evaluated at creation (hmac-secret-mc). Always present
    /// with this authenticator; an `Option` because WebAuthn makes it optional.
    pub prf: Option<PrfOutput>,
}

/// The outcome of an authentication ceremony.
pub struct Assertion {
    /// The `PublicKeyCredential` JSON to send to the server (webauthn-rs deserializes it as
    /// `PublicKeyCredential`). Contains no PRF output.
    pub response: Value,
    /// The id of the credential that signed.
    pub credential_id: Vec<u8>,
    /// The user handle stored with the credential (webauthn-rs: the user's UUID bytes).
    pub user_handle: Vec<u8>,
    /// The PRF output for the salt.
    pub prf: Option<PrfOutput>,
}

/// Runs the client's ceremony `$call` (`register` or `authenticate`) on `$authenticator` and
/// turns a failure into the keyring's error, with the store's reason when it refused. A macro,
/// as the client's type cannot be named here (it involves a crate this one does not use).
macro_rules! client_ceremony {
    ($authenticator:ident.$call:ident($origin_url:expr, $request:expr), $origin:expr, $rp_id:expr) => {{
        let mut client = Client::new($authenticator).allows_insecure_localhost(true);
        let result = client.$call($origin_url, $request, DefaultClientData).await;
        let refusal = client.authenticator_mut().store_mut().refusal.take();
        result.map_err(|e| client_error(e, $origin, $rp_id, refusal))
    }};
}

impl Keyring {
    /// Create a new credential for the relying party whose `CredentialCreationOptions` JSON
    /// (`{"publicKey": {...}}`, as webauthn-rs's `CreationChallengeResponse` serializes) is
    /// `options`, as seen from `origin`. The PRF extension is added with `prf_salt`.
    ///
    /// `label` names the credential for the user; `created_at` is the current time in
    /// seconds since the Unix epoch (it orders credentials: the newest is used by default).
    /// The new credential is only in memory until [`Keyring::save`].
    pub async fn register(
        &mut self,
        origin: &str,
        options: Value,
        prf_salt: &[u8; PRF_LEN],
        label: &str,
        created_at: u64,
    ) -> Result<Registration> {
        let origin_url = parse_origin(origin)?;
        let request: webauthn::CredentialCreationOptions =
            with_prf(options, prf_salt, "CredentialCreationOptions")?;
        let rp_id = rp_id_or_host(request.public_key.rp.id.as_deref(), &origin_url);
        // The passkey authenticator (0.6) goes on to create a credential when one in the
        // exclude list exists, so the exclusion is enforced here.
        if let Some(excluded) = &request.public_key.exclude_credentials {
            if self.credentials.iter().any(|c| {
                c.rp_id == rp_id
                    && excluded
                        .iter()
                        .any(|d| d.id.as_slice() == c.credential_id.as_slice())
            }) {
                return Err(Error::CredentialExcluded { rp_id });
            }
        }

        let new_credential = NewCredential { label, created_at };
        let authenticator = authenticator(&mut self.credentials, Some(new_credential), None)?;
        let created =
            client_ceremony!(authenticator.register(&origin_url, request), origin, &rp_id)?;

        let prf = prf_first(created.client_extension_results.prf.as_ref())?;
        let mut extensions = Map::new();
        if let Some(cred_props) = &created.client_extension_results.cred_props {
            extensions.insert("credProps".into(), to_json(cred_props, "credProps")?);
        }
        if let Some(enabled) = created
            .client_extension_results
            .prf
            .as_ref()
            .and_then(|p| p.enabled)
        {
            // Whether PRF is supported is not secret; the results are, and are left out.
            extensions.insert("prf".into(), json!({ "enabled": enabled }));
        }
        let raw_id = created.raw_id.to_vec();
        let mut response = Map::new();
        response.insert(
            "clientDataJSON".into(),
            b64(&created.response.client_data_json).into(),
        );
        response.insert(
            "attestationObject".into(),
            b64(&created.response.attestation_object).into(),
        );
        response.insert(
            "authenticatorData".into(),
            b64(&created.response.authenticator_data).into(),
        );
        if let Some(public_key) = &created.response.public_key {
            response.insert("publicKey".into(), b64(public_key).into());
        }
        response.insert(
            "publicKeyAlgorithm".into(),
            created.response.public_key_algorithm.into(),
        );
        response.insert(
            "transports".into(),
            to_json(
                &created.response.transports.unwrap_or_default(),
                "transports",
            )?,
        );
        let response = json!({
            "id": b64(&raw_id),
            "rawId": b64(&raw_id),
            "type": "public-key",
            "response": response,
            "authenticatorAttachment": to_json(&created.authenticator_attachment, "authenticatorAttachment")?,
            "clientExtensionResults": extensions,
        });
        Ok(Registration {
            response,
            credential_id: raw_id,
            prf,
        })
    }

    /// Sign the relying party's `CredentialRequestOptions` JSON (`{"publicKey": {...}}`, as
    /// webauthn-rs's `RequestChallengeResponse` serializes) as seen from `origin`, with the
    /// PRF extension evaluated at `prf_salt`.
    ///
    /// With an empty `allowCredentials` (discoverable login) the credential is
    /// `credential_id` when given, else the most recently created one for the rp id.
    /// The advanced signature counter is only in memory until [`Keyring::save`].
    pub async fn authenticate(
        &mut self,
        origin: &str,
        options: Value,
        prf_salt: &[u8; PRF_LEN],
        credential_id: Option<&[u8]>,
    ) -> Result<Assertion> {
        let origin_url = parse_origin(origin)?;
        let request: webauthn::CredentialRequestOptions =
            with_prf(options, prf_salt, "CredentialRequestOptions")?;
        let rp_id = rp_id_or_host(request.public_key.rp_id.as_deref(), &origin_url);
        self.check_known(&rp_id, credential_id)?;

        let authenticator = authenticator(&mut self.credentials, None, credential_id)?;
        let asserted = client_ceremony!(
            authenticator.authenticate(&origin_url, request),
            origin,
            &rp_id
        )?;

        let prf = prf_first(asserted.client_extension_results.prf.as_ref())?;
        let user_handle = asserted
            .response
            .user_handle
            .as_ref()
            .map(|h| h.to_vec())
            .ok_or_else(|| Error::Client {
                reason: "the assertion carries no user handle".into(),
            })?;
        let raw_id = asserted.raw_id.to_vec();
        let response = json!({
            "id": b64(&raw_id),
            "rawId": b64(&raw_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&asserted.response.client_data_json),
                "authenticatorData": b64(&asserted.response.authenticator_data),
                "signature": b64(&asserted.response.signature),
                "userHandle": b64(&user_handle),
            },
            "authenticatorAttachment": to_json(&asserted.authenticator_attachment, "authenticatorAttachment")?,
            "clientExtensionResults": {},
        });
        Ok(Assertion {
            response,
            credential_id: raw_id,
            user_handle,
            prf,
        })
    }

    /// Evaluate the PRF of a credential locally, without a relying party: a get-assertion
    /// over a random client data hash whose signature is discarded. The result equals the
    /// `prf` of [`Keyring::register`] / [`Keyring::authenticate`] for the same salt.
    ///
    /// This advances the credential's signature counter (in memory until saved).
    pub async fn prf(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; PRF_LEN],
    ) -> Result<PrfOutput> {
        self.check_known(rp_id, Some(credential_id))?;
        let client_data_hash: [u8; 32] = crate::random()?;
        let request = get_assertion::Request {
            rp_id: rp_id.to_owned(),
            client_data_hash: client_data_hash.to_vec().into(),
            allow_list: Some(vec![PublicKeyCredentialDescriptor {
                ty: PublicKeyCredentialType::PublicKey,
                id: credential_id.to_vec().into(),
                transports: None,
            }]),
            extensions: Some(get_assertion::ExtensionInputs {
                hmac_secret: None,
                prf: Some(AuthenticatorPrfInputs {
                    eval: Some(AuthenticatorPrfValues {
                        first: webauthn_prf_salt(salt),
                        second: None,
                    }),
                    eval_by_credential: None,
                }),
            }),
            options: get_assertion::Options { up: true, uv: true },
            pin_auth: None,
            pin_protocol: None,
        };
        let mut authenticator = authenticator(&mut self.credentials, None, Some(credential_id))?;
        let response =
            authenticator
                .get_assertion(request)
                .await
                .map_err(|status| match status {
                    StatusCode::Known(Ctap2Error::NoCredentials) => Error::UnknownCredential {
                        rp_id: rp_id.to_owned(),
                        credential_id: b64(credential_id),
                    },
                    other => status_error(other),
                })?;
        response
            .unsigned_extension_outputs
            .and_then(|o| o.prf)
            .map(|p| PrfOutput(Zeroizing::new(p.results.first)))
            .ok_or(Error::PrfUnavailable)
    }

    /// Refuse early, with a precise error, a ceremony the keyring cannot serve.
    fn check_known(&self, rp_id: &str, credential_id: Option<&[u8]>) -> Result<()> {
        let mut for_rp = self.credentials.iter().filter(|c| c.rp_id == rp_id);
        match credential_id {
            None if for_rp.next().is_none() => Err(Error::NoCredential {
                rp_id: rp_id.to_owned(),
            }),
            Some(id) if !for_rp.any(|c| c.credential_id == id) => Err(Error::UnknownCredential {
                rp_id: rp_id.to_owned(),
                credential_id: b64(id),
            }),
            _ => Ok(()),
        }
    }
}

/// WebAuthn PRF maps a salt to the hmac-secret input as SHA-256("WebAuthn PRF" || 0x00 ||
/// salt); doing the same here keeps local evaluations equal to the client's.
fn webauthn_prf_salt(salt: &[u8; PRF_LEN]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"WebAuthn PRF\x00");
    hasher.update(salt);
    hasher.finalize().into()
}

/// The first PRF output of a ceremony's extension results, if it has one.
fn prf_first(outputs: Option<&AuthenticationExtensionsPrfOutputs>) -> Result<Option<PrfOutput>> {
    let Some(values) = outputs.and_then(|o| o.results.as_ref()) else {
        return Ok(None);
    };
    <[u8; PRF_LEN]>::try_from(values.first.as_slice())
        .map(|first| Some(PrfOutput(Zeroizing::new(first))))
        .map_err(|_| Error::Client {
            reason: format!(
                "PRF output is {} bytes, expected {PRF_LEN}",
                values.first.len()
            ),
        })
}

fn parse_origin(origin: &str) -> Result<Url> {
    Url::parse(origin).map_err(|e| Error::InvalidOrigin {
        origin: origin.to_owned(),
        reason: e.to_string(),
    })
}

fn rp_id_or_host(rp_id: Option<&str>, origin: &Url) -> String {
    rp_id
        .or_else(|| origin.host_str())
        .unwrap_or_default()
        .to_owned()
}

/// Put `{"prf": {"eval": {"first": salt}}}` into `publicKey.extensions`, replacing any PRF
/// input the relying party sent (the salt is the caller's to choose), and read the options as
/// the `what` they must be.
fn with_prf<T: serde::de::DeserializeOwned>(
    mut options: Value,
    salt: &[u8; PRF_LEN],
    what: &str,
) -> Result<T> {
    let public_key = options
        .get_mut("publicKey")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| Error::InvalidOptions {
            reason: "no `publicKey` object".into(),
        })?;
    let extensions = public_key
        .entry("extensions")
        .or_insert_with(|| Value::Object(Map::new()));
    if extensions.is_null() {
        *extensions = Value::Object(Map::new());
    }
    let extensions = extensions
        .as_object_mut()
        .ok_or_else(|| Error::InvalidOptions {
            reason: "`publicKey.extensions` is not an object".into(),
        })?;
    extensions.remove("prfAlreadyHashed");
    extensions.insert("prf".into(), json!({ "eval": { "first": b64(salt) } }));
    serde_json::from_value(options).map_err(|e| Error::InvalidOptions {
        reason: format!("{what}: {e}"),
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn to_json<T: serde::Serialize>(value: &T, what: &str) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| Error::Encode {
        reason: format!("{what}: {e}"),
    })
}

fn status_error(status: StatusCode) -> Error {
    Error::Authenticator {
        reason: format!("CTAP2 status {status:?}"),
    }
}

fn client_error(error: WebauthnError, origin: &str, rp_id: &str, refusal: Option<String>) -> Error {
    if let Some(reason) = refusal {
        return Error::StoreRefused { reason };
    }
    let not_allowed = |reason: &str| Error::OriginNotAllowed {
        origin: origin.to_owned(),
        reason: reason.to_owned(),
    };
    match error {
        WebauthnError::OriginMissingDomain => not_allowed(
            "the origin has no domain; IP-literal origins such as http://127.0.0.1 cannot be used (use http://localhost)",
        ),
        WebauthnError::OriginRpMissmatch => {
            not_allowed(&format!("rp id {rp_id:?} is not the origin's domain or a registrable suffix of it"))
        }
        WebauthnError::UnprotectedOrigin => {
            not_allowed("the origin is not https (plain http is accepted only for localhost)")
        }
        WebauthnError::InvalidRpId => not_allowed(&format!(
            "rp id {rp_id:?} is a public suffix or not a registrable domain"
        )),
        WebauthnError::InsecureLocalhostNotAllowed => {
            not_allowed("plain-http localhost was refused")
        }
        WebauthnError::CredentialNotFound => Error::NoCredential {
            rp_id: rp_id.to_owned(),
        },
        WebauthnError::AuthenticatorError(code) => status_error(StatusCode::from(code)),
        other => Error::Client {
            reason: format!("{other:?}"),
        },
    }
}

/// Build the authenticator the ceremonies use: ES256 only (the keyring promises P-256 keys),
/// a signature counter, 32-byte credential ids, and hmac-secret (PRF) including evaluation
/// at creation time. Seeds are only the "with UV" kind because UV is always reported. It holds
/// the keyring's `credentials` for one ceremony (see [`KeyringStore`] for the other two).
fn authenticator<'a>(
    credentials: &'a mut Vec<Credential>,
    new_credential: Option<NewCredential<'a>>,
    only: Option<&'a [u8]>,
) -> Result<Authenticator<KeyringStore<'a>, KeyringHolder, RustCryptoBackend>> {
    let store = KeyringStore {
        credentials,
        new_credential,
        only,
        refusal: None,
    };
    let mut authenticator =
        Authenticator::new(Aaguid::new_empty(), store, KeyringHolder, RustCryptoBackend)
            .hmac_secret(HmacSecretConfig::new_with_uv_only().enable_on_make_credential())
            .transports(vec![AuthenticatorTransport::Internal]);
    authenticator
        .set_algorithms(&[iana::Algorithm::ES256])
        .map_err(|e| Error::Authenticator {
            reason: format!("ES256 unsupported by the crypto backend: {e:?}"),
        })?;
    authenticator.set_make_credentials_with_signature_counter(true);
    authenticator.set_make_credential_id_length(CredentialIdLength::from(CREDENTIAL_ID_LEN));
    Ok(authenticator)
}

/// The user-validation side of the authenticator: whoever holds the opened keyring is the
/// user. Presence and verification are both reported as performed (see the crate docs).
struct KeyringHolder;

#[async_trait]
impl UserValidationMethod for KeyringHolder {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, Passkey>,
        _presence: bool,
        _verification: bool,
    ) -> std::result::Result<UserCheck, Ctap2Error> {
        Ok(UserCheck {
            presence: true,
            verification: true,
        })
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }
}

struct NewCredential<'a> {
    label: &'a str,
    created_at: u64,
}

/// The authenticator's view of the keyring for the duration of one ceremony.
struct KeyringStore<'a> {
    credentials: &'a mut Vec<Credential>,
    /// Label and time for the credential a registration creates; `None` outside registration.
    new_credential: Option<NewCredential<'a>>,
    /// Restricts discovery to this credential id (the caller's choice among several).
    only: Option<&'a [u8]>,
    /// Why `save_credential` refused, since a CTAP2 status cannot say it.
    refusal: Option<String>,
}

#[async_trait]
impl CredentialStore for KeyringStore<'_> {
    type PasskeyItem = Passkey;

    async fn find_credentials(
        &self,
        ids: Option<&[PublicKeyCredentialDescriptor]>,
        rp_id: &str,
        user_handle: Option<&[u8]>,
    ) -> std::result::Result<Vec<Passkey>, StatusCode> {
        let mut found: Vec<&Credential> = self
            .credentials
            .iter()
            .rev()
            .filter(|c| c.rp_id == rp_id)
            .filter(|c| {
                ids.is_none_or(|ids| ids.iter().any(|d| d.id.as_slice() == c.credential_id))
            })
            .filter(|c| user_handle.is_none_or(|h| h == c.user_handle.as_slice()))
            .filter(|c| self.only.is_none_or(|id| id == c.credential_id.as_slice()))
            .collect();
        // The authenticator uses the first one: newest first, as CTAP2 asks. The list was
        // reversed first so that equal timestamps also favour the later-added credential.
        found.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        if found.is_empty() {
            return Err(Ctap2Error::NoCredentials.into());
        }
        found
            .into_iter()
            .map(|c| {
                c.to_passkey()
                    .map_err(|_| StatusCode::from(Ctap2Error::InvalidCredential))
            })
            .collect()
    }

    async fn save_credential(
        &mut self,
        cred: Passkey,
        _user: PublicKeyCredentialUserEntity,
        _rp: PublicKeyCredentialRpEntity,
        _options: Options,
    ) -> std::result::Result<(), StatusCode> {
        let Some(new) = &self.new_credential else {
            self.refusal = Some("a credential was created outside a registration".into());
            return Err(Ctap2Error::Other.into());
        };
        match Credential::from_new_passkey(&cred, new.label, new.created_at) {
            Ok(credential) => {
                self.credentials.push(credential);
                Ok(())
            }
            Err(reason) => {
                self.refusal = Some(reason);
                Err(Ctap2Error::InvalidCredential.into())
            }
        }
    }

    async fn update_credential(&mut self, cred: &Passkey) -> std::result::Result<(), StatusCode> {
        let stored = self
            .credentials
            .iter_mut()
            .find(|c| c.rp_id == cred.rp_id && c.credential_id == cred.credential_id.as_slice())
            .ok_or(StatusCode::from(Ctap2Error::NoCredentials))?;
        if let Some(counter) = cred.counter {
            stored.counter = counter;
        }
        Ok(())
    }

    async fn get_info(&self) -> StoreInfo {
        StoreInfo {
            discoverability: DiscoverabilitySupport::ForcedDiscoverable,
        }
    }
}
