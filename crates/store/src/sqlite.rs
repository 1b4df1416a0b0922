//! The embedded backend: one SQLite file in WAL mode.
//!
//! Durability: `synchronous=FULL` makes every commit fsync the write-ahead log before the call
//! returns, so an acknowledged write survives the process being killed or the machine losing
//! power. The file is created owner-only (0600), and SQLite gives its `-wal` and `-shm` files
//! the same mode. `secure_delete` zeroes freed space, and every deletion is followed by a
//! truncating checkpoint, so deleted ciphertext does not linger in the database or its log.
//!
//! One connection serves every call, behind a mutex, on tokio's blocking pool: SQLite allows a
//! single writer anyway, and holding the connection for the whole transaction is what orders
//! each account's sequence numbers by commit. The file is trusted to hold what this module
//! wrote; values read back are still range-checked rather than assumed.

use std::fs::{self, OpenOptions};
use std::future::Future;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{self, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, Params, Row, TransactionBehavior};
use sotto_api::{Changes, PutResult, Quota, RecordOut};

use crate::driver::{self, failed, to_db, ColumnType, Columns, Context, Failure, Fallible};
use crate::ops::{
    self, AccountSql, BucketSql, NewAccount, NewPending, PendingSql, RecordSql, TokenSql,
};
use crate::rules::{AccountState, Bucket, Existing, Planned};
use crate::schema::{self, CURRENT_VERSION, RECORD_VERSION};
use crate::{
    AccountId, AccountRow, CredentialRow, PendingKind, PendingLimits, PendingOwner, PendingPut,
    RecordWrite, Result, Store, StoreError, TokenGrant,
};

/// How long a call waits for a lock held by another process on the same file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite-backed [`Store`].
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating, with mode 0600, if needed) the database at `path` and brings its schema
    /// up to date. Blocking: call it from a blocking context ([`crate::open`] does).
    pub fn open(path: &Path) -> Result<SqliteStore> {
        create_private(path).context("open")?;
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .context("open")?;
        configure(&conn).context("configure")?;
        migrate(&mut conn).context("migrate")?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool, as operation `op`.
    async fn call<T, F>(&self, op: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Fallible<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves no transaction open (rusqlite rolls back on
            // drop), so the connection is still sound to use.
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .unwrap_or_else(|e| Err(failed(format!("the SQLite worker failed: {e}"))))
        .context(op)
    }

    /// Runs `f` in a write-locked (immediate) transaction, committed when `f` succeeds.
    async fn write<T, F>(&self, op: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Fallible<T> + Send + 'static,
    {
        self.call(op, |conn| transaction(conn, f)).await
    }

    /// As [`SqliteStore::write`], for a write that may delete ciphertext: when it did, the log
    /// is scrubbed after the commit.
    async fn delete<T, F>(&self, op: &'static str, f: F) -> Result<T>
    where
        T: Deletion + Send + 'static,
        F: FnOnce(&Connection) -> Fallible<T> + Send + 'static,
    {
        self.call(op, move |conn| {
            let out = transaction(conn, f)?;
            if out.deleted_any() {
                scrub_log(conn)?;
            }
            Ok(out)
        })
        .await
    }
}

/// What a deletion returns, which tells whether it deleted anything.
trait Deletion {
    fn deleted_any(&self) -> bool;
}

/// A record deletion: whether the record went.
impl Deletion for bool {
    fn deleted_any(&self) -> bool {
        *self
    }
}

/// A group deletion: how many records went.
impl Deletion for u64 {
    fn deleted_any(&self) -> bool {
        *self > 0
    }
}

/// An account deletion, which removes at least the account's row when it succeeds.
impl Deletion for () {
    fn deleted_any(&self) -> bool {
        true
    }
}

fn transaction<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Connection) -> Fallible<T>,
) -> Fallible<T> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

/// SQLite's messages name constraints and columns, never bound values.
impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Failure {
        failed(e)
    }
}

impl Columns for Row<'_> {
    fn value<T: ColumnType>(&self, index: usize) -> Fallible<T> {
        Ok(self.get(index)?)
    }
}

/// Creates the file owner-only, and takes group and world access away from an existing one:
/// it holds session hashes and everyone's ciphertext.
fn create_private(path: &Path) -> Fallible<()> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| failed(format!("cannot create the database file: {e}")))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(|e| failed(format!("cannot restrict the database file's mode: {e}")))
}

fn configure(conn: &Connection) -> Fallible<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(failed(format!(
            "the database refused WAL mode (it is in {mode} mode)"
        )));
    }
    for (pragma, value) in [
        ("synchronous", "FULL"),
        ("foreign_keys", "ON"),
        ("secure_delete", "ON"),
    ] {
        conn.pragma_update(None, pragma, value)?;
    }
    // synchronous=FULL is 2, the others are booleans: check SQLite did not ignore any of them.
    for (pragma, want) in [
        ("synchronous", 2),
        ("foreign_keys", 1),
        ("secure_delete", 1),
    ] {
        let got: i64 = conn.pragma_query_value(None, pragma, |row| row.get(0))?;
        if got != want {
            return Err(failed(format!("PRAGMA {pragma} is {got}, expected {want}")));
        }
    }
    Ok(())
}

/// Runs under an immediate (write-locked) transaction so two processes opening a fresh file
/// cannot both apply the same migration.
fn migrate(conn: &mut Connection) -> Fallible<()> {
    transaction(conn, |tx| {
        tx.execute_batch(&schema::SQLITE.version_table())?;
        let current = tx.query_row(CURRENT_VERSION, [], |row| row.get(0))?;
        for (version, sql) in schema::SQLITE.pending(current)? {
            tx.execute_batch(&sql)?;
            tx.execute(RECORD_VERSION, [version])?;
        }
        Ok(())
    })
}

fn execute(conn: &Connection, sql: &str, params: impl Params) -> Fallible<usize> {
    Ok(conn.prepare_cached(sql)?.execute(params)?)
}

fn exists(conn: &Connection, sql: &str, key: &[u8]) -> Fallible<bool> {
    Ok(conn.prepare_cached(sql)?.exists([key])?)
}

/// The first row `sql` returns, decoded.
fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: impl FnOnce(&Row<'_>) -> Fallible<T>,
) -> Fallible<Option<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    rows.next()?.map(decode).transpose()
}

/// Every row `sql` returns, decoded.
fn query<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: impl Fn(&Row<'_>) -> Fallible<T>,
) -> Fallible<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

const CREDENTIAL_IN_USE: &str = "SELECT 1 FROM credentials WHERE credential_id = ?1";

fn account_exists(conn: &Connection, account: AccountId) -> Fallible<bool> {
    exists(conn, "SELECT 1 FROM accounts WHERE id = ?1", &account.0)
}

/// Fails with `NoAccount` unless the account exists.
fn require_account(conn: &Connection, account: AccountId) -> Fallible<()> {
    if account_exists(conn, account)? {
        Ok(())
    } else {
        Err(StoreError::NoAccount.into())
    }
}

impl AccountSql for Connection {
    async fn credential_in_use(&self, credential_id: &[u8]) -> Fallible<bool> {
        exists(self, CREDENTIAL_IN_USE, credential_id)
    }

    async fn insert_account(&self, account: &NewAccount<'_>) -> Fallible<()> {
        let lookup_taken = "SELECT 1 FROM accounts WHERE recovery_lookup = ?1";
        if exists(self, lookup_taken, account.recovery_lookup)? {
            return Err(StoreError::DuplicateRecovery.into());
        }
        if account_exists(self, account.id)? {
            return Err(failed("the account id is taken"));
        }
        execute(
            self,
            "INSERT INTO accounts (id, created_at, recovery_lookup, recovery_verifier)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                &account.id.0[..],
                account.created_at,
                &account.recovery_lookup[..],
                &account.recovery_verifier[..]
            ],
        )
        .map(drop)
    }

    async fn insert_credential(&self, account: AccountId, cred: &CredentialRow) -> Fallible<()> {
        let (created_at, last_used_at) = driver::credential_times(cred)?;
        execute(
            self,
            "INSERT INTO credentials (credential_id, account, passkey, name, created_at, last_used_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                cred.credential_id,
                &account.0[..],
                cred.passkey,
                cred.name,
                created_at,
                last_used_at
            ],
        )
        .map(drop)
    }

    async fn credential_counts(
        &self,
        account: AccountId,
        credential_id: &[u8],
    ) -> Fallible<(i64, i64)> {
        Ok(self.query_row(
            "SELECT count(*), coalesce(sum(credential_id = ?2), 0)
             FROM credentials WHERE account = ?1",
            params![&account.0[..], credential_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    async fn remove_credential(&self, account: AccountId, credential_id: &[u8]) -> Fallible<()> {
        for sql in [
            "DELETE FROM sessions WHERE account = ?1 AND credential_id = ?2",
            "DELETE FROM credentials WHERE account = ?1 AND credential_id = ?2",
        ] {
            execute(self, sql, params![&account.0[..], credential_id])?;
        }
        Ok(())
    }
}

/// SQLite's statements are synchronous and its write transactions are immediate: the whole
/// file is write-locked from their start.
impl RecordSql for Connection {
    async fn account_state(&self, account: AccountId) -> Fallible<AccountState> {
        let sql = "SELECT seq, used_bytes, used_records FROM accounts WHERE id = ?1";
        query_opt(self, sql, [&account.0[..]], |row| {
            driver::account_state(row)
        })?
        .ok_or(StoreError::NoAccount.into())
    }

    async fn save_account_state(&self, account: AccountId, state: AccountState) -> Fallible<()> {
        let [seq, bytes, records] = driver::account_state_columns(state)?;
        execute(
            self,
            "UPDATE accounts SET seq = ?2, used_bytes = ?3, used_records = ?4 WHERE id = ?1",
            params![&account.0[..], seq, bytes, records],
        )
        .map(drop)
    }

    async fn existing_record(&self, account: AccountId, id: &str) -> Fallible<Option<Existing>> {
        query_opt(
            self,
            "SELECT version, length(ciphertext) FROM records WHERE account = ?1 AND id = ?2",
            params![&account.0[..], id],
            |row| driver::existing(row),
        )
    }

    async fn write_record(
        &self,
        account: AccountId,
        write: &RecordWrite<'_>,
        planned: &Planned,
    ) -> Fallible<()> {
        let [version, seq] = driver::planned_columns(planned)?;
        execute(
            self,
            "INSERT INTO records (account, id, grp, kind, version, seq, ciphertext)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (account, id) DO UPDATE SET grp = excluded.grp,
                kind = excluded.kind, version = excluded.version, seq = excluded.seq,
                ciphertext = excluded.ciphertext",
            params![
                &account.0[..],
                write.id,
                write.group,
                write.kind,
                version,
                seq,
                write.ciphertext
            ],
        )
        .map(drop)
    }

    async fn write_marker(&self, account: AccountId, id: &str, planned: &Planned) -> Fallible<()> {
        let [version, seq] = driver::planned_columns(planned)?;
        execute(
            self,
            "UPDATE records SET ciphertext = NULL, version = ?3, seq = ?4
             WHERE account = ?1 AND id = ?2",
            params![&account.0[..], id, version, seq],
        )
        .map(drop)
    }

    async fn live_members(
        &self,
        account: AccountId,
        group: &str,
    ) -> Fallible<Vec<(String, Existing)>> {
        query(
            self,
            "SELECT version, length(ciphertext), id FROM records
             WHERE account = ?1 AND grp = ?2 AND ciphertext IS NOT NULL
             ORDER BY seq",
            params![&account.0[..], group],
            |row| driver::group_member(row),
        )
    }

    async fn change_sizes(
        &self,
        account: AccountId,
        cursor: i64,
        rows: i64,
    ) -> Fallible<Vec<(u64, u64)>> {
        query(
            self,
            "SELECT seq, coalesce(length(ciphertext), 0) FROM records
             WHERE account = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            params![&account.0[..], cursor, rows],
            |row| driver::seq_and_size(row),
        )
    }

    async fn change_records(
        &self,
        account: AccountId,
        cursor: i64,
        end: i64,
    ) -> Fallible<Vec<RecordOut>> {
        query(
            self,
            "SELECT id, grp, kind, version, seq, ciphertext FROM records
             WHERE account = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq",
            params![&account.0[..], cursor, end],
            |row| driver::record(row),
        )
    }
}

impl TokenSql for Connection {
    async fn issued(&self, account: AccountId, period: i64) -> Fallible<i64> {
        require_account(self, account)?;
        let issued = query_opt(
            self,
            "SELECT issued FROM token_issuance WHERE account = ?1 AND period = ?2",
            params![&account.0[..], period],
            |row| row.value(0),
        )?;
        Ok(issued.unwrap_or(0))
    }

    async fn set_issued(&self, account: AccountId, period: i64, issued: i64) -> Fallible<()> {
        execute(
            self,
            "DELETE FROM token_issuance WHERE account = ?1 AND period <> ?2",
            params![&account.0[..], period],
        )?;
        execute(
            self,
            "INSERT INTO token_issuance (account, period, issued) VALUES (?1, ?2, ?3)
             ON CONFLICT (account, period) DO UPDATE SET issued = excluded.issued",
            params![&account.0[..], period, issued],
        )
        .map(drop)
    }
}

/// SQLite's write transactions hold the whole file from their start, so an owner needs no lock
/// of its own and counts stay true until the commit.
impl PendingSql for Connection {
    async fn lock_owner(&self, owner: &PendingOwner) -> Fallible<()> {
        match owner {
            PendingOwner::Account(account) => require_account(self, *account),
            PendingOwner::Net(_) => Ok(()),
        }
    }

    async fn forget_expired(&self, kind: PendingKind, now: i64) -> Fallible<u64> {
        execute(
            self,
            "DELETE FROM pending WHERE kind = ?1 AND expires_at <= ?2",
            params![driver::pending_kind(kind), now],
        )
        .map(|n| n as u64)
    }

    async fn held(&self, kind: PendingKind, owner: &PendingOwner, now: i64) -> Fallible<i64> {
        let sql = match owner {
            PendingOwner::Account(_) => {
                "SELECT count(*) FROM pending WHERE account = ?1 AND kind = ?2 AND expires_at > ?3"
            }
            PendingOwner::Net(_) => {
                "SELECT count(*) FROM pending WHERE net = ?1 AND kind = ?2 AND expires_at > ?3"
            }
        };
        let (account, net) = driver::owner_columns(owner);
        let held = query_opt(
            self,
            sql,
            params![account.or(net), driver::pending_kind(kind), now],
            |row| row.value(0),
        )?;
        Ok(held.unwrap_or(0))
    }

    async fn push_out(
        &self,
        kind: PendingKind,
        account: AccountId,
        now: i64,
        count: i64,
    ) -> Fallible<()> {
        execute(
            self,
            "DELETE FROM pending WHERE kind = ?1 AND id IN (
                SELECT id FROM pending WHERE account = ?2 AND kind = ?1 AND expires_at > ?3
                ORDER BY created_at, id LIMIT ?4)",
            params![driver::pending_kind(kind), &account.0[..], now, count],
        )
        .map(drop)
    }

    async fn live(&self, kind: PendingKind, now: i64, cap: i64) -> Fallible<i64> {
        let live = query_opt(
            self,
            "SELECT count(*) FROM (
                SELECT 1 FROM pending WHERE kind = ?1 AND expires_at > ?2 LIMIT ?3)",
            params![driver::pending_kind(kind), now, cap],
            |row| row.value(0),
        )?;
        Ok(live.unwrap_or(0))
    }

    async fn insert_pending(&self, entry: &NewPending<'_>) -> Fallible<()> {
        let (account, net) = driver::owner_columns(&entry.owner);
        execute(
            self,
            "INSERT INTO pending (kind, id, account, net, value, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                driver::pending_kind(entry.kind),
                &entry.id[..],
                account,
                net,
                entry.value,
                entry.created_at,
                entry.expires_at
            ],
        )
        .map(drop)
    }
}

impl BucketSql for Connection {
    async fn bucket(&self, key: &[u8], fresh: Bucket) -> Fallible<Bucket> {
        let stored = query_opt(
            self,
            "SELECT tokens, refilled_at FROM rate_buckets WHERE bucket = ?1",
            [key],
            |row| driver::bucket(row),
        )?;
        Ok(stored.unwrap_or(fresh))
    }

    async fn save_bucket(&self, key: &[u8], bucket: Bucket) -> Fallible<()> {
        let [tokens, refilled_at] = driver::bucket_columns(bucket)?;
        execute(
            self,
            "INSERT INTO rate_buckets (bucket, tokens, refilled_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (bucket) DO UPDATE SET tokens = excluded.tokens,
                refilled_at = excluded.refilled_at",
            params![key, tokens, refilled_at],
        )
        .map(drop)
    }

    async fn forget_idle(&self, before: i64) -> Fallible<u64> {
        let sql = "DELETE FROM rate_buckets WHERE refilled_at < ?1";
        execute(self, sql, [before]).map(|n| n as u64)
    }
}

/// Runs one of the shared operations on this thread. Every statement it awaits is SQLite's
/// synchronous work, so it is finished at the first poll.
fn run<T>(op: impl Future<Output = Fallible<T>>) -> Fallible<T> {
    match pin!(op).poll(&mut task::Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => Err(failed("an SQLite statement did not complete synchronously")),
    }
}

/// Copies the log into the database and truncates it, so pages that held deleted ciphertext
/// are replaced by their zeroed versions and no old copy stays in the `-wal` file. Only this
/// store's connection normally uses the file; should another process be reading it, SQLite
/// checkpoints what it can and the rest is overwritten by a later checkpoint.
fn scrub_log(conn: &Connection) -> Fallible<()> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(|e| {
            failed(format!(
                "committed, but truncating the write-ahead log failed: {e}"
            ))
        })
}

/// A record write with its values owned, to move onto the blocking pool.
struct OwnedWrite {
    id: String,
    group: Option<String>,
    kind: String,
    expected: u64,
    ciphertext: Vec<u8>,
}

impl OwnedWrite {
    fn of(write: &RecordWrite<'_>) -> Self {
        OwnedWrite {
            id: write.id.to_owned(),
            group: write.group.map(str::to_owned),
            kind: write.kind.to_owned(),
            expected: write.expected_version,
            ciphertext: write.ciphertext.to_vec(),
        }
    }

    /// The write borrowed back, on the blocking thread.
    fn view(&self) -> RecordWrite<'_> {
        RecordWrite {
            id: &self.id,
            group: self.group.as_deref(),
            kind: &self.kind,
            expected_version: self.expected,
            ciphertext: &self.ciphertext,
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_account(
        &self,
        id: AccountId,
        now: u64,
        first: CredentialRow,
        recovery_lookup: [u8; 32],
        recovery_verifier: [u8; 32],
    ) -> Result<()> {
        self.write("create_account", move |tx| {
            let account = NewAccount {
                id,
                created_at: to_db(now, "creation time")?,
                recovery_lookup: &recovery_lookup,
                recovery_verifier: &recovery_verifier,
            };
            run(ops::create_account(tx, account, &first))
        })
        .await
    }

    async fn account(&self, id: AccountId) -> Result<Option<AccountRow>> {
        self.call("account", move |conn| {
            query_opt(
                conn,
                "SELECT created_at, used_bytes, used_records, recovery_lookup IS NOT NULL
                 FROM accounts WHERE id = ?1",
                [&id.0[..]],
                |row| driver::account(id, row),
            )
        })
        .await
    }

    async fn delete_account(&self, id: AccountId) -> Result<()> {
        self.delete("delete_account", move |tx| {
            require_account(tx, id)?;
            for sql in [
                "DELETE FROM records WHERE account = ?1",
                "DELETE FROM sessions WHERE account = ?1",
                "DELETE FROM token_issuance WHERE account = ?1",
                "DELETE FROM pending WHERE account = ?1",
                "DELETE FROM credentials WHERE account = ?1",
                "DELETE FROM accounts WHERE id = ?1",
            ] {
                execute(tx, sql, [&id.0[..]])?;
            }
            Ok(())
        })
        .await
    }

    async fn add_credential(&self, account: AccountId, cred: CredentialRow) -> Result<()> {
        self.write("add_credential", move |tx| {
            require_account(tx, account)?;
            if exists(tx, CREDENTIAL_IN_USE, &cred.credential_id)? {
                return Err(StoreError::DuplicateCredential.into());
            }
            run(tx.insert_credential(account, &cred))
        })
        .await
    }

    async fn credentials(&self, account: AccountId) -> Result<Vec<CredentialRow>> {
        self.call("credentials", move |conn| {
            query(
                conn,
                "SELECT credential_id, passkey, name, created_at, last_used_at
                 FROM credentials WHERE account = ?1 ORDER BY created_at, credential_id",
                [&account.0[..]],
                |row| driver::credential(row),
            )
        })
        .await
    }

    async fn touch_credential(
        &self,
        account: AccountId,
        credential_id: &[u8],
        passkey: &[u8],
        now: u64,
    ) -> Result<()> {
        let (credential_id, passkey) = (credential_id.to_vec(), passkey.to_vec());
        self.call("touch_credential", move |conn| {
            execute(
                conn,
                "UPDATE credentials SET passkey = ?3, last_used_at = ?4
                 WHERE account = ?1 AND credential_id = ?2",
                params![
                    &account.0[..],
                    credential_id,
                    passkey,
                    to_db(now, "last use time")?
                ],
            )
            .map(drop)
        })
        .await
    }

    async fn delete_credential(&self, account: AccountId, credential_id: &[u8]) -> Result<bool> {
        let credential_id = credential_id.to_vec();
        self.write("delete_credential", move |tx| {
            run(ops::delete_credential(tx, account, &credential_id))
        })
        .await
    }

    async fn rotate_recovery(
        &self,
        account: AccountId,
        lookup: [u8; 32],
        verifier: [u8; 32],
        wrap: RecordWrite<'_>,
        quota: Quota,
    ) -> Result<PutResult> {
        let wrap = OwnedWrite::of(&wrap);
        self.write("rotate_recovery", move |tx| {
            require_account(tx, account)?;
            let taken = tx
                .prepare_cached("SELECT 1 FROM accounts WHERE recovery_lookup = ?1 AND id <> ?2")?
                .exists(params![&lookup[..], &account.0[..]])?;
            if taken {
                return Err(StoreError::DuplicateRecovery.into());
            }
            execute(
                tx,
                "UPDATE accounts SET recovery_lookup = ?2, recovery_verifier = ?3 WHERE id = ?1",
                params![&account.0[..], &lookup[..], &verifier[..]],
            )?;
            run(ops::put(tx, account, &wrap.view(), quota))
        })
        .await
    }

    async fn find_recovery(&self, lookup: &[u8; 32]) -> Result<Option<(AccountId, [u8; 32])>> {
        let lookup = *lookup;
        self.call("find_recovery", move |conn| {
            query_opt(
                conn,
                "SELECT id, recovery_verifier FROM accounts WHERE recovery_lookup = ?1",
                [&lookup[..]],
                |row| driver::recovery(row),
            )
        })
        .await
    }

    async fn create_session(
        &self,
        token_hash: [u8; 32],
        account: AccountId,
        credential: Option<&[u8]>,
        expires_at: u64,
    ) -> Result<()> {
        let credential = credential.map(<[u8]>::to_vec);
        self.write("create_session", move |tx| {
            let expires_at = to_db(expires_at, "session expiry")?;
            require_account(tx, account)?;
            execute(
                tx,
                "INSERT INTO sessions (token_hash, account, credential_id, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![&token_hash[..], &account.0[..], credential, expires_at],
            )
            .map(drop)
        })
        .await
    }

    async fn session(&self, token_hash: &[u8; 32], now: u64) -> Result<Option<AccountId>> {
        let token_hash = *token_hash;
        self.call("session", move |conn| {
            query_opt(
                conn,
                "SELECT account FROM sessions WHERE token_hash = ?1 AND expires_at > ?2",
                params![&token_hash[..], to_db(now, "current time")?],
                |row| driver::account_id(row),
            )
        })
        .await
    }

    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<()> {
        let token_hash = *token_hash;
        self.call("delete_session", move |conn| {
            let sql = "DELETE FROM sessions WHERE token_hash = ?1";
            execute(conn, sql, [&token_hash[..]]).map(drop)
        })
        .await
    }

    async fn purge_sessions(&self, now: u64) -> Result<u64> {
        self.call("purge_sessions", move |conn| {
            let sql = "DELETE FROM sessions WHERE expires_at <= ?1";
            execute(conn, sql, [to_db(now, "current time")?]).map(|n| n as u64)
        })
        .await
    }

    async fn put_record(
        &self,
        account: AccountId,
        write: RecordWrite<'_>,
        quota: Quota,
    ) -> Result<PutResult> {
        let write = OwnedWrite::of(&write);
        self.write("put_record", move |tx| {
            run(ops::put(tx, account, &write.view(), quota))
        })
        .await
    }

    async fn get_record(&self, account: AccountId, id: &str) -> Result<Option<RecordOut>> {
        let id = id.to_owned();
        self.call("get_record", move |conn| {
            query_opt(
                conn,
                "SELECT id, grp, kind, version, seq, ciphertext FROM records
                 WHERE account = ?1 AND id = ?2",
                params![&account.0[..], id],
                |row| driver::record(row),
            )
        })
        .await
    }

    async fn delete_record(
        &self,
        account: AccountId,
        id: &str,
        expected_version: Option<u64>,
    ) -> Result<bool> {
        let id = id.to_owned();
        self.delete("delete_record", move |tx| {
            run(ops::delete(tx, account, &id, expected_version))
        })
        .await
    }

    async fn delete_group(&self, account: AccountId, group: &str) -> Result<u64> {
        let group = group.to_owned();
        self.delete("delete_group", move |tx| {
            run(ops::delete_group(tx, account, &group))
        })
        .await
    }

    async fn changes(
        &self,
        account: AccountId,
        since: u64,
        limit: u32,
        max_bytes: u64,
    ) -> Result<Changes> {
        self.call("changes", move |conn| {
            run(ops::changes(conn, account, since, limit, max_bytes))
        })
        .await
    }

    async fn take_tokens(
        &self,
        account: AccountId,
        period: u64,
        count: u32,
        limit: u32,
    ) -> Result<TokenGrant> {
        self.write("take_tokens", move |tx| {
            run(ops::take_tokens(tx, account, period, count, limit))
        })
        .await
    }

    async fn spend_token(&self, key_id: &[u8; 32], nonce: &[u8; 32]) -> Result<bool> {
        let (key_id, nonce) = (*key_id, *nonce);
        self.call("spend_token", move |conn| {
            execute(conn, ops::SPEND_TOKEN, params![&key_id[..], &nonce[..]]).map(|n| n == 1)
        })
        .await
    }

    async fn forget_spent_tokens(&self, keep: &[u8; 32]) -> Result<u64> {
        let keep = *keep;
        self.call("forget_spent_tokens", move |conn| {
            execute(conn, ops::FORGET_SPENT_TOKENS, [&keep[..]]).map(|n| n as u64)
        })
        .await
    }

    async fn put_pending(
        &self,
        kind: PendingKind,
        id: &[u8; 32],
        owner: PendingOwner,
        value: &[u8],
        now_ms: u64,
        expires_ms: u64,
        limits: PendingLimits,
    ) -> Result<PendingPut> {
        let (id, value) = (*id, value.to_vec());
        self.write("put_pending", move |tx| {
            let entry = NewPending {
                kind,
                id: &id,
                owner,
                value: &value,
                created_at: to_db(now_ms, "current time")?,
                expires_at: to_db(expires_ms, "expiry")?,
            };
            run(ops::put_pending(tx, entry, limits))
        })
        .await
    }

    async fn take_pending(
        &self,
        kind: PendingKind,
        id: &[u8; 32],
        now_ms: u64,
    ) -> Result<Option<(Vec<u8>, PendingOwner)>> {
        let id = *id;
        self.write("take_pending", move |tx| {
            let taken = query_opt(
                tx,
                "DELETE FROM pending WHERE kind = ?1 AND id = ?2
                 RETURNING value, account, net, expires_at > ?3",
                params![
                    driver::pending_kind(kind),
                    &id[..],
                    to_db(now_ms, "current time")?
                ],
                |row| driver::taken_pending(row),
            )?;
            Ok(taken.flatten())
        })
        .await
    }

    async fn rate_limit(
        &self,
        key: &[u8],
        now_ms: u64,
        per_minute: u32,
        burst: u32,
    ) -> Result<bool> {
        let key = key.to_vec();
        self.write("rate_limit", move |tx| {
            run(ops::rate_limit(tx, &key, now_ms, per_minute, burst))
        })
        .await
    }

    async fn purge_transient(&self, now_ms: u64, idle_before_ms: u64) -> Result<u64> {
        self.write("purge_transient", move |tx| {
            run(ops::purge_transient(tx, now_ms, idle_before_ms))
        })
        .await
    }
}
