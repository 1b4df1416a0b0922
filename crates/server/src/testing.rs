//! A real account server for other crates' tests (feature `testing`): the router over a fresh
//! SQLite store in a temporary directory, served on a loopback port, with sign-in limits raised
//! so tests that sign in often are not rate-limited. What the clients' tests run against, so
//! none of them keeps a stand-in of the server; and [`Records`], for the tests that play a
//! hostile operator by editing the rows it serves.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::OptionalExtension as _;
use sotto_store::Store;

use crate::{serve, AccountsConfig, RateLimit, ServerConfig, TokensConfig};

/// Sign-in limits no test that signs in often reaches.
pub const UNLIMITED: RateLimit = RateLimit {
    per_minute: 100_000,
    burst: 100_000,
};

/// A server with the accounts API only, over `store`, for `origin` on `localhost` (WebAuthn's
/// relying party), sign-in attempts limited to `auth_rate`.
pub fn accounts_config(store: Arc<dyn Store>, origin: &str, auth_rate: RateLimit) -> ServerConfig {
    let mut accounts = AccountsConfig::new(store, "localhost", origin);
    accounts.auth_rate = auth_rate;
    let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 9)));
    config.accounts = Some(accounts);
    config
}

pub struct TestServer {
    /// `http://localhost:<port>`: WebAuthn's relying party is `localhost`.
    pub url: String,
    /// The SQLite file, for tests that play a hostile server by editing rows.
    pub db: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub fn records(&self) -> Records {
        Records::open(&self.db)
    }
}

/// Starts the server on the current tokio runtime; it serves until the runtime ends.
pub async fn spawn() -> TestServer {
    spawn_configured(|_, _| {}).await
}

/// As [`spawn`], with a fresh relay-token issuer, which the relay `required`s or not.
pub async fn spawn_with_tokens(required: bool) -> TestServer {
    let issuer = Arc::new(sotto_tokens::IssuerSecret::generate().expect("an issuer key"));
    spawn_configured(move |config, store| {
        let mut tokens =
            TokensConfig::new(store, issuer, "issuer.sotto.test").expect("a token challenge");
        tokens.required = required;
        config.tokens = Some(tokens);
    })
    .await
}

async fn spawn_configured(configure: impl FnOnce(&mut ServerConfig, Arc<dyn Store>)) -> TestServer {
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
    let mut config = accounts_config(store.clone(), &url, UNLIMITED);
    configure(&mut config, store);
    tokio::spawn(serve(listener, config));
    TestServer { url, db, _dir: dir }
}

/// The record rows of a server's SQLite store, edited behind the server's back: what an
/// operator who serves what it likes can do without any key. Record ids are unique across
/// accounts in these tests (they carry random conversation ids), so rows are named by id alone.
/// A query that fails panics: these are test fixtures.
pub struct Records(rusqlite::Connection);

impl Records {
    pub fn open(db: &Path) -> Self {
        Records(rusqlite::Connection::open(db).expect("the server's SQLite file opens"))
    }

    /// A record's ciphertext (`None` for a deletion marker) and version.
    pub fn get(&self, id: &str) -> (Option<Vec<u8>>, i64) {
        self.0
            .query_row(
                "SELECT ciphertext, version FROM records WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .expect("the records table reads")
            .unwrap_or_else(|| panic!("no record {id}"))
    }

    /// The ciphertext of a record that is not a deletion marker.
    pub fn ciphertext(&self, id: &str) -> Vec<u8> {
        self.get(id)
            .0
            .unwrap_or_else(|| panic!("record {id} is a deletion marker"))
    }

    /// Serves `ciphertext` (`None`: a deletion marker) at `version` as record `id`.
    pub fn set(&self, id: &str, ciphertext: Option<&[u8]>, version: i64) {
        self.update(
            "UPDATE records SET ciphertext = ?1, version = ?2 WHERE id = ?3",
            rusqlite::params![ciphertext, version, id],
        );
    }

    pub fn set_version(&self, id: &str, version: i64) {
        self.update(
            "UPDATE records SET version = ?1 WHERE id = ?2",
            rusqlite::params![version, id],
        );
    }

    pub fn set_kind(&self, id: &str, kind: &str) {
        self.update(
            "UPDATE records SET kind = ?1 WHERE id = ?2",
            rusqlite::params![kind, id],
        );
    }

    /// Serves record `from` again, unchanged, under the id `to`, as the newest change.
    pub fn copy(&self, from: &str, to: &str) {
        self.update(
            "INSERT INTO records (account, id, grp, kind, version, seq, ciphertext) \
             SELECT account, ?1, grp, kind, version, (SELECT MAX(seq) + 1 FROM records), \
             ciphertext FROM records WHERE id = ?2",
            rusqlite::params![to, from],
        );
    }

    pub fn delete(&self, id: &str) {
        self.update("DELETE FROM records WHERE id = ?1", rusqlite::params![id]);
    }

    /// The id and version of every record whose id starts with `prefix`.
    pub fn versions(&self, prefix: &str) -> Vec<(String, i64)> {
        let mut select = self
            .0
            .prepare("SELECT id, version FROM records WHERE substr(id, 1, length(?1)) = ?1")
            .expect("the records table reads");
        select
            .query_map([prefix], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("the records table reads")
            .map(|row| row.expect("a record row"))
            .collect()
    }

    /// Runs a statement that must change at least one row: a tamper that touched nothing
    /// would let the test pass without testing anything.
    fn update(&self, sql: &str, params: impl rusqlite::Params) {
        let changed = self
            .0
            .execute(sql, params)
            .expect("the records table writes");
        assert!(changed > 0, "no record row changed: {sql}");
    }
}
