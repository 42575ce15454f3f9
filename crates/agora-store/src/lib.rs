//! The state store behind the master's registry (and later the services and jobs schedulers):
//! a small key-value trait with prefix listing and compare-and-swap, so an embedded backend and
//! an etcd backend are interchangeable. The trait knows nothing of redb or etcd.

mod memory;
mod redb_store;

pub use memory::MemoryStore;
pub use redb_store::RedbStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store backend failed: {0}")]
    Backend(String),
}

/// A durable key-value store. Keys are `/`-separated paths (`registry/agents/<id>`); a write
/// has returned only once it is durable.
pub trait Store: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Writes (or, for `None`, deletes) several keys in one atomic, durable step.
    fn write_batch(&self, writes: &[(String, Option<Vec<u8>>)]) -> Result<(), StoreError>;
    /// Every key starting with `prefix`, in key order.
    fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Writes `new` (or deletes, for `None`) only if the current value equals `expected`
    /// (`None` = absent). Returns whether it did.
    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StoreError>;
}

/// One text value under a fixed key, such as the framework id a scheduler resumes with: read
/// (absent or unreadable is `None`), forgotten, saved.
pub struct StoredText<'a> {
    store: &'a dyn Store,
    key: &'a str,
}

impl<'a> StoredText<'a> {
    pub fn new(store: &'a dyn Store, key: &'a str) -> StoredText<'a> {
        StoredText { store, key }
    }

    pub fn load(&self) -> Option<String> {
        self.store
            .get(self.key)
            .ok()
            .flatten()
            .and_then(|bytes| String::from_utf8(bytes).ok())
    }

    /// Best effort: a value that stays is only read again.
    pub fn forget(&self) {
        let _ = self.store.delete(self.key);
    }

    pub fn save(&self, text: &str) -> Result<(), StoreError> {
        self.store.put(self.key, text.as_bytes())
    }
}

#[cfg(test)]
mod stored_text_tests {
    use super::*;

    #[test]
    fn loads_what_was_saved_until_forgotten() {
        let store = MemoryStore::new();
        let id = StoredText::new(&store, "services/framework_id");
        assert_eq!(id.load(), None);
        id.save("abc-0001").expect("save");
        assert_eq!(id.load().as_deref(), Some("abc-0001"));
        store.put("services/framework_id", &[0xff]).expect("put");
        assert_eq!(id.load(), None, "not text");
        id.forget();
        assert_eq!(store.get("services/framework_id").expect("get"), None);
    }
}

#[cfg(test)]
pub(crate) mod contract {
    //! One behaviour suite every backend must pass.
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
        assert!(
            !store
                .compare_and_swap("a/1", Some(b"wrong"), Some(b"x"))
                .unwrap()
        );
        assert!(
            store
                .compare_and_swap("a/1", Some(b"one"), Some(b"uno"))
                .unwrap()
        );
        assert!(store.compare_and_swap("c", None, Some(b"new")).unwrap());
        assert!(!store.compare_and_swap("c", None, Some(b"again")).unwrap());
        assert!(store.compare_and_swap("c", Some(b"new"), None).unwrap());
        assert_eq!(store.get("c").unwrap(), None);
        store.delete("a/1").unwrap();
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
    }
}
