//! What a URL reaches, for the audit record: the node's text can hide its destination
//! (`http://0x7f.\t%30%2E1/` is 127.0.0.1), so the record keeps the normalised form next to it.

use crate::audit::escape_invisible;

/// The normalised URL and its host, as the gate's URL parser sees them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Reached {
    pub url: Option<String>,
    pub host: Option<String>,
}

impl Reached {
    /// For text that does not parse, `host` is still the authority as written, with control and
    /// format characters escaped, so that a refused URL names where it pointed.
    pub fn of(raw: &str) -> Reached {
        match url::Url::parse(raw) {
            Ok(url) => Reached::from(url),
            Err(_) => Reached {
                url: None,
                host: written_host(raw).map(escape_invisible),
            },
        }
    }
}

impl From<url::Url> for Reached {
    /// `url` as parsed from the node's text; the fragment, which never leaves, is dropped.
    fn from(mut url: url::Url) -> Reached {
        url.set_fragment(None);
        Reached {
            host: url.host_str().map(str::to_string),
            url: Some(url.into()),
        }
    }
}

/// The host part of `scheme://[userinfo@]host[:port]/...` as written.
fn written_host(raw: &str) -> Option<&str> {
    let (_, rest) = raw.split_once("://")?;
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => host_port,
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_obfuscated_loopback_url_shows_what_it_reaches() {
        let reached = Reached::of("http://0x7f.\t%30%2E1:18081/a?b#frag");
        assert_eq!(reached.url.as_deref(), Some("http://127.0.0.1:18081/a?b"));
        assert_eq!(reached.host.as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn an_unparsable_url_still_names_its_host_readably() {
        let reached = Reached::of("http://user@evil\u{7}.example\u{202e}moc:8080/x");
        assert_eq!(reached.url, None);
        assert_eq!(
            reached.host.as_deref(),
            Some("evil\\u{7}.example\\u{202e}moc")
        );
        assert_eq!(Reached::of("not a url"), Reached::default());
    }
}
