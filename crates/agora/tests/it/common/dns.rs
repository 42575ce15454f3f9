//! Asking agora's DNS with a real resolver library (hickory-resolver).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::Resolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

/// A resolver asking only agora's DNS on `port` of 127.0.0.1, over UDP or TCP, caching
/// nothing.
pub fn resolver(port: u16, tcp: bool) -> Resolver<TokioRuntimeProvider> {
    let mut connection = if tcp {
        ConnectionConfig::tcp()
    } else {
        ConnectionConfig::udp()
    };
    connection.port = port;
    let server = NameServerConfig::new(IpAddr::from([127, 0, 0, 1]), true, vec![connection]);
    let mut builder = Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![server]),
        TokioRuntimeProvider::default(),
    );
    builder.options_mut().cache_size = 0;
    builder.options_mut().attempts = 1;
    builder.options_mut().timeout = Duration::from_secs(2);
    builder.build().unwrap()
}

pub async fn addresses(resolver: &Resolver<TokioRuntimeProvider>, name: &str) -> Vec<IpAddr> {
    match resolver.ipv4_lookup(name).await {
        Ok(lookup) => lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                _ => None,
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// (port, target) of each SRV answer.
pub async fn services(
    resolver: &Resolver<TokioRuntimeProvider>,
    name: &str,
) -> BTreeSet<(u16, String)> {
    match resolver.srv_lookup(name).await {
        Ok(lookup) => lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => Some((srv.port, srv.target.to_ascii())),
                _ => None,
            })
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}
