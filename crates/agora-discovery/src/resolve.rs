//! Host names as discovery meets them (agents', schedulers', `Host` headers, their `:port`
//! dropped by `agora_client::host_of`): a lookup that prefers IPv4 (tasks mostly listen on
//! IPv4 wildcards).

use std::net::IpAddr;

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

    #[tokio::test]
    async fn an_ipv6_host_with_its_port_is_looked_up_as_its_address() {
        assert_eq!(
            lookup(agora_client::host_of("[::1]:80"))
                .await
                .ok()
                .flatten(),
            Some(IpAddr::from(std::net::Ipv6Addr::LOCALHOST))
        );
    }

    #[tokio::test]
    async fn addresses_need_no_lookup() {
        assert_eq!(
            lookup("10.0.0.1").await.ok().flatten(),
            Some(IpAddr::from([10, 0, 0, 1]))
        );
    }
}
