//! The proxy kspy reaches the API server through, chosen as kubectl chooses it (client-go and
//! Go's `net/http`):
//!
//! - the kubeconfig cluster's `proxy-url`, when set, is used for every request, whatever the
//!   environment says;
//! - else `HTTPS_PROXY` (or `https_proxy`) for an `https://` API server, `HTTP_PROXY` (or
//!   `http_proxy`) for an `http://` one — unless `NO_PROXY` (or `no_proxy`) covers the API
//!   server, or the server is `localhost` or a loopback address, which are never proxied.
//!
//! kube-rs, with its `http-proxy` and `socks5` features, connects through the proxy, but
//! decides differently (it applies `HTTPS_PROXY` to `http://` servers and compares `NO_PROXY`
//! with the proxy's address rather than the API server's), so kspy sets the proxy itself.
//!
//! `NO_PROXY` is a comma-separated list, read as Go reads it: `*` (no proxy at all), IP
//! addresses (`10.0.0.1`, optionally with `:PORT`), CIDR ranges (`10.0.0.0/8`), and domains:
//! `example.com` matches it and its subdomains, `.example.com` and `*.example.com` only the
//! subdomains, each optionally with `:PORT`. Empty entries are skipped.

use std::net::IpAddr;

use crate::errors::KspyError;

/// `NO_PROXY` as Go reads it, in the form kube-rs also accepts: blank entries dropped, and
/// `*` alone when any entry is `*`. `None` when nothing is left. kube-rs parses the variable
/// itself while loading the kubeconfig and refuses what kubectl accepts (`a,b,` with its
/// trailing comma, common in corporate settings), so `main` rewrites it before any thread starts.
pub fn normalized_no_proxy(raw: &str) -> Option<String> {
    let entries: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    if entries.contains(&"*") {
        Some("*".to_owned())
    } else if entries.is_empty() {
        None
    } else {
        Some(entries.join(","))
    }
}

/// Rewrites `NO_PROXY` and `no_proxy` with [`normalized_no_proxy`].
///
/// # Safety
///
/// Changes the process environment: call it before any other thread exists (first thing in
/// `main`, before the Tokio runtime), as `std::env::set_var` requires.
pub unsafe fn normalize_no_proxy_env() {
    for var in ["NO_PROXY", "no_proxy"] {
        let Ok(raw) = std::env::var(var) else {
            continue;
        };
        match normalized_no_proxy(&raw) {
            Some(value) if value == raw => {}
            // SAFETY: the caller guarantees no other thread reads or writes the environment.
            Some(value) => unsafe { std::env::set_var(var, value) },
            None => unsafe { std::env::remove_var(var) },
        }
    }
}

/// A proxy and where its setting came from (`HTTPS_PROXY`, the kubeconfig's `proxy-url`…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// The proxy's URL.
    pub url: http::Uri,
    /// Where it was set, for messages.
    pub source: String,
}

impl Proxy {
    /// `through proxy http://proxy:3128 (HTTPS_PROXY)`, without any password in the URL.
    pub fn describe(&self) -> String {
        format!("through proxy {} ({})", redacted(&self.url), self.source)
    }
}

/// How a proxy failed to carry a request to the API server, when that is why it could not be
/// reached: the proxy is the first hop, and "check that the cluster is up" would send the user
/// the wrong way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyFailure {
    /// No connection to the proxy itself (nothing listens there, or its name does not resolve).
    Unreachable,
    /// The proxy answered the CONNECT with 407 Proxy Authentication Required.
    AuthRequired,
    /// The proxy answered the CONNECT with another error (it cannot reach the API server, or
    /// its rules forbid it).
    Refused,
}

impl ProxyFailure {
    /// The failure in `err`'s chain, as hyper-util's proxy connectors word it; `None` when the
    /// proxy is not what failed.
    pub fn find(err: &(dyn std::error::Error + 'static)) -> Option<ProxyFailure> {
        let mut cause = Some(err);
        while let Some(e) = cause {
            let text = e.to_string();
            // `tunnel error: …` (an http(s) proxy's CONNECT), `SOCKS error: …` (socks5).
            if text.contains("tunnel error") || text.contains("SOCKS error") {
                if text.contains("failed to create underlying connection") {
                    return Some(ProxyFailure::Unreachable);
                }
                if text.contains("proxy authorization required") {
                    return Some(ProxyFailure::AuthRequired);
                }
                if text.contains("unsuccessful") {
                    return Some(ProxyFailure::Refused);
                }
            }
            cause = e.source();
        }
        None
    }

    /// What to do about it, for proxy `proxy` and API server `server`.
    pub fn hint(self, proxy: &Proxy, server: &http::Uri) -> String {
        let url = redacted(&proxy.url);
        let source = &proxy.source;
        let server_host = server.host().unwrap_or_default();
        // A proxy from the environment is skipped for hosts NO_PROXY names; the kubeconfig's
        // proxy-url is used whatever it says (as kubectl does).
        let bypass = if proxy.source.contains("kubeconfig") {
            format!("; if the API server needs no proxy, remove the {source}")
        } else {
            format!("; if the API server is reachable without it, add {server_host} to NO_PROXY")
        };
        match self {
            ProxyFailure::Unreachable => format!(
                "the proxy {url} (set by {source}) did not take the connection: check that it \
                 runs and that {source} names it{bypass}"
            ),
            // kube-rs sends the URL's user information as Basic credentials.
            ProxyFailure::AuthRequired
                if proxy
                    .url
                    .authority()
                    .is_some_and(|a| a.as_str().contains('@')) =>
            {
                format!(
                    "the proxy {url} (set by {source}) did not accept the credentials in {source} \
                 (407 Proxy Authentication Required): check the user and password there \
                 (characters such as @ : / % must be percent-encoded)"
                )
            }
            ProxyFailure::AuthRequired => format!(
                "the proxy {url} (set by {source}) wants credentials (407 Proxy Authentication \
                 Required): give them in {source}, as http://USER:PASSWORD@HOST:PORT"
            ),
            ProxyFailure::Refused => format!(
                "the proxy {url} (set by {source}) refused to open a connection to the API \
                 server {server_host}: it cannot reach it, or its rules do not allow it; ask \
                 its administrators{bypass}"
            ),
        }
    }
}

/// The URL without its user information (a proxy URL may carry a password).
pub fn redacted(url: &http::Uri) -> String {
    let scheme = url.scheme_str().unwrap_or("http");
    let host = url.host().unwrap_or_default();
    match url.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    }
}

/// The proxy for API server `server`: `kubeconfig` is the cluster's `proxy-url` with the
/// cluster's name, `env` reads an environment variable.
pub fn choose(
    kubeconfig: Option<(&str, &str)>,
    server: &http::Uri,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Proxy>, KspyError> {
    if let Some((cluster, url)) = kubeconfig.filter(|(_, url)| !url.trim().is_empty()) {
        let source = format!("proxy-url of cluster {cluster} in the kubeconfig");
        return parse(url, source).map(Some);
    }
    let vars: &[&str] = match server.scheme_str() {
        Some("https") => &["HTTPS_PROXY", "https_proxy"],
        Some("http") => &["HTTP_PROXY", "http_proxy"],
        _ => return Ok(None),
    };
    let Some((var, value)) = vars
        .iter()
        .find_map(|v| env(v).filter(|s| !s.is_empty()).map(|s| (*v, s)))
    else {
        return Ok(None);
    };
    let no_proxy = ["NO_PROXY", "no_proxy"]
        .iter()
        .find_map(|v| env(v).filter(|s| !s.is_empty()))
        .unwrap_or_default();
    if !use_proxy(server, &no_proxy) {
        return Ok(None);
    }
    parse(&value, var.to_string()).map(Some)
}

/// Parses a proxy URL as Go does: without a scheme (`proxy:3128`) it is `http://`.
fn parse(value: &str, source: String) -> Result<Proxy, KspyError> {
    let value = value.trim();
    let text = if value.contains("://") {
        value.to_string()
    } else {
        format!("http://{value}")
    };
    let bad = |why: String| {
        KspyError::new(format!("cannot use the proxy set by {source}: {why}")).hint(format!(
            "give {source} a URL such as http://proxy.example.com:3128 (http, https or socks5), \
             or unset it"
        ))
    };
    let url: http::Uri = text
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(format!("{value:?} is not a URL ({e})")))?;
    if url.host().is_none_or(str::is_empty) {
        return Err(bad(format!("{value:?} names no host")));
    }
    match url.scheme_str() {
        Some("http" | "https" | "socks5") => Ok(Proxy { url, source }),
        Some(other) => Err(bad(format!(
            "kspy speaks to http, https and socks5 proxies, not {other}"
        ))),
        None => Err(bad(format!("{value:?} has no scheme"))),
    }
}

/// Whether a request to `server` goes through the proxy, given `NO_PROXY` (Go's
/// `httpproxy.useProxy`).
pub fn use_proxy(server: &http::Uri, no_proxy: &str) -> bool {
    let Some(host) = server.host() else {
        return true;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = server
        .port_u16()
        .or(match server.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        })
        .map(|p| p.to_string())
        .unwrap_or_default();
    if host == "localhost" {
        return false;
    }
    let ip = host.parse::<IpAddr>().ok();
    if ip.is_some_and(|ip| ip.is_loopback()) {
        return false;
    }
    for entry in no_proxy.split(',') {
        let entry = entry.trim().to_ascii_lowercase();
        if entry.is_empty() {
            continue;
        }
        if entry == "*" {
            return false;
        }
        if let Some((net, bits)) = entry.split_once('/') {
            if let (Some(ip), Ok(net), Ok(bits)) = (ip, net.parse::<IpAddr>(), bits.parse::<u8>())
                && in_cidr(ip, net, bits)
            {
                return false;
            }
            continue;
        }
        let (entry_host, entry_port) = split_host_port(&entry);
        if entry_host.is_empty() {
            continue;
        }
        let port_matches = entry_port.is_empty() || entry_port == port;
        if let Ok(entry_ip) = entry_host.parse::<IpAddr>() {
            if ip == Some(entry_ip) && port_matches {
                return false;
            }
            continue;
        }
        if ip.is_some() {
            continue;
        }
        // `*.example.com` is `.example.com`; `example.com` also matches itself.
        let domain = entry_host.strip_prefix('*').unwrap_or(entry_host);
        let matches = if let Some(suffix) = domain.strip_prefix('.') {
            host.ends_with(&format!(".{suffix}"))
        } else {
            host == domain || host.ends_with(&format!(".{domain}"))
        };
        if matches && port_matches {
            return false;
        }
    }
    true
}

/// `host:port`, `[v6]:port`, or a bare host (an IPv6 address has colons of its own).
fn split_host_port(entry: &str) -> (&str, &str) {
    if let Some(rest) = entry.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':').unwrap_or_default()),
            None => (entry, ""),
        };
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            (host, port)
        }
        _ => (entry, ""),
    }
}

/// Whether `ip` is in `net/bits` (both of the same family).
fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_is_normalized_as_go_reads_it() {
        assert_eq!(normalized_no_proxy("a,b").as_deref(), Some("a,b"));
        assert_eq!(normalized_no_proxy(" a , ,b,").as_deref(), Some("a,b"));
        assert_eq!(normalized_no_proxy("a,*,b").as_deref(), Some("*"));
        assert_eq!(normalized_no_proxy(" , ,"), None);
        assert_eq!(normalized_no_proxy(""), None);
    }

    fn uri(s: &str) -> http::Uri {
        s.parse().expect("uri")
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn no_proxy_rules_as_go() {
        let api = uri("https://api.prod.example.com:6443");
        assert!(use_proxy(&api, ""));
        assert!(!use_proxy(&api, "*"));
        assert!(
            !use_proxy(&api, "example.com"),
            "a domain covers subdomains"
        );
        assert!(!use_proxy(&api, ".example.com"));
        assert!(!use_proxy(&api, "*.example.com"));
        assert!(
            !use_proxy(&api, " other.org , .EXAMPLE.com,"),
            "spaces, case, empty"
        );
        assert!(use_proxy(&api, "ample.com"), "not a label boundary");
        assert!(!use_proxy(&api, "api.prod.example.com:6443"));
        assert!(use_proxy(&api, "api.prod.example.com:443"), "another port");
        assert!(use_proxy(&uri("https://example.com"), ".example.com"));
        assert!(!use_proxy(&uri("https://example.com"), "example.com"));
        assert!(!use_proxy(&uri("https://example.com"), "example.com:443"));

        let ip = uri("https://10.1.2.3:6443");
        assert!(!use_proxy(&ip, "10.0.0.0/8"));
        assert!(use_proxy(&ip, "10.0.0.0/16"));
        assert!(!use_proxy(&ip, "10.1.2.3"));
        assert!(!use_proxy(&ip, "10.1.2.3:6443"));
        assert!(use_proxy(&ip, "10.1.2.3:443"));
        assert!(use_proxy(&ip, "1.2.3"), "a domain never matches an IP");
        assert!(!use_proxy(&uri("https://[fd00::5]:6443"), "fd00::/8"));
        assert!(!use_proxy(&uri("https://[fd00::5]:6443"), "[fd00::5]:6443"));

        // Loopback and localhost are never proxied, as in Go.
        assert!(!use_proxy(&uri("http://127.0.0.1:8080"), ""));
        assert!(!use_proxy(&uri("https://localhost:6443"), ""));
        assert!(!use_proxy(&uri("https://[::1]:6443"), ""));
    }

    #[test]
    fn env_proxy_follows_the_servers_scheme_and_no_proxy() {
        let env = env_of(&[
            ("HTTPS_PROXY", "http://user:secret@proxy.corp:3128"),
            ("http_proxy", "proxy.corp:8080"),
            ("NO_PROXY", ".internal"),
        ]);
        let p = choose(None, &uri("https://api.example.com"), &env)
            .expect("ok")
            .expect("proxied");
        assert_eq!(p.source, "HTTPS_PROXY");
        assert_eq!(
            p.describe(),
            "through proxy http://proxy.corp:3128 (HTTPS_PROXY)",
            "no password shown"
        );
        let p = choose(None, &uri("http://api.example.com:8080"), &env)
            .expect("ok")
            .expect("proxied");
        assert_eq!(
            p.url,
            uri("http://proxy.corp:8080"),
            "a bare host:port is http"
        );
        assert_eq!(p.source, "http_proxy");
        assert_eq!(
            choose(None, &uri("https://api.internal"), &env).expect("ok"),
            None
        );
        assert_eq!(
            choose(None, &uri("https://api.example.com"), &env_of(&[])).expect("ok"),
            None
        );
    }

    #[test]
    fn kubeconfig_proxy_url_wins_over_the_environment() {
        let env = env_of(&[("HTTPS_PROXY", "http://env:3128"), ("NO_PROXY", "*")]);
        let p = choose(
            Some(("prod", "socks5://127.0.0.1:1080")),
            &uri("https://127.0.0.1:6443"),
            &env,
        )
        .expect("ok")
        .expect("proxied");
        assert_eq!(p.url, uri("socks5://127.0.0.1:1080"));
        assert_eq!(p.source, "proxy-url of cluster prod in the kubeconfig");
    }

    #[test]
    fn unsupported_proxies_are_named() {
        let env = env_of(&[("HTTPS_PROXY", "socks4://proxy:1080")]);
        let err = choose(None, &uri("https://api.example.com"), &env).expect_err("socks4");
        assert_eq!(
            err.headline,
            "cannot use the proxy set by HTTPS_PROXY: kspy speaks to http, https and socks5 proxies, not socks4"
        );
        assert!(err.hint.expect("hint").contains("or unset it"));
    }

    /// The kubeconfig's proxy-url is used whatever NO_PROXY says: its hint says to remove it,
    /// not to add the server to NO_PROXY.
    #[test]
    fn a_proxy_url_from_the_kubeconfig_is_not_bypassed_with_no_proxy() {
        let proxy = Proxy {
            url: "http://proxy.corp:3128".parse().expect("uri"),
            source: "proxy-url of cluster prod in the kubeconfig".into(),
        };
        let server: http::Uri = "https://10.0.0.1:6443".parse().expect("uri");
        assert_eq!(
            ProxyFailure::Unreachable.hint(&proxy, &server),
            "the proxy http://proxy.corp:3128 (set by proxy-url of cluster prod in the \
             kubeconfig) did not take the connection: check that it runs and that proxy-url of \
             cluster prod in the kubeconfig names it; if the API server needs no proxy, remove \
             the proxy-url of cluster prod in the kubeconfig"
        );
    }

    #[test]
    fn proxy_failures_are_told_from_the_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect)")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other(
            "tunnel error: proxy authorization required",
        ));
        assert_eq!(ProxyFailure::find(&e), Some(ProxyFailure::AuthRequired));
        let e = Outer(std::io::Error::other(
            "SOCKS error: failed to create underlying connection",
        ));
        assert_eq!(ProxyFailure::find(&e), Some(ProxyFailure::Unreachable));
        let e = Outer(std::io::Error::other("tunnel error: unsuccessful"));
        assert_eq!(ProxyFailure::find(&e), Some(ProxyFailure::Refused));
        let e = Outer(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(ProxyFailure::find(&e), None);
    }
}
