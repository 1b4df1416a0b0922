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
//! Pending entries and rate-limit buckets are shared by every server on the database. Puts for
//! one owner are serialized by a transaction-scoped advisory lock keyed by the owner, taken
//! before anything else (`owner_lock`): under READ COMMITTED each later statement sees every
//! put that committed before the lock was granted, and no other put for the owner commits
//! until this one ends, while other transactions only ever delete an owner's entries. So the
//! per-owner caps hold exactly. The total is counted without a lock: puts of different owners
//! in flight at once may each see room for one more, so a kind can exceed its total by fewer
//! than the number of racing puts (at most `POOL_SIZE` per server process). A take is one
//! `DELETE … RETURNING`: of racing takers, the first deletes the row and the others, waiting on
//! its row lock, find it gone. A bucket is created or row-locked by one upsert, so a second
//! caller waits for the first to store its count. What deletes entries many at a time skips
//! rows another transaction has locked (`FOR UPDATE SKIP LOCKED`: that one is deleting them
//! already), and a rate-limit call locks a single row, so none of these operations can wait on
//! another in a cycle.
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
use sotto_api::{Changes, PutResult, Quota, RecordOut};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

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

/// Connections kept open to the server.
const POOL_SIZE: usize = 16;
/// How long a call waits for a free connection, and a new connection for the server.
const WAIT: Duration = Duration::from_secs(10);
/// Key of the advisory lock that serializes schema migrations between server processes.
const MIGRATION_LOCK: i64 = 0x5077_0500_0000_0001;

type Client = deadpool_postgres::Object;
type Transaction<'a> = deadpool_postgres::Transaction<'a>;
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The PostgreSQL-backed [`Store`].
pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@127.0.0.1:5432/dbname`), checks the server
    /// is reachable, and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<PostgresStore> {
        let store = PostgresStore {
            pool: pool(url).context("connect")?,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Fallible<Client> {
        self.pool
            .get()
            .await
            .map_err(|e| failed(format!("no database connection: {e}")))
    }

    /// Runs `f` with a pooled connection, as operation `op`.
    async fn call<T>(
        &self,
        op: &'static str,
        f: impl AsyncFnOnce(&Client) -> Fallible<T>,
    ) -> Result<T> {
        async { f(&self.client().await?).await }.await.context(op)
    }

    /// Runs `f` in a transaction, committed when `f` succeeds, as operation `op`.
    async fn write<T>(
        &self,
        op: &'static str,
        f: impl AsyncFnOnce(&Transaction<'_>) -> Fallible<T>,
    ) -> Result<T> {
        async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let out = f(&tx).await?;
            tx.commit().await?;
            Fallible::Ok(out)
        }
        .await
        .context(op)
    }

    async fn migrate(&self) -> Result<()> {
        self.write("migrate", async |tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            tx.batch_execute(&schema::POSTGRES.version_table()).await?;
            let current = tx.query_one(CURRENT_VERSION, &[]).await?.value(0)?;
            for (version, sql) in schema::POSTGRES.pending(current)? {
                tx.batch_execute(&sql).await?;
                tx.execute(RECORD_VERSION, &[&version]).await?;
            }
            Ok(())
        })
        .await
    }
}

fn pool(url: &str) -> Fallible<Pool> {
    let mut config = tokio_postgres::Config::from_str(url)
        .map_err(|e| failed(format!("bad PostgreSQL URL: {e}")))?;
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
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .wait_timeout(Some(WAIT))
        .create_timeout(Some(WAIT))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| failed(format!("cannot build the pool: {e}")))
}

/// Refuses hosts that are not loopback addresses or Unix sockets (see the module comment).
fn require_local(config: &tokio_postgres::Config) -> Fallible<()> {
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
        Err(failed(
            "PostgreSQL connections are unencrypted, so only loopback hosts and Unix sockets \
             are allowed",
        ))
    }
}

/// The server's message and SQLSTATE, without its DETAIL line, which can quote key values.
impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        match e.as_db_error() {
            Some(dbe) => failed(format!(
                "{} (SQLSTATE {})",
                dbe.message(),
                dbe.code().code()
            )),
            None => failed(e),
        }
    }
}

impl Columns for Row {
    fn value<T: ColumnType>(&self, index: usize) -> Fallible<T> {
        Ok(self.try_get(index)?)
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
fn constraint_error(e: tokio_postgres::Error) -> Failure {
    match violated(&e) {
        Some((_, "credentials_pkey")) => StoreError::DuplicateCredential.into(),
        Some((_, "accounts_recovery_lookup_key")) => StoreError::DuplicateRecovery.into(),
        Some((_, "accounts_pkey")) => failed("the account id is taken"),
        Some((code, _)) if code == SqlState::FOREIGN_KEY_VIOLATION => StoreError::NoAccount.into(),
        _ => e.into(),
    }
}

// The helpers below run their statements through the connection's statement cache.

async fn execute(client: &impl GenericClient, sql: &str, params: Params<'_>) -> Fallible<u64> {
    let stmt = client.prepare_cached(sql).await?;
    Ok(client.execute(&stmt, params).await?)
}

/// The first row `sql` returns, decoded.
async fn query_opt<T>(
    client: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
    decode: impl FnOnce(&Row) -> Fallible<T>,
) -> Fallible<Option<T>> {
    let stmt = client.prepare_cached(sql).await?;
    let row = client.query_opt(&stmt, params).await?;
    row.as_ref().map(decode).transpose()
}

/// Every row `sql` returns, decoded.
async fn query<T>(
    client: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
    decode: impl Fn(&Row) -> Fallible<T>,
) -> Fallible<Vec<T>> {
    let stmt = client.prepare_cached(sql).await?;
    let rows = client.query(&stmt, params).await?;
    rows.iter().map(decode).collect()
}

/// The statements of the shared record operations, on a pooled connection or in a
/// transaction.
struct Statements<'a, C>(&'a C);

impl<C: GenericClient + Sync> AccountSql for Statements<'_, C> {
    async fn credential_in_use(&self, credential_id: &[u8]) -> Fallible<bool> {
        let sql = "SELECT 1 FROM credentials WHERE credential_id = $1";
        Ok(query_opt(self.0, sql, &[&credential_id], |_| Ok(()))
            .await?
            .is_some())
    }

    /// The unique constraint decides races between transactions.
    async fn insert_account(&self, account: &NewAccount<'_>) -> Fallible<()> {
        self.0
            .execute(
                "INSERT INTO accounts (id, created_at, recovery_lookup, recovery_verifier)
                 VALUES ($1, $2, $3, $4)",
                &[
                    &&account.id.0[..],
                    &account.created_at,
                    &&account.recovery_lookup[..],
                    &&account.recovery_verifier[..],
                ],
            )
            .await
            .map_err(constraint_error)
            .map(drop)
    }

    async fn insert_credential(&self, account: AccountId, cred: &CredentialRow) -> Fallible<()> {
        let (created_at, last_used_at) = driver::credential_times(cred)?;
        self.0
            .execute(
                "INSERT INTO credentials (credential_id, account, passkey, name, created_at, last_used_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &cred.credential_id,
                    &&account.0[..],
                    &cred.passkey,
                    &cred.name,
                    &created_at,
                    &last_used_at,
                ],
            )
            .await
            .map_err(constraint_error)
            .map(drop)
    }

    /// Takes the account row lock first, which serializes deletions, so the counts stay true
    /// until commit.
    async fn credential_counts(
        &self,
        account: AccountId,
        credential_id: &[u8],
    ) -> Fallible<(i64, i64)> {
        let sql = "SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE";
        if query_opt(self.0, sql, &[&&account.0[..]], |_| Ok(()))
            .await?
            .is_none()
        {
            return Ok((0, 0));
        }
        let counts = self
            .0
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE credential_id = $2)
                 FROM credentials WHERE account = $1",
                &[&&account.0[..], &credential_id],
            )
            .await?;
        Ok((counts.value(0)?, counts.value(1)?))
    }

    async fn remove_credential(&self, account: AccountId, credential_id: &[u8]) -> Fallible<()> {
        for sql in [
            "DELETE FROM sessions WHERE account = $1 AND credential_id = $2",
            "DELETE FROM credentials WHERE account = $1 AND credential_id = $2",
        ] {
            execute(self.0, sql, &[&&account.0[..], &credential_id]).await?;
        }
        Ok(())
    }
}

impl<C: GenericClient + Sync> TokenSql for Statements<'_, C> {
    /// Locks the account row for the rest of the transaction, as record writes do.
    async fn issued(&self, account: AccountId, period: i64) -> Fallible<i64> {
        let sql = "SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE";
        query_opt(self.0, sql, &[&&account.0[..]], |_| Ok(()))
            .await?
            .ok_or(StoreError::NoAccount)?;
        let sql = "SELECT issued FROM token_issuance WHERE account = $1 AND period = $2";
        let issued =
            query_opt(self.0, sql, &[&&account.0[..], &period], |row| row.value(0)).await?;
        Ok(issued.unwrap_or(0))
    }

    async fn set_issued(&self, account: AccountId, period: i64, issued: i64) -> Fallible<()> {
        execute(
            self.0,
            "DELETE FROM token_issuance WHERE account = $1 AND period <> $2",
            &[&&account.0[..], &period],
        )
        .await?;
        execute(
            self.0,
            "INSERT INTO token_issuance (account, period, issued) VALUES ($1, $2, $3)
             ON CONFLICT (account, period) DO UPDATE SET issued = excluded.issued",
            &[&&account.0[..], &period, &issued],
        )
        .await
        .map(drop)
    }
}

/// The advisory lock key of an owner's puts: a 64-bit FNV-1a hash of the owner, the same in
/// every server process. Two owners whose keys collide only wait for each other's puts.
fn owner_lock(owner: &PendingOwner) -> i64 {
    let (tag, key): (u8, &[u8]) = match owner {
        PendingOwner::Account(account) => (b'a', &account.0),
        PendingOwner::Net(net) => (b'n', net.as_bytes()),
    };
    let hash = std::iter::once(tag)
        .chain(key.iter().copied())
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    i64::from_be_bytes(hash.to_be_bytes())
}

/// See the module comment for why these keep the caps under racing servers.
impl<C: GenericClient + Sync> PendingSql for Statements<'_, C> {
    async fn lock_owner(&self, owner: &PendingOwner) -> Fallible<()> {
        let sql = "SELECT pg_advisory_xact_lock($1)";
        execute(self.0, sql, &[&owner_lock(owner)]).await?;
        if let PendingOwner::Account(account) = owner {
            // The lock the entry's foreign key takes anyway, taken now: the account cannot be
            // deleted before this put ends, and a missing one is refused before any count.
            let sql = "SELECT 1 FROM accounts WHERE id = $1 FOR KEY SHARE";
            query_opt(self.0, sql, &[&&account.0[..]], |_| Ok(()))
                .await?
                .ok_or(StoreError::NoAccount)?;
        }
        Ok(())
    }

    async fn forget_expired(&self, kind: PendingKind, now: i64) -> Fallible<u64> {
        execute(
            self.0,
            "DELETE FROM pending WHERE kind = $1 AND id IN (
                SELECT id FROM pending WHERE kind = $1 AND expires_at <= $2
                FOR UPDATE SKIP LOCKED)",
            &[&driver::pending_kind(kind), &now],
        )
        .await
    }

    async fn held(&self, kind: PendingKind, owner: &PendingOwner, now: i64) -> Fallible<i64> {
        let sql = match owner {
            PendingOwner::Account(_) => {
                "SELECT count(*) FROM pending WHERE account = $1 AND kind = $2 AND expires_at > $3"
            }
            PendingOwner::Net(_) => {
                "SELECT count(*) FROM pending WHERE net = $1 AND kind = $2 AND expires_at > $3"
            }
        };
        let (account, net) = driver::owner_columns(owner);
        let params: Params<'_> = &[&account.or(net), &driver::pending_kind(kind), &now];
        let held = query_opt(self.0, sql, params, |row| row.value(0)).await?;
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
            self.0,
            "DELETE FROM pending WHERE kind = $1 AND id IN (
                SELECT id FROM pending WHERE account = $2 AND kind = $1 AND expires_at > $3
                ORDER BY created_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)",
            &[&driver::pending_kind(kind), &&account.0[..], &now, &count],
        )
        .await
        .map(drop)
    }

    async fn live(&self, kind: PendingKind, now: i64, cap: i64) -> Fallible<i64> {
        let live = query_opt(
            self.0,
            "SELECT count(*) FROM (
                SELECT 1 FROM pending WHERE kind = $1 AND expires_at > $2 LIMIT $3) AS live",
            &[&driver::pending_kind(kind), &now, &cap],
            |row| row.value(0),
        )
        .await?;
        Ok(live.unwrap_or(0))
    }

    async fn insert_pending(&self, entry: &NewPending<'_>) -> Fallible<()> {
        let (account, net) = driver::owner_columns(&entry.owner);
        self.0
            .execute(
                "INSERT INTO pending (kind, id, account, net, value, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &driver::pending_kind(entry.kind),
                    &&entry.id[..],
                    &account,
                    &net,
                    &entry.value,
                    &entry.created_at,
                    &entry.expires_at,
                ],
            )
            .await
            .map_err(constraint_error)
            .map(drop)
    }
}

impl<C: GenericClient + Sync> BucketSql for Statements<'_, C> {
    /// Inserts `fresh` or row-locks the stored bucket in one statement, so no purge or other
    /// caller can come between reading the bucket and storing it again.
    async fn bucket(&self, key: &[u8], fresh: Bucket) -> Fallible<Bucket> {
        let [tokens, refilled_at] = driver::bucket_columns(fresh)?;
        let stored = query_opt(
            self.0,
            "INSERT INTO rate_buckets (bucket, tokens, refilled_at) VALUES ($1, $2, $3)
             ON CONFLICT (bucket) DO UPDATE SET tokens = rate_buckets.tokens
             RETURNING tokens, refilled_at",
            &[&key, &tokens, &refilled_at],
            driver::bucket,
        )
        .await?;
        stored.ok_or_else(|| failed("the bucket upsert returned no row"))
    }

    async fn save_bucket(&self, key: &[u8], bucket: Bucket) -> Fallible<()> {
        let [tokens, refilled_at] = driver::bucket_columns(bucket)?;
        execute(
            self.0,
            "UPDATE rate_buckets SET tokens = $2, refilled_at = $3 WHERE bucket = $1",
            &[&key, &tokens, &refilled_at],
        )
        .await
        .map(drop)
    }

    async fn forget_idle(&self, before: i64) -> Fallible<u64> {
        let sql = "DELETE FROM rate_buckets WHERE refilled_at < $1";
        execute(self.0, sql, &[&before]).await
    }
}

impl<C: GenericClient + Sync> RecordSql for Statements<'_, C> {
    /// Locks the account row for the rest of the transaction.
    async fn account_state(&self, account: AccountId) -> Fallible<AccountState> {
        let sql =
            "SELECT seq, used_bytes, used_records FROM accounts WHERE id = $1 FOR NO KEY UPDATE";
        query_opt(self.0, sql, &[&&account.0[..]], driver::account_state)
            .await?
            .ok_or(StoreError::NoAccount.into())
    }

    async fn save_account_state(&self, account: AccountId, state: AccountState) -> Fallible<()> {
        let [seq, bytes, records] = driver::account_state_columns(state)?;
        execute(
            self.0,
            "UPDATE accounts SET seq = $2, used_bytes = $3, used_records = $4 WHERE id = $1",
            &[&&account.0[..], &seq, &bytes, &records],
        )
        .await
        .map(drop)
    }

    async fn existing_record(&self, account: AccountId, id: &str) -> Fallible<Option<Existing>> {
        query_opt(
            self.0,
            "SELECT version, octet_length(ciphertext)::bigint FROM records
             WHERE account = $1 AND id = $2",
            &[&&account.0[..], &id],
            driver::existing,
        )
        .await
    }

    async fn write_record(
        &self,
        account: AccountId,
        write: &RecordWrite<'_>,
        planned: &Planned,
    ) -> Fallible<()> {
        let [version, seq] = driver::planned_columns(planned)?;
        execute(
            self.0,
            "INSERT INTO records (account, id, grp, kind, version, seq, ciphertext)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (account, id) DO UPDATE SET grp = excluded.grp,
                kind = excluded.kind, version = excluded.version, seq = excluded.seq,
                ciphertext = excluded.ciphertext",
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
        .map(drop)
    }

    async fn write_marker(&self, account: AccountId, id: &str, planned: &Planned) -> Fallible<()> {
        let [version, seq] = driver::planned_columns(planned)?;
        execute(
            self.0,
            "UPDATE records SET ciphertext = NULL, version = $3, seq = $4
             WHERE account = $1 AND id = $2",
            &[&&account.0[..], &id, &version, &seq],
        )
        .await
        .map(drop)
    }

    async fn live_members(
        &self,
        account: AccountId,
        group: &str,
    ) -> Fallible<Vec<(String, Existing)>> {
        query(
            self.0,
            "SELECT version, octet_length(ciphertext)::bigint, id FROM records
             WHERE account = $1 AND grp = $2 AND ciphertext IS NOT NULL
             ORDER BY seq",
            &[&&account.0[..], &group],
            driver::group_member,
        )
        .await
    }

    async fn change_sizes(
        &self,
        account: AccountId,
        cursor: i64,
        rows: i64,
    ) -> Fallible<Vec<(u64, u64)>> {
        query(
            self.0,
            "SELECT seq, coalesce(octet_length(ciphertext), 0)::bigint FROM records
             WHERE account = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&&account.0[..], &cursor, &rows],
            driver::seq_and_size,
        )
        .await
    }

    async fn change_records(
        &self,
        account: AccountId,
        cursor: i64,
        end: i64,
    ) -> Fallible<Vec<RecordOut>> {
        query(
            self.0,
            "SELECT id, grp, kind, version, seq, ciphertext FROM records
             WHERE account = $1 AND seq > $2 AND seq <= $3 ORDER BY seq",
            &[&&account.0[..], &cursor, &end],
            driver::record,
        )
        .await
    }
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
        let account = NewAccount {
            id,
            created_at: to_db(now, "creation time")?,
            recovery_lookup: &recovery_lookup,
            recovery_verifier: &recovery_verifier,
        };
        self.write("create_account", async |tx| {
            ops::create_account(&Statements(tx), account, &first).await
        })
        .await
    }

    async fn account(&self, id: AccountId) -> Result<Option<AccountRow>> {
        self.call("account", async |client| {
            query_opt(
                client,
                "SELECT created_at, used_bytes, used_records, recovery_lookup IS NOT NULL
                 FROM accounts WHERE id = $1",
                &[&&id.0[..]],
                |row| driver::account(id, row),
            )
            .await
        })
        .await
    }

    async fn delete_account(&self, id: AccountId) -> Result<()> {
        self.write("delete_account", async |tx| {
            let locked = tx
                .query_opt(
                    "SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE",
                    &[&&id.0[..]],
                )
                .await?;
            if locked.is_none() {
                return Err(StoreError::NoAccount.into());
            }
            for sql in [
                "DELETE FROM records WHERE account = $1",
                "DELETE FROM sessions WHERE account = $1",
                "DELETE FROM token_issuance WHERE account = $1",
                "DELETE FROM pending WHERE account = $1",
                "DELETE FROM credentials WHERE account = $1",
                "DELETE FROM accounts WHERE id = $1",
            ] {
                tx.execute(sql, &[&&id.0[..]]).await?;
            }
            Ok(())
        })
        .await
    }

    async fn add_credential(&self, account: AccountId, cred: CredentialRow) -> Result<()> {
        self.call("add_credential", async |client| {
            Statements(client).insert_credential(account, &cred).await
        })
        .await
    }

    async fn credentials(&self, account: AccountId) -> Result<Vec<CredentialRow>> {
        self.call("credentials", async |client| {
            query(
                client,
                "SELECT credential_id, passkey, name, created_at, last_used_at
                 FROM credentials WHERE account = $1 ORDER BY created_at, credential_id",
                &[&&account.0[..]],
                driver::credential,
            )
            .await
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
        let now = to_db(now, "last use time")?;
        self.call("touch_credential", async |client| {
            execute(
                client,
                "UPDATE credentials SET passkey = $3, last_used_at = $4
                 WHERE account = $1 AND credential_id = $2",
                &[&&account.0[..], &credential_id, &passkey, &now],
            )
            .await
        })
        .await
        .map(drop)
    }

    async fn delete_credential(&self, account: AccountId, credential_id: &[u8]) -> Result<bool> {
        self.write("delete_credential", async |tx| {
            ops::delete_credential(&Statements(tx), account, credential_id).await
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
        self.write("rotate_recovery", async |tx| {
            // First, so a lookup in use is reported before the record is considered, as SQLite
            // does; the row lock it takes also covers the record write below.
            let updated = tx
                .execute(
                    "UPDATE accounts SET recovery_lookup = $2, recovery_verifier = $3 WHERE id = $1",
                    &[&&account.0[..], &&lookup[..], &&verifier[..]],
                )
                .await
                .map_err(constraint_error)?;
            if updated == 0 {
                return Err(StoreError::NoAccount.into());
            }
            ops::put(&Statements(tx), account, &wrap, quota).await
        })
        .await
    }

    async fn find_recovery(&self, lookup: &[u8; 32]) -> Result<Option<(AccountId, [u8; 32])>> {
        self.call("find_recovery", async |client| {
            query_opt(
                client,
                "SELECT id, recovery_verifier FROM accounts WHERE recovery_lookup = $1",
                &[&&lookup[..]],
                driver::recovery,
            )
            .await
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
        let expires_at = to_db(expires_at, "session expiry")?;
        self.call("create_session", async |client| {
            client
                .execute(
                    "INSERT INTO sessions (token_hash, account, credential_id, expires_at)
                     VALUES ($1, $2, $3, $4)",
                    &[&&token_hash[..], &&account.0[..], &credential, &expires_at],
                )
                .await
                .map_err(constraint_error)
        })
        .await
        .map(drop)
    }

    async fn session(&self, token_hash: &[u8; 32], now: u64) -> Result<Option<AccountId>> {
        let now = to_db(now, "current time")?;
        self.call("session", async |client| {
            query_opt(
                client,
                "SELECT account FROM sessions WHERE token_hash = $1 AND expires_at > $2",
                &[&&token_hash[..], &now],
                driver::account_id,
            )
            .await
        })
        .await
    }

    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<()> {
        self.call("delete_session", async |client| {
            let sql = "DELETE FROM sessions WHERE token_hash = $1";
            execute(client, sql, &[&&token_hash[..]]).await
        })
        .await
        .map(drop)
    }

    async fn purge_sessions(&self, now: u64) -> Result<u64> {
        let now = to_db(now, "current time")?;
        self.call("purge_sessions", async |client| {
            let sql = "DELETE FROM sessions WHERE expires_at <= $1";
            execute(client, sql, &[&now]).await
        })
        .await
    }

    async fn put_record(
        &self,
        account: AccountId,
        write: RecordWrite<'_>,
        quota: Quota,
    ) -> Result<PutResult> {
        self.write("put_record", async |tx| {
            ops::put(&Statements(tx), account, &write, quota).await
        })
        .await
    }

    async fn get_record(&self, account: AccountId, id: &str) -> Result<Option<RecordOut>> {
        self.call("get_record", async |client| {
            query_opt(
                client,
                "SELECT id, grp, kind, version, seq, ciphertext FROM records
                 WHERE account = $1 AND id = $2",
                &[&&account.0[..], &id],
                driver::record,
            )
            .await
        })
        .await
    }

    async fn delete_record(
        &self,
        account: AccountId,
        id: &str,
        expected_version: Option<u64>,
    ) -> Result<bool> {
        self.write("delete_record", async |tx| {
            ops::delete(&Statements(tx), account, id, expected_version).await
        })
        .await
    }

    async fn delete_group(&self, account: AccountId, group: &str) -> Result<u64> {
        self.write("delete_group", async |tx| {
            ops::delete_group(&Statements(tx), account, group).await
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
        self.call("changes", async |client| {
            ops::changes(&Statements(client), account, since, limit, max_bytes).await
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
        self.write("take_tokens", async |tx| {
            ops::take_tokens(&Statements(tx), account, period, count, limit).await
        })
        .await
    }

    async fn spend_token(&self, key_id: &[u8; 32], nonce: &[u8; 32]) -> Result<bool> {
        self.call("spend_token", async |client| {
            execute(client, ops::SPEND_TOKEN, &[&&key_id[..], &&nonce[..]])
                .await
                .map(|n| n == 1)
        })
        .await
    }

    async fn forget_spent_tokens(&self, keep: &[u8; 32]) -> Result<u64> {
        self.call("forget_spent_tokens", async |client| {
            execute(client, ops::FORGET_SPENT_TOKENS, &[&&keep[..]]).await
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
        let entry = NewPending {
            kind,
            id,
            owner,
            value,
            created_at: to_db(now_ms, "current time")?,
            expires_at: to_db(expires_ms, "expiry")?,
        };
        self.write("put_pending", async |tx| {
            ops::put_pending(&Statements(tx), entry, limits).await
        })
        .await
    }

    async fn take_pending(
        &self,
        kind: PendingKind,
        id: &[u8; 32],
        now_ms: u64,
    ) -> Result<Option<(Vec<u8>, PendingOwner)>> {
        let now = to_db(now_ms, "current time")?;
        self.call("take_pending", async |client| {
            let taken = query_opt(
                client,
                "DELETE FROM pending WHERE kind = $1 AND id = $2
                 RETURNING value, account, net, expires_at > $3",
                &[&driver::pending_kind(kind), &&id[..], &now],
                driver::taken_pending,
            )
            .await?;
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
        self.write("rate_limit", async |tx| {
            ops::rate_limit(&Statements(tx), key, now_ms, per_minute, burst).await
        })
        .await
    }

    /// Each statement commits on its own: none needs the others' to be right.
    async fn purge_transient(&self, now_ms: u64, idle_before_ms: u64) -> Result<u64> {
        self.call("purge_transient", async |client| {
            ops::purge_transient(&Statements(client), now_ms, idle_before_ms).await
        })
        .await
    }
}
