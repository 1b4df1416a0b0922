//! Relay tokens (Privacy Pass) end to end: a real server issuing to a real account, a real
//! enclave behind the relay that redeems them, and the CLI's wallet. What the relay refuses
//! (no token, a spent one, a forged one, one of a key it does not hold), the quota's refusal,
//! and the canary: a token-paid turn carries nothing of the account to the relay or the
//! enclave, the server logs nothing of it, and its database links the turn to no one.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use sotto::api::ApiClient;
use sotto::client::{now, ClientError, Connection};
use sotto::local::{Profile, SessionFile};
use sotto_channel::handshake::Expectations;
use sotto_channel::messages::{GenParams, Role, WireMessage};
use sotto_client::{Answer, FetchTokens, Flow, RelayPolicy, RelayToken, Step, Token};
use sotto_server::{testing, TokensConfig};
use sotto_tokens::{header, IssuerSecret, PendingToken, TokenChallenge};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zeroize::Zeroizing;

use crate::canary::{all_files, contains, Binaries};
use crate::common::{self, Tap, TapMode};

const BIN: &str = env!("CARGO_BIN_EXE_sotto");

struct Stack {
    _dir: tempfile::TempDir,
    url: String,
    policy: sotto_verify::Policy,
    releases: sotto_release::ReleaseSet,
    profile: Profile,
    /// What another server of the same deployment shares: store, enclave, release log.
    store: Arc<dyn sotto_store::Store>,
    enclave_addr: SocketAddr,
    log_dir: std::path::PathBuf,
}

/// Every server of a test deployment names the same issuer, whatever its port.
const ISSUER: &str = "issuer.sotto.test";

/// Serves a server over `store` with `issuer`'s key; returns its URL.
async fn serve(
    store: Arc<dyn sotto_store::Store>,
    enclave_addr: SocketAddr,
    log_dir: &Path,
    issuer: IssuerSecret,
    required: bool,
    per_period: u32,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let mut config = testing::accounts_config(store.clone(), &url, testing::UNLIMITED);
    config.enclaves = vec![enclave_addr];
    config.log_dir = Some(log_dir.to_path_buf());
    let mut tokens = TokensConfig::new(store, Arc::new(issuer), ISSUER).unwrap();
    tokens.required = required;
    tokens.per_period = per_period;
    config.tokens = Some(tokens);
    tokio::spawn(sotto_server::serve(listener, config));
    url
}

/// An enclave, and a server over a fresh SQLite store with accounts and tokens, and one
/// signed-in account in `profile`.
async fn stack(required: bool, per_period: u32) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let enclave = common::boot_tiny(dir.path()).await;
    let log = common::dev_log(dir.path(), &enclave).await;
    let enclave_addr = common::start_enclave(enclave).await;
    let store = sotto_store::open(&format!(
        "sqlite:{}",
        dir.path().join("accounts.sqlite").display()
    ))
    .await
    .unwrap();
    let issuer = IssuerSecret::generate().unwrap();
    let url = serve(
        store.clone(),
        enclave_addr,
        &log.public_dir,
        issuer,
        required,
        per_period,
    )
    .await;
    let policy = common::policy(dir.path());
    let releases = common::releases(&url, &log.trust, &dir.path().join("client")).await;
    let profile = Profile {
        dir: dir.path().join("profile"),
    };
    sotto::account::create(&profile, &url, "tokens", "laptop")
        .await
        .expect("the account is created");
    Stack {
        _dir: dir,
        url,
        policy,
        releases,
        profile,
        store,
        enclave_addr,
        log_dir: log.public_dir.clone(),
    }
}

impl Stack {
    async fn relay_policy(&self) -> RelayPolicy {
        sotto::relay_tokens::policy(&self.url)
            .await
            .unwrap()
            .expect("the server takes tokens")
    }

    /// `count` tokens through the client core, with the profile's session.
    async fn fetch(&self, count: usize) -> Result<Vec<RelayToken>, sotto_client::ClientError> {
        let session: SessionFile = self
            .profile
            .load_json(&self.profile.session_path())
            .unwrap()
            .unwrap();
        let api = ApiClient::new(&self.url).unwrap();
        let mut flow = FetchTokens::new(
            Some(Token::new(session.session_token)),
            self.relay_policy().await,
            count,
        );
        let mut answer = None;
        loop {
            match flow.next(answer.take())? {
                Step::Send(req) => answer = Some(Answer::Http(api.send(req).await.unwrap())),
                Step::Done(tokens) => return Ok(tokens),
                _ => panic!("a token fetch asks for no passkey"),
            }
        }
    }

    async fn open(&self, token: Option<&str>) -> Result<Connection, ClientError> {
        self.open_at(&self.url, token).await
    }

    async fn open_at(&self, url: &str, token: Option<&str>) -> Result<Connection, ClientError> {
        Connection::attest_paying(url, token, &self.policy, &Expectations::default(), now())
            .await?
            .admit(&self.releases)
            .await
    }
}

/// The relay's refusal of an upgrade: its status and reason.
fn refused(opened: Result<Connection, ClientError>) -> (u16, String) {
    match opened {
        Err(ClientError::RelayRefused { status, reason }) => (status, reason),
        Err(e) => panic!("refused, but not by the relay: {e}"),
        Ok(_) => panic!("the relay let the connection through"),
    }
}

async fn one_turn(conn: &mut Connection) {
    let messages = [WireMessage {
        role: Role::User,
        content: Zeroizing::new("hello".into()),
    }];
    let params = GenParams {
        max_tokens: 4,
        temperature: 0.0,
        top_p: 1.0,
        seed: Some(1),
    };
    let stats = conn
        .chat(&messages, params, &mut |_| {})
        .await
        .expect("a token-paid turn is answered");
    assert!(stats.generated_tokens > 0);
}

/// Another issuer's token for this relay's challenge: what a token of a retired key, or of a
/// stranger, looks like to the relay.
fn foreign_token(policy: &RelayPolicy) -> String {
    let other = IssuerSecret::generate().unwrap();
    let challenge = TokenChallenge::decode(&policy.policy.challenge).unwrap();
    let (pending, request) = PendingToken::start_random(&challenge, other.public()).unwrap();
    let token = pending.finish(&other.sign(&request).unwrap()).unwrap();
    header::authorization(&token)
}

/// `authorization` with one bit of its signature flipped.
fn forged(authorization: &str) -> String {
    let token = header::parse_authorization(authorization).unwrap();
    let mut bytes = token.encode().to_vec();
    *bytes.last_mut().unwrap() ^= 1;
    header::authorization(&sotto_tokens::Token::decode(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_refuses_missing_spent_forged_and_foreign_tokens() {
    let s = stack(true, 100).await;

    let (status, reason) = refused(s.open(None).await);
    assert_eq!(status, 401);
    assert!(reason.contains("requires a Privacy Pass token"), "{reason}");

    // The CLI's wallet: a batch fetched with the session, one token taken for this connection.
    let (token, policy) = sotto::relay_tokens::for_connection(&s.url, &s.profile)
        .await
        .unwrap()
        .expect("the relay requires tokens");
    let mut conn = s.open(Some(&token)).await.expect("a valid token admits");
    one_turn(&mut conn).await;
    conn.close().await;

    let (status, reason) = refused(s.open(Some(&token)).await);
    assert_eq!(status, 401);
    assert!(reason.contains("already spent"), "{reason}");

    let (next, _) = sotto::relay_tokens::for_connection(&s.url, &s.profile)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(*next, *token, "the wallet hands out each token once");
    let (status, reason) = refused(s.open(Some(&forged(&next))).await);
    assert_eq!(status, 401);
    assert!(reason.contains("forged or damaged"), "{reason}");
    // The forgery spent nothing: the real token still admits.
    s.open(Some(&next))
        .await
        .expect("the unforged token admits");

    let (status, reason) = refused(s.open(Some(&foreign_token(&policy))).await);
    assert_eq!(status, 401);
    assert!(
        reason.contains("does not accept (retired or unknown)"),
        "{reason}"
    );

    let (status, reason) = refused(s.open(Some("PrivateToken token=\"***\"")).await);
    assert_eq!(status, 401);
    assert!(reason.contains("malformed"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_does_not_require_tokens_still_checks_one_presented() {
    let s = stack(false, 100).await;
    assert!(
        sotto::relay_tokens::for_connection(&s.url, &s.profile)
            .await
            .unwrap()
            .is_none(),
        "the CLI keeps its tokens where none is required"
    );
    s.open(None).await.expect("no token needed");
    let tokens = s.fetch(2).await.unwrap();
    let token = tokens[0].authorization();
    let (status, reason) = refused(s.open(Some(&forged(&token))).await);
    assert_eq!(status, 401);
    assert!(reason.contains("forged"), "{reason}");
    s.open(Some(&token)).await.expect("a valid token admits");
    let (status, reason) = refused(s.open(Some(&token)).await);
    assert_eq!(status, 401);
    assert!(reason.contains("already spent"), "{reason}");
}

/// Rotation: the deployment's key file replaced, a server started on the same store. Tokens of
/// the old key are refused, and the client drops the ones it holds instead of spending them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_a_retired_key_are_refused_and_dropped() {
    let s = stack(true, 100).await;
    let old = s.fetch(3).await.unwrap();
    let old_policy = s.relay_policy().await;
    let rotated = serve(
        s.store.clone(),
        s.enclave_addr,
        &s.log_dir,
        IssuerSecret::generate().unwrap(),
        true,
        100,
    )
    .await;
    let (status, reason) = refused(s.open_at(&rotated, Some(&old[0].authorization())).await);
    assert_eq!(status, 401);
    assert!(reason.contains("retired or unknown"), "{reason}");
    // The old server still takes them: only the key decides.
    s.open(Some(&old[1].authorization()))
        .await
        .expect("the old key's server admits");

    let new_policy = sotto::relay_tokens::policy(&rotated)
        .await
        .unwrap()
        .unwrap();
    let mut wallet = sotto_client::Wallet::default();
    wallet.add(&old_policy, old);
    assert_eq!(wallet.count(&old_policy), 3);
    assert_eq!(wallet.count(&new_policy), 0);
    assert!(wallet.take(&new_policy).is_none());
    assert_eq!(
        wallet.retain_for(&new_policy),
        3,
        "the old key's tokens are dropped"
    );
    assert_eq!(wallet.count(&old_policy), 0);
}

/// The browser's form: a browser cannot set `Authorization` on a WebSocket, so it offers the
/// token as a subprotocol beside the relay's own, and the relay answers with its own alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_form_of_a_token_is_accepted_once() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    use tokio_tungstenite::tungstenite::Error;

    let s = stack(true, 100).await;
    let token = s.fetch(1).await.unwrap().remove(0);
    let offer = format!("{}, {}", sotto_server::SUBPROTOCOL, *token.subprotocol());
    assert!(token
        .subprotocol()
        .starts_with(sotto_server::TOKEN_SUBPROTOCOL_PREFIX));
    let upgrade = || {
        let mut req = sotto::client::relay_url(&s.url)
            .unwrap()
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&offer).unwrap(),
        );
        tokio_tungstenite::connect_async(req)
    };
    let (ws, resp) = upgrade().await.expect("the token admits");
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        sotto_server::SUBPROTOCOL,
        "the relay echoes its own subprotocol, never the token"
    );
    drop(ws);
    match upgrade().await {
        Err(Error::Http(resp)) => {
            assert_eq!(resp.status(), 401);
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default());
            assert!(body.contains("already spent"), "{body}");
            assert!(
                resp.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("PrivateToken challenge="),
                "a refusal carries the relay's challenge"
            );
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("a spent token admitted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_over_its_quota_is_refused_with_a_clear_message() {
    let s = stack(true, 20).await;
    assert_eq!(s.fetch(16).await.unwrap().len(), 16);
    let refused = match s.fetch(16).await {
        Err(e) => e,
        Ok(_) => panic!("issued beyond the quota"),
    };
    assert_eq!(refused.status(), Some(429));
    assert_eq!(refused.server_code(), Some("token_quota"));
    let message = refused.to_string();
    assert!(
        message.contains("this account has used its tokens for this period")
            && message.contains("20 per 24 h 0 min")
            && message.contains("4 left, 16 asked for"),
        "{message}"
    );
    // What the CLI says when its wallet is empty and the quota is spent.
    let Err(e) = sotto::relay_tokens::for_connection(&s.url, &s.profile).await else {
        panic!("a token was issued over the quota");
    };
    assert!(
        e.to_string().contains("used its tokens for this period"),
        "{e}"
    );
    // What is left is still issued.
    assert_eq!(s.fetch(4).await.unwrap().len(), 4);
}

/// What one client connection sent.
type Sent = Arc<Mutex<Vec<u8>>>;

/// A TCP proxy in front of the server that keeps what each client connection sent.
async fn record_connections(
    listener: TcpListener,
    target: Arc<Mutex<Option<SocketAddr>>>,
    sent: Arc<Mutex<Vec<Sent>>>,
) {
    while let Ok((client, _)) = listener.accept().await {
        let Some(addr) = *target.lock().unwrap() else {
            continue;
        };
        let Ok(upstream) = TcpStream::connect(addr).await else {
            continue;
        };
        let record: Sent = Arc::default();
        sent.lock().unwrap().push(record.clone());
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = upstream.into_split();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n @ 1..) = cr.read(&mut buf).await {
                record.lock().unwrap().extend_from_slice(&buf[..n]);
                if sw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = sw.shutdown().await;
        });
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut sr, &mut cw).await;
            let _ = cw.shutdown().await;
        });
    }
}

/// Every row of every table of the server's SQLite store, one line per row, as the sqlite3
/// shell prints it (blobs in hex).
fn table_rows(db: &Path) -> BTreeMap<String, Vec<String>> {
    let sqlite = |sql: &str| {
        let out = Command::new("sqlite3")
            .args(["-readonly", db.to_str().unwrap(), sql])
            .output()
            .expect("the sqlite3 shell runs (scripts/test-deps installs it)");
        String::from_utf8(common::succeeded("sqlite3", &out).to_vec()).unwrap()
    };
    let tables = sqlite("SELECT name FROM sqlite_schema WHERE type = 'table'");
    let mut out = BTreeMap::new();
    for table in tables.lines() {
        let columns = sqlite(&format!("SELECT name FROM pragma_table_info('{table}')"));
        let hexed: Vec<String> = columns
            .lines()
            .map(|c| format!("CASE typeof({c}) WHEN 'blob' THEN hex({c}) ELSE {c} END"))
            .collect();
        let rows = sqlite(&format!(
            "SELECT {} FROM {table}",
            hexed.join(" || '|' || ")
        ));
        out.insert(
            table.to_owned(),
            rows.lines().map(str::to_lowercase).collect(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_paid_turn_carries_nothing_of_the_account_and_is_stored_linked_to_no_one() {
    let mut b = Binaries::start();
    let (dir, enclave_dir, server_dir, client_dir) = (
        b.dir.path().to_path_buf(),
        b.enclave_dir.clone(),
        b.server_dir.clone(),
        b.client_dir.clone(),
    );
    let tap = Tap::start(b.enclave_addr.parse().unwrap(), TapMode::Pass).await;

    // Clients reach the server through a recorder, at the origin the server is told it has.
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://localhost:{}", front.local_addr().unwrap().port());
    let target = Arc::new(Mutex::new(None));
    let sent = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(record_connections(front, target.clone(), sent.clone()));
    let (mut server, server_addr) = b.server(
        &tap.addr.to_string(),
        &["--origin", &url, "--require-tokens"],
    );
    *target.lock().unwrap() = Some(server_addr.parse().unwrap());

    let pins = b.pins();
    let chat = |home: &Path| {
        let mut child = Command::new(BIN)
            .args(["chat", "--server", &url])
            .args(&pins)
            .args(["--max-tokens", "8", "Say something."])
            .env("HOME", home)
            .env_remove("SOTTO_CONFIG_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (child.wait().unwrap(), stderr)
    };

    // Signed out, the CLI says what to do instead of connecting without a token.
    let stranger = dir.join("stranger");
    std::fs::create_dir_all(&stranger).unwrap();
    let (status, stderr) = tokio::task::block_in_place(|| chat(&stranger));
    assert!(!status.success());
    assert!(stderr.contains("sign in first"), "{stderr}");

    let created = Command::new(BIN)
        .args(["account", "create", "--server", &url])
        .env("HOME", &client_dir)
        .env_remove("SOTTO_CONFIG_DIR")
        .output()
        .unwrap();
    common::succeeded("account create", &created);
    let before = sent.lock().unwrap().len();
    let (status, stderr) = tokio::task::block_in_place(|| chat(&client_dir));
    assert!(status.success(), "{stderr}");

    let config = client_dir.join(".config").join("sotto");
    let session: SessionFile =
        serde_json::from_slice(&std::fs::read(config.join("session.json")).unwrap()).unwrap();
    let account = session.account_id.clone();
    let account_hex = account.replace('-', "");
    let wallet = std::fs::read_to_string(config.join("relay-tokens.json")).unwrap();
    assert_eq!(
        wallet.matches("\"token\"").count(),
        sotto_client::TOKEN_BATCH - 1,
        "one token of the batch was spent"
    );

    // The server logs a relay as it closes, which may be just after the client has exited.
    for _ in 0..50 {
        if contains(&b.server_out.lock().unwrap(), "relay closed") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for child in [&mut b.enclave, &mut server] {
        let _ = child.kill();
        let _ = child.wait();
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // The chat's connections: the relay upgrade carries the token and nothing of the account.
    let sent: Vec<Vec<u8>> = sent.lock().unwrap()[before..]
        .iter()
        .map(|r| r.lock().unwrap().clone())
        .collect();
    let upgrades: Vec<&Vec<u8>> = sent
        .iter()
        .filter(|b| b.starts_with(b"GET /v1/relay ") || b.starts_with(b"GET /v1/relay?"))
        .collect();
    assert_eq!(upgrades.len(), 1, "one relay connection");
    let upgrade = upgrades[0];
    let head_end = upgrade
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("the upgrade request's head");
    let head = String::from_utf8_lossy(&upgrade[..head_end]).to_lowercase();
    assert!(
        head.contains("authorization: privatetoken token="),
        "{head}"
    );
    for needle in ["cookie", "bearer", "sotto_session", "x-account"] {
        assert!(!head.contains(needle), "{needle} in the upgrade: {head}");
    }
    for needle in [&session.session_token, &account, &account_hex] {
        assert!(
            !contains(upgrade, needle),
            "the relay connection carried {needle}"
        );
        assert!(
            !contains(&tap.bytes(), needle),
            "the enclave received {needle}"
        );
    }
    // The token fetch, on its own connection, was where the session went.
    assert!(
        sent.iter().any(
            |b| b.starts_with(b"POST /v1/tokens/issue ") && contains(b, &session.session_token)
        ),
        "tokens were fetched with the session"
    );

    // The database: the spent token is a key id and a nonce, alone in its row.
    let rows = table_rows(&server_dir.join("accounts.sqlite"));
    let spent = &rows["spent_tokens"];
    assert_eq!(spent.len(), 1, "one token redeemed: {spent:?}");
    let nonce = spent[0].split('|').nth(1).expect("key_id|nonce").to_owned();
    assert_eq!(nonce.len(), 64);
    for (table, lines) in &rows {
        for line in lines {
            assert!(
                !(line.contains(&nonce) && line.contains(&account_hex)),
                "{table} links the token to the account: {line}"
            );
            if table != "spent_tokens" {
                assert!(!line.contains(&nonce), "{table} holds the nonce: {line}");
            }
        }
    }
    assert_eq!(
        rows["token_issuance"].len(),
        1,
        "issuance keeps one count: {:?}",
        rows["token_issuance"]
    );
    assert!(rows["token_issuance"][0].starts_with(&account_hex));

    // The logs of the server and the enclave, at trace level: nothing of the account or token.
    let mut logs = Vec::new();
    logs.extend_from_slice(&b.server_out.lock().unwrap());
    logs.extend_from_slice(&b.enclave_out.lock().unwrap());
    assert!(
        contains(&logs, "relay closed"),
        "the server logged the relay"
    );
    assert!(
        contains(&logs, "tokens issued"),
        "the server logged issuance"
    );
    all_files(&server_dir.join("logs"), &mut logs);
    let mut files = Vec::new();
    all_files(&enclave_dir, &mut files);
    for needle in [&account, &account_hex, &session.session_token, &nonce] {
        assert!(!contains(&logs, needle), "a log holds {needle}");
        assert!(!contains(&files, needle), "an enclave file holds {needle}");
    }
}
