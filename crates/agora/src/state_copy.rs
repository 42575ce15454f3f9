//! `agora registry export` / `import`: the masters' whole state — the registry, the services
//! state and the jobs state — as one JSON document, read from or written to the embedded
//! store (a master's data dir) or ZooKeeper (its state root), so that a single master becomes
//! an HA cluster (or the other way) without losing an agent, an app or a job. Only while no
//! master runs on it: the embedded store's files are locked by a running master, and a
//! ZooKeeper group with members in it is refused.

use std::io::{Read, Write as _};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::{Value, json};

use agora_store::{RedbStore, Store, Write};
use agora_zk::{StoreOptions, ZkStore, ZkUrl};

use crate::cli::{RegistryExportArgs, RegistryImportArgs, StateLocation};

/// The document's format marker and version.
const FORMAT: &str = "agora-state";
const VERSION: u64 = 1;

/// The embedded store's files and the keys each holds.
const EMBEDDED: [(&str, &str); 3] = [
    ("registry.redb", "registry/"),
    ("services.redb", "services/"),
    ("jobs.redb", "jobs/"),
];

/// Where the state is: the three files of a data dir, or one ZooKeeper store.
enum Location {
    Embedded(Vec<(Arc<dyn Store>, &'static str)>),
    ZooKeeper(Arc<dyn Store>),
}

impl Location {
    async fn open(location: &StateLocation) -> anyhow::Result<Location> {
        match (&location.data_dir, &location.zk) {
            (Some(dir), None) => Ok(Location::Embedded(open_embedded(dir)?)),
            (None, Some(zk)) => {
                let url = ZkUrl::parse(zk)?;
                refuse_running_masters(&url).await?;
                let options = StoreOptions::of_group(
                    &url,
                    location.zk_state.clone(),
                    None,
                    agora_zk::DEFAULT_SESSION_TIMEOUT,
                );
                let store = ZkStore::open(&url, options).await?;
                Ok(Location::ZooKeeper(Arc::new(store)))
            }
            _ => bail!("give the state's place: --data-dir DIR or --zk zk://HOST:PORT/PATH"),
        }
    }

    /// Every record, in key order.
    async fn records(&self) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let stores: Vec<(Arc<dyn Store>, &'static str)> = match self {
            Location::Embedded(stores) => stores.clone(),
            Location::ZooKeeper(store) => vec![(store.clone(), "")],
        };
        tokio::task::spawn_blocking(move || {
            let mut records = Vec::new();
            for (store, prefix) in stores {
                records.extend(store.list(prefix)?);
            }
            records.sort();
            Ok::<_, agora_store::StoreError>(records)
        })
        .await
        .context("the store's reader stopped")?
        .context("cannot read the state")
    }

    async fn write(&self, records: Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
        let mut batches: Vec<(Arc<dyn Store>, Vec<Write>)> = match self {
            Location::Embedded(stores) => stores
                .iter()
                .map(|(store, _)| (store.clone(), Vec::new()))
                .collect(),
            Location::ZooKeeper(store) => vec![(store.clone(), Vec::new())],
        };
        for (key, value) in records {
            let index = match self {
                Location::Embedded(stores) => stores
                    .iter()
                    .position(|(_, prefix)| key.starts_with(prefix))
                    .with_context(|| format!("record {key} belongs to no part of the state"))?,
                Location::ZooKeeper(_) => 0,
            };
            batches[index].1.push((key, Some(value)));
        }
        tokio::task::spawn_blocking(move || {
            for (store, writes) in batches {
                store.write_batch(&writes)?;
            }
            Ok::<_, agora_store::StoreError>(())
        })
        .await
        .context("the store's writer stopped")?
        .context("cannot write the state")
    }
}

fn open_embedded(dir: &Path) -> anyhow::Result<Vec<(Arc<dyn Store>, &'static str)>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    EMBEDDED
        .iter()
        .map(|(file, prefix)| {
            let path = dir.join(file);
            let store = RedbStore::open(&path).with_context(|| {
                format!(
                    "cannot open {} (does a master run on {}? stop it first)",
                    path.display(),
                    dir.display()
                )
            })?;
            Ok((Arc::new(store) as Arc<dyn Store>, *prefix))
        })
        .collect()
}

/// The state is moved only while no master of the group runs (one would overwrite it).
async fn refuse_running_masters(url: &ZkUrl) -> anyhow::Result<()> {
    let client = agora_zk::client::Client::connector()
        .with_session_timeout(agora_zk::DEFAULT_SESSION_TIMEOUT)
        .connect(&url.connect_string())
        .await
        .with_context(|| format!("cannot reach ZooKeeper at {}", url.connect_string()))?;
    let children = match client.list_children(&url.path).await {
        Ok(children) => children,
        Err(agora_zk::client::Error::NoNode) => Vec::new(),
        Err(error) => bail!("cannot read the masters' group {}: {error}", url.path),
    };
    let members = agora_zk::group::members(&children);
    if !members.is_empty() {
        bail!(
            "masters are running in {url} ({}): stop them before moving the state",
            members.join(", ")
        );
    }
    Ok(())
}

pub async fn export(args: RegistryExportArgs) -> anyhow::Result<()> {
    let location = Location::open(&args.from).await?;
    let records = location.records().await?;
    let document = json!({
        "format": FORMAT,
        "version": VERSION,
        "records": records.iter().map(|(key, value)| record_json(key, value)).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&document).context("cannot encode the state")?;
    match args.output.as_deref() {
        None | Some("-") => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .context("cannot write the state to stdout")?;
        }
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {path}"))?;
            // It holds agents' secrets' hashes and apps' environments.
            std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .with_context(|| format!("cannot restrict {path}"))?;
        }
    }
    to_stderr!("agora: exported {} records", records.len());
    Ok(())
}

pub async fn import(args: RegistryImportArgs) -> anyhow::Result<()> {
    let text = match args.input.as_deref() {
        None | Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the state from stdin")?;
            text
        }
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
        }
    };
    let records = parse_document(&text)?;
    let location = Location::open(&args.to).await?;
    let present = location.records().await?;
    if !present.is_empty() && !args.replace {
        bail!(
            "the target already holds {} records: import into an empty one, or give --replace \
             to write over them (records the document does not name stay)",
            present.len()
        );
    }
    let count = records.len();
    location.write(records).await?;
    to_stderr!("agora: imported {count} records");
    Ok(())
}

fn record_json(key: &str, value: &[u8]) -> Value {
    // Most records are JSON documents: kept readable (their readers parse them, so key order
    // need not survive); text as text; anything else as base64.
    match serde_json::from_slice::<Value>(value) {
        Ok(parsed) if parsed.is_object() || parsed.is_array() => {
            json!({"key": key, "json": parsed})
        }
        _ => match std::str::from_utf8(value) {
            Ok(text) => json!({"key": key, "text": text}),
            Err(_) => json!({
                "key": key,
                "base64": base64::engine::general_purpose::STANDARD.encode(value),
            }),
        },
    }
}

fn parse_document(text: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let document: Value = serde_json::from_str(text).context("the state is not JSON")?;
    if document["format"] != FORMAT || document["version"] != VERSION {
        bail!("not an agora state document (format \"{FORMAT}\", version {VERSION})");
    }
    let Some(records) = document["records"].as_array() else {
        bail!("the state document has no \"records\" list");
    };
    records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            let key = record["key"]
                .as_str()
                .filter(|key| !key.is_empty())
                .with_context(|| format!("record {index} has no key"))?;
            let value = if let Some(json) = record.get("json") {
                serde_json::to_vec(json)?
            } else if let Some(text) = record["text"].as_str() {
                text.as_bytes().to_vec()
            } else if let Some(encoded) = record["base64"].as_str() {
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .with_context(|| format!("record {key}: bad base64"))?
            } else {
                bail!("record {key} has no value (json, text or base64)");
            };
            Ok((key.to_owned(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_as_json_text_or_base64() {
        let records = [
            (
                "registry/agents/a".to_owned(),
                br#"{"id":"a","gone":false}"#.to_vec(),
            ),
            ("services/framework_id".to_owned(), b"abc-0001".to_vec()),
            ("jobs/odd".to_owned(), vec![0xff, 0x00, 0x7f]),
        ];
        let document = json!({
            "format": FORMAT, "version": VERSION,
            "records": records.iter().map(|(k, v)| record_json(k, v)).collect::<Vec<_>>(),
        });
        assert_eq!(document["records"][0]["json"]["id"], "a");
        assert_eq!(document["records"][1]["text"], "abc-0001");
        assert!(document["records"][2]["base64"].is_string());
        let back = parse_document(&document.to_string()).unwrap();
        assert_eq!(back[1..], records[1..]);
        let json = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).unwrap();
        assert_eq!(back[0].0, records[0].0);
        assert_eq!(json(&back[0].1), json(&records[0].1));
    }

    #[test]
    fn a_document_of_another_kind_is_refused() {
        let error = parse_document(r#"{"records": []}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("not an agora state document"), "{error}");
        assert!(parse_document("nope").is_err());
    }
}
