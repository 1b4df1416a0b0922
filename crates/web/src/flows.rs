//! The client core's flows (`sotto_client`) as the browser drives them: each step goes to JS as
//! JSON (an HTTP request to make, a passkey to create or assert, or the end), and JS answers
//! with what the server or the authenticator said. The page keeps one [`ClientCore`], the
//! unlocked client (vault, session, history); vault flows run against it. JS only carries
//! steps out, so sign-up, unlock, recovery, sync and header merges are the CLI's own code.
//!
//! Trust: answers from the server are untrusted and judged by `sotto_client` (which refuses
//! anything `sotto_vault` cannot authenticate); the authenticator's PRF output and the
//! recovery code the user types are trusted and stay here, zeroized when dropped. What goes to
//! JS: request bodies (public values or ciphertext, blinded token requests, and the recovery
//! sign-in secret the server checks), never the session token (the browser presents its HttpOnly cookie instead); the
//! plaintext of conversations the page is about to show; a new recovery code's text, once.

use std::cell::RefCell;
use std::rc::Rc;

use serde::Serialize;
use sotto_api::{b64, AccountInfo};
use sotto_client::{
    self as core, AddPasskey, Answer, Assertion, ClientError, DeleteAccount, DeleteConversation,
    EditHeader, EnsureKey, FetchTokens, Flow, NewPasskey, Prf, Pull, Recover, RelayPolicy,
    RelayToken, RemovePasskey, Request, Response, RotateRecovery, Session, SignIn, SignUp,
    SignedIn, Step, Unlock, Unlocked, VaultFlow, Writes, TOKEN_BATCH,
};
use sotto_vault::{Ledger, Message, RecoveryCode};
use zeroize::Zeroizing;

use crate::error::{json, json_quiet, WebError};

/// What a finished flow leaves for the page to take.
enum Output {
    Nothing,
    Unlocked(Unlocked),
    SignedUp {
        unlocked: Option<Unlocked>,
        code: Option<RecoveryCode>,
    },
    Locked(Session),
    Code(RecoveryCode),
    Saved {
        conv: String,
        ids: Vec<String>,
    },
    Count(usize),
    Account(AccountInfo),
    Tokens(Vec<RelayToken>),
}

/// Any flow, its output made an [`Output`], so one JS class can drive them all.
trait Running {
    fn next(&mut self, answer: Option<Answer>) -> Result<Step<Output>, WebError>;
}

/// A flow that needs no unlocked client.
struct Plain<F: Flow> {
    flow: F,
    output: fn(F::Output) -> Output,
}

impl<F: Flow> Running for Plain<F> {
    fn next(&mut self, answer: Option<Answer>) -> Result<Step<Output>, WebError> {
        Ok(self.flow.next(answer)?.map(self.output))
    }
}

/// A flow over the page's unlocked client, borrowed only for the length of one step: other
/// flows may take their steps in between, as the page's pulls and writes interleave.
struct OnClient<F: VaultFlow> {
    client: Shared,
    flow: F,
    output: fn(F::Output) -> Output,
}

impl<F: VaultFlow> Running for OnClient<F> {
    fn next(&mut self, answer: Option<Answer>) -> Result<Step<Output>, WebError> {
        let mut slot = self.client.try_borrow_mut().map_err(|_| BUSY)?;
        let client = slot.as_mut().ok_or(WebError::SignedOut)?;
        Ok(self.flow.next(client, answer)?.map(self.output))
    }
}

/// One request whose answer is checked or read here (signing out, the account's details).
struct One {
    request: Option<Request>,
    output: fn(&Response) -> Result<Output, WebError>,
}

impl Running for One {
    fn next(&mut self, answer: Option<Answer>) -> Result<Step<Output>, WebError> {
        if let Some(request) = self.request.take() {
            return Ok(Step::Send(request));
        }
        match answer {
            Some(Answer::Http(response)) => Ok(Step::Done((self.output)(&response)?)),
            _ => Err(WebError::State("expected the answer to an HTTP request")),
        }
    }
}

/// A step as JS carries it out.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StepOut<'a> {
    Http {
        method: &'static str,
        path: &'a str,
        /// The body's media type, when there is a body.
        #[serde(skip_serializing_if = "Option::is_none")]
        content_type: Option<&'static str>,
        /// A JSON body, to send as it is.
        #[serde(skip_serializing_if = "Option::is_none")]
        body: Option<&'a str>,
        /// Any other body (a token request's binary one), base64url.
        #[serde(skip_serializing_if = "Option::is_none")]
        body_b64u: Option<String>,
    },
    CreatePasskey {
        options: &'a serde_json::Value,
        salt_b64u: String,
        name: Option<&'a str>,
    },
    GetPasskey {
        options: &'a serde_json::Value,
        salt_b64u: String,
    },
    Done,
}

fn step_json(step: &Step<Output>) -> Result<Zeroizing<String>, WebError> {
    let out = match step {
        Step::Send(r) => {
            let json = r.content_type == "application/json";
            StepOut::Http {
                method: r.method.as_str(),
                path: &r.path,
                content_type: r.body.as_ref().map(|_| r.content_type),
                body: match r.body.as_deref() {
                    Some(body) if json => Some(std::str::from_utf8(body).map_err(|_| {
                        WebError::State("the client core made a JSON body that is not text")
                    })?),
                    _ => None,
                },
                body_b64u: r.body.as_deref().filter(|_| !json).map(b64::encode),
            }
        }
        Step::CreatePasskey(p) => StepOut::CreatePasskey {
            options: &p.options,
            salt_b64u: b64::encode(&p.salt),
            name: p.name.as_deref(),
        },
        Step::GetPasskey(p) => StepOut::GetPasskey {
            options: &p.options,
            salt_b64u: b64::encode(&p.salt),
        },
        Step::Done(_) => StepOut::Done,
    };
    // A body can hold the recovery sign-in secret.
    serde_json::to_string(&out)
        .map(Zeroizing::new)
        .map_err(json("step"))
}

/// One run of a flow: `start`, then the answer to each step, until the step is `done`; then
/// its results are taken. After an error or the end, it takes no more answers.
pub struct FlowCore {
    running: Option<Box<dyn Running>>,
    output: Option<Output>,
}

const OVER: WebError = WebError::State("this flow is over");
const BUSY: WebError = WebError::State("the client is in the middle of another step");
const NOT_HERE: WebError = WebError::State("this flow did not end with that");

impl FlowCore {
    fn new(running: impl Running + 'static) -> Self {
        FlowCore {
            running: Some(Box::new(running)),
            output: None,
        }
    }

    fn plain<F: Flow + 'static>(flow: F, output: fn(F::Output) -> Output) -> Self {
        FlowCore::new(Plain { flow, output })
    }

    /// A new account with a new passkey; ends with an unlocked client and a recovery code.
    pub fn sign_up(display_name: &str, passkey_name: &str) -> Result<Self, WebError> {
        let flow = SignUp::new(display_name, passkey_name)?;
        Ok(FlowCore::plain(flow, |s| Output::SignedUp {
            unlocked: Some(s.unlocked),
            code: Some(s.recovery_code),
        }))
    }

    /// A passkey sign-in; ends unlocked, or locked when the passkey gave no PRF output.
    pub fn sign_in() -> Self {
        FlowCore::plain(SignIn::new(), |s| match s {
            SignedIn::Unlocked(u) => Output::Unlocked(u),
            SignedIn::Locked(s) => Output::Locked(s),
        })
    }

    /// A new device: the recovery code signs in and this browser gets its own passkey. A
    /// mistyped code is refused here, before anything is sent.
    pub fn recover(code_text: &str, passkey_name: &str) -> Result<Self, WebError> {
        let flow = Recover::new(code_text, passkey_name)?;
        Ok(FlowCore::plain(flow, Output::Unlocked))
    }

    /// Opens a locked session's vault with the recovery code; the session stays usable for
    /// another try.
    pub fn unlock_with_recovery(locked: &LockedCore, code_text: &str) -> Result<Self, WebError> {
        let code = RecoveryCode::parse(code_text)?;
        let flow = Unlock::with_recovery(locked.session(), &code);
        Ok(FlowCore::plain(flow, Output::Unlocked))
    }

    fn advance(&mut self, answer: Option<Answer>) -> Result<Zeroizing<String>, WebError> {
        let running = self.running.as_mut().ok_or(OVER)?;
        match running.next(answer) {
            Err(e) => {
                self.running = None;
                Err(e)
            }
            Ok(Step::Done(output)) => {
                self.running = None;
                self.output = Some(output);
                step_json(&Step::Done(Output::Nothing))
            }
            Ok(step) => step_json(&step),
        }
    }

    /// The first step.
    pub fn start(&mut self) -> Result<Zeroizing<String>, WebError> {
        self.advance(None)
    }

    /// The server's answer to an `http` step, as received.
    pub fn answer_http(&mut self, status: u16, body: &[u8]) -> Result<Zeroizing<String>, WebError> {
        self.advance(Some(Answer::Http(Response::new(status, body.to_vec()))))
    }

    /// A passkey made for a `create_passkey` step: its WebAuthn JSON (without PRF results),
    /// its id, and its PRF output.
    pub fn answer_created(
        &mut self,
        credential_json: &str,
        credential_id: &[u8],
        prf: &[u8],
    ) -> Result<Zeroizing<String>, WebError> {
        let passkey = NewPasskey {
            credential: serde_json::from_str(credential_json).map_err(json("passkey JSON"))?,
            credential_id: credential_id.to_vec(),
            prf: Prf::from_slice(prf)?,
        };
        self.advance(Some(Answer::Created(passkey)))
    }

    /// An assertion for a `get_passkey` step; `prf` is `None` when the passkey gave none.
    pub fn answer_asserted(
        &mut self,
        credential_json: &str,
        credential_id: &[u8],
        prf: Option<&[u8]>,
    ) -> Result<Zeroizing<String>, WebError> {
        let assertion = Assertion {
            credential: serde_json::from_str(credential_json).map_err(json("assertion JSON"))?,
            credential_id: credential_id.to_vec(),
            prf: prf.map(Prf::from_slice).transpose()?,
        };
        self.advance(Some(Answer::Asserted(assertion)))
    }

    /// The unlocked client a sign-up, sign-in, unlock or recovery ended with (taken once).
    pub fn take_client(&mut self) -> Result<ClientCore, WebError> {
        if matches!(self.output, Some(Output::Unlocked(_))) {
            if let Some(Output::Unlocked(u)) = self.output.take() {
                return Ok(ClientCore::new(u));
            }
        }
        if let Some(Output::SignedUp { unlocked, .. }) = &mut self.output {
            if let Some(u) = unlocked.take() {
                return Ok(ClientCore::new(u));
            }
        }
        Err(NOT_HERE)
    }

    /// The session of a sign-in whose passkey gave no PRF output (taken once).
    pub fn take_locked(&mut self) -> Option<LockedCore> {
        if !matches!(self.output, Some(Output::Locked(_))) {
            return None;
        }
        match self.output.take() {
            Some(Output::Locked(s)) => Some(LockedCore(s)),
            _ => None,
        }
    }

    /// The new recovery code of a sign-up or a rotation, to show the user once.
    pub fn reveal_recovery_code(&mut self) -> Result<Zeroizing<String>, WebError> {
        let code = if matches!(self.output, Some(Output::Code(_))) {
            match self.output.take() {
                Some(Output::Code(code)) => Some(code),
                _ => None,
            }
        } else if let Some(Output::SignedUp { code, .. }) = &mut self.output {
            code.take()
        } else {
            None
        };
        code.map(|c| c.to_text()).ok_or(WebError::State(
            "there is no recovery code to show, or it has been shown once already",
        ))
    }

    /// How many records a pull changed.
    pub fn count(&self) -> Result<usize, WebError> {
        match self.output {
            Some(Output::Count(n)) => Ok(n),
            _ => Err(NOT_HERE),
        }
    }

    /// A saved turn: `{"conv","ids"}`, the conversation and the new messages' ids in order.
    pub fn saved_json(&self) -> Result<String, WebError> {
        #[derive(Serialize)]
        struct Saved<'a> {
            conv: &'a str,
            ids: &'a [String],
        }
        match &self.output {
            Some(Output::Saved { conv, ids }) => {
                serde_json::to_string(&Saved { conv, ids }).map_err(json("saved turn"))
            }
            _ => Err(NOT_HERE),
        }
    }

    /// The account's details (`sotto_api::AccountInfo`: passkeys, recovery, quota, usage).
    pub fn account_json(&self) -> Result<String, WebError> {
        match &self.output {
            Some(Output::Account(info)) => serde_json::to_string(info).map_err(json("account")),
            _ => Err(NOT_HERE),
        }
    }

    /// The tokens a token fetch ended with (taken once).
    pub fn take_tokens(&mut self) -> Result<Vec<RelayToken>, WebError> {
        if !matches!(self.output, Some(Output::Tokens(_))) {
            return Err(NOT_HERE);
        }
        match self.output.take() {
            Some(Output::Tokens(tokens)) => Ok(tokens),
            _ => Err(NOT_HERE),
        }
    }
}

/// A signed-in session the passkey could not unlock: only the recovery code can.
pub struct LockedCore(Session);

impl LockedCore {
    fn session(&self) -> Session {
        Session {
            account_id: self.0.account_id.clone(),
            token: self.0.token.clone(),
            credential_id: self.0.credential_id.clone(),
            rp_id: self.0.rp_id.clone(),
        }
    }
}

/// Shared by the page's handle and the flows running on it; emptied when the handle goes, so
/// signing out wipes the keys even while a flow waits for the network.
type Shared = Rc<RefCell<Option<Unlocked>>>;

/// The page's unlocked client: the vault, the session and the history pulled so far.
pub struct ClientCore(Shared);

impl Drop for ClientCore {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.0.try_borrow_mut() {
            slot.take();
        }
    }
}

/// A conversation in the list.
#[derive(Serialize)]
struct Summary<'a> {
    id: &'a str,
    title: &'a str,
    folder: &'a str,
    updated_at: u64,
}

impl<'a> Summary<'a> {
    fn of(c: &'a core::Conversation) -> Self {
        Summary {
            id: &c.id,
            title: c.title(),
            folder: c.folder(),
            updated_at: c.updated_at(),
        }
    }
}

#[derive(Serialize)]
struct Opened<'a> {
    #[serde(flatten)]
    summary: Summary<'a>,
    messages: Vec<Turn<'a>>,
}

#[derive(Serialize)]
struct Turn<'a> {
    id: &'a str,
    message: &'a Message,
}

impl ClientCore {
    fn new(unlocked: Unlocked) -> Self {
        ClientCore(Rc::new(RefCell::new(Some(unlocked))))
    }

    fn with<T>(&self, f: impl FnOnce(&Unlocked) -> Result<T, WebError>) -> Result<T, WebError> {
        let slot = self.0.try_borrow().map_err(|_| BUSY)?;
        f(slot.as_ref().ok_or(WebError::SignedOut)?)
    }

    fn with_mut<T>(
        &self,
        f: impl FnOnce(&mut Unlocked) -> Result<T, WebError>,
    ) -> Result<T, WebError> {
        let mut slot = self.0.try_borrow_mut().map_err(|_| BUSY)?;
        f(slot.as_mut().ok_or(WebError::SignedOut)?)
    }

    fn on<F: VaultFlow + 'static>(&self, flow: F, output: fn(F::Output) -> Output) -> FlowCore {
        FlowCore::new(OnClient {
            client: self.0.clone(),
            flow,
            output,
        })
    }

    fn one(
        &self,
        request: impl FnOnce(&Session) -> Request,
        output: fn(&Response) -> Result<Output, WebError>,
    ) -> Result<FlowCore, WebError> {
        let request = self.with(|u| Ok(request(&u.session)))?;
        Ok(FlowCore::new(One {
            request: Some(request),
            output,
        }))
    }

    pub fn account(&self) -> Result<String, WebError> {
        self.with(|u| Ok(u.session.account_id.clone()))
    }

    /// The passkey this session signed in with (or registered), base64url.
    pub fn credential_id(&self) -> Result<String, WebError> {
        self.with(|u| Ok(b64::encode(&u.session.credential_id)))
    }

    /// The rollback ledger, to persist (ids and versions only; the server knows both).
    pub fn ledger_json(&self) -> Result<String, WebError> {
        self.with(|u| serde_json::to_string(u.vault.ledger()).map_err(json("ledger")))
    }

    /// Continues from a ledger saved earlier; refuses it if this session has already
    /// authenticated a record below a version the saved one saw.
    pub fn restore_ledger(&self, ledger_json: &str) -> Result<(), WebError> {
        let saved: Ledger = serde_json::from_str(ledger_json).map_err(json("ledger JSON"))?;
        self.with_mut(|u| Ok(u.vault.restore_ledger(&saved)?))
    }

    /// `[{"id","title","folder","updated_at"}]`, most recently updated first.
    pub fn conversations_json(&self) -> Result<Zeroizing<String>, WebError> {
        self.with(|u| {
            let list: Vec<Summary<'_>> = u
                .history
                .by_recency()
                .into_iter()
                .map(Summary::of)
                .collect();
            serde_json::to_string(&list)
                .map(Zeroizing::new)
                .map_err(json("conversations"))
        })
    }

    /// One conversation as pulled: its summary and `messages: [{"id", "message": {"role",
    /// "content", "created_at", "incomplete"?}}]` in order (`incomplete`: `"length"` or
    /// `"interrupted"` on an answer cut short); `None` if the history has no such conversation.
    pub fn conversation_json(&self, conv: &str) -> Result<Option<Zeroizing<String>>, WebError> {
        self.with(|u| {
            u.history
                .get(conv)
                .map(|c| {
                    let opened = Opened {
                        summary: Summary::of(c),
                        messages: c
                            .messages()
                            .map(|(id, message)| Turn { id, message })
                            .collect(),
                    };
                    serde_json::to_string(&opened)
                        .map(Zeroizing::new)
                        .map_err(json("conversation"))
                })
                .transpose()
        })
    }

    /// Pulls every change since the last pull; ends with [`FlowCore::count`]. One refused
    /// record refuses the whole pull and leaves the history as it was.
    pub fn pull(&self) -> FlowCore {
        self.on(Pull::new(), Output::Count)
    }

    /// Registers another passkey (made on this device) and wraps the vault key for it.
    pub fn add_passkey(&self, passkey_name: &str) -> FlowCore {
        self.on(AddPasskey::new(passkey_name), |_| Output::Nothing)
    }

    /// Replaces the recovery code; ends with the new one to reveal once.
    pub fn rotate_recovery(&self) -> Result<FlowCore, WebError> {
        Ok(self.on(RotateRecovery::new()?, Output::Code))
    }

    /// Sets the title and/or folder, merged over the server's latest header and retried on a
    /// conflict.
    pub fn edit_header(
        &self,
        conv: &str,
        title: Option<&str>,
        folder: Option<&str>,
        now_ms: u64,
    ) -> FlowCore {
        self.on(EditHeader::new(conv, title, folder, now_ms), |_| {
            Output::Nothing
        })
    }

    /// Saves a turn's messages (`[{"role","content","created_at","incomplete"?}]`) to `conv`,
    /// or to a new conversation titled with the first question; ends with
    /// [`FlowCore::saved_json`].
    pub fn save_turn(&self, conv: Option<&str>, messages_json: &str) -> Result<FlowCore, WebError> {
        let messages: Vec<Message> =
            serde_json::from_str(messages_json).map_err(json_quiet("messages JSON"))?;
        let flow = SaveTurn {
            key: conv.map(EnsureKey::new),
            conv: conv.map(str::to_owned),
            messages,
            writes: None,
        };
        Ok(self.on(flow, |(conv, ids)| Output::Saved { conv, ids }))
    }

    /// Deletes one saved message of a pulled conversation: a removal joins its chain, then the
    /// record goes (one already removed is not an error).
    pub fn delete_message(&self, conv: &str, msg: &str) -> Result<FlowCore, WebError> {
        let writes = self.with_mut(|u| Ok(core::delete_message(u, conv, msg)?))?;
        Ok(self.on(writes, |()| Output::Nothing))
    }

    /// Crypto-shreds a conversation: its key, header and messages.
    pub fn delete_conversation(&self, conv: &str) -> FlowCore {
        self.on(DeleteConversation::new(conv), |_| Output::Nothing)
    }

    /// The account's details; ends with [`FlowCore::account_json`].
    pub fn account_info(&self) -> Result<FlowCore, WebError> {
        self.one(core::account_info, |r| Ok(Output::Account(r.json()?)))
    }

    /// Removes a passkey (base64url id) after a passkey confirmation; the server refuses to
    /// remove the last one, and ends the sessions it opened (this one, if it signed in with it).
    pub fn remove_passkey(&self, credential_id: &str) -> Result<FlowCore, WebError> {
        let id = b64::decode(credential_id).map_err(|_| WebError::Base64 {
            field: "credential_id",
        })?;
        let flow = self.with(|u| Ok(RemovePasskey::new(&u.session, &id)))?;
        Ok(FlowCore::plain(flow, |()| Output::Nothing))
    }

    /// Fetches a batch of relay tokens for `policy` with this session; ends with
    /// [`FlowCore::take_tokens`].
    pub fn fetch_tokens(&self, policy: &RelayPolicy) -> Result<FlowCore, WebError> {
        let session = self.with(|u| Ok(u.session.token.clone()))?;
        let flow = FetchTokens::new(session, policy.clone(), TOKEN_BATCH);
        Ok(FlowCore::plain(flow, Output::Tokens))
    }

    /// Ends the session on the server.
    pub fn sign_out(&self) -> Result<FlowCore, WebError> {
        self.one(core::sign_out, success)
    }

    /// Deletes the account and everything in it on the server, after a passkey confirmation.
    pub fn delete_account(&self) -> Result<FlowCore, WebError> {
        let flow = self.with(|u| Ok(DeleteAccount::new(&u.session)))?;
        Ok(FlowCore::plain(flow, |()| Output::Nothing))
    }
}

fn success(r: &Response) -> Result<Output, WebError> {
    r.success()?;
    Ok(Output::Nothing)
}

/// A turn saved to an existing conversation needs its key in the vault first
/// ([`EnsureKey`]), and [`Writes::save_turn`] seals at once, so it is made only then.
struct SaveTurn {
    conv: Option<String>,
    messages: Vec<Message>,
    key: Option<EnsureKey>,
    writes: Option<Writes<(String, Vec<String>)>>,
}

impl VaultFlow for SaveTurn {
    type Output = (String, Vec<String>);

    fn next(
        &mut self,
        u: &mut Unlocked,
        mut answer: Option<Answer>,
    ) -> Result<Step<Self::Output>, ClientError> {
        if let Some(key) = self.key.as_mut() {
            match key.next(u, answer.take())? {
                Step::Done(()) => self.key = None,
                Step::Send(r) => return Ok(Step::Send(r)),
                Step::CreatePasskey(_) | Step::GetPasskey(_) => {
                    return Err(ClientError::State("fetching a key asked for a passkey"))
                }
            }
        }
        let writes = match self.writes.take() {
            Some(writes) => writes,
            None => {
                let messages = std::mem::take(&mut self.messages);
                Writes::save_turn(u, self.conv.as_deref(), messages)?
            }
        };
        self.writes.insert(writes).next(u, answer)
    }
}
