//! What the two backends share where they meet their database drivers: the context every
//! failure carries, and the rows they read and write. Column order, the range checks between
//! the databases' signed 64-bit integers and the API's `u64`, and the fixed-size byte values are
//! stated here once; a backend only says how its driver fetches one column ([`Columns`]) and
//! what of its driver's errors may be shown (its `From` conversion into [`Failure`]). The SQL
//! itself stays in each backend.

use std::fmt::Display;

use sotto_api::{RecordOut, Usage};

use crate::rules::{AccountState, Bucket, Existing, Planned};
use crate::{
    AccountId, AccountRow, CredentialRow, NetKey, PendingKind, PendingOwner, Result, StoreError,
};

/// What went wrong inside an operation, before the operation's name is attached: work inside
/// an operation returns this, and the operation's entry point adds its name ([`Context`]), so
/// every backend error names its operation and no helper needs to be told it.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A store error, passed on as it is.
    Store(StoreError),
    /// A database failure, described without any bound value.
    Backend(String),
}

pub(crate) type Fallible<T> = std::result::Result<T, Failure>;

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::Store(e)
    }
}

pub(crate) fn failed(why: impl Display) -> Failure {
    Failure::Backend(why.to_string())
}

/// Names the operation a failure happened in.
pub(crate) trait Context<T> {
    fn context(self, op: &'static str) -> Result<T>;
}

impl<T, E: Into<Failure>> Context<T> for std::result::Result<T, E> {
    fn context(self, op: &'static str) -> Result<T> {
        self.map_err(|e| match e.into() {
            Failure::Store(e) => e,
            Failure::Backend(why) => StoreError::Backend(format!("{op}: {why}")),
        })
    }
}

/// A column type both drivers decode, so one decoder below serves both.
pub(crate) trait ColumnType:
    rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>
{
}

impl<T> ColumnType for T where
    T: rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>
{
}

/// A result row of either driver.
pub(crate) trait Columns {
    fn value<T: ColumnType>(&self, index: usize) -> Fallible<T>;
}

/// Values go to databases as signed 64-bit integers.
pub(crate) fn to_db(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value)
        .map_err(|_| StoreError::Backend(format!("{what} ({value}) does not fit the database")))
}

pub(crate) fn from_db(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value)
        .map_err(|_| StoreError::Backend(format!("the database holds a negative {what}")))
}

fn opt_from_db(value: Option<i64>, what: &str) -> Result<Option<u64>> {
    value.map(|v| from_db(v, what)).transpose()
}

fn array32(bytes: Vec<u8>, what: &str) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| StoreError::Backend(format!("the stored {what} is not 32 bytes")))
}

/// Column 0: an account id.
pub(crate) fn account_id(row: &impl Columns) -> Fallible<AccountId> {
    to_account_id(row.value(0)?)
}

fn to_account_id(bytes: Vec<u8>) -> Fallible<AccountId> {
    let id = <[u8; 16]>::try_from(bytes.as_slice())
        .map_err(|_| StoreError::Backend("a stored account id is not 16 bytes".into()))?;
    Ok(AccountId(id))
}

/// `id, recovery_verifier`.
pub(crate) fn recovery(row: &impl Columns) -> Fallible<(AccountId, [u8; 32])> {
    Ok((
        account_id(row)?,
        array32(row.value(1)?, "recovery verifier")?,
    ))
}

/// `created_at, used_bytes, used_records, recovery_lookup IS NOT NULL` of account `id`.
pub(crate) fn account(id: AccountId, row: &impl Columns) -> Fallible<AccountRow> {
    Ok(AccountRow {
        id,
        created_at: from_db(row.value(0)?, "creation time")?,
        has_recovery: row.value(3)?,
        usage: usage(row, 1)?,
    })
}

/// `seq, used_bytes, used_records`.
pub(crate) fn account_state(row: &impl Columns) -> Fallible<AccountState> {
    Ok(AccountState {
        seq: from_db(row.value(0)?, "sequence number")?,
        usage: usage(row, 1)?,
    })
}

/// `used_bytes, used_records` from column `first` on.
fn usage(row: &impl Columns, first: usize) -> Fallible<Usage> {
    Ok(Usage {
        bytes: from_db(row.value(first)?, "byte count")?,
        records: from_db(row.value(first + 1)?, "record count")?,
    })
}

/// The account's `seq, used_bytes, used_records` as stored.
pub(crate) fn account_state_columns(state: AccountState) -> Result<[i64; 3]> {
    Ok([
        to_db(state.seq, "sequence number")?,
        to_db(state.usage.bytes, "byte count")?,
        to_db(state.usage.records, "record count")?,
    ])
}

/// `version, length of the ciphertext` (NULL for a marker).
pub(crate) fn existing(row: &impl Columns) -> Fallible<Existing> {
    Ok(Existing {
        version: from_db(row.value(0)?, "record version")?,
        live_bytes: opt_from_db(row.value(1)?, "ciphertext length")?,
    })
}

/// `version, length of the ciphertext, id`: a group's record.
pub(crate) fn group_member(row: &impl Columns) -> Fallible<(String, Existing)> {
    Ok((row.value(2)?, existing(row)?))
}

/// A written record's `version, seq` as stored.
pub(crate) fn planned_columns(planned: &Planned) -> Result<[i64; 2]> {
    Ok([
        to_db(planned.version, "record version")?,
        to_db(planned.account.seq, "sequence number")?,
    ])
}

/// `id, grp, kind, version, seq, ciphertext`.
pub(crate) fn record(row: &impl Columns) -> Fallible<RecordOut> {
    Ok(RecordOut {
        id: row.value(0)?,
        group: row.value(1)?,
        kind: row.value(2)?,
        version: from_db(row.value(3)?, "record version")?,
        seq: from_db(row.value(4)?, "sequence number")?,
        ciphertext: row.value(5)?,
    })
}

/// `seq, length of the ciphertext` (0 for a marker): a change's place and size in the feed.
pub(crate) fn seq_and_size(row: &impl Columns) -> Fallible<(u64, u64)> {
    Ok((
        from_db(row.value(0)?, "sequence number")?,
        from_db(row.value(1)?, "ciphertext length")?,
    ))
}

/// `credential_id, passkey, name, created_at, last_used_at`.
pub(crate) fn credential(row: &impl Columns) -> Fallible<CredentialRow> {
    Ok(CredentialRow {
        credential_id: row.value(0)?,
        passkey: row.value(1)?,
        name: row.value(2)?,
        created_at: from_db(row.value(3)?, "creation time")?,
        last_used_at: opt_from_db(row.value(4)?, "last use time")?,
    })
}

/// A credential's `created_at, last_used_at` as stored.
pub(crate) fn credential_times(cred: &CredentialRow) -> Result<(i64, Option<i64>)> {
    Ok((
        to_db(cred.created_at, "creation time")?,
        cred.last_used_at
            .map(|t| to_db(t, "last use time"))
            .transpose()?,
    ))
}

/// A pending entry's `kind` as stored.
pub(crate) fn pending_kind(kind: PendingKind) -> i64 {
    match kind {
        PendingKind::Ceremony => 0,
        PendingKind::Proof => 1,
    }
}

/// A pending entry's owner as stored: `account, net`, one of them NULL.
pub(crate) fn owner_columns(owner: &PendingOwner) -> (Option<&[u8]>, Option<&[u8]>) {
    match owner {
        PendingOwner::Account(account) => (Some(&account.0), None),
        PendingOwner::Net(net) => (None, Some(net.as_bytes())),
    }
}

/// `value, account, net, expires_at > now` of a taken entry: its value and owner if it was
/// still live.
pub(crate) fn taken_pending(row: &impl Columns) -> Fallible<Option<(Vec<u8>, PendingOwner)>> {
    let live: bool = row.value(3)?;
    if !live {
        return Ok(None);
    }
    let owner = match (row.value(1)?, row.value::<Option<Vec<u8>>>(2)?) {
        (Some(account), None) => PendingOwner::Account(to_account_id(account)?),
        (None, Some(net)) => PendingOwner::Net(NetKey::new(&net).ok_or_else(|| {
            StoreError::Backend("a stored network key is not 1 to 16 bytes".into())
        })?),
        _ => return Err(failed("a stored pending entry has not exactly one owner")),
    };
    Ok(Some((row.value(0)?, owner)))
}

/// `tokens, refilled_at`.
pub(crate) fn bucket(row: &impl Columns) -> Fallible<Bucket> {
    Ok(Bucket {
        tokens: from_db(row.value(0)?, "token count")?,
        refilled_at: from_db(row.value(1)?, "refill time")?,
    })
}

/// A bucket's `tokens, refilled_at` as stored.
pub(crate) fn bucket_columns(bucket: Bucket) -> Result<[i64; 2]> {
    Ok([
        to_db(bucket.tokens, "token count")?,
        to_db(bucket.refilled_at, "refill time")?,
    ])
}
