//! The network edge of an attested chat: WebSocket to the relay, Noise handshake, evidence
//! verification, then encrypted requests and streamed answers.
//!
//! Trust: the server and everything between here and the enclave are hostile. Nothing of the
//! conversation is encrypted, let alone sent, before `PendingSession::verify` has succeeded.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use sotto_channel::handshake::{Attested, ClientHandshake, Expectations, Verified};
use sotto_channel::messages::{
    ClientMessage, ErrorKind, GenParams, ServerMessage, Stats, WireMessage,
};
use sotto_channel::{ChannelError, Session};
use sotto_release::ReleaseSet;
use sotto_verify::Policy;
use sotto_verify_core::UnixTime;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const READ_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid server URL '{0}': use http(s):// or ws(s)://")]
    Url(String),
    #[error("cannot reach the server: {0}")]
    Connect(String),
    #[error("the connection closed: {0}")]
    Closed(String),
    /// The relay ended the connection for a reason of its own (capacity, a deadline, no such
    /// enclave): not the enclave hanging up.
    #[error("the relay ended the connection: {0}")]
    RelayEnded(String),
    #[error(
        "the enclave closed the connection without answering the handshake ({0}): it may speak \
         a protocol older than {protocol}, or it could not attest",
        protocol = String::from_utf8_lossy(sotto_channel::handshake::PROLOGUE)
    )]
    Unanswered(String),
    #[error("timed out waiting for the enclave")]
    Timeout,
    #[error("{0}")]
    Channel(#[from] ChannelError),
    #[error("the enclave refused the request: {0}")]
    Refused(String),
    #[error("the relay refused the connection ({status}): {reason}")]
    RelayRefused { status: u16, reason: String },
    #[error("the conversation no longer fits the model's context: {0}")]
    ContextExceeded(String),
    #[error("the enclave is busy, try again shortly: {0}")]
    Busy(String),
}

/// The relay URL for a server base URL (`http://host:port` -> `ws://host:port/v1/relay`).
pub fn relay_url(server: &str) -> Result<String, ClientError> {
    let server = server.trim_end_matches('/');
    let (scheme, rest) = server
        .split_once("://")
        .ok_or_else(|| ClientError::Url(server.into()))?;
    let ws = match scheme {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return Err(ClientError::Url(server.into())),
    };
    if rest.is_empty() {
        return Err(ClientError::Url(server.into()));
    }
    let path = if rest.contains('/') { "" } else { "/v1/relay" };
    Ok(format!("{ws}://{rest}{path}"))
}

pub fn now() -> UnixTime {
    UnixTime(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An enclave whose evidence verified, waiting for the release check.
pub struct Pending {
    ws: Ws,
    attested: Attested,
}

impl Pending {
    pub fn attested(&self) -> &Attested {
        &self.attested
    }

    /// Requires a release of the verified log to list the enclave's build.
    pub async fn admit(mut self, releases: &ReleaseSet) -> Result<Connection, ClientError> {
        match self.attested.admit(releases) {
            Ok((session, verified)) => Ok(Connection {
                ws: self.ws,
                session,
                verified,
            }),
            Err(e) => {
                let _ = self.ws.close(None).await;
                Err(e.into())
            }
        }
    }
}

/// A verified, encrypted channel to one enclave.
pub struct Connection {
    ws: Ws,
    session: Session,
    verified: Verified,
}

async fn next_binary(ws: &mut Ws) -> Result<Vec<u8>, ClientError> {
    loop {
        let msg = tokio::time::timeout(READ_TIMEOUT, ws.next())
            .await
            .map_err(|_| ClientError::Timeout)?;
        match msg {
            None => {
                return Err(ClientError::Closed(
                    "the relay closed the connection".into(),
                ))
            }
            Some(Err(e)) => return Err(ClientError::Closed(e.to_string())),
            Some(Ok(Message::Binary(b))) => return Ok(b.to_vec()),
            Some(Ok(Message::Close(frame))) => {
                return Err(match frame {
                    // The relay's own refusals (capacity, deadlines, no such enclave) close with
                    // a code of their own; an enclave hanging up closes normally.
                    Some(f) if f.code != CloseCode::Normal => {
                        ClientError::RelayEnded(f.reason.to_string())
                    }
                    Some(f) => ClientError::Closed(f.reason.to_string()),
                    None => ClientError::Closed("no reason given".into()),
                });
            }
            Some(Ok(_)) => continue,
        }
    }
}

impl Connection {
    /// Connects through the relay and verifies the enclave's evidence and its binding to the
    /// handshake key and the manifest. Nothing can be sent until [`Pending::admit`].
    pub async fn attest(
        server: &str,
        policy: &Policy,
        expect: &Expectations,
        at: UnixTime,
    ) -> Result<Pending, ClientError> {
        Self::attest_paying(server, None, policy, expect, at).await
    }

    /// [`Connection::attest`], spending a relay token: `token` is its `Authorization` value
    /// (`PrivateToken token="…"`). It is the only thing about the user the upgrade carries: no
    /// session, cookie or account id goes to the relay.
    pub async fn attest_paying(
        server: &str,
        token: Option<&str>,
        policy: &Policy,
        expect: &Expectations,
        at: UnixTime,
    ) -> Result<Pending, ClientError> {
        let url = relay_url(server)?;
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|_| ClientError::Url(url.clone()))?;
        if let Some(token) = token {
            let value = HeaderValue::from_str(token).map_err(|_| {
                ClientError::Connect("the relay token is not a header value".into())
            })?;
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        let (mut ws, _) =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request))
                .await
                .map_err(|_| ClientError::Timeout)?
                .map_err(upgrade_refused)?;
        let (handshake, hello) = ClientHandshake::start()?;
        ws.send(Message::Binary(hello.0.into()))
            .await
            .map_err(|e| ClientError::Closed(e.to_string()))?;
        let reply = next_binary(&mut ws).await.map_err(|e| match e {
            ClientError::Closed(why) => ClientError::Unanswered(why),
            e => e,
        })?;
        let attested = handshake
            .read_response(&reply)
            .and_then(|pending| pending.verify(policy, expect, at));
        match attested {
            Ok(attested) => Ok(Pending { ws, attested }),
            Err(e) => {
                let _ = ws.close(None).await;
                Err(e.into())
            }
        }
    }

    /// [`Connection::attest`], then [`Pending::admit`] against releases checked beforehand.
    pub async fn open(
        server: &str,
        policy: &Policy,
        releases: &ReleaseSet,
        expect: &Expectations,
        at: UnixTime,
    ) -> Result<Self, ClientError> {
        Self::attest(server, policy, expect, at)
            .await?
            .admit(releases)
            .await
    }

    pub fn verified(&self) -> &Verified {
        &self.verified
    }

    /// Sends the whole conversation and streams the answer's pieces to `on_piece`.
    pub async fn chat(
        &mut self,
        messages: &[WireMessage],
        params: GenParams,
        on_piece: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Stats, ClientError> {
        let request = ClientMessage::Chat {
            messages: messages.to_vec(),
            params,
        }
        .encode();
        for part in self.session.seal(&request)? {
            self.ws
                .send(Message::Binary(part.into()))
                .await
                .map_err(|e| ClientError::Closed(e.to_string()))?;
        }
        loop {
            let frame = next_binary(&mut self.ws).await?;
            let Some(plain) = self.session.open(&frame)? else {
                continue;
            };
            match ServerMessage::decode(&plain)? {
                ServerMessage::Token(piece) => on_piece(&piece),
                ServerMessage::Done(stats) => return Ok(stats),
                ServerMessage::Error {
                    kind: ErrorKind::ContextExceeded,
                    message,
                } => return Err(ClientError::ContextExceeded(message)),
                ServerMessage::Error {
                    kind: ErrorKind::Busy,
                    message,
                } => return Err(ClientError::Busy(message)),
                ServerMessage::Error { message, .. } => return Err(ClientError::Refused(message)),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// An upgrade the relay answered with an HTTP error carries its reason in the body (a token
/// refused, say); shown as printable text only, and short.
fn upgrade_refused(e: tokio_tungstenite::tungstenite::Error) -> ClientError {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            let reason: String = resp
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_control())
                .take(400)
                .collect();
            ClientError::RelayRefused {
                status: resp.status().as_u16(),
                reason: if reason.is_empty() {
                    "no reason given".into()
                } else {
                    reason
                },
            }
        }
        e => ClientError::Connect(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls() {
        assert_eq!(
            relay_url("http://127.0.0.1:8080").unwrap(),
            "ws://127.0.0.1:8080/v1/relay"
        );
        assert_eq!(
            relay_url("https://sotto.example/").unwrap(),
            "wss://sotto.example/v1/relay"
        );
        assert_eq!(relay_url("ws://h:1/custom").unwrap(), "ws://h:1/custom");
        assert!(relay_url("ftp://x").is_err());
        assert!(relay_url("localhost:8080").is_err());
    }
}
