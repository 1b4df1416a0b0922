//! Requests as data: what a flow asks its driver to send, and the answer it gets back. The
//! driver adds nothing but the transport (and, in a browser, the session cookie).

use serde::de::DeserializeOwned;
use serde::Serialize;
use sotto_api::ApiError;
use sotto_vault::{RecoveryCodeError, VaultError};
use zeroize::Zeroizing;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
    Post,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// A session token: a bearer secret. No Debug, zeroized when dropped.
#[derive(Clone)]
pub struct Token(Zeroizing<String>);

impl Token {
    pub fn new(token: String) -> Self {
        Token(Zeroizing::new(token))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// One HTTP request to the account server. `path` starts with `/`; `body` is JSON unless
/// `content_type` says otherwise.
pub struct Request {
    pub method: Method,
    pub path: String,
    pub body: Option<Vec<u8>>,
    /// The body's media type.
    pub content_type: &'static str,
    /// The session to present (`Authorization: Bearer`); a browser sends its cookie instead.
    pub bearer: Option<Token>,
}

impl Request {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Request {
            method,
            path: path.into(),
            body: None,
            content_type: "application/json",
            bearer: None,
        }
    }

    pub fn json<T: Serialize>(
        method: Method,
        path: impl Into<String>,
        body: &T,
    ) -> Result<Self, ClientError> {
        let body = serde_json::to_vec(body).map_err(|_| ClientError::Vault(VaultError::Encode))?;
        Ok(Request {
            body: Some(body),
            ..Request::new(method, path)
        })
    }

    /// A request whose body is `body`, of media type `content_type`.
    pub fn bytes(
        method: Method,
        path: impl Into<String>,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Self {
        Request {
            body: Some(body),
            content_type,
            ..Request::new(method, path)
        }
    }

    pub fn authorized(mut self, token: Option<&Token>) -> Self {
        self.bearer = token.cloned();
        self
    }
}

/// The server's answer: status and body, as received.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, body: Vec<u8>) -> Self {
        Response { status, body }
    }

    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The success body as `T`, or the server's error.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        if !self.ok() {
            return Err(self.error());
        }
        serde_json::from_slice(&self.body).map_err(|_| ClientError::Malformed {
            status: self.status,
        })
    }

    /// A success whose body the flow does not need.
    pub fn success(&self) -> Result<(), ClientError> {
        if self.ok() {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }

    /// A write refused because the record's version moved on.
    pub fn is_conflict(&self) -> bool {
        self.status == 409
            && serde_json::from_slice::<ApiError>(&self.body).is_ok_and(|e| e.error == "conflict")
    }

    pub(crate) fn error(&self) -> ClientError {
        match serde_json::from_slice::<ApiError>(&self.body) {
            Ok(error) => ClientError::Server {
                status: self.status,
                error,
            },
            Err(_) => ClientError::Malformed {
                status: self.status,
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the server said: {} ({})", .error.message, .error.error)]
    Server { status: u16, error: ApiError },
    #[error("the server answered {status} with a body that is not Sotto's API")]
    Malformed { status: u16 },
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("refusing the history: record {id}: {reason}")]
    Refused { id: String, reason: VaultError },
    #[error(transparent)]
    RecoveryCode(#[from] RecoveryCodeError),
    #[error("this passkey gave no PRF output, so it cannot unlock the vault: unlock with the recovery code")]
    NoPrf,
    #[error("the recovery code was not replaced, and the old one still works: {0}")]
    RecoveryKept(Box<ClientError>),
    #[error("the server granted a session for another account than the one being unlocked")]
    WrongAccount,
    #[error("no conversation {0:?}")]
    NoConversation(String),
    #[error("no message {0:?} in this conversation")]
    NoMessage(String),
    #[error("conversation id {0:?} matches several conversations; give more characters")]
    Ambiguous(String),
    #[error(
        "could not save the conversation header after {0} attempts: other devices keep changing it"
    )]
    Contended(u32),
    #[error("{0}")]
    Protocol(&'static str),
    #[error("relay tokens: {0}")]
    Tokens(#[from] sotto_tokens::TokenError),
    #[error("client bug: {0}")]
    State(&'static str),
}

impl ClientError {
    /// The server's stable error code, when the server refused the request.
    pub fn server_code(&self) -> Option<&str> {
        match self {
            ClientError::Server { error, .. } => Some(&error.error),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Server { status, .. } | ClientError::Malformed { status } => Some(*status),
            _ => None,
        }
    }
}
