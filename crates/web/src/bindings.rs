//! The classes and functions JavaScript sees. Each one converts its arguments, calls
//! [`crate::channel`], [`crate::release`], [`crate::flows`] or [`crate::markdown`], and
//! converts back; errors become JS `Error`s whose message is the Rust error's. Secrets coming
//! in (PRF outputs, recovery codes, prompts) are taken by value and zeroized here once used.

use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;
use zeroize::Zeroizing;

use crate::channel::ChannelCore;
use crate::error::whole_number;
use crate::flows::{ClientCore, FlowCore, LockedCore};
use crate::release::{CompiledTrust, LogCheckCore};
use crate::tokens::TokensCore;
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

/// One run of a client-core flow (`crate::flows`). `start()` returns the first step as JSON,
/// and each `answer_*` the next one, until `{"kind":"done"}`; then the results are taken with
/// the methods below. Steps: `{"kind":"http","method","path","content_type"?,"body"?,
/// "body_b64u"?}` (send it with the session cookie; `body` is JSON text, `body_b64u` any other
/// body in base64url), `{"kind":"create_passkey","options","salt_b64u",
/// "name"}`, `{"kind":"get_passkey","options","salt_b64u"}`. After an error it is spent.
#[wasm_bindgen]
pub struct Flow(FlowCore);

#[wasm_bindgen]
impl Flow {
    /// A new account with a new passkey: ends with `client()` and `recovery_code()`.
    pub fn sign_up(display_name: &str, passkey_name: &str) -> Result<Flow, JsError> {
        FlowCore::sign_up(display_name, passkey_name)
            .map(Flow)
            .map_err(js)
    }

    /// A discoverable passkey sign-in: ends with `client()`, or `locked()` when the passkey
    /// gave no PRF output.
    pub fn sign_in() -> Flow {
        Flow(FlowCore::sign_in())
    }

    /// A new device, with the recovery code the user typed (throws on a typo, before anything
    /// is sent): registers this browser's own passkey; ends with `client()`.
    pub fn recover(code: String, passkey_name: &str) -> Result<Flow, JsError> {
        let code = Zeroizing::new(code);
        FlowCore::recover(&code, passkey_name).map(Flow).map_err(js)
    }

    /// Opens a locked session's vault with the recovery code; ends with `client()`.
    pub fn unlock_with_recovery(locked: &Locked, code: String) -> Result<Flow, JsError> {
        let code = Zeroizing::new(code);
        FlowCore::unlock_with_recovery(&locked.0, &code)
            .map(Flow)
            .map_err(js)
    }

    pub fn start(&mut self) -> Result<String, JsError> {
        self.0.start().map(unwrap_string).map_err(js)
    }

    /// The server's status and body for an `http` step.
    pub fn answer_http(&mut self, status: u16, body: &[u8]) -> Result<String, JsError> {
        self.0
            .answer_http(status, body)
            .map(unwrap_string)
            .map_err(js)
    }

    /// The passkey made for a `create_passkey` step (WebAuthn JSON without PRF results, its
    /// raw id, its 32-byte PRF output).
    pub fn answer_created(
        &mut self,
        credential_json: &str,
        credential_id: &[u8],
        prf: Vec<u8>,
    ) -> Result<String, JsError> {
        let prf = Zeroizing::new(prf);
        self.0
            .answer_created(credential_json, credential_id, &prf)
            .map(unwrap_string)
            .map_err(js)
    }

    /// The assertion for a `get_passkey` step; `prf` is `undefined` when the passkey gave none.
    pub fn answer_asserted(
        &mut self,
        credential_json: &str,
        credential_id: &[u8],
        prf: Option<Vec<u8>>,
    ) -> Result<String, JsError> {
        let prf = prf.map(Zeroizing::new);
        self.0
            .answer_asserted(
                credential_json,
                credential_id,
                prf.as_deref().map(|p| &p[..]),
            )
            .map(unwrap_string)
            .map_err(js)
    }

    /// The unlocked client the flow ended with, once.
    pub fn client(&mut self) -> Result<Client, JsError> {
        self.0.take_client().map(Client).map_err(js)
    }

    /// The session a sign-in ended with when its passkey could not unlock, once.
    pub fn locked(&mut self) -> Option<Locked> {
        self.0.take_locked().map(Locked)
    }

    /// The new recovery code's text, to show once; throws afterwards.
    pub fn recovery_code(&mut self) -> Result<String, JsError> {
        self.0.reveal_recovery_code().map(unwrap_string).map_err(js)
    }

    /// How many records a pull changed.
    pub fn count(&self) -> Result<usize, JsError> {
        self.0.count().map_err(js)
    }

    /// A saved turn: `{"conv","ids"}`.
    pub fn saved_json(&self) -> Result<String, JsError> {
        self.0.saved_json().map_err(js)
    }

    /// The account's details (`{"account_id","passkeys":[…],…}`).
    pub fn account_json(&self) -> Result<String, JsError> {
        self.0.account_json().map_err(js)
    }
}

/// A signed-in session whose passkey could not unlock the vault; kept for recovery-code tries.
#[wasm_bindgen]
pub struct Locked(LockedCore);

/// The page's unlocked client: vault, session (its token never leaves wasm) and history.
/// Freeing it wipes the keys, also under flows still waiting for an answer.
#[wasm_bindgen]
pub struct Client(ClientCore);

#[wasm_bindgen]
impl Client {
    pub fn account(&self) -> Result<String, JsError> {
        self.0.account().map_err(js)
    }

    /// The passkey this session signed in with, base64url.
    pub fn credential_id(&self) -> Result<String, JsError> {
        self.0.credential_id().map_err(js)
    }

    /// The rollback ledger, to persist between sessions.
    pub fn ledger_json(&self) -> Result<String, JsError> {
        self.0.ledger_json().map_err(js)
    }

    /// Continues from a persisted ledger; throws on a rollback.
    pub fn restore_ledger(&self, ledger_json: &str) -> Result<(), JsError> {
        self.0.restore_ledger(ledger_json).map_err(js)
    }

    /// `[{"id","title","folder","updated_at"}]`, most recently updated first.
    pub fn conversations_json(&self) -> Result<String, JsError> {
        self.0.conversations_json().map(unwrap_string).map_err(js)
    }

    /// `{"id","title","folder","updated_at","messages":[{"id","message":{"role","content",
    /// "created_at"}}]}`, or `undefined` when the history has no such conversation.
    pub fn conversation_json(&self, conv: &str) -> Result<Option<String>, JsError> {
        Ok(self
            .0
            .conversation_json(conv)
            .map_err(js)?
            .map(unwrap_string))
    }

    /// Pulls the changes since the last pull; ends with `count()`.
    pub fn pull(&self) -> Flow {
        Flow(self.0.pull())
    }

    pub fn add_passkey(&self, passkey_name: &str) -> Flow {
        Flow(self.0.add_passkey(passkey_name))
    }

    /// A new recovery code; ends with `recovery_code()`.
    pub fn rotate_recovery(&self) -> Result<Flow, JsError> {
        self.0.rotate_recovery().map(Flow).map_err(js)
    }

    /// Sets `title` and/or `folder` (`undefined` leaves a field), merged with other devices'.
    pub fn edit_header(
        &self,
        conv: &str,
        title: Option<String>,
        folder: Option<String>,
        now_ms: f64,
    ) -> Result<Flow, JsError> {
        let title = title.map(Zeroizing::new);
        let folder = folder.map(Zeroizing::new);
        let now = whole_number(now_ms, "now_ms").map_err(js)?;
        Ok(Flow(self.0.edit_header(
            conv,
            title.as_deref().map(|s| s.as_str()),
            folder.as_deref().map(|s| s.as_str()),
            now,
        )))
    }

    /// Saves `[{"role","content","created_at","incomplete"?}]` to `conv` (`undefined`: a new
    /// conversation; `incomplete`: `"length"` or `"interrupted"` for an answer cut short);
    /// ends with `saved_json()`.
    pub fn save_turn(&self, conv: Option<String>, messages_json: String) -> Result<Flow, JsError> {
        let messages_json = Zeroizing::new(messages_json);
        self.0
            .save_turn(conv.as_deref(), &messages_json)
            .map(Flow)
            .map_err(js)
    }

    pub fn delete_message(&self, conv: &str, msg: &str) -> Result<Flow, JsError> {
        self.0.delete_message(conv, msg).map(Flow).map_err(js)
    }

    pub fn delete_conversation(&self, conv: &str) -> Flow {
        Flow(self.0.delete_conversation(conv))
    }

    /// The account's passkeys and more; ends with `account_json()`.
    pub fn account_info(&self) -> Result<Flow, JsError> {
        self.0.account_info().map(Flow).map_err(js)
    }

    /// Removes the passkey with this base64url id.
    pub fn remove_passkey(&self, credential_id: &str) -> Result<Flow, JsError> {
        self.0.remove_passkey(credential_id).map(Flow).map_err(js)
    }

    pub fn sign_out(&self) -> Result<Flow, JsError> {
        self.0.sign_out().map(Flow).map_err(js)
    }

    pub fn delete_account(&self) -> Result<Flow, JsError> {
        self.0.delete_account().map(Flow).map_err(js)
    }
}

/// The relay's token policy and this page's wallet of unspent relay tokens (Privacy Pass).
#[wasm_bindgen]
pub struct RelayTokens(TokensCore);

#[wasm_bindgen]
impl RelayTokens {
    /// From the server's status and body for `GET /v1/tokens` and the stored wallet JSON
    /// (`""`: none).
    #[wasm_bindgen(constructor)]
    pub fn new(status: u16, body: &[u8], wallet_json: &str) -> Result<RelayTokens, JsError> {
        TokensCore::new(status, body, wallet_json)
            .map(RelayTokens)
            .map_err(js)
    }

    /// Whether the relay refuses a connection without a token.
    pub fn required(&self) -> bool {
        self.0.required()
    }

    pub fn count(&self) -> usize {
        self.0.count()
    }

    /// Whether to fetch a batch once this connection is open.
    pub fn wants_refill(&self) -> bool {
        self.0.wants_refill()
    }

    /// The fetch of a batch with `client`'s session; hand the finished flow to `add`.
    pub fn fetch(&self, client: &Client) -> Result<Flow, JsError> {
        self.0.fetch(&client.0).map(Flow).map_err(js)
    }

    /// Keeps the tokens a finished `fetch` flow ended with; returns how many.
    pub fn add(&mut self, done: &mut Flow) -> Result<usize, JsError> {
        self.0.add(&mut done.0).map_err(js)
    }

    /// The next token, as the WebSocket subprotocol that spends it (`undefined`: none left).
    /// Store `wallet_json()` before connecting with it.
    pub fn take_subprotocol(&mut self) -> Option<String> {
        self.0.take_subprotocol().map(unwrap_string)
    }

    /// The wallet, to store.
    pub fn wallet_json(&self) -> Result<String, JsError> {
        self.0.wallet_json().map(unwrap_string).map_err(js)
    }
}

/// The relay URL `relay` preferring an enclave picked by `random` among those the server's
/// `/v1/enclaves` answer (`status`, `body`) lists as up (`sotto_client::enclaves`): the page,
/// not the server, chooses which machine it reaches. Throws on a list that is not one.
#[wasm_bindgen]
pub fn relay_with_enclave(
    relay: &str,
    status: u16,
    body: &[u8],
    random: u32,
) -> Result<String, JsError> {
    crate::channel::relay_with_enclave(relay, status, body, random).map_err(js)
}

/// A message's Markdown as the JSON array of sanitized nodes `crate::markdown` describes.
/// Taken by reference, unlike prompts elsewhere here: the parser's own copies of the text
/// could not be wiped anyway, so zeroizing this one would promise nothing.
#[wasm_bindgen]
pub fn markdown(text: &str) -> String {
    crate::markdown::render_json(text)
}
