//! DNS names in Mesos-DNS' scheme, answered from the same view the proxy follows, so a task's
//! name resolves as soon as its TASK_RUNNING reaches the node (Mesos-DNS polled every 60 s):
//!
//! - `<task>.marathon.<domain>` (and `.marathon.slave.`) A/AAAA: each running task's host, where
//!   `<task>` is Marathon's task name (the app id reversed, `/prod/web` → `web.prod`) turned into
//!   one label as Mesos-DNS does (`web-prod`);
//! - `_<task>._tcp.marathon.<domain>` (and `_udp`, and `.slave.`) SRV: each task port, aimed at
//!   `<task>-<hash of the task id>-<agent id tail>.marathon.slave.<domain>`;
//! - `leader.<domain>`, `master.<domain>` (with `_leader._tcp`/`_udp`, `_master._tcp` SRV),
//!   `slave.<domain>` for agents, `<framework>.<domain>` for each framework, `ns1.<domain>`, and
//!   SOA and NS at the apex.
//!
//! Names are matched without regard to case. A known name without records of the asked type
//! answers NOERROR and no records; an unknown one NXDOMAIN; a name outside the domain REFUSED
//! (this is not a recursive resolver). Answers are authoritative with a 5 s TTL; negative
//! answers may be cached for 1 s.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_server::proto::op::{Edns, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, NS, SOA, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::model::Cluster;

const TTL: u32 = 5;
const NEGATIVE_TTL: u32 = 1;

/// One answer for a name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rec {
    Addr(IpAddr),
    Srv { port: u16, target: String },
}

/// What the cluster has beyond apps, from the master.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    /// The master this node follows (the leader, until masters run in HA).
    pub master: Option<(IpAddr, u16)>,
    /// Framework names with their scheduler's address.
    pub frameworks: Vec<(String, IpAddr)>,
    pub agents: Vec<IpAddr>,
    /// This server's own address, for `ns1`.
    pub ns: Option<IpAddr>,
}

/// Every name the server answers, lower-case and without the final dot.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    pub domain: String,
    pub names: HashMap<String, Vec<Rec>>,
}

/// One DNS label the way Mesos-DNS makes it: lower case, anything outside `[a-z0-9-]` turned
/// into `-`, no `-` at either end, at most 63 characters.
pub fn label(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    let mut cut: String = trimmed.chars().take(63).collect();
    while cut.ends_with('-') {
        cut.pop();
    }
    cut
}

/// Marathon's task name for an app (`/prod/web` → `web.prod`) as one label (`web-prod`).
pub fn task_label(app_id: &str) -> String {
    let reversed: Vec<&str> = app_id
        .split('/')
        .filter(|part| !part.is_empty())
        .rev()
        .collect();
    label(&reversed.join("."))
}

/// Five base-36 characters of the task id's FNV-1a hash: stable and short.
fn short_hash(text: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..5)
        .map(|_| {
            let digit = digits[(hash % 36) as usize] as char;
            hash /= 36;
            digit
        })
        .collect()
}

impl Zone {
    /// The zone for a cluster: `addresses` resolves task hosts.
    pub fn build(
        domain: &str,
        cluster: &Cluster,
        members: &Members,
        addresses: &HashMap<String, IpAddr>,
    ) -> Zone {
        let domain = domain.trim_matches('.').to_ascii_lowercase();
        let mut names: BTreeMap<String, Vec<Rec>> = BTreeMap::new();
        let mut add = |name: String, rec: Rec| names.entry(name).or_default().push(rec);
        for task in cluster.tasks.values() {
            if task.state != "TASK_RUNNING" {
                continue;
            }
            let ip = match task.host.parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => match addresses.get(&task.host) {
                    Some(ip) => *ip,
                    None => continue,
                },
            };
            let name = task_label(&task.app_id);
            if name.is_empty() {
                continue;
            }
            let tail = label(task.agent_id.rsplit('-').next().unwrap_or_default());
            let canonical = if tail.is_empty() {
                format!("{name}-{}", short_hash(&task.id))
            } else {
                format!("{name}-{}-{tail}", short_hash(&task.id))
            };
            for zone in ["marathon", "marathon.slave"] {
                add(format!("{name}.{zone}.{domain}"), Rec::Addr(ip));
                add(format!("{canonical}.{zone}.{domain}"), Rec::Addr(ip));
                for port in task.ports.iter().copied().filter(|p| *p != 0) {
                    for protocol in ["_tcp", "_udp"] {
                        add(
                            format!("_{name}.{protocol}.{zone}.{domain}"),
                            Rec::Srv {
                                port,
                                target: format!("{canonical}.marathon.slave.{domain}"),
                            },
                        );
                    }
                }
            }
        }
        if let Some((ip, port)) = members.master {
            for role in ["leader", "master"] {
                add(format!("{role}.{domain}"), Rec::Addr(ip));
                for protocol in ["_tcp", "_udp"] {
                    add(
                        format!("_{role}.{protocol}.{domain}"),
                        Rec::Srv {
                            port,
                            target: format!("{role}.{domain}"),
                        },
                    );
                }
            }
        }
        for ip in &members.agents {
            add(format!("slave.{domain}"), Rec::Addr(*ip));
        }
        for (framework, ip) in &members.frameworks {
            let name = label(framework);
            if !name.is_empty() {
                add(format!("{name}.{domain}"), Rec::Addr(*ip));
            }
        }
        if let Some(ip) = members.ns {
            add(format!("ns1.{domain}"), Rec::Addr(ip));
        }
        let names = names
            .into_iter()
            .map(|(name, mut recs)| {
                recs.sort();
                recs.dedup();
                (name, recs)
            })
            .collect();
        Zone { domain, names }
    }

    fn holds(&self, name: &str) -> bool {
        name == self.domain || name.ends_with(&format!(".{}", self.domain))
    }
}

/// The zone being served, replaced whole on every change.
#[derive(Default)]
pub struct Served {
    zone: RwLock<Arc<Zone>>,
    serial: AtomicU64,
    pub queries: AtomicU64,
}

impl Served {
    pub fn replace(&self, zone: Zone) {
        *self.zone.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(zone);
        self.serial.fetch_add(1, Ordering::Relaxed);
    }

    pub fn zone(&self) -> Arc<Zone> {
        self.zone.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Answers queries from the served zone.
pub struct Handler {
    served: Arc<Served>,
    /// Rotates the order of several addresses between answers, as Mesos-DNS shuffles them.
    turn: AtomicUsize,
}

impl Handler {
    pub fn new(served: Arc<Served>) -> Handler {
        Handler {
            served,
            turn: AtomicUsize::new(0),
        }
    }
}

fn name(text: &str) -> Option<Name> {
    Name::from_ascii(format!("{text}.")).ok()
}

fn record(owner: &Name, rec: &Rec) -> Option<Record> {
    let rdata = match rec {
        Rec::Addr(IpAddr::V4(ip)) => RData::A(A(*ip)),
        Rec::Addr(IpAddr::V6(ip)) => RData::AAAA(AAAA(*ip)),
        Rec::Srv { port, target } => RData::SRV(SRV::new(0, 1, *port, name(target)?)),
    };
    Some(Record::from_rdata(owner.clone(), TTL, rdata))
}

fn wanted(rec: &Rec, asked: RecordType) -> bool {
    matches!(
        (rec, asked),
        (_, RecordType::ANY)
            | (Rec::Addr(IpAddr::V4(_)), RecordType::A)
            | (Rec::Addr(IpAddr::V6(_)), RecordType::AAAA)
            | (Rec::Srv { .. }, RecordType::SRV)
    )
}

impl Handler {
    fn soa(&self, zone: &Zone) -> Option<Record> {
        let apex = name(&zone.domain)?;
        let serial = self.served.serial.load(Ordering::Relaxed) as u32;
        let soa = SOA::new(
            name(&format!("ns1.{}", zone.domain))?,
            name(&format!("root.ns1.{}", zone.domain))?,
            serial,
            60,
            600,
            86400,
            NEGATIVE_TTL,
        );
        Some(Record::from_rdata(apex, TTL, RData::SOA(soa)))
    }

    /// The answer to one question: response code, answers, authority and additional records.
    fn answer(
        &self,
        asked: &str,
        kind: RecordType,
    ) -> (ResponseCode, Vec<Record>, Vec<Record>, Vec<Record>) {
        let zone = self.served.zone();
        let asked = asked.trim_end_matches('.').to_ascii_lowercase();
        if zone.domain.is_empty() || !zone.holds(&asked) {
            return (ResponseCode::Refused, vec![], vec![], vec![]);
        }
        let soa: Vec<Record> = self.soa(&zone).into_iter().collect();
        let Some(owner) = name(&asked) else {
            return (ResponseCode::NXDomain, vec![], soa, vec![]);
        };
        if asked == zone.domain {
            let mut answers = Vec::new();
            if matches!(kind, RecordType::SOA | RecordType::ANY) {
                answers.extend(soa.iter().cloned());
            }
            if matches!(kind, RecordType::NS | RecordType::ANY)
                && let Some(ns) = name(&format!("ns1.{}", zone.domain))
            {
                answers.push(Record::from_rdata(owner, TTL, RData::NS(NS(ns))));
            }
            let authority = if answers.is_empty() { soa } else { vec![] };
            return (ResponseCode::NoError, answers, authority, vec![]);
        }
        let Some(recs) = zone.names.get(&asked) else {
            return (ResponseCode::NXDomain, vec![], soa, vec![]);
        };
        let mut chosen: Vec<&Rec> = recs.iter().filter(|r| wanted(r, kind)).collect();
        if chosen.len() > 1 {
            let turn = self.turn.fetch_add(1, Ordering::Relaxed) % chosen.len();
            chosen.rotate_left(turn);
        }
        let answers: Vec<Record> = chosen.iter().filter_map(|r| record(&owner, r)).collect();
        // SRV targets' addresses, so a client needs no second query.
        let mut additional = Vec::new();
        for rec in &chosen {
            if let Rec::Srv { target, .. } = rec
                && let (Some(target_recs), Some(target_name)) =
                    (zone.names.get(target), name(target))
            {
                additional.extend(
                    target_recs
                        .iter()
                        .filter(|r| matches!(r, Rec::Addr(_)))
                        .filter_map(|r| record(&target_name, r)),
                );
            }
        }
        additional.sort_by_key(|r| r.name.to_ascii());
        additional.dedup();
        let authority = if answers.is_empty() { soa } else { vec![] };
        (ResponseCode::NoError, answers, authority, additional)
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: hickory_server::net::runtime::Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        self.served.queries.fetch_add(1, Ordering::Relaxed);
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        let edns = request.edns.as_ref().map(|asked| {
            let mut edns = Edns::new();
            edns.set_max_payload(asked.max_payload().max(512));
            edns
        });
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let question = request
            .request_info()
            .ok()
            .map(|info| (info.query.name().to_string(), info.query.query_type()));
        let result = match question {
            Some((asked, kind))
                if request.metadata.message_type == MessageType::Query
                    && request.metadata.op_code == OpCode::Query =>
            {
                let (code, answers, authority, additional) = self.answer(&asked, kind);
                metadata.response_code = code;
                let response = builder.build(
                    metadata,
                    answers.iter(),
                    [],
                    authority.iter(),
                    additional.iter(),
                );
                response_handle.send_response(response).await
            }
            _ => {
                let code = if question.is_none() {
                    ResponseCode::FormErr
                } else {
                    ResponseCode::NotImp
                };
                response_handle
                    .send_response(builder.error_msg(&request.metadata, code))
                    .await
            }
        };
        match result {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "a DNS answer could not be sent");
                let mut failed = Metadata::response_from_request(&request.metadata);
                failed.response_code = ResponseCode::ServFail;
                ResponseInfo::from(hickory_server::proto::op::Header {
                    metadata: failed,
                    counts: Default::default(),
                })
            }
        }
    }
}

/// Serves `served` over UDP and TCP on `address` until `shutdown`.
pub async fn serve(
    address: std::net::SocketAddr,
    served: Arc<Served>,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let udp = tokio::net::UdpSocket::bind(address).await?;
    let tcp = tokio::net::TcpListener::bind(address).await?;
    let mut server = hickory_server::Server::new(Handler::new(served));
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(5), 64 * 1024);
    tokio::spawn(async move {
        shutdown.cancelled().await;
        let _ = server.shutdown_gracefully().await;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn zone() -> Zone {
        let mut cluster = Cluster::default();
        let doc = json!({"apps": [
            {"id": "/prod/web", "portDefinitions": [{"port": 10001}],
             "tasks": [
                {"id": "prod_web.1", "host": "10.0.0.1", "slaveId": "abc-S1", "ports": [31000], "state": "TASK_RUNNING"},
                {"id": "prod_web.2", "host": "node-2", "slaveId": "abc-S2", "ports": [31001], "state": "TASK_RUNNING"},
                {"id": "prod_web.3", "host": "10.0.0.3", "slaveId": "abc-S3", "ports": [31002], "state": "TASK_STAGING"}]},
        ]});
        cluster
            .load_snapshot(doc.to_string().as_bytes())
            .expect("snapshot");
        let members = Members {
            master: Some((IpAddr::from([10, 0, 0, 9]), 5050)),
            frameworks: vec![("marathon".into(), IpAddr::from([10, 0, 0, 9]))],
            agents: vec![IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2])],
            ns: Some(IpAddr::from([10, 0, 0, 1])),
        };
        let addresses = HashMap::from([("node-2".to_owned(), IpAddr::from([10, 0, 0, 2]))]);
        Zone::build("Mesos.", &cluster, &members, &addresses)
    }

    #[test]
    fn labels_follow_mesos_dns() {
        assert_eq!(task_label("/prod/web"), "web-prod");
        assert_eq!(task_label("/a/b_c/D.e"), "d-e-b-c-a");
        assert_eq!(label("--x--"), "x");
        assert_eq!(label(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn running_tasks_get_a_and_srv_records() {
        let zone = zone();
        assert_eq!(
            zone.names["web-prod.marathon.mesos"],
            vec![
                Rec::Addr(IpAddr::from([10, 0, 0, 1])),
                Rec::Addr(IpAddr::from([10, 0, 0, 2]))
            ]
        );
        let srv = &zone.names["_web-prod._tcp.marathon.mesos"];
        assert_eq!(srv.len(), 2);
        for rec in srv {
            let Rec::Srv { target, .. } = rec else {
                panic!("{rec:?}")
            };
            assert!(zone.names.contains_key(target), "{target} has no address");
            assert!(target.ends_with(".marathon.slave.mesos"), "{target}");
        }
        assert!(
            zone.names
                .contains_key("_web-prod._udp.marathon.slave.mesos")
        );
        assert_eq!(
            zone.names["leader.mesos"],
            vec![Rec::Addr(IpAddr::from([10, 0, 0, 9]))]
        );
        assert_eq!(zone.names["slave.mesos"].len(), 2);
        assert!(zone.names.contains_key("marathon.mesos"));
        assert!(zone.names.contains_key("ns1.mesos"));
    }

    #[test]
    fn answers_by_type_and_name() {
        let served = Arc::new(Served::default());
        served.replace(zone());
        let handler = Handler::new(served);
        let (code, answers, authority, _) =
            handler.answer("Web-Prod.Marathon.Mesos.", RecordType::A);
        assert_eq!(code, ResponseCode::NoError);
        assert_eq!(answers.len(), 2);
        assert!(authority.is_empty());
        let (code, answers, authority, _) =
            handler.answer("web-prod.marathon.mesos", RecordType::AAAA);
        assert_eq!(code, ResponseCode::NoError);
        assert!(answers.is_empty());
        assert_eq!(authority.len(), 1, "the SOA, for negative caching");
        let (code, answers, _, additional) =
            handler.answer("_web-prod._tcp.marathon.mesos", RecordType::SRV);
        assert_eq!(code, ResponseCode::NoError);
        assert_eq!(answers.len(), 2);
        assert_eq!(additional.len(), 2, "the targets' addresses");
        let (code, ..) = handler.answer("nothing.marathon.mesos", RecordType::A);
        assert_eq!(code, ResponseCode::NXDomain);
        let (code, ..) = handler.answer("example.com", RecordType::A);
        assert_eq!(code, ResponseCode::Refused);
        let (code, answers, ..) = handler.answer("mesos", RecordType::NS);
        assert_eq!((code, answers.len()), (ResponseCode::NoError, 1));
    }
}
