//! The record rules both backends apply inside their write transactions: compare-and-swap on
//! versions, deletion markers, and quota accounting. Pure logic over values the backend has just
//! read under the account's write lock, so the two backends cannot drift apart.

use sotto_api::{Quota, Usage};

use crate::{Result, StoreError};

/// A record row as it stands before a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Existing {
    pub version: u64,
    /// Ciphertext length of a live record; `None` for a deletion marker.
    pub live_bytes: Option<u64>,
}

/// What a permitted write turns into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Planned {
    pub version: u64,
    pub seq: u64,
    pub usage: Usage,
}

/// Checks a put of `new_bytes` of ciphertext expecting `expected` against the current row, and
/// returns the record's new version, the account's next sequence number and its new usage.
pub(crate) fn plan_put(
    existing: Option<Existing>,
    expected: u64,
    new_bytes: u64,
    account_seq: u64,
    usage: Usage,
    quota: Quota,
) -> Result<Planned> {
    let current = existing.map_or(0, |e| e.version);
    if expected != current {
        return Err(StoreError::Conflict { expected, current });
    }
    let (freed_bytes, freed_records) = match existing.and_then(|e| e.live_bytes) {
        Some(bytes) => (bytes, 1),
        None => (0, 0),
    };
    let records = usage
        .records
        .checked_sub(freed_records)
        .and_then(|r| r.checked_add(1))
        .ok_or_else(|| corrupt("the account's record count"))?;
    let bytes = usage
        .bytes
        .checked_sub(freed_bytes)
        .and_then(|b| b.checked_add(new_bytes))
        .ok_or_else(|| corrupt("the account's byte count"))?;
    if records > quota.max_records && records > usage.records {
        return Err(StoreError::QuotaExceeded("records"));
    }
    if bytes > quota.max_bytes && bytes > usage.bytes {
        return Err(StoreError::QuotaExceeded("bytes"));
    }
    Ok(Planned {
        version: next(current, "the record's version")?,
        seq: next(account_seq, "the account's change sequence")?,
        usage: Usage { bytes, records },
    })
}

/// Checks a deletion; `None` when there is nothing live to delete (absent, or already a marker).
pub(crate) fn plan_delete(
    existing: Option<Existing>,
    expected: Option<u64>,
    account_seq: u64,
    usage: Usage,
) -> Result<Option<Planned>> {
    let Some(Existing {
        version,
        live_bytes: Some(bytes),
    }) = existing
    else {
        return Ok(None);
    };
    if let Some(expected) = expected {
        if expected != version {
            return Err(StoreError::Conflict {
                expected,
                current: version,
            });
        }
    }
    let usage = Usage {
        bytes: usage
            .bytes
            .checked_sub(bytes)
            .ok_or_else(|| corrupt("the account's byte count"))?,
        records: usage
            .records
            .checked_sub(1)
            .ok_or_else(|| corrupt("the account's record count"))?,
    };
    Ok(Some(Planned {
        version: next(version, "the record's version")?,
        seq: next(account_seq, "the account's change sequence")?,
        usage,
    }))
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

fn next(value: u64, what: &str) -> Result<u64> {
    value
        .checked_add(1)
        .filter(|v| i64::try_from(*v).is_ok())
        .ok_or_else(|| StoreError::Backend(format!("{what} is exhausted")))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!(
        "{what} disagrees with the account's records (usage bookkeeping is corrupt)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: Quota = Quota {
        max_bytes: 1000,
        max_records: 10,
    };

    fn usage(bytes: u64, records: u64) -> Usage {
        Usage { bytes, records }
    }

    #[test]
    fn creation_needs_version_zero() {
        let planned = plan_put(None, 0, 5, 7, usage(0, 0), ROOMY).unwrap();
        assert_eq!(
            planned,
            Planned {
                version: 1,
                seq: 8,
                usage: usage(5, 1)
            }
        );
        assert!(matches!(
            plan_put(None, 3, 5, 7, usage(0, 0), ROOMY),
            Err(StoreError::Conflict {
                expected: 3,
                current: 0
            })
        ));
    }

    #[test]
    fn overwrite_replaces_the_old_bytes() {
        let live = Existing {
            version: 4,
            live_bytes: Some(100),
        };
        let planned = plan_put(Some(live), 4, 30, 9, usage(150, 2), ROOMY).unwrap();
        assert_eq!(planned.version, 5);
        assert_eq!(planned.usage, usage(80, 2));
        assert!(matches!(
            plan_put(Some(live), 3, 30, 9, usage(150, 2), ROOMY),
            Err(StoreError::Conflict {
                expected: 3,
                current: 4
            })
        ));
    }

    #[test]
    fn put_over_marker_counts_a_new_record() {
        let marker = Existing {
            version: 6,
            live_bytes: None,
        };
        let planned = plan_put(Some(marker), 6, 10, 1, usage(0, 0), ROOMY).unwrap();
        assert_eq!((planned.version, planned.usage), (7, usage(10, 1)));
    }

    #[test]
    fn quotas_refuse_growth_only() {
        let tight = Quota {
            max_bytes: 100,
            max_records: 1,
        };
        assert!(matches!(
            plan_put(None, 0, 1, 0, usage(1, 1), tight),
            Err(StoreError::QuotaExceeded("records"))
        ));
        assert!(matches!(
            plan_put(None, 0, 101, 0, usage(0, 0), tight),
            Err(StoreError::QuotaExceeded("bytes"))
        ));
        let live = Existing {
            version: 1,
            live_bytes: Some(300),
        };
        let shrink = plan_put(Some(live), 1, 200, 0, usage(300, 1), tight).unwrap();
        assert_eq!(shrink.usage, usage(200, 1));
    }

    #[test]
    fn delete_frees_usage_and_skips_markers() {
        let live = Existing {
            version: 2,
            live_bytes: Some(40),
        };
        let planned = plan_delete(Some(live), Some(2), 5, usage(50, 2)).unwrap();
        assert_eq!(
            planned,
            Some(Planned {
                version: 3,
                seq: 6,
                usage: usage(10, 1)
            })
        );
        assert!(matches!(
            plan_delete(Some(live), Some(1), 5, usage(50, 2)),
            Err(StoreError::Conflict {
                expected: 1,
                current: 2
            })
        ));
        let marker = Existing {
            version: 3,
            live_bytes: None,
        };
        assert_eq!(
            plan_delete(Some(marker), Some(1), 5, usage(0, 0)).unwrap(),
            None
        );
        assert_eq!(plan_delete(None, None, 5, usage(0, 0)).unwrap(), None);
    }

    #[test]
    fn inconsistent_usage_is_an_error_not_a_wrap() {
        let live = Existing {
            version: 1,
            live_bytes: Some(10),
        };
        assert!(matches!(
            plan_delete(Some(live), None, 0, usage(5, 1)),
            Err(StoreError::Backend(_))
        ));
        assert!(matches!(
            plan_put(None, 0, 1, i64::MAX as u64, usage(0, 0), ROOMY),
            Err(StoreError::Backend(_))
        ));
    }
}
