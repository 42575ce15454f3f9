//! `agora lb status` (what each node's service proxy serves, from the agents' state) and
//! `agora dns lookup` (a query to the cluster's DNS, by the DNS protocol, as any client would).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use hickory_resolver::Resolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use serde_json::{Value, json};

use super::Context;
use super::output::{cell, render, table};
use crate::cli::DnsCommand;

/// Each connected agent with its `discovery` state (`null` where it runs none).
async fn nodes(context: &Context) -> anyhow::Result<Vec<Value>> {
    let state = context.master.state().await?;
    let mut nodes = Vec::new();
    for agent in state["slaves"].as_array().into_iter().flatten() {
        let Some(pid) = agent["pid"].as_str() else {
            continue;
        };
        let discovery = match context.agent(pid).state().await {
            Ok(state) => state["discovery"].clone(),
            Err(error) => json!({"error": error.to_string()}),
        };
        nodes.push(json!({
            "agent_id": agent["id"],
            "hostname": agent["hostname"],
            "address": pid.rsplit('@').next(),
            "discovery": discovery,
        }));
    }
    Ok(nodes)
}

pub async fn lb_status(context: &Context) -> anyhow::Result<()> {
    let nodes = Value::Array(nodes(context).await?);
    context.print(&nodes, lb_table);
    Ok(())
}

fn lb_table(nodes: &Value) -> String {
    let mut rows = table(&["NODE", "PORT", "APP", "BACKENDS", "STATUS"]);
    let mut vhosts = table(&["NODE", "VIRTUAL HOST", "PORT"]);
    let mut any_vhost = false;
    for node in nodes.as_array().into_iter().flatten() {
        let host = cell(&node["hostname"]);
        let discovery = &node["discovery"];
        if let Some(error) = discovery["error"].as_str() {
            rows.add_row(vec![
                host,
                "-".into(),
                "-".into(),
                "-".into(),
                error.to_owned(),
            ]);
            continue;
        }
        let proxy = &discovery["proxy"];
        if proxy.is_null() {
            rows.add_row(vec![
                host,
                "-".into(),
                "-".into(),
                "-".into(),
                "no service proxy".into(),
            ]);
            continue;
        }
        for (port, route) in proxy["ports"].as_object().into_iter().flatten() {
            let backends: Vec<String> = route["backends"]
                .as_array()
                .into_iter()
                .flatten()
                .map(cell)
                .collect();
            let status = match proxy["bind_errors"][port].as_str() {
                Some(error) => error.to_owned(),
                None if backends.is_empty() => "no healthy backend".into(),
                None => "serving".into(),
            };
            rows.add_row(vec![
                host.clone(),
                port.clone(),
                cell(&route["app"]),
                if backends.is_empty() {
                    "-".into()
                } else {
                    backends.join(",")
                },
                status,
            ]);
        }
        for (name, port) in proxy["http"]["vhosts"].as_object().into_iter().flatten() {
            any_vhost = true;
            vhosts.add_row(vec![host.clone(), name.clone(), cell(port)]);
        }
    }
    let mut text = render(&rows);
    if any_vhost {
        text.push_str("\n\n");
        text.push_str(&render(&vhosts));
    }
    text
}

pub async fn dns(context: &Context, command: DnsCommand) -> anyhow::Result<()> {
    let DnsCommand::Lookup { name, server } = command;
    let server = match server {
        Some(text) => text
            .parse::<SocketAddr>()
            .with_context(|| format!("--server {text} is not an address like 127.0.0.1:53"))?,
        None => dns_server(context).await?,
    };
    let answers = lookup(server, &name).await?;
    let value = json!({"name": name, "server": server.to_string(), "answers": answers});
    context.print(&value, |value| {
        let mut rows = table(&["NAME", "TYPE", "VALUE"]);
        for answer in value["answers"].as_array().into_iter().flatten() {
            let shown = match answer["type"].as_str() {
                Some("SRV") => format!("{}:{}", cell(&answer["target"]), cell(&answer["port"])),
                _ => cell(&answer["address"]),
            };
            rows.add_row(vec![cell(&answer["name"]), cell(&answer["type"]), shown]);
        }
        render(&rows)
    });
    Ok(())
}

/// The first agent's DNS server; an unspecified address means the agent's own.
async fn dns_server(context: &Context) -> anyhow::Result<SocketAddr> {
    for node in nodes(context).await? {
        let Some(address) = node["discovery"]["dns"]["address"].as_str() else {
            continue;
        };
        let Ok(mut server) = address.parse::<SocketAddr>() else {
            continue;
        };
        if server.ip().is_unspecified() {
            let host = node["address"].as_str().unwrap_or_default();
            if let Some(ip) = host
                .rsplit_once(':')
                .and_then(|(ip, _)| ip.parse::<IpAddr>().ok())
            {
                server.set_ip(ip);
            } else {
                server.set_ip(IpAddr::from([127, 0, 0, 1]));
            }
        }
        return Ok(server);
    }
    anyhow::bail!("no agent serves DNS (agents run it unless --dns-port 0); --server names one")
}

/// A and SRV answers for `name` (SRV for names starting with `_`), asked of `server` alone.
async fn lookup(server: SocketAddr, name: &str) -> anyhow::Result<Vec<Value>> {
    let mut connection = ConnectionConfig::udp();
    connection.port = server.port();
    let name_server = NameServerConfig::new(server.ip(), true, vec![connection]);
    let mut builder = Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![name_server]),
        TokioRuntimeProvider::default(),
    );
    builder.options_mut().cache_size = 0;
    builder.options_mut().attempts = 2;
    builder.options_mut().timeout = Duration::from_secs(2);
    // Cluster names are complete: no search domains appended.
    builder.options_mut().ndots = 0;
    let resolver = builder.build().context("cannot make a DNS resolver")?;
    let fqdn = if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    };
    let lookup = if name.starts_with('_') {
        resolver
            .srv_lookup(fqdn.as_str())
            .await
            .map(|l| l.answers().to_vec())
    } else {
        resolver
            .ipv4_lookup(fqdn.as_str())
            .await
            .map(|l| l.answers().to_vec())
    };
    let records = match lookup {
        Ok(records) => records,
        Err(error) if error.is_no_records_found() || error.is_nx_domain() => {
            anyhow::bail!("{name}: no such name in the cluster's DNS at {server}")
        }
        Err(error) => anyhow::bail!("cannot ask the DNS server at {server} about {name}: {error}"),
    };
    Ok(records
        .iter()
        .filter_map(|record| {
            let owner = record.name.to_ascii();
            match &record.data {
                RData::A(a) => {
                    Some(json!({"name": owner, "type": "A", "address": a.0.to_string()}))
                }
                RData::SRV(srv) => Some(json!({"name": owner, "type": "SRV",
                    "target": srv.target.to_ascii(), "port": srv.port,
                    "priority": srv.priority, "weight": srv.weight})),
                _ => None,
            }
        })
        .collect())
}
