//! Spin-style destination patterns: `scheme://host[:port]`.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::address::embedded_v4;

/// A parsed destination pattern. `Display` gives back the text it was written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    scheme: SchemePattern,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SchemePattern {
    Http,
    Https,
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.domain`: strict subdomains, stored as ".domain".
    Subdomains(String),
    Name(String),
    Net(IpNet),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    /// Omitted: the default port of the request's scheme.
    Default,
    Any,
    Range(u16, u16),
}

/// A request's destination, already normalised by the URL parser.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub scheme: &'a str,
    pub host: TargetHost<'a>,
    pub port: u16,
}

#[derive(Debug, Clone, Copy)]
pub enum TargetHost<'a> {
    Name(&'a str),
    Ip(IpAddr),
}

impl<'a> Target<'a> {
    /// `None` when the URL is not http(s) or has no host.
    pub fn from_url(url: &'a url::Url) -> Option<Target<'a>> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let host = match url.host()? {
            url::Host::Domain(name) => TargetHost::Name(name),
            url::Host::Ipv4(ip) => TargetHost::Ip(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => TargetHost::Ip(IpAddr::V6(ip)),
        };
        let port = url.port_or_known_default()?;
        Some(Target { scheme, host, port })
    }
}

/// Why a pattern does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(String);

impl Pattern {
    /// Parses `scheme://host[:port]`. With `bare_host_ok`, a pattern without `://` is a host
    /// alone and matches any scheme and port (the form `[secrets.X] hosts` allows).
    pub fn parse(text: &str, bare_host_ok: bool) -> Result<Pattern, PatternError> {
        Pattern::parse_text(text, bare_host_ok).map_err(PatternError)
    }

    fn parse_text(text: &str, bare_host_ok: bool) -> Result<Pattern, String> {
        let (scheme, rest, port_default) = match text.split_once("://") {
            Some((scheme, rest)) => {
                let scheme = match scheme.to_ascii_lowercase().as_str() {
                    "http" => SchemePattern::Http,
                    "https" => SchemePattern::Https,
                    "*" => SchemePattern::Any,
                    _ => {
                        return Err(format!(
                            "unsupported scheme `{scheme}` (expected http, https or *)"
                        ));
                    }
                };
                (scheme, rest, PortPattern::Default)
            }
            None if bare_host_ok => (SchemePattern::Any, text, PortPattern::Any),
            None => return Err("expected `scheme://host[:port]`".to_string()),
        };
        if let Some(bad) = rest.chars().find(|c| matches!(c, '?' | '#' | '@')) {
            return Err(format!(
                "unexpected `{bad}` (a pattern is scheme://host[:port])"
            ));
        }
        let (host, port) = split_host_port(rest)?;
        let host = parse_host(host)?;
        let port = match port {
            None => port_default,
            Some(port) => parse_port(port)?,
        };
        Ok(Pattern {
            text: text.to_string(),
            scheme,
            host,
            port,
        })
    }

    /// Whether the request's scheme, host name or address, and port all match.
    pub fn matches(&self, target: &Target<'_>) -> bool {
        self.matches_scheme_port(target.scheme, target.port)
            && match target.host {
                TargetHost::Name(name) => self.matches_name(name),
                TargetHost::Ip(ip) => self.contains_ip(ip),
            }
    }

    /// For deny rules: like `matches`, but an IPv6 form embedding an IPv4 address also
    /// matches a rule naming that IPv4 address, so the deny cannot be sidestepped.
    pub fn matches_widely(&self, target: &Target<'_>) -> bool {
        if self.matches(target) {
            return true;
        }
        match target.host {
            TargetHost::Ip(ip) => self.matches_address_widely(target.scheme, target.port, ip),
            TargetHost::Name(_) => false,
        }
    }

    /// Whether this is an IP or CIDR rule containing `ip` (exactly, without unwrapping
    /// embedded IPv4) for this scheme and port: the rule names that address explicitly.
    /// A wildcard host names no address.
    pub fn names_address(&self, scheme: &str, port: u16, ip: IpAddr) -> bool {
        match &self.host {
            HostPattern::Net(net) => self.matches_scheme_port(scheme, port) && net.contains(&ip),
            _ => false,
        }
    }

    /// Deny rules with an IP or CIDR host also apply to resolved addresses, including IPv4
    /// embedded in IPv6 forms.
    pub fn matches_address_widely(&self, scheme: &str, port: u16, ip: IpAddr) -> bool {
        let HostPattern::Net(net) = &self.host else {
            return false;
        };
        if !self.matches_scheme_port(scheme, port) {
            return false;
        }
        match ip {
            IpAddr::V6(v6) if !net.contains(&ip) => {
                embedded_v4(v6).is_some_and(|(v4, _)| net.contains(&IpAddr::V4(v4)))
            }
            _ => net.contains(&ip),
        }
    }

    fn matches_scheme_port(&self, scheme: &str, port: u16) -> bool {
        let scheme_ok = match self.scheme {
            SchemePattern::Http => scheme == "http",
            SchemePattern::Https => scheme == "https",
            SchemePattern::Any => true,
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Range(low, high) => (low..=high).contains(&port),
            PortPattern::Default => match scheme {
                "http" => port == 80,
                "https" => port == 443,
                _ => false,
            },
        };
        scheme_ok && port_ok
    }

    fn matches_name(&self, name: &str) -> bool {
        let name = normalise_name(name);
        match &self.host {
            HostPattern::Any => true,
            HostPattern::Subdomains(suffix) => {
                name.len() > suffix.len() && name.ends_with(suffix.as_str())
            }
            HostPattern::Name(exact) => name == *exact,
            HostPattern::Net(_) => false,
        }
    }

    fn contains_ip(&self, ip: IpAddr) -> bool {
        match &self.host {
            HostPattern::Any => true,
            HostPattern::Net(net) => net.contains(&ip),
            HostPattern::Subdomains(_) | HostPattern::Name(_) => false,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn normalise_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Splits `host[:port]`, where an IPv6 host (or CIDR) is in brackets.
fn split_host_port(rest: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(inner) = rest.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or_else(|| "missing `]` after IPv6 address".to_string())?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!("unexpected `{after}` after `]`")),
            },
        };
    }
    match rest.split_once(':') {
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((rest, None)),
    }
}

fn parse_host(host: &str) -> Result<HostPattern, String> {
    if host.is_empty() {
        return Err("missing host".to_string());
    }
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    if host.contains('/') {
        return host
            .parse::<IpNet>()
            .map(|net| HostPattern::Net(net.trunc()))
            .map_err(|_| {
                format!("`{host}` is not a CIDR range (patterns may not contain a path)")
            });
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(HostPattern::Net(IpNet::from(ip)));
    }
    if let Some(domain) = host.strip_prefix("*.") {
        let domain = parse_name(domain)?;
        return Ok(HostPattern::Subdomains(format!(".{domain}")));
    }
    parse_name(host).map(HostPattern::Name)
}

/// Normalises a host name the way the URL parser does (lowercase, IDNA), so that it compares
/// equal to request hosts. Numeric forms the URL parser would turn into an address are refused:
/// write the address instead.
fn parse_name(name: &str) -> Result<String, String> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.contains('*') {
        return Err(format!(
            "`{name}`: `*` is only allowed as the whole host or as a `*.` prefix"
        ));
    }
    match url::Host::parse(trimmed) {
        Ok(url::Host::Domain(domain)) if !domain.is_empty() => Ok(domain),
        Ok(_) => Err(format!(
            "`{name}` is a numeric address form; write it as a dotted IPv4 address"
        )),
        Err(err) => Err(format!("invalid host `{name}`: {err}")),
    }
}

fn parse_port(port: &str) -> Result<PortPattern, String> {
    if port == "*" {
        return Ok(PortPattern::Any);
    }
    let number = |text: &str| -> Result<u16, String> {
        match text.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!(
                "invalid port `{port}` (expected 1-65535, a range like 8000-9000, or *)"
            )),
            Ok(n) => Ok(n),
        }
    };
    match port.split_once('-') {
        Some((low, high)) => {
            let (low, high) = (number(low)?, number(high)?);
            if low > high {
                return Err(format!("port range `{port}` is empty"));
            }
            Ok(PortPattern::Range(low, high))
        }
        None => number(port).map(|n| PortPattern::Range(n, n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> Pattern {
        Pattern::parse(text, false).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn matches(pattern: &Pattern, url: &str) -> bool {
        let url = url::Url::parse(url).expect("test URL parses");
        let target = Target::from_url(&url).expect("http(s) URL");
        pattern.matches(&target)
    }

    #[test]
    fn exact_host_with_default_port() {
        let p = pattern("https://api.github.com");
        assert!(matches(&p, "https://api.github.com/repos"));
        assert!(matches(&p, "https://api.github.com:443/"));
        assert!(matches(&p, "https://API.GitHub.COM/"));
        assert!(matches(&p, "https://api.github.com./"));
        assert!(!matches(&p, "http://api.github.com/"));
        assert!(!matches(&p, "https://api.github.com:8443/"));
        assert!(!matches(&p, "https://github.com/"));
        assert!(!matches(&p, "https://x.api.github.com/"));
        assert!(!matches(&p, "https://api.github.com.evil.com/"));
    }

    #[test]
    fn pattern_case_and_trailing_dot_are_normalised() {
        let p = pattern("HTTPS://API.Example.COM.");
        assert!(matches(&p, "https://api.example.com/"));
        assert!(matches(&p, "https://api.example.com./"));
    }

    #[test]
    fn subdomain_wildcard_excludes_the_domain_itself() {
        let p = pattern("https://*.slack.com");
        assert!(matches(&p, "https://hooks.slack.com/x"));
        assert!(matches(&p, "https://a.b.slack.com/"));
        assert!(matches(&p, "https://HOOKS.slack.com./"));
        assert!(!matches(&p, "https://slack.com/"));
        assert!(!matches(&p, "https://evilslack.com/"));
        assert!(!matches(&p, "https://slack.com.evil.com/"));
        assert!(!matches(&p, "http://hooks.slack.com/"));
    }

    #[test]
    fn any_host_and_any_scheme() {
        let p = pattern("*://*:*");
        assert!(matches(&p, "http://example.com:1234/"));
        assert!(matches(&p, "https://10.0.0.1/"));
        assert!(matches(&p, "https://[::1]:9/"));
    }

    #[test]
    fn any_scheme_uses_the_request_schemes_default_port() {
        let p = pattern("*://example.com");
        assert!(matches(&p, "http://example.com/"));
        assert!(matches(&p, "https://example.com/"));
        assert!(!matches(&p, "http://example.com:443/"));
        assert!(!matches(&p, "https://example.com:80/"));
    }

    #[test]
    fn explicit_ports_and_ranges() {
        let p = pattern("http://127.0.0.1:8080");
        assert!(matches(&p, "http://127.0.0.1:8080/"));
        assert!(!matches(&p, "http://127.0.0.1:8081/"));
        assert!(!matches(&p, "http://127.0.0.1/"));
        let range = pattern("http://example.com:8000-9000");
        assert!(matches(&range, "http://example.com:8000/"));
        assert!(matches(&range, "http://example.com:9000/"));
        assert!(!matches(&range, "http://example.com:7999/"));
        assert!(!matches(&range, "http://example.com:9001/"));
        let any = pattern("https://example.com:*");
        assert!(matches(&any, "https://example.com:1/"));
        assert!(matches(&any, "https://example.com/"));
    }

    #[test]
    fn ipv4_cidr() {
        let p = pattern("*://10.0.0.0/8:*");
        assert!(matches(&p, "http://10.0.0.0/"));
        assert!(matches(&p, "https://10.255.255.255:8443/"));
        assert!(!matches(&p, "http://11.0.0.0/"));
        assert!(!matches(&p, "http://9.255.255.255/"));
        // A name is not an address: CIDR rules only match IP hosts (and resolved addresses).
        assert!(!matches(&p, "http://ten.example/"));
    }

    #[test]
    fn ipv6_literal_and_cidr() {
        let one = pattern("http://[::1]:8080");
        assert!(matches(&one, "http://[::1]:8080/"));
        assert!(matches(&one, "http://[0:0::1]:8080/"));
        assert!(!matches(&one, "http://[::2]:8080/"));
        let ula = pattern("https://[fc00::/7]");
        assert!(matches(&ula, "https://[fd12::1]/"));
        assert!(!matches(&ula, "https://[fe80::1]/"));
        assert!(!matches(&ula, "https://[fd12::1]:8443/"));
    }

    #[test]
    fn cidr_host_bits_are_truncated() {
        let p = pattern("http://192.168.1.77/24:*");
        assert!(matches(&p, "http://192.168.1.1:9/"));
        assert!(!matches(&p, "http://192.168.2.1:9/"));
    }

    #[test]
    fn deny_matching_sees_through_embedded_ipv4() {
        let p = pattern("*://10.0.0.0/8:*");
        let url = url::Url::parse("http://[::ffff:10.1.2.3]/").expect("parses");
        let target = Target::from_url(&url).expect("http");
        assert!(!p.matches(&target));
        assert!(p.matches_widely(&target));
        let ip: IpAddr = "64:ff9b::a01:203".parse().expect("parses");
        assert!(p.matches_address_widely("http", 80, ip));
        assert!(!p.names_address("http", 80, ip));
    }

    #[test]
    fn names_address_requires_scheme_and_port() {
        let p = pattern("http://127.0.0.1:8080");
        let ip: IpAddr = "127.0.0.1".parse().expect("parses");
        assert!(p.names_address("http", 8080, ip));
        assert!(!p.names_address("https", 8080, ip));
        assert!(!p.names_address("http", 8081, ip));
        assert!(!p.names_address("http", 8080, "127.0.0.2".parse().expect("parses")));
        assert!(!pattern("http://localhost:8080").names_address("http", 8080, ip));
        assert!(!pattern("*://*:*").names_address("http", 8080, ip));
    }

    #[test]
    fn bare_hosts_match_any_scheme_and_port() {
        let p = Pattern::parse("api.example.com", true).expect("parses");
        assert!(matches(&p, "http://api.example.com:1234/"));
        assert!(matches(&p, "https://api.example.com/"));
        assert!(!matches(&p, "https://other.example.com/"));
        let with_scheme = Pattern::parse("http://127.0.0.1:8080", true).expect("parses");
        assert!(matches(&with_scheme, "http://127.0.0.1:8080/"));
        assert!(!matches(&with_scheme, "http://127.0.0.1:8081/"));
        assert!(Pattern::parse("api.example.com", false).is_err());
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for (text, reason) in [
            ("ftp://example.com", "unsupported scheme"),
            ("https://", "missing host"),
            ("https://example.com/path", "path"),
            ("https://example.com:443/x", "invalid port"),
            ("https://example.com:0", "invalid port"),
            ("https://example.com:70000", "invalid port"),
            ("https://example.com:abc", "invalid port"),
            ("https://example.com:9000-8000", "empty"),
            ("https://example.com:-5", "invalid port"),
            ("https://a.*.com", "`*` is only allowed"),
            ("https://*example.com", "`*` is only allowed"),
            ("https://user@example.com", "unexpected `@`"),
            ("https://example.com?q", "unexpected `?`"),
            ("https://[::1", "missing `]`"),
            ("https://[::1]x", "unexpected"),
            ("https://10.0.0.0/33", "CIDR"),
            ("https://2130706433", "numeric address"),
            ("https://exa mple.com", "invalid host"),
            ("example.com", "scheme://"),
        ] {
            let err = Pattern::parse(text, false).expect_err(text);
            assert!(err.to_string().contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn display_is_the_original_text() {
        assert_eq!(
            pattern("https://*.Slack.com").to_string(),
            "https://*.Slack.com"
        );
    }
}
