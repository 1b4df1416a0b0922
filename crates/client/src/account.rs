//! The account ceremonies: sign-up, passkey sign-in, unlock, recovery on a new device, adding
//! a passkey, rotating the recovery code, removing a passkey, deleting the account. Each is a
//! [`Flow`] (or, on an unlocked client, a [`VaultFlow`]) that says what to send and what to ask
//! the authenticator, in order.
//!
//! The operations that change how the account is reached (its passkeys, its recovery code) or
//! end it begin with a fresh passkey assertion ([`StepUp`]): the server refuses them on the
//! strength of a session alone, so a stolen session token cannot take the account over.

use sotto_api::{
    routes, CeremonyStarted, NewRecovery, Reauth, ReauthFinish, Reauthed, RecordOut, RecoverSignIn,
    RecoveryVerifier, RegisterFinish, RegisterStart, Sensitive, SessionGranted, SignInFinish,
};
use sotto_vault::{passkey_wrap_id, prf_salt, Kek, RecoveryCode, Vault, RECOVERY_WRAP_ID};
use zeroize::Zeroizing;

use crate::flow::{asserted, created, http, Answer, Flow, Step, VaultFlow};
use crate::history::History;
use crate::http::{ClientError, Method, Request, Token};
use crate::passkey::{rp_id_of, NewPasskey, PasskeyRequest, Prf};

/// A signed-in session: the account, its bearer token, and the passkey it unlocks with.
#[derive(Clone)]
pub struct Session {
    pub account_id: String,
    /// The token, for a client that asked for it (`bearer()` on the sign-in flows); `None` in
    /// a browser, which presents the HttpOnly cookie its page cannot read.
    pub token: Option<Token>,
    pub credential_id: Vec<u8>,
    pub rp_id: String,
}

impl Session {
    fn request(&self, method: Method, path: impl Into<String>) -> Request {
        Request::new(method, path).authorized(self.token.as_ref())
    }

    fn json<T: serde::Serialize>(
        &self,
        method: Method,
        path: impl Into<String>,
        body: &T,
    ) -> Result<Request, ClientError> {
        Ok(Request::json(method, path, body)?.authorized(self.token.as_ref()))
    }

    pub(crate) fn get(&self, id: &str) -> Request {
        self.request(Method::Get, routes::record(id))
    }

    pub(crate) fn put(&self, sealed: &sotto_vault::Sealed) -> Result<Request, ClientError> {
        self.json(Method::Put, routes::record(&sealed.id), &sealed.put)
    }

    pub(crate) fn delete(&self, path: String) -> Request {
        self.request(Method::Delete, path)
    }

    pub(crate) fn changes(&self, since: u64) -> Request {
        self.request(Method::Get, routes::changes(since, 1000))
    }
}

/// A signed-in client with its vault open and the history it has pulled.
pub struct Unlocked {
    pub vault: Vault,
    pub session: Session,
    pub history: History,
}

impl Unlocked {
    fn new(vault: Vault, session: Session) -> Self {
        Unlocked {
            vault,
            session,
            history: History::default(),
        }
    }
}

fn record(answer: Option<Answer>) -> Result<RecordOut, ClientError> {
    http(answer)?.json()
}

/// The granted session, and its token when this client asked for one (`bearer`).
fn granted(
    answer: Option<Answer>,
    bearer: bool,
) -> Result<(SessionGranted, Option<Token>), ClientError> {
    let mut g: SessionGranted = http(answer)?.json()?;
    let token = match g.session_token.take() {
        Some(t) if bearer => Some(Token::new(t)),
        None if bearer => {
            return Err(ClientError::Protocol(
                "the server granted a session without the token this client asked for",
            ))
        }
        _ => None,
    };
    Ok((g, token))
}

fn passkey_request(started: &CeremonyStarted, name: Option<&str>) -> PasskeyRequest {
    PasskeyRequest {
        options: started.options.clone(),
        salt: prf_salt(),
        name: name.map(str::to_owned),
    }
}

/// A passkey ceremony the server opened: its id, and the relying party the passkey is for.
struct Ceremony {
    id: String,
    rp_id: String,
}

/// The server's answer to a ceremony's start: the ceremony, and what to ask the authenticator
/// (`name`: of the passkey to create; `None` to assert one).
fn ceremony(
    answer: Option<Answer>,
    name: Option<&str>,
) -> Result<(Ceremony, PasskeyRequest), ClientError> {
    let started: CeremonyStarted = http(answer)?.json()?;
    let rp_id = rp_id_of(&started.options)?;
    let request = passkey_request(&started, name);
    let ceremony = Ceremony {
        id: started.ceremony_id,
        rp_id,
    };
    Ok((ceremony, request))
}

/// The passkey the authenticator created for a registration, and the body that finishes the
/// registration with it.
fn registered(
    answer: Option<Answer>,
    ceremony_id: String,
    passkey_name: &str,
    recovery: Option<RecoveryVerifier>,
    bearer: bool,
) -> Result<(NewPasskey, RegisterFinish), ClientError> {
    let passkey = created(answer)?;
    let body = RegisterFinish {
        ceremony_id,
        credential: passkey.credential.clone(),
        passkey_name: passkey_name.to_owned(),
        recovery,
        bearer,
    };
    Ok((passkey, body))
}

/// What the server keeps to check a recovery code.
fn recovery_verifier(code: &RecoveryCode) -> RecoveryVerifier {
    RecoveryVerifier {
        lookup: code.lookup(),
        verifier: code.verifier(),
    }
}

// ---- Sign-up -------------------------------------------------------------------------------

/// A new account: a passkey, a vault key wrapped for it and for a new recovery code, and the
/// passkey's wrapping opened again the normal way, so a broken server is caught at once.
pub struct SignUp {
    display_name: String,
    passkey_name: String,
    code: Option<RecoveryCode>,
    bearer: bool,
    state: SignUpState,
}

enum SignUpState {
    Start,
    Started,
    Creating(Ceremony),
    Finishing {
        rp_id: String,
        passkey: NewPasskey,
    },
    WrapPasskey {
        vault: Vault,
        kek: Kek,
        session: Session,
    },
    WrapRecovery {
        kek: Kek,
        session: Session,
    },
    Reopen {
        kek: Kek,
        session: Session,
    },
    Spent,
}

/// The result of a sign-up: the unlocked client and the recovery code, to show once.
pub struct SignedUp {
    pub unlocked: Unlocked,
    pub recovery_code: RecoveryCode,
}

impl SignUp {
    pub fn new(display_name: &str, passkey_name: &str) -> Result<Self, ClientError> {
        Ok(SignUp {
            display_name: display_name.to_owned(),
            passkey_name: passkey_name.to_owned(),
            code: Some(RecoveryCode::generate()?),
            bearer: false,
            state: SignUpState::Start,
        })
    }

    /// Asks for the session token in the answer, for a client without a cookie jar (the
    /// CLI). A browser leaves it: its session is an HttpOnly cookie page code cannot read.
    pub fn bearer(mut self) -> Self {
        self.bearer = true;
        self
    }
}

impl Flow for SignUp {
    type Output = SignedUp;

    fn next(&mut self, answer: Option<Answer>) -> Result<Step<SignedUp>, ClientError> {
        let code = self
            .code
            .as_ref()
            .ok_or(ClientError::State("the sign-up flow is over"))?;
        match std::mem::replace(&mut self.state, SignUpState::Spent) {
            SignUpState::Start => {
                self.state = SignUpState::Started;
                let body = RegisterStart {
                    display_name: self.display_name.clone(),
                };
                Ok(Step::Send(Request::json(
                    Method::Post,
                    routes::REGISTER_START,
                    &body,
                )?))
            }
            SignUpState::Started => {
                let (ceremony, step) = ceremony(answer, Some(&self.passkey_name))?;
                self.state = SignUpState::Creating(ceremony);
                Ok(Step::CreatePasskey(step))
            }
            SignUpState::Creating(ceremony) => {
                let recovery = Some(recovery_verifier(code));
                let (passkey, body) = registered(
                    answer,
                    ceremony.id,
                    &self.passkey_name,
                    recovery,
                    self.bearer,
                )?;
                self.state = SignUpState::Finishing {
                    rp_id: ceremony.rp_id,
                    passkey,
                };
                Ok(Step::Send(Request::json(
                    Method::Post,
                    routes::REGISTER_FINISH,
                    &body,
                )?))
            }
            SignUpState::Finishing { rp_id, passkey } => {
                let (g, token) = granted(answer, self.bearer)?;
                let (vault, _) = Vault::create(&g.account_id)?;
                let kek = Kek::from_prf(passkey.prf.bytes(), &g.account_id, &passkey.credential_id);
                let session = Session {
                    account_id: g.account_id,
                    token,
                    credential_id: passkey.credential_id,
                    rp_id,
                };
                let wrap = vault.wrap_for(&kek, &passkey_wrap_id(&session.credential_id), 0)?;
                let req = session.put(&wrap)?;
                self.state = SignUpState::WrapPasskey {
                    vault,
                    kek,
                    session,
                };
                Ok(Step::Send(req))
            }
            SignUpState::WrapPasskey {
                vault,
                kek,
                session,
            } => {
                http(answer)?.success()?;
                let wrap = vault.wrap_for(&code.kek(&session.account_id), RECOVERY_WRAP_ID, 0)?;
                let req = session.put(&wrap)?;
                self.state = SignUpState::WrapRecovery { kek, session };
                Ok(Step::Send(req))
            }
            SignUpState::WrapRecovery { kek, session } => {
                http(answer)?.success()?;
                let req = session.get(&passkey_wrap_id(&session.credential_id));
                self.state = SignUpState::Reopen { kek, session };
                Ok(Step::Send(req))
            }
            SignUpState::Reopen { kek, session } => {
                let vault = Vault::unlock(&session.account_id, &kek, &record(answer)?)?;
                let recovery_code = self
                    .code
                    .take()
                    .ok_or(ClientError::State("the sign-up flow is over"))?;
                Ok(Step::Done(SignedUp {
                    unlocked: Unlocked::new(vault, session),
                    recovery_code,
                }))
            }
            SignUpState::Spent => Err(ClientError::State("the sign-up flow is over")),
        }
    }
}

// ---- Sign-in and unlock -------------------------------------------------------------------

/// What a passkey sign-in ends with: an unlocked client, or, when the passkey gave no PRF
/// output, a session that only the recovery code can unlock ([`Unlock::with_recovery`]).
pub enum SignedIn {
    Unlocked(Unlocked),
    Locked(Session),
}

/// Signs in with a discoverable passkey (the authenticator picks the account) and unlocks.
pub struct SignIn {
    bearer: bool,
    state: SignInState,
}

enum SignInState {
    Start,
    Started,
    Asserting(Ceremony),
    Finishing {
        rp_id: String,
        credential_id: Vec<u8>,
        prf: Option<Prf>,
    },
    Unlocking(Unlock),
    Spent,
}

impl SignIn {
    pub fn new() -> Self {
        SignIn {
            bearer: false,
            state: SignInState::Start,
        }
    }

    /// As [`SignUp::bearer`].
    pub fn bearer(mut self) -> Self {
        self.bearer = true;
        self
    }
}

impl Default for SignIn {
    fn default() -> Self {
        SignIn::new()
    }
}

impl Flow for SignIn {
    type Output = SignedIn;

    fn next(&mut self, answer: Option<Answer>) -> Result<Step<SignedIn>, ClientError> {
        match std::mem::replace(&mut self.state, SignInState::Spent) {
            SignInState::Start => {
                self.state = SignInState::Started;
                Ok(Step::Send(Request::new(
                    Method::Post,
                    routes::SIGN_IN_START,
                )))
            }
            SignInState::Started => {
                let (ceremony, step) = ceremony(answer, None)?;
                self.state = SignInState::Asserting(ceremony);
                Ok(Step::GetPasskey(step))
            }
            SignInState::Asserting(ceremony) => {
                let a = asserted(answer)?;
                let body = SignInFinish {
                    ceremony_id: ceremony.id,
                    credential: a.credential,
                    bearer: self.bearer,
                };
                self.state = SignInState::Finishing {
                    rp_id: ceremony.rp_id,
                    credential_id: a.credential_id,
                    prf: a.prf,
                };
                Ok(Step::Send(Request::json(
                    Method::Post,
                    routes::SIGN_IN_FINISH,
                    &body,
                )?))
            }
            SignInState::Finishing {
                rp_id,
                credential_id,
                prf,
            } => {
                let (g, token) = granted(answer, self.bearer)?;
                if g.credential_id
                    .as_ref()
                    .is_some_and(|c| *c != credential_id)
                {
                    return Err(ClientError::WrongAccount);
                }
                let session = Session {
                    account_id: g.account_id,
                    token,
                    credential_id,
                    rp_id,
                };
                let Some(prf) = prf else {
                    return Ok(Step::Done(SignedIn::Locked(session)));
                };
                let mut unlock = Unlock::with_prf(session, &prf);
                let step = unlock.next(None)?;
                self.state = SignInState::Unlocking(unlock);
                Ok(step.map(SignedIn::Unlocked))
            }
            SignInState::Unlocking(mut unlock) => {
                let step = unlock.next(answer)?;
                self.state = SignInState::Unlocking(unlock);
                Ok(step.map(SignedIn::Unlocked))
            }
            SignInState::Spent => Err(ClientError::State("the sign-in flow is over")),
        }
    }
}

/// Opens the vault of a session: with its passkey's PRF output (evaluated locally) or with
/// the recovery code.
pub struct Unlock {
    session: Option<Session>,
    kek: Kek,
    wrap_id: String,
    asked: bool,
}

impl Unlock {
    pub fn with_prf(session: Session, prf: &Prf) -> Self {
        let kek = Kek::from_prf(prf.bytes(), &session.account_id, &session.credential_id);
        let wrap_id = passkey_wrap_id(&session.credential_id);
        Unlock {
            session: Some(session),
            kek,
            wrap_id,
            asked: false,
        }
    }

    pub fn with_recovery(session: Session, code: &RecoveryCode) -> Self {
        let kek = code.kek(&session.account_id);
        Unlock {
            session: Some(session),
            kek,
            wrap_id: RECOVERY_WRAP_ID.to_owned(),
            asked: false,
        }
    }
}

impl Flow for Unlock {
    type Output = Unlocked;

    fn next(&mut self, answer: Option<Answer>) -> Result<Step<Unlocked>, ClientError> {
        let session = self
            .session
            .take()
            .ok_or(ClientError::State("the unlock flow is over"))?;
        if !self.asked {
            self.asked = true;
            let req = session.get(&self.wrap_id);
            self.session = Some(session);
            return Ok(Step::Send(req));
        }
        let vault = Vault::unlock(&session.account_id, &self.kek, &record(answer)?)?;
        Ok(Step::Done(Unlocked::new(vault, session)))
    }
}

// ---- Recovery on a new device --------------------------------------------------------------

/// A new device: signs in with the recovery code, opens the vault with it, registers a passkey
/// on this device with the vault key wrapped for it, and reopens the vault through that
/// passkey's wrapping. A mistyped code is refused by its checksum before anything is sent.
pub struct Recover {
    code: RecoveryCode,
    passkey_name: String,
    bearer: bool,
    state: RecoverState,
}

enum RecoverState {
    Start,
    SignedIn,
    /// The recovery sign-in's step-up proof waits for the vault to open.
    Opening {
        unlock: Unlock,
        proof: Proof,
    },
    Adding {
        unlocked: Box<Unlocked>,
        add: AddPasskey,
    },
    Reopening(Unlock),
    Spent,
}

impl Recover {
    pub fn new(code_text: &str, passkey_name: &str) -> Result<Self, ClientError> {
        Ok(Recover {
            code: RecoveryCode::parse(code_text)?,
            passkey_name: passkey_name.to_owned(),
            bearer: false,
            state: RecoverState::Start,
        })
    }

    /// As [`SignUp::bearer`].
    pub fn bearer(mut self) -> Self {
        self.bearer = true;
        self
    }
}

impl Flow for Recover {
    type Output = Unlocked;

    fn next(&mut self, answer: Option<Answer>) -> Result<Step<Unlocked>, ClientError> {
        match std::mem::replace(&mut self.state, RecoverState::Spent) {
            RecoverState::Start => {
                self.state = RecoverState::SignedIn;
                let body = RecoverSignIn {
                    lookup: self.code.lookup(),
                    secret: *self.code.sign_in_secret(),
                    bearer: self.bearer,
                };
                Ok(Step::Send(Request::json(
                    Method::Post,
                    routes::RECOVER,
                    &body,
                )?))
            }
            RecoverState::SignedIn => {
                let (mut g, token) = granted(answer, self.bearer)?;
                let proof = g
                    .reauth
                    .take()
                    .map(Proof::new)
                    .ok_or(ClientError::Protocol(
                        "the recovery sign-in came without the proof that lets it add a passkey",
                    ))?;
                let session = Session {
                    account_id: g.account_id,
                    token,
                    credential_id: Vec::new(),
                    rp_id: String::new(),
                };
                let mut unlock = Unlock::with_recovery(session, &self.code);
                let step = unlock.next(None)?;
                self.state = RecoverState::Opening { unlock, proof };
                Ok(step)
            }
            RecoverState::Opening { mut unlock, proof } => match unlock.next(answer)? {
                Step::Done(unlocked) => {
                    let mut unlocked = Box::new(unlocked);
                    let mut add = AddPasskey::with_proof(&self.passkey_name, proof);
                    let step = add.next(&mut unlocked, None)?;
                    self.state = RecoverState::Adding { unlocked, add };
                    step.pending()
                }
                step => {
                    self.state = RecoverState::Opening { unlock, proof };
                    Ok(step)
                }
            },
            RecoverState::Adding {
                mut unlocked,
                mut add,
            } => match add.next(&mut unlocked, answer)? {
                Step::Done(added) => {
                    let session = Session {
                        credential_id: added.credential_id,
                        rp_id: added.rp_id,
                        ..unlocked.session
                    };
                    let mut unlock = Unlock {
                        session: Some(session),
                        kek: added.kek,
                        wrap_id: added.wrap_id,
                        asked: false,
                    };
                    let step = unlock.next(None)?;
                    self.state = RecoverState::Reopening(unlock);
                    Ok(step)
                }
                step => {
                    self.state = RecoverState::Adding { unlocked, add };
                    step.pending()
                }
            },
            RecoverState::Reopening(mut unlock) => {
                let step = unlock.next(answer)?;
                self.state = RecoverState::Reopening(unlock);
                Ok(step)
            }
            RecoverState::Spent => Err(ClientError::State("the recovery flow is over")),
        }
    }
}

// ---- Step-up ----------------------------------------------------------------------------

/// A step-up proof: a bearer secret for one operation, for a few minutes. No Debug, zeroized
/// when dropped.
struct Proof(Zeroizing<String>);

impl Proof {
    fn new(proof: String) -> Self {
        Proof(Zeroizing::new(proof))
    }

    /// The body of a request that needs nothing but the proof.
    fn body(&self) -> Reauth {
        Reauth {
            reauth: self.0.to_string(),
        }
    }
}

/// A fresh passkey assertion for one sensitive operation: `reauth/start` names the operation,
/// the authenticator signs the server's challenge (any passkey of the account), and
/// `reauth/finish` answers with the proof the operation's request then carries.
struct StepUp {
    operation: Option<Sensitive>,
    state: StepUpState,
}

enum StepUpState {
    Start,
    Started,
    Asserting { ceremony: String },
    Finishing,
    Spent,
}

impl StepUp {
    fn new(operation: Sensitive) -> Self {
        StepUp {
            operation: Some(operation),
            state: StepUpState::Start,
        }
    }

    fn next(
        &mut self,
        session: &Session,
        answer: Option<Answer>,
    ) -> Result<Step<Proof>, ClientError> {
        match std::mem::replace(&mut self.state, StepUpState::Spent) {
            StepUpState::Start => {
                let operation = self
                    .operation
                    .take()
                    .ok_or(ClientError::State("the confirmation is over"))?;
                self.state = StepUpState::Started;
                Ok(Step::Send(session.json(
                    Method::Post,
                    routes::REAUTH_START,
                    &operation,
                )?))
            }
            StepUpState::Started => {
                let started: CeremonyStarted = http(answer)?.json()?;
                let step = passkey_request(&started, None);
                self.state = StepUpState::Asserting {
                    ceremony: started.ceremony_id,
                };
                Ok(Step::GetPasskey(step))
            }
            StepUpState::Asserting { ceremony } => {
                // The PRF output, if any, is not needed here; it is dropped (and zeroized).
                let body = ReauthFinish {
                    ceremony_id: ceremony,
                    credential: asserted(answer)?.credential,
                };
                self.state = StepUpState::Finishing;
                Ok(Step::Send(session.json(
                    Method::Post,
                    routes::REAUTH_FINISH,
                    &body,
                )?))
            }
            StepUpState::Finishing => {
                let proof: Reauthed = http(answer)?.json()?;
                Ok(Step::Done(Proof::new(proof.reauth)))
            }
            StepUpState::Spent => Err(ClientError::State("the confirmation is over")),
        }
    }
}

/// Runs `step_up` one step: `Ok(proof)` once it is done, else the step to pass on.
fn confirm<T>(
    step_up: &mut StepUp,
    session: &Session,
    answer: Option<Answer>,
) -> Result<Result<Proof, Step<T>>, ClientError> {
    Ok(match step_up.next(session, answer)? {
        Step::Done(proof) => Ok(proof),
        step => Err(step.pending()?),
    })
}

// ---- Managing an account ------------------------------------------------------------------

/// A passkey added by [`AddPasskey`].
pub struct AddedPasskey {
    pub credential_id: Vec<u8>,
    pub rp_id: String,
    kek: Kek,
    wrap_id: String,
}

/// Registers another passkey for the unlocked account and wraps the vault key for it, after
/// confirming with one of the account's passkeys.
pub struct AddPasskey {
    passkey_name: String,
    state: AddState,
}

enum AddState {
    Confirming(StepUp),
    Start(Proof),
    Started,
    Creating(Ceremony),
    Finishing { rp_id: String, passkey: NewPasskey },
    Wrapping { added: AddedPasskey },
    Spent,
}

impl AddPasskey {
    pub fn new(passkey_name: &str) -> Self {
        AddPasskey {
            passkey_name: passkey_name.to_owned(),
            state: AddState::Confirming(StepUp::new(Sensitive::AddPasskey)),
        }
    }

    /// With a proof already in hand: the one a recovery sign-in comes with.
    fn with_proof(passkey_name: &str, proof: Proof) -> Self {
        AddPasskey {
            passkey_name: passkey_name.to_owned(),
            state: AddState::Start(proof),
        }
    }
}

impl VaultFlow for AddPasskey {
    type Output = AddedPasskey;

    fn next(
        &mut self,
        u: &mut Unlocked,
        answer: Option<Answer>,
    ) -> Result<Step<AddedPasskey>, ClientError> {
        match std::mem::replace(&mut self.state, AddState::Spent) {
            AddState::Confirming(mut step_up) => match confirm(&mut step_up, &u.session, answer)? {
                Ok(proof) => {
                    self.state = AddState::Start(proof);
                    self.next(u, None)
                }
                Err(step) => {
                    self.state = AddState::Confirming(step_up);
                    Ok(step)
                }
            },
            AddState::Start(proof) => {
                self.state = AddState::Started;
                Ok(Step::Send(u.session.json(
                    Method::Post,
                    routes::PASSKEY_START,
                    &proof.body(),
                )?))
            }
            AddState::Started => {
                let (ceremony, step) = ceremony(answer, Some(&self.passkey_name))?;
                self.state = AddState::Creating(ceremony);
                Ok(Step::CreatePasskey(step))
            }
            AddState::Creating(ceremony) => {
                let (passkey, body) =
                    registered(answer, ceremony.id, &self.passkey_name, None, false)?;
                let req = u
                    .session
                    .json(Method::Post, routes::PASSKEY_FINISH, &body)?;
                self.state = AddState::Finishing {
                    rp_id: ceremony.rp_id,
                    passkey,
                };
                Ok(Step::Send(req))
            }
            AddState::Finishing { rp_id, passkey } => {
                http(answer)?.success()?;
                let account = &u.session.account_id;
                let kek = Kek::from_prf(passkey.prf.bytes(), account, &passkey.credential_id);
                let wrap_id = passkey_wrap_id(&passkey.credential_id);
                let wrap = u.vault.wrap_for(&kek, &wrap_id, 0)?;
                let req = u.session.put(&wrap)?;
                self.state = AddState::Wrapping {
                    added: AddedPasskey {
                        credential_id: passkey.credential_id,
                        rp_id,
                        kek,
                        wrap_id,
                    },
                };
                Ok(Step::Send(req))
            }
            AddState::Wrapping { added } => {
                http(answer)?.success()?;
                Ok(Step::Done(added))
            }
            AddState::Spent => Err(ClientError::State("the add-passkey flow is over")),
        }
    }
}

/// Replaces the recovery code, after confirming with a passkey. The new verifier and the vault
/// key wrapped for the new code go to the server in one request, which stores both in one
/// transaction: at every moment exactly one code signs in and unlocks. A refusal changes
/// nothing, and the flow says so ([`ClientError::RecoveryKept`]). Ends with the new code, to
/// show once.
pub struct RotateRecovery {
    code: Option<RecoveryCode>,
    state: RotateState,
}

enum RotateState {
    Confirming(StepUp),
    Current(Proof),
    Rotating,
    Spent,
}

impl RotateRecovery {
    pub fn new() -> Result<Self, ClientError> {
        Ok(RotateRecovery {
            code: Some(RecoveryCode::generate()?),
            state: RotateState::Confirming(StepUp::new(Sensitive::RotateRecovery)),
        })
    }
}

impl VaultFlow for RotateRecovery {
    type Output = RecoveryCode;

    fn next(
        &mut self,
        u: &mut Unlocked,
        answer: Option<Answer>,
    ) -> Result<Step<RecoveryCode>, ClientError> {
        let code = self
            .code
            .as_ref()
            .ok_or(ClientError::State("the rotation flow is over"))?;
        match std::mem::replace(&mut self.state, RotateState::Spent) {
            RotateState::Confirming(mut step_up) => {
                match confirm(&mut step_up, &u.session, answer)? {
                    Ok(proof) => {
                        self.state = RotateState::Current(proof);
                        Ok(Step::Send(u.session.get(RECOVERY_WRAP_ID)))
                    }
                    Err(step) => {
                        self.state = RotateState::Confirming(step_up);
                        Ok(step)
                    }
                }
            }
            RotateState::Current(proof) => {
                let resp = http(answer)?;
                let current = if resp.is_not_found() {
                    0
                } else {
                    resp.json::<RecordOut>()?.version
                };
                let kek = code.kek(&u.session.account_id);
                let wrap = u.vault.wrap_for(&kek, RECOVERY_WRAP_ID, current)?;
                let body = NewRecovery {
                    reauth: proof.body().reauth,
                    verifier: recovery_verifier(code),
                    wrap: wrap.put,
                };
                self.state = RotateState::Rotating;
                Ok(Step::Send(u.session.json(
                    Method::Put,
                    routes::RECOVERY,
                    &body,
                )?))
            }
            RotateState::Rotating => {
                http(answer)?
                    .success()
                    .map_err(|e| ClientError::RecoveryKept(Box::new(e)))?;
                let code = self
                    .code
                    .take()
                    .ok_or(ClientError::State("the rotation flow is over"))?;
                Ok(Step::Done(code))
            }
            RotateState::Spent => Err(ClientError::State("the rotation flow is over")),
        }
    }
}

/// One sensitive request after a step-up, whose body is only the proof: removing a passkey,
/// deleting the account.
struct Confirmed {
    session: Session,
    step_up: StepUp,
    method: Method,
    path: String,
    sent: bool,
}

impl Confirmed {
    fn new(session: &Session, operation: Sensitive, method: Method, path: String) -> Self {
        Confirmed {
            session: session.clone(),
            step_up: StepUp::new(operation),
            method,
            path,
            sent: false,
        }
    }

    fn next(&mut self, answer: Option<Answer>) -> Result<Step<()>, ClientError> {
        if self.sent {
            http(answer)?.success()?;
            return Ok(Step::Done(()));
        }
        match confirm(&mut self.step_up, &self.session, answer)? {
            Ok(proof) => {
                self.sent = true;
                let path = std::mem::take(&mut self.path);
                Ok(Step::Send(self.session.json(
                    self.method,
                    path,
                    &proof.body(),
                )?))
            }
            Err(step) => Ok(step),
        }
    }
}

/// `DELETE /v1/account/passkeys/{credential}`, after confirming with a passkey (possibly that
/// one). The server refuses to remove the last one, drops its vault wrapping, and ends every
/// session it opened: when it is the one this session signed in with, this session ends too.
pub struct RemovePasskey(Confirmed);

impl RemovePasskey {
    pub fn new(session: &Session, credential_id: &[u8]) -> Self {
        let operation = Sensitive::RemovePasskey {
            credential_id: credential_id.to_vec(),
        };
        let path = routes::passkey(credential_id);
        RemovePasskey(Confirmed::new(session, operation, Method::Delete, path))
    }
}

impl Flow for RemovePasskey {
    type Output = ();

    fn next(&mut self, answer: Option<Answer>) -> Result<Step<()>, ClientError> {
        self.0.next(answer)
    }
}

/// `DELETE /v1/account`, after confirming with a passkey: the account and everything in it.
pub struct DeleteAccount(Confirmed);

impl DeleteAccount {
    pub fn new(session: &Session) -> Self {
        let path = routes::ACCOUNT.to_owned();
        DeleteAccount(Confirmed::new(
            session,
            Sensitive::DeleteAccount,
            Method::Delete,
            path,
        ))
    }
}

impl Flow for DeleteAccount {
    type Output = ();

    fn next(&mut self, answer: Option<Answer>) -> Result<Step<()>, ClientError> {
        self.0.next(answer)
    }
}

/// `DELETE /v1/session`: ends the session on the server.
pub fn sign_out(session: &Session) -> Request {
    session.request(Method::Delete, routes::SESSION)
}

/// `GET /v1/account`: the account's passkeys, recovery state, quota and usage.
pub fn account_info(session: &Session) -> Request {
    session.request(Method::Get, routes::ACCOUNT)
}
