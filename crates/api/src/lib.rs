//! The HTTP API between Sotto clients and the (untrusted) server, as plain data.
//!
//! Everything here crosses the trust boundary, so nothing here is secret: record bodies are
//! ciphertext made by the client's vault, WebAuthn options and responses are public by design
//! (the PRF output is stripped by clients before a response is sent), and the recovery values
//! are a lookup handle and a hash of a derived secret. One definition serves the server, the CLI
//! and the browser (through wasm32), so the two sides cannot drift apart.

use serde::{Deserialize, Serialize};

/// Who wrote a message: the one definition the vault stores, the channel carries and the
/// engine renders. Written in lower case; the capitalised names earlier channel versions sent
/// are still read.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[serde(alias = "System")]
    System,
    #[serde(alias = "User")]
    User,
    #[serde(alias = "Assistant")]
    Assistant,
}

impl Role {
    /// The role name chat templates and the OpenAI API use.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

pub mod routes {
    //! The API's paths, spelled once: the server's router mounts these, the client core builds
    //! its requests from them. Patterns use axum's `{name}` captures.

    pub const REGISTER_START: &str = "/v1/account/register/start";
    pub const REGISTER_FINISH: &str = "/v1/account/register/finish";
    pub const SIGN_IN_START: &str = "/v1/session/start";
    pub const SIGN_IN_FINISH: &str = "/v1/session/finish";
    pub const RECOVER: &str = "/v1/session/recover";
    pub const SESSION: &str = "/v1/session";
    pub const ACCOUNT: &str = "/v1/account";
    pub const RECOVERY: &str = "/v1/account/recovery";
    pub const PASSKEY_START: &str = "/v1/account/passkeys/start";
    pub const PASSKEY_FINISH: &str = "/v1/account/passkeys/finish";
    pub const PASSKEY: &str = "/v1/account/passkeys/{credential}";
    pub const REAUTH_START: &str = "/v1/account/reauth/start";
    pub const REAUTH_FINISH: &str = "/v1/account/reauth/finish";
    pub const RECORDS: &str = "/v1/records";
    pub const RECORD: &str = "/v1/records/{id}";
    pub const GROUP: &str = "/v1/groups/{group}";
    /// The Privacy Pass issuer directory (RFC 9578 section 4): the issuer's keys.
    pub const TOKEN_DIRECTORY: &str = "/.well-known/private-token-issuer-directory";
    /// Token issuance for a signed-in account: one or more RFC 9578 token requests in, as many
    /// token responses out, within the account's quota.
    pub const TOKEN_ISSUE: &str = "/v1/tokens/issue";
    /// What the relay asks for: its token challenge, the issuer key, whether tokens are required.
    pub const TOKEN_POLICY: &str = "/v1/tokens";
    /// The enclaves behind the relay ([`super::Enclaves`]), by id.
    pub const ENCLAVES: &str = "/v1/enclaves";
    /// The relay's WebSocket: `?enclave=ID` insists on one enclave of [`ENCLAVES`],
    /// `?prefer=ID` asks for it first.
    pub const RELAY: &str = "/v1/relay";
    /// The query parameter of [`RELAY`] naming the one enclave to reach.
    pub const ENCLAVE_PARAM: &str = "enclave";
    /// The query parameter of [`RELAY`] naming the enclave to try first.
    pub const PREFER_PARAM: &str = "prefer";

    /// [`PASSKEY`] for one credential id (base64url, which needs no escaping in a path).
    pub fn passkey(credential_id: &[u8]) -> String {
        PASSKEY.replace("{credential}", &super::b64::encode(credential_id))
    }

    /// [`RECORD`] for one record id ([`super::valid_id`] ids need no escaping).
    pub fn record(id: &str) -> String {
        RECORD.replace("{id}", id)
    }

    /// [`GROUP`] for one group.
    pub fn group(group: &str) -> String {
        GROUP.replace("{group}", group)
    }

    /// [`RECORDS`]: one page of the change feed after cursor `since`.
    pub fn changes(since: u64, limit: u32) -> String {
        format!("{RECORDS}?since={since}&limit={limit}")
    }
}

pub mod b64 {
    //! Byte strings travel as unpadded base64url in JSON.
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn encode(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
        URL_SAFE_NO_PAD.decode(text)
    }

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        decode(&text).map_err(serde::de::Error::custom)
    }

    pub mod fixed32 {
        use serde::{Deserializer, Serializer};

        pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
            super::serialize(bytes, s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
            let bytes = super::deserialize(d)?;
            <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| serde::de::Error::custom("expected exactly 32 bytes"))
        }
    }
}

/// Name of the session cookie a browser carries from a plain-HTTP origin (local development);
/// other clients ask for the token instead ([`SignInFinish::bearer`]) and send it as
/// `Authorization: Bearer`.
pub const SESSION_COOKIE: &str = "sotto_session";

/// The session cookie's name on an HTTPS origin. Browsers accept a `__Host-` cookie only with
/// `Secure`, `Path=/` and no `Domain`, so neither a sibling subdomain nor plain HTTP can set or
/// shadow it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-sotto_session";

/// Longest record id, group id or kind the server accepts.
pub const MAX_ID_LEN: usize = 128;

/// Ids, groups and kinds are short ASCII tokens chosen by clients: `[A-Za-z0-9._-]{1,128}`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Record id of the vault key wrapped for the recovery code.
pub const RECOVERY_WRAP_ID: &str = "wrap.recovery";

/// Record id of the vault key wrapped for one passkey. The server needs the scheme too: removing
/// a passkey removes its wrapping.
pub fn passkey_wrap_id(credential_id: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(credential_id);
    let mut id = String::from("wrap.pk.");
    for b in &d[..16] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

// ---- Anonymous tokens ------------------------------------------------------------------

/// Media type of [`routes::TOKEN_ISSUE`]'s request body (RFC 9578 section 9).
pub const TOKEN_REQUEST_TYPE: &str = "application/private-token-request";
/// Media type of its answer.
pub const TOKEN_RESPONSE_TYPE: &str = "application/private-token-response";
/// Most token requests one issuance call may carry.
pub const MAX_TOKEN_BATCH: usize = 32;

/// The relay's token policy ([`routes::TOKEN_POLICY`]). Public: the same for every client.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Debug)]
pub struct TokenPolicy {
    /// The RFC 9577 TokenChallenge a relay token must be made for.
    #[serde(with = "b64")]
    pub challenge: Vec<u8>,
    /// The issuer's key as RFC 9578 publishes it (DER SubjectPublicKeyInfo, RSASSA-PSS).
    #[serde(with = "b64")]
    pub token_key: Vec<u8>,
    /// The relay refuses a connection without a token.
    pub required: bool,
    /// Tokens one account may be issued per period.
    pub per_period: u32,
    pub period_secs: u64,
}

/// The enclaves behind a server's relay ([`routes::ENCLAVES`]). A client that picks one at
/// random among those up and not draining, and asks the relay for it, cannot be steered to a
/// chosen machine by the server; it verifies that enclave's evidence as any other.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Debug)]
pub struct Enclaves {
    pub enclaves: Vec<EnclaveInfo>,
}

#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Debug)]
pub struct EnclaveInfo {
    /// The same on every server of a deployment; not the enclave's address.
    pub id: String,
    /// The last connect to it succeeded.
    pub up: bool,
    /// It takes no new relays.
    pub draining: bool,
}

/// One key of the issuer directory (RFC 9578 section 4).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Debug)]
pub struct TokenKey {
    #[serde(rename = "token-type")]
    pub token_type: u16,
    /// Base64url of the DER SubjectPublicKeyInfo.
    #[serde(rename = "token-key")]
    pub token_key: String,
    #[serde(
        rename = "not-before",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub not_before: Option<u64>,
}

/// The issuer directory's JSON (RFC 9578 section 4).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Debug)]
pub struct IssuerDirectory {
    #[serde(rename = "issuer-request-uri")]
    pub issuer_request_uri: String,
    #[serde(rename = "token-keys")]
    pub token_keys: Vec<TokenKey>,
}

// ---- Accounts and sessions -------------------------------------------------------------

/// What the server keeps so that a recovery code can sign in: a lookup handle and the SHA-256
/// of a secret derived from the code. Neither unwraps anything.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecoveryVerifier {
    #[serde(with = "b64::fixed32")]
    pub lookup: [u8; 32],
    #[serde(with = "b64::fixed32")]
    pub verifier: [u8; 32],
}

#[derive(Clone, Serialize, Deserialize, Default)]
pub struct RegisterStart {
    /// Shown by authenticators next to the passkey; not an identity, may be empty.
    #[serde(default)]
    pub display_name: String,
}

/// A WebAuthn ceremony in progress: the options go to `navigator.credentials.create/get`
/// (or the CLI's software authenticator), the id comes back with the response.
#[derive(Clone, Serialize, Deserialize)]
pub struct CeremonyStarted {
    pub ceremony_id: String,
    /// `CredentialCreationOptions` or `CredentialRequestOptions` in WebAuthn JSON form.
    pub options: serde_json::Value,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct RegisterFinish {
    pub ceremony_id: String,
    /// The `PublicKeyCredential` from `create`, in WebAuthn JSON form, without PRF results.
    pub credential: serde_json::Value,
    /// A label for this passkey ("laptop", "phone").
    #[serde(default)]
    pub passkey_name: String,
    /// Present at account creation; absent when adding a passkey to an existing account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryVerifier>,
    /// At account creation: see [`SignInFinish::bearer`].
    #[serde(default, skip_serializing_if = "is_false")]
    pub bearer: bool,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct SignInFinish {
    pub ceremony_id: String,
    /// The `PublicKeyCredential` from `get`, in WebAuthn JSON form, without PRF results.
    pub credential: serde_json::Value,
    /// Answer with the session token in the body (a client without a cookie jar, the CLI).
    /// Without it the token is only set as an HttpOnly cookie, which page scripts cannot read.
    #[serde(default, skip_serializing_if = "is_false")]
    pub bearer: bool,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct RecoverSignIn {
    #[serde(with = "b64::fixed32")]
    pub lookup: [u8; 32],
    /// The derived recovery secret; the server compares its SHA-256 with the stored verifier.
    #[serde(with = "b64::fixed32")]
    pub secret: [u8; 32],
    /// See [`SignInFinish::bearer`].
    #[serde(default, skip_serializing_if = "is_false")]
    pub bearer: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A new session.
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionGranted {
    pub account_id: String,
    /// Only when the client asked for it (`bearer`); a browser gets an HttpOnly cookie instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    /// The passkey that signed in (absent for recovery sign-in).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_b64")]
    pub credential_id: Option<Vec<u8>>,
    /// A recovery sign-in is itself a fresh proof (of the recovery code): it comes with a
    /// step-up proof for [`Sensitive::AddPasskey`], so the new device can enrol its passkey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reauth: Option<String>,
}

/// An operation a session alone may not do: it needs a fresh passkey assertion first
/// (`POST` [`routes::REAUTH_START`] with this, then [`routes::REAUTH_FINISH`]), which earns a
/// single-use proof for this operation, this session, and a few minutes.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Debug)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum Sensitive {
    RotateRecovery,
    AddPasskey,
    RemovePasskey {
        #[serde(with = "b64")]
        credential_id: Vec<u8>,
    },
    DeleteAccount,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct ReauthFinish {
    pub ceremony_id: String,
    /// The `PublicKeyCredential` from `get`, in WebAuthn JSON form, without PRF results.
    pub credential: serde_json::Value,
}

/// A step-up proof: what a sensitive request carries as its `reauth` field.
#[derive(Clone, Serialize, Deserialize)]
pub struct Reauthed {
    pub reauth: String,
    /// Seconds it stays valid.
    pub expires_in: u64,
}

/// The body of a sensitive request that needs nothing else: deleting the account, removing a
/// passkey, starting to add one.
#[derive(Clone, Serialize, Deserialize)]
pub struct Reauth {
    pub reauth: String,
}

/// `PUT` [`routes::RECOVERY`]: a new recovery code, all at once: its verifier and the vault
/// key wrapped for it (record [`RECOVERY_WRAP_ID`], compare-and-swap on `expected_version`)
/// are stored in one transaction, so the old code works until the new one does.
#[derive(Clone, Serialize, Deserialize)]
pub struct NewRecovery {
    pub reauth: String,
    pub verifier: RecoveryVerifier,
    pub wrap: PutRecord,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct PasskeyInfo {
    #[serde(with = "b64")]
    pub credential_id: Vec<u8>,
    pub name: String,
    pub created_at: u64,
    pub last_used_at: Option<u64>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct AccountInfo {
    pub account_id: String,
    pub created_at: u64,
    pub passkeys: Vec<PasskeyInfo>,
    pub has_recovery: bool,
    pub quota: Quota,
    pub usage: Usage,
}

#[derive(Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Debug)]
pub struct Quota {
    pub max_bytes: u64,
    pub max_records: u64,
}

#[derive(Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Debug, Default)]
pub struct Usage {
    pub bytes: u64,
    pub records: u64,
}

// ---- Records -------------------------------------------------------------------------

/// `PUT /v1/records/{id}`: store a record if its current version is `expected_version`
/// (0: it has never existed). The stored version becomes `expected_version + 1`, which the
/// client has already bound into the ciphertext's associated data.
#[derive(Clone, Serialize, Deserialize)]
pub struct PutRecord {
    /// Conversation the record belongs to, so a conversation can be deleted in one call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub kind: String,
    pub expected_version: u64,
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
}

#[derive(Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Debug)]
pub struct PutResult {
    pub version: u64,
    pub seq: u64,
}

/// A record as the server holds it. `ciphertext` is absent for a deletion marker.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Debug)]
pub struct RecordOut {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub kind: String,
    pub version: u64,
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_b64")]
    pub ciphertext: Option<Vec<u8>>,
}

/// `GET /v1/records?since=N&limit=M`: changes after cursor `since`, oldest first.
#[derive(Clone, Serialize, Deserialize)]
pub struct Changes {
    pub records: Vec<RecordOut>,
    /// Cursor to pass as `since` next time.
    pub next: u64,
    /// More changes are waiting after `next`.
    pub more: bool,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Deleted {
    pub deleted: u64,
}

/// Every error body the server sends.
#[derive(Clone, Serialize, Deserialize, Debug)]
pub struct ApiError {
    /// Stable, machine-readable: `unauthorized`, `reauth_required`, `not_found`, `conflict`,
    /// `quota_exceeded`, `rate_limited`, `busy`, `bad_request`, `webauthn`, `last_passkey`,
    /// `internal`.
    pub error: String,
    pub message: String,
    /// For `conflict`: the record's current version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
}

mod opt_b64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => super::b64::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| super::b64::decode(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn roles_are_written_in_lower_case_and_read_in_either_case() {
        assert_eq!(
            serde_json::to_string(&Role::Assistant).unwrap(),
            "\"assistant\""
        );
        for (text, role) in [("\"user\"", Role::User), ("\"System\"", Role::System)] {
            assert_eq!(serde_json::from_str::<Role>(text).unwrap(), role);
        }
        assert!(serde_json::from_str::<Role>("\"tool\"").is_err());
    }

    use super::*;

    #[test]
    fn ids_are_short_tokens() {
        assert!(valid_id("m.0123abcd.ff-_"));
        assert!(!valid_id(""));
        assert!(!valid_id("a/b"));
        assert!(!valid_id("é"));
        assert!(!valid_id(&"a".repeat(MAX_ID_LEN + 1)));
    }

    #[test]
    fn records_round_trip_as_base64url() {
        let r = RecordOut {
            id: "x".into(),
            group: None,
            kind: "msg".into(),
            version: 2,
            seq: 9,
            ciphertext: Some(vec![0xfb, 0xff]),
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"ciphertext\":\"-_8\""), "{json}");
        assert_eq!(serde_json::from_str::<RecordOut>(&json).unwrap(), r);
        let tomb = r#"{"id":"x","kind":"msg","version":3,"seq":10}"#;
        assert_eq!(
            serde_json::from_str::<RecordOut>(tomb).unwrap().ciphertext,
            None
        );
    }
}
