//! The browser's flows, natively, through the same JSON steps and answers the page's driver
//! (web/src/drive.ts) exchanges, against a stand-in for the account server (a cookie session,
//! ceremonies that accept any credential, and the record store's compare-and-swap writes,
//! deletion markers and paged change feed) and a stand-in authenticator with PRF: sign-up,
//! passkey sign-in, the recovery code on a new device and on a passkey without PRF, passkeys,
//! a new recovery code, turns, header edits racing another device, deletions, tampered, moved
//! and rolled-back records, and signing out under a running flow. No step carries the session
//! token.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sotto_api::{
    b64, AccountInfo, ApiError, CeremonyStarted, Changes, Deleted, PasskeyInfo, PutRecord, Quota,
    RecordOut, RecoverSignIn, RecoveryVerifier, RegisterFinish, SessionGranted, SignInFinish,
    Usage,
};
use sotto_client::ClientError;
use sotto_vault::VaultError;
use sotto_web::flows::{ClientCore, FlowCore};
use sotto_web::WebError;

struct Account {
    id: String,
    credentials: Vec<(Vec<u8>, String)>,
    recovery: Option<RecoveryVerifier>,
    records: BTreeMap<String, RecordOut>,
}

/// The account server as far as the flows use it.
struct Server {
    accounts: Vec<Account>,
    /// Session token → account id; the browser presents the token as its cookie.
    sessions: BTreeMap<String, String>,
    seq: u64,
    issued: u64,
    /// Every request body, to check none carries a secret.
    bodies: Vec<String>,
}

type Reply = (u16, String);

fn ok(v: impl serde::Serialize) -> Reply {
    (200, serde_json::to_string(&v).unwrap())
}

fn refuse(status: u16, error: &str, message: &str) -> Reply {
    let e = ApiError {
        error: error.into(),
        message: message.into(),
        current_version: None,
    };
    (status, serde_json::to_string(&e).unwrap())
}

fn parse<T: serde::de::DeserializeOwned>(body: Option<&str>) -> T {
    serde_json::from_str(body.expect("a body")).expect("the body the server expects")
}

impl Server {
    fn new() -> Self {
        Server {
            accounts: Vec::new(),
            sessions: BTreeMap::new(),
            seq: 0,
            issued: 0,
            bodies: Vec::new(),
        }
    }

    fn account_mut(&mut self, id: &str) -> &mut Account {
        self.accounts.iter_mut().find(|a| a.id == id).unwrap()
    }

    fn the_account(&mut self) -> &mut Account {
        &mut self.accounts[0]
    }

    fn ceremony(&mut self, sign_in: bool) -> Reply {
        self.issued += 1;
        let public_key = if sign_in {
            json!({"challenge": "Y2hhbGxlbmdl", "rpId": "localhost"})
        } else {
            json!({"challenge": "Y2hhbGxlbmdl", "rp": {"id": "localhost", "name": "Sotto"}})
        };
        ok(CeremonyStarted {
            ceremony_id: format!("ceremony-{}", self.issued),
            options: json!({ "publicKey": public_key }),
        })
    }

    fn grant(
        &mut self,
        cookie: &mut Option<String>,
        account: &str,
        cred: Option<Vec<u8>>,
    ) -> Reply {
        self.issued += 1;
        let token = format!("session-token-{}", self.issued);
        self.sessions.insert(token.clone(), account.to_owned());
        *cookie = Some(token.clone());
        ok(SessionGranted {
            account_id: account.to_owned(),
            session_token: token,
            credential_id: cred,
        })
    }

    fn put(&mut self, account: &str, id: &str, put: PutRecord) -> Reply {
        self.seq += 1;
        let seq = self.seq;
        let records = &mut self.account_mut(account).records;
        let current = records.get(id).map(|r| r.version).unwrap_or(0);
        if current != put.expected_version {
            return refuse(409, "conflict", "the record changed");
        }
        records.insert(
            id.to_owned(),
            RecordOut {
                id: id.to_owned(),
                group: put.group,
                kind: put.kind,
                version: current + 1,
                seq,
                ciphertext: Some(put.ciphertext),
            },
        );
        ok(json!({"version": current + 1, "seq": seq}))
    }

    /// Replaces a record by a deletion marker; false when there is none to delete.
    fn tombstone(&mut self, account: &str, id: &str) -> bool {
        self.seq += 1;
        let seq = self.seq;
        match self.account_mut(account).records.get_mut(id) {
            Some(r) if r.ciphertext.is_some() => {
                r.version += 1;
                r.seq = seq;
                r.ciphertext = None;
                true
            }
            _ => false,
        }
    }

    /// A page of at most 4 changes, so pulls follow pages.
    fn changes(&mut self, account: &str, since: u64) -> Reply {
        let mut all: Vec<RecordOut> = self
            .account_mut(account)
            .records
            .values()
            .filter(|r| r.seq > since)
            .cloned()
            .collect();
        all.sort_by_key(|r| r.seq);
        let more = all.len() > 4;
        all.truncate(4);
        let next = all.last().map(|r| r.seq).unwrap_or(since);
        ok(Changes {
            records: all,
            next,
            more,
        })
    }

    fn handle(
        &mut self,
        cookie: &mut Option<String>,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Reply {
        if let Some(b) = body {
            self.bodies.push(b.to_owned());
        }
        match (method, path) {
            ("POST", "/v1/account/register/start") => return self.ceremony(false),
            ("POST", "/v1/account/register/finish") => {
                let f: RegisterFinish = parse(body);
                let id = format!("acct-{}", self.accounts.len() + 1);
                let cred = raw_id(&f.credential);
                self.accounts.push(Account {
                    id: id.clone(),
                    credentials: vec![(cred.clone(), f.passkey_name)],
                    recovery: f.recovery,
                    records: BTreeMap::new(),
                });
                return self.grant(cookie, &id, Some(cred));
            }
            ("POST", "/v1/session/start") => return self.ceremony(true),
            ("POST", "/v1/session/finish") => {
                let f: SignInFinish = parse(body);
                let cred = raw_id(&f.credential);
                let account = self
                    .accounts
                    .iter()
                    .find(|a| a.credentials.iter().any(|(c, _)| *c == cred))
                    .map(|a| a.id.clone());
                return match account {
                    Some(a) => self.grant(cookie, &a, Some(cred)),
                    None => refuse(401, "unauthorized", "this passkey belongs to no account"),
                };
            }
            ("POST", "/v1/session/recover") => {
                let r: RecoverSignIn = parse(body);
                let verifier = sotto_vault::verifier_of(&r.secret);
                let account = self
                    .accounts
                    .iter()
                    .find(|a| {
                        a.recovery
                            .as_ref()
                            .is_some_and(|v| v.lookup == r.lookup && v.verifier == verifier)
                    })
                    .map(|a| a.id.clone());
                return match account {
                    Some(a) => self.grant(cookie, &a, None),
                    None => refuse(
                        401,
                        "unauthorized",
                        "this recovery code does not belong to any account",
                    ),
                };
            }
            _ => {}
        }
        let Some(account) = cookie.as_ref().and_then(|c| self.sessions.get(c)).cloned() else {
            return refuse(401, "unauthorized", "sign in first");
        };
        let record = path.strip_prefix("/v1/records/").map(str::to_owned);
        match (method, path) {
            ("DELETE", "/v1/session") => {
                self.sessions.retain(|_, a| *a != account);
                *cookie = None;
                ok(json!({}))
            }
            ("GET", "/v1/account") => {
                let a = self.account_mut(&account);
                ok(AccountInfo {
                    account_id: a.id.clone(),
                    created_at: 1,
                    passkeys: a
                        .credentials
                        .iter()
                        .map(|(c, name)| PasskeyInfo {
                            credential_id: c.clone(),
                            name: name.clone(),
                            created_at: 1,
                            last_used_at: None,
                        })
                        .collect(),
                    has_recovery: a.recovery.is_some(),
                    quota: Quota {
                        max_bytes: 1 << 20,
                        max_records: 1000,
                    },
                    usage: Usage::default(),
                })
            }
            ("DELETE", "/v1/account") => {
                self.accounts.retain(|a| a.id != account);
                self.sessions.retain(|_, a| *a != account);
                *cookie = None;
                ok(json!({}))
            }
            ("PUT", "/v1/account/recovery") => {
                self.account_mut(&account).recovery = Some(parse(body));
                ok(json!({}))
            }
            ("POST", "/v1/account/passkeys/start") => self.ceremony(false),
            ("POST", "/v1/account/passkeys/finish") => {
                let f: RegisterFinish = parse(body);
                let cred = raw_id(&f.credential);
                self.account_mut(&account)
                    .credentials
                    .push((cred, f.passkey_name));
                ok(json!({}))
            }
            ("DELETE", p) if p.starts_with("/v1/account/passkeys/") => {
                let cred = b64::decode(&p["/v1/account/passkeys/".len()..]).unwrap();
                let a = self.account_mut(&account);
                if a.credentials.len() == 1 {
                    return refuse(409, "last_passkey", "the last passkey cannot be removed");
                }
                a.credentials.retain(|(c, _)| *c != cred);
                self.tombstone(&account, &sotto_vault::passkey_wrap_id(&cred));
                ok(json!({"removed": true}))
            }
            ("GET", p) if p.starts_with("/v1/records?") => {
                let since = p
                    .split(['?', '&'])
                    .find_map(|kv| kv.strip_prefix("since="))
                    .unwrap()
                    .parse()
                    .unwrap();
                self.changes(&account, since)
            }
            ("GET", _) if record.is_some() => {
                let id = record.unwrap();
                match self.account_mut(&account).records.get(&id) {
                    Some(r) if r.ciphertext.is_some() => ok(r),
                    _ => refuse(404, "not_found", "no such record"),
                }
            }
            ("PUT", _) if record.is_some() => self.put(&account, &record.unwrap(), parse(body)),
            ("DELETE", _) if record.is_some() => {
                if self.tombstone(&account, &record.unwrap()) {
                    ok(Deleted { deleted: 1 })
                } else {
                    refuse(404, "not_found", "no such record")
                }
            }
            ("DELETE", p) if p.starts_with("/v1/groups/") => {
                let group = &p["/v1/groups/".len()..];
                let ids: Vec<String> = self
                    .account_mut(&account)
                    .records
                    .values()
                    .filter(|r| r.group.as_deref() == Some(group))
                    .map(|r| r.id.clone())
                    .collect();
                let deleted = ids.iter().filter(|id| self.tombstone(&account, id)).count();
                ok(Deleted {
                    deleted: deleted as u64,
                })
            }
            _ => panic!("the stand-in server has no {method} {path}"),
        }
    }
}

fn raw_id(credential: &Value) -> Vec<u8> {
    b64::decode(credential["rawId"].as_str().unwrap()).unwrap()
}

/// One browser: its cookie, and its authenticator's passkeys (id → PRF output).
struct Browser {
    cookie: Option<String>,
    passkeys: Vec<(Vec<u8>, [u8; 32])>,
    /// The authenticator gives no PRF output (a passkey provider without PRF).
    no_prf: bool,
}

static NEXT_PASSKEY: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);

impl Browser {
    fn new() -> Self {
        Browser {
            cookie: None,
            passkeys: Vec::new(),
            no_prf: false,
        }
    }

    /// Carries out one step (as drive.ts does) and returns the flow's next one.
    fn carry(
        &mut self,
        server: &mut Server,
        flow: &mut FlowCore,
        step: &str,
    ) -> Result<String, WebError> {
        for token in server.sessions.keys() {
            assert!(
                !step.contains(token.as_str()),
                "a step carries the session token"
            );
        }
        let step: Value = serde_json::from_str(step).unwrap();
        let next = match step["kind"].as_str().unwrap() {
            "http" => {
                let (status, body) = server.handle(
                    &mut self.cookie,
                    step["method"].as_str().unwrap(),
                    step["path"].as_str().unwrap(),
                    step["body"].as_str(),
                );
                flow.answer_http(status, body.as_bytes())?
            }
            "create_passkey" => {
                assert_eq!(step["salt_b64u"], b64::encode(&sotto_vault::prf_salt()));
                assert_eq!(step["options"]["publicKey"]["rp"]["id"], "localhost");
                let n = NEXT_PASSKEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let id = format!("passkey-{n}").into_bytes();
                let prf = [n; 32];
                self.passkeys.push((id.clone(), prf));
                flow.answer_created(&credential(&id).to_string(), &id, &prf)?
            }
            "get_passkey" => {
                assert_eq!(step["salt_b64u"], b64::encode(&sotto_vault::prf_salt()));
                let (id, prf) = self
                    .passkeys
                    .last()
                    .expect("a passkey on this browser")
                    .clone();
                let prf = (!self.no_prf).then_some(&prf[..]);
                flow.answer_asserted(&credential(&id).to_string(), &id, prf)?
            }
            kind => panic!("a step of kind {kind}"),
        };
        Ok(next.to_string())
    }

    fn drive(&mut self, server: &mut Server, flow: &mut FlowCore) -> Result<(), WebError> {
        let mut step = flow.start()?.to_string();
        while !step.contains(r#""kind":"done""#) {
            step = self.carry(server, flow, &step)?;
        }
        Ok(())
    }

    fn run(&mut self, server: &mut Server, mut flow: FlowCore) -> Result<FlowCore, WebError> {
        self.drive(server, &mut flow)?;
        Ok(flow)
    }

    fn sign_in(&mut self, server: &mut Server) -> ClientCore {
        let mut done = self.run(server, FlowCore::sign_in()).unwrap();
        let client = done.take_client().unwrap();
        self.run(server, client.pull()).unwrap();
        client
    }
}

/// WebAuthn JSON as passkey.ts builds it (no PRF results).
fn credential(id: &[u8]) -> Value {
    json!({"id": b64::encode(id), "rawId": b64::encode(id), "type": "public-key", "response": {}, "clientExtensionResults": {}})
}

fn sign_up(server: &mut Server, browser: &mut Browser) -> (ClientCore, String) {
    let mut done = browser
        .run(server, FlowCore::sign_up("Ada", "Test browser").unwrap())
        .unwrap();
    let code = done.reveal_recovery_code().unwrap().to_string();
    assert!(
        matches!(done.reveal_recovery_code(), Err(WebError::State(_))),
        "shown once"
    );
    let client = done.take_client().unwrap();
    assert!(done.take_client().is_err(), "taken once");
    (client, code)
}

fn conversations(client: &ClientCore) -> Vec<Value> {
    serde_json::from_str(&client.conversations_json().unwrap()).unwrap()
}

fn opened(client: &ClientCore, conv: &str) -> Value {
    serde_json::from_str(&client.conversation_json(conv).unwrap().unwrap()).unwrap()
}

fn said(client: &ClientCore, conv: &str) -> Vec<String> {
    opened(client, conv)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["message"]["content"].as_str().unwrap().to_owned())
        .collect()
}

fn save(
    server: &mut Server,
    browser: &mut Browser,
    client: &ClientCore,
    conv: Option<&str>,
    turn: Value,
) -> (String, Vec<String>) {
    let done = browser
        .run(server, client.save_turn(conv, &turn.to_string()).unwrap())
        .unwrap();
    let saved: Value = serde_json::from_str(&done.saved_json().unwrap()).unwrap();
    let ids = saved["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_owned())
        .collect();
    (saved["conv"].as_str().unwrap().to_owned(), ids)
}

fn pull(
    server: &mut Server,
    browser: &mut Browser,
    client: &ClientCore,
) -> Result<usize, WebError> {
    browser.run(server, client.pull())?.count()
}

fn question_and_answer(q: &str, a: &str, at: u64) -> Value {
    json!([
        {"role": "user", "content": q, "created_at": at},
        {"role": "assistant", "content": a, "created_at": at + 1},
    ])
}

#[test]
fn sign_up_saves_turns_and_a_passkey_sign_in_opens_them_again() {
    let (mut server, mut a) = (Server::new(), Browser::new());
    let (client, code) = sign_up(&mut server, &mut a);
    assert_eq!(client.account().unwrap(), "acct-1");
    assert_eq!(
        client.credential_id().unwrap(),
        b64::encode(&a.passkeys[0].0)
    );
    let (conv, ids) = save(
        &mut server,
        &mut a,
        &client,
        None,
        question_and_answer("Where to eat in Lyon?", "Les Halles.", 1_000),
    );
    assert_eq!(ids.len(), 2);
    save(
        &mut server,
        &mut a,
        &client,
        Some(&conv),
        json!([{"role": "user", "content": "And after?", "created_at": 1_005}]),
    );
    // The writes are the server's; a pull brings them into the history, across pages.
    assert!(conversations(&client).is_empty());
    assert_eq!(pull(&mut server, &mut a, &client).unwrap(), 7);
    assert_eq!(pull(&mut server, &mut a, &client).unwrap(), 0);
    let list = conversations(&client);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], conv.as_str());
    assert_eq!(list[0]["title"], "Where to eat in Lyon?");
    assert_eq!(list[0]["folder"], "");
    assert_eq!(list[0]["updated_at"], 1_005);
    assert_eq!(
        said(&client, &conv),
        ["Where to eat in Lyon?", "Les Halles.", "And after?"]
    );
    assert_eq!(opened(&client, &conv)["messages"][0]["id"], ids[0].as_str());
    assert_eq!(client.conversation_json("nope").unwrap(), None);

    a.run(&mut server, client.sign_out().unwrap()).unwrap();
    assert_eq!(a.cookie, None);
    drop(client);
    let again = a.sign_in(&mut server);
    assert_eq!(
        said(&again, &conv),
        ["Where to eat in Lyon?", "Les Halles.", "And after?"]
    );

    // Nothing sent holds the recovery code, the user's words or a PRF result.
    for body in &server.bodies {
        for secret in [code.as_str(), "Lyon", "Les Halles", "\"prf\""] {
            assert!(!body.contains(secret), "a request body holds {secret}");
        }
    }
}

#[test]
fn the_recovery_code_registers_a_new_browsers_passkey_and_can_be_replaced() {
    let (mut server, mut a) = (Server::new(), Browser::new());
    let (client, code) = sign_up(&mut server, &mut a);
    let (conv, _) = save(
        &mut server,
        &mut a,
        &client,
        None,
        question_and_answer("hello", "hi", 10),
    );

    // A typo is caught by the checksum before anything is sent.
    let mut typo: Vec<char> = code.chars().collect();
    typo[0] = if typo[0] == 'A' { 'B' } else { 'A' };
    let sent = server.bodies.len();
    assert!(matches!(
        FlowCore::recover(&typo.into_iter().collect::<String>(), "B"),
        Err(WebError::Client(ClientError::RecoveryCode(_)))
    ));
    assert_eq!(server.bodies.len(), sent);

    let mut b = Browser::new();
    let mut done = b
        .run(
            &mut server,
            FlowCore::recover(&code.to_lowercase(), "Browser B").unwrap(),
        )
        .unwrap();
    let on_b = done.take_client().unwrap();
    assert_eq!(on_b.credential_id().unwrap(), b64::encode(&b.passkeys[0].0));
    pull(&mut server, &mut b, &on_b).unwrap();
    assert_eq!(said(&on_b, &conv), ["hello", "hi"]);
    let info = b.run(&mut server, on_b.account_info().unwrap()).unwrap();
    let info: Value = serde_json::from_str(&info.account_json().unwrap()).unwrap();
    let names: Vec<&str> = info["passkeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Test browser", "Browser B"]);

    // B's own passkey now signs in and unlocks.
    b.run(&mut server, on_b.sign_out().unwrap()).unwrap();
    let on_b = b.sign_in(&mut server);
    assert_eq!(said(&on_b, &conv), ["hello", "hi"]);

    // A new code: the old one no longer signs in, the new one does.
    let mut done = b.run(&mut server, on_b.rotate_recovery().unwrap()).unwrap();
    let new_code = done.reveal_recovery_code().unwrap().to_string();
    assert_ne!(new_code, code);
    let mut c = Browser::new();
    let refused = c
        .run(&mut server, FlowCore::recover(&code, "C").unwrap())
        .err()
        .unwrap();
    assert!(
        refused
            .to_string()
            .contains("does not belong to any account"),
        "{refused}"
    );
    let mut done = c
        .run(&mut server, FlowCore::recover(&new_code, "C").unwrap())
        .unwrap();
    let on_c = done.take_client().unwrap();
    pull(&mut server, &mut c, &on_c).unwrap();
    assert_eq!(said(&on_c, &conv), ["hello", "hi"]);

    // Removing A's passkey stops it signing in; the last one cannot be removed.
    let a_id = b64::encode(&a.passkeys[0].0);
    b.run(&mut server, on_b.remove_passkey(&a_id).unwrap())
        .unwrap();
    assert!(a.run(&mut server, FlowCore::sign_in()).is_err());
    let c_id = b64::encode(&c.passkeys[0].0);
    b.run(&mut server, on_b.remove_passkey(&c_id).unwrap())
        .unwrap();
    let last = b
        .run(
            &mut server,
            on_b.remove_passkey(&on_b.credential_id().unwrap()).unwrap(),
        )
        .err()
        .unwrap();
    assert_eq!(
        last.to_string(),
        "the server said: the last passkey cannot be removed (last_passkey)"
    );
}

#[test]
fn a_passkey_without_prf_signs_in_locked_and_the_recovery_code_unlocks() {
    let (mut server, mut a) = (Server::new(), Browser::new());
    let (client, code) = sign_up(&mut server, &mut a);
    let (conv, _) = save(
        &mut server,
        &mut a,
        &client,
        None,
        question_and_answer("q", "a", 10),
    );
    // A new code, so there is a valid code that is not this account's.
    let other = sign_up(&mut server, &mut Browser::new()).1;

    let mut e = Browser::new();
    e.passkeys = a.passkeys.clone();
    e.no_prf = true;
    let mut done = e.run(&mut server, FlowCore::sign_in()).unwrap();
    assert!(done.take_client().is_err());
    let locked = done.take_locked().unwrap();
    let wrong = e
        .run(
            &mut server,
            FlowCore::unlock_with_recovery(&locked, &other).unwrap(),
        )
        .err()
        .unwrap();
    assert!(
        matches!(
            wrong,
            WebError::Client(ClientError::Vault(VaultError::WrongKey))
        ),
        "{wrong}"
    );
    assert!(matches!(
        FlowCore::unlock_with_recovery(&locked, "not a code"),
        Err(WebError::RecoveryCode(_))
    ));
    let mut done = e
        .run(
            &mut server,
            FlowCore::unlock_with_recovery(&locked, &code).unwrap(),
        )
        .unwrap();
    let on_e = done.take_client().unwrap();
    assert_eq!(on_e.credential_id().unwrap(), b64::encode(&a.passkeys[0].0));
    pull(&mut server, &mut e, &on_e).unwrap();
    assert_eq!(said(&on_e, &conv), ["q", "a"]);
}

#[test]
fn answers_that_do_not_fit_the_step_are_refused_and_spend_the_flow() {
    let (mut server, mut a) = (Server::new(), Browser::new());
    let mut flow = FlowCore::sign_up("Ada", "pk").unwrap();
    let first: Value = serde_json::from_str(&flow.start().unwrap()).unwrap();
    assert_eq!(first["kind"], "http");
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/v1/account/register/start");
    let (status, body) = server.handle(
        &mut a.cookie,
        "POST",
        "/v1/account/register/start",
        first["body"].as_str(),
    );
    let create: Value =
        serde_json::from_str(&flow.answer_http(status, body.as_bytes()).unwrap()).unwrap();
    assert_eq!(create["kind"], "create_passkey");
    assert_eq!(create["name"], "pk");
    let id = b"passkey-x";
    assert!(matches!(
        flow.answer_created(&credential(id).to_string(), id, &[1; 31]),
        Err(WebError::Client(ClientError::Protocol(_)))
    ));
    assert!(matches!(
        flow.answer_created("{not json", id, &[1; 32]),
        Err(WebError::Json { .. })
    ));
    // Answering a passkey step with HTTP is a driver bug: the flow ends.
    assert!(matches!(
        flow.answer_http(200, b"{}"),
        Err(WebError::Client(ClientError::State(_)))
    ));
    assert!(matches!(
        flow.answer_created(&credential(id).to_string(), id, &[1; 32]),
        Err(WebError::State("this flow is over"))
    ));

    // A result the flow did not end with is not there to take.
    let (client, _) = sign_up(&mut server, &mut a);
    let done = a.run(&mut server, client.pull()).unwrap();
    assert!(done.saved_json().is_err());
    assert!(done.account_json().is_err());
    assert!(client.save_turn(None, r#"[{"role":"robot"}]"#).is_err());
    assert!(client.remove_passkey("not base64!").is_err());
}

#[test]
fn tampered_moved_and_rolled_back_records_are_refused() {
    let (mut server, mut a) = (Server::new(), Browser::new());
    let (client, _) = sign_up(&mut server, &mut a);
    let (conv, ids) = save(
        &mut server,
        &mut a,
        &client,
        None,
        question_and_answer("hi", "hello", 10),
    );
    let msg_id = format!("m.{conv}.{}", ids[1]);
    let original = server.the_account().records[&msg_id].clone();

    // A flipped ciphertext byte: the whole pull is refused, naming the record.
    let mut flipped = original.clone();
    if let Some(c) = flipped.ciphertext.as_mut() {
        c[40] ^= 1;
    }
    server.the_account().records.insert(msg_id.clone(), flipped);
    let fresh = {
        let mut done = a.run(&mut server, FlowCore::sign_in()).unwrap();
        done.take_client().unwrap()
    };
    let refused = pull(&mut server, &mut a, &fresh).err().unwrap();
    assert!(
        refused
            .to_string()
            .starts_with(&format!("refusing the history: record {msg_id}")),
        "{refused}"
    );
    assert!(
        conversations(&fresh).is_empty(),
        "nothing of a refused pull is kept"
    );

    // The same message moved under another message id.
    server
        .the_account()
        .records
        .insert(msg_id.clone(), original.clone());
    let mut moved = original.clone();
    moved.id = format!("m.{conv}.{}", "ab".repeat(16));
    server.seq += 1;
    moved.seq = server.seq;
    server
        .the_account()
        .records
        .insert(moved.id.clone(), moved.clone());
    let refused = pull(&mut server, &mut a, &fresh).err().unwrap();
    assert!(
        matches!(refused, WebError::Client(ClientError::Refused { ref id, .. }) if *id == moved.id)
    );
    server.the_account().records.remove(&moved.id);

    // Header v2 seen and remembered; a later client that restores the ledger refuses v1.
    let header_id = format!("ch.{conv}");
    let header_v1 = server.the_account().records[&header_id].clone();
    a.run(&mut server, client.edit_header(&conv, Some("v2"), None, 20))
        .unwrap();
    let seen = a.sign_in(&mut server);
    assert_eq!(conversations(&seen)[0]["title"], "v2");
    let ledger = seen.ledger_json().unwrap();
    server.seq += 1;
    let stale = RecordOut {
        seq: server.seq,
        ..header_v1
    };
    server
        .the_account()
        .records
        .insert(header_id.clone(), stale);
    let later = {
        let mut done = a.run(&mut server, FlowCore::sign_in()).unwrap();
        done.take_client().unwrap()
    };
    later.restore_ledger(&ledger).unwrap();
    let refused = pull(&mut server, &mut a, &later).err().unwrap();
    assert!(
        matches!(
            refused,
            WebError::Client(ClientError::Refused {
                reason: VaultError::Rollback { .. },
                ..
            })
        ),
        "{refused}"
    );
    // A client that has already accepted v1 cannot take in a ledger that saw v2: what it
    // accepted was a rollback.
    let behind = a.sign_in(&mut server);
    assert_eq!(conversations(&behind)[0]["title"], "hi");
    assert!(matches!(
        behind.restore_ledger(&ledger),
        Err(WebError::Vault(VaultError::Rollback { .. }))
    ));
}

#[test]
fn header_edits_racing_another_device_merge_and_deletions_reach_it() {
    let (mut server, mut a) = (Server::new(), Browser::new());
    let (client, _) = sign_up(&mut server, &mut a);
    let (conv, ids) = save(
        &mut server,
        &mut a,
        &client,
        None,
        question_and_answer("draft", "ok", 100),
    );
    let mut b = Browser::new();
    b.passkeys = a.passkeys.clone();
    let other = b.sign_in(&mut server);

    // B reads the header to move it to a folder; A renames meanwhile; B's write conflicts,
    // and B merges over A's header and writes again.
    let mut moving = other.edit_header(&conv, None, Some("personal"), 150);
    let mut step = moving.start().unwrap().to_string();
    while !step.contains("PUT") {
        step = b.carry(&mut server, &mut moving, &step).unwrap();
    }
    a.run(
        &mut server,
        client.edit_header(&conv, Some("Holidays"), None, 200),
    )
    .unwrap();
    let mut puts = 0;
    while !step.contains(r#""kind":"done""#) {
        puts += usize::from(step.contains("PUT"));
        step = b.carry(&mut server, &mut moving, &step).unwrap();
    }
    assert_eq!(puts, 2, "one conflict, then the merged write");
    for (browser, c) in [(&mut a, &client), (&mut b, &other)] {
        pull(&mut server, browser, c).unwrap();
        let list = conversations(c);
        assert_eq!(
            (list[0]["title"].as_str(), list[0]["folder"].as_str()),
            (Some("Holidays"), Some("personal"))
        );
    }

    // A regenerated answer replaces the old one; deleting it twice is no error.
    save(
        &mut server,
        &mut a,
        &client,
        Some(&conv),
        json!([{"role": "assistant", "content": "better", "created_at": 300}]),
    );
    for _ in 0..2 {
        a.run(&mut server, client.delete_message(&conv, &ids[1]).unwrap())
            .unwrap();
    }
    pull(&mut server, &mut b, &other).unwrap();
    assert_eq!(said(&other, &conv), ["draft", "better"]);

    // A deletes the conversation: gone from A at once, from B at its next pull, and nothing
    // more can be saved to it.
    a.run(&mut server, client.delete_conversation(&conv))
        .unwrap();
    assert!(conversations(&client).is_empty());
    pull(&mut server, &mut b, &other).unwrap();
    assert!(conversations(&other).is_empty());
    let fresh = a.sign_in(&mut server);
    let refused = a
        .run(
            &mut server,
            fresh
                .save_turn(
                    Some(&conv),
                    &json!([{"role": "user", "content": "x", "created_at": 1}]).to_string(),
                )
                .unwrap(),
        )
        .err()
        .unwrap();
    assert!(
        matches!(refused, WebError::Client(ClientError::NoConversation(_))),
        "{refused}"
    );
}

#[test]
fn signing_out_wipes_the_keys_under_a_running_flow_and_deleting_the_account_leaves_nothing() {
    let (mut server, mut a) = (Server::new(), Browser::new());
    let (client, _) = sign_up(&mut server, &mut a);
    let mut flow = client.pull();
    let step = flow.start().unwrap().to_string();
    drop(client);
    assert!(matches!(
        a.carry(&mut server, &mut flow, &step),
        Err(WebError::SignedOut)
    ));

    let client = a.sign_in(&mut server);
    save(
        &mut server,
        &mut a,
        &client,
        None,
        question_and_answer("q", "a", 1),
    );
    a.run(&mut server, client.delete_account().unwrap())
        .unwrap();
    assert!(server.accounts.is_empty() && server.sessions.is_empty());
    let refused = a.run(&mut server, FlowCore::sign_in()).err().unwrap();
    assert!(
        refused.to_string().contains("belongs to no account"),
        "{refused}"
    );
}
