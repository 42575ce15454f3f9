//! Host names as discovery meets them (agents', schedulers', `Host` headers): a trailing
//! `:port` dropped, and a lookup that prefers IPv4 (tasks mostly listen on IPv4 wildcards).

use std::net::IpAddr;

/// `name:port` → `name`; an IPv6 literal or a name without a port is left as it is.
pub(crate) fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.contains(':') => {
            name
        }
        _ => host,
    }
}

/// The address of `host` (an address itself, or a name looked up), IPv4 first.
pub(crate) async fn lookup(host: &str) -> std::io::Result<Option<IpAddr>> {
    if let Ok(ip) = host.parse() {
        return Ok(Some(ip));
    }
    let ips: Vec<IpAddr> = tokio::net::lookup_host((host, 0))
        .await?
        .map(|a| a.ip())
        .collect();
    Ok(ips.iter().find(|ip| ip.is_ipv4()).or(ips.first()).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_but_not_from_ipv6() {
        assert_eq!(strip_port("web.example.com:8080"), "web.example.com");
        assert_eq!(strip_port("127.0.0.1:5050"), "127.0.0.1");
        assert_eq!(strip_port("[::1]:80"), "[::1]:80");
        assert_eq!(strip_port("node-1"), "node-1");
    }

    #[tokio::test]
    async fn addresses_need_no_lookup() {
        assert_eq!(
            lookup("10.0.0.1").await.ok().flatten(),
            Some(IpAddr::from([10, 0, 0, 1]))
        );
    }
}
