//! Classifies IP addresses as public or not. Pure functions: this is the check that keeps nodes
//! away from loopback, private networks and cloud metadata endpoints, so it refuses whatever it
//! does not positively know to be globally routable.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not public: its range, and the IPv6 form that embedded an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restriction {
    pub range: &'static str,
    pub via: Option<&'static str>,
}

impl fmt::Display for Restriction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.via {
            Some(via) => write!(f, "{} via {via}", self.range),
            None => f.write_str(self.range),
        }
    }
}

/// `None` when `ip` is a public unicast address; otherwise the range it belongs to.
pub fn restriction(ip: IpAddr) -> Option<Restriction> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4).map(|range| Restriction { range, via: None }),
        IpAddr::V6(v6) => v6_restriction(v6),
    }
}

/// The IPv4 address an IPv6 address stands for (IPv4-mapped, IPv4-compatible, NAT64 or 6to4),
/// with the name of the form. Connecting to these can reach the embedded IPv4 host.
pub fn embedded_v4(ip: Ipv6Addr) -> Option<(Ipv4Addr, &'static str)> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some((low, "IPv4-mapped")),
        // SIIT translated form ::ffff:0:a.b.c.d (RFC 2765).
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some((low, "IPv4-translated")),
        [0, 0, 0, 0, 0, 0, _, _] => Some((low, "IPv4-compatible")),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some((low, "NAT64")),
        [0x2002, hi, lo, ..] => Some((
            Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8),
            "6to4",
        )),
        _ => None,
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let range = match (a, b, c) {
        (0, ..) => "unspecified (0.0.0.0/8)",
        (10, ..) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "shared CGNAT (100.64.0.0/10)",
        (127, ..) => "loopback (127.0.0.0/8)",
        (169, 254, _) => "link-local (169.254.0.0/16)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (192, 0, 2) => "documentation (192.0.2.0/24)",
        (192, 88, 99) => "6to4 relay anycast (192.88.99.0/24)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (198, 51, 100) => "documentation (198.51.100.0/24)",
        (203, 0, 113) => "documentation (203.0.113.0/24)",
        (224..=239, ..) => "multicast (224.0.0.0/4)",
        _ if ip == Ipv4Addr::BROADCAST => "broadcast (255.255.255.255)",
        (240..=255, ..) => "reserved (240.0.0.0/4)",
        _ => return None,
    };
    Some(range)
}

fn v6_restriction(ip: Ipv6Addr) -> Option<Restriction> {
    let plain = |range| Some(Restriction { range, via: None });
    if ip == Ipv6Addr::UNSPECIFIED {
        return plain("unspecified (::)");
    }
    if ip == Ipv6Addr::LOCALHOST {
        return plain("loopback (::1)");
    }
    if let Some((v4, via)) = embedded_v4(ip) {
        return v4_range(v4).map(|range| Restriction {
            range,
            via: Some(via),
        });
    }
    let s = ip.segments();
    let range = match s[0] {
        0xff00..=0xffff => "multicast (ff00::/8)",
        0xfe80..=0xfebf => "link-local (fe80::/10)",
        0xfec0..=0xfeff => "site-local (fec0::/10)",
        0xfc00..=0xfdff => "unique local (fc00::/7)",
        0x2001 if s[1] == 0x0db8 => "documentation (2001:db8::/32)",
        // Teredo, ORCHID, AS112 and other IETF protocol assignments; Teredo embeds IPv4 too.
        0x2001 if s[1] < 0x0200 => "IETF protocol assignments (2001::/23)",
        0x3fff if s[1] < 0x1000 => "documentation (3fff::/20)",
        // Only 2000::/3 is allocated as global unicast; everything else (100::/64 discard,
        // 64:ff9b:1::/48 local NAT64, unassigned space) is not a public destination.
        0x2000..=0x3fff => return None,
        _ => "reserved (outside 2000::/3)",
    };
    plain(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range_of(ip: &str) -> Option<&'static str> {
        let ip: IpAddr = ip.parse().expect("test address parses");
        restriction(ip).map(|r| r.range)
    }

    fn assert_public(ip: &str) {
        assert_eq!(range_of(ip), None, "{ip} should be public");
    }

    fn assert_range(ip: &str, prefix: &str) {
        match range_of(ip) {
            Some(range) => assert!(range.starts_with(prefix), "{ip}: got {range}"),
            None => panic!("{ip} should not be public"),
        }
    }

    #[test]
    fn ipv4_public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.255",
            "192.0.3.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "198.51.99.255",
            "198.51.101.0",
            "203.0.112.255",
            "203.0.114.0",
            "223.255.255.255",
        ] {
            assert_public(ip);
        }
    }

    #[test]
    fn ipv4_ranges_are_refused_at_both_edges() {
        let cases = [
            ("0.0.0.0", "unspecified"),
            ("0.255.255.255", "unspecified"),
            ("10.0.0.0", "private"),
            ("10.255.255.255", "private"),
            ("100.64.0.0", "shared CGNAT"),
            ("100.127.255.255", "shared CGNAT"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.255", "loopback"),
            ("169.254.0.0", "link-local"),
            ("169.254.169.254", "link-local"),
            ("169.254.255.255", "link-local"),
            ("172.16.0.0", "private"),
            ("172.31.255.255", "private"),
            ("192.0.0.0", "IETF"),
            ("192.0.0.255", "IETF"),
            ("192.0.2.0", "documentation"),
            ("192.0.2.255", "documentation"),
            ("192.88.99.1", "6to4 relay"),
            ("192.168.0.0", "private"),
            ("192.168.255.255", "private"),
            ("198.18.0.0", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("198.51.100.0", "documentation"),
            ("198.51.100.255", "documentation"),
            ("203.0.113.0", "documentation"),
            ("203.0.113.255", "documentation"),
            ("224.0.0.0", "multicast"),
            ("239.255.255.255", "multicast"),
            ("240.0.0.0", "reserved"),
            ("255.255.255.254", "reserved"),
            ("255.255.255.255", "broadcast"),
        ];
        for (ip, range) in cases {
            assert_range(ip, range);
        }
    }

    #[test]
    fn ipv6_public_addresses_pass() {
        for ip in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001:82b::200e",
            "2001:200::1",
            "2001:db7:ffff::1",
            "2001:db9::1",
            "3ffe::1",
            "3fff:1000::1",
        ] {
            assert_public(ip);
        }
    }

    #[test]
    fn ipv6_ranges_are_refused() {
        let cases = [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fc00::", "unique local"),
            ("fdff:ffff::1", "unique local"),
            ("fe80::1", "link-local"),
            ("febf:ffff::1", "link-local"),
            ("fec0::1", "site-local"),
            ("feff::1", "site-local"),
            ("ff00::", "multicast"),
            ("ff02::1", "multicast"),
            ("2001:db8::", "documentation"),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "documentation"),
            ("3fff::1", "documentation"),
            ("2001::1", "IETF"),
            ("2001:1ff::1", "IETF"),
            ("100::1", "reserved"),
            ("64:ff9b:1::1", "reserved"),
            ("1fff:ffff::1", "reserved"),
            ("4000::1", "reserved"),
            ("fbff::1", "reserved"),
        ];
        for (ip, range) in cases {
            assert_range(ip, range);
        }
    }

    #[test]
    fn embedded_ipv4_forms_are_classified_by_the_embedded_address() {
        let cases = [
            ("::ffff:127.0.0.1", "loopback", "IPv4-mapped"),
            ("::ffff:169.254.169.254", "link-local", "IPv4-mapped"),
            ("::ffff:10.1.2.3", "private", "IPv4-mapped"),
            ("::ffff:0.0.0.0", "unspecified", "IPv4-mapped"),
            ("::ffff:0:192.168.1.1", "private", "IPv4-translated"),
            ("::127.0.0.1", "loopback", "IPv4-compatible"),
            ("::10.0.0.1", "private", "IPv4-compatible"),
            ("::0.0.0.2", "unspecified", "IPv4-compatible"),
            ("64:ff9b::127.0.0.1", "loopback", "NAT64"),
            ("64:ff9b::a9fe:a9fe", "link-local", "NAT64"),
            ("64:ff9b::100.64.0.1", "shared CGNAT", "NAT64"),
            ("2002:7f00:1::", "loopback", "6to4"),
            ("2002:c0a8:101::1", "private", "6to4"),
        ];
        for (ip, range, via) in cases {
            let parsed: IpAddr = ip.parse().expect("test address parses");
            let r = restriction(parsed).unwrap_or_else(|| panic!("{ip} should not be public"));
            assert!(r.range.starts_with(range), "{ip}: got {}", r.range);
            assert_eq!(r.via, Some(via), "{ip}");
        }
    }

    #[test]
    fn embedded_public_ipv4_is_public() {
        for ip in [
            "::ffff:8.8.8.8",
            "::8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
        ] {
            assert_public(ip);
        }
    }

    #[test]
    fn embedded_v4_extracts_address_and_form() {
        let ip: Ipv6Addr = "64:ff9b::c000:0201".parse().expect("parses");
        assert_eq!(
            embedded_v4(ip),
            Some((Ipv4Addr::new(192, 0, 2, 1), "NAT64"))
        );
        let other: Ipv6Addr = "2606:4700::1".parse().expect("parses");
        assert_eq!(embedded_v4(other), None);
    }

    #[test]
    fn display_names_range_and_form() {
        let ip: IpAddr = "::ffff:127.0.0.1".parse().expect("parses");
        let text = restriction(ip).map(|r| r.to_string());
        assert_eq!(
            text.as_deref(),
            Some("loopback (127.0.0.0/8) via IPv4-mapped")
        );
    }
}
