//! Passkey accounts and the encrypted history against the real server, on SQLite and on
//! PostgreSQL: real WebAuthn ceremonies (the CLI's software passkey with PRF), real HTTP on
//! loopback, and a hostile server played by editing its database directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::common;
use reqwest::StatusCode;
use sotto::account::{self, AccountError, Unlocked};
use sotto::api::{ApiClient, ApiClientError};
use sotto::history::{self, HistoryError};
use sotto::local::Profile;
use sotto_api::{b64, routes};
use sotto_client::{Method, Request};
use sotto_server::testing::{self, Records};
use sotto_server::RateLimit;
use sotto_store::Store;
use sotto_vault::{ChainError, Incomplete, Message, Role, VaultError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use sotto_testkit::postgres::Database;

// ---- Harness ---------------------------------------------------------------------------

/// The servers' ceremony table here: small, so that filling it is quick.
const MAX_PENDING: u32 = 200;

enum Backend {
    Sqlite { path: PathBuf },
    Postgres(Database),
}

impl Backend {
    fn spec(&self) -> String {
        match self {
            Backend::Sqlite { path } => format!("sqlite:{}", path.display()),
            Backend::Postgres(db) => db.url.clone(),
        }
    }

    /// Everything the database holds, as bytes: the SQLite files, or a pg_dump.
    fn dump(&self) -> Vec<u8> {
        match self {
            Backend::Sqlite { path } => {
                let mut out = std::fs::read(path).unwrap();
                let wal = PathBuf::from(format!("{}-wal", path.display()));
                if let Ok(w) = std::fs::read(wal) {
                    out.extend(w);
                }
                out
            }
            Backend::Postgres(db) => {
                let out = Command::new("pg_dump")
                    .arg("--data-only")
                    .arg(&db.url)
                    .output()
                    .expect("pg_dump runs");
                common::succeeded("pg_dump", &out);
                out.stdout
            }
        }
    }
}

struct Server {
    /// What clients use: `http://localhost:<proxy port>`.
    url: String,
    store: Arc<dyn Store>,
    backend: Backend,
    /// Every byte between clients and the server, both directions.
    wire: Arc<Mutex<Vec<u8>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// The store's record rows, for the tests that play an operator editing them.
    fn records(&self) -> Records {
        match &self.backend {
            Backend::Sqlite { path } => Records::open(path),
            Backend::Postgres(_) => panic!("the tampering tests edit a SQLite store"),
        }
    }
}

async fn server(pg: bool) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let backend = if pg {
        Backend::Postgres(Database::create("sotto_cli").expect("a test database"))
    } else {
        Backend::Sqlite {
            path: dir.path().join("accounts.sqlite"),
        }
    };
    let store = sotto_store::open(&backend.spec())
        .await
        .expect("store opens");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = proxy.local_addr().unwrap().port();
    let origin = format!("http://localhost:{port}");
    let mut config = testing::accounts_config(store.clone(), &origin, testing::UNLIMITED);
    if let Some(accounts) = &mut config.accounts {
        accounts.max_pending = MAX_PENDING;
    }
    tokio::spawn(sotto_server::serve(listener, config));
    let wire = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(record_proxy(proxy, server_addr, wire.clone()));
    Server {
        url: origin,
        store,
        backend,
        wire,
        _dir: dir,
    }
}

async fn record_proxy(listener: TcpListener, target: SocketAddr, wire: Arc<Mutex<Vec<u8>>>) {
    while let Ok((client, _)) = listener.accept().await {
        let Ok(upstream) = TcpStream::connect(target).await else {
            continue;
        };
        let (cr, cw) = client.into_split();
        let (sr, sw) = upstream.into_split();
        tokio::spawn(pump(cr, sw, wire.clone()));
        tokio::spawn(pump(sr, cw, wire.clone()));
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    wire: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                wire.lock().unwrap().extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

fn device() -> (tempfile::TempDir, Profile) {
    let dir = tempfile::tempdir().unwrap();
    let profile = Profile {
        dir: dir.path().join("sotto"),
    };
    (dir, profile)
}

fn contents(h: &history::History, conv: &str) -> Vec<String> {
    h.conversations()[conv]
        .messages()
        .map(|(_, m)| m.content.clone())
        .collect()
}

fn api_status(e: &AccountError) -> Option<StatusCode> {
    match e {
        AccountError::Api(ApiClientError::Server(s, _)) => Some(*s),
        _ => None,
    }
}

/// Sends one request as `client` (with its session, if any): the status and the body.
async fn send(
    client: &ApiClient,
    method: Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (StatusCode, String) {
    let req = match body {
        Some(b) => Request::json(method, path, b).unwrap(),
        None => Request::new(method, path),
    };
    let resp = client.send(req).await.unwrap();
    let text = String::from_utf8(resp.body).unwrap();
    (StatusCode::from_u16(resp.status).unwrap(), text)
}

/// Every route that needs a step-up proof, with the account's passkey `cred` to remove.
fn sensitive_routes(cred: &[u8]) -> [(Method, String); 5] {
    [
        (Method::Put, routes::RECOVERY.to_owned()),
        (Method::Post, routes::PASSKEY_START.to_owned()),
        (Method::Delete, routes::passkey(cred)),
        (Method::Delete, routes::ACCOUNT.to_owned()),
        (Method::Post, routes::REAUTH_START.to_owned()),
    ]
}

macro_rules! both_backends {
    ($body:ident: $sqlite:ident, $postgres:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            $body(server(false).await).await;
        }

        #[tokio::test]
        async fn $postgres() {
            $body(server(true).await).await;
        }
    };
}

// ---- Ceremonies ------------------------------------------------------------------------

both_backends!(passkeys_and_recovery: passkeys_and_recovery_sqlite, passkeys_and_recovery_postgres);

async fn passkeys_and_recovery(s: Server) {
    let (_d1, laptop) = device();
    let (mut u, code) = account::create(&laptop, &s.url, "Ada", "laptop")
        .await
        .unwrap();
    let conv = history::start(&mut u, "first conversation").await.unwrap();
    history::append(&mut u, &conv, Role::User, "hello from the laptop")
        .await
        .unwrap();
    u.save_ledger(&laptop).unwrap();
    let account_id = u.session.account_id.clone();

    // Sign out: the session is gone on the server too.
    let token = u.session.session_token.clone();
    u.api.sign_out().await.unwrap();
    let stale = ApiClient::new(&s.url).unwrap().with_token(token.into());
    assert!(matches!(
        stale.account().await,
        Err(ApiClientError::Server(StatusCode::UNAUTHORIZED, _))
    ));

    // Sign in again with the passkey, unlock, read.
    let mut u = account::login(&laptop, &s.url).await.unwrap();
    assert_eq!(u.session.account_id, account_id);
    let h = history::sync(&mut u).await.unwrap();
    assert_eq!(contents(&h, &conv), ["hello from the laptop"]);
    assert_eq!(h.conversations()[&conv].title(), "first conversation");

    // A second passkey (another device's keyring), added from the signed-in laptop.
    let (_d2, phone) = device();
    account::add_passkey(&laptop, &phone, &mut u, "phone")
        .await
        .unwrap();
    let info = u.api.account().await.unwrap();
    assert_eq!(info.passkeys.len(), 2);
    let mut p = account::login(&phone, &s.url).await.unwrap();
    assert_eq!(p.session.account_id, account_id);
    history::append(&mut p, &conv, Role::User, "hello from the phone")
        .await
        .unwrap();
    let h = history::sync(&mut p).await.unwrap();
    assert_eq!(contents(&h, &conv).len(), 2);

    // Both devices lost: a new device with the recovery code gets everything back, and its
    // own passkey from then on.
    drop((_d1, _d2));
    let (_d3, fresh) = device();
    let typed = code.to_text().to_lowercase();
    let mut r = account::recover(&fresh, &s.url, &typed, "new laptop")
        .await
        .unwrap();
    assert_eq!(r.session.account_id, account_id);
    let h = history::sync(&mut r).await.unwrap();
    let mut got = contents(&h, &conv);
    got.sort();
    assert_eq!(got, ["hello from the laptop", "hello from the phone"]);
    let mut again = account::login(&fresh, &s.url).await.unwrap();
    assert_eq!(
        history::sync(&mut again)
            .await
            .unwrap()
            .conversations()
            .len(),
        1
    );
    assert_eq!(again.api.account().await.unwrap().passkeys.len(), 3);

    // A wrong code (valid checksum, no account) is refused by the server; a typo never leaves
    // the machine.
    let (_d4, other) = device();
    let wrong = sotto_vault::RecoveryCode::generate().unwrap();
    let err = account::recover(&other, &s.url, &wrong.to_text(), "x")
        .await
        .err()
        .unwrap();
    assert_eq!(api_status(&err), Some(StatusCode::UNAUTHORIZED), "{err}");
    assert!(
        err.to_string()
            .contains("recovery code does not belong to any account"),
        "{err}"
    );
    let mut typo: Vec<char> = code.to_text().chars().collect();
    typo[0] = if typo[0] == 'A' { 'B' } else { 'A' };
    let typo: String = typo.into_iter().collect();
    let err = account::recover(&other, &s.url, &typo, "x")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, AccountError::RecoveryCode(_)), "{err}");
    assert!(err.to_string().contains("typo"), "{err}");

    // Rotating the recovery code: the old one stops working, the new one works.
    let new_code = account::rotate_recovery(&fresh, &mut again).await.unwrap();
    let (_d5, d5) = device();
    assert!(account::recover(&d5, &s.url, &code.to_text(), "x")
        .await
        .is_err());
    let (_d6, d6) = device();
    account::recover(&d6, &s.url, &new_code.to_text(), "x")
        .await
        .unwrap();

    // The only passkey cannot be removed; another can, and its wrapping goes with it.
    let info = again.api.account().await.unwrap();
    let mine = b64::decode(&again.session.credential_id).unwrap();
    let others: Vec<_> = info
        .passkeys
        .iter()
        .filter(|p| p.credential_id != mine)
        .collect();
    for p in &others {
        account::remove_passkey(&fresh, &p.credential_id)
            .await
            .unwrap();
        let wrap = sotto_api::passkey_wrap_id(&p.credential_id);
        assert!(again.api.get(&wrap).await.unwrap().ciphertext.is_none());
    }
    let err = account::remove_passkey(&fresh, &mine).await.err().unwrap();
    assert!(
        matches!(&err, AccountError::Api(ApiClientError::Server(StatusCode::CONFLICT, e)) if e.error == "last_passkey"),
        "{err}"
    );
}

// ---- Canaries --------------------------------------------------------------------------

both_backends!(canaries_never_leave_the_client: canaries_sqlite, canaries_postgres);

async fn canaries_never_leave_the_client(s: Server) {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let logs = logs.clone();
        move || LogSink(logs.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(writer)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let title = "CANARY-TITLE-7f3a91";
    let words = [
        "CANARY-MSG-a1b2c3",
        "CANARY-ANSWER-d4e5f6",
        "CANARY-FOLDER-0badc0",
    ];
    let (_d, dev) = device();
    let (mut u, _) = account::create(&dev, &s.url, "Canary", "cli")
        .await
        .unwrap();
    let conv = history::start(&mut u, title).await.unwrap();
    history::append(&mut u, &conv, Role::User, words[0])
        .await
        .unwrap();
    history::append(&mut u, &conv, Role::Assistant, words[1])
        .await
        .unwrap();
    history::edit_header(&mut u, &conv, None, Some(words[2]))
        .await
        .unwrap();
    let h = history::sync(&mut u).await.unwrap();
    assert_eq!(contents(&h, &conv), [words[0], words[1]]);
    assert_eq!(
        h.conversations()[&conv].header.as_ref().unwrap().folder,
        words[2]
    );

    let wire = s.wire.lock().unwrap().clone();
    let db = s.backend.dump();
    let logged = logs.lock().unwrap().clone();
    assert!(!wire.is_empty() && !db.is_empty() && !logged.is_empty());
    // Something real went by: the wire carried the recovery verifier's lookup field name and
    // record ids, the database holds the account.
    assert!(find(&wire, b"wrap.recovery"));
    for canary in std::iter::once(&title).chain(words.iter()) {
        for (place, bytes) in [
            ("HTTP traffic", &wire),
            ("database", &db),
            ("server logs", &logged),
        ] {
            assert!(
                !find(bytes, canary.as_bytes()),
                "{canary} found in the {place}"
            );
            let b64 = b64::encode(canary.as_bytes());
            assert!(
                !find(bytes, &b64.as_bytes()[..b64.len() - 2]),
                "{canary} (base64) found in the {place}"
            );
        }
    }
    drop(s);
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ---- Authorization ---------------------------------------------------------------------

both_backends!(authorization_matrix: authorization_sqlite, authorization_postgres);

async fn authorization_matrix(s: Server) {
    let (_da, da) = device();
    let (_db, db) = device();
    let (mut a, _) = account::create(&da, &s.url, "A", "a").await.unwrap();
    let (b, _) = account::create(&db, &s.url, "B", "b").await.unwrap();
    let conv = history::start(&mut a, "a's secret").await.unwrap();
    let msg = history::append(&mut a, &conv, Role::User, "only for a")
        .await
        .unwrap();
    let msg_id = format!("m.{conv}.{msg}");
    let a_before = a.api.get(&msg_id).await.unwrap();
    let a_cred = b64::decode(&a.session.credential_id).unwrap();

    let not_found = |r: Result<_, ApiClientError>| {
        matches!(r, Err(ApiClientError::Server(StatusCode::NOT_FOUND, _)))
    };
    // Read.
    assert!(not_found(b.api.get(&msg_id).await.map(|_| ())));
    // List: b's changes hold only b's own records.
    let (b_changes, _) = b.api.all_changes(0).await.unwrap();
    assert!(b_changes.iter().all(|r| !r.id.contains(&conv)));
    assert!(b_changes.iter().all(|r| r.id.starts_with("wrap.")));
    // Overwrite: b's put with a's id lands in b's space; a's record is untouched.
    let put = sotto_api::PutRecord {
        group: Some(conv.clone()),
        kind: "msg".into(),
        expected_version: 1,
        ciphertext: vec![0; 300],
    };
    let err = b.api.put(&msg_id, &put).await.err().unwrap();
    assert_eq!(err.conflict(), Some(0), "{err}");
    let put0 = sotto_api::PutRecord {
        expected_version: 0,
        ..put
    };
    b.api.put(&msg_id, &put0).await.unwrap();
    assert_eq!(a.api.get(&msg_id).await.unwrap(), a_before);
    // Delete a record, a group.
    b.api.delete(&msg_id).await.unwrap(); // b's own copy
    assert!(not_found(
        b.api.delete(&format!("ck.{conv}")).await.map(|_| ())
    ));
    assert_eq!(b.api.delete_group(&conv).await.unwrap().deleted, 0);
    assert_eq!(a.api.get(&msg_id).await.unwrap(), a_before);
    assert!(a
        .api
        .get(&format!("ck.{conv}"))
        .await
        .unwrap()
        .ciphertext
        .is_some());
    // Passkeys: b cannot see or remove a's.
    let b_info = b.api.account().await.unwrap();
    assert!(b_info.passkeys.iter().all(|p| p.credential_id != a_cred));
    let err = account::remove_passkey(&db, &a_cred).await.err().unwrap();
    assert_eq!(api_status(&err), Some(StatusCode::NOT_FOUND), "{err}");
    assert_eq!(a.api.account().await.unwrap().passkeys.len(), 1);

    // Unauthenticated, a garbage token, a signed-out token: 401 on every route.
    let anon = ApiClient::new(&s.url).unwrap();
    let garbage = ApiClient::new(&s.url)
        .unwrap()
        .with_token("not-a-session".to_owned().into());
    let (_dc, dc) = device();
    let (c, _) = account::create(&dc, &s.url, "C", "c").await.unwrap();
    let c_token = c.session.session_token.clone();
    c.api.sign_out().await.unwrap();
    let signed_out = ApiClient::new(&s.url).unwrap().with_token(c_token.into());
    for client in [&anon, &garbage, &signed_out] {
        let results = [
            client.account().await.map(|_| ()),
            client.get(&msg_id).await.map(|_| ()),
            client.put(&msg_id, &put0).await.map(|_| ()),
            client.delete(&msg_id).await.map(|_| ()),
            client.delete_group(&conv).await.map(|_| ()),
            client.changes(0, 10).await.map(|_| ()),
            client.sign_out().await.map(|_| ()),
        ];
        for (i, r) in results.into_iter().enumerate() {
            assert!(
                matches!(r, Err(ApiClientError::Server(StatusCode::UNAUTHORIZED, _))),
                "route {i} did not answer 401"
            );
        }
        // The sensitive routes, with a well-formed (if unearned) proof: no session, no entry.
        for (method, path) in sensitive_routes(&a_cred) {
            let body = serde_json::json!({ "reauth": "x", "operation": "delete_account" });
            let (status, _) = send(client, method, &path, Some(&body)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method:?} {path}");
        }
    }
    // a is intact after all that.
    let h = history::sync(&mut a).await.unwrap();
    assert_eq!(contents(&h, &conv), ["only for a"]);
    drop(s);
}

// ---- Step-up ---------------------------------------------------------------------------

/// A step-up proof for `operation` (JSON), earned by hand with `profile`'s passkey over
/// `api`'s session: what the client core's flows do before a sensitive request.
async fn proof(api: &ApiClient, profile: &Profile, operation: serde_json::Value) -> String {
    let (status, text) = send(api, Method::Post, routes::REAUTH_START, Some(&operation)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let started: sotto_api::CeremonyStarted = serde_json::from_str(&text).unwrap();
    let mut keyring = sotto_authenticator::Keyring::load(&profile.keyring_path(), None).unwrap();
    let signed = keyring
        .authenticate(
            api.origin(),
            started.options,
            &sotto_vault::prf_salt(),
            None,
        )
        .await
        .unwrap();
    // The signature counter moved on: saved, or the next sign-in would look like a clone.
    keyring.save(&profile.keyring_path(), None).unwrap();
    let finish = serde_json::json!({
        "ceremony_id": started.ceremony_id,
        "credential": signed.response,
    });
    let (status, text) = send(api, Method::Post, routes::REAUTH_FINISH, Some(&finish)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str::<sotto_api::Reauthed>(&text)
        .unwrap()
        .reauth
}

fn reauth_required((status, text): (StatusCode, String)) -> bool {
    status == StatusCode::FORBIDDEN && text.contains("\"reauth_required\"")
}

both_backends!(a_session_alone_cannot_change_the_account: session_alone_sqlite, session_alone_postgres);

/// A session alone (as a thief of the token has it) cannot rotate the recovery code, add or
/// remove a passkey, or delete the account; a proof counts only for its operation, its session
/// and once; the flows, which confirm with a passkey first, do all four.
async fn a_session_alone_cannot_change_the_account(s: Server) {
    let (_d1, laptop) = device();
    let (mut u, code) = account::create(&laptop, &s.url, "Ada", "laptop")
        .await
        .unwrap();
    let (_d2, phone) = device();
    let phone_cred = account::add_passkey(&laptop, &phone, &mut u, "phone")
        .await
        .unwrap();
    let account_id = sotto_store::AccountId(
        *uuid::Uuid::parse_str(&u.session.account_id)
            .unwrap()
            .as_bytes(),
    );
    let token = u.session.session_token.clone();
    let stolen = ApiClient::new(&s.url).unwrap().with_token(token.into());
    let other_code = sotto_vault::RecoveryCode::generate().unwrap();
    let rotation = |reauth: &str| {
        serde_json::json!({
            "reauth": reauth,
            "verifier": sotto_api::RecoveryVerifier {
                lookup: other_code.lookup(),
                verifier: other_code.verifier(),
            },
            "wrap": sotto_api::PutRecord {
                group: None,
                kind: "wrap".into(),
                expected_version: 1,
                ciphertext: vec![0; 300],
            },
        })
    };
    let bodies = |method: Method, path: &str, reauth: &str| match (method, path) {
        (Method::Put, routes::RECOVERY) => rotation(reauth),
        _ => serde_json::json!({ "reauth": reauth }),
    };
    for (method, path) in sensitive_routes(&phone_cred).into_iter().take(4) {
        for body in [
            None,
            Some(serde_json::json!({})),
            Some(bodies(method, &path, "made-up")),
        ] {
            let refused = send(&stolen, method, &path, body.as_ref()).await;
            assert!(
                reauth_required(refused.clone()),
                "{method:?} {path}: {refused:?}"
            );
        }
    }

    // A proof is for one operation (and is used up by trying it on another), for the session
    // that earned it, and for one request.
    let delete = serde_json::json!({ "operation": "delete_account" });
    let for_deletion = proof(&u.api, &laptop, delete.clone()).await;
    let elsewhere = send(
        &u.api,
        Method::Delete,
        &routes::passkey(&phone_cred),
        Some(&bodies(Method::Delete, "", &for_deletion)),
    )
    .await;
    assert!(reauth_required(elsewhere));
    let spent = send(
        &u.api,
        Method::Delete,
        routes::ACCOUNT,
        Some(&bodies(Method::Delete, "", &for_deletion)),
    )
    .await;
    assert!(
        reauth_required(spent),
        "tried once, on the wrong operation: gone"
    );
    let from_phone = account::login(&phone, &s.url).await.unwrap();
    let phones = proof(&from_phone.api, &phone, delete).await;
    let borrowed = send(
        &u.api,
        Method::Delete,
        routes::ACCOUNT,
        Some(&bodies(Method::Delete, "", &phones)),
    )
    .await;
    assert!(reauth_required(borrowed), "another session's proof");
    let adding = proof(
        &u.api,
        &laptop,
        serde_json::json!({ "operation": "add_passkey" }),
    )
    .await;
    let body = bodies(Method::Post, "", &adding);
    let (status, _) = send(&u.api, Method::Post, routes::PASSKEY_START, Some(&body)).await;
    assert_eq!(status, StatusCode::OK);
    let again = send(&u.api, Method::Post, routes::PASSKEY_START, Some(&body)).await;
    assert!(reauth_required(again), "a proof counts once");

    // Nothing was changed by any of that.
    assert_eq!(u.api.account().await.unwrap().passkeys.len(), 2);
    assert_eq!(
        s.store
            .find_recovery(&code.lookup())
            .await
            .unwrap()
            .map(|(a, _)| a),
        Some(account_id)
    );
    assert_eq!(
        s.store.find_recovery(&other_code.lookup()).await.unwrap(),
        None
    );

    // With a passkey confirmation, each works.
    account::remove_passkey(&laptop, &phone_cred).await.unwrap();
    assert_eq!(u.api.account().await.unwrap().passkeys.len(), 1);
    let new_code = account::rotate_recovery(&laptop, &mut u).await.unwrap();
    assert_eq!(s.store.find_recovery(&code.lookup()).await.unwrap(), None);
    assert!(s
        .store
        .find_recovery(&new_code.lookup())
        .await
        .unwrap()
        .is_some());
    account::delete_account(&laptop).await.unwrap();
    assert!(s.store.account(account_id).await.unwrap().is_none());
}

both_backends!(removing_a_passkey_ends_its_sessions: removal_ends_sessions_sqlite, removal_ends_sessions_postgres);

/// The sessions a removed passkey opened get 401 at once; the account's other sessions, and one
/// opened with the recovery code, carry on.
async fn removing_a_passkey_ends_its_sessions(s: Server) {
    let (_d1, laptop) = device();
    let (mut u, code) = account::create(&laptop, &s.url, "Ada", "laptop")
        .await
        .unwrap();
    let laptop_cred = b64::decode(&u.session.credential_id).unwrap();
    let (_d2, phone) = device();
    let phone_cred = account::add_passkey(&laptop, &phone, &mut u, "phone")
        .await
        .unwrap();
    let on_phone = account::login(&phone, &s.url).await.unwrap();
    let token = on_phone.session.session_token.clone();
    let copied = ApiClient::new(&s.url).unwrap().with_token(token.into());
    let (_d3, spare) = device();
    let recovered = account::recover(&spare, &s.url, &code.to_text(), "spare")
        .await
        .unwrap();

    account::remove_passkey(&laptop, &phone_cred).await.unwrap();
    let gone = |r: Result<_, ApiClientError>| {
        matches!(r, Err(ApiClientError::Server(StatusCode::UNAUTHORIZED, _)))
    };
    assert!(gone(on_phone.api.account().await.map(|_| ())));
    assert!(gone(copied.changes(0, 10).await.map(|_| ())));
    assert_eq!(u.api.account().await.unwrap().passkeys.len(), 2);
    assert!(
        recovered.api.account().await.is_ok(),
        "a recovery session has no passkey"
    );

    // Removing the passkey this very session signed in with ends this session too.
    account::remove_passkey(&laptop, &laptop_cred)
        .await
        .unwrap();
    assert!(gone(u.api.account().await.map(|_| ())));
    assert_eq!(recovered.api.account().await.unwrap().passkeys.len(), 1);
}

both_backends!(ceremonies_in_a_loop_lock_out_no_one_else: ceremony_loop_sqlite, ceremony_loop_postgres);

/// One account opening confirmations in a loop, more than the server's whole ceremony table
/// holds (lowered to 200 here: each one is a durable write) and never finishing one, only ever
/// pushes out its own: another account still signs in (from the same address: everything here
/// is loopback), and the looping account can still confirm with its newest.
async fn ceremonies_in_a_loop_lock_out_no_one_else(s: Server) {
    let (_da, da) = device();
    let (a, _) = account::create(&da, &s.url, "A", "a").await.unwrap();
    let (_db, db) = device();
    account::create(&db, &s.url, "B", "b").await.unwrap();
    let start = serde_json::json!({ "operation": "delete_account" });
    for i in 0..=MAX_PENDING {
        let (status, text) = send(&a.api, Method::Post, routes::REAUTH_START, Some(&start)).await;
        assert_eq!(status, StatusCode::OK, "start {i}: {text}");
    }
    account::login(&db, &s.url)
        .await
        .expect("another account signs in");
    proof(&a.api, &da, start).await;
}

// ---- Concurrency -----------------------------------------------------------------------

both_backends!(concurrent_devices_lose_nothing: concurrency_sqlite, concurrency_postgres);

async fn concurrent_devices_lose_nothing(s: Server) {
    let (_d1, one) = device();
    let (_d2, two) = device();
    let (mut a, _) = account::create(&one, &s.url, "Ada", "one").await.unwrap();
    account::add_passkey(&one, &two, &mut a, "two")
        .await
        .unwrap();
    let mut b = account::login(&two, &s.url).await.unwrap();
    let conv = history::start(&mut a, "shared").await.unwrap();
    history::sync(&mut b).await.unwrap();

    const EACH: usize = 40;
    let writer = |u: Unlocked, who: &'static str, conv: String| async move {
        let mut u = u;
        for i in 0..EACH {
            history::append(&mut u, &conv, Role::User, &format!("{who} {i}"))
                .await
                .unwrap();
            if i % 10 == 0 {
                history::edit_header(&mut u, &conv, Some(&format!("{who} title {i}")), None)
                    .await
                    .unwrap();
            }
        }
        u
    };
    let (mut a, mut b) = tokio::join!(writer(a, "a", conv.clone()), writer(b, "b", conv.clone()));
    let ha = history::sync(&mut a).await.unwrap();
    let hb = history::sync(&mut b).await.unwrap();
    let mut got = contents(&ha, &conv);
    got.sort();
    let mut want: Vec<String> = (0..EACH)
        .flat_map(|i| [format!("a {i}"), format!("b {i}")])
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(contents(&ha, &conv), contents(&hb, &conv));
    assert_eq!(
        ha.conversations()[&conv].title(),
        hb.conversations()[&conv].title(),
        "header edits converged"
    );
    drop(s);
}

// ---- Deletion --------------------------------------------------------------------------

both_backends!(deletion_shreds: deletion_sqlite, deletion_postgres);

async fn deletion_shreds(s: Server) {
    let (_d, dev) = device();
    let (mut u, code) = account::create(&dev, &s.url, "Del", "cli").await.unwrap();
    let keep = history::start(&mut u, "keep").await.unwrap();
    let gone = history::start(&mut u, "gone").await.unwrap();
    history::append(&mut u, &gone, Role::User, "to be shredded")
        .await
        .unwrap();
    history::append(&mut u, &keep, Role::User, "stays")
        .await
        .unwrap();
    assert_eq!(history::delete(&mut u, &gone).await.unwrap(), 3);
    let (all, _) = u.api.all_changes(0).await.unwrap();
    let of_gone: Vec<_> = all
        .iter()
        .filter(|r| r.group.as_deref() == Some(gone.as_str()))
        .collect();
    assert_eq!(of_gone.len(), 3);
    assert!(
        of_gone.iter().all(|r| r.ciphertext.is_none()),
        "wrapped key and records gone"
    );
    let h = history::sync(&mut u).await.unwrap();
    assert!(!h.conversations().contains_key(&gone));
    assert_eq!(contents(&h, &keep), ["stays"]);

    let account_id = sotto_store::AccountId(
        *uuid::Uuid::parse_str(&u.session.account_id)
            .unwrap()
            .as_bytes(),
    );
    account::delete_account(&dev).await.unwrap();
    assert!(s.store.account(account_id).await.unwrap().is_none());
    assert!(s
        .store
        .changes(account_id, 0, 100, u64::MAX)
        .await
        .unwrap()
        .records
        .is_empty());
    assert!(s.store.credentials(account_id).await.unwrap().is_empty());
    let err = account::login(&dev, &s.url).await.err().unwrap();
    assert_eq!(api_status(&err), Some(StatusCode::BAD_REQUEST), "{err}");
    let (_d2, d2) = device();
    let err = account::recover(&d2, &s.url, &code.to_text(), "x")
        .await
        .err()
        .unwrap();
    assert_eq!(api_status(&err), Some(StatusCode::UNAUTHORIZED), "{err}");
}

// ---- A hostile server ------------------------------------------------------------------

/// What refused a sync that `what` (a tampering) made fail.
fn refusal<T>(what: &str, synced: Result<T, HistoryError>) -> VaultError {
    match synced {
        Err(HistoryError::Refused(e)) => e,
        Err(e) => panic!("{what}: unexpected error {e}"),
        Ok(_) => panic!("{what}: accepted"),
    }
}

/// The server's operator edits the SQLite database directly: moves a ciphertext to another
/// record, relabels a kind, serves an old version again, flips a byte. The client refuses each.
#[tokio::test]
async fn tampered_records_are_refused() {
    let s = server(false).await;
    let (_d, dev) = device();
    let (mut u, _) = account::create(&dev, &s.url, "T", "cli").await.unwrap();
    let conv = history::start(&mut u, "title one").await.unwrap();
    let m1 = format!(
        "m.{conv}.{}",
        history::append(&mut u, &conv, Role::User, "one")
            .await
            .unwrap()
    );
    let m2 = format!(
        "m.{conv}.{}",
        history::append(&mut u, &conv, Role::User, "two")
            .await
            .unwrap()
    );
    let old_header = u.api.get(&format!("ch.{conv}")).await.unwrap();
    history::edit_header(&mut u, &conv, Some("title two"), None)
        .await
        .unwrap();
    history::sync(&mut u).await.unwrap();
    u.save_ledger(&dev).unwrap();

    let records = s.records();
    let (ct1, ct2) = (records.ciphertext(&m1), records.ciphertext(&m2));
    let set = |id: &str, ct: &[u8], version: i64| records.set(id, Some(ct), version);

    // Each tampering on its own, undone before the next; every one fails the sync.
    type Case<'a> = (
        &'a str,
        Box<dyn Fn() + 'a>,
        Box<dyn Fn(&VaultError) -> bool>,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "message moved to another id",
            Box::new(|| set(&m2, &ct1, 1)),
            Box::new(|e| matches!(e, VaultError::Authentication { .. })),
        ),
        (
            "old header served again",
            Box::new(|| {
                set(
                    &format!("ch.{conv}"),
                    old_header.ciphertext.as_ref().unwrap(),
                    1,
                )
            }),
            Box::new(|e| {
                matches!(
                    e,
                    VaultError::Rollback {
                        seen: 2,
                        served: 1,
                        ..
                    }
                )
            }),
        ),
        (
            "old header relabelled as the new version",
            Box::new(|| {
                set(
                    &format!("ch.{conv}"),
                    old_header.ciphertext.as_ref().unwrap(),
                    2,
                )
            }),
            Box::new(|e| matches!(e, VaultError::Authentication { .. })),
        ),
        (
            "a flipped byte",
            Box::new(|| {
                let mut t = ct2.clone();
                t[40] ^= 0x01;
                set(&m2, &t, 1)
            }),
            Box::new(|e| matches!(e, VaultError::Authentication { .. })),
        ),
        (
            "a message relabelled as another kind",
            Box::new(|| records.set_kind(&m2, "conv-header")),
            Box::new(|e| matches!(e, VaultError::Misfiled(_))),
        ),
    ];
    let header_ct = records.ciphertext(&format!("ch.{conv}"));
    for (what, tamper, expected) in cases {
        tamper();
        let mut fresh = account::unlock(&dev).await.unwrap();
        let e = refusal(what, history::sync(&mut fresh).await);
        assert!(expected(&e), "{what}: unexpected {e}");
        set(&m2, &ct2, 1);
        set(&format!("ch.{conv}"), &header_ct, 2);
        records.set_kind(&m2, "msg");
    }
    // Untampered again: accepted.
    let mut fresh = account::unlock(&dev).await.unwrap();
    let h = history::sync(&mut fresh).await.unwrap();
    assert_eq!(contents(&h, &conv), ["one", "two"]);

    // Another account's record copied into this one: refused.
    let (_d2, other) = device();
    let (mut v, _) = account::create(&other, &s.url, "V", "cli").await.unwrap();
    let vconv = history::start(&mut v, "victim").await.unwrap();
    let vmsg = format!(
        "m.{vconv}.{}",
        history::append(&mut v, &vconv, Role::User, "victim's")
            .await
            .unwrap()
    );
    let vck = records.ciphertext(&format!("ck.{vconv}"));
    let vm = records.ciphertext(&vmsg);
    let mut u = account::unlock(&dev).await.unwrap();
    let fake = sotto_api::PutRecord {
        group: Some(vconv.clone()),
        kind: "conv-key".into(),
        expected_version: 0,
        ciphertext: vck,
    };
    u.api.put(&format!("ck.{vconv}"), &fake).await.unwrap();
    let fake = sotto_api::PutRecord {
        kind: "msg".into(),
        ciphertext: vm,
        ..fake
    };
    u.api.put(&vmsg, &fake).await.unwrap();
    assert!(matches!(
        history::sync(&mut u).await,
        Err(HistoryError::Refused(VaultError::Authentication { .. }))
    ));
}

/// Versions the server can forge without a key: a wrapping in the change feed (nothing opens
/// it there) and a deletion marker (it has no ciphertext). The operator serves both at a huge
/// version; the ledger, saved between runs, takes neither, so this device still unlocks, still
/// takes the next genuine header, and still refuses a rollback behind a forged marker.
#[tokio::test]
async fn forged_versions_cannot_poison_the_ledger() {
    let s = server(false).await;
    let (_d1, one) = device();
    let (_d2, two) = device();
    let (mut a, _) = account::create(&one, &s.url, "P", "one").await.unwrap();
    account::add_passkey(&one, &two, &mut a, "two")
        .await
        .unwrap();
    let conv = history::start(&mut a, "title one").await.unwrap();
    let header = format!("ch.{conv}");
    let records = s.records();
    let sync = |profile: &Profile| {
        let profile = profile.clone();
        async move {
            let mut u = account::unlock(&profile).await.unwrap();
            let h = history::sync(&mut u).await;
            u.save_ledger(&profile).unwrap();
            h
        }
    };
    const HUGE: i64 = 1 << 62;

    // Every wrapping served at a huge version while this device syncs (its unlock opened the
    // genuine one first). Back to the truth, the next unlock must not call that a rollback.
    let mut u = account::unlock(&one).await.unwrap();
    let wraps = records.versions("wrap.");
    assert_eq!(wraps.len(), 3, "two passkeys and the recovery code");
    for (id, _) in &wraps {
        records.set_version(id, HUGE);
    }
    history::sync(&mut u).await.unwrap();
    u.save_ledger(&one).unwrap();
    for (id, v) in &wraps {
        records.set_version(id, *v);
    }
    account::unlock(&one)
        .await
        .expect("the genuine wrapping still unlocks");

    // The header served as a deletion marker at a huge version: this device takes the
    // deletion, but another device's next genuine header (version 2) is accepted.
    sync(&one).await.unwrap();
    let (v1, _) = records.get(&header);
    records.set(&header, None, HUGE);
    let h = sync(&one).await.unwrap();
    assert!(h.conversations()[&conv].header.is_none());
    records.set(&header, v1.as_deref(), 1);
    let mut b = account::login(&two, &s.url).await.unwrap();
    history::edit_header(&mut b, &conv, Some("title two"), None)
        .await
        .unwrap();
    let h = sync(&one).await.expect("the next genuine header is taken");
    assert_eq!(h.conversations()[&conv].title(), "title two");

    // Nor does a marker hide a rollback: after a forged marker, version 1 is still older than
    // the version 2 seen, version 2 itself was seen deleted, and a marker not above version 2
    // cannot be honest.
    let (v2, _) = records.get(&header);
    records.set(&header, None, HUGE);
    sync(&one).await.unwrap();
    /// What the server serves in the header's place, and the refusal it must meet.
    type Case<'a> = (&'a str, Option<&'a [u8]>, i64, fn(&VaultError) -> bool);
    let cases: [Case<'_>; 3] = [
        ("the old header", v1.as_deref(), 1, |e| {
            matches!(
                e,
                VaultError::Rollback {
                    seen: 2,
                    served: 1,
                    ..
                }
            )
        }),
        ("the deleted header", v2.as_deref(), 2, |e| {
            matches!(e, VaultError::Undeleted { version: 2, .. })
        }),
        ("a marker not above it", None, 2, |e| {
            matches!(
                e,
                VaultError::StaleDeletion {
                    seen: 2,
                    claimed: 2,
                    ..
                }
            )
        }),
    ];
    for (what, ct, version, expected) in cases {
        records.set(&header, ct, version);
        let e = refusal(what, sync(&one).await);
        assert!(expected(&e), "{what}: unexpected {e}");
    }
}

/// The operator drops a message from the middle of a conversation: its row gone, or turned
/// into a deletion marker that no removal of the user's accounts for. The message after it
/// names the gap: the conversation and the position.
#[tokio::test]
async fn a_dropped_message_is_named_by_its_position() {
    let s = server(false).await;
    let (_d, dev) = device();
    let (mut u, _) = account::create(&dev, &s.url, "D", "cli").await.unwrap();
    let conv = history::start(&mut u, "gaps").await.unwrap();
    let mut ids = Vec::new();
    for text in ["one", "two", "three"] {
        let msg = history::append(&mut u, &conv, Role::User, text)
            .await
            .unwrap();
        ids.push(format!("m.{conv}.{msg}"));
    }
    let records = s.records();
    let forge_marker = || records.set(&ids[1], None, 2);
    let drop_row = || records.delete(&ids[1]);
    for (what, tamper) in [
        ("a forged marker", &forge_marker as &dyn Fn()),
        ("a dropped row", &drop_row),
    ] {
        tamper();
        let mut fresh = account::unlock(&dev).await.unwrap();
        match refusal(what, history::sync(&mut fresh).await) {
            VaultError::Chain(e) => {
                assert_eq!(
                    e,
                    ChainError::Missing {
                        conv: conv.clone(),
                        position: 1
                    },
                    "{what}"
                );
                let said = e.to_string();
                assert!(
                    said.contains(&conv) && said.contains("position 1"),
                    "{said}"
                );
            }
            e => panic!("{what}: unexpected {e}"),
        }
    }
}

/// An answer cut short is saved marked incomplete; another device reads it so, and `sotto
/// history show` (the Markdown export) and the JSON export say so.
#[tokio::test]
async fn a_truncated_answer_reads_back_as_incomplete_on_another_device() {
    let s = server(false).await;
    let (_d1, one) = device();
    let (_d2, two) = device();
    let (mut a, _) = account::create(&one, &s.url, "T", "one").await.unwrap();
    account::add_passkey(&one, &two, &mut a, "two")
        .await
        .unwrap();
    let conv = history::start(&mut a, "cut").await.unwrap();
    history::append(&mut a, &conv, Role::User, "tell me everything")
        .await
        .unwrap();
    let mut cut = Message::new(Role::Assistant, "Once upon a", 2);
    cut.incomplete = Some(Incomplete::Length);
    history::append_message(&mut a, &conv, cut).await.unwrap();

    let mut b = account::login(&two, &s.url).await.unwrap();
    let h = history::sync(&mut b).await.unwrap();
    let c = &h.conversations()[&conv];
    let read: Vec<Option<Incomplete>> = c.messages().map(|(_, m)| m.incomplete).collect();
    assert_eq!(read, [None, Some(Incomplete::Length)]);
    let shown = history::export_markdown(&[c]);
    assert!(
        shown.contains("**Sotto:** (incomplete: stopped at the length limit)"),
        "{shown}"
    );
    let json = history::export_json(&[c]).unwrap();
    assert!(json.contains(r#""incomplete": "length""#), "{json}");
}

// ---- Rate limits -----------------------------------------------------------------------

#[tokio::test]
async fn sign_in_attempts_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let store = sotto_store::open(&format!("sqlite:{}", dir.path().join("a.sqlite").display()))
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("http://localhost:{port}");
    let auth_rate = RateLimit {
        per_minute: 1,
        burst: 3,
    };
    tokio::spawn(sotto_server::serve(
        listener,
        testing::accounts_config(store, &url, auth_rate),
    ));
    let api = ApiClient::new(&url).unwrap();
    for _ in 0..3 {
        api.sign_in_start().await.unwrap();
    }
    let limited = |r: Result<_, ApiClientError>| matches!(r, Err(ApiClientError::Server(StatusCode::TOO_MANY_REQUESTS, e)) if e.error == "rate_limited");
    assert!(limited(api.sign_in_start().await.map(|_| ())));
    let wrong = sotto_vault::RecoveryCode::generate().unwrap();
    let guess = sotto_api::RecoverSignIn {
        lookup: wrong.lookup(),
        secret: *wrong.sign_in_secret(),
        bearer: true,
    };
    assert!(limited(api.recover(&guess).await.map(|_| ())));
    assert!(limited(api.register_start("x").await.map(|_| ())));
}

#[tokio::test]
async fn malformed_requests_get_the_api_error_shape() {
    let s = server(false).await;
    let (_d, d) = device();
    let (a, _) = account::create(&d, &s.url, "A", "a").await.unwrap();
    let http = reqwest::Client::new();
    let bearer = format!("Bearer {}", a.session.session_token);
    let cases = [
        (
            http.post(format!("{}/v1/session/finish", s.url))
                .header("content-type", "application/json")
                .body("{not json"),
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        (
            http.post(format!("{}/v1/session/finish", s.url)).body("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "must be JSON",
        ),
        (
            http.put(format!("{}/v1/records/m.x.y", s.url))
                .header("authorization", &bearer)
                .json(&serde_json::json!({ "kind": 7 })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "fields and types",
        ),
        (
            http.get(format!("{}/v1/records?since=yesterday", s.url))
                .header("authorization", &bearer),
            StatusCode::BAD_REQUEST,
            "query string is malformed",
        ),
        (
            http.put(format!("{}/v1/records/m.x.y", s.url))
                .header("authorization", &bearer)
                .header("content-type", "application/json")
                .body(vec![b' '; 9 << 20]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too large",
        ),
    ];
    for (request, status, says) in cases {
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), status);
        let body: sotto_api::ApiError = resp.json().await.expect("a JSON API error");
        assert_eq!(body.error, "bad_request");
        assert!(body.message.contains(says), "{}", body.message);
    }
    // Nothing was stored by any of them.
    let (records, _) = a.api.all_changes(0).await.unwrap();
    assert!(records.iter().all(|r| r.id.starts_with("wrap.")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cli_processes_share_one_passkey_file() {
    let s = server(false).await;
    let (_dir, d) = device();
    account::create(&d, &s.url, "A", "a").await.unwrap();
    // Each sign-in advances the passkey's signature counter, which the server requires to grow:
    // without the keyring lock two of these would sign with the same counter and one would be
    // refused as a possible clone.
    let logins: Vec<_> = (0..4)
        .map(|_| {
            let mut login = Command::new(env!("CARGO_BIN_EXE_sotto"));
            login
                .args(["account", "login", "--server", &s.url])
                .env("SOTTO_CONFIG_DIR", &d.dir);
            tokio::task::spawn_blocking(move || login.output())
        })
        .collect();
    for out in futures_util::future::join_all(logins).await {
        common::succeeded("sotto account login", &out.unwrap().unwrap());
    }
    account::login(&d, &s.url)
        .await
        .expect("the passkey still signs in");
}

/// What the server relays (a passkey's name) and what another client of the account wrote (a
/// title, a message) reach the terminal escaped: a hostile one cannot clear the screen, retitle
/// the window or reorder the text the user reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_sequences_from_the_server_are_shown_escaped() {
    let s = server(false).await;
    let (_dir, d) = device();
    let hostile = "\x1b]0;owned\x07\x1b[2J\u{202e}";
    let (mut u, _) = account::create(&d, &s.url, "A", hostile).await.unwrap();
    let conv = history::start(&mut u, hostile).await.unwrap();
    history::append(&mut u, &conv, Role::User, hostile)
        .await
        .unwrap();
    u.save_ledger(&d).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sotto"))
            .args(args)
            .env("SOTTO_CONFIG_DIR", &d.dir)
            .output()
            .unwrap();
        String::from_utf8(common::succeeded("sotto", &out).to_vec()).unwrap()
    };
    let prefix = &conv[..12];
    for shown in [
        run(&["account", "passkeys", "list"]),
        run(&["history", "list"]),
        run(&["history", "show", prefix]),
    ] {
        assert!(
            !shown.contains('\x1b') && !shown.contains('\x07') && !shown.contains('\u{202e}'),
            "{shown:?}"
        );
        assert!(
            shown.contains("\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{202e}"),
            "{shown:?}"
        );
    }
}

// ---- Many servers ----------------------------------------------------------------------

/// A server over its own connection to the database `spec`, limited to `auth_rate`, taking
/// origins on any port of `localhost` (the servers stand behind one load-balanced address).
async fn server_on(spec: &str, auth_rate: RateLimit) -> String {
    let store = sotto_store::open(spec).await.expect("store opens");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let mut config = testing::accounts_config(store, &url, auth_rate);
    if let Some(accounts) = &mut config.accounts {
        accounts.any_port = true;
    }
    tokio::spawn(sotto_server::serve(listener, config));
    url
}

/// Two servers on one PostgreSQL database, as behind a load balancer, serve one user as one:
/// an account signed up through the first signs in through the second; a sign-in ceremony
/// started on one finishes on the other; history written through either is read through both;
/// and a rate limit is one limit for both, not one each.
#[tokio::test]
async fn two_servers_on_one_postgres_serve_one_user() {
    let db = Database::create("sotto_cli").expect("a test database");
    const BURST: u32 = 8;
    let limit = RateLimit {
        per_minute: 1,
        burst: BURST,
    };
    let (one, two) = (
        server_on(&db.url, limit).await,
        server_on(&db.url, limit).await,
    );
    let (_d, profile) = device();

    // Sign-up through one (2 limited requests), sign-in through the other (2).
    let (mut a, _) = account::create(&profile, &one, "Ada", "laptop")
        .await
        .unwrap();
    let conv = history::start(&mut a, "Across servers").await.unwrap();
    history::append(&mut a, &conv, Role::User, "written through one")
        .await
        .unwrap();
    a.save_ledger(&profile).unwrap();
    let mut b = account::login(&profile, &two).await.unwrap();
    let h = history::sync(&mut b).await.unwrap();
    assert_eq!(contents(&h, &conv), ["written through one"]);
    history::append(&mut b, &conv, Role::Assistant, "written through two")
        .await
        .unwrap();
    let h = history::sync(&mut a).await.unwrap();
    assert_eq!(
        contents(&h, &conv),
        ["written through one", "written through two"]
    );

    // A ceremony started on the first server and finished on the second (2 more requests).
    let on = |url: &str| ApiClient::new(url).unwrap();
    let (status, text) = send(&on(&one), Method::Post, routes::SIGN_IN_START, None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let started: sotto_api::CeremonyStarted = serde_json::from_str(&text).unwrap();
    let mut keyring = sotto_authenticator::Keyring::load(&profile.keyring_path(), None).unwrap();
    let signed = keyring
        .authenticate(&one, started.options, &sotto_vault::prf_salt(), None)
        .await
        .unwrap();
    keyring.save(&profile.keyring_path(), None).unwrap();
    let finish = serde_json::json!({
        "ceremony_id": started.ceremony_id,
        "credential": signed.response,
        "bearer": true,
    });
    let (status, text) = send(
        &on(&two),
        Method::Post,
        routes::SIGN_IN_FINISH,
        Some(&finish),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "finished on the other server: {text}"
    );
    let granted: sotto_api::SessionGranted = serde_json::from_str(&text).unwrap();
    assert_eq!(granted.account_id, a.session.account_id);
    // Taken once: the first server cannot finish it again.
    let (status, _) = send(
        &on(&one),
        Method::Post,
        routes::SIGN_IN_FINISH,
        Some(&finish),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // 7 limited requests so far from this address, on both servers together: one more passes
    // on either, then both refuse.
    let used = 7;
    let mut passed = 0;
    for i in 0..2 * BURST {
        let url = if i % 2 == 0 { &one } else { &two };
        let (status, _) = send(&on(url), Method::Post, routes::SIGN_IN_START, None).await;
        match status {
            StatusCode::OK => passed += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("sign-in start answered {other}"),
        }
    }
    assert_eq!(used + passed, BURST, "one limit for both servers");
}
