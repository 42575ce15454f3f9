//! The masters' state in ZooKeeper, as Marathon and Chronos keep theirs: one znode per record
//! under a state root of its own (never under the masters' group, which holds members only),
//! and every write fenced — a ZooKeeper transaction whose first operation checks that the
//! writer's own member znode still exists. A master that has lost its session (and so its
//! znode, and so its leadership) can never write again, whatever it still believes.
//!
//! Layout: a key `dir/name` (split at its last `/`) is the znode
//! `<root>/<dir>/<bucket>/<name>`, `dir` and `name` escaped into one component each, `bucket`
//! one of 64 (`@00`…`@3f`) picked by a hash of the name — so a family of 100,000 instances
//! never lists as one response beyond ZooKeeper's 1 MB packet limit. A value is stored with a
//! one-byte header: raw, or deflated when it is larger than [`COMPRESS_ABOVE`]; a record still
//! larger than [`MAX_NODE_BYTES`] is refused. A batch larger than [`MAX_TRANSACTION_BYTES`] is
//! committed as several fenced transactions, in the order of the writers' final writes (each
//! record is whole; ZooKeeper's packet limit bounds a transaction).
//!
//! ZooKeeper's client is asynchronous and the `Store` trait is not: the store runs its own
//! thread with a runtime and a session of its own; the trait's calls send it requests and wait
//! for the answer (the registrar's thread, and start-up reads).

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write as _};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::mpsc;
use zookeeper_client as zk;

use agora_store::{Store, StoreError, Write};

use crate::{RETRY, ZkError, ZkUrl, connect, ends_session};

/// Values larger than this are deflated.
pub const COMPRESS_ABOVE: usize = 64 * 1024;
/// What one znode may hold (ZooKeeper's `jute.maxbuffer` is 1 MiB, with the request around it).
pub const MAX_NODE_BYTES: usize = 1_000_000;
/// Bytes of one transaction's request at most (the server's limit is 1 MiB).
pub const MAX_TRANSACTION_BYTES: usize = 512 * 1024;
/// Operations of one transaction at most.
const MAX_OPERATIONS: usize = 1000;
/// What an operation costs beyond its path and value (its header, ACLs, a parent's creation).
const OPERATION_OVERHEAD: usize = 128;
const BUCKETS: u32 = 64;
const RAW: u8 = 0;
const DEFLATED: u8 = 1;

/// The state store of the masters whose group is at `group`.
pub struct ZkStore {
    requests: mpsc::UnboundedSender<Request>,
}

/// Where the state lives and who writes it.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The state root (`--zk-state`), e.g. `/agora-state`.
    pub root: String,
    /// The writer's member znode (full path): every write checks it still exists. `None` only
    /// for tools that move state while no master runs (`agora registry import`).
    pub fence: Option<String>,
    pub session_timeout: Duration,
}

impl StoreOptions {
    /// The state of the masters whose group is `url`'s: under `root`, or beside the group
    /// ([`default_state_root`]).
    pub fn of_group(
        url: &ZkUrl,
        root: Option<String>,
        fence: Option<String>,
        session_timeout: Duration,
    ) -> StoreOptions {
        StoreOptions {
            root: root.unwrap_or_else(|| default_state_root(&url.path)),
            fence,
            session_timeout,
        }
    }
}

/// The state root a group's masters use unless told otherwise: beside the group, not in it
/// (`/agora` keeps its state in `/agora-state`).
pub fn default_state_root(group: &str) -> String {
    format!("{group}-state")
}

type Reply<T> = std::sync::mpsc::Sender<Result<T, StoreError>>;

enum Request {
    Sync(Reply<()>),
    Get(String, Reply<Option<Vec<u8>>>),
    List(String, Reply<Vec<(String, Vec<u8>)>>),
    Batch(Vec<Write>, Reply<()>),
}

impl ZkStore {
    /// Connects to `url`'s ensemble and opens the state root, made if missing. A root that
    /// belongs to the masters of another group is refused.
    pub async fn open(url: &ZkUrl, options: StoreOptions) -> Result<ZkStore, ZkError> {
        let (requests, receiver) = mpsc::unbounded_channel();
        let (ready, started) = tokio::sync::oneshot::channel();
        let (thread_url, thread_options) = (url.clone(), options.clone());
        // The worker makes its session on a runtime of its own, so that the trait's blocking
        // calls, wherever they come from, can never starve it.
        std::thread::Builder::new()
            .name("zk-store".into())
            .spawn(move || run(thread_url, thread_options, receiver, ready))
            .map_err(|e| ZkError::Zk {
                path: options.root.clone(),
                source: zk::Error::UnexpectedError(format!("cannot start a thread: {e}")),
            })?;
        match started.await {
            Ok(Ok(())) => Ok(ZkStore { requests }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(ZkError::Zk {
                path: options.root,
                source: zk::Error::ClientClosed,
            }),
        }
    }

    /// Brings this store's session up to date with the ensemble's leader (ZooKeeper orders
    /// reads within a session only): a master that has just been elected on another session
    /// calls it before it reads its predecessor's state. Blocking.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.ask(Request::Sync)
    }

    fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, StoreError> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.requests
            .send(make(reply))
            .map_err(|_| StoreError::Backend("the ZooKeeper store has stopped".into()))?;
        answer
            .recv()
            .map_err(|_| StoreError::Backend("the ZooKeeper store has stopped".into()))?
    }
}

impl Store for ZkStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.ask(|reply| Request::Get(key.to_owned(), reply))
    }

    fn write_batch(&self, writes: &[Write]) -> Result<(), StoreError> {
        self.ask(|reply| Request::Batch(writes.to_vec(), reply))
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.ask(|reply| Request::List(prefix.to_owned(), reply))
    }
}

/// What the root holds to say whose state it is.
fn marker(group: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"agora_state_of": group})).unwrap_or_default()
}

async fn claim_root(client: &zk::Client, root: &str, group: &str) -> Result<(), ZkError> {
    let refuse = |found: String| ZkError::OtherState {
        root: root.to_owned(),
        found,
    };
    if root == group || root.starts_with(&format!("{group}/")) {
        return Err(refuse(format!(
            "it is inside the masters' group {group}, which must hold members only"
        )));
    }
    if parent_of(root) != "/" {
        crate::contender::make_path(client, parent_of(root)).await?;
    }
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    match client.create(root, &marker(group), &options).await {
        Ok(_) | Err(zk::Error::NodeExists) => {}
        Err(source) => {
            return Err(ZkError::Zk {
                path: root.to_owned(),
                source,
            });
        }
    }
    let (data, _) = client.get_data(root).await.map_err(crate::at(root))?;
    if data == marker(group) {
        return Ok(());
    }
    let owner = serde_json::from_slice::<serde_json::Value>(&data)
        .ok()
        .and_then(|v| v.get("agora_state_of")?.as_str().map(str::to_owned));
    Err(refuse(match owner {
        Some(other) => format!("it is the state of the masters at {other}"),
        None => "it holds something other than agora's state".to_owned(),
    }))
}

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(index) => &path[..index],
    }
}

struct Worker {
    client: zk::Client,
    url: ZkUrl,
    options: StoreOptions,
    /// Directory and bucket znodes known to exist.
    parents: HashSet<String>,
}

fn run(
    url: ZkUrl,
    options: StoreOptions,
    mut requests: mpsc::UnboundedReceiver<Request>,
    ready: tokio::sync::oneshot::Sender<Result<(), ZkError>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(ZkError::Zk {
                path: options.root.clone(),
                source: zk::Error::UnexpectedError(error.to_string()),
            }));
            return;
        }
    };
    runtime.block_on(async move {
        // The root is claimed on the worker's own session: one session per store.
        let claimed = match connect(&url, options.session_timeout).await {
            Ok(client) => claim_root(&client, &options.root, &url.path)
                .await
                .map(|()| client),
            Err(error) => Err(error),
        };
        let mut worker = match claimed {
            Ok(client) => Worker {
                client,
                url,
                options,
                parents: HashSet::new(),
            },
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        // An idle receive awaits on the runtime, which keeps the session's pings going.
        while let Some(request) = requests.recv().await {
            match request {
                Request::Sync(reply) => {
                    let _ = reply.send(worker.sync().await);
                }
                Request::Get(key, reply) => {
                    let _ = reply.send(worker.get(&key).await);
                }
                Request::List(prefix, reply) => {
                    let _ = reply.send(worker.list(&prefix).await);
                }
                Request::Batch(writes, reply) => {
                    let _ = reply.send(worker.write(&writes).await);
                }
            }
        }
    });
}

/// Why one attempt failed.
enum Failure {
    /// Try again: the connection was lost within the session, or the session ended (a new one
    /// is made).
    Again(zk::Error),
    Final(StoreError),
}

fn failure(path: &str, error: zk::Error) -> Failure {
    match error {
        zk::Error::ConnectionLoss | zk::Error::Timeout | zk::Error::Throttled => {
            Failure::Again(error)
        }
        error if ends_session(&error) => Failure::Again(error),
        error => Failure::Final(StoreError::Backend(format!("ZooKeeper at {path}: {error}"))),
    }
}

impl Worker {
    /// Runs `attempt` until it succeeds, fails for good, or ZooKeeper stays away longer than
    /// twice the session timeout.
    async fn retrying<T, F, Fut>(&mut self, what: &str, attempt: F) -> Result<T, StoreError>
    where
        F: Fn(zk::Client, HashSet<String>) -> Fut,
        Fut: std::future::Future<Output = Result<(T, HashSet<String>), Failure>>,
    {
        let deadline = tokio::time::Instant::now() + self.options.session_timeout * 2;
        loop {
            match attempt(self.client.clone(), self.parents.clone()).await {
                Ok((value, parents)) => {
                    self.parents = parents;
                    return Ok(value);
                }
                Err(Failure::Final(error)) => return Err(error),
                Err(Failure::Again(error)) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(StoreError::Backend(format!(
                            "ZooKeeper at {} did not answer {what}: {error}",
                            self.url
                        )));
                    }
                    tracing::warn!(%error, what, "ZooKeeper store request failed; retrying");
                    tokio::time::sleep(RETRY).await;
                    if ends_session(&error) {
                        self.parents.clear();
                        if let Ok(client) = connect(&self.url, self.options.session_timeout).await {
                            self.client = client;
                        }
                    }
                }
            }
        }
    }

    async fn sync(&mut self) -> Result<(), StoreError> {
        let root = self.options.root.clone();
        self.retrying("a sync", |client, parents| {
            let root = root.clone();
            async move {
                match client.sync(&root).await {
                    Ok(()) => Ok(((), parents)),
                    Err(error) => Err(failure(&root, error)),
                }
            }
        })
        .await
    }

    async fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = record_path(&self.options.root, key);
        let key = key.to_owned();
        self.retrying("a read", |client, parents| {
            let path = path.clone();
            let key = key.clone();
            async move {
                match client.get_data(&path).await {
                    Ok((data, _)) => Ok((Some(decode(&key, &data)?), parents)),
                    Err(zk::Error::NoNode) => Ok((None, parents)),
                    Err(error) => Err(failure(&path, error)),
                }
            }
        })
        .await
    }

    async fn list(&mut self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let root = self.options.root.clone();
        let prefix = prefix.to_owned();
        self.retrying("a listing", |client, parents| {
            let root = root.clone();
            let prefix = prefix.clone();
            async move {
                let listed = list_records(&client, &root, &prefix).await?;
                Ok((listed, parents))
            }
        })
        .await
    }

    async fn write(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        let mut chunk: Vec<&Write> = Vec::new();
        let mut bytes = 0;
        for write in writes {
            // What an operation costs in the request: its value, its path (root, escaped
            // dir, bucket, escaped name) and the operation's own framing, with a parent or two
            // to make now and then.
            let size = write.1.as_ref().map_or(0, Vec::len)
                + 3 * (self.options.root.len() + write.0.len())
                + OPERATION_OVERHEAD;
            if !chunk.is_empty()
                && (bytes + size > MAX_TRANSACTION_BYTES || chunk.len() >= MAX_OPERATIONS)
            {
                self.commit(std::mem::take(&mut chunk)).await?;
                bytes = 0;
            }
            bytes += size;
            chunk.push(write);
        }
        if chunk.is_empty() {
            return Ok(());
        }
        self.commit(chunk).await
    }

    /// One fenced transaction: whether each record exists is read first, so that a retry after
    /// a lost connection (which may or may not have committed) does the same again.
    async fn commit(&mut self, writes: Vec<&Write>) -> Result<(), StoreError> {
        let root = self.options.root.clone();
        let fence = self.options.fence.clone();
        let mut encoded: Vec<(String, String, Option<Vec<u8>>)> = Vec::with_capacity(writes.len());
        for (key, value) in writes {
            let value = match value {
                Some(value) => Some(encode(key, value)?),
                None => None,
            };
            encoded.push((key.clone(), record_path(&root, key), value));
        }
        self.retrying("a write", |client, mut parents| {
            let encoded = &encoded;
            let fence = fence.clone();
            async move {
                let exists =
                    join_all(encoded.iter().map(|(_, path, _)| client.check_stat(path))).await;
                let mut missing_parents: Vec<String> = Vec::new();
                for (_, path, value) in encoded {
                    if value.is_none() {
                        continue;
                    }
                    let bucket = parent_of(path).to_owned();
                    let dir = parent_of(&bucket).to_owned();
                    for parent in [dir, bucket] {
                        if !parents.contains(&parent) && !missing_parents.contains(&parent) {
                            missing_parents.push(parent);
                        }
                    }
                }
                let parent_stats =
                    join_all(missing_parents.iter().map(|p| client.check_stat(p))).await;
                let mut writer = client.new_multi_writer();
                let op = |error: zk::Error| Failure::Final(StoreError::Backend(error.to_string()));
                if let Some(fence) = &fence {
                    // The member znode is written once, at its creation: version 0.
                    writer.add_check_version(fence, 0).map_err(op)?;
                }
                let create = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                let mut made = Vec::new();
                for (parent, stat) in missing_parents.iter().zip(parent_stats) {
                    match stat {
                        Ok(Some(_)) => made.push(parent.clone()),
                        Ok(None) => {
                            writer.add_create(parent, &[], &create).map_err(op)?;
                            made.push(parent.clone());
                        }
                        Err(error) => return Err(failure(parent, error)),
                    }
                }
                for ((_, path, value), stat) in encoded.iter().zip(exists) {
                    let present = match stat {
                        Ok(stat) => stat.is_some(),
                        Err(error) => return Err(failure(path, error)),
                    };
                    match (value, present) {
                        (Some(data), true) => writer.add_set_data(path, data, None).map_err(op)?,
                        (Some(data), false) => {
                            writer.add_create(path, data, &create).map_err(op)?
                        }
                        (None, true) => writer.add_delete(path, None).map_err(op)?,
                        (None, false) => {}
                    }
                }
                match writer.commit().await {
                    Ok(_) => {
                        parents.extend(made);
                        Ok(((), parents))
                    }
                    Err(zk::MultiWriteError::OperationFailed { index: 0, source })
                        if fence.is_some() =>
                    {
                        Err(Failure::Final(StoreError::Fenced(format!(
                            "its member znode is gone ({source})"
                        ))))
                    }
                    Err(zk::MultiWriteError::OperationFailed { index, source }) => Err(failure(
                        &format!("operation {index} of a transaction"),
                        source,
                    )),
                    Err(zk::MultiWriteError::RequestFailed { source }) => {
                        Err(failure("a transaction", source))
                    }
                }
            }
        })
        .await
    }
}

async fn list_records(
    client: &zk::Client,
    root: &str,
    prefix: &str,
) -> Result<Vec<(String, Vec<u8>)>, Failure> {
    let dirs = client
        .list_children(root)
        .await
        .map_err(|e| failure(root, e))?;
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    for dir_component in dirs {
        let Some(dir) = unescape_dir(&dir_component) else {
            continue;
        };
        let dir_path = format!("{root}/{dir_component}");
        let with_slash = match dir {
            None => String::new(),
            Some(dir) => format!("{dir}/"),
        };
        // Which names of this dir can match: all, some (the prefix runs into the name), none.
        let name_prefix = if with_slash.starts_with(prefix) {
            String::new()
        } else if let Some(rest) = prefix.strip_prefix(&with_slash) {
            if rest.contains('/') {
                continue;
            }
            rest.to_owned()
        } else {
            continue;
        };
        let buckets = match client.list_children(&dir_path).await {
            Ok(buckets) => buckets,
            Err(zk::Error::NoNode) => continue,
            Err(error) => return Err(failure(&dir_path, error)),
        };
        let bucket_paths: Vec<String> = buckets
            .iter()
            .filter(|b| b.starts_with('@'))
            .map(|b| format!("{dir_path}/{b}"))
            .collect();
        let listed = join_all(bucket_paths.iter().map(|p| client.list_children(p))).await;
        for (bucket_path, names) in bucket_paths.iter().zip(listed) {
            let names = match names {
                Ok(names) => names,
                Err(zk::Error::NoNode) => continue,
                Err(error) => return Err(failure(bucket_path, error)),
            };
            for escaped in names {
                let Some(name) = unescape(&escaped) else {
                    continue;
                };
                if name.starts_with(&name_prefix) {
                    found.insert(
                        format!("{with_slash}{name}"),
                        format!("{bucket_path}/{escaped}"),
                    );
                }
            }
        }
    }
    let keys: Vec<(String, String)> = found.into_iter().collect();
    let data = join_all(keys.iter().map(|(_, path)| client.get_data(path))).await;
    let mut records = Vec::with_capacity(keys.len());
    for ((key, path), data) in keys.into_iter().zip(data) {
        match data {
            Ok((bytes, _)) => records.push((key.clone(), decode(&key, &bytes)?)),
            // Deleted between the listing and the read: not there.
            Err(zk::Error::NoNode) => {}
            Err(error) => return Err(failure(&path, error)),
        }
    }
    Ok(records)
}

fn encode(key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
    let encoded = if value.len() > COMPRESS_ABOVE {
        let mut encoder =
            flate2::write::DeflateEncoder::new(vec![DEFLATED], flate2::Compression::default());
        encoder
            .write_all(value)
            .and_then(|()| encoder.finish())
            .map_err(|e| StoreError::Backend(format!("cannot compress {key}: {e}")))?
    } else {
        let mut raw = Vec::with_capacity(value.len() + 1);
        raw.push(RAW);
        raw.extend_from_slice(value);
        raw
    };
    if encoded.len() > MAX_NODE_BYTES {
        return Err(StoreError::TooLarge {
            key: key.to_owned(),
            size: encoded.len(),
        });
    }
    Ok(encoded)
}

fn decode(key: &str, data: &[u8]) -> Result<Vec<u8>, Failure> {
    let corrupt = |why: &str| {
        Failure::Final(StoreError::Backend(format!(
            "record {key} in ZooKeeper is unreadable: {why}"
        )))
    };
    match data.split_first() {
        Some((&RAW, rest)) => Ok(rest.to_vec()),
        Some((&DEFLATED, rest)) => {
            let mut value = Vec::new();
            flate2::read::DeflateDecoder::new(rest)
                .read_to_end(&mut value)
                .map_err(|e| corrupt(&e.to_string()))?;
            Ok(value)
        }
        Some((other, _)) => Err(corrupt(&format!("unknown header byte {other}"))),
        None => Err(corrupt("empty")),
    }
}

/// `<root>/<dir>/<bucket>/<name>` of a key: a key without `/` has the dir `@`.
fn record_path(root: &str, key: &str) -> String {
    let (dir, name) = match key.rsplit_once('/') {
        Some((dir, name)) => (escape(dir), name),
        None => ("@".to_owned(), key),
    };
    format!("{root}/{dir}/@{:02x}/{}", bucket(name), escape(name))
}

/// FNV-1a: stable across builds, unlike the standard library's hasher.
fn bucket(name: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % BUCKETS
}

/// One znode name for any text: bytes outside `[A-Za-z0-9_-]` and dots that would make `.`
/// or `..` are `%XX`; the empty text is a bare `%` (which nothing else escapes to); `@` and
/// `/` never appear.
fn escape(text: &str) -> String {
    if text.is_empty() {
        return "%".to_owned();
    }
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric()
            || byte == b'_'
            || byte == b'-'
            || (byte == b'.' && text != "." && text != "..")
        {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

fn unescape(text: &str) -> Option<String> {
    if text == "%" {
        return Some(String::new());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The dir a component names: `None` for keys without `/` (`@`), `Some(dir)` otherwise;
/// a component that is no dir's is skipped.
fn unescape_dir(component: &str) -> Option<Option<String>> {
    if component == "@" {
        return Some(None);
    }
    if component.starts_with('@') {
        return None;
    }
    unescape(component).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_key_becomes_a_record_in_a_bucket_of_its_dir() {
        let path = record_path("/agora-state", "services/apps/prod/web");
        assert!(path.starts_with("/agora-state/services%2Fapps%2Fprod/@"));
        assert!(path.ends_with("/web"));
        assert_eq!(
            record_path("/s", "jobs/queue"),
            format!("/s/jobs/@{:02x}/queue", bucket("queue"))
        );
        assert!(record_path("/s", "top").starts_with("/s/@/@"));
        // An empty name or dir is a component of its own, not a trailing `/`.
        assert!(record_path("/s", "services/group_versions/").ends_with("/%"));
        assert!(record_path("/s", "/x").starts_with("/s/%/@"));
        assert!(record_path("/s", "jobs/definitions/..").ends_with("/%2E%2E"));
    }

    #[test]
    fn values_round_trip_raw_or_deflated_and_the_too_large_are_refused() {
        let small = b"{\"id\":\"/web\"}".to_vec();
        let encoded = encode("k", &small).unwrap();
        assert_eq!(encoded[0], RAW);
        assert_eq!(decode("k", &encoded).ok(), Some(small));
        let large: Vec<u8> = (0..2_000_000u32).map(|i| (i % 13) as u8).collect();
        let encoded = encode("k", &large).unwrap();
        assert_eq!(encoded[0], DEFLATED);
        assert!(encoded.len() < MAX_NODE_BYTES);
        assert_eq!(decode("k", &encoded).ok(), Some(large));
        // Incompressible and too large.
        let mut noise = Vec::with_capacity(1_500_000);
        let mut state: u64 = 7;
        for _ in 0..1_500_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            noise.push((state >> 33) as u8);
        }
        assert!(matches!(
            encode("k", &noise),
            Err(StoreError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn any_text_escapes_to_one_znode_name_and_back(text in "\\PC{0,40}") {
            let escaped = escape(&text);
            prop_assert!(!escaped.is_empty());
            prop_assert!(!escaped.contains('/') && !escaped.contains('@'));
            prop_assert!(escaped != "." && escaped != "..");
            prop_assert_eq!(unescape(&escaped), Some(text));
        }
    }
}
