//! A real account server for other crates' tests (feature `testing`): the router over a fresh
//! SQLite store in a temporary directory, served on a loopback port, with sign-in limits raised
//! so tests that sign in often are not rate-limited. What the clients' tests run against, so
//! none of them keeps a stand-in of the server.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::{serve, AccountsConfig, RateLimit, ServerConfig};

pub struct TestServer {
    /// `http://localhost:<port>`: WebAuthn's relying party is `localhost`.
    pub url: String,
    /// The SQLite file, for tests that play a hostile server by editing rows.
    pub db: PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts the server on the current tokio runtime; it serves until the runtime ends.
pub async fn spawn() -> TestServer {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("accounts.sqlite");
    let store = sotto_store::open(&format!("sqlite:{}", db.display()))
        .await
        .expect("the store opens");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let port = listener.local_addr().expect("its address").port();
    let url = format!("http://localhost:{port}");
    let mut accounts = AccountsConfig::new(store, "localhost", &url);
    accounts.auth_rate = RateLimit {
        per_minute: 100_000,
        burst: 100_000,
    };
    let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 9)));
    config.accounts = Some(accounts);
    tokio::spawn(serve(listener, config));
    TestServer { url, db, _dir: dir }
}
