//! Admission of network connections before they authenticate: each source (an IPv4 address,
//! an IPv6 /64) has a budget of TLS handshakes under way, and when a budget is full the oldest
//! handshake goes, not the new connection.
//!
//! A handshake costs its peer nothing to open and nothing to leave silent, so refusing new
//! connections once the budget is full lets a few silent connections a second lock everyone
//! out (the budget over the handshake timeout). Evicting the oldest instead keeps the door
//! open: a connection that is completing its handshake is evicted only when the budget fills
//! up entirely while it does, which takes the whole budget's worth of new connections within
//! one handshake's time. Per source, so that one source's flood evicts its own handshakes,
//! and when the daemon's whole budget is full the victim comes from the source holding the
//! most handshakes.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

/// A source of connections: an IPv4 address, or the /64 prefix of an IPv6 address (a host
/// usually holds a whole /64).
pub type Source = [u8; 16];

/// The source of a peer address.
pub fn source_of(addr: &SocketAddr) -> Source {
    match addr.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_ipv6_mapped().octets(),
            None => {
                let mut s = [0u8; 16];
                s[..8].copy_from_slice(&v6.octets()[..8]);
                s
            }
        },
    }
}

/// No room: the daemon's budget is full of established connections, with no handshake to
/// evict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// The handshakes under way, by source; tokens are handed out in increasing order, so the
/// smallest is the oldest.
#[derive(Debug)]
pub struct Gate {
    per_source: usize,
    by_source: HashMap<Source, BTreeSet<usize>>,
    source: HashMap<usize, Source>,
}

impl Gate {
    /// A gate allowing `per_source` handshakes at once from one source (at least 1).
    pub fn new(per_source: usize) -> Self {
        Gate { per_source: per_source.max(1), by_source: HashMap::new(), source: HashMap::new() }
    }

    /// Handshakes under way.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.source.len()
    }

    /// A new connection `token` from `src`; `full`: the daemon's connection budget has no
    /// room for it. Counts it and returns the handshake to close for it, if one must go: the
    /// oldest of `src` when `src` is at its budget, else, when `full`, the oldest of the
    /// source with the most handshakes. `Err(Full)`: nothing to evict, refuse the connection.
    pub fn admit(&mut self, src: Source, token: usize, full: bool) -> Result<Option<usize>, Full> {
        let own = self.by_source.get(&src).map_or(0, BTreeSet::len);
        let victim = if own >= self.per_source {
            self.oldest(&src)
        } else if full {
            let busiest = self.by_source.iter().max_by_key(|(_, t)| (t.len(), std::cmp::Reverse(t.first().copied())));
            let Some((busiest, _)) = busiest else { return Err(Full) };
            let busiest = *busiest;
            self.oldest(&busiest)
        } else {
            None
        };
        if let Some(v) = victim {
            self.remove(v);
        }
        self.by_source.entry(src).or_default().insert(token);
        self.source.insert(token, src);
        Ok(victim)
    }

    /// The handshake `token` ended (established, failed, timed out or evicted); unknown tokens
    /// are ignored.
    pub fn remove(&mut self, token: usize) {
        let Some(src) = self.source.remove(&token) else { return };
        if let Some(set) = self.by_source.get_mut(&src) {
            set.remove(&token);
            if set.is_empty() {
                self.by_source.remove(&src);
            }
        }
    }

    fn oldest(&self, src: &Source) -> Option<usize> {
        self.by_source.get(src).and_then(|s| s.first().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(last: u8) -> Source {
        source_of(&SocketAddr::from(([127, 0, 0, last], 4000)))
    }

    /// One source at its budget evicts its own oldest handshake; other sources keep theirs.
    #[test]
    fn a_full_source_evicts_its_own_oldest() {
        let mut g = Gate::new(2);
        assert_eq!(g.admit(src(1), 10, false), Ok(None));
        assert_eq!(g.admit(src(2), 11, false), Ok(None));
        assert_eq!(g.admit(src(1), 12, false), Ok(None));
        assert_eq!(g.admit(src(1), 13, false), Ok(Some(10)));
        assert_eq!(g.admit(src(1), 14, false), Ok(Some(12)));
        assert_eq!(g.len(), 3);
        g.remove(11);
        g.remove(11);
        assert_eq!(g.len(), 2);
    }

    /// With the daemon's budget full, the source with the most handshakes pays, oldest first;
    /// with no handshake at all there is nothing to evict.
    #[test]
    fn a_full_daemon_evicts_from_the_busiest_source() {
        let mut g = Gate::new(8);
        for t in 0..5 {
            g.admit(src(9), 100 + t, false).unwrap();
        }
        g.admit(src(1), 50, false).unwrap();
        assert_eq!(g.admit(src(1), 200, true), Ok(Some(100)), "not the lone handshake of source 1");
        assert_eq!(g.admit(src(3), 201, true), Ok(Some(101)));
        let mut empty = Gate::new(8);
        assert_eq!(empty.admit(src(1), 1, true), Err(Full));
    }

    #[test]
    fn ipv6_sources_are_slash_64_and_mapped_ipv4_is_ipv4() {
        let a: SocketAddr = "[2001:db8:1:2:aaaa::1]:1".parse().unwrap();
        let b: SocketAddr = "[2001:db8:1:2:bbbb::2]:1".parse().unwrap();
        let c: SocketAddr = "[2001:db8:1:3::1]:1".parse().unwrap();
        assert_eq!(source_of(&a), source_of(&b));
        assert_ne!(source_of(&a), source_of(&c));
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:1".parse().unwrap();
        assert_eq!(source_of(&mapped), source_of(&SocketAddr::from(([10, 0, 0, 1], 2))));
    }
}
