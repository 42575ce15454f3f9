//! The state stores behind the master's registry and the services and jobs schedulers: a small
//! key-value trait with prefix listing and atomic batches, so the embedded backend and the
//! ZooKeeper backend (in `agora-zk`) are interchangeable, and the registrar that takes writes
//! off their callers' locks. The trait knows nothing of redb or ZooKeeper.

mod memory;
mod redb_store;
mod registrar;

pub use memory::MemoryStore;
pub use redb_store::RedbStore;
pub use registrar::{Commit, Registrar, RegistrarFailed, Write};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store backend failed: {0}")]
    Backend(String),
    /// The writer no longer leads: its writes are refused so that a deposed leader can never
    /// overwrite its successor's state.
    #[error("this master no longer leads; its write was refused ({0})")]
    Fenced(String),
    #[error("record {key} is {size} bytes, more than the store takes")]
    TooLarge { key: String, size: usize },
}

/// A durable key-value store. Keys are `/`-separated paths (`registry/agents/<id>`); a write
/// has returned only once it is durable.
pub trait Store: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes (or, for `None`, deletes) several keys in one atomic, durable step; a key appears
    /// at most once.
    fn write_batch(&self, writes: &[Write]) -> Result<(), StoreError>;
    /// Every key starting with `prefix`, in key order.
    fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write_batch(&[(key.to_owned(), Some(value.to_vec()))])
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.write_batch(&[(key.to_owned(), None)])
    }
}

/// One text value under a fixed key, such as the framework id a scheduler resumes with: read
/// (absent or unreadable is `None`), forgotten, saved, through the registrar.
pub struct StoredText<'a> {
    registrar: &'a Registrar,
    key: &'a str,
}

impl<'a> StoredText<'a> {
    pub fn new(registrar: &'a Registrar, key: &'a str) -> StoredText<'a> {
        StoredText { registrar, key }
    }

    pub fn load(&self) -> Option<String> {
        self.registrar
            .store()
            .get(self.key)
            .ok()
            .flatten()
            .and_then(|bytes| String::from_utf8(bytes).ok())
    }

    /// A value that stays is only read again; a failed store stops its owner anyway.
    pub fn forget(&self) {
        drop(self.registrar.delete(self.key.to_owned()));
    }

    pub fn save(&self, text: &str) -> Commit {
        self.registrar
            .put(self.key.to_owned(), text.as_bytes().to_vec())
    }
}

#[cfg(test)]
mod stored_text_tests {
    use super::*;

    #[test]
    fn loads_what_was_saved_until_forgotten() {
        let store = std::sync::Arc::new(MemoryStore::new());
        let registrar = Registrar::spawn(store.clone()).expect("registrar");
        let id = StoredText::new(&registrar, "services/framework_id");
        assert_eq!(id.load(), None);
        id.save("abc-0001").wait().expect("save");
        assert_eq!(id.load().as_deref(), Some("abc-0001"));
        store.put("services/framework_id", &[0xff]).expect("put");
        assert_eq!(id.load(), None, "not text");
        id.forget();
        registrar.barrier().wait().expect("committed");
        assert_eq!(store.get("services/framework_id").expect("get"), None);
    }
}

/// One behaviour suite every backend must pass; backends in other crates run it in their tests.
#[doc(hidden)]
#[allow(clippy::unwrap_used)]
pub mod contract {
    use super::Store;

    pub fn check(store: &dyn Store) {
        assert_eq!(store.get("a/1").unwrap(), None);
        store.put("a/1", b"one").unwrap();
        store.put("a/2", b"two").unwrap();
        store.put("b/1", b"other").unwrap();
        assert_eq!(store.get("a/1").unwrap().as_deref(), Some(&b"one"[..]));
        let listed = store.list("a/").unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1], ("a/2".to_owned(), b"two".to_vec()));
        store.put("a/1", b"uno").unwrap();
        assert_eq!(store.get("a/1").unwrap().as_deref(), Some(&b"uno"[..]));
        store.delete("a/1").unwrap();
        store.delete("never/written").unwrap();
        assert_eq!(store.list("a/").unwrap().len(), 1);
        store
            .write_batch(&[
                ("d/1".into(), Some(b"x".to_vec())),
                ("d/2".into(), Some(b"y".to_vec())),
                ("b/1".into(), None),
            ])
            .unwrap();
        assert_eq!(store.list("d/").unwrap().len(), 2);
        assert_eq!(store.get("b/1").unwrap(), None);

        // Keys as the schedulers make them: nested ids, any character of a task or job name.
        let odd = [
            "services/apps/prod/web",
            "services/apps/prod/web-2",
            "services/apps/prod.x",
            "jobs/definitions/a b%c/..",
            "jobs/definitions/.",
        ];
        for key in odd {
            store.put(key, key.as_bytes()).unwrap();
        }
        let apps: Vec<String> = store
            .list("services/apps/")
            .unwrap()
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(
            apps,
            [
                "services/apps/prod.x",
                "services/apps/prod/web",
                "services/apps/prod/web-2"
            ]
        );
        assert_eq!(store.list("services/apps/prod/").unwrap().len(), 2);
        assert_eq!(store.list("services/apps/prod/web-").unwrap().len(), 1);
        for key in &odd[3..] {
            assert_eq!(store.get(key).unwrap().as_deref(), Some(key.as_bytes()));
        }
        assert_eq!(store.list("jobs/").unwrap().len(), 2);

        // An empty last part (the root group's versions), a leading `/`, a key without `/`.
        for key in ["services/group_versions/", "/x", "x"] {
            store.put(key, key.as_bytes()).unwrap();
        }
        for key in ["services/group_versions/", "/x", "x"] {
            assert_eq!(
                store.get(key).unwrap().as_deref(),
                Some(key.as_bytes()),
                "{key}"
            );
        }
        let versions = store.list("services/group_versions/").unwrap();
        assert_eq!(versions.len(), 1);
        assert_eq!(store.list("/").unwrap().len(), 1);

        // A value larger than ZooKeeper's node limit, as a big group's versions can be.
        let large: Vec<u8> = (0..3_000_000u32).map(|i| (i % 7) as u8).collect();
        store.put("services/group_versions/big", &large).unwrap();
        assert_eq!(
            store.get("services/group_versions/big").unwrap(),
            Some(large)
        );
    }
}
