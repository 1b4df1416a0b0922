//! Short-lived server state in memory: WebAuthn ceremonies between their start and finish, and
//! the step-up proofs a fresh assertion earns. Each entry has an owner it is counted against,
//! so no owner can fill the table for everyone else:
//!
//! - a signed-in **account** holds at most [`PER_ACCOUNT`] entries, and a new one pushes out its
//!   own oldest: a loop in one account only ever cancels that account's ceremonies;
//! - a client **network** (unauthenticated sign-up and sign-in) holds at most [`PER_NET`], and
//!   is refused beyond that (pushing out would let one network cancel its neighbours' sign-ins
//!   behind the same address);
//! - the table holds at most its total, which only a flood from many accounts or networks at
//!   once reaches.
//!
//! Every entry lives for the same time, so the order of insertion is the order of expiry: a
//! queue yields the expired ones from its front, and no request scans the table. Entries taken
//! before they expire leave a stale id in the queue; the queue is compacted when stale ids
//! outnumber live ones, which costs at most twice the insertions since the last compaction.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use sotto_store::AccountId;

use crate::address::Net;

/// Entries one account may hold at once (ceremonies and proofs are separate tables).
pub(crate) const PER_ACCOUNT: usize = 4;
/// Unauthenticated ceremonies one client network may hold at once. Generous, for many people
/// behind one NAT; the rate limit per network bounds how fast it fills.
pub(crate) const PER_NET: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Owner {
    Account(AccountId),
    Net(Net),
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Full {
    /// This network already holds [`PER_NET`] entries.
    Net,
    /// The table holds its total.
    Table,
}

struct Entry<V> {
    value: V,
    born: Instant,
    owner: Owner,
}

pub(crate) struct Table<V> {
    ttl: Duration,
    max_total: usize,
    entries: HashMap<[u8; 32], Entry<V>>,
    /// Ids in insertion (= expiry) order; may hold ids already taken.
    order: VecDeque<[u8; 32]>,
    /// Each owner's live ids, oldest first (at most its cap, so scanning one is O(1)).
    owners: HashMap<Owner, VecDeque<[u8; 32]>>,
}

impl<V> Table<V> {
    pub(crate) fn new(ttl: Duration, max_total: usize) -> Self {
        Table {
            ttl,
            max_total,
            entries: HashMap::new(),
            order: VecDeque::new(),
            owners: HashMap::new(),
        }
    }

    fn remove(&mut self, id: &[u8; 32]) -> Option<Entry<V>> {
        let entry = self.entries.remove(id)?;
        if let Some(ids) = self.owners.get_mut(&entry.owner) {
            ids.retain(|i| i != id);
            if ids.is_empty() {
                self.owners.remove(&entry.owner);
            }
        }
        Some(entry)
    }

    fn purge(&mut self, now: Instant) {
        while let Some(id) = self.order.front().copied() {
            match self.entries.get(&id) {
                Some(e) if now.saturating_duration_since(e.born) < self.ttl => break,
                Some(_) => {
                    self.remove(&id);
                }
                None => {}
            }
            self.order.pop_front();
        }
        if self.order.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.order.retain(|id| entries.contains_key(id));
        }
    }

    /// Adds an entry under `id` (a hash of a random token, never reused).
    pub(crate) fn insert(
        &mut self,
        id: [u8; 32],
        owner: Owner,
        value: V,
        now: Instant,
    ) -> Result<(), Full> {
        self.purge(now);
        let held = self.owners.get(&owner).map_or(0, VecDeque::len);
        match owner {
            Owner::Account(_) if held >= PER_ACCOUNT => {
                if let Some(oldest) = self.owners.get(&owner).and_then(|ids| ids.front().copied()) {
                    self.remove(&oldest);
                }
            }
            Owner::Net(_) if held >= PER_NET => return Err(Full::Net),
            _ => {}
        }
        if self.entries.len() >= self.max_total {
            return Err(Full::Table);
        }
        self.entries.insert(
            id,
            Entry {
                value,
                born: now,
                owner,
            },
        );
        self.order.push_back(id);
        self.owners.entry(owner).or_default().push_back(id);
        Ok(())
    }

    /// Takes the entry out, once; an expired one is gone.
    pub(crate) fn take(&mut self, id: &[u8; 32], now: Instant) -> Option<(V, Owner)> {
        self.purge(now);
        self.remove(id).map(|e| (e.value, e.owner))
    }

    #[cfg(test)]
    fn sizes(&self) -> (usize, usize, usize) {
        (self.entries.len(), self.order.len(), self.owners.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> [u8; 32] {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&n.to_be_bytes());
        id
    }

    const A: Owner = Owner::Account(AccountId([1; 16]));
    const B: Owner = Owner::Account(AccountId([2; 16]));
    const N: Owner = Owner::Net(Net::V4([192, 0, 2, 1]));
    const M: Owner = Owner::Net(Net::V4([192, 0, 2, 2]));

    #[test]
    fn an_account_in_a_loop_only_pushes_out_its_own_entries() {
        let t = Instant::now();
        let mut table = Table::new(Duration::from_secs(300), 1000);
        table.insert(id(0), B, "b's", t).unwrap();
        for n in 1..=100 {
            table.insert(id(n), A, "a's", t).unwrap();
        }
        assert_eq!(table.take(&id(0), t), Some(("b's", B)));
        assert_eq!(table.take(&id(1), t), None, "pushed out by a's newer ones");
        assert_eq!(table.take(&id(100), t), Some(("a's", A)));
        assert_eq!(table.entries.len(), PER_ACCOUNT - 1);
    }

    #[test]
    fn a_network_is_refused_beyond_its_share_and_the_table_beyond_its_total() {
        let t = Instant::now();
        let mut table = Table::new(Duration::from_secs(300), PER_NET + 2);
        for n in 0..PER_NET as u32 {
            table.insert(id(n), N, (), t).unwrap();
        }
        assert_eq!(table.insert(id(1000), N, (), t), Err(Full::Net));
        table.insert(id(1001), M, (), t).unwrap();
        table.insert(id(1002), A, (), t).unwrap();
        assert_eq!(table.insert(id(1003), B, (), t), Err(Full::Table));
        // Finishing a ceremony frees its slot.
        assert!(table.take(&id(0), t).is_some());
        table.insert(id(1004), N, (), t).unwrap();
    }

    #[test]
    fn entries_expire_and_bookkeeping_stays_bounded() {
        let t = Instant::now();
        let ttl = Duration::from_secs(300);
        let mut table = Table::new(ttl, 100_000);
        table.insert(id(0), N, (), t).unwrap();
        assert_eq!(table.take(&id(0), t + ttl), None, "expired");
        // Start-and-finish in a loop leaves no stale ids beyond the compaction bound.
        for n in 1..10_000 {
            table.insert(id(n), A, (), t).unwrap();
            table.take(&id(n), t).unwrap();
        }
        let (entries, order, owners) = table.sizes();
        assert_eq!((entries, owners), (0, 0));
        assert!(order <= 64, "{order} stale ids");
        // Abandoned ones go once their time is up, from the front of the queue.
        for n in 0..50 {
            table
                .insert(
                    id(20_000 + n),
                    Owner::Net(Net::V4([10, 0, 0, n as u8])),
                    (),
                    t,
                )
                .unwrap();
        }
        table.insert(id(30_000), A, (), t + ttl).unwrap();
        assert_eq!(table.sizes(), (1, 1, 1));
    }
}
