//! Writes leave their callers' locks, as Mesos' Registrar does: a registrar thread takes the
//! writes in the order they were given, commits whatever has queued up as one batch (one
//! durable step for many writers), and tells each writer once its writes are durable. A
//! failed commit is final: the process that owns the state must stop acting on it (the store
//! may hold less than it believes, or, in ZooKeeper, it may no longer lead).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::{Store, StoreError};

/// One write: a value for a key, or `None` to delete it.
pub type Write = (String, Option<Vec<u8>>);

/// How far the registrar has come: every write up to `committed` is durable; after a failure
/// nothing more ever is.
#[derive(Clone, Debug, Default)]
struct Progress {
    committed: u64,
    failed: Option<Arc<StoreError>>,
}

#[derive(Default)]
struct Queue {
    writes: Vec<Write>,
    /// Number of the last write call queued.
    queued: u64,
    closed: bool,
}

struct Shared {
    store: Arc<dyn Store>,
    queue: Mutex<Queue>,
    work: Condvar,
    progress: watch::Sender<Progress>,
}

/// The registrar's handle; clones share one thread. The thread ends once every handle is
/// dropped and what was queued is committed.
#[derive(Clone)]
pub struct Registrar {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

/// Closes the queue when the last handle goes, so the thread commits the rest and ends.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        lock(&self.0.queue).closed = true;
        self.0.work.notify_one();
    }
}

/// The registrar failed: the write and every write after it are not durable.
#[derive(Clone, Debug, thiserror::Error)]
#[error("the state store failed; nothing more is written: {0}")]
pub struct RegistrarFailed(pub Arc<StoreError>);

/// A promise that the writes queued so far will be durable.
#[must_use = "a commit not awaited is a write nobody waits for; drop it explicitly"]
pub struct Commit {
    upto: u64,
    progress: watch::Receiver<Progress>,
}

impl Commit {
    /// Resolves once every write queued before this commit is durable.
    pub async fn committed(mut self) -> Result<(), RegistrarFailed> {
        let upto = self.upto;
        let progress = self
            .progress
            .wait_for(|p| p.committed >= upto || p.failed.is_some())
            .await;
        match progress {
            Ok(progress) => match &progress.failed {
                Some(error) if progress.committed < upto => Err(RegistrarFailed(error.clone())),
                _ => Ok(()),
            },
            // The thread is gone without saying: it cannot have committed.
            Err(_) => Err(RegistrarFailed(Arc::new(StoreError::Backend(
                "the registrar stopped".into(),
            )))),
        }
    }

    /// The same, for callers outside the runtime (start-up, tests).
    pub fn wait(self) -> Result<(), RegistrarFailed> {
        let mut progress = self.progress;
        loop {
            {
                let current = progress.borrow_and_update();
                if current.committed >= self.upto {
                    return Ok(());
                }
                if let Some(error) = &current.failed {
                    return Err(RegistrarFailed(error.clone()));
                }
            }
            // No runtime to park on: poll the watch at a short interval.
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    // The queue holds plain data: a panic elsewhere leaves it consistent.
    queue
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Registrar {
    /// Starts the registrar thread over `store`.
    pub fn spawn(store: Arc<dyn Store>) -> Result<Registrar, StoreError> {
        let (progress, _) = watch::channel(Progress::default());
        let shared = Arc::new(Shared {
            store,
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            progress,
        });
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("registrar".into())
            .spawn(move || run(&worker))
            .map_err(|e| StoreError::Backend(format!("cannot start the registrar: {e}")))?;
        Ok(Registrar {
            _owner: Arc::new(Owner(shared.clone())),
            shared,
        })
    }

    /// The store, for reading what was committed (at start-up, before writes begin).
    pub fn store(&self) -> &dyn Store {
        &*self.shared.store
    }

    /// Queues writes; they are committed together with whatever else is queued.
    pub fn write(&self, writes: Vec<Write>) -> Commit {
        let upto = {
            let mut queue = lock(&self.shared.queue);
            queue.writes.extend(writes);
            queue.queued += 1;
            queue.queued
        };
        self.shared.work.notify_one();
        self.commit_upto(upto)
    }

    pub fn put(&self, key: String, value: Vec<u8>) -> Commit {
        self.write(vec![(key, Some(value))])
    }

    pub fn delete(&self, key: String) -> Commit {
        self.write(vec![(key, None)])
    }

    /// Resolves once everything queued so far is durable: a caller that changed state under its
    /// lock takes this before letting go of the lock and awaits it before answering.
    pub fn barrier(&self) -> Commit {
        let upto = lock(&self.shared.queue).queued;
        self.commit_upto(upto)
    }

    fn commit_upto(&self, upto: u64) -> Commit {
        Commit {
            upto,
            progress: self.shared.progress.subscribe(),
        }
    }

    /// Resolves when the registrar has failed (never, while it works): the owner of the state
    /// stops acting on it then.
    pub async fn failed(&self) -> RegistrarFailed {
        let mut progress = self.shared.progress.subscribe();
        match progress.wait_for(|p| p.failed.is_some()).await {
            Ok(progress) => match &progress.failed {
                Some(error) => RegistrarFailed(error.clone()),
                None => unreachable_failure(),
            },
            Err(_) => unreachable_failure(),
        }
    }
}

fn unreachable_failure() -> RegistrarFailed {
    RegistrarFailed(Arc::new(StoreError::Backend(
        "the registrar stopped".into(),
    )))
}

fn run(shared: &Shared) {
    loop {
        let (writes, upto) = {
            let mut queue = lock(&shared.queue);
            while queue.writes.is_empty() && queue.queued == shared.progress.borrow().committed {
                if queue.closed {
                    return;
                }
                queue = shared
                    .work
                    .wait(queue)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            (std::mem::take(&mut queue.writes), queue.queued)
        };
        let writes = last_write_wins(writes);
        let result = if writes.is_empty() {
            Ok(())
        } else {
            shared.store.write_batch(&writes)
        };
        match result {
            Ok(()) => {
                shared.progress.send_modify(|p| p.committed = upto);
            }
            Err(error) => {
                tracing::error!(%error, "the state store failed; the registrar stops");
                shared
                    .progress
                    .send_modify(|p| p.failed = Some(Arc::new(error)));
                return;
            }
        }
    }
}

/// One write per key, the last one given, at the place of that last write: a batch is one
/// atomic step, so only a key's final value matters (and ZooKeeper cannot take two operations
/// on one node in a transaction); and a store that must commit a large batch in several steps
/// commits it in the order the writers wrote their final values, so that a record written
/// before another that relies on it (a job's run before the queue that no longer holds it) is
/// never committed after it.
fn last_write_wins(writes: Vec<Write>) -> Vec<Write> {
    let mut last: HashMap<String, usize> = HashMap::with_capacity(writes.len());
    for (index, (key, _)) in writes.iter().enumerate() {
        last.insert(key.clone(), index);
    }
    writes
        .into_iter()
        .enumerate()
        .filter(|(index, (key, _))| last.get(key) == Some(index))
        .map(|(_, write)| write)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    /// A store whose writes fail from the second batch on.
    struct Failing {
        inner: MemoryStore,
        batches: Mutex<u32>,
    }

    impl Store for Failing {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key)
        }
        fn write_batch(&self, writes: &[Write]) -> Result<(), StoreError> {
            let mut batches = self.batches.lock().unwrap();
            *batches += 1;
            if *batches > 1 {
                return Err(StoreError::Backend("disk full".into()));
            }
            self.inner.write_batch(writes)
        }
        fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
            self.inner.list(prefix)
        }
    }

    #[test]
    fn commits_in_order_and_the_last_write_of_a_key_wins() {
        let store = Arc::new(MemoryStore::new());
        let registrar = Registrar::spawn(store.clone()).unwrap();
        let _ = registrar.put("a/1".into(), b"one".to_vec());
        let _ = registrar.put("a/1".into(), b"uno".to_vec());
        let _ = registrar.put("a/2".into(), b"two".to_vec());
        let _ = registrar.delete("a/2".into());
        registrar.barrier().wait().unwrap();
        assert_eq!(store.get("a/1").unwrap().as_deref(), Some(&b"uno"[..]));
        assert_eq!(store.get("a/2").unwrap(), None);
    }

    #[test]
    fn groups_what_queued_while_a_batch_committed() {
        let writes = vec![
            ("k".to_owned(), Some(b"1".to_vec())),
            ("j".to_owned(), None),
            ("k".to_owned(), None),
        ];
        assert_eq!(
            last_write_wins(writes),
            vec![("j".to_owned(), None), ("k".to_owned(), None)]
        );
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_later_write_and_says_so() {
        let store = Arc::new(Failing {
            inner: MemoryStore::new(),
            batches: Mutex::new(0),
        });
        let registrar = Registrar::spawn(store.clone()).unwrap();
        registrar
            .put("a".into(), b"1".to_vec())
            .committed()
            .await
            .unwrap();
        let failed = registrar.put("b".into(), b"2".to_vec()).committed().await;
        assert!(failed.unwrap_err().to_string().contains("disk full"));
        let later = registrar.put("c".into(), b"3".to_vec()).committed().await;
        assert!(later.is_err(), "nothing is written after a failure");
        assert!(registrar.failed().await.to_string().contains("disk full"));
        assert_eq!(store.get("c").unwrap(), None);
    }

    #[tokio::test]
    async fn a_barrier_with_nothing_queued_resolves_at_once() {
        let registrar = Registrar::spawn(Arc::new(MemoryStore::new())).unwrap();
        registrar.barrier().committed().await.unwrap();
    }
}
