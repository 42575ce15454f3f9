//! Network addresses as agora meets them: `host:port` strings from flags, schedulers' host
//! names and `Host` headers.

/// `10.0.0.5:5050` → `10.0.0.5`, `[::1]:5050` → `::1`: the host of an address (one without
/// a port stays as it is; so does a bare IPv6 address, whose colons are not a port's).
pub fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split_once(']').map_or(address, |(host, _)| host);
    }
    if address.matches(':').count() > 1 {
        return address;
    }
    address
        .rsplit_once(':')
        .filter(|(_, port)| port.parse::<u16>().is_ok())
        .map_or(address, |(host, _)| host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_host_of_names_and_addresses_v4_and_v6() {
        assert_eq!(host_of("10.0.0.5:5050"), "10.0.0.5");
        assert_eq!(host_of("web.example.com:8080"), "web.example.com");
        assert_eq!(host_of("master.example"), "master.example");
        assert_eq!(host_of("[::1]:80"), "::1");
        assert_eq!(host_of("[::1]"), "::1");
        assert_eq!(host_of("fe80::1"), "fe80::1");
        assert_eq!(host_of("[fe80::1%eth0]:5050"), "fe80::1%eth0");
        assert_eq!(host_of("node:notaport"), "node:notaport");
    }

    proptest! {
        #[test]
        fn an_address_with_a_port_gives_back_its_host(
            v4 in any::<std::net::Ipv4Addr>(),
            v6 in any::<std::net::Ipv6Addr>(),
            port in any::<u16>(),
        ) {
            let (v4_text, v6_text) = (v4.to_string(), v6.to_string());
            let (v4_port, v6_port) = (format!("{v4}:{port}"), format!("[{v6}]:{port}"));
            prop_assert_eq!(host_of(&v4_port), v4_text.as_str());
            prop_assert_eq!(host_of(&v6_port), v6_text.as_str());
            prop_assert_eq!(host_of(&v6_text), v6_text.as_str());
        }
    }
}
