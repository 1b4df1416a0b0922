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
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use sotto_api::{PutResult, Quota, RecordOut, Usage};

use crate::rules::{self, from_db, to_db, Existing};
use crate::{AccountId, AccountRow, CredentialRow, RecordWrite, Result, Store, StoreError};

/// How long a call waits for a lock held by another process on the same file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema migrations, applied in order; each runs once, recorded in `schema_version`.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE accounts (
        id BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
        created_at INTEGER NOT NULL,
        seq INTEGER NOT NULL DEFAULT 0,
        used_bytes INTEGER NOT NULL DEFAULT 0,
        used_records INTEGER NOT NULL DEFAULT 0,
        recovery_lookup BLOB UNIQUE,
        recovery_verifier BLOB
    ) STRICT;
    CREATE TABLE credentials (
        credential_id BLOB PRIMARY KEY NOT NULL,
        account BLOB NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        passkey BLOB NOT NULL,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER
    ) STRICT;
    CREATE INDEX credentials_account ON credentials(account);
    CREATE TABLE sessions (
        token_hash BLOB PRIMARY KEY NOT NULL,
        account BLOB NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        expires_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX sessions_account ON sessions(account);
    CREATE TABLE records (
        account BLOB NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        id TEXT NOT NULL,
        grp TEXT,
        kind TEXT NOT NULL,
        version INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        ciphertext BLOB,
        PRIMARY KEY (account, id)
    ) STRICT;
    CREATE UNIQUE INDEX records_seq ON records(account, seq);
    CREATE INDEX records_group ON records(account, grp);",
    ),
    (2, "CREATE INDEX sessions_expiry ON sessions(expires_at);"),
];

/// The SQLite-backed [`Store`].
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating, with mode 0600, if needed) the database at `path` and brings its schema
    /// up to date. Blocking: call it from a blocking context ([`crate::open`] does).
    pub fn open(path: &Path) -> Result<SqliteStore> {
        create_private(path)?;
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db("open"))?;
        configure(&conn)?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn call<T, F>(&self, op: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves no transaction open (rusqlite rolls back on
            // drop), so the connection is still sound to use.
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("{op}: the SQLite worker failed: {e}")))?
    }
}

/// Creates the file owner-only, and takes group and world access away from an existing one:
/// it holds session hashes and everyone's ciphertext.
fn create_private(path: &Path) -> Result<()> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| StoreError::Backend(format!("open: cannot create the database file: {e}")))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(|e| {
        StoreError::Backend(format!(
            "open: cannot restrict the database file's mode: {e}"
        ))
    })
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db("configure"))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(db("configure"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "configure: the database refused WAL mode (it is in {mode} mode)"
        )));
    }
    for (pragma, value) in [
        ("synchronous", "FULL"),
        ("foreign_keys", "ON"),
        ("secure_delete", "ON"),
    ] {
        conn.pragma_update(None, pragma, value)
            .map_err(db("configure"))?;
    }
    // synchronous=FULL is 2, the others are booleans: check SQLite did not ignore any of them.
    for (pragma, want) in [
        ("synchronous", 2),
        ("foreign_keys", 1),
        ("secure_delete", 1),
    ] {
        let got: i64 = conn
            .pragma_query_value(None, pragma, |row| row.get(0))
            .map_err(db("configure"))?;
        if got != want {
            return Err(StoreError::Backend(format!(
                "configure: PRAGMA {pragma} is {got}, expected {want}"
            )));
        }
    }
    Ok(())
}

/// Runs under an immediate (write-locked) transaction so two processes opening a fresh file
/// cannot both apply the same migration.
fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db("migrate"))?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT")
        .map_err(db("migrate"))?;
    let current: i64 = tx
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_version",
            [],
            |row| row.get(0),
        )
        .map_err(db("migrate"))?;
    let newest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if current > newest {
        return Err(StoreError::Backend(format!(
            "migrate: the database is at schema version {current}, newer than this build's {newest}"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.execute_batch(sql).map_err(db("migrate"))?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [version],
        )
        .map_err(db("migrate"))?;
    }
    tx.commit().map_err(db("migrate"))
}

/// Maps a database error to [`StoreError::Backend`]. SQLite's messages name constraints and
/// columns, never bound values.
fn db(op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Backend(format!("{op}: {e}"))
}

fn exists(conn: &Connection, op: &'static str, sql: &str, key: &[u8]) -> Result<bool> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.exists([key]))
        .map_err(db(op))
}

fn array32(bytes: Vec<u8>, what: &str) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| StoreError::Backend(format!("the stored {what} is not 32 bytes")))
}

fn account_id(bytes: Vec<u8>) -> Result<AccountId> {
    <[u8; 16]>::try_from(bytes.as_slice())
        .map(AccountId)
        .map_err(|_| StoreError::Backend("a stored account id is not 16 bytes".into()))
}

/// The account's write state, or `NoAccount`.
struct AccountState {
    seq: u64,
    usage: Usage,
}

fn account_state(conn: &Connection, op: &'static str, account: &[u8]) -> Result<AccountState> {
    let row = conn
        .prepare_cached("SELECT seq, used_bytes, used_records FROM accounts WHERE id = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([account], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .optional()
        })
        .map_err(db(op))?;
    let (seq, bytes, records) = row.ok_or(StoreError::NoAccount)?;
    Ok(AccountState {
        seq: from_db(seq, "sequence number")?,
        usage: Usage {
            bytes: from_db(bytes, "byte count")?,
            records: from_db(records, "record count")?,
        },
    })
}

fn save_account_state(
    conn: &Connection,
    op: &'static str,
    account: &[u8],
    seq: u64,
    usage: Usage,
) -> Result<()> {
    let values = (
        to_db(seq, "sequence number")?,
        to_db(usage.bytes, "byte count")?,
        to_db(usage.records, "record count")?,
    );
    conn.prepare_cached(
        "UPDATE accounts SET seq = ?2, used_bytes = ?3, used_records = ?4 WHERE id = ?1",
    )
    .and_then(|mut stmt| stmt.execute(params![account, values.0, values.1, values.2]))
    .map_err(db(op))
    .map(drop)
}

fn existing_record(
    conn: &Connection,
    op: &'static str,
    account: &[u8],
    id: &str,
) -> Result<Option<Existing>> {
    let row = conn
        .prepare_cached(
            "SELECT version, length(ciphertext) FROM records WHERE account = ?1 AND id = ?2",
        )
        .and_then(|mut stmt| {
            stmt.query_row(params![account, id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
            })
            .optional()
        })
        .map_err(db(op))?;
    row.map(|(version, len)| {
        Ok(Existing {
            version: from_db(version, "record version")?,
            live_bytes: len.map(|l| from_db(l, "ciphertext length")).transpose()?,
        })
    })
    .transpose()
}

/// Turns a live record into a deletion marker: the ciphertext is overwritten with NULL.
fn write_marker(
    conn: &Connection,
    op: &'static str,
    account: &[u8],
    id: &str,
    version: u64,
    seq: u64,
) -> Result<()> {
    let version = to_db(version, "record version")?;
    let seq = to_db(seq, "sequence number")?;
    conn.prepare_cached(
        "UPDATE records SET ciphertext = NULL, version = ?3, seq = ?4
         WHERE account = ?1 AND id = ?2",
    )
    .and_then(|mut stmt| stmt.execute(params![account, id, version, seq]))
    .map_err(db(op))
    .map(drop)
}

/// Copies the log into the database and truncates it, so pages that held deleted ciphertext
/// are replaced by their zeroed versions and no old copy stays in the `-wal` file. Only this
/// store's connection normally uses the file; should another process be reading it, SQLite
/// checkpoints what it can and the rest is overwritten by a later checkpoint.
fn scrub_log(conn: &Connection, op: &'static str) -> Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(|e| {
            StoreError::Backend(format!(
                "{op}: committed, but truncating the write-ahead log failed: {e}"
            ))
        })
}

/// A record row as SQLite returns it: id, group, kind, version, seq, ciphertext.
type RecordColumns = (String, Option<String>, String, i64, i64, Option<Vec<u8>>);

fn record_out(row: &Row<'_>) -> rusqlite::Result<RecordColumns> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn to_record((id, group, kind, version, seq, ciphertext): RecordColumns) -> Result<RecordOut> {
    Ok(RecordOut {
        id,
        group,
        kind,
        version: from_db(version, "record version")?,
        seq: from_db(seq, "sequence number")?,
        ciphertext,
    })
}

fn credential_params(cred: &CredentialRow) -> Result<(i64, Option<i64>)> {
    Ok((
        to_db(cred.created_at, "creation time")?,
        cred.last_used_at
            .map(|t| to_db(t, "last use time"))
            .transpose()?,
    ))
}

fn insert_credential(
    conn: &Connection,
    op: &'static str,
    account: &[u8],
    cred: &CredentialRow,
) -> Result<()> {
    let (created_at, last_used_at) = credential_params(cred)?;
    conn.prepare_cached(
        "INSERT INTO credentials (credential_id, account, passkey, name, created_at, last_used_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            cred.credential_id,
            account,
            cred.passkey,
            cred.name,
            created_at,
            last_used_at
        ])
    })
    .map_err(db(op))
    .map(drop)
}

const CREDENTIAL_IN_USE: &str = "SELECT 1 FROM credentials WHERE credential_id = ?1";

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
        const OP: &str = "create_account";
        let now = to_db(now, "creation time")?;
        self.call(OP, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db(OP))?;
            if exists(&tx, OP, CREDENTIAL_IN_USE, &first.credential_id)? {
                return Err(StoreError::DuplicateCredential);
            }
            if exists(
                &tx,
                OP,
                "SELECT 1 FROM accounts WHERE recovery_lookup = ?1",
                &recovery_lookup,
            )? {
                return Err(StoreError::DuplicateRecovery);
            }
            if exists(&tx, OP, "SELECT 1 FROM accounts WHERE id = ?1", &id.0)? {
                return Err(StoreError::Backend(format!(
                    "{OP}: the account id is taken"
                )));
            }
            tx.execute(
                "INSERT INTO accounts (id, created_at, recovery_lookup, recovery_verifier)
                 VALUES (?1, ?2, ?3, ?4)",
                params![&id.0[..], now, &recovery_lookup[..], &recovery_verifier[..]],
            )
            .map_err(db(OP))?;
            insert_credential(&tx, OP, &id.0, &first)?;
            tx.commit().map_err(db(OP))
        })
        .await
    }

    async fn account(&self, id: AccountId) -> Result<Option<AccountRow>> {
        const OP: &str = "account";
        self.call(OP, move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT created_at, used_bytes, used_records, recovery_lookup IS NOT NULL
                     FROM accounts WHERE id = ?1",
                )
                .and_then(|mut stmt| {
                    stmt.query_row([&id.0[..]], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, bool>(3)?,
                        ))
                    })
                    .optional()
                })
                .map_err(db(OP))?;
            row.map(|(created_at, bytes, records, has_recovery)| {
                Ok(AccountRow {
                    id,
                    created_at: from_db(created_at, "creation time")?,
                    has_recovery,
                    usage: Usage {
                        bytes: from_db(bytes, "byte count")?,
                        records: from_db(records, "record count")?,
                    },
                })
            })
            .transpose()
        })
        .await
    }

    async fn delete_account(&self, id: AccountId) -> Result<()> {
        const OP: &str = "delete_account";
        self.call(OP, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db(OP))?;
            if !exists(&tx, OP, "SELECT 1 FROM accounts WHERE id = ?1", &id.0)? {
                return Err(StoreError::NoAccount);
            }
            for sql in [
                "DELETE FROM records WHERE account = ?1",
                "DELETE FROM sessions WHERE account = ?1",
                "DELETE FROM credentials WHERE account = ?1",
                "DELETE FROM accounts WHERE id = ?1",
            ] {
                tx.execute(sql, [&id.0[..]]).map_err(db(OP))?;
            }
            tx.commit().map_err(db(OP))?;
            scrub_log(conn, OP)
        })
        .await
    }

    async fn add_credential(&self, account: AccountId, cred: CredentialRow) -> Result<()> {
        const OP: &str = "add_credential";
        self.call(OP, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db(OP))?;
            if !exists(&tx, OP, "SELECT 1 FROM accounts WHERE id = ?1", &account.0)? {
                return Err(StoreError::NoAccount);
            }
            if exists(&tx, OP, CREDENTIAL_IN_USE, &cred.credential_id)? {
                return Err(StoreError::DuplicateCredential);
            }
            insert_credential(&tx, OP, &account.0, &cred)?;
            tx.commit().map_err(db(OP))
        })
        .await
    }

    async fn credentials(&self, account: AccountId) -> Result<Vec<CredentialRow>> {
        const OP: &str = "credentials";
        self.call(OP, move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT credential_id, passkey, name, created_at, last_used_at
                     FROM credentials WHERE account = ?1 ORDER BY created_at, credential_id",
                )
                .map_err(db(OP))?;
            let rows = stmt
                .query_map([&account.0[..]], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                    ))
                })
                .map_err(db(OP))?;
            let mut out = Vec::new();
            for row in rows {
                let (credential_id, passkey, name, created_at, last_used_at) =
                    row.map_err(db(OP))?;
                out.push(CredentialRow {
                    credential_id,
                    passkey,
                    name,
                    created_at: from_db(created_at, "creation time")?,
                    last_used_at: last_used_at
                        .map(|t| from_db(t, "last use time"))
                        .transpose()?,
                });
            }
            Ok(out)
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
        const OP: &str = "touch_credential";
        let now = to_db(now, "last use time")?;
        let credential_id = credential_id.to_vec();
        let passkey = passkey.to_vec();
        self.call(OP, move |conn| {
            conn.prepare_cached(
                "UPDATE credentials SET passkey = ?3, last_used_at = ?4
                 WHERE account = ?1 AND credential_id = ?2",
            )
            .and_then(|mut stmt| stmt.execute(params![&account.0[..], credential_id, passkey, now]))
            .map_err(db(OP))
            .map(drop)
        })
        .await
    }

    async fn delete_credential(&self, account: AccountId, credential_id: &[u8]) -> Result<bool> {
        const OP: &str = "delete_credential";
        let credential_id = credential_id.to_vec();
        self.call(OP, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db(OP))?;
            let (count, this): (i64, i64) = tx
                .query_row(
                    "SELECT count(*), coalesce(sum(credential_id = ?2), 0)
                     FROM credentials WHERE account = ?1",
                    params![&account.0[..], credential_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(db(OP))?;
            if this == 0 {
                return Ok(false);
            }
            if count == 1 {
                return Err(StoreError::LastCredential);
            }
            tx.execute(
                "DELETE FROM credentials WHERE account = ?1 AND credential_id = ?2",
                params![&account.0[..], credential_id],
            )
            .map_err(db(OP))?;
            tx.commit().map_err(db(OP))?;
            Ok(true)
        })
        .await
    }

    async fn set_recovery(
        &self,
        account: AccountId,
        lookup: [u8; 32],
        verifier: [u8; 32],
    ) -> Result<()> {
        const OP: &str = "set_recovery";
        self.call(OP, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db(OP))?;
            if !exists(&tx, OP, "SELECT 1 FROM accounts WHERE id = ?1", &account.0)? {
                return Err(StoreError::NoAccount);
            }
            let taken = tx
                .prepare_cached("SELECT 1 FROM accounts WHERE recovery_lookup = ?1 AND id <> ?2")
                .and_then(|mut stmt| stmt.exists(params![&lookup[..], &account.0[..]]))
                .map_err(db(OP))?;
            if taken {
                return Err(StoreError::DuplicateRecovery);
            }
            tx.execute(
                "UPDATE accounts SET recovery_lookup = ?2, recovery_verifier = ?3 WHERE id = ?1",
                params![&account.0[..], &lookup[..], &verifier[..]],
            )
            .map_err(db(OP))?;
            tx.commit().map_err(db(OP))
        })
        .await
    }

    async fn find_recovery(&self, lookup: &[u8; 32]) -> Result<Option<(AccountId, [u8; 32])>> {
        const OP: &str = "find_recovery";
        let lookup = *lookup;
        self.call(OP, move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT id, recovery_verifier FROM accounts WHERE recovery_lookup = ?1",
                )
                .and_then(|mut stmt| {
                    stmt.query_row([&lookup[..]], |r| {
                        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
                    })
                    .optional()
                })
                .map_err(db(OP))?;
            row.map(|(id, verifier)| Ok((account_id(id)?, array32(verifier, "recovery verifier")?)))
                .transpose()
        })
        .await
    }

    async fn create_session(
        &self,
        token_hash: [u8; 32],
        account: AccountId,
        expires_at: u64,
    ) -> Result<()> {
        const OP: &str = "create_session";
        let expires_at = to_db(expires_at, "session expiry")?;
        self.call(OP, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db(OP))?;
            if !exists(&tx, OP, "SELECT 1 FROM accounts WHERE id = ?1", &account.0)? {
                return Err(StoreError::NoAccount);
            }
            tx.execute(
                "INSERT INTO sessions (token_hash, account, expires_at) VALUES (?1, ?2, ?3)",
                params![&token_hash[..], &account.0[..], expires_at],
            )
            .map_err(db(OP))?;
            tx.commit().map_err(db(OP))
        })
        .await
    }

    async fn session(&self, token_hash: &[u8; 32], now: u64) -> Result<Option<AccountId>> {
        const OP: &str = "session";
        let token_hash = *token_hash;
        let now = to_db(now, "current time")?;
        self.call(OP, move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT account FROM sessions WHERE token_hash = ?1 AND expires_at > ?2",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![&token_hash[..], now], |r| r.get::<_, Vec<u8>>(0))
                        .optional()
                })
                .map_err(db(OP))?;
            row.map(account_id).transpose()
        })
        .await
    }

    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<()> {
        const OP: &str = "delete_session";
        let token_hash = *token_hash;
        self.call(OP, move |conn| {
            conn.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")
                .and_then(|mut stmt| stmt.execute([&token_hash[..]]))
                .map_err(db(OP))
                .map(drop)
        })
        .await
    }

    async fn purge_sessions(&self, now: u64) -> Result<u64> {
        const OP: &str = "purge_sessions";
        let now = to_db(now, "current time")?;
        self.call(OP, move |conn| {
            conn.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")
                .and_then(|mut stmt| stmt.execute([now]))
                .map_err(db(OP))
                .map(|n| n as u64)
        })
        .await
    }

    async fn put_record(
        &self,
        account: AccountId,
        write: RecordWrite<'_>,
        quota: Quota,
    ) -> Result<PutResult> {
        const OP: &str = "put_record";
        let id = write.id.to_owned();
        let group = write.group.map(str::to_owned);
        let kind = write.kind.to_owned();
        let expected = write.expected_version;
        let ciphertext = write.ciphertext.to_vec();
        self.call(OP, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db(OP))?;
            let state = account_state(&tx, OP, &account.0)?;
            let existing = existing_record(&tx, OP, &account.0, &id)?;
            let new_bytes = u64::try_from(ciphertext.len())
                .map_err(|_| StoreError::Backend(format!("{OP}: ciphertext length overflows")))?;
            let planned =
                rules::plan_put(existing, expected, new_bytes, state.seq, state.usage, quota)?;
            save_account_state(&tx, OP, &account.0, planned.seq, planned.usage)?;
            let version = to_db(planned.version, "record version")?;
            let seq = to_db(planned.seq, "sequence number")?;
            tx.prepare_cached(
                "INSERT INTO records (account, id, grp, kind, version, seq, ciphertext)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (account, id) DO UPDATE SET grp = excluded.grp,
                    kind = excluded.kind, version = excluded.version, seq = excluded.seq,
                    ciphertext = excluded.ciphertext",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    &account.0[..],
                    id,
                    group,
                    kind,
                    version,
                    seq,
                    ciphertext
                ])
            })
            .map_err(db(OP))?;
            tx.commit().map_err(db(OP))?;
            Ok(PutResult {
                version: planned.version,
                seq: planned.seq,
            })
        })
        .await
    }

    async fn get_record(&self, account: AccountId, id: &str) -> Result<Option<RecordOut>> {
        const OP: &str = "get_record";
        let id = id.to_owned();
        self.call(OP, move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT id, grp, kind, version, seq, ciphertext FROM records
                     WHERE account = ?1 AND id = ?2",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![&account.0[..], id], record_out)
                        .optional()
                })
                .map_err(db(OP))?;
            row.map(to_record).transpose()
        })
        .await
    }

    async fn delete_record(
        &self,
        account: AccountId,
        id: &str,
        expected_version: Option<u64>,
    ) -> Result<bool> {
        const OP: &str = "delete_record";
        let id = id.to_owned();
        self.call(OP, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db(OP))?;
            let state = account_state(&tx, OP, &account.0)?;
            let existing = existing_record(&tx, OP, &account.0, &id)?;
            let Some(planned) =
                rules::plan_delete(existing, expected_version, state.seq, state.usage)?
            else {
                return Ok(false);
            };
            write_marker(&tx, OP, &account.0, &id, planned.version, planned.seq)?;
            save_account_state(&tx, OP, &account.0, planned.seq, planned.usage)?;
            tx.commit().map_err(db(OP))?;
            scrub_log(conn, OP)?;
            Ok(true)
        })
        .await
    }

    async fn delete_group(&self, account: AccountId, group: &str) -> Result<u64> {
        const OP: &str = "delete_group";
        let group = group.to_owned();
        self.call(OP, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db(OP))?;
            let mut state = account_state(&tx, OP, &account.0)?;
            let live: Vec<(String, i64, i64)> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id, version, length(ciphertext) FROM records
                         WHERE account = ?1 AND grp = ?2 AND ciphertext IS NOT NULL
                         ORDER BY seq",
                    )
                    .map_err(db(OP))?;
                let rows = stmt
                    .query_map(params![&account.0[..], group], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .map_err(db(OP))?;
                rows.collect::<rusqlite::Result<_>>().map_err(db(OP))?
            };
            let mut deleted = 0u64;
            for (id, version, len) in live {
                let existing = Existing {
                    version: from_db(version, "record version")?,
                    live_bytes: Some(from_db(len, "ciphertext length")?),
                };
                if let Some(planned) =
                    rules::plan_delete(Some(existing), None, state.seq, state.usage)?
                {
                    write_marker(&tx, OP, &account.0, &id, planned.version, planned.seq)?;
                    state.seq = planned.seq;
                    state.usage = planned.usage;
                    deleted += 1;
                }
            }
            if deleted == 0 {
                return Ok(0);
            }
            save_account_state(&tx, OP, &account.0, state.seq, state.usage)?;
            tx.commit().map_err(db(OP))?;
            scrub_log(conn, OP)?;
            Ok(deleted)
        })
        .await
    }

    async fn changes(&self, account: AccountId, since: u64, limit: u32) -> Result<Vec<RecordOut>> {
        const OP: &str = "changes";
        let since = to_db(since, "cursor")?;
        self.call(OP, move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, grp, kind, version, seq, ciphertext FROM records
                     WHERE account = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(db(OP))?;
            let rows = stmt
                .query_map(params![&account.0[..], since, i64::from(limit)], record_out)
                .map_err(db(OP))?;
            let mut out = Vec::new();
            for row in rows {
                out.push(to_record(row.map_err(db(OP))?)?);
            }
            Ok(out)
        })
        .await
    }
}
