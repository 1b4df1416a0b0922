//! Errors as the API reports them: a status, a stable code, and one readable sentence. Messages
//! are written here, from the kind of failure; no request or stored content is ever echoed.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sotto_api::ApiError;
use sotto_store::StoreError;
use tracing::error;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the WebAuthn relying party is misconfigured (rp id {rp_id:?}, origin {origin:?}): {reason}")]
    RelyingParty {
        rp_id: String,
        origin: String,
        reason: String,
    },
    #[error("the token issuer is misconfigured: {0}")]
    Tokens(#[from] sotto_tokens::TokenError),
    #[error("the enclave pool is misconfigured: {0}")]
    Pool(String),
}

#[derive(Debug)]
pub(crate) enum Failure {
    Unauthorized,
    /// A sensitive operation without a valid step-up proof for it.
    ReauthRequired,
    BadRecovery,
    NotFound(&'static str),
    BadRequest(&'static str),
    /// A request axum could not extract (body, query), with axum's status.
    Rejected {
        status: StatusCode,
        why: &'static str,
    },
    Conflict {
        current: u64,
    },
    Quota(&'static str),
    RateLimited,
    /// Too many ceremonies or proofs in flight on the whole server.
    Busy,
    WebAuthn(&'static str),
    LastPasskey,
    Internal,
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { current, .. } => Failure::Conflict { current },
            StoreError::QuotaExceeded(what) => Failure::Quota(what),
            StoreError::NoAccount => Failure::Unauthorized,
            StoreError::DuplicateCredential => {
                Failure::WebAuthn("that passkey is already registered")
            }
            StoreError::LastCredential => Failure::LastPasskey,
            StoreError::DuplicateRecovery => {
                Failure::BadRequest("that recovery code is already in use; make another")
            }
            StoreError::Backend(reason) => {
                error!(%reason, "storage failed");
                Failure::Internal
            }
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, code, message, current_version) = match self {
            Failure::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "sign in first: no valid session".to_owned(),
                None,
            ),
            Failure::ReauthRequired => (
                StatusCode::FORBIDDEN,
                "reauth_required",
                "this needs a fresh passkey confirmation, not only a session: confirm with a \
                 passkey (reauth/start, reauth/finish) and send the proof once, within five \
                 minutes"
                    .to_owned(),
                None,
            ),
            Failure::BadRecovery => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "that recovery code does not belong to any account".to_owned(),
                None,
            ),
            Failure::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no such {what}"),
                None,
            ),
            Failure::BadRequest(why) => {
                (StatusCode::BAD_REQUEST, "bad_request", why.to_owned(), None)
            }
            Failure::Rejected { status, why } => (status, "bad_request", why.to_owned(), None),
            Failure::Conflict { current } => (
                StatusCode::CONFLICT,
                "conflict",
                format!("the record changed meanwhile; it is now at version {current}"),
                Some(current),
            ),
            Failure::Quota(what) => (
                StatusCode::INSUFFICIENT_STORAGE,
                "quota_exceeded",
                format!("the account's storage quota ({what}) is used up"),
                None,
            ),
            Failure::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many attempts from this address; wait a minute".to_owned(),
                None,
            ),
            Failure::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many passkey ceremonies are in progress on this server; try again in a few \
                 minutes"
                    .to_owned(),
                None,
            ),
            Failure::WebAuthn(why) => (StatusCode::BAD_REQUEST, "webauthn", why.to_owned(), None),
            Failure::LastPasskey => (
                StatusCode::CONFLICT,
                "last_passkey",
                "this is the account's only passkey; add another before removing it".to_owned(),
                None,
            ),
            Failure::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server failed; nothing was changed".to_owned(),
                None,
            ),
        };
        (
            status,
            Json(ApiError {
                error: code.to_owned(),
                message,
                current_version,
            }),
        )
            .into_response()
    }
}
