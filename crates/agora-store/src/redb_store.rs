//! The embedded backend: one redb file in the data directory, every commit durable.

use std::path::Path;

use redb::{Database, ReadableDatabase, TableDefinition};

use crate::{Store, StoreError, Write};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

pub struct RedbStore {
    database: Database,
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

impl RedbStore {
    /// Opens (or creates) the store file; fails if another process holds it.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let database = Database::create(path).map_err(backend)?;
        // What is stored is for the process that stores it.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(backend)?;
        let transaction = database.begin_write().map_err(backend)?;
        transaction.open_table(TABLE).map_err(backend)?;
        transaction.commit().map_err(backend)?;
        Ok(RedbStore { database })
    }
}

impl Store for RedbStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let transaction = self.database.begin_read().map_err(backend)?;
        let table = transaction.open_table(TABLE).map_err(backend)?;
        Ok(table
            .get(key)
            .map_err(backend)?
            .map(|value| value.value().to_vec()))
    }

    fn write_batch(&self, writes: &[Write]) -> Result<(), StoreError> {
        let transaction = self.database.begin_write().map_err(backend)?;
        {
            let mut table = transaction.open_table(TABLE).map_err(backend)?;
            for (key, value) in writes {
                match value {
                    Some(value) => drop(
                        table
                            .insert(key.as_str(), value.as_slice())
                            .map_err(backend)?,
                    ),
                    None => drop(table.remove(key.as_str()).map_err(backend)?),
                }
            }
        }
        transaction.commit().map_err(backend)
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let transaction = self.database.begin_read().map_err(backend)?;
        let table = transaction.open_table(TABLE).map_err(backend)?;
        let mut result = Vec::new();
        for entry in table.range(prefix..).map_err(backend)? {
            let (key, value) = entry.map_err(backend)?;
            if !key.value().starts_with(prefix) {
                break;
            }
            result.push((key.value().to_owned(), value.value().to_vec()));
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_contract_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.redb");
        {
            let store = RedbStore::open(&path).unwrap();
            crate::contract::check(&store);
        }
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.get("a/2").unwrap().as_deref(), Some(&b"two"[..]));
    }
}
