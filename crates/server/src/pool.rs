//! The enclaves behind the relay. Each relay goes to one of them: the one the client insists on
//! (`/v1/relay?enclave=ID`, ids listed at `/v1/enclaves`), or the one it prefers
//! (`?prefer=ID`) unless that one cannot be reached, or else the least loaded of those that
//! are up and not draining.
//!
//! Trust: choosing an enclave is an availability decision only. Whichever one a relay reaches,
//! the client verifies its evidence itself before it sends anything, and a client that picks
//! at random among the listed ids takes the choice away from the server, so the operator
//! cannot steer one user to one machine. (A preference lets the server fall back when the
//! preferred enclave is down, which a server could claim; it still cannot tell whose relay it
//! is when the client pays with a token and comes through a hop, and a client that insists
//! takes even that away.) Ids are derived from the enclave's address, so every server in front
//! of the same pool lists the same ids.
//!
//! Health is learned from use: a relay whose connect fails marks that enclave down and tries
//! the next one (nothing has reached any enclave yet, so this failover costs the client
//! nothing), and an enclave that hangs up on a relay is probed at once; an enclave marked
//! down is probed every [`PROBE_EVERY`] with a bare TCP connect and marked up when it accepts. A pool file (`--enclave-pool`) lists `ADDR` or `ADDR drain`
//! per line and is read again on every probe tick: a draining enclave takes no new relays and
//! keeps the ones it has, an enclave left out of the file drains, and an added one joins.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sotto_api::EnclaveInfo;
use tokio::net::TcpStream;
use tracing::{info, warn};

/// How often enclaves marked down are probed and the pool file is read.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);
/// How long one connect to an enclave may take before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) struct Enclave {
    pub(crate) id: String,
    pub(crate) addr: SocketAddr,
    up: AtomicBool,
    draining: AtomicBool,
    relays: AtomicUsize,
}

impl Enclave {
    fn new(addr: SocketAddr, draining: bool) -> Arc<Self> {
        Arc::new(Enclave {
            id: enclave_id(addr),
            addr,
            up: AtomicBool::new(true),
            draining: AtomicBool::new(draining),
            relays: AtomicUsize::new(0),
        })
    }

    fn available(&self) -> bool {
        !self.draining.load(Ordering::Relaxed)
    }

    fn info(&self) -> EnclaveInfo {
        EnclaveInfo {
            id: self.id.clone(),
            up: self.up.load(Ordering::Relaxed),
            draining: self.draining.load(Ordering::Relaxed),
        }
    }
}

/// The public name of the enclave at `addr`: the same on every server, and not the address.
fn enclave_id(addr: SocketAddr) -> String {
    let digest = Sha256::digest(format!("sotto enclave id\n{addr}"));
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// A relay's hold on its enclave, counted as its load until dropped.
pub(crate) struct Lease(Arc<Enclave>);

impl Lease {
    pub(crate) fn id(&self) -> &str {
        &self.0.id
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.relays.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The enclave a client asked the relay for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wanted<'a> {
    /// This one or none.
    Only(&'a str),
    /// This one first, then the others.
    Prefer(&'a str),
}

/// Why no enclave could take a relay.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// The client asked for an id the pool does not have.
    Unknown,
    /// The client asked for an enclave that is draining.
    Draining,
    /// Every candidate refused the connection.
    Unreachable,
}

impl Unavailable {
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Unavailable::Unknown => "no enclave with that id: see /v1/enclaves",
            Unavailable::Draining => "that enclave is draining: choose another",
            Unavailable::Unreachable => "enclave unreachable",
        }
    }
}

pub(crate) struct Pool {
    enclaves: RwLock<Vec<Arc<Enclave>>>,
    file: Option<PathBuf>,
}

/// A pool file's lines: `ADDR` or `ADDR drain`; `#` starts a comment.
pub fn parse_pool(text: &str) -> Result<Vec<(SocketAddr, bool)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let addr = words.next().unwrap_or_default();
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| format!("line {}: {addr:?} is not an IP:port address", n + 1))?;
        let drain = match words.next() {
            None => false,
            Some("drain") => true,
            Some(other) => {
                return Err(format!(
                    "line {}: {other:?} after the address: only `drain` may follow it",
                    n + 1
                ))
            }
        };
        if words.next().is_some() {
            return Err(format!("line {}: too many words", n + 1));
        }
        out.push((addr, drain));
    }
    Ok(out)
}

fn read_pool(path: &Path) -> Result<Vec<(SocketAddr, bool)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the enclave pool {}: {e}", path.display()))?;
    parse_pool(&text).map_err(|e| format!("the enclave pool {}: {e}", path.display()))
}

impl Pool {
    /// The enclaves at `addrs`, and those of the pool file `file` (read once now; an
    /// unreadable file at start-up is an error, later it only keeps the pool as it was).
    pub(crate) fn new(addrs: &[SocketAddr], file: Option<PathBuf>) -> Result<Self, String> {
        let mut listed: Vec<(SocketAddr, bool)> = addrs.iter().map(|a| (*a, false)).collect();
        if let Some(path) = &file {
            listed.extend(read_pool(path)?);
        }
        let pool = Pool {
            enclaves: RwLock::new(Vec::new()),
            file,
        };
        pool.update(&listed);
        Ok(pool)
    }

    fn snapshot(&self) -> Vec<Arc<Enclave>> {
        self.enclaves.read().map(|e| e.clone()).unwrap_or_default()
    }

    /// Applies a fresh listing: listed enclaves take its drain flag, new ones join, unlisted
    /// ones drain and leave once their last relay has gone.
    fn update(&self, listed: &[(SocketAddr, bool)]) {
        let Ok(mut enclaves) = self.enclaves.write() else {
            return;
        };
        for e in enclaves.iter() {
            let drain = listed
                .iter()
                .find(|(addr, _)| *addr == e.addr)
                .is_none_or(|(_, drain)| *drain);
            if e.draining.swap(drain, Ordering::Relaxed) != drain {
                info!(enclave = %e.id, draining = drain, "enclave drain changed");
            }
        }
        enclaves.retain(|e| {
            listed.iter().any(|(addr, _)| *addr == e.addr) || e.relays.load(Ordering::Relaxed) > 0
        });
        for (addr, drain) in listed {
            if !enclaves.iter().any(|e| e.addr == *addr) {
                enclaves.push(Enclave::new(*addr, *drain));
            }
        }
    }

    /// What `/v1/enclaves` lists.
    pub(crate) fn list(&self) -> Vec<EnclaveInfo> {
        self.snapshot().iter().map(|e| e.info()).collect()
    }

    /// Whether any enclave is up (for `/healthz`).
    pub(crate) fn any_up(&self) -> bool {
        self.snapshot().iter().any(|e| e.up.load(Ordering::Relaxed))
    }

    /// The enclaves to try for a relay, in order: the one insisted on; or the one preferred,
    /// if it is available, then the others; the others being the available ones, those up
    /// first and each group least loaded first.
    fn candidates(&self, wanted: Option<Wanted<'_>>) -> Result<Vec<Arc<Enclave>>, Unavailable> {
        let all = self.snapshot();
        if let Some(Wanted::Only(id)) = wanted {
            let e = all
                .into_iter()
                .find(|e| e.id == id)
                .ok_or(Unavailable::Unknown)?;
            if !e.available() {
                return Err(Unavailable::Draining);
            }
            return Ok(vec![e]);
        }
        let mut open: Vec<_> = all.into_iter().filter(|e| e.available()).collect();
        open.sort_by_key(|e| {
            (
                !matches!(wanted, Some(Wanted::Prefer(id)) if e.id == id),
                !e.up.load(Ordering::Relaxed),
                e.relays.load(Ordering::Relaxed),
            )
        });
        Ok(open)
    }

    /// Connects a relay to an enclave (see [`Pool::candidates`]), marking those that refuse
    /// down. The lease counts the relay against its enclave until dropped.
    pub(crate) async fn connect(
        &self,
        wanted: Option<Wanted<'_>>,
    ) -> Result<(TcpStream, Lease), Unavailable> {
        for e in self.candidates(wanted)? {
            // Counted before the connect, so relays racing in pick different enclaves.
            e.relays.fetch_add(1, Ordering::Relaxed);
            let lease = Lease(e.clone());
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(e.addr)).await {
                Ok(Ok(tcp)) => {
                    if !e.up.swap(true, Ordering::Relaxed) {
                        info!(enclave = %e.id, "enclave up");
                    }
                    return Ok((tcp, lease));
                }
                Ok(Err(_)) | Err(_) => {
                    if e.up.swap(false, Ordering::Relaxed) {
                        warn!(enclave = %e.id, "enclave down: a relay could not connect");
                    }
                }
            }
        }
        Err(Unavailable::Unreachable)
    }

    /// After the enclave of `lease` hung up on its relay: marks it down if it no longer
    /// accepts connections (killed, say), so no new relay waits on it.
    pub(crate) async fn recheck(&self, lease: &Lease) {
        let e = &lease.0;
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(e.addr)).await;
        if !matches!(probe, Ok(Ok(_))) && e.up.swap(false, Ordering::Relaxed) {
            warn!(enclave = %e.id, "enclave down: it hung up on a relay and refuses connections");
        }
    }

    /// Once per [`PROBE_EVERY`]: re-reads the pool file and probes the enclaves marked down.
    pub(crate) async fn tend(&self) {
        if let Some(path) = &self.file {
            match read_pool(path) {
                Ok(listed) => self.update(&listed),
                Err(e) => warn!("{e}; keeping the pool as it was"),
            }
        }
        for e in self.snapshot() {
            if e.up.load(Ordering::Relaxed) {
                continue;
            }
            let probe = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(e.addr)).await;
            if matches!(probe, Ok(Ok(_))) && !e.up.swap(true, Ordering::Relaxed) {
                info!(enclave = %e.id, "enclave up: it accepted a probe");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn pool_files_list_addresses_and_drains() {
        let listed =
            parse_pool("# the pool\n127.0.0.1:7001\n\n 127.0.0.1:7002  drain # old\n").unwrap();
        assert_eq!(listed, [(addr(7001), false), (addr(7002), true)]);
        for (bad, says) in [
            (
                "localhost:7001",
                "line 1: \"localhost:7001\" is not an IP:port",
            ),
            (
                "127.0.0.1:7001 pause",
                "line 1: \"pause\" after the address",
            ),
            ("\n127.0.0.1:1 drain now", "line 2: too many words"),
        ] {
            let e = parse_pool(bad).unwrap_err();
            assert!(e.starts_with(says), "{e}");
        }
    }

    #[test]
    fn the_least_loaded_up_enclave_comes_first_and_drains_are_left_out() {
        let pool = Pool::new(&[addr(1), addr(2), addr(3)], None).unwrap();
        let [a, b, c] = [addr(1), addr(2), addr(3)].map(enclave_id);
        let order = |wanted| -> Vec<String> {
            pool.candidates(wanted)
                .unwrap()
                .iter()
                .map(|e| e.id.clone())
                .collect()
        };
        assert_eq!(order(None), [a.as_str(), b.as_str(), c.as_str()]);
        let all = pool.snapshot();
        all[0].relays.store(2, Ordering::Relaxed);
        all[1].up.store(false, Ordering::Relaxed);
        assert_eq!(order(None), [c.as_str(), a.as_str(), b.as_str()]);
        all[2].draining.store(true, Ordering::Relaxed);
        assert_eq!(order(None), [a.as_str(), b.as_str()]);
        assert_eq!(
            order(Some(Wanted::Only(&b))),
            [b.as_str()],
            "insisted on, even when down"
        );
        assert_eq!(order(Some(Wanted::Prefer(&b))), [b.as_str(), a.as_str()]);
        assert_eq!(
            order(Some(Wanted::Prefer(&c))),
            [a.as_str(), b.as_str()],
            "a draining one is not preferred"
        );
        assert_eq!(
            pool.candidates(Some(Wanted::Only(&c))).err(),
            Some(Unavailable::Draining)
        );
        assert_eq!(
            pool.candidates(Some(Wanted::Only("00"))).err(),
            Some(Unavailable::Unknown)
        );
    }

    #[test]
    fn a_new_listing_drains_the_unlisted_and_adds_the_new() {
        let pool = Pool::new(&[addr(1), addr(2)], None).unwrap();
        pool.snapshot()[1].relays.store(1, Ordering::Relaxed);
        pool.update(&[(addr(1), true), (addr(3), false)]);
        let state: Vec<_> = pool
            .snapshot()
            .iter()
            .map(|e| (e.addr, e.available()))
            .collect();
        assert_eq!(
            state,
            [(addr(1), false), (addr(2), false), (addr(3), true)],
            "2 drains until its relay ends"
        );
        pool.snapshot()[1].relays.store(0, Ordering::Relaxed);
        pool.update(&[(addr(1), false), (addr(3), false)]);
        let addrs: Vec<_> = pool.snapshot().iter().map(|e| e.addr).collect();
        assert_eq!(addrs, [addr(1), addr(3)]);
        assert!(pool.snapshot()[0].available(), "1 is back");
    }

    #[test]
    fn ids_are_the_same_everywhere_and_do_not_show_the_address() {
        let id = enclave_id(addr(7001));
        assert_eq!(id, enclave_id(addr(7001)));
        assert_ne!(id, enclave_id(addr(7002)));
        assert_eq!(id.len(), 12);
        assert!(!id.contains("7001"));
    }
}
