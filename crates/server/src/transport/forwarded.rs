//! The client address of a request (`aws:SourceIp`, the audit trail's `sourceIPAddress`).
//!
//! It is the TCP peer's address, unless the peer is one of the configured
//! `trusted_proxies` (CIDRs). Then `X-Forwarded-For` is read from the right (all of its
//! header lines in order, comma-separated): trusted proxies are skipped, and the first
//! address that is not a trusted proxy is the client. That is the right-most untrusted
//! address: the last hop a trusted proxy vouches for. Addresses further left were written
//! by the client or by untrusted hops, so they are never believed.
//!
//! - No `X-Forwarded-For` (or an empty one): the peer's address.
//! - An entry that is not an IP address (`unknown`, a host name, garbage): the walk stops
//!   and the last trusted hop before it is used, never anything further left.
//! - Every entry is a trusted proxy: the left-most one.
//! - An untrusted peer's `X-Forwarded-For` is ignored.
//!
//! Entries may carry a port (`203.0.113.7:4711`, `[2001:db8::1]:4711`); IPv4-mapped IPv6
//! addresses count as IPv4.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    /// Parses `10.0.0.0/8`-style CIDRs; a bare address means just that address.
    pub fn parse(entries: &[String]) -> anyhow::Result<Self> {
        entries
            .iter()
            .map(|e| {
                let e = e.trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        anyhow::anyhow!("trusted_proxies: {e:?} is not a CIDR or an IP address")
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        for entry in entries.iter().rev() {
            let Some(ip) = parse_entry(entry) else {
                return client;
            };
            client = ip;
            if !self.contains(ip) {
                return ip;
            }
        }
        client
    }
}

fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an IP address")
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().expect("a header value"));
        }
        h
    }

    #[test]
    fn right_most_untrusted_address() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.1".into()]).unwrap();
        let proxy = ip("10.1.2.3");
        assert_eq!(trusted.client_ip(proxy, &HeaderMap::new()), proxy);
        assert_eq!(
            trusted.client_ip(proxy, &xff(&["203.0.113.7"])),
            ip("203.0.113.7")
        );
        // The left-most entry is the client's own claim: not believed.
        assert_eq!(
            trusted.client_ip(proxy, &xff(&["6.6.6.6, 203.0.113.7, 192.0.2.1"])),
            ip("203.0.113.7")
        );
        // Several header lines are one list.
        assert_eq!(
            trusted.client_ip(proxy, &xff(&["6.6.6.6", "203.0.113.7:4711", "10.9.9.9"])),
            ip("203.0.113.7")
        );
        assert_eq!(
            trusted.client_ip(proxy, &xff(&["[2001:db8::1]:80"])),
            ip("2001:db8::1")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            trusted.client_ip(proxy, &xff(&["203.0.113.7, unknown, 10.0.0.9"])),
            ip("10.0.0.9")
        );
        // All trusted: the left-most.
        assert_eq!(
            trusted.client_ip(proxy, &xff(&["10.0.0.1, 10.0.0.2"])),
            ip("10.0.0.1")
        );
        // IPv4-mapped peers count as IPv4.
        assert_eq!(
            trusted.client_ip(ip("::ffff:10.1.2.3"), &xff(&["203.0.113.7"])),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        assert_eq!(
            trusted.client_ip(ip("198.51.100.5"), &xff(&["203.0.113.7"])),
            ip("198.51.100.5")
        );
        assert_eq!(
            TrustedProxies::default().client_ip(ip("127.0.0.1"), &xff(&["203.0.113.7"])),
            ip("127.0.0.1")
        );
        assert!(TrustedProxies::parse(&["nope".into()]).is_err());
    }
}
