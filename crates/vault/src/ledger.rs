//! The client's memory of record versions, to refuse rollbacks.
//!
//! The associated data of a record binds its version, so the server cannot relabel an old
//! ciphertext as new. It can still serve an old ciphertext under its true, older version; the
//! ledger remembers the highest version each record id was seen at and refuses anything lower.
//! Clients persist it (it holds only ids and numbers, which the server knows anyway).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::VaultError;

#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq, Debug)]
pub struct Ledger {
    seen: BTreeMap<String, u64>,
}

impl Ledger {
    /// Records that `id` was authenticated at `version`; refuses a version below one seen.
    pub fn observe(&mut self, id: &str, version: u64) -> Result<(), VaultError> {
        match self.seen.get_mut(id) {
            Some(seen) if version < *seen => Err(VaultError::Rollback {
                id: id.to_owned(),
                seen: *seen,
                served: version,
            }),
            Some(seen) => {
                *seen = version;
                Ok(())
            }
            None => {
                self.seen.insert(id.to_owned(), version);
                Ok(())
            }
        }
    }

    /// Takes in every entry of another ledger (one saved earlier); refuses if this ledger has
    /// already authenticated a record below the version the other one saw.
    pub fn absorb(&mut self, other: &Ledger) -> Result<(), VaultError> {
        for (id, &v) in &other.seen {
            if let Some(&mine) = self.seen.get(id) {
                if mine < v {
                    return Err(VaultError::Rollback {
                        id: id.clone(),
                        seen: v,
                        served: mine,
                    });
                }
            } else {
                self.seen.insert(id.clone(), v);
            }
        }
        Ok(())
    }

    pub fn seen(&self, id: &str) -> Option<u64> {
        self.seen.get(id).copied()
    }
}
