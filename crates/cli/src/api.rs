//! The HTTP edge of accounts and history: one method per server route, typed with the shared
//! `sotto-api` shapes. Everything sent through here is already public or ciphertext; the session
//! token is the only secret it holds, and it never prints it.

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sotto_api::{
    routes, AccountInfo, ApiError, CeremonyStarted, Changes, Deleted, PutRecord, PutResult,
    RecordOut, RecoverSignIn, RegisterFinish, RegisterStart, SessionGranted, SignInFinish,
};
use sotto_client::{self as client, Request, Response};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum ApiClientError {
    #[error("invalid server URL {0:?}: use http://host:port or https://host")]
    Url(String),
    #[error("cannot reach the server: {0}")]
    Network(String),
    #[error("the server said: {} ({})", .1.message, .1.error)]
    Server(StatusCode, ApiError),
    #[error("the server answered {0} with a body that is not Sotto's API")]
    Malformed(StatusCode),
    #[error("cannot encode the request: {0}")]
    Encode(String),
}

/// Largest answer read from the server: a page of changes is far smaller (the server pages
/// them), so anything larger is a hostile or broken server, refused before it fills memory.
pub const MAX_RESPONSE: usize = 64 * 1024 * 1024;

/// The body of `resp`, refused once it passes `max` bytes (whatever Content-Length claimed).
pub async fn read_bounded(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let too_large = || format!("the answer is larger than the {max} bytes this client reads");
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| e.without_url().to_string())?
    {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl ApiClientError {
    /// The current version the server reported with a write conflict.
    pub fn conflict(&self) -> Option<u64> {
        match self {
            ApiClientError::Server(StatusCode::CONFLICT, e) if e.error == "conflict" => {
                e.current_version
            }
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiClientError::Server(StatusCode::NOT_FOUND, _))
    }
}

pub struct ApiClient {
    base: String,
    origin: String,
    http: reqwest::Client,
    token: Option<Zeroizing<String>>,
}

impl ApiClient {
    pub fn new(server: &str) -> Result<Self, ApiClientError> {
        let base = server.trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&base).map_err(|_| ApiClientError::Url(base.clone()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ApiClientError::Url(base));
        }
        let origin = url.origin().ascii_serialization();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| ApiClientError::Network(e.to_string()))?;
        Ok(ApiClient {
            base,
            origin,
            http,
            token: None,
        })
    }

    /// The web origin WebAuthn ceremonies are bound to (scheme, host and port of the server).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn with_token(mut self, token: Zeroizing<String>) -> Self {
        self.token = Some(token);
        self
    }

    /// Sends a request the client core made, with its session (or this client's), and returns
    /// the answer as received, read up to [`MAX_RESPONSE`]; only a failure to get an answer is
    /// an error here.
    pub async fn send(&self, req: Request) -> Result<Response, ApiClientError> {
        let method = match req.method {
            client::Method::Get => Method::GET,
            client::Method::Put => Method::PUT,
            client::Method::Post => Method::POST,
            client::Method::Delete => Method::DELETE,
        };
        let mut http = self
            .http
            .request(method, format!("{}{}", self.base, req.path));
        if let Some(t) = req.bearer.as_ref() {
            http = http.bearer_auth(t.expose());
        } else if let Some(t) = &self.token {
            http = http.bearer_auth(t.as_str());
        }
        if let Some(body) = req.body {
            http = http
                .header(reqwest::header::CONTENT_TYPE, req.content_type)
                .body(body);
        }
        let resp = http
            .send()
            .await
            .map_err(|e| ApiClientError::Network(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let body = read_bounded(resp, MAX_RESPONSE)
            .await
            .map_err(ApiClientError::Network)?;
        Ok(Response::new(status, body))
    }

    /// One typed route: the body as JSON, the answer decoded, an error answer as the server's.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: client::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ApiClientError> {
        let mut req = Request::new(method, path);
        if let Some(b) = body {
            req.body =
                Some(serde_json::to_vec(b).map_err(|e| ApiClientError::Encode(e.to_string()))?);
        }
        let resp = self.send(req).await?;
        let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::BAD_GATEWAY);
        if status.is_success() {
            serde_json::from_slice(&resp.body).map_err(|_| ApiClientError::Malformed(status))
        } else {
            Err(match serde_json::from_slice::<ApiError>(&resp.body) {
                Ok(e) => ApiClientError::Server(status, e),
                Err(_) => ApiClientError::Malformed(status),
            })
        }
    }

    pub async fn register_start(
        &self,
        display_name: &str,
    ) -> Result<CeremonyStarted, ApiClientError> {
        let body = RegisterStart {
            display_name: display_name.to_owned(),
        };
        self.call(client::Method::Post, routes::REGISTER_START, Some(&body))
            .await
    }

    pub async fn register_finish(
        &self,
        req: &RegisterFinish,
    ) -> Result<SessionGranted, ApiClientError> {
        self.call(client::Method::Post, routes::REGISTER_FINISH, Some(req))
            .await
    }

    pub async fn sign_in_start(&self) -> Result<CeremonyStarted, ApiClientError> {
        self.call::<(), _>(client::Method::Post, routes::SIGN_IN_START, None)
            .await
    }

    pub async fn sign_in_finish(
        &self,
        req: &SignInFinish,
    ) -> Result<SessionGranted, ApiClientError> {
        self.call(client::Method::Post, routes::SIGN_IN_FINISH, Some(req))
            .await
    }

    pub async fn recover(&self, req: &RecoverSignIn) -> Result<SessionGranted, ApiClientError> {
        self.call(client::Method::Post, routes::RECOVER, Some(req))
            .await
    }

    pub async fn sign_out(&self) -> Result<serde_json::Value, ApiClientError> {
        self.call::<(), _>(client::Method::Delete, routes::SESSION, None)
            .await
    }

    pub async fn account(&self) -> Result<AccountInfo, ApiClientError> {
        self.call::<(), _>(client::Method::Get, routes::ACCOUNT, None)
            .await
    }

    pub async fn put(&self, id: &str, put: &PutRecord) -> Result<PutResult, ApiClientError> {
        self.call(client::Method::Put, &routes::record(id), Some(put))
            .await
    }

    pub async fn get(&self, id: &str) -> Result<RecordOut, ApiClientError> {
        self.call::<(), _>(client::Method::Get, &routes::record(id), None)
            .await
    }

    pub async fn delete(&self, id: &str) -> Result<Deleted, ApiClientError> {
        self.call::<(), _>(client::Method::Delete, &routes::record(id), None)
            .await
    }

    pub async fn delete_group(&self, group: &str) -> Result<Deleted, ApiClientError> {
        self.call::<(), _>(client::Method::Delete, &routes::group(group), None)
            .await
    }

    pub async fn changes(&self, since: u64, limit: u32) -> Result<Changes, ApiClientError> {
        self.call::<(), _>(client::Method::Get, &routes::changes(since, limit), None)
            .await
    }

    /// Every change after `since`, following pages.
    pub async fn all_changes(
        &self,
        mut since: u64,
    ) -> Result<(Vec<RecordOut>, u64), ApiClientError> {
        let mut out = Vec::new();
        loop {
            let page = self.changes(since, 1000).await?;
            since = page.next;
            out.extend(page.records);
            if !page.more {
                return Ok((out, since));
            }
        }
    }
}
