//! The rules both backends apply inside their write transactions: compare-and-swap on
//! versions, deletion markers, quota accounting, keeping an account's last credential, the caps
//! on pending entries and the token buckets. Pure logic over values the backend has just read
//! under the lock that covers them, so the two backends cannot drift apart.

use sotto_api::{Quota, Usage};

use crate::{PendingLimits, PendingOwner, PendingPut, Result, StoreError};

/// An account's write state: its last change sequence number and its usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AccountState {
    pub seq: u64,
    pub usage: Usage,
}

/// A record row as it stands before a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Existing {
    pub version: u64,
    /// Ciphertext length of a live record; `None` for a deletion marker.
    pub live_bytes: Option<u64>,
}

/// What a permitted write turns into: the record's new version, and the account's state after
/// the write, whose `seq` is the record's new sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Planned {
    pub version: u64,
    pub account: AccountState,
}

/// Checks a put of `new_len` bytes of ciphertext expecting `expected` against the current row.
pub(crate) fn plan_put(
    existing: Option<Existing>,
    expected: u64,
    new_len: usize,
    state: AccountState,
    quota: Quota,
) -> Result<Planned> {
    let new_bytes = u64::try_from(new_len)
        .map_err(|_| StoreError::Backend("put_record: ciphertext length overflows".into()))?;
    let current = existing.map_or(0, |e| e.version);
    if expected != current {
        return Err(StoreError::Conflict { expected, current });
    }
    let usage = state.usage;
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
    advance(current, state.seq, Usage { bytes, records })
}

/// Checks a deletion; `None` when there is nothing live to delete (absent, or already a marker).
pub(crate) fn plan_delete(
    existing: Option<Existing>,
    expected: Option<u64>,
    state: AccountState,
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
        bytes: state
            .usage
            .bytes
            .checked_sub(bytes)
            .ok_or_else(|| corrupt("the account's byte count"))?,
        records: state
            .usage
            .records
            .checked_sub(1)
            .ok_or_else(|| corrupt("the account's record count"))?,
    };
    advance(version, state.seq, usage).map(Some)
}

/// Plans deleting a group: `live` are its live records (id and row) in sequence order, each
/// turned into a marker one after the other. The last plan holds the account's final state.
pub(crate) fn plan_group_delete(
    live: Vec<(String, Existing)>,
    mut state: AccountState,
) -> Result<Vec<(String, Planned)>> {
    let mut markers = Vec::with_capacity(live.len());
    for (id, existing) in live {
        if let Some(planned) = plan_delete(Some(existing), None, state)? {
            state = planned.account;
            markers.push((id, planned));
        }
    }
    Ok(markers)
}

/// Whether a credential may go, given how many the account has and how many of them have the
/// id (0 or 1): false when it has no such credential, and never its last one.
pub(crate) fn may_delete_credential(count: i64, matching: i64) -> Result<bool> {
    if matching == 0 {
        return Ok(false);
    }
    if count == 1 {
        return Err(StoreError::LastCredential);
    }
    Ok(true)
}

/// Whether an owner holding `held` live entries of a kind may put another: `Ok(n)` when it may
/// once its `n` oldest are pushed out (an account at its cap; any other owner 0), or the
/// refusal (a network at its cap).
pub(crate) fn pending_room(
    owner: PendingOwner,
    held: u64,
    limits: PendingLimits,
) -> std::result::Result<u64, PendingPut> {
    match owner {
        PendingOwner::Account(_) if held >= u64::from(limits.per_account) => {
            Ok(held + 1 - u64::from(limits.per_account.max(1)))
        }
        PendingOwner::Net(_) if held >= u64::from(limits.per_net) => Err(PendingPut::NetFull),
        _ => Ok(0),
    }
}

/// One token in a bucket's count: counting in sixty-thousandths of a token, a refill of
/// `per_minute` tokens a minute adds exactly `per_minute` a millisecond, with no rounding.
pub(crate) const TOKEN: u64 = 60_000;

/// A token bucket as stored: its tokens in [`TOKEN`]ths, and the time (ms) it was last refilled
/// to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bucket {
    pub tokens: u64,
    pub refilled_at: u64,
}

fn capacity(burst: u32) -> u64 {
    u64::from(burst.max(1)) * TOKEN
}

impl Bucket {
    /// A bucket no request has used: `burst` (at least 1) tokens.
    pub(crate) fn full(burst: u32, now: u64) -> Bucket {
        Bucket {
            tokens: capacity(burst),
            refilled_at: now,
        }
    }
}

/// One request against `bucket` at `now`: refills it for the time since it was last refilled, up
/// to `burst` (at least 1) tokens, and takes a token if a whole one is there. A `now` before the
/// bucket's time adds nothing and leaves its time as it is, so a clock behind another's never
/// earns the difference twice. Returns the bucket to store and whether the request may go ahead.
pub(crate) fn take_token(bucket: Bucket, now: u64, per_minute: u32, burst: u32) -> (Bucket, bool) {
    let refill = now
        .saturating_sub(bucket.refilled_at)
        .saturating_mul(u64::from(per_minute));
    let tokens = bucket.tokens.saturating_add(refill).min(capacity(burst));
    let allowed = tokens >= TOKEN;
    let after = Bucket {
        tokens: if allowed { tokens - TOKEN } else { tokens },
        refilled_at: bucket.refilled_at.max(now),
    };
    (after, allowed)
}

/// Where a page of the change feed ends, from the sequence numbers and ciphertext lengths of up
/// to `limit + 1` changes after the cursor, in order: the last change it takes (`None`: none),
/// and whether changes follow it. It takes at most `limit`, and stops before a change that would
/// take it over `max_bytes`, but always takes the first.
pub(crate) fn page_end(sizes: &[(u64, u64)], limit: u32, max_bytes: u64) -> (Option<u64>, bool) {
    let mut total = 0u64;
    let mut taken = 0usize;
    for &(_, bytes) in sizes.iter().take(limit as usize) {
        total = total.saturating_add(bytes);
        if taken > 0 && total > max_bytes {
            break;
        }
        taken += 1;
    }
    let end = taken.checked_sub(1).map(|last| sizes[last].0);
    (end, taken < sizes.len())
}

fn advance(version: u64, seq: u64, usage: Usage) -> Result<Planned> {
    Ok(Planned {
        version: next(version, "the record's version")?,
        account: AccountState {
            seq: next(seq, "the account's change sequence")?,
            usage,
        },
    })
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

    fn state(seq: u64, bytes: u64, records: u64) -> AccountState {
        AccountState {
            seq,
            usage: usage(bytes, records),
        }
    }

    #[test]
    fn pages_end_at_the_limit_or_the_byte_budget_but_never_empty() {
        let sizes = [(3, 10), (4, 10), (8, 10), (9, 500)];
        assert_eq!(page_end(&sizes, 10, 1000), (Some(9), false));
        assert_eq!(page_end(&sizes, 2, 1000), (Some(4), true));
        assert_eq!(page_end(&sizes, 10, 25), (Some(4), true));
        assert_eq!(page_end(&sizes, 10, 30), (Some(8), true));
        assert_eq!(
            page_end(&sizes[3..], 10, 1),
            (Some(9), false),
            "a big first one"
        );
        assert_eq!(page_end(&sizes, 0, 1000), (None, true));
        assert_eq!(page_end(&[], 10, 1000), (None, false));
    }

    #[test]
    fn creation_needs_version_zero() {
        let planned = plan_put(None, 0, 5, state(7, 0, 0), ROOMY).unwrap();
        assert_eq!(
            planned,
            Planned {
                version: 1,
                account: state(8, 5, 1)
            }
        );
        assert!(matches!(
            plan_put(None, 3, 5, state(7, 0, 0), ROOMY),
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
        let planned = plan_put(Some(live), 4, 30, state(9, 150, 2), ROOMY).unwrap();
        assert_eq!(planned.version, 5);
        assert_eq!(planned.account.usage, usage(80, 2));
        assert!(matches!(
            plan_put(Some(live), 3, 30, state(9, 150, 2), ROOMY),
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
        let planned = plan_put(Some(marker), 6, 10, state(1, 0, 0), ROOMY).unwrap();
        assert_eq!((planned.version, planned.account.usage), (7, usage(10, 1)));
    }

    #[test]
    fn quotas_refuse_growth_only() {
        let tight = Quota {
            max_bytes: 100,
            max_records: 1,
        };
        assert!(matches!(
            plan_put(None, 0, 1, state(0, 1, 1), tight),
            Err(StoreError::QuotaExceeded("records"))
        ));
        assert!(matches!(
            plan_put(None, 0, 101, state(0, 0, 0), tight),
            Err(StoreError::QuotaExceeded("bytes"))
        ));
        let live = Existing {
            version: 1,
            live_bytes: Some(300),
        };
        let shrink = plan_put(Some(live), 1, 200, state(0, 300, 1), tight).unwrap();
        assert_eq!(shrink.account.usage, usage(200, 1));
    }

    #[test]
    fn delete_frees_usage_and_skips_markers() {
        let live = Existing {
            version: 2,
            live_bytes: Some(40),
        };
        let planned = plan_delete(Some(live), Some(2), state(5, 50, 2)).unwrap();
        assert_eq!(
            planned,
            Some(Planned {
                version: 3,
                account: state(6, 10, 1)
            })
        );
        assert!(matches!(
            plan_delete(Some(live), Some(1), state(5, 50, 2)),
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
            plan_delete(Some(marker), Some(1), state(5, 0, 0)).unwrap(),
            None
        );
        assert_eq!(plan_delete(None, None, state(5, 0, 0)).unwrap(), None);
    }

    #[test]
    fn inconsistent_usage_is_an_error_not_a_wrap() {
        let live = Existing {
            version: 1,
            live_bytes: Some(10),
        };
        assert!(matches!(
            plan_delete(Some(live), None, state(0, 5, 1)),
            Err(StoreError::Backend(_))
        ));
        assert!(matches!(
            plan_put(None, 0, 1, state(i64::MAX as u64, 0, 0), ROOMY),
            Err(StoreError::Backend(_))
        ));
    }

    #[test]
    fn group_deletes_chain_their_state() {
        let live = |version, bytes| Existing {
            version,
            live_bytes: Some(bytes),
        };
        let plans = plan_group_delete(
            vec![("a".into(), live(1, 10)), ("b".into(), live(4, 5))],
            state(7, 20, 3),
        )
        .unwrap();
        assert_eq!(
            plans,
            vec![
                (
                    "a".to_owned(),
                    Planned {
                        version: 2,
                        account: state(8, 10, 2)
                    }
                ),
                (
                    "b".to_owned(),
                    Planned {
                        version: 5,
                        account: state(9, 5, 1)
                    }
                ),
            ]
        );
        assert_eq!(plan_group_delete(vec![], state(7, 20, 3)).unwrap(), vec![]);
    }

    #[test]
    fn accounts_push_out_their_own_and_networks_are_refused() {
        use crate::{AccountId, NetKey};
        let limits = PendingLimits {
            per_account: 4,
            per_net: 64,
            total: 1000,
        };
        let account = PendingOwner::Account(AccountId([1; 16]));
        let net = PendingOwner::Net(NetKey::from([192, 0, 2, 1]));
        assert_eq!(pending_room(account, 3, limits), Ok(0));
        assert_eq!(pending_room(account, 4, limits), Ok(1));
        assert_eq!(pending_room(account, 6, limits), Ok(3), "a lowered cap");
        assert_eq!(pending_room(net, 63, limits), Ok(0));
        assert_eq!(pending_room(net, 64, limits), Err(PendingPut::NetFull));
        let none = PendingLimits {
            per_account: 0,
            per_net: 0,
            total: 0,
        };
        assert_eq!(
            pending_room(account, 1, none),
            Ok(1),
            "an account keeps one"
        );
        assert_eq!(pending_room(net, 0, none), Err(PendingPut::NetFull));
    }

    #[test]
    fn buckets_burst_refill_exactly_and_never_gain_from_an_early_clock() {
        // One token a second, three at once.
        let mut bucket = Bucket::full(3, 1000);
        for _ in 0..3 {
            let (after, allowed) = take_token(bucket, 1000, 60, 3);
            assert!(allowed);
            bucket = after;
        }
        assert_eq!(take_token(bucket, 1000, 60, 3), (bucket, false));
        assert!(!take_token(bucket, 1999, 60, 3).1);
        let (refilled, allowed) = take_token(bucket, 2000, 60, 3);
        assert!(allowed);
        assert_eq!(
            refilled,
            Bucket {
                tokens: 0,
                refilled_at: 2000
            }
        );
        // A clock 900 ms behind adds nothing and keeps the bucket's time, so the next request
        // on the right clock is not refilled for the same stretch twice.
        let (behind, allowed) = take_token(refilled, 1100, 60, 3);
        assert_eq!((behind, allowed), (refilled, false));
        assert!(!take_token(behind, 2999, 60, 3).1);
        // Long idleness fills to the burst and no further, however large the numbers.
        let (idle, _) = take_token(refilled, u64::MAX, u32::MAX, 3);
        assert_eq!(idle.tokens, 2 * TOKEN);
        // Without a rate nothing comes back; a burst of 0 still allows one.
        assert!(!take_token(bucket, u64::MAX, 0, 3).1);
        assert!(take_token(Bucket::full(0, 0), 0, 0, 0).1);
    }

    #[test]
    fn the_last_credential_stays() {
        assert!(may_delete_credential(2, 1).unwrap());
        assert!(!may_delete_credential(2, 0).unwrap());
        assert!(!may_delete_credential(0, 0).unwrap());
        assert!(matches!(
            may_delete_credential(1, 1),
            Err(StoreError::LastCredential)
        ));
    }
}
