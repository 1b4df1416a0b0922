//! Who a request comes from, for the limits that count per client: the socket peer, or, behind
//! a reverse proxy the operator configured, the address that proxy reports in one named header.
//! No header is believed unless configured: any client can send `X-Forwarded-For`.
//!
//! Addresses are grouped into networks before they are counted: an IPv4 address on its own, an
//! IPv6 address by its /64, which one subscriber usually holds whole (and can rotate through at
//! will), so a limit per IPv6 address would limit nothing.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, HeaderName};

/// A client network: what per-client limits count against.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Net {
    V4([u8; 4]),
    /// The first 64 bits of the address.
    V6([u8; 8]),
}

impl Net {
    pub(crate) fn of(ip: IpAddr) -> Net {
        match ip {
            IpAddr::V4(v4) => Net::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Net::V4(v4.octets()),
                None => {
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&v6.octets()[..8]);
                    Net::V6(prefix)
                }
            },
        }
    }
}

/// How many of something (connections, relays) each client network holds at once.
#[derive(Clone, Default)]
pub(crate) struct Holds(Arc<Mutex<HashMap<Net, usize>>>);

impl Holds {
    /// One more for `net`, unless it already holds `cap`.
    pub(crate) fn take(&self, net: Net, cap: usize) -> Option<Hold> {
        let mut map = self.0.lock().ok()?;
        let held = map.entry(net).or_default();
        if *held >= cap {
            if *held == 0 {
                map.remove(&net);
            }
            return None;
        }
        *held += 1;
        Some(Hold {
            holds: self.clone(),
            net,
        })
    }
}

/// One thing counted against its client network until dropped.
pub(crate) struct Hold {
    holds: Holds,
    net: Net,
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Ok(mut map) = self.holds.0.lock() {
            if let Some(held) = map.get_mut(&self.net) {
                *held -= 1;
                if *held == 0 {
                    map.remove(&self.net);
                }
            }
        }
    }
}

/// The client's address: from `header` when one is configured and the request carries a
/// usable value in it, else the socket peer. A request that did not come through the proxy
/// has no such header (or one the client wrote, which the proxy would have appended to), and
/// falls back to the peer.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, header: Option<&HeaderName>) -> IpAddr {
    header
        .and_then(|name| {
            // The proxy appends its own line or entry last; everything before it came from the
            // client and is not believed.
            let last = headers.get_all(name).iter().next_back()?.to_str().ok()?;
            if name.as_str() == "forwarded" {
                forwarded_for(last)
            } else {
                parse_ip(last.rsplit(',').next()?)
            }
        })
        .unwrap_or(peer)
}

/// The `for=` of the last element of an RFC 7239 `Forwarded` value.
fn forwarded_for(value: &str) -> Option<IpAddr> {
    let element = value.rsplit(',').next()?;
    let node = element.split(';').find_map(|pair| {
        let (key, v) = pair.trim().split_once('=')?;
        key.trim().eq_ignore_ascii_case("for").then_some(v.trim())
    })?;
    parse_ip(node.trim_matches('"'))
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1` or `[2001:db8::1]:4711`; anything else
/// (`unknown`, obfuscated identifiers) is no address.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    text.strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse::<Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in lines {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        h
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 9));

    #[test]
    fn headers_count_only_when_configured_and_only_their_last_entry() {
        let xff = HeaderName::from_static("x-forwarded-for");
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(client_ip(PEER, &spoofed, None), PEER);
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.1, 203.0.113.7"),
            ("x-forwarded-for", "192.0.2.44"),
        ]);
        assert_eq!(
            client_ip(PEER, &h, Some(&xff)),
            "192.0.2.44".parse::<IpAddr>().unwrap()
        );
        let h = headers(&[("x-forwarded-for", "1.2.3.4, [2001:db8::5]:443")]);
        assert_eq!(
            client_ip(PEER, &h, Some(&xff)),
            "2001:db8::5".parse::<IpAddr>().unwrap()
        );
        let garbage = headers(&[("x-forwarded-for", "not an address")]);
        assert_eq!(client_ip(PEER, &garbage, Some(&xff)), PEER);
        assert_eq!(client_ip(PEER, &HeaderMap::new(), Some(&xff)), PEER);
    }

    #[test]
    fn forwarded_takes_the_last_elements_for() {
        let fwd = HeaderName::from_static("forwarded");
        let h = headers(&[(
            "forwarded",
            "for=198.51.100.1;proto=https, for=\"[2001:db8:cafe::17]:4711\";by=_proxy",
        )]);
        assert_eq!(
            client_ip(PEER, &h, Some(&fwd)),
            "2001:db8:cafe::17".parse::<IpAddr>().unwrap()
        );
        let hidden = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(client_ip(PEER, &hidden, Some(&fwd)), PEER);
    }

    #[test]
    fn holds_count_per_network_up_to_the_cap_and_free_on_drop() {
        let holds = Holds::default();
        let a = Net::of("2001:db8:1:2::1".parse().unwrap());
        let b = Net::of("192.0.2.1".parse().unwrap());
        let first = holds.take(a, 2).expect("under the cap");
        let second = holds.take(a, 2).expect("at the cap");
        assert!(holds.take(a, 2).is_none(), "over the cap");
        let other = holds.take(b, 2).expect("another network is counted apart");
        drop(first);
        let again = holds.take(a, 2).expect("a dropped hold frees its place");
        assert!(holds.take(b, 0).is_none());
        drop((second, other, again));
        assert!(holds.0.lock().unwrap().is_empty(), "nothing left counted");
    }

    #[test]
    fn ipv6_groups_by_64_and_mapped_ipv4_is_ipv4() {
        let a = Net::of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = Net::of("2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap());
        let c = Net::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            Net::of("::ffff:192.0.2.1".parse().unwrap()),
            Net::of("192.0.2.1".parse().unwrap())
        );
        assert_ne!(
            Net::of("192.0.2.1".parse().unwrap()),
            Net::of("192.0.2.2".parse().unwrap())
        );
    }
}
