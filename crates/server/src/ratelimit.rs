//! Token buckets per key (a client network for the unauthenticated endpoints, an account for
//! the ceremonies a session opens), so guessing or flooding costs time. The buckets live in the
//! store (`Store::rate_limit`), so a limit holds across every server of a deployment rather
//! than once per server: a client cannot multiply its rate by spreading its requests over the
//! servers behind a load balancer.

use sotto_store::{AccountId, NetKey, PendingOwner, Store};

use crate::address::Net;
use crate::error::Failure;

#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    /// Sustained requests per minute per key.
    pub per_minute: u32,
    /// Requests allowed at once before the rate applies.
    pub burst: u32,
}

impl RateLimit {
    /// How long an empty bucket takes to fill (a day, as good as forever, without a rate).
    pub(crate) fn refill(&self) -> std::time::Duration {
        let burst = u64::from(self.burst.max(1));
        match u64::from(self.per_minute) {
            0 => std::time::Duration::from_secs(24 * 3600),
            rate => std::time::Duration::from_millis(burst * 60_000 / rate + 1),
        }
    }
}

fn net_store_key(net: Net) -> NetKey {
    match net {
        Net::V4(a) => NetKey::from(a),
        Net::V6(p) => NetKey::from(p),
    }
}

/// The owner of an unauthenticated ceremony: the client's network.
pub(crate) fn net_owner(net: Net) -> PendingOwner {
    PendingOwner::Net(net_store_key(net))
}

/// The bucket of a client network.
pub(crate) fn net_key(net: Net) -> Vec<u8> {
    [b"net:".as_slice(), net_store_key(net).as_bytes()].concat()
}

/// The bucket of a signed-in account.
pub(crate) fn account_key(account: AccountId) -> Vec<u8> {
    [b"acct:".as_slice(), &account.0].concat()
}

/// One request against `key`'s bucket: refused with [`Failure::RateLimited`] when it is empty.
pub(crate) async fn allow(store: &dyn Store, key: &[u8], limit: RateLimit) -> Result<(), Failure> {
    let now = crate::accounts::now_ms();
    if store
        .rate_limit(key, now, limit.per_minute, limit.burst)
        .await?
    {
        Ok(())
    } else {
        Err(Failure::RateLimited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_networks_and_accounts_never_collide() {
        let v4 = net_key(Net::V4([192, 0, 2, 1]));
        let v6 = net_key(Net::V6([0x20, 0x01, 0xd, 0xb8, 0, 0, 0, 1]));
        let acct = account_key(AccountId([7; 16]));
        assert!(v4.starts_with(b"net:") && v6.starts_with(b"net:"));
        assert!(acct.starts_with(b"acct:"));
        assert_ne!(v4, v6);
        assert_eq!(v4.len(), 8);
        assert_eq!(v6.len(), 12);
    }

    #[test]
    fn an_empty_bucket_fills_in_burst_over_rate() {
        let limit = RateLimit {
            per_minute: 30,
            burst: 10,
        };
        assert_eq!(limit.refill().as_secs(), 20);
        let none = RateLimit {
            per_minute: 0,
            burst: 1,
        };
        assert_eq!(none.refill().as_secs(), 24 * 3600);
    }
}
