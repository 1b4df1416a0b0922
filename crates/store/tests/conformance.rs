//! One conformance suite for every `Store` backend: each check below is a plain async function
//! over `&dyn Store` (or a `Harness` where it must also look at the database directly), and the
//! `conformance!` macro runs each of them against SQLite and against PostgreSQL.
//!
//! PostgreSQL tests need `SOTTO_TEST_POSTGRES_URL` (a role that may create databases); each test
//! creates its own database and drops it afterwards, so tests run in parallel. Without the
//! variable they fail: run `eval "$(scripts/postgres env)"` first.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sotto_api::{PutResult, Quota, RecordOut, Usage};
use sotto_store::{
    AccountId, CredentialRow, NetKey, PendingKind, PendingLimits, PendingOwner, PendingPut,
    RecordWrite, Store, StoreError, TokenGrant,
};
use sotto_testkit::postgres::Database;

/// A byte budget no page here reaches.
const ALL: u64 = u64::MAX;

const ROOMY: Quota = Quota {
    max_bytes: 1 << 30,
    max_records: 1 << 20,
};

// ---- Harness ---------------------------------------------------------------------------

enum Raw {
    Sqlite(PathBuf),
    Postgres(String),
}

struct Harness {
    store: Arc<dyn Store>,
    raw: Raw,
}

// The direct SQL below is written once for both databases: SQLite, too, reads `$1` as the
// first parameter.
impl Harness {
    /// Rows that belong to `account`, per table, counted with direct SQL over every table the
    /// schema has (so a table added later cannot escape the check).
    async fn rows_of(&self, account: AccountId) -> BTreeMap<String, i64> {
        let (tables, columns) = match self.raw {
            Raw::Sqlite(_) => (
                "SELECT name FROM sqlite_schema WHERE type = 'table'",
                "SELECT name FROM pragma_table_info($1)",
            ),
            Raw::Postgres(_) => (
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = 'public'",
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = 'public' AND table_name = $1",
            ),
        };
        let mut out = BTreeMap::new();
        for table in self.strings(tables, None).await {
            let columns = self.strings(columns, Some(&table)).await;
            let Some(column) = owner_column(&table, &columns) else {
                continue;
            };
            let sql = format!("SELECT count(*) FROM {table} WHERE {column} = $1");
            let n = self.count(&sql, &account.0).await;
            out.insert(table, n);
        }
        out
    }

    /// How many rows anywhere hold `needle` inside a ciphertext or passkey column.
    async fn rows_containing(&self, needle: &[u8]) -> i64 {
        let sql = match self.raw {
            Raw::Sqlite(_) => "SELECT count(*) FROM records WHERE instr(ciphertext, $1) > 0",
            Raw::Postgres(_) => {
                "SELECT count(*) FROM records WHERE position($1::bytea in ciphertext) > 0"
            }
        };
        self.count(sql, needle).await
    }

    /// The one text column `sql` returns, given at most one text parameter.
    async fn strings(&self, sql: &str, param: Option<&str>) -> Vec<String> {
        match &self.raw {
            Raw::Sqlite(path) => read_only(path)
                .prepare(sql)
                .unwrap()
                .query_map(rusqlite::params_from_iter(param), |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap(),
            Raw::Postgres(url) => {
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    param.iter().map(|p| p as _).collect();
                let rows = pg_connect(url).await.query(sql, &params).await.unwrap();
                rows.iter().map(|r| r.get(0)).collect()
            }
        }
    }

    /// The count `sql` returns for one byte-string parameter.
    async fn count(&self, sql: &str, param: &[u8]) -> i64 {
        match &self.raw {
            Raw::Sqlite(path) => read_only(path)
                .query_row(sql, [param], |r| r.get(0))
                .unwrap(),
            Raw::Postgres(url) => pg_connect(url)
                .await
                .query_one(sql, &[&param])
                .await
                .unwrap()
                .get(0),
        }
    }
}

/// The column naming the owning account; every table but the version table must have one.
fn owner_column(table: &str, columns: &[String]) -> Option<&'static str> {
    if table == "schema_version" {
        return None;
    }
    if table == "accounts" {
        return Some("id");
    }
    // Holds no account by design: a redeemed token must not be linkable to anyone
    // (`token_tables_link_nothing` checks its columns).
    if table == "spent_tokens" {
        return None;
    }
    // Keyed by whatever the server chooses (a network, an account id behind a prefix), so the
    // store cannot tell which rows name an account; each holds a count and a time, and is
    // forgotten once idle (`rate_limits` checks the purge).
    if table == "rate_buckets" {
        return None;
    }
    assert!(
        columns.iter().any(|c| c == "account"),
        "table {table} has no `account` column: the deletion check cannot cover it"
    );
    Some("account")
}

fn read_only(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

async fn with_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Harness) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = sotto_store::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    body(Harness {
        store,
        raw: Raw::Sqlite(path),
    })
    .await;
}

async fn with_postgres<F, Fut>(body: F)
where
    F: FnOnce(Harness) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = Database::create("sotto_t").unwrap_or_else(|e| panic!("{e}"));
    let url = db.url.clone();
    let outcome = tokio::spawn(async move {
        let store = sotto_store::open(&url).await.unwrap();
        body(Harness {
            store,
            raw: Raw::Postgres(url),
        })
        .await;
    })
    .await;
    // Dropped best effort (a leftover test database is harmless) before a failure is reported.
    drop(db);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

macro_rules! conformance {
    (store: [$($s:ident),* $(,)?], harness: [$($h:ident),* $(,)?]) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $s() {
                    super::with_sqlite(|h| async move { super::$s(h.store.as_ref()).await }).await
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $h() {
                    super::with_sqlite(|h| async move { super::$h(&h).await }).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $s() {
                    super::with_postgres(|h| async move { super::$s(h.store.as_ref()).await })
                        .await
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $h() {
                    super::with_postgres(|h| async move { super::$h(&h).await }).await
                }
            )*
        }
    };
}

conformance! {
    store: [
        accounts_and_credentials,
        recovery_values,
        rotation_is_all_or_nothing,
        sessions_expire,
        removing_a_credential_ends_its_sessions,
        duplicates_leave_nothing_behind,
        missing_accounts,
        versions_and_conflicts,
        markers,
        changes_cursor_and_limit,
        changes_pages_are_bounded_in_bytes,
        delete_group,
        quota_records,
        quota_bytes,
        account_isolation,
        tokens_within_quota,
        tokens_are_spent_once,
        pending_entries_are_taken_once,
        pending_kinds_count_apart_and_accounts_push_out_their_own,
        pending_caps_refuse_networks_and_a_full_table,
        pending_entries_expire,
        rate_limits,
    ],
    harness: [
        delete_account_removes_every_row,
        deleted_ciphertext_is_gone,
        concurrent_writers,
        token_tables_link_nothing,
        racing_token_operations,
        racing_pending_entries,
        racing_rate_limits,
    ]
}

// ---- Fixtures ----------------------------------------------------------------------------

fn new_id() -> AccountId {
    AccountId(*uuid::Uuid::new_v4().as_bytes())
}

fn bytes32(tag: u8) -> [u8; 32] {
    let mut b = [tag; 32];
    b[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    b
}

fn cred(name: &str, created_at: u64) -> CredentialRow {
    CredentialRow {
        credential_id: uuid::Uuid::new_v4().as_bytes().to_vec(),
        passkey: format!("passkey-state-of-{name}").into_bytes(),
        name: name.to_owned(),
        created_at,
        last_used_at: None,
    }
}

/// A fresh account with one credential; returns it with its credential and recovery lookup.
async fn account(s: &dyn Store) -> (AccountId, CredentialRow, [u8; 32]) {
    let id = new_id();
    let first = cred("laptop", 1000);
    let lookup = bytes32(1);
    s.create_account(id, 1000, first.clone(), lookup, bytes32(2))
        .await
        .unwrap();
    (id, first, lookup)
}

fn write<'a>(id: &'a str, expected: u64, ciphertext: &'a [u8]) -> RecordWrite<'a> {
    RecordWrite {
        id,
        group: None,
        kind: "msg",
        expected_version: expected,
        ciphertext,
    }
}

/// The recovery wrapping's record.
fn wrap(expected: u64, ciphertext: &[u8]) -> RecordWrite<'_> {
    RecordWrite {
        kind: "wrap",
        ..write("wrap.recovery", expected, ciphertext)
    }
}

fn in_group<'a>(
    id: &'a str,
    group: &'a str,
    expected: u64,
    ciphertext: &'a [u8],
) -> RecordWrite<'a> {
    RecordWrite {
        group: Some(group),
        ..write(id, expected, ciphertext)
    }
}

async fn usage(s: &dyn Store, id: AccountId) -> Usage {
    s.account(id).await.unwrap().unwrap().usage
}

fn used(bytes: u64, records: u64) -> Usage {
    Usage { bytes, records }
}

/// The account a recovery lookup finds, if any.
async fn recovery_owner(s: &dyn Store, lookup: &[u8; 32]) -> Option<AccountId> {
    s.find_recovery(lookup)
        .await
        .unwrap()
        .map(|(account, _)| account)
}

/// A write under [`ROOMY`], which must succeed.
async fn put(s: &dyn Store, id: AccountId, w: RecordWrite<'_>) -> PutResult {
    put_within(s, id, w, ROOMY).await
}

async fn put_within(s: &dyn Store, id: AccountId, w: RecordWrite<'_>, quota: Quota) -> PutResult {
    s.put_record(id, w, quota).await.unwrap()
}

/// The `(expected, current)` versions of a conflict; any other outcome fails the test.
fn conflict<T: Debug>(outcome: Result<T, StoreError>) -> (u64, u64) {
    match outcome {
        Err(StoreError::Conflict { expected, current }) => (expected, current),
        other => panic!("expected a version conflict, got {other:?}"),
    }
}

/// A write that `quota`'s `limit` ("bytes" or "records") must refuse; any other outcome fails
/// the test.
async fn refused_within(
    s: &dyn Store,
    id: AccountId,
    w: RecordWrite<'_>,
    quota: Quota,
    limit: &str,
) {
    match s.put_record(id, w, quota).await {
        Err(StoreError::QuotaExceeded(refused)) => assert_eq!(refused, limit),
        other => panic!("expected a quota refusal, got {other:?}"),
    }
}

// ---- Accounts, credentials, recovery, sessions ------------------------------------------

async fn accounts_and_credentials(s: &dyn Store) {
    let (id, first, _) = account(s).await;
    let row = s.account(id).await.unwrap().unwrap();
    assert_eq!(row.id, id);
    assert_eq!(row.created_at, 1000);
    assert!(row.has_recovery);
    assert_eq!(row.usage, Usage::default());
    assert_eq!(s.credentials(id).await.unwrap(), vec![first.clone()]);

    let second = CredentialRow {
        last_used_at: Some(1500),
        ..cred("phone", 2000)
    };
    s.add_credential(id, second.clone()).await.unwrap();
    assert_eq!(
        s.credentials(id).await.unwrap(),
        vec![first.clone(), second.clone()]
    );

    s.touch_credential(id, &first.credential_id, b"counter=7", 3000)
        .await
        .unwrap();
    let touched = CredentialRow {
        passkey: b"counter=7".to_vec(),
        last_used_at: Some(3000),
        ..first.clone()
    };
    assert_eq!(
        s.credentials(id).await.unwrap(),
        vec![touched.clone(), second.clone()]
    );

    // A credential deleted meanwhile is not brought back by a late touch.
    assert!(s
        .delete_credential(id, &second.credential_id)
        .await
        .unwrap());
    assert!(!s
        .delete_credential(id, &second.credential_id)
        .await
        .unwrap());
    s.touch_credential(id, &second.credential_id, b"late", 4000)
        .await
        .unwrap();
    assert_eq!(s.credentials(id).await.unwrap(), vec![touched.clone()]);

    // The last credential stays.
    assert!(matches!(
        s.delete_credential(id, &first.credential_id).await,
        Err(StoreError::LastCredential)
    ));
    assert_eq!(s.credentials(id).await.unwrap(), vec![touched]);
    // Two concurrent deletions of the last two: exactly one wins.
    let third = cred("third", 5000);
    s.add_credential(id, third.clone()).await.unwrap();
    let (a, b) = tokio::join!(
        s.delete_credential(id, &first.credential_id),
        s.delete_credential(id, &third.credential_id)
    );
    let outcomes = [a, b];
    assert_eq!(outcomes.iter().filter(|r| matches!(r, Ok(true))).count(), 1);
    assert_eq!(
        outcomes
            .iter()
            .filter(|r| matches!(r, Err(StoreError::LastCredential)))
            .count(),
        1
    );
    assert_eq!(s.credentials(id).await.unwrap().len(), 1);

    assert_eq!(s.account(new_id()).await.unwrap(), None);
    assert_eq!(s.credentials(new_id()).await.unwrap(), vec![]);
}

async fn recovery_values(s: &dyn Store) {
    let (id, _, lookup) = account(s).await;
    let (found, verifier) = s.find_recovery(&lookup).await.unwrap().unwrap();
    assert_eq!(found, id);
    assert_eq!(verifier[16..], [2u8; 16]);

    let new_lookup = bytes32(3);
    let new_verifier = bytes32(4);
    let wrapped = s
        .rotate_recovery(id, new_lookup, new_verifier, wrap(0, b"wrap one"), ROOMY)
        .await
        .unwrap();
    assert_eq!((wrapped.version, wrapped.seq), (1, 1));
    assert_eq!(recovery_owner(s, &lookup).await, None);
    assert_eq!(
        s.find_recovery(&new_lookup).await.unwrap(),
        Some((id, new_verifier))
    );
    assert_eq!(
        s.get_record(id, "wrap.recovery")
            .await
            .unwrap()
            .unwrap()
            .ciphertext,
        Some(b"wrap one".to_vec())
    );
    // Setting the same values again is a replacement, not a duplicate.
    s.rotate_recovery(id, new_lookup, new_verifier, wrap(1, b"wrap two"), ROOMY)
        .await
        .unwrap();

    let (other, _, other_lookup) = account(s).await;
    assert!(matches!(
        s.rotate_recovery(other, new_lookup, bytes32(5), wrap(0, b"x"), ROOMY)
            .await,
        Err(StoreError::DuplicateRecovery)
    ));
    assert_eq!(recovery_owner(s, &other_lookup).await, Some(other));
    assert_eq!(s.find_recovery(&bytes32(9)).await.unwrap(), None);
}

/// A rotation either stores the new verifier and the new wrapping together or changes nothing:
/// whatever refuses it, the old code still finds the account and its wrapping is intact.
async fn rotation_is_all_or_nothing(s: &dyn Store) {
    let (id, _, old_lookup) = account(s).await;
    put(s, id, wrap(0, b"old wrapping")).await;
    let (other, _, other_lookup) = account(s).await;
    let tight = Quota {
        max_bytes: 20,
        max_records: 10,
    };
    let refusals: [(&str, Result<PutResult, StoreError>); 4] = [
        (
            "version conflict",
            s.rotate_recovery(id, bytes32(3), bytes32(4), wrap(0, b"new"), ROOMY)
                .await,
        ),
        (
            "over quota",
            s.rotate_recovery(id, bytes32(3), bytes32(4), wrap(1, &[0; 64]), tight)
                .await,
        ),
        (
            "lookup of another account",
            s.rotate_recovery(id, other_lookup, bytes32(4), wrap(1, b"new"), ROOMY)
                .await,
        ),
        (
            "no such account",
            s.rotate_recovery(new_id(), bytes32(3), bytes32(4), wrap(0, b"new"), ROOMY)
                .await,
        ),
    ];
    for (what, outcome) in refusals {
        assert!(outcome.is_err(), "{what}: accepted");
        assert_eq!(
            recovery_owner(s, &old_lookup).await,
            Some(id),
            "{what}: the old code no longer finds the account"
        );
        let stored = s.get_record(id, "wrap.recovery").await.unwrap().unwrap();
        assert_eq!(
            (stored.version, stored.ciphertext),
            (1, Some(b"old wrapping".to_vec())),
            "{what}: the old wrapping changed"
        );
    }
    assert_eq!(recovery_owner(s, &other_lookup).await, Some(other));
    assert_eq!(usage(s, id).await, used(12, 1));
}

async fn sessions_expire(s: &dyn Store) {
    let (id, _, _) = account(s).await;
    let token = bytes32(7);
    s.create_session(token, id, None, 5000).await.unwrap();
    assert_eq!(s.session(&token, 4999).await.unwrap(), Some(id));
    assert_eq!(s.session(&token, 5000).await.unwrap(), None);
    assert_eq!(s.session(&token, 9000).await.unwrap(), None);
    assert_eq!(s.session(&bytes32(8), 0).await.unwrap(), None);

    let live = bytes32(9);
    s.create_session(live, id, None, 10_000).await.unwrap();
    assert_eq!(s.session(&live, 1).await.unwrap(), Some(id));
    s.delete_session(&live).await.unwrap();
    assert_eq!(s.session(&live, 1).await.unwrap(), None);
    // Deleting an unknown session is not an error.
    s.delete_session(&live).await.unwrap();

    // Purging removes exactly the sessions expired at that time.
    let (expired, later) = (bytes32(10), bytes32(11));
    s.create_session(expired, id, None, 6000).await.unwrap();
    s.create_session(later, id, None, 20_000).await.unwrap();
    assert_eq!(
        s.purge_sessions(7000).await.unwrap(),
        2,
        "`token` and `expired`"
    );
    assert_eq!(s.session(&later, 7000).await.unwrap(), Some(id));
    assert_eq!(s.purge_sessions(7000).await.unwrap(), 0);
}

/// Removing a passkey ends the sessions it opened, in the same call; sessions of the account's
/// other passkeys, its recovery sessions and other accounts' sessions stay.
async fn removing_a_credential_ends_its_sessions(s: &dyn Store) {
    let (id, first, _) = account(s).await;
    let second = cred("phone", 2000);
    s.add_credential(id, second.clone()).await.unwrap();
    let (other, other_cred, _) = account(s).await;
    let sessions = [
        (bytes32(1), id, Some(&first.credential_id)),
        (bytes32(2), id, Some(&second.credential_id)),
        (bytes32(3), id, Some(&second.credential_id)),
        (bytes32(4), id, None),
        (bytes32(5), other, Some(&other_cred.credential_id)),
    ];
    for (token, account, credential) in &sessions {
        s.create_session(*token, *account, credential.map(Vec::as_slice), 10_000)
            .await
            .unwrap();
    }
    assert!(s
        .delete_credential(id, &second.credential_id)
        .await
        .unwrap());
    let mut live = Vec::new();
    for (token, _, _) in &sessions {
        live.push(s.session(token, 1).await.unwrap().is_some());
    }
    assert_eq!(live, [true, false, false, true, true]);
    // Refusing to delete the last credential ends nothing.
    assert!(matches!(
        s.delete_credential(id, &first.credential_id).await,
        Err(StoreError::LastCredential)
    ));
    assert_eq!(s.session(&sessions[0].0, 1).await.unwrap(), Some(id));
}

async fn duplicates_leave_nothing_behind(s: &dyn Store) {
    let (a, a_cred, a_lookup) = account(s).await;

    // Credential already registered: nothing of the new account is written, so its recovery
    // lookup stays free.
    let b = new_id();
    let b_lookup = bytes32(1);
    assert!(matches!(
        s.create_account(b, 1, a_cred.clone(), b_lookup, bytes32(2))
            .await,
        Err(StoreError::DuplicateCredential)
    ));
    assert_eq!(s.account(b).await.unwrap(), None);
    assert_eq!(recovery_owner(s, &b_lookup).await, None);

    // Recovery lookup already in use: the credential is not registered either.
    let c = new_id();
    let c_cred = cred("c", 1);
    assert!(matches!(
        s.create_account(c, 1, c_cred.clone(), a_lookup, bytes32(2))
            .await,
        Err(StoreError::DuplicateRecovery)
    ));
    assert_eq!(s.account(c).await.unwrap(), None);
    assert_eq!(s.credentials(c).await.unwrap(), vec![]);

    // Both taken: the credential is reported.
    assert!(matches!(
        s.create_account(new_id(), 1, a_cred.clone(), a_lookup, bytes32(2))
            .await,
        Err(StoreError::DuplicateCredential)
    ));

    // The values refused above are free for an account that really gets them.
    s.create_account(b, 1, c_cred.clone(), b_lookup, bytes32(2))
        .await
        .unwrap();
    assert_eq!(s.credentials(b).await.unwrap(), vec![c_cred]);

    assert!(matches!(
        s.add_credential(b, a_cred.clone()).await,
        Err(StoreError::DuplicateCredential)
    ));
    assert!(matches!(
        s.add_credential(a, a_cred.clone()).await,
        Err(StoreError::DuplicateCredential)
    ));
    assert_eq!(s.credentials(a).await.unwrap(), vec![a_cred]);
}

async fn missing_accounts(s: &dyn Store) {
    let ghost = new_id();
    assert!(matches!(
        s.add_credential(ghost, cred("x", 1)).await,
        Err(StoreError::NoAccount)
    ));
    assert!(matches!(
        s.rotate_recovery(ghost, bytes32(1), bytes32(2), wrap(0, b"x"), ROOMY)
            .await,
        Err(StoreError::NoAccount)
    ));
    assert!(matches!(
        s.create_session(bytes32(3), ghost, None, 10).await,
        Err(StoreError::NoAccount)
    ));
    assert!(matches!(
        s.put_record(ghost, write("r", 0, b"x"), ROOMY).await,
        Err(StoreError::NoAccount)
    ));
    assert!(matches!(
        s.delete_record(ghost, "r", None).await,
        Err(StoreError::NoAccount)
    ));
    assert!(matches!(
        s.delete_group(ghost, "g").await,
        Err(StoreError::NoAccount)
    ));
    assert!(matches!(
        s.delete_account(ghost).await,
        Err(StoreError::NoAccount)
    ));
    assert_eq!(s.get_record(ghost, "r").await.unwrap(), None);
    assert_eq!(s.changes(ghost, 0, 10, ALL).await.unwrap().records, vec![]);
}

// ---- Records -----------------------------------------------------------------------------

async fn versions_and_conflicts(s: &dyn Store) {
    let (id, _, _) = account(s).await;
    assert_eq!(
        conflict(s.put_record(id, write("r", 1, b"one"), ROOMY).await),
        (1, 0)
    );
    let first = put(s, id, write("r", 0, b"one")).await;
    assert_eq!((first.version, first.seq), (1, 1));
    assert_eq!(
        conflict(s.put_record(id, write("r", 0, b"again"), ROOMY).await),
        (0, 1)
    );
    let second = put(s, id, in_group("r", "conv", 1, b"two")).await;
    assert_eq!((second.version, second.seq), (2, 2));
    assert_eq!(
        conflict(s.put_record(id, write("r", 1, b"stale"), ROOMY).await),
        (1, 2)
    );
    assert_eq!(
        s.get_record(id, "r").await.unwrap(),
        Some(RecordOut {
            id: "r".into(),
            group: Some("conv".into()),
            kind: "msg".into(),
            version: 2,
            seq: 2,
            ciphertext: Some(b"two".to_vec()),
        })
    );
    // Failed writes took no sequence number.
    let other = put(s, id, write("s", 0, b"")).await;
    assert_eq!((other.version, other.seq), (1, 3));
    // An empty ciphertext is a live record, not a marker.
    assert_eq!(
        s.get_record(id, "s").await.unwrap().unwrap().ciphertext,
        Some(vec![])
    );
    assert_eq!(s.get_record(id, "nope").await.unwrap(), None);
}

async fn markers(s: &dyn Store) {
    let (id, _, _) = account(s).await;
    put(s, id, write("r", 0, b"one")).await;
    put(s, id, write("r", 1, b"two")).await;

    assert_eq!(conflict(s.delete_record(id, "r", Some(1)).await), (1, 2));
    assert_eq!(
        s.get_record(id, "r").await.unwrap().unwrap().ciphertext,
        Some(b"two".to_vec())
    );
    assert!(s.delete_record(id, "r", Some(2)).await.unwrap());
    let marker = s.get_record(id, "r").await.unwrap().unwrap();
    assert_eq!(
        (marker.version, marker.seq, marker.ciphertext),
        (3, 3, None)
    );
    assert_eq!(marker.kind, "msg");

    // A marker is absent for deletion, whatever version is named; no sequence number is used.
    assert!(!s.delete_record(id, "r", None).await.unwrap());
    assert!(!s.delete_record(id, "r", Some(3)).await.unwrap());
    assert!(!s.delete_record(id, "never", None).await.unwrap());
    assert!(!s.delete_record(id, "never", Some(4)).await.unwrap());

    // Writing over a marker needs the marker's version.
    assert_eq!(
        conflict(s.put_record(id, write("r", 0, b"new"), ROOMY).await),
        (0, 3)
    );
    let back = put(s, id, write("r", 3, b"new")).await;
    assert_eq!((back.version, back.seq), (4, 4));

    // Unconditional deletion of a live record.
    assert!(s.delete_record(id, "r", None).await.unwrap());
    let changes = s.changes(id, 0, 100, ALL).await.unwrap().records;
    assert_eq!(changes.len(), 1);
    assert_eq!((changes[0].version, changes[0].seq), (5, 5));
    assert_eq!(changes[0].ciphertext, None);
}

async fn changes_cursor_and_limit(s: &dyn Store) {
    let (id, _, _) = account(s).await;
    for (i, name) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        let r = put(s, id, write(name, 0, name.as_bytes())).await;
        assert_eq!(r.seq, i as u64 + 1);
    }
    put(s, id, write("b", 1, b"b2")).await; // seq 6
    assert!(s.delete_record(id, "c", None).await.unwrap()); // seq 7

    let all = s.changes(id, 0, 100, ALL).await.unwrap().records;
    let view: Vec<(&str, u64, u64, bool)> = all
        .iter()
        .map(|r| (r.id.as_str(), r.seq, r.version, r.ciphertext.is_some()))
        .collect();
    assert_eq!(
        view,
        vec![
            ("a", 1, 1, true),
            ("d", 4, 1, true),
            ("e", 5, 1, true),
            ("b", 6, 2, true),
            ("c", 7, 2, false),
        ]
    );
    assert_eq!(all[3].ciphertext.as_deref(), Some(&b"b2"[..]));

    // Paging with `next` as the cursor walks the same list, and `more` says when it is over.
    let mut paged = Vec::new();
    let mut since = 0;
    loop {
        let page = s.changes(id, since, 2, ALL).await.unwrap();
        assert!(page.records.len() <= 2);
        assert_eq!(page.next, page.records.last().map_or(since, |r| r.seq));
        since = page.next;
        paged.extend(page.records);
        if !page.more {
            break;
        }
    }
    assert_eq!(paged, all);
    let last = s.changes(id, 7, 100, ALL).await.unwrap();
    assert_eq!((last.next, last.more), (7, false));

    let after_4: Vec<u64> = s
        .changes(id, 4, 100, ALL)
        .await
        .unwrap()
        .records
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(after_4, vec![5, 6, 7]);
    assert_eq!(s.changes(id, 7, 100, ALL).await.unwrap().records, vec![]);
    assert_eq!(s.changes(id, 0, 0, ALL).await.unwrap().records, vec![]);
    assert_eq!(
        s.changes(id, u64::MAX >> 1, 10, ALL).await.unwrap().records,
        vec![]
    );
}

/// A page holds at most the byte budget of ciphertext, except that its first change is always
/// there however large (so a big record never stalls the feed); markers weigh nothing.
async fn changes_pages_are_bounded_in_bytes(s: &dyn Store) {
    let (id, _, _) = account(s).await;
    for (name, len) in [("a", 40), ("b", 40), ("c", 100), ("d", 10)] {
        put(s, id, write(name, 0, &vec![7; len])).await;
    }
    assert!(s.delete_record(id, "a", None).await.unwrap()); // seq 5, a marker
    let walk = |budget: u64| async move {
        let mut pages = Vec::new();
        let mut since = 0;
        loop {
            let page = s.changes(id, since, 100, budget).await.unwrap();
            pages.push(
                page.records
                    .iter()
                    .map(|r| r.id.clone())
                    .collect::<Vec<_>>(),
            );
            since = page.next;
            if !page.more {
                return pages;
            }
        }
    };
    assert_eq!(walk(80).await, [vec!["b"], vec!["c"], vec!["d", "a"]]);
    assert_eq!(walk(1).await, [vec!["b"], vec!["c"], vec!["d"], vec!["a"]]);
    assert_eq!(walk(150).await, [vec!["b", "c", "d", "a"]]);
}

async fn delete_group(s: &dyn Store) {
    let (id, _, _) = account(s).await;
    put(s, id, in_group("m1", "g", 0, b"11")).await;
    put(s, id, in_group("m2", "g", 0, b"222")).await;
    put(s, id, in_group("m3", "g", 0, b"3")).await;
    put(s, id, in_group("o1", "other", 0, b"o")).await;
    put(s, id, write("loose", 0, b"l")).await;
    assert!(s.delete_record(id, "m3", None).await.unwrap()); // seq 6
    assert_eq!(usage(s, id).await, used(7, 4));

    assert_eq!(s.delete_group(id, "g").await.unwrap(), 2);
    let m1 = s.get_record(id, "m1").await.unwrap().unwrap();
    let m2 = s.get_record(id, "m2").await.unwrap().unwrap();
    assert_eq!((m1.version, m1.seq, m1.ciphertext), (2, 7, None));
    assert_eq!((m2.version, m2.seq, m2.ciphertext), (2, 8, None));
    assert_eq!(m1.group.as_deref(), Some("g"));
    // The earlier marker is untouched.
    let m3 = s.get_record(id, "m3").await.unwrap().unwrap();
    assert_eq!((m3.version, m3.seq), (2, 6));
    assert_eq!(usage(s, id).await, used(2, 2));
    assert!(s
        .get_record(id, "o1")
        .await
        .unwrap()
        .unwrap()
        .ciphertext
        .is_some());

    assert_eq!(s.delete_group(id, "g").await.unwrap(), 0);
    assert_eq!(s.delete_group(id, "empty").await.unwrap(), 0);
    let next = put(s, id, write("after", 0, b"a")).await;
    assert_eq!(next.seq, 9);
}

async fn quota_records(s: &dyn Store) {
    let (id, _, _) = account(s).await;
    let two = Quota {
        max_bytes: 1000,
        max_records: 2,
    };
    put_within(s, id, write("a", 0, b"aa"), two).await;
    put_within(s, id, write("b", 0, b"bb"), two).await;
    refused_within(s, id, write("c", 0, b"cc"), two, "records").await;
    assert_eq!(s.get_record(id, "c").await.unwrap(), None);
    // Overwrites do not add a record.
    put_within(s, id, write("a", 1, b"aaa"), two).await;
    assert_eq!(usage(s, id).await, used(5, 2));

    assert!(s.delete_record(id, "b", None).await.unwrap());
    assert_eq!(usage(s, id).await, used(3, 1));
    put_within(s, id, write("c", 0, b"cc"), two).await;
    // Reviving a marker counts as a record again.
    refused_within(s, id, write("b", 2, b"bb"), two, "records").await;
    assert_eq!(usage(s, id).await, used(5, 2));
    // A failed put consumed no sequence number: 1 a, 2 b, 3 a, 4 b deleted, 5 c.
    assert_eq!(put(s, id, write("d", 0, b"")).await.seq, 6);
}

async fn quota_bytes(s: &dyn Store) {
    let (id, _, _) = account(s).await;
    let hundred = Quota {
        max_bytes: 100,
        max_records: 100,
    };
    put_within(s, id, write("a", 0, &[1; 60]), hundred).await;
    refused_within(s, id, write("b", 0, &[2; 41]), hundred, "bytes").await;
    put_within(s, id, write("b", 0, &[2; 40]), hundred).await;
    assert_eq!(usage(s, id).await, used(100, 2));
    // Growing an existing record counts only the difference.
    refused_within(s, id, write("a", 1, &[1; 61]), hundred, "bytes").await;
    put_within(s, id, write("a", 1, &[1; 10]), hundred).await;
    assert_eq!(usage(s, id).await, used(50, 2));

    // A lowered quota still lets the account shrink.
    let tiny = Quota {
        max_bytes: 10,
        max_records: 100,
    };
    put_within(s, id, write("b", 1, &[2; 30]), tiny).await;
    refused_within(s, id, write("b", 2, &[2; 31]), tiny, "bytes").await;
    assert_eq!(usage(s, id).await, used(40, 2));

    assert!(s.delete_record(id, "b", None).await.unwrap());
    assert_eq!(usage(s, id).await, used(10, 1));
    put_within(s, id, write("c", 0, &[3; 90]), hundred).await;
    assert_eq!(usage(s, id).await, used(100, 2));
}

async fn account_isolation(s: &dyn Store) {
    let (a, a_cred, a_lookup) = account(s).await;
    let (b, b_cred, _) = account(s).await;

    put(s, a, in_group("shared", "g", 0, b"from a")).await;
    put(s, a, write("only-a", 0, b"a")).await;
    // B's sequence starts on its own, and its record of the same id is its own.
    let b_put = put(s, b, in_group("shared", "g", 0, b"from b")).await;
    assert_eq!((b_put.version, b_put.seq), (1, 1));

    assert_eq!(s.get_record(b, "only-a").await.unwrap(), None);
    assert_eq!(
        s.get_record(b, "shared").await.unwrap().unwrap().ciphertext,
        Some(b"from b".to_vec())
    );
    let b_changes = s.changes(b, 0, 100, ALL).await.unwrap().records;
    assert_eq!(b_changes.len(), 1);
    assert_eq!(b_changes[0].ciphertext.as_deref(), Some(&b"from b"[..]));

    // B cannot delete, conflict on, or overwrite A's records.
    assert!(!s.delete_record(b, "only-a", None).await.unwrap());
    assert_eq!(
        conflict(s.put_record(b, write("shared", 2, b"x"), ROOMY).await),
        (2, 1)
    );
    assert_eq!(s.delete_group(b, "g").await.unwrap(), 1);
    assert_eq!(
        s.get_record(a, "shared").await.unwrap().unwrap().ciphertext,
        Some(b"from a".to_vec())
    );
    assert_eq!(s.changes(a, 0, 100, ALL).await.unwrap().records.len(), 2);
    assert_eq!(usage(s, a).await, used(7, 2));
    assert_eq!(usage(s, b).await, used(0, 0));

    // Credentials.
    assert_eq!(s.credentials(b).await.unwrap(), vec![b_cred]);
    assert!(!s.delete_credential(b, &a_cred.credential_id).await.unwrap());
    s.touch_credential(b, &a_cred.credential_id, b"hijack", 9)
        .await
        .unwrap();
    assert_eq!(s.credentials(a).await.unwrap(), vec![a_cred]);

    // Sessions name their own account only.
    let a_token = bytes32(5);
    s.create_session(a_token, a, None, 100).await.unwrap();
    assert_eq!(s.session(&a_token, 1).await.unwrap(), Some(a));

    // Recovery stays with A after B replaces its own.
    s.rotate_recovery(b, bytes32(6), bytes32(7), wrap(0, b"b's"), ROOMY)
        .await
        .unwrap();
    assert_eq!(recovery_owner(s, &a_lookup).await, Some(a));

    // Deleting B leaves A whole.
    s.delete_account(b).await.unwrap();
    assert_eq!(s.account(b).await.unwrap(), None);
    assert!(s.account(a).await.unwrap().is_some());
    assert_eq!(s.changes(a, 0, 100, ALL).await.unwrap().records.len(), 2);
    assert_eq!(s.session(&a_token, 1).await.unwrap(), Some(a));
}

// ---- Checks that look at the database itself -------------------------------------------

async fn delete_account_removes_every_row(h: &Harness) {
    let s = h.store.as_ref();
    let (a, _, a_lookup) = account(s).await;
    let (b, _, _) = account(s).await;
    for id in [a, b] {
        s.add_credential(id, cred("second", 2)).await.unwrap();
        s.create_session(bytes32(1), id, None, 100).await.unwrap();
        put(s, id, in_group("m1", "g", 0, b"secret")).await;
        put(s, id, write("m2", 0, b"secret")).await;
        assert!(s.delete_record(id, "m2", None).await.unwrap());
        assert!(s.take_tokens(id, 7, 1, 10).await.unwrap().granted);
        for kind in [PendingKind::Ceremony, PendingKind::Proof] {
            let put = pend(s, kind, &bytes32(9), PendingOwner::Account(id), 0, 100).await;
            assert_eq!(put, PendingPut::Stored);
        }
    }
    // An entry of the account's network names no account and stays.
    let nets = bytes32(10);
    let put = pend(s, PendingKind::Ceremony, &nets, net(1), 0, 100).await;
    assert_eq!(put, PendingPut::Stored);
    let before = h.rows_of(a).await;
    for table in [
        "accounts",
        "credentials",
        "sessions",
        "records",
        "token_issuance",
        "pending",
    ] {
        assert!(
            before.get(table).copied().unwrap_or(0) > 0,
            "{table} should hold rows of the account before deletion: {before:?}"
        );
    }

    s.delete_account(a).await.unwrap();
    let after = h.rows_of(a).await;
    assert!(
        after.values().all(|n| *n == 0),
        "rows of the deleted account remain: {after:?}"
    );
    assert_eq!(after.len(), before.len());
    assert_eq!(
        h.rows_of(b).await,
        before,
        "the other account must be untouched"
    );
    assert_eq!(recovery_owner(s, &a_lookup).await, None);
    assert!(matches!(
        s.delete_account(a).await,
        Err(StoreError::NoAccount)
    ));
    assert_eq!(
        s.take_pending(PendingKind::Ceremony, &nets, 1)
            .await
            .unwrap(),
        Some((nets.to_vec(), net(1)))
    );
}

async fn deleted_ciphertext_is_gone(h: &Harness) {
    let s = h.store.as_ref();
    let (id, _, _) = account(s).await;
    let canary = b"CANARY-5f1c0e7a-plaintext-must-not-survive";
    // One body that fits in a page and one that spills into overflow pages.
    let small = [&b"pad"[..], canary, b"pad"].concat();
    let large = [vec![0x42; 20_000], canary.to_vec(), vec![0x43; 20_000]].concat();
    put(s, id, write("small", 0, &small)).await;
    put(s, id, in_group("large", "g", 0, &large)).await;
    put(s, id, write("keep", 0, b"unrelated")).await;
    assert_eq!(h.rows_containing(canary).await, 2);
    if let Raw::Sqlite(path) = &h.raw {
        assert!(
            file_contains(path, canary),
            "the test must see the canary on disk before deletion"
        );
    }

    assert!(s.delete_record(id, "small", None).await.unwrap());
    assert_eq!(s.delete_group(id, "g").await.unwrap(), 1);
    assert_eq!(h.rows_containing(canary).await, 0);
    if let Raw::Sqlite(path) = &h.raw {
        assert!(
            !file_contains(path, canary),
            "deleted ciphertext remains in the SQLite files"
        );
    }

    // The same holds when the whole account goes.
    let (other, _, _) = account(s).await;
    put(s, other, write("x", 0, &large)).await;
    s.delete_account(other).await.unwrap();
    assert_eq!(h.rows_containing(canary).await, 0);
    if let Raw::Sqlite(path) = &h.raw {
        assert!(
            !file_contains(path, canary),
            "a deleted account's ciphertext remains in the SQLite files"
        );
    }
    assert_eq!(
        s.get_record(id, "keep").await.unwrap().unwrap().ciphertext,
        Some(b"unrelated".to_vec())
    );
}

/// Whether the database file or its write-ahead log holds `needle`.
fn file_contains(db: &Path, needle: &[u8]) -> bool {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    [db.to_path_buf(), PathBuf::from(wal)].iter().any(|p| {
        std::fs::read(p)
            .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            .unwrap_or(false)
    })
}

/// Two tasks append their own records and increment one shared counter with
/// compare-and-swap-and-retry. Every write must land, the counter must count every increment,
/// and the sequence numbers handed out must be 1..=N with no gap or repeat, ordered as the
/// counter's versions were committed.
async fn concurrent_writers(h: &Harness) {
    const ROUNDS: u64 = 40;
    let s = h.store.as_ref();
    let (id, _, _) = account(s).await;
    let created = put(s, id, write("counter", 0, &0u64.to_be_bytes())).await;

    let mut tasks = Vec::new();
    for task in 0..2u8 {
        let store = Arc::clone(&h.store);
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            let mut counter_commits = Vec::new();
            let mut conflicts = 0u64;
            for round in 0..ROUNDS {
                let name = format!("t{task}-{round}");
                let appended = put(store.as_ref(), id, write(&name, 0, name.as_bytes())).await;
                seqs.push(appended.seq);
                loop {
                    let current = store.get_record(id, "counter").await.unwrap().unwrap();
                    let bytes = current.ciphertext.unwrap();
                    let value = u64::from_be_bytes(bytes.as_slice().try_into().unwrap());
                    match store
                        .put_record(
                            id,
                            write("counter", current.version, &(value + 1).to_be_bytes()),
                            ROOMY,
                        )
                        .await
                    {
                        Ok(put) => {
                            assert_eq!(put.version, current.version + 1);
                            seqs.push(put.seq);
                            counter_commits.push((put.version, put.seq));
                            break;
                        }
                        Err(StoreError::Conflict { expected, current }) => {
                            assert!(current > expected);
                            conflicts += 1;
                        }
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
            }
            // Within one task, later writes always get later sequence numbers.
            assert!(seqs.windows(2).all(|w| w[0] < w[1]));
            (seqs, counter_commits, conflicts)
        }));
    }

    let mut all_seqs = vec![created.seq];
    let mut counter_commits = vec![(created.version, created.seq)];
    for task in tasks {
        let (seqs, commits, _conflicts) = task.await.unwrap();
        all_seqs.extend(seqs);
        counter_commits.extend(commits);
    }
    all_seqs.sort_unstable();
    let expected: Vec<u64> = (1..=1 + 4 * ROUNDS).collect();
    assert_eq!(
        all_seqs, expected,
        "sequence numbers must be gap-free and unique"
    );

    // Versions and sequence numbers of the counter rise together: commit order is seq order.
    counter_commits.sort_unstable();
    assert!(counter_commits.windows(2).all(|w| w[0].1 < w[1].1));
    assert_eq!(counter_commits.len() as u64, 1 + 2 * ROUNDS);

    let counter = s.get_record(id, "counter").await.unwrap().unwrap();
    assert_eq!(
        counter.ciphertext,
        Some((2 * ROUNDS).to_be_bytes().to_vec()),
        "an increment was lost"
    );
    assert_eq!(counter.version, 1 + 2 * ROUNDS);

    let changes = s.changes(id, 0, 10_000, ALL).await.unwrap().records;
    assert_eq!(changes.len() as u64, 1 + 2 * ROUNDS);
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(changes.last().map(|r| r.id.as_str()), Some("counter"));
    assert_eq!(
        usage(s, id).await.records,
        1 + 2 * ROUNDS,
        "usage must count every appended record once"
    );
}

// ---- Tokens ------------------------------------------------------------------------------

fn grant(granted: bool, remaining: u32) -> TokenGrant {
    TokenGrant { granted, remaining }
}

async fn tokens_within_quota(s: &dyn Store) {
    let (a, _, _) = account(s).await;
    let (b, _, _) = account(s).await;
    assert_eq!(s.take_tokens(a, 100, 3, 5).await.unwrap(), grant(true, 2));
    // Over the limit: refused, and nothing is counted.
    assert_eq!(s.take_tokens(a, 100, 3, 5).await.unwrap(), grant(false, 2));
    assert_eq!(s.take_tokens(a, 100, 2, 5).await.unwrap(), grant(true, 0));
    assert_eq!(s.take_tokens(a, 100, 1, 5).await.unwrap(), grant(false, 0));
    // Another account has its own count; a new period starts afresh.
    assert_eq!(s.take_tokens(b, 100, 5, 5).await.unwrap(), grant(true, 0));
    assert_eq!(s.take_tokens(a, 101, 5, 5).await.unwrap(), grant(true, 0));
    // A lowered limit refuses without going negative; zero tokens always fit.
    assert_eq!(s.take_tokens(a, 101, 1, 2).await.unwrap(), grant(false, 0));
    assert_eq!(s.take_tokens(a, 101, 0, 5).await.unwrap(), grant(true, 0));
    assert!(matches!(
        s.take_tokens(new_id(), 100, 1, 5).await,
        Err(StoreError::NoAccount)
    ));
}

async fn tokens_are_spent_once(s: &dyn Store) {
    let (k1, k2) = (bytes32(1), bytes32(2));
    let (n1, n2) = (bytes32(10), bytes32(11));
    assert!(s.spend_token(&k1, &n1).await.unwrap());
    assert!(!s.spend_token(&k1, &n1).await.unwrap(), "spent twice");
    assert!(s.spend_token(&k1, &n2).await.unwrap());
    assert!(s.spend_token(&k2, &n1).await.unwrap(), "keys keep apart");
    // Forgetting keeps only the current key's spent tokens.
    assert_eq!(s.forget_spent_tokens(&k1).await.unwrap(), 1);
    assert!(!s.spend_token(&k1, &n1).await.unwrap());
    assert!(!s.spend_token(&k1, &n2).await.unwrap());
    assert_eq!(s.forget_spent_tokens(&k1).await.unwrap(), 0);
}

/// The token tables have exactly the columns the design allows: counts per account and period,
/// and spent tokens with no account and no time.
async fn token_tables_link_nothing(h: &Harness) {
    let columns = match h.raw {
        Raw::Sqlite(_) => "SELECT name FROM pragma_table_info($1) ORDER BY name",
        Raw::Postgres(_) => {
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY column_name"
        }
    };
    assert_eq!(
        h.strings(columns, Some("spent_tokens")).await,
        ["key_id", "nonce"]
    );
    assert_eq!(
        h.strings(columns, Some("token_issuance")).await,
        ["account", "issued", "period"]
    );
    let s = h.store.as_ref();
    let (a, _, _) = account(s).await;
    s.take_tokens(a, 1, 4, 10).await.unwrap();
    s.take_tokens(a, 2, 1, 10).await.unwrap();
    assert_eq!(
        h.rows_of(a).await.get("token_issuance"),
        Some(&1),
        "only the current period's count stays"
    );
}

async fn racing_token_operations(h: &Harness) {
    let s = h.store.as_ref();
    let (a, _, _) = account(s).await;
    let (key, nonce) = (bytes32(3), bytes32(4));
    let mut takes = Vec::new();
    let mut spends = Vec::new();
    for _ in 0..12 {
        let store = Arc::clone(&h.store);
        takes.push(tokio::spawn(async move {
            store.take_tokens(a, 9, 1, 5).await.unwrap().granted
        }));
        let store = Arc::clone(&h.store);
        spends.push(tokio::spawn(async move {
            store.spend_token(&key, &nonce).await.unwrap()
        }));
    }
    let mut granted = 0;
    for t in takes {
        granted += usize::from(t.await.unwrap());
    }
    let mut spent = 0;
    for t in spends {
        spent += usize::from(t.await.unwrap());
    }
    assert_eq!(granted, 5, "the limit must hold under racing issuance");
    assert_eq!(
        spent, 1,
        "a token must be accepted once under racing redemption"
    );
}

// ---- Pending entries and rate limits ----------------------------------------------------

const ROOMY_PENDING: PendingLimits = PendingLimits {
    per_account: 4,
    per_net: 64,
    total: 10_000,
};

/// A client network: an IPv4 address in the documentation range.
fn net(last: u8) -> PendingOwner {
    PendingOwner::Net(NetKey::from([192, 0, 2, last]))
}

/// Puts an entry under [`ROOMY_PENDING`] whose value is its id.
async fn pend(
    s: &dyn Store,
    kind: PendingKind,
    id: &[u8; 32],
    owner: PendingOwner,
    now: u64,
    expires: u64,
) -> PendingPut {
    pend_within(s, kind, id, owner, now, expires, ROOMY_PENDING).await
}

async fn pend_within(
    s: &dyn Store,
    kind: PendingKind,
    id: &[u8; 32],
    owner: PendingOwner,
    now: u64,
    expires: u64,
    limits: PendingLimits,
) -> PendingPut {
    s.put_pending(kind, id, owner, id, now, expires, limits)
        .await
        .unwrap()
}

/// Whether the entry was there (taking it).
async fn took(s: &dyn Store, kind: PendingKind, id: &[u8; 32], now: u64) -> bool {
    match s.take_pending(kind, id, now).await.unwrap() {
        Some((value, _)) => {
            assert_eq!(value, id, "an entry came back with another's value");
            true
        }
        None => false,
    }
}

async fn pending_entries_are_taken_once(s: &dyn Store) {
    use PendingKind::{Ceremony, Proof};
    let (a, _, _) = account(s).await;
    let id = bytes32(1);
    let put = s
        .put_pending(
            Ceremony,
            &id,
            PendingOwner::Account(a),
            b"state",
            1000,
            2000,
            ROOMY_PENDING,
        )
        .await
        .unwrap();
    assert_eq!(put, PendingPut::Stored);
    assert_eq!(
        s.take_pending(Proof, &id, 1500).await.unwrap(),
        None,
        "another kind"
    );
    assert_eq!(
        s.take_pending(Ceremony, &id, 1999).await.unwrap(),
        Some((b"state".to_vec(), PendingOwner::Account(a)))
    );
    assert_eq!(
        s.take_pending(Ceremony, &id, 1999).await.unwrap(),
        None,
        "taken twice"
    );
    assert_eq!(
        s.take_pending(Ceremony, &bytes32(2), 0).await.unwrap(),
        None
    );

    // A network's key comes back as it went in, IPv6 prefixes and IPv4 addresses apart.
    let v6 = PendingOwner::Net(NetKey::from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 7]));
    let wide = PendingOwner::Net(NetKey::new(&[0xfe; 16]).unwrap());
    for (owner, id) in [(v6, bytes32(3)), (wide, bytes32(4)), (net(9), bytes32(5))] {
        assert_eq!(pend(s, Proof, &id, owner, 0, 10).await, PendingPut::Stored);
        assert_eq!(
            s.take_pending(Proof, &id, 9).await.unwrap(),
            Some((id.to_vec(), owner))
        );
    }
    assert_eq!(NetKey::new(&[]), None);
    assert_eq!(NetKey::new(&[0; 17]), None);
    assert_ne!(
        NetKey::new(&[1, 2, 3, 4]),
        NetKey::new(&[1, 2, 3, 4, 0, 0, 0, 0])
    );

    // An expired entry is gone, and taking it forgets it.
    let late = bytes32(6);
    assert_eq!(
        pend(s, Ceremony, &late, net(1), 1000, 2000).await,
        PendingPut::Stored
    );
    assert!(!took(s, Ceremony, &late, 2000).await);
    assert!(!took(s, Ceremony, &late, 1500).await);
}

async fn pending_kinds_count_apart_and_accounts_push_out_their_own(s: &dyn Store) {
    use PendingKind::{Ceremony, Proof};
    let two = PendingLimits {
        per_account: 2,
        ..ROOMY_PENDING
    };
    let (a, _, _) = account(s).await;
    let (b, _, _) = account(s).await;
    let (a_owner, b_owner) = (PendingOwner::Account(a), PendingOwner::Account(b));
    let ids: Vec<[u8; 32]> = (0..8).map(bytes32).collect();
    assert_eq!(
        pend_within(s, Ceremony, &ids[0], b_owner, 1, 100, two).await,
        PendingPut::Stored
    );
    // A loop in account A only ever pushes out A's own oldest ceremonies.
    for (n, id) in ids[1..5].iter().enumerate() {
        let put = pend_within(s, Ceremony, id, a_owner, 10 + n as u64, 100, two).await;
        assert_eq!(put, PendingPut::Stored);
    }
    // Proofs are a table of their own: A's two ceremonies do not count against them.
    for (n, id) in ids[5..8].iter().enumerate() {
        let put = pend_within(s, Proof, id, a_owner, 20 + n as u64, 100, two).await;
        assert_eq!(put, PendingPut::Stored);
    }
    let mut left = Vec::new();
    for (kind, range) in [(Ceremony, 0..5), (Proof, 5..8)] {
        for n in range {
            if took(s, kind, &ids[n], 50).await {
                left.push(n);
            }
        }
    }
    assert_eq!(
        left,
        [0, 3, 4, 6, 7],
        "B's ceremony, A's two newest ceremonies and A's two newest proofs"
    );
}

async fn pending_caps_refuse_networks_and_a_full_table(s: &dyn Store) {
    use PendingKind::{Ceremony, Proof};
    let small = PendingLimits {
        per_account: 2,
        per_net: 3,
        total: 5,
    };
    let put =
        async |id: &[u8; 32], owner, kind| pend_within(s, kind, id, owner, 0, 100, small).await;
    let ids: Vec<[u8; 32]> = (0..3).map(bytes32).collect();
    for id in &ids {
        assert_eq!(put(id, net(1), Ceremony).await, PendingPut::Stored);
    }
    // Refused, and nothing is stored.
    let refused = bytes32(3);
    assert_eq!(put(&refused, net(1), Ceremony).await, PendingPut::NetFull);
    assert!(!took(s, Ceremony, &refused, 1).await);
    // Other networks have their own share, an IPv6 prefix beginning with the same bytes too.
    let v6 = PendingOwner::Net(NetKey::from([192, 0, 2, 1, 0, 0, 0, 0]));
    assert_eq!(put(&bytes32(4), net(2), Ceremony).await, PendingPut::Stored);
    assert_eq!(put(&bytes32(5), v6, Ceremony).await, PendingPut::Stored);
    // Five live ceremonies: the table refuses everyone, accounts included, but not proofs.
    let (a, _, _) = account(s).await;
    let a_owner = PendingOwner::Account(a);
    assert_eq!(
        put(&bytes32(6), a_owner, Ceremony).await,
        PendingPut::TableFull
    );
    assert_eq!(
        put(&bytes32(7), net(3), Ceremony).await,
        PendingPut::TableFull
    );
    assert_eq!(put(&bytes32(8), a_owner, Proof).await, PendingPut::Stored);
    // Finishing a ceremony frees its slot.
    assert!(took(s, Ceremony, &ids[0], 1).await);
    assert_eq!(
        put(&bytes32(9), a_owner, Ceremony).await,
        PendingPut::Stored
    );
    assert_eq!(
        put(&bytes32(10), net(1), Ceremony).await,
        PendingPut::TableFull
    );
    // An account that does not exist holds nothing.
    assert!(matches!(
        s.put_pending(
            Ceremony,
            &bytes32(11),
            PendingOwner::Account(new_id()),
            b"x",
            0,
            100,
            small
        )
        .await,
        Err(StoreError::NoAccount)
    ));
}

async fn pending_entries_expire(s: &dyn Store) {
    use PendingKind::{Ceremony, Proof};
    let small = PendingLimits {
        per_account: 2,
        per_net: 2,
        total: 3,
    };
    let put = async |id: &[u8; 32], now, expires| {
        pend_within(s, Ceremony, id, net(1), now, expires, small).await
    };
    let (e1, e2, e3) = (bytes32(1), bytes32(2), bytes32(3));
    assert_eq!(put(&e1, 1000, 2000).await, PendingPut::Stored);
    assert_eq!(put(&e2, 1000, 2000).await, PendingPut::Stored);
    assert_eq!(put(&e3, 1999, 3000).await, PendingPut::NetFull);
    // At 2000 both have expired: the put forgets them (a take on an earlier clock finds
    // nothing) and they count against no cap.
    assert_eq!(put(&e3, 2000, 3000).await, PendingPut::Stored);
    assert!(!took(s, Ceremony, &e1, 1500).await);
    assert!(!took(s, Ceremony, &e2, 1500).await);
    let (a, _, _) = account(s).await;
    for (n, id) in [bytes32(4), bytes32(5)].iter().enumerate() {
        let put = pend_within(
            s,
            Ceremony,
            id,
            PendingOwner::Account(a),
            2000,
            2500 + n as u64,
            small,
        );
        assert_eq!(put.await, PendingPut::Stored);
    }
    // The purge forgets what expired by its time, of both kinds, and nothing else.
    let proof = bytes32(6);
    assert_eq!(
        pend(s, Proof, &proof, net(1), 2000, 2600).await,
        PendingPut::Stored
    );
    assert_eq!(s.purge_transient(2600, 0).await.unwrap(), 3);
    assert!(!took(s, Ceremony, &bytes32(4), 2400).await);
    assert!(!took(s, Proof, &proof, 2400).await);
    assert!(took(s, Ceremony, &e3, 2600).await);
    assert_eq!(s.purge_transient(10_000, 0).await.unwrap(), 0);
}

async fn rate_limits(s: &dyn Store) {
    // One a second, three at once.
    let allow = async |key: &[u8], now| s.rate_limit(key, now, 60, 3).await.unwrap();
    let (key, other) = (&b"net:\xc0\x00\x02\x01"[..], &b"acct:0123456789abcdef"[..]);
    for _ in 0..3 {
        assert!(allow(key, 10_000).await);
    }
    assert!(!allow(key, 10_000).await);
    assert!(allow(other, 10_000).await, "keys keep apart");
    assert!(!allow(key, 10_999).await);
    assert!(allow(key, 11_000).await);
    assert!(!allow(key, 11_000).await);
    // Another server's clock, behind: it earns nothing, and the bucket keeps its own time.
    for _ in 0..3 {
        assert!(!allow(key, 5_000).await);
    }
    assert!(!allow(key, 11_999).await);
    assert!(allow(key, 12_000).await);
    // A burst of 0 allows one.
    assert!(s.rate_limit(b"zero", 12_000, 60, 0).await.unwrap());
    assert!(!s.rate_limit(b"zero", 12_000, 60, 0).await.unwrap());
    // A bucket drained later than the idle time stays; those refilled before it go, full.
    let busy = &b"busy"[..];
    for _ in 0..3 {
        assert!(allow(busy, 20_000).await);
    }
    assert_eq!(s.purge_transient(0, 12_001).await.unwrap(), 3);
    assert!(!allow(busy, 20_000).await);
    for _ in 0..3 {
        assert!(allow(key, 12_000).await, "a purged bucket is full again");
    }
    assert!(!allow(key, 12_000).await);
}

/// Racing takes of one entry, and racing puts of one network and of one account: one take wins,
/// and neither owner ends up over its cap.
async fn racing_pending_entries(h: &Harness) {
    use PendingKind::Ceremony;
    let s = h.store.as_ref();
    let (a, _, _) = account(s).await;
    let limits = PendingLimits {
        per_account: 3,
        per_net: 5,
        total: 10_000,
    };
    let contested = bytes32(1);
    assert_eq!(
        pend(s, Ceremony, &contested, net(1), 0, 100).await,
        PendingPut::Stored
    );
    let mut takes = Vec::new();
    let mut puts = Vec::new();
    for n in 0..12u8 {
        let store = Arc::clone(&h.store);
        takes.push(tokio::spawn(async move {
            store.take_pending(Ceremony, &contested, 1).await.unwrap()
        }));
        for owner in [net(2), PendingOwner::Account(a)] {
            let store = Arc::clone(&h.store);
            let id = bytes32(n);
            puts.push(tokio::spawn(async move {
                let put = pend_within(store.as_ref(), Ceremony, &id, owner, 1, 100, limits).await;
                (owner, id, put)
            }));
        }
    }
    let mut taken = 0;
    for t in takes {
        taken += usize::from(t.await.unwrap().is_some());
    }
    assert_eq!(taken, 1, "an entry must be taken once under racing takers");
    let (mut net_stored, mut account_ids) = (0, Vec::new());
    for p in puts {
        match p.await.unwrap() {
            (PendingOwner::Net(_), _, PendingPut::Stored) => net_stored += 1,
            (PendingOwner::Net(_), _, put) => assert_eq!(put, PendingPut::NetFull),
            (PendingOwner::Account(_), id, put) => {
                assert_eq!(put, PendingPut::Stored);
                account_ids.push(id);
            }
        }
    }
    assert_eq!(net_stored, 5, "a network's cap must hold under racing puts");
    let mut held = 0;
    for id in &account_ids {
        held += usize::from(took(s, Ceremony, id, 2).await);
    }
    assert_eq!(held, 3, "an account's cap must hold under racing puts");
}

async fn racing_rate_limits(h: &Harness) {
    let mut calls = Vec::new();
    for _ in 0..12 {
        let store = Arc::clone(&h.store);
        calls.push(tokio::spawn(async move {
            store
                .rate_limit(b"net:contested", 1000, 1, 5)
                .await
                .unwrap()
        }));
    }
    let mut allowed = 0;
    for c in calls {
        allowed += usize::from(c.await.unwrap());
    }
    assert_eq!(
        allowed, 5,
        "racing callers must not share out more than the burst"
    );
}

// ---- SQLite specifics --------------------------------------------------------------------

#[tokio::test]
async fn sqlite_file_is_private_and_reopens() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.db");
    let store = sotto_store::open(path.to_str().unwrap()).await.unwrap();
    let (id, _, _) = account(store.as_ref()).await;
    put(store.as_ref(), id, write("r", 0, b"kept")).await;
    for file in [path.clone(), dir.path().join("private.db-wal")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
    }
    drop(store);

    // Reopening applies no migration twice and finds the data.
    let store = sotto_store::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    assert_eq!(
        store.get_record(id, "r").await.unwrap().unwrap().ciphertext,
        Some(b"kept".to_vec())
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let versions: i64 = conn
        .query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(versions, 5, "one row per migration");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn open_rejects_bad_specs() {
    assert!(matches!(
        sotto_store::open("sqlite:").await,
        Err(StoreError::Backend(_))
    ));
    // Plaintext connections to another machine are refused before any connection is made.
    let refused = sotto_store::open("postgres://u:p@db.example.com:5432/x").await;
    match refused {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("loopback"), "{msg}"),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("a remote plaintext PostgreSQL URL was accepted"),
    }
}
