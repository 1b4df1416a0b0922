//! The classes and functions JavaScript sees. Each one converts its arguments, calls
//! [`crate::channel`], [`crate::release`], [`crate::vault`] or [`crate::markdown`], and
//! converts back; errors
//! become JS `Error`s whose message is the Rust error's. Secrets coming in (PRF outputs,
//! recovery codes, prompts) are taken by value and zeroized here once used.

use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;
use zeroize::Zeroizing;

use crate::channel::ChannelCore;
use crate::error::whole_number;
use crate::release::{CompiledTrust, LogCheckCore};
use crate::vault::{self, RecoveryCore, VaultCore};
use crate::WebError;

fn js(e: WebError) -> JsError {
    JsError::new(&e.to_string())
}

fn unwrap_string(s: Zeroizing<String>) -> String {
    // wasm-bindgen copies a returned String into JS and frees it without zeroizing, which
    // nothing here can prevent; handing the buffer over at least makes no further copy.
    let mut s = s;
    std::mem::take(&mut *s)
}

/// An attested channel to one enclave, for one WebSocket to `/v1/relay`.
#[wasm_bindgen]
pub struct Channel(ChannelCore);

#[wasm_bindgen]
impl Channel {
    /// `policy_json`: `{"allow_simulated"?: bool, "simulated_root"?: base64 DER,
    /// "expect_measurement"?: hex48, "expect_model_sha256"?: hex32}`.
    /// A build without `SOTTO_WEB_ALLOW_SIMULATED=1` refuses `allow_simulated`.
    #[wasm_bindgen(constructor)]
    pub fn new(policy_json: &str) -> Result<Channel, JsError> {
        ChannelCore::new_in_build(policy_json, CompiledTrust::of_this_build().allow_simulated)
            .map(Channel)
            .map_err(js)
    }

    /// The first binary message to send.
    pub fn hello(&self) -> Vec<u8> {
        self.0.hello().to_vec()
    }

    /// Verifies the enclave's answer (evidence, binding, manifest) as of `now_unix_secs`;
    /// returns the summary JSON or throws, closing the channel. Nothing can be sealed yet.
    pub fn finish(&mut self, response: &[u8], now_unix_secs: f64) -> Result<String, JsError> {
        let at = whole_number(now_unix_secs.floor(), "now_unix_secs").map_err(js)?;
        self.0
            .finish(response, sotto_verify_core::UnixTime(at))
            .map_err(js)
    }

    /// Requires a release of the log `log` verified (`LogCheck.finish()` succeeded) to list
    /// this enclave's build; returns the summary JSON with the release and the log, or throws,
    /// closing the channel. Only after it can anything be sealed.
    pub fn admit(&mut self, log: &LogCheck) -> Result<String, JsError> {
        self.0.admit(&log.0).map_err(js)
    }

    /// Encrypts a chat request: `messages_json` is `[{"role":"user"|"assistant"|"system",
    /// "content":…}]`, `params_json` `{"max_tokens"?,"temperature"?,"top_p"?,"seed"?}` or "".
    /// Returns the binary messages to send, in order.
    pub fn seal_chat(
        &mut self,
        messages_json: String,
        params_json: &str,
    ) -> Result<Vec<Uint8Array>, JsError> {
        let messages_json = Zeroizing::new(messages_json);
        let frames = self.0.seal_chat(&messages_json, params_json).map_err(js)?;
        Ok(frames.iter().map(|f| Uint8Array::from(&f[..])).collect())
    }

    /// Decrypts one binary message from the enclave: `undefined` while a long message's later
    /// frames are still to come, else `{"token":…}`, `{"done":{…}}` or `{"error":{…}}`.
    pub fn open(&mut self, frame: &[u8]) -> Result<Option<String>, JsError> {
        Ok(self.0.open(frame).map_err(js)?.map(unwrap_string))
    }
}

/// One check of the server's release transparency log. The trust configuration it checks
/// against is this build's: compiled in, else (development builds only) the server's if it is a
/// development one, else the production pins.
#[wasm_bindgen]
pub struct LogCheck(LogCheckCore);

fn now_secs(now_unix_secs: f64) -> Result<u64, JsError> {
    whole_number(now_unix_secs.floor(), "now_unix_secs").map_err(js)
}

#[wasm_bindgen]
impl LogCheck {
    /// `server_trust_json`: the server's `trust.json` from /v1/collateral ("" if none);
    /// `state_json`: what the last check stored for this log ("" the first time).
    #[wasm_bindgen(constructor)]
    pub fn new(
        server_trust_json: &str,
        state_json: &str,
        now_unix_secs: f64,
    ) -> Result<LogCheck, JsError> {
        let trust = CompiledTrust::of_this_build()
            .select(server_trust_json)
            .map_err(js)?;
        LogCheckCore::new(trust, state_json, now_secs(now_unix_secs)?)
            .map(LogCheck)
            .map_err(js)
    }

    /// The origin of the log this build would check, given the server's `trust.json`: the key
    /// its stored state lives under. Throws when no trust configuration applies.
    pub fn origin_for(server_trust_json: &str) -> Result<String, JsError> {
        CompiledTrust::of_this_build()
            .select(server_trust_json)
            .map(|t| t.origin().to_string())
            .map_err(js)
    }

    /// The origin of the log this check is for.
    pub fn origin(&self) -> String {
        self.0.origin().to_string()
    }

    /// The JSON array of paths below `/log/` still needed; `[]` when `finish` may be called.
    pub fn wanted(&self) -> Result<String, JsError> {
        self.0.wanted_json().map_err(js)
    }

    /// Hands over the body of one fetched path; throws (ending the check) on a refusal.
    pub fn give(&mut self, path: &str, body: &[u8]) -> Result<(), JsError> {
        self.0.give(path, body).map_err(js)
    }

    /// Verifies the log; returns `{"state","origin","size","log":{…}}` (the state to store
    /// under `origin`), or throws. The verified releases stay here for `Channel.admit`.
    pub fn finish(&mut self) -> Result<String, JsError> {
        self.0.finish().map_err(js)
    }
}

/// A recovery code held in wasm memory.
#[wasm_bindgen]
pub struct Recovery(RecoveryCore);

#[wasm_bindgen]
impl Recovery {
    /// A new code, for sign-up or for replacing the current one.
    pub fn generate() -> Result<Recovery, JsError> {
        RecoveryCore::generate().map(Recovery).map_err(js)
    }

    /// The code the user typed; throws on a typo (checksum) before anything is sent.
    pub fn parse(text: String) -> Result<Recovery, JsError> {
        let text = Zeroizing::new(text);
        RecoveryCore::parse(&text).map(Recovery).map_err(js)
    }

    /// A generated code's text, once; throws afterwards (and for a typed code).
    pub fn reveal(&mut self) -> Result<String, JsError> {
        self.0.reveal().map(unwrap_string).map_err(js)
    }

    /// `{"lookup","verifier"}` (base64url): `RegisterFinish.recovery` at sign-up.
    pub fn verifier_json(&self) -> Result<String, JsError> {
        self.0.verifier_json().map_err(js)
    }

    /// `{"lookup","secret"}` (base64url): the recovery sign-in request body.
    pub fn sign_in_json(&self) -> Result<String, JsError> {
        self.0.sign_in_json().map(unwrap_string).map_err(js)
    }
}

/// An unlocked vault.
#[wasm_bindgen]
pub struct Vault(VaultCore);

fn version(v: f64) -> Result<u64, JsError> {
    whole_number(v, "expected_version").map_err(js)
}

#[wasm_bindgen]
impl Vault {
    /// A new vault for a just-registered account.
    pub fn create(account: &str) -> Result<Vault, JsError> {
        VaultCore::create(account).map(Vault).map_err(js)
    }

    /// Opens the vault with a passkey's PRF output (32 bytes) and its `wrap.pk.*` record JSON.
    pub fn unlock_with_prf(
        account: &str,
        prf: Vec<u8>,
        credential_id: &[u8],
        wrap_record_json: &str,
    ) -> Result<Vault, JsError> {
        let prf = Zeroizing::new(prf);
        VaultCore::unlock_with_prf(account, &prf, credential_id, wrap_record_json)
            .map(Vault)
            .map_err(js)
    }

    /// Opens the vault with the recovery code and the `wrap.recovery` record JSON.
    pub fn unlock_with_recovery(
        account: &str,
        recovery: &Recovery,
        wrap_record_json: &str,
    ) -> Result<Vault, JsError> {
        VaultCore::unlock_with_recovery(account, &recovery.0, wrap_record_json)
            .map(Vault)
            .map_err(js)
    }

    pub fn account(&self) -> String {
        self.0.account().to_owned()
    }

    /// `{"id","put"}`: the vault key wrapped for this passkey.
    pub fn wrap_for_prf(
        &self,
        prf: Vec<u8>,
        credential_id: &[u8],
        expected_version: f64,
    ) -> Result<String, JsError> {
        let prf = Zeroizing::new(prf);
        self.0
            .wrap_for_prf(&prf, credential_id, version(expected_version)?)
            .map_err(js)
    }

    /// `{"id","put"}`: the vault key wrapped for this recovery code.
    pub fn wrap_for_recovery(
        &self,
        recovery: &Recovery,
        expected_version: f64,
    ) -> Result<String, JsError> {
        self.0
            .wrap_for_recovery(&recovery.0, version(expected_version)?)
            .map_err(js)
    }

    /// `{"conv","id","put"}`: a new conversation's key record.
    pub fn new_conversation(&mut self) -> Result<String, JsError> {
        self.0.new_conversation().map_err(js)
    }

    pub fn has_conversation(&self, conv: &str) -> bool {
        self.0.has_conversation(conv)
    }

    /// `{"id","conv","put"}`: the header sealed for writing over `expected_version`.
    pub fn seal_header(
        &self,
        conv: &str,
        header_json: String,
        expected_version: f64,
    ) -> Result<String, JsError> {
        let header_json = Zeroizing::new(header_json);
        self.0
            .seal_header(conv, &header_json, version(expected_version)?)
            .map_err(js)
    }

    /// `{"id","conv","msg","put"}`: a new message record.
    pub fn seal_message(&self, conv: &str, message_json: String) -> Result<String, JsError> {
        let message_json = Zeroizing::new(message_json);
        self.0.seal_message(conv, &message_json).map_err(js)
    }

    /// Opens a JSON array of served records; returns a JSON array of opened or refused items.
    pub fn open_batch(&mut self, records_json: &str) -> Result<String, JsError> {
        self.0
            .open_batch(records_json)
            .map(unwrap_string)
            .map_err(js)
    }

    /// The rollback ledger, to persist between sessions.
    pub fn ledger_json(&self) -> Result<String, JsError> {
        self.0.ledger_json().map_err(js)
    }

    /// Continues from a persisted ledger; throws on a rollback.
    pub fn restore_ledger(&mut self, ledger_json: &str) -> Result<(), JsError> {
        self.0.restore_ledger(ledger_json).map_err(js)
    }
}

/// The PRF input every Sotto client asks its passkey to evaluate (`prf.eval.first`).
#[wasm_bindgen]
pub fn prf_salt() -> Vec<u8> {
    sotto_vault::prf_salt().to_vec()
}

/// The record id of the vault key wrapped for this passkey.
#[wasm_bindgen]
pub fn passkey_wrap_id(credential_id: &[u8]) -> String {
    sotto_vault::passkey_wrap_id(credential_id)
}

/// The record id of the vault key wrapped for the recovery code.
#[wasm_bindgen]
pub fn recovery_wrap_id() -> String {
    sotto_vault::RECOVERY_WRAP_ID.to_owned()
}

/// A new conversation header JSON.
#[wasm_bindgen]
pub fn new_header(title: String, now_ms: f64) -> Result<String, JsError> {
    let title = Zeroizing::new(title);
    let now = whole_number(now_ms, "now_ms").map_err(js)?;
    vault::new_header(&title, now)
        .map(unwrap_string)
        .map_err(js)
}

/// Two header JSONs merged (later edit of each field wins; the same on every device).
#[wasm_bindgen]
pub fn merge_headers(a_json: String, b_json: String) -> Result<String, JsError> {
    let (a, b) = (Zeroizing::new(a_json), Zeroizing::new(b_json));
    vault::merge_headers(&a, &b).map(unwrap_string).map_err(js)
}

/// A local edit of a header JSON: `title` and/or `folder` set (`undefined` leaves a field).
#[wasm_bindgen]
pub fn edit_header(
    base_json: String,
    title: Option<String>,
    folder: Option<String>,
    now_ms: f64,
) -> Result<String, JsError> {
    let base = Zeroizing::new(base_json);
    let title = title.map(Zeroizing::new);
    let folder = folder.map(Zeroizing::new);
    let now = whole_number(now_ms, "now_ms").map_err(js)?;
    vault::edit_header(
        &base,
        title.as_deref().map(|s| s.as_str()),
        folder.as_deref().map(|s| s.as_str()),
        now,
    )
    .map(unwrap_string)
    .map_err(js)
}

/// A message's Markdown as the JSON array of sanitized nodes `crate::markdown` describes.
/// Taken by reference, unlike prompts elsewhere here: the parser's own copies of the text
/// could not be wiped anyway, so zeroizing this one would promise nothing.
#[wasm_bindgen]
pub fn markdown(text: &str) -> String {
    crate::markdown::render_json(text)
}
