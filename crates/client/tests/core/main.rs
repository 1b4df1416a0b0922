//! The client core's tests, in one binary: the flows ([`flows`]) and the history's integrity
//! against a hostile server ([`chain`]), driven step by step against the real account server
//! (SQLite) by a device with a software passkey, the harness below; and the relay token flow
//! fed by hand as a hostile issuer would answer it ([`tokens`]).

mod chain;
mod flows;
mod tokens;

use sotto_api::Changes;
use sotto_authenticator::Keyring;
use sotto_client::{
    Answer, Assertion, ClientError, Flow, Method, NewPasskey, Prf, Pull, Request, Response, SignUp,
    Step, Unlocked, VaultFlow,
};
use sotto_server::testing::TestServer;
use sotto_vault::{Message, Role};
use zeroize::Zeroizing;

pub async fn server() -> TestServer {
    sotto_server::testing::spawn().await
}

/// One device: an HTTP connection to the server and a passkey file's worth of credentials.
pub struct Device {
    url: String,
    http: reqwest::Client,
    keyring: Keyring,
    /// Answer passkey assertions without a PRF output, like a passkey provider without PRF.
    pub no_prf: bool,
}

impl Device {
    pub fn new(server: &TestServer) -> Self {
        Device {
            url: server.url.clone(),
            http: reqwest::Client::new(),
            keyring: Keyring::new(),
            no_prf: false,
        }
    }

    pub async fn send(&self, req: Request) -> Response {
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Put => reqwest::Method::PUT,
            Method::Post => reqwest::Method::POST,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut r = self
            .http
            .request(method, format!("{}{}", self.url, req.path));
        if let Some(t) = &req.bearer {
            r = r.bearer_auth(t.expose());
        }
        if let Some(body) = req.body {
            r = r.header("content-type", "application/json").body(body);
        }
        let resp = r.send().await.expect("the server answers");
        let status = resp.status().as_u16();
        Response::new(status, resp.bytes().await.unwrap().to_vec())
    }

    pub async fn carry<T>(&mut self, step: Step<T>) -> Answer {
        match step {
            Step::Send(req) => Answer::Http(self.send(req).await),
            Step::CreatePasskey(p) => {
                let reg = self
                    .keyring
                    .register(&self.url, p.options, &p.salt, "test", 1)
                    .await
                    .unwrap();
                let prf = match reg.prf {
                    Some(prf) => *prf.as_bytes(),
                    None => *self
                        .keyring
                        .prf("localhost", &reg.credential_id, &p.salt)
                        .await
                        .unwrap()
                        .as_bytes(),
                };
                Answer::Created(NewPasskey {
                    credential: reg.response,
                    credential_id: reg.credential_id,
                    prf: Prf::new(prf),
                })
            }
            Step::GetPasskey(p) => {
                let a = self
                    .keyring
                    .authenticate(&self.url, p.options, &p.salt, None)
                    .await
                    .unwrap();
                Answer::Asserted(Assertion {
                    credential: a.response,
                    credential_id: a.credential_id,
                    prf: a
                        .prf
                        .filter(|_| !self.no_prf)
                        .map(|p| Prf::new(*p.as_bytes())),
                })
            }
            Step::Done(_) => panic!("a finished flow has nothing to carry"),
        }
    }

    pub async fn run<F: Flow>(&mut self, mut flow: F) -> Result<F::Output, ClientError> {
        let mut answer = None;
        loop {
            match flow.next(answer.take())? {
                Step::Done(out) => return Ok(out),
                step => answer = Some(self.carry(step).await),
            }
        }
    }

    pub async fn on<F: VaultFlow>(
        &mut self,
        u: &mut Unlocked,
        mut flow: F,
    ) -> Result<F::Output, ClientError> {
        let mut answer = None;
        loop {
            match flow.next(u, answer.take())? {
                Step::Done(out) => return Ok(out),
                step => answer = Some(self.carry(step).await),
            }
        }
    }

    /// Runs a pull through a hostile server: every page of the change feed is handed to
    /// `edit` before the client sees it.
    pub async fn pull_through(
        &mut self,
        u: &mut Unlocked,
        mut edit: impl FnMut(&mut Changes),
    ) -> Result<usize, ClientError> {
        let mut flow = Pull::new();
        let mut answer = None;
        loop {
            match flow.next(u, answer.take())? {
                Step::Done(n) => return Ok(n),
                Step::Send(req) => {
                    let resp = self.send(req).await;
                    let mut page: Changes = serde_json::from_slice(&resp.body).unwrap();
                    edit(&mut page);
                    let body = serde_json::to_vec(&page).unwrap();
                    answer = Some(Answer::Http(Response::new(resp.status, body)));
                }
                _ => panic!("a pull only sends requests"),
            }
        }
    }
}

/// A new device that signs up (display name "Ada", this passkey name) and stays signed in:
/// the device, its unlocked history and the recovery code shown at sign-up.
pub async fn signed_up(s: &TestServer, passkey: &str) -> (Device, Unlocked, Zeroizing<String>) {
    let mut device = Device::new(s);
    let done = device
        .run(SignUp::new("Ada", passkey).unwrap().bearer())
        .await
        .unwrap();
    let code = done.recovery_code.to_text();
    (device, done.unlocked, code)
}

pub fn texts(u: &Unlocked, conv: &str) -> Vec<String> {
    u.history.conversations()[conv]
        .messages()
        .map(|(_, m)| m.content.clone())
        .collect()
}

pub fn turn(messages: &[(Role, &str, u64)]) -> Vec<Message> {
    messages
        .iter()
        .map(|&(role, text, at)| Message::new(role, text, at))
        .collect()
}
