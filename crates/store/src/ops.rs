//! The operations both backends carry out the same way, written once over the few statements
//! each backend supplies ([`AccountSql`], [`RecordSql`], [`TokenSql`], [`PendingSql`],
//! [`BucketSql`]). A backend runs them inside its own transaction (or, for the change feed and
//! the purge, its own connection) and states only the SQL.
//!
//! The statements are `async` because PostgreSQL's driver is; SQLite's are synchronous work on
//! a blocking thread, so its implementation never waits and the backend drives these futures
//! to completion in one poll.

use sotto_api::{Changes, PutResult, Quota, RecordOut};

use crate::driver::{from_db, to_db, Fallible};
use crate::rules::{self, AccountState, Bucket, Existing, Planned};
use crate::{
    AccountId, CredentialRow, PendingKind, PendingLimits, PendingOwner, PendingPut, RecordWrite,
    StoreError, TokenGrant,
};

/// An account row to insert, its creation time as stored.
pub(crate) struct NewAccount<'a> {
    pub id: AccountId,
    pub created_at: i64,
    pub recovery_lookup: &'a [u8; 32],
    pub recovery_verifier: &'a [u8; 32],
}

/// The statements on accounts and credentials that the operations below use.
pub(crate) trait AccountSql {
    async fn credential_in_use(&self, credential_id: &[u8]) -> Fallible<bool>;
    /// `DuplicateRecovery` when another account has the recovery lookup.
    async fn insert_account(&self, account: &NewAccount<'_>) -> Fallible<()>;
    async fn insert_credential(&self, account: AccountId, cred: &CredentialRow) -> Fallible<()>;
    /// How many credentials the account has, and how many of them have the id; inside a
    /// write transaction, no other writer of the account gets past this until it ends.
    async fn credential_counts(
        &self,
        account: AccountId,
        credential_id: &[u8],
    ) -> Fallible<(i64, i64)>;
    /// Deletes the credential and the sessions opened with it.
    async fn remove_credential(&self, account: AccountId, credential_id: &[u8]) -> Fallible<()>;
}

/// The statements on records and the account's write state that the operations below use.
pub(crate) trait RecordSql {
    /// The account's write state, or `NoAccount`; inside a write transaction, no other writer
    /// of the account gets past this until the transaction ends.
    async fn account_state(&self, account: AccountId) -> Fallible<AccountState>;
    async fn save_account_state(&self, account: AccountId, state: AccountState) -> Fallible<()>;
    async fn existing_record(&self, account: AccountId, id: &str) -> Fallible<Option<Existing>>;
    /// Inserts or overwrites the record as `planned`.
    async fn write_record(
        &self,
        account: AccountId,
        write: &RecordWrite<'_>,
        planned: &Planned,
    ) -> Fallible<()>;
    /// Turns a live record into a deletion marker: its ciphertext is overwritten with NULL.
    async fn write_marker(&self, account: AccountId, id: &str, planned: &Planned) -> Fallible<()>;
    /// The group's live records (id and row), in sequence order.
    async fn live_members(
        &self,
        account: AccountId,
        group: &str,
    ) -> Fallible<Vec<(String, Existing)>>;
    /// `seq` and ciphertext length (0 for a marker) of at most `rows` changes after `cursor`.
    async fn change_sizes(
        &self,
        account: AccountId,
        cursor: i64,
        rows: i64,
    ) -> Fallible<Vec<(u64, u64)>>;
    /// The changes after `cursor` up to `end`, in sequence order.
    async fn change_records(
        &self,
        account: AccountId,
        cursor: i64,
        end: i64,
    ) -> Fallible<Vec<RecordOut>>;
}

/// `create_account` inside a write transaction. The credential is checked first, so both
/// backends report the same error when both values are taken.
pub(crate) async fn create_account(
    tx: &impl AccountSql,
    account: NewAccount<'_>,
    first: &CredentialRow,
) -> Fallible<()> {
    if tx.credential_in_use(&first.credential_id).await? {
        return Err(StoreError::DuplicateCredential.into());
    }
    tx.insert_account(&account).await?;
    tx.insert_credential(account.id, first).await
}

/// `delete_credential` inside a write transaction.
pub(crate) async fn delete_credential(
    tx: &impl AccountSql,
    account: AccountId,
    credential_id: &[u8],
) -> Fallible<bool> {
    let (count, matching) = tx.credential_counts(account, credential_id).await?;
    if !rules::may_delete_credential(count, matching)? {
        return Ok(false);
    }
    tx.remove_credential(account, credential_id).await?;
    Ok(true)
}

/// `put_record` inside a write transaction.
pub(crate) async fn put(
    tx: &impl RecordSql,
    account: AccountId,
    write: &RecordWrite<'_>,
    quota: Quota,
) -> Fallible<PutResult> {
    let state = tx.account_state(account).await?;
    let existing = tx.existing_record(account, write.id).await?;
    let planned = rules::plan_put(
        existing,
        write.expected_version,
        write.ciphertext.len(),
        state,
        quota,
    )?;
    tx.save_account_state(account, planned.account).await?;
    tx.write_record(account, write, &planned).await?;
    Ok(PutResult {
        version: planned.version,
        seq: planned.account.seq,
    })
}

/// `delete_record` inside a write transaction.
pub(crate) async fn delete(
    tx: &impl RecordSql,
    account: AccountId,
    id: &str,
    expected_version: Option<u64>,
) -> Fallible<bool> {
    let state = tx.account_state(account).await?;
    let existing = tx.existing_record(account, id).await?;
    let Some(planned) = rules::plan_delete(existing, expected_version, state)? else {
        return Ok(false);
    };
    tx.write_marker(account, id, &planned).await?;
    tx.save_account_state(account, planned.account).await?;
    Ok(true)
}

/// `delete_group` inside a write transaction.
pub(crate) async fn delete_group(
    tx: &impl RecordSql,
    account: AccountId,
    group: &str,
) -> Fallible<u64> {
    let state = tx.account_state(account).await?;
    let live = tx.live_members(account, group).await?;
    let markers = rules::plan_group_delete(live, state)?;
    let Some((_, last)) = markers.last() else {
        return Ok(0);
    };
    for (id, planned) in &markers {
        tx.write_marker(account, id, planned).await?;
    }
    tx.save_account_state(account, last.account).await?;
    Ok(markers.len() as u64)
}

/// One page of the change feed.
pub(crate) async fn changes(
    conn: &impl RecordSql,
    account: AccountId,
    since: u64,
    limit: u32,
    max_bytes: u64,
) -> Fallible<Changes> {
    let cursor = to_db(since, "cursor")?;
    // Sizes first, so no more ciphertext than one page holds is ever fetched. A change in the
    // range rewritten in between moves past it and comes on a later page.
    let sizes = conn
        .change_sizes(account, cursor, i64::from(limit) + 1)
        .await?;
    let (end, more) = rules::page_end(&sizes, limit, max_bytes);
    let records = match end {
        None => Vec::new(),
        Some(end) => {
            conn.change_records(account, cursor, to_db(end, "cursor")?)
                .await?
        }
    };
    Ok(Changes {
        records,
        next: end.unwrap_or(since),
        more,
    })
}

/// The statements on token issuance counts that [`take_tokens`] uses.
pub(crate) trait TokenSql {
    /// Tokens issued to the account in `period` (0 if none), or `NoAccount`; inside a write
    /// transaction, no other writer of the account gets past this until it ends.
    async fn issued(&self, account: AccountId, period: i64) -> Fallible<i64>;
    /// Sets the account's count for `period` and deletes its counts of other periods.
    async fn set_issued(&self, account: AccountId, period: i64, issued: i64) -> Fallible<()>;
}

/// Records a spent token, once: the row count says whether this call inserted it. SQLite, too,
/// reads `$1` as the first parameter.
pub(crate) const SPEND_TOKEN: &str =
    "INSERT INTO spent_tokens (key_id, nonce) VALUES ($1, $2) ON CONFLICT DO NOTHING";

pub(crate) const FORGET_SPENT_TOKENS: &str = "DELETE FROM spent_tokens WHERE key_id <> $1";

/// `take_tokens` inside a write transaction.
pub(crate) async fn take_tokens(
    tx: &impl TokenSql,
    account: AccountId,
    period: u64,
    count: u32,
    limit: u32,
) -> Fallible<TokenGrant> {
    let period = to_db(period, "token period")?;
    let issued = tx.issued(account, period).await?.max(0);
    let left = |issued: i64| u32::try_from((i64::from(limit) - issued).max(0)).unwrap_or(0);
    let wanted = issued + i64::from(count);
    if wanted > i64::from(limit) {
        return Ok(TokenGrant {
            granted: false,
            remaining: left(issued),
        });
    }
    tx.set_issued(account, period, wanted).await?;
    Ok(TokenGrant {
        granted: true,
        remaining: left(wanted),
    })
}

/// A pending entry to insert, its times as stored.
pub(crate) struct NewPending<'a> {
    pub kind: PendingKind,
    pub id: &'a [u8; 32],
    pub owner: PendingOwner,
    pub value: &'a [u8],
    pub created_at: i64,
    pub expires_at: i64,
}

/// The statements on pending entries that [`put_pending`] and [`purge_transient`] use. An entry
/// is live at `now` while `expires_at > now`; counts see live entries only, whatever the
/// forgetting left behind.
pub(crate) trait PendingSql {
    /// Inside a write transaction, holds off every other put for `owner` until it ends; fails
    /// with `NoAccount` when the owner is an account that does not exist.
    async fn lock_owner(&self, owner: &PendingOwner) -> Fallible<()>;
    /// Deletes entries of `kind` expired at `now`; returns how many.
    async fn forget_expired(&self, kind: PendingKind, now: i64) -> Fallible<u64>;
    /// The owner's live entries of `kind`.
    async fn held(&self, kind: PendingKind, owner: &PendingOwner, now: i64) -> Fallible<i64>;
    /// Deletes the account's `count` oldest live entries of `kind`.
    async fn push_out(
        &self,
        kind: PendingKind,
        account: AccountId,
        now: i64,
        count: i64,
    ) -> Fallible<()>;
    /// The live entries of `kind`, counted no further than `cap`.
    async fn live(&self, kind: PendingKind, now: i64, cap: i64) -> Fallible<i64>;
    async fn insert_pending(&self, entry: &NewPending<'_>) -> Fallible<()>;
}

/// `put_pending` inside a write transaction: the owner's count and its insert happen under the
/// owner's lock, so racing puts for one owner keep its cap exactly.
pub(crate) async fn put_pending(
    tx: &impl PendingSql,
    entry: NewPending<'_>,
    limits: PendingLimits,
) -> Fallible<PendingPut> {
    let now = entry.created_at;
    tx.lock_owner(&entry.owner).await?;
    tx.forget_expired(entry.kind, now).await?;
    let held = from_db(tx.held(entry.kind, &entry.owner, now).await?, "entry count")?;
    let push_out = match rules::pending_room(entry.owner, held, limits) {
        Ok(count) => count,
        Err(refused) => return Ok(refused),
    };
    // Only an account is ever given entries to push out.
    if let (PendingOwner::Account(account), true) = (entry.owner, push_out > 0) {
        let count = to_db(push_out, "entries to push out")?;
        tx.push_out(entry.kind, account, now, count).await?;
    }
    let total = i64::from(limits.total);
    if tx.live(entry.kind, now, total).await? >= total {
        return Ok(PendingPut::TableFull);
    }
    tx.insert_pending(&entry).await?;
    Ok(PendingPut::Stored)
}

/// The statements on token buckets that [`rate_limit`] and [`purge_transient`] use.
pub(crate) trait BucketSql {
    /// The bucket under `key`, `fresh` if there is none; inside a write transaction, no other
    /// caller gets past this for the key until it ends.
    async fn bucket(&self, key: &[u8], fresh: Bucket) -> Fallible<Bucket>;
    async fn save_bucket(&self, key: &[u8], bucket: Bucket) -> Fallible<()>;
    /// Deletes the buckets last refilled before `before`; returns how many.
    async fn forget_idle(&self, before: i64) -> Fallible<u64>;
}

/// `rate_limit` inside a write transaction.
pub(crate) async fn rate_limit(
    tx: &impl BucketSql,
    key: &[u8],
    now: u64,
    per_minute: u32,
    burst: u32,
) -> Fallible<bool> {
    let bucket = tx.bucket(key, Bucket::full(burst, now)).await?;
    let (after, allowed) = rules::take_token(bucket, now, per_minute, burst);
    tx.save_bucket(key, after).await?;
    Ok(allowed)
}

/// `purge_transient`: expired entries of both kinds, then idle buckets.
pub(crate) async fn purge_transient(
    conn: &(impl PendingSql + BucketSql),
    now: u64,
    idle_before: u64,
) -> Fallible<u64> {
    let now = to_db(now, "current time")?;
    let idle_before = to_db(idle_before, "idle time")?;
    let mut gone = 0;
    for kind in [PendingKind::Ceremony, PendingKind::Proof] {
        gone += conn.forget_expired(kind, now).await?;
    }
    Ok(gone + conn.forget_idle(idle_before).await?)
}
