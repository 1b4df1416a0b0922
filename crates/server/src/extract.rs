//! Request extractors whose refusals speak the API's JSON error shape: axum's own `Json` and
//! `Query` answer a malformed request in plain text, which clients would have to special-case.
//! The message says which part was wrong, never what it contained.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::Failure;

/// A JSON request body.
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Failure> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(body_refused(&rejection)),
        }
    }
}

fn body_refused(rejection: &JsonRejection) -> Failure {
    let why = match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "the request body must be JSON (Content-Type: application/json)"
        }
        JsonRejection::JsonSyntaxError(_) => "the request body is not valid JSON",
        JsonRejection::JsonDataError(_) => {
            "the request body does not have the fields and types this API expects"
        }
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is too large"
        }
        _ => "the request body could not be read",
    };
    Failure::Rejected {
        status: rejection.status(),
        why,
    }
}

/// The JSON body of a sensitive request, which carries a step-up proof in its `reauth` field.
/// A request without a body, or without that field, is refused as `reauth_required` rather
/// than as malformed: what a client holding only a session lacks is the fresh assertion.
pub(crate) struct Proven<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Proven<T> {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Failure> {
        #[derive(Deserialize)]
        struct Carried {
            reauth: Option<String>,
        }
        let bytes =
            Bytes::from_request(req, state)
                .await
                .map_err(|rejection| Failure::Rejected {
                    status: rejection.status(),
                    why: if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        "the request body is too large"
                    } else {
                        "the request body could not be read"
                    },
                })?;
        serde_json::from_slice::<Carried>(&bytes)
            .ok()
            .and_then(|c| c.reauth)
            .ok_or(Failure::ReauthRequired)?;
        serde_json::from_slice(&bytes)
            .map(Proven)
            .map_err(|_| Failure::Rejected {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                why: "the request body does not have the fields and types this API expects",
            })
    }
}

/// A query string.
pub(crate) struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Failure> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_refused(&rejection)),
        }
    }
}

fn query_refused(rejection: &QueryRejection) -> Failure {
    Failure::Rejected {
        status: rejection.status(),
        why: "the query string is malformed",
    }
}
