//! The scale-out backend: PostgreSQL through a connection pool.
//!
//! Every write runs in one transaction that first row-locks the account
//! (`SELECT … FOR NO KEY UPDATE`), so writes to one account are serialized, the sequence number
//! taken inside is assigned in commit order, and writes to different accounts run in parallel.
//! `NO KEY UPDATE` still lets credential and session inserts (which only key-share-lock the
//! account through their foreign key) proceed; `delete_account` takes the full `FOR UPDATE`
//! lock so nothing can attach new rows to an account while it is being removed. Commits use
//! the server's default `synchronous_commit = on`, so an acknowledged write is on disk.
//!
//! Deleted ciphertext is set to NULL; PostgreSQL keeps the dead tuple until (auto)vacuum
//! reclaims it, which is outside what a client connection can force cheaply.
//!
//! Connections are plaintext (`NoTls`), which is only acceptable on loopback or a Unix socket:
//! [`PostgresStore::connect`] refuses any other host rather than send records and session
//! hashes across a network unprotected. The database is trusted to hold what this module
//! wrote; values read back are still range-checked rather than assumed.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use sotto_api::{PutResult, Quota, RecordOut, Usage};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

use crate::rules::{self, from_db, to_db, Existing};
use crate::{AccountId, AccountRow, CredentialRow, RecordWrite, Result, Store, StoreError};

/// Connections kept open to the server.
const POOL_SIZE: usize = 16;
/// How long a call waits for a free connection, and a new connection for the server.
const WAIT: Duration = Duration::from_secs(10);
/// Key of the advisory lock that serializes schema migrations between server processes.
const MIGRATION_LOCK: i64 = 0x5077_0500_0000_0001;

/// Schema migrations, applied in order; each runs once, recorded in `schema_version`.
/// Constraint names are spelled out because errors are mapped by them.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE accounts (
        id bytea CONSTRAINT accounts_pkey PRIMARY KEY CHECK (octet_length(id) = 16),
        created_at bigint NOT NULL,
        seq bigint NOT NULL DEFAULT 0,
        used_bytes bigint NOT NULL DEFAULT 0,
        used_records bigint NOT NULL DEFAULT 0,
        recovery_lookup bytea CONSTRAINT accounts_recovery_lookup_key UNIQUE,
        recovery_verifier bytea
    );
    CREATE TABLE credentials (
        credential_id bytea CONSTRAINT credentials_pkey PRIMARY KEY,
        account bytea NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        passkey bytea NOT NULL,
        name text NOT NULL,
        created_at bigint NOT NULL,
        last_used_at bigint
    );
    CREATE INDEX credentials_account ON credentials(account);
    CREATE TABLE sessions (
        token_hash bytea CONSTRAINT sessions_pkey PRIMARY KEY,
        account bytea NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        expires_at bigint NOT NULL
    );
    CREATE INDEX sessions_account ON sessions(account);
    CREATE TABLE records (
        account bytea NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        id text NOT NULL,
        grp text,
        kind text NOT NULL,
        version bigint NOT NULL,
        seq bigint NOT NULL,
        ciphertext bytea,
        PRIMARY KEY (account, id)
    );
    CREATE UNIQUE INDEX records_seq ON records(account, seq);
    CREATE INDEX records_group ON records(account, grp);",
    ),
    (2, "CREATE INDEX sessions_expiry ON sessions(expires_at);"),
];

/// The PostgreSQL-backed [`Store`].
pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@127.0.0.1:5432/dbname`), checks the server
    /// is reachable, and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<PostgresStore> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Backend(format!("connect: bad PostgreSQL URL: {e}")))?;
        require_local(&config)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(WAIT);
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(WAIT))
            .create_timeout(Some(WAIT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Backend(format!("connect: cannot build the pool: {e}")))?;
        let store = PostgresStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self, op: &'static str) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Backend(format!("{op}: no database connection: {e}")))
    }

    async fn migrate(&self) -> Result<()> {
        const OP: &str = "migrate";
        let mut client = self.client(OP).await?;
        let tx = client.transaction().await.map_err(db(OP))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db(OP))?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            .await
            .map_err(db(OP))?;
        let current: i32 = tx
            .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
            .await
            .map_err(db(OP))?
            .try_get(0)
            .map_err(db(OP))?;
        let newest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        if current > newest {
            return Err(StoreError::Backend(format!(
                "{OP}: the database is at schema version {current}, newer than this build's {newest}"
            )));
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            tx.batch_execute(sql).await.map_err(db(OP))?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[version],
            )
            .await
            .map_err(db(OP))?;
        }
        tx.commit().await.map_err(db(OP))
    }
}

/// Refuses hosts that are not loopback addresses or Unix sockets (see the module comment).
fn require_local(config: &tokio_postgres::Config) -> Result<()> {
    let addrs_local = config.get_hostaddrs().iter().all(IpAddr::is_loopback);
    let hosts_local = !config.get_hostaddrs().is_empty()
        || config.get_hosts().iter().all(|host| match host {
            Host::Tcp(name) => {
                name == "localhost"
                    || IpAddr::from_str(name.trim_start_matches('[').trim_end_matches(']'))
                        .is_ok_and(|ip| ip.is_loopback())
            }
            Host::Unix(_) => true,
        });
    if addrs_local && hosts_local {
        Ok(())
    } else {
        Err(StoreError::Backend(
            "connect: PostgreSQL connections are unencrypted, so only loopback hosts and Unix \
             sockets are allowed"
                .into(),
        ))
    }
}

/// Maps a database error to [`StoreError::Backend`] with the server's message and SQLSTATE, and
/// without its DETAIL line, which can quote key values.
fn db(op: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| match e.as_db_error() {
        Some(dbe) => StoreError::Backend(format!(
            "{op}: {} (SQLSTATE {})",
            dbe.message(),
            dbe.code().code()
        )),
        None => StoreError::Backend(format!("{op}: {e}")),
    }
}

/// The unique or foreign-key constraint a failed statement violated, if that is why it failed.
fn violated(e: &tokio_postgres::Error) -> Option<(SqlState, &str)> {
    let dbe = e.as_db_error()?;
    let code = dbe.code();
    if *code == SqlState::UNIQUE_VIOLATION || *code == SqlState::FOREIGN_KEY_VIOLATION {
        Some((code.clone(), dbe.constraint().unwrap_or("")))
    } else {
        None
    }
}

/// Maps the constraint violations callers can cause to their precise errors.
fn constraint_error(op: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| match violated(&e) {
        Some((_, "credentials_pkey")) => StoreError::DuplicateCredential,
        Some((_, "accounts_recovery_lookup_key")) => StoreError::DuplicateRecovery,
        Some((_, "accounts_pkey")) => StoreError::Backend(format!("{op}: the account id is taken")),
        Some((code, _)) if code == SqlState::FOREIGN_KEY_VIOLATION => StoreError::NoAccount,
        _ => db(op)(e),
    }
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

struct AccountState {
    seq: u64,
    usage: Usage,
}

/// Locks the account row for the rest of the transaction and reads its write state.
async fn lock_account(
    tx: &deadpool_postgres::Transaction<'_>,
    op: &'static str,
    account: &[u8],
) -> Result<AccountState> {
    let stmt = tx
        .prepare_cached(
            "SELECT seq, used_bytes, used_records FROM accounts WHERE id = $1 FOR NO KEY UPDATE",
        )
        .await
        .map_err(db(op))?;
    let row = tx
        .query_opt(&stmt, &[&account])
        .await
        .map_err(db(op))?
        .ok_or(StoreError::NoAccount)?;
    Ok(AccountState {
        seq: from_db(row.try_get(0).map_err(db(op))?, "sequence number")?,
        usage: Usage {
            bytes: from_db(row.try_get(1).map_err(db(op))?, "byte count")?,
            records: from_db(row.try_get(2).map_err(db(op))?, "record count")?,
        },
    })
}

async fn save_account_state(
    tx: &deadpool_postgres::Transaction<'_>,
    op: &'static str,
    account: &[u8],
    seq: u64,
    usage: Usage,
) -> Result<()> {
    let seq = to_db(seq, "sequence number")?;
    let bytes = to_db(usage.bytes, "byte count")?;
    let records = to_db(usage.records, "record count")?;
    let stmt = tx
        .prepare_cached(
            "UPDATE accounts SET seq = $2, used_bytes = $3, used_records = $4 WHERE id = $1",
        )
        .await
        .map_err(db(op))?;
    tx.execute(&stmt, &[&account, &seq, &bytes, &records])
        .await
        .map_err(db(op))
        .map(drop)
}

async fn existing_record(
    tx: &deadpool_postgres::Transaction<'_>,
    op: &'static str,
    account: &[u8],
    id: &str,
) -> Result<Option<Existing>> {
    let stmt = tx
        .prepare_cached(
            "SELECT version, octet_length(ciphertext)::bigint FROM records
             WHERE account = $1 AND id = $2",
        )
        .await
        .map_err(db(op))?;
    let Some(row) = tx
        .query_opt(&stmt, &[&account, &id])
        .await
        .map_err(db(op))?
    else {
        return Ok(None);
    };
    let len: Option<i64> = row.try_get(1).map_err(db(op))?;
    Ok(Some(Existing {
        version: from_db(row.try_get(0).map_err(db(op))?, "record version")?,
        live_bytes: len.map(|l| from_db(l, "ciphertext length")).transpose()?,
    }))
}

async fn write_marker(
    tx: &deadpool_postgres::Transaction<'_>,
    op: &'static str,
    account: &[u8],
    id: &str,
    version: u64,
    seq: u64,
) -> Result<()> {
    let version = to_db(version, "record version")?;
    let seq = to_db(seq, "sequence number")?;
    let stmt = tx
        .prepare_cached(
            "UPDATE records SET ciphertext = NULL, version = $3, seq = $4
             WHERE account = $1 AND id = $2",
        )
        .await
        .map_err(db(op))?;
    tx.execute(&stmt, &[&account, &id, &version, &seq])
        .await
        .map_err(db(op))
        .map(drop)
}

async fn insert_credential(
    client: &impl GenericClient,
    op: &'static str,
    account: &[u8],
    cred: &CredentialRow,
) -> Result<()> {
    let created_at = to_db(cred.created_at, "creation time")?;
    let last_used_at = cred
        .last_used_at
        .map(|t| to_db(t, "last use time"))
        .transpose()?;
    client
        .execute(
            "INSERT INTO credentials (credential_id, account, passkey, name, created_at, last_used_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &cred.credential_id,
                &account,
                &cred.passkey,
                &cred.name,
                &created_at,
                &last_used_at,
            ],
        )
        .await
        .map_err(constraint_error(op))
        .map(drop)
}

fn to_record(op: &'static str, row: &Row) -> Result<RecordOut> {
    Ok(RecordOut {
        id: row.try_get(0).map_err(db(op))?,
        group: row.try_get(1).map_err(db(op))?,
        kind: row.try_get(2).map_err(db(op))?,
        version: from_db(row.try_get(3).map_err(db(op))?, "record version")?,
        seq: from_db(row.try_get(4).map_err(db(op))?, "sequence number")?,
        ciphertext: row.try_get(5).map_err(db(op))?,
    })
}

#[async_trait]
impl Store for PostgresStore {
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
        let mut client = self.client(OP).await?;
        let tx = client.transaction().await.map_err(db(OP))?;
        // The credential is checked first so both backends report the same error when both
        // values are taken; the unique constraints still decide races between transactions.
        let taken = tx
            .query_opt(
                "SELECT 1 FROM credentials WHERE credential_id = $1",
                &[&first.credential_id],
            )
            .await
            .map_err(db(OP))?;
        if taken.is_some() {
            return Err(StoreError::DuplicateCredential);
        }
        tx.execute(
            "INSERT INTO accounts (id, created_at, recovery_lookup, recovery_verifier)
             VALUES ($1, $2, $3, $4)",
            &[
                &&id.0[..],
                &now,
                &&recovery_lookup[..],
                &&recovery_verifier[..],
            ],
        )
        .await
        .map_err(constraint_error(OP))?;
        insert_credential(&tx, OP, &id.0, &first).await?;
        tx.commit().await.map_err(db(OP))
    }

    async fn account(&self, id: AccountId) -> Result<Option<AccountRow>> {
        const OP: &str = "account";
        let client = self.client(OP).await?;
        let stmt = client
            .prepare_cached(
                "SELECT created_at, used_bytes, used_records, recovery_lookup IS NOT NULL
                 FROM accounts WHERE id = $1",
            )
            .await
            .map_err(db(OP))?;
        let Some(row) = client
            .query_opt(&stmt, &[&&id.0[..]])
            .await
            .map_err(db(OP))?
        else {
            return Ok(None);
        };
        Ok(Some(AccountRow {
            id,
            created_at: from_db(row.try_get(0).map_err(db(OP))?, "creation time")?,
            has_recovery: row.try_get(3).map_err(db(OP))?,
            usage: Usage {
                bytes: from_db(row.try_get(1).map_err(db(OP))?, "byte count")?,
                records: from_db(row.try_get(2).map_err(db(OP))?, "record count")?,
            },
        }))
    }

    async fn delete_account(&self, id: AccountId) -> Result<()> {
        const OP: &str = "delete_account";
        let mut client = self.client(OP).await?;
        let tx = client.transaction().await.map_err(db(OP))?;
        let locked = tx
            .query_opt(
                "SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE",
                &[&&id.0[..]],
            )
            .await
            .map_err(db(OP))?;
        if locked.is_none() {
            return Err(StoreError::NoAccount);
        }
        for sql in [
            "DELETE FROM records WHERE account = $1",
            "DELETE FROM sessions WHERE account = $1",
            "DELETE FROM credentials WHERE account = $1",
            "DELETE FROM accounts WHERE id = $1",
        ] {
            tx.execute(sql, &[&&id.0[..]]).await.map_err(db(OP))?;
        }
        tx.commit().await.map_err(db(OP))
    }

    async fn add_credential(&self, account: AccountId, cred: CredentialRow) -> Result<()> {
        const OP: &str = "add_credential";
        let client = self.client(OP).await?;
        insert_credential(&client, OP, &account.0, &cred).await
    }

    async fn credentials(&self, account: AccountId) -> Result<Vec<CredentialRow>> {
        const OP: &str = "credentials";
        let client = self.client(OP).await?;
        let stmt = client
            .prepare_cached(
                "SELECT credential_id, passkey, name, created_at, last_used_at
                 FROM credentials WHERE account = $1 ORDER BY created_at, credential_id",
            )
            .await
            .map_err(db(OP))?;
        let rows = client
            .query(&stmt, &[&&account.0[..]])
            .await
            .map_err(db(OP))?;
        rows.iter()
            .map(|row| {
                let last_used_at: Option<i64> = row.try_get(4).map_err(db(OP))?;
                Ok(CredentialRow {
                    credential_id: row.try_get(0).map_err(db(OP))?,
                    passkey: row.try_get(1).map_err(db(OP))?,
                    name: row.try_get(2).map_err(db(OP))?,
                    created_at: from_db(row.try_get(3).map_err(db(OP))?, "creation time")?,
                    last_used_at: last_used_at
                        .map(|t| from_db(t, "last use time"))
                        .transpose()?,
                })
            })
            .collect()
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
        let client = self.client(OP).await?;
        let stmt = client
            .prepare_cached(
                "UPDATE credentials SET passkey = $3, last_used_at = $4
                 WHERE account = $1 AND credential_id = $2",
            )
            .await
            .map_err(db(OP))?;
        client
            .execute(&stmt, &[&&account.0[..], &credential_id, &passkey, &now])
            .await
            .map_err(db(OP))
            .map(drop)
    }

    async fn delete_credential(&self, account: AccountId, credential_id: &[u8]) -> Result<bool> {
        const OP: &str = "delete_credential";
        let mut client = self.client(OP).await?;
        let tx = client.transaction().await.map_err(db(OP))?;
        // The account row lock serializes deletions, so the count below stays true until commit.
        if tx
            .query_opt(
                "SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE",
                &[&&account.0[..]],
            )
            .await
            .map_err(db(OP))?
            .is_none()
        {
            return Ok(false);
        }
        let row = tx
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE credential_id = $2)
                 FROM credentials WHERE account = $1",
                &[&&account.0[..], &credential_id],
            )
            .await
            .map_err(db(OP))?;
        let (count, this): (i64, i64) = (
            row.try_get(0).map_err(db(OP))?,
            row.try_get(1).map_err(db(OP))?,
        );
        if this == 0 {
            return Ok(false);
        }
        if count == 1 {
            return Err(StoreError::LastCredential);
        }
        tx.execute(
            "DELETE FROM credentials WHERE account = $1 AND credential_id = $2",
            &[&&account.0[..], &credential_id],
        )
        .await
        .map_err(db(OP))?;
        tx.commit().await.map_err(db(OP))?;
        Ok(true)
    }

    async fn set_recovery(
        &self,
        account: AccountId,
        lookup: [u8; 32],
        verifier: [u8; 32],
    ) -> Result<()> {
        const OP: &str = "set_recovery";
        let client = self.client(OP).await?;
        let updated = client
            .execute(
                "UPDATE accounts SET recovery_lookup = $2, recovery_verifier = $3 WHERE id = $1",
                &[&&account.0[..], &&lookup[..], &&verifier[..]],
            )
            .await
            .map_err(constraint_error(OP))?;
        if updated == 0 {
            return Err(StoreError::NoAccount);
        }
        Ok(())
    }

    async fn find_recovery(&self, lookup: &[u8; 32]) -> Result<Option<(AccountId, [u8; 32])>> {
        const OP: &str = "find_recovery";
        let client = self.client(OP).await?;
        let stmt = client
            .prepare_cached("SELECT id, recovery_verifier FROM accounts WHERE recovery_lookup = $1")
            .await
            .map_err(db(OP))?;
        let Some(row) = client
            .query_opt(&stmt, &[&&lookup[..]])
            .await
            .map_err(db(OP))?
        else {
            return Ok(None);
        };
        Ok(Some((
            account_id(row.try_get(0).map_err(db(OP))?)?,
            array32(row.try_get(1).map_err(db(OP))?, "recovery verifier")?,
        )))
    }

    async fn create_session(
        &self,
        token_hash: [u8; 32],
        account: AccountId,
        expires_at: u64,
    ) -> Result<()> {
        const OP: &str = "create_session";
        let expires_at = to_db(expires_at, "session expiry")?;
        let client = self.client(OP).await?;
        client
            .execute(
                "INSERT INTO sessions (token_hash, account, expires_at) VALUES ($1, $2, $3)",
                &[&&token_hash[..], &&account.0[..], &expires_at],
            )
            .await
            .map_err(constraint_error(OP))
            .map(drop)
    }

    async fn session(&self, token_hash: &[u8; 32], now: u64) -> Result<Option<AccountId>> {
        const OP: &str = "session";
        let now = to_db(now, "current time")?;
        let client = self.client(OP).await?;
        let stmt = client
            .prepare_cached(
                "SELECT account FROM sessions WHERE token_hash = $1 AND expires_at > $2",
            )
            .await
            .map_err(db(OP))?;
        let row = client
            .query_opt(&stmt, &[&&token_hash[..], &now])
            .await
            .map_err(db(OP))?;
        row.map(|r| account_id(r.try_get(0).map_err(db(OP))?))
            .transpose()
    }

    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<()> {
        const OP: &str = "delete_session";
        let client = self.client(OP).await?;
        client
            .execute(
                "DELETE FROM sessions WHERE token_hash = $1",
                &[&&token_hash[..]],
            )
            .await
            .map_err(db(OP))
            .map(drop)
    }

    async fn purge_sessions(&self, now: u64) -> Result<u64> {
        const OP: &str = "purge_sessions";
        let now = to_db(now, "current time")?;
        let client = self.client(OP).await?;
        client
            .execute("DELETE FROM sessions WHERE expires_at <= $1", &[&now])
            .await
            .map_err(db(OP))
    }

    async fn put_record(
        &self,
        account: AccountId,
        write: RecordWrite<'_>,
        quota: Quota,
    ) -> Result<PutResult> {
        const OP: &str = "put_record";
        let new_bytes = u64::try_from(write.ciphertext.len())
            .map_err(|_| StoreError::Backend(format!("{OP}: ciphertext length overflows")))?;
        let mut client = self.client(OP).await?;
        let tx = client.transaction().await.map_err(db(OP))?;
        let state = lock_account(&tx, OP, &account.0).await?;
        let existing = existing_record(&tx, OP, &account.0, write.id).await?;
        let planned = rules::plan_put(
            existing,
            write.expected_version,
            new_bytes,
            state.seq,
            state.usage,
            quota,
        )?;
        save_account_state(&tx, OP, &account.0, planned.seq, planned.usage).await?;
        let version = to_db(planned.version, "record version")?;
        let seq = to_db(planned.seq, "sequence number")?;
        let stmt = tx
            .prepare_cached(
                "INSERT INTO records (account, id, grp, kind, version, seq, ciphertext)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (account, id) DO UPDATE SET grp = excluded.grp,
                    kind = excluded.kind, version = excluded.version, seq = excluded.seq,
                    ciphertext = excluded.ciphertext",
            )
            .await
            .map_err(db(OP))?;
        tx.execute(
            &stmt,
            &[
                &&account.0[..],
                &write.id,
                &write.group,
                &write.kind,
                &version,
                &seq,
                &write.ciphertext,
            ],
        )
        .await
        .map_err(db(OP))?;
        tx.commit().await.map_err(db(OP))?;
        Ok(PutResult {
            version: planned.version,
            seq: planned.seq,
        })
    }

    async fn get_record(&self, account: AccountId, id: &str) -> Result<Option<RecordOut>> {
        const OP: &str = "get_record";
        let client = self.client(OP).await?;
        let stmt = client
            .prepare_cached(
                "SELECT id, grp, kind, version, seq, ciphertext FROM records
                 WHERE account = $1 AND id = $2",
            )
            .await
            .map_err(db(OP))?;
        let row = client
            .query_opt(&stmt, &[&&account.0[..], &id])
            .await
            .map_err(db(OP))?;
        row.map(|r| to_record(OP, &r)).transpose()
    }

    async fn delete_record(
        &self,
        account: AccountId,
        id: &str,
        expected_version: Option<u64>,
    ) -> Result<bool> {
        const OP: &str = "delete_record";
        let mut client = self.client(OP).await?;
        let tx = client.transaction().await.map_err(db(OP))?;
        let state = lock_account(&tx, OP, &account.0).await?;
        let existing = existing_record(&tx, OP, &account.0, id).await?;
        let Some(planned) = rules::plan_delete(existing, expected_version, state.seq, state.usage)?
        else {
            return Ok(false);
        };
        write_marker(&tx, OP, &account.0, id, planned.version, planned.seq).await?;
        save_account_state(&tx, OP, &account.0, planned.seq, planned.usage).await?;
        tx.commit().await.map_err(db(OP))?;
        Ok(true)
    }

    async fn delete_group(&self, account: AccountId, group: &str) -> Result<u64> {
        const OP: &str = "delete_group";
        let mut client = self.client(OP).await?;
        let tx = client.transaction().await.map_err(db(OP))?;
        let mut state = lock_account(&tx, OP, &account.0).await?;
        let live = tx
            .query(
                "SELECT id, version, octet_length(ciphertext)::bigint FROM records
                 WHERE account = $1 AND grp = $2 AND ciphertext IS NOT NULL
                 ORDER BY seq",
                &[&&account.0[..], &group],
            )
            .await
            .map_err(db(OP))?;
        let mut deleted = 0u64;
        for row in &live {
            let id: String = row.try_get(0).map_err(db(OP))?;
            let existing = Existing {
                version: from_db(row.try_get(1).map_err(db(OP))?, "record version")?,
                live_bytes: Some(from_db(
                    row.try_get(2).map_err(db(OP))?,
                    "ciphertext length",
                )?),
            };
            if let Some(planned) = rules::plan_delete(Some(existing), None, state.seq, state.usage)?
            {
                write_marker(&tx, OP, &account.0, &id, planned.version, planned.seq).await?;
                state.seq = planned.seq;
                state.usage = planned.usage;
                deleted += 1;
            }
        }
        if deleted == 0 {
            return Ok(0);
        }
        save_account_state(&tx, OP, &account.0, state.seq, state.usage).await?;
        tx.commit().await.map_err(db(OP))?;
        Ok(deleted)
    }

    async fn changes(&self, account: AccountId, since: u64, limit: u32) -> Result<Vec<RecordOut>> {
        const OP: &str = "changes";
        let since = to_db(since, "cursor")?;
        let limit = i64::from(limit);
        let client = self.client(OP).await?;
        let stmt = client
            .prepare_cached(
                "SELECT id, grp, kind, version, seq, ciphertext FROM records
                 WHERE account = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .await
            .map_err(db(OP))?;
        let rows = client
            .query(&stmt, &[&&account.0[..], &since, &limit])
            .await
            .map_err(db(OP))?;
        rows.iter().map(|row| to_record(OP, row)).collect()
    }
}
