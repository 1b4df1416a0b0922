//! What the tests of a browser client drive (feature `testing`, native only): the real
//! account server on a loopback port and a browser as `web/src/drive.ts` is one — a cookie jar,
//! a software authenticator with PRF, and the loop that carries out each JSON step of a
//! [`FlowCore`] — so this crate's tests and the CLI's cross-client test exercise the same
//! steps the page does, against the server users run.

use std::sync::Arc;

use serde_json::Value;
use sotto_api::{b64, SESSION_COOKIE};
use sotto_authenticator::Keyring;
use sotto_server::testing::TestServer;
use tokio::sync::{Mutex, MutexGuard};

use crate::flows::{ClientCore, FlowCore};
use crate::WebError;

/// The real server, and what went over the wire to it.
pub struct Server {
    pub rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    pub test: TestServer,
    /// Every request body, to check none carries a secret.
    pub bodies: Vec<String>,
    /// Every session token the server granted, to check no step carries one.
    pub tokens: Vec<String>,
}

impl Server {
    /// A fresh server on its own runtime (one worker: the tests step flows one at a time).
    pub fn start() -> Self {
        Server::started(sotto_server::testing::spawn())
    }

    /// As [`Server::start`], with a relay that takes (or, `required`, requires) tokens.
    pub fn with_tokens(required: bool) -> Self {
        Server::started(sotto_server::testing::spawn_with_tokens(required))
    }

    fn started(spawn: impl std::future::Future<Output = TestServer>) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let test = rt.block_on(spawn);
        Server {
            rt,
            http: reqwest::Client::new(),
            test,
            bodies: Vec::new(),
            tokens: Vec::new(),
        }
    }

    /// One `http` step carried out as drive.ts does: same origin, the session as a cookie, a
    /// JSON `body` or a `body_b64u` of the step's `content_type`.
    pub fn handle(&mut self, cookie: &mut Option<String>, step: &Value) -> (u16, Vec<u8>) {
        let method =
            reqwest::Method::from_bytes(step["method"].as_str().unwrap().as_bytes()).unwrap();
        let path = step["path"].as_str().unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.test.url))
            .header("origin", &self.test.url);
        if let Some(c) = cookie.as_deref() {
            req = req.header("cookie", format!("{SESSION_COOKIE}={c}"));
        }
        let body = match (step["body"].as_str(), step["body_b64u"].as_str()) {
            (Some(text), None) => Some(text.as_bytes().to_vec()),
            (None, Some(b64u)) => Some(b64::decode(b64u).expect("body_b64u is base64url")),
            (None, None) => None,
            (Some(_), Some(_)) => panic!("a step with two bodies"),
        };
        if let Some(body) = body {
            self.bodies
                .push(String::from_utf8_lossy(&body).into_owned());
            let content_type = step["content_type"].as_str().expect("a body's media type");
            req = req.header("content-type", content_type).body(body);
        }
        let (status, set_cookie, bytes) = self.rt.block_on(async {
            let resp = req.send().await.expect("the server answers");
            let set_cookie = resp
                .headers()
                .get("set-cookie")
                .map(|v| v.to_str().unwrap().to_owned());
            (
                resp.status().as_u16(),
                set_cookie,
                resp.bytes().await.unwrap().to_vec(),
            )
        });
        if let Some(set) = set_cookie {
            let value = set
                .strip_prefix(&format!("{SESSION_COOKIE}="))
                .and_then(|v| v.split(';').next())
                .unwrap_or_default();
            *cookie = (!value.is_empty()).then(|| value.to_owned());
            self.tokens.extend(cookie.clone());
        }
        (status, bytes)
    }

    /// The upgrade request of a page's `new WebSocket(relay, subprotocols)`, as far as the
    /// server's answer: its status and the subprotocol it chose.
    pub fn upgrade(&self, subprotocols: &[&str]) -> (u16, Option<String>) {
        let mut req = self
            .http
            .get(format!("{}/v1/relay", self.test.url))
            .header("origin", &self.test.url)
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        if !subprotocols.is_empty() {
            req = req.header("sec-websocket-protocol", subprotocols.join(", "));
        }
        self.rt.block_on(async {
            let resp = req.send().await.expect("the server answers");
            let chosen = resp
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_owned());
            (resp.status().as_u16(), chosen)
        })
    }

    /// The server's database, to play a server that serves what it likes.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.test.db).unwrap()
    }

    pub fn rows(&self, table: &str) -> i64 {
        self.db()
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }
}

/// A browser: its cookie jar and its passkeys, shared with the browsers [`Browser::synced`]
/// made (a synced passkey provider: one signature counter for all of them).
#[derive(Default)]
pub struct Browser {
    pub cookie: Option<String>,
    pub keyring: Arc<Mutex<Keyring>>,
    /// The authenticator gives no PRF output (a passkey provider without PRF).
    pub no_prf: bool,
    /// Every PRF output handed to a flow, to check none is ever sent.
    pub prfs: Vec<[u8; 32]>,
}

impl Browser {
    pub fn new() -> Self {
        Browser::default()
    }

    /// A browser holding these passkeys (the CLI's passkey file, say).
    pub fn with(keyring: Keyring) -> Self {
        Browser {
            keyring: Arc::new(Mutex::new(keyring)),
            ..Browser::default()
        }
    }

    /// Another browser with this one's passkeys, as a synced passkey provider has them.
    pub fn synced(&self) -> Self {
        Browser {
            keyring: self.keyring.clone(),
            ..Browser::default()
        }
    }

    /// The id of this browser's first passkey.
    pub fn passkey(&self) -> String {
        b64::encode(&self.keyring().credentials()[0].credential_id)
    }

    /// The passkeys, from outside the server's runtime.
    pub fn keyring(&self) -> MutexGuard<'_, Keyring> {
        self.keyring.blocking_lock()
    }

    /// Carries out one step (as drive.ts does) and returns the flow's next one.
    pub fn carry(
        &mut self,
        server: &mut Server,
        flow: &mut FlowCore,
        step: &str,
    ) -> Result<String, WebError> {
        for token in &server.tokens {
            assert!(
                !step.contains(token.as_str()),
                "a step carries the session token"
            );
        }
        let step: Value = serde_json::from_str(step).unwrap();
        let salt = || -> [u8; 32] {
            let salt = b64::decode(step["salt_b64u"].as_str().unwrap()).unwrap();
            assert_eq!(salt, sotto_vault::prf_salt());
            salt.try_into().unwrap()
        };
        let origin = server.test.url.clone();
        let next = match step["kind"].as_str().unwrap() {
            "http" => {
                let (status, body) = server.handle(&mut self.cookie, &step);
                flow.answer_http(status, &body)?
            }
            "create_passkey" => {
                assert_eq!(step["options"]["publicKey"]["rp"]["id"], "localhost");
                let salt = salt();
                let options = step["options"].clone();
                let name = step["name"].as_str().unwrap().to_owned();
                let (credential, id, prf) = server.rt.block_on(async {
                    let reg = self
                        .keyring
                        .lock()
                        .await
                        .register(&origin, options, &salt, &name, 1)
                        .await
                        .unwrap();
                    let prf = *reg.prf.expect("PRF at creation").as_bytes();
                    (reg.response, reg.credential_id, prf)
                });
                self.prfs.push(prf);
                flow.answer_created(&credential.to_string(), &id, &prf)?
            }
            "get_passkey" => {
                let salt = salt();
                let options = step["options"].clone();
                let (credential, id, prf) = server.rt.block_on(async {
                    let a = self
                        .keyring
                        .lock()
                        .await
                        .authenticate(&origin, options, &salt, None)
                        .await
                        .unwrap();
                    let prf = a.prf.map(|p| *p.as_bytes());
                    (a.response, a.credential_id, prf)
                });
                let prf = prf.filter(|_| !self.no_prf);
                self.prfs.extend(prf);
                flow.answer_asserted(&credential.to_string(), &id, prf.as_ref().map(|p| &p[..]))?
            }
            kind => panic!("a step of kind {kind}"),
        };
        Ok(next.to_string())
    }

    pub fn drive(&mut self, server: &mut Server, flow: &mut FlowCore) -> Result<(), WebError> {
        let mut step = flow.start()?.to_string();
        while !step.contains(r#""kind":"done""#) {
            step = self.carry(server, flow, &step)?;
        }
        Ok(())
    }

    pub fn run(&mut self, server: &mut Server, mut flow: FlowCore) -> Result<FlowCore, WebError> {
        self.drive(server, &mut flow)?;
        Ok(flow)
    }

    pub fn sign_in(&mut self, server: &mut Server) -> ClientCore {
        let mut done = self.run(server, FlowCore::sign_in()).unwrap();
        let client = done.take_client().unwrap();
        self.run(server, client.pull()).unwrap();
        client
    }
}
