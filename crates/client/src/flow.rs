//! The shape every flow has: a state machine the driver feeds answers to.

use crate::account::Unlocked;
use crate::http::{ClientError, Request, Response};
use crate::passkey::{Assertion, NewPasskey, PasskeyRequest};

/// What a flow wants next.
pub enum Step<T> {
    /// Send this request and answer with [`Answer::Http`].
    Send(Request),
    /// Create a passkey (`navigator.credentials.create`, or the CLI's authenticator) and
    /// answer with [`Answer::Created`].
    CreatePasskey(PasskeyRequest),
    /// Assert a passkey (`navigator.credentials.get`) and answer with [`Answer::Asserted`].
    GetPasskey(PasskeyRequest),
    /// The flow is over.
    Done(T),
}

/// What the driver did.
pub enum Answer {
    Http(Response),
    Created(NewPasskey),
    Asserted(Assertion),
}

/// A flow: call [`Flow::next`] with `None` first, then with the answer to each step, until it
/// returns [`Step::Done`]. After an error or `Done` the flow is spent.
pub trait Flow {
    type Output;
    fn next(&mut self, answer: Option<Answer>) -> Result<Step<Self::Output>, ClientError>;
}

pub(crate) fn http(answer: Option<Answer>) -> Result<Response, ClientError> {
    match answer {
        Some(Answer::Http(r)) => Ok(r),
        _ => Err(ClientError::State("expected the answer to an HTTP request")),
    }
}

pub(crate) fn created(answer: Option<Answer>) -> Result<NewPasskey, ClientError> {
    match answer {
        Some(Answer::Created(p)) => Ok(p),
        _ => Err(ClientError::State("expected a created passkey")),
    }
}

pub(crate) fn asserted(answer: Option<Answer>) -> Result<Assertion, ClientError> {
    match answer {
        Some(Answer::Asserted(a)) => Ok(a),
        _ => Err(ClientError::State("expected a passkey assertion")),
    }
}

/// A flow over an unlocked client: it reads and updates the vault, the session and the
/// history it is given at every step.
pub trait VaultFlow {
    type Output;
    fn next(
        &mut self,
        client: &mut Unlocked,
        answer: Option<Answer>,
    ) -> Result<Step<Self::Output>, ClientError>;
}

impl<T> Step<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Step<U> {
        match self {
            Step::Send(r) => Step::Send(r),
            Step::CreatePasskey(p) => Step::CreatePasskey(p),
            Step::GetPasskey(p) => Step::GetPasskey(p),
            Step::Done(t) => Step::Done(f(t)),
        }
    }

    /// A step of an inner flow that is not its end, passed on by the flow that runs it.
    pub(crate) fn pending<U>(self) -> Result<Step<U>, ClientError> {
        match self {
            Step::Send(r) => Ok(Step::Send(r)),
            Step::CreatePasskey(p) => Ok(Step::CreatePasskey(p)),
            Step::GetPasskey(p) => Ok(Step::GetPasskey(p)),
            Step::Done(_) => Err(ClientError::State("an inner flow ended unexpectedly")),
        }
    }
}
