//! Where a master keeps its state — the registry, the services state and the jobs state —
//! each behind its registrar, and what happens when a registrar fails: the process stops at
//! once, as Mesos' master aborts when its registry fails, so that nothing acts on state that
//! is no longer durable (or no longer its own); its supervisor starts it again.

use std::path::Path;
use std::sync::Arc;

use agora_store::{RedbStore, Registrar, Store};
use anyhow::Context;

/// The three registrars of a master.
#[derive(Clone)]
pub struct Stores {
    pub registry: Registrar,
    pub services: Registrar,
    pub jobs: Registrar,
}

impl Stores {
    /// The embedded stores: one redb file each in `data_dir`.
    pub fn embedded(data_dir: &Path) -> anyhow::Result<Stores> {
        let open = |file: &str| -> anyhow::Result<Registrar> {
            let store: Arc<dyn Store> = Arc::new(
                RedbStore::open(&data_dir.join(file))
                    .with_context(|| format!("cannot open {}", data_dir.join(file).display()))?,
            );
            Registrar::spawn(store).context("cannot start the registrar")
        };
        Ok(Stores {
            registry: open("registry.redb")?,
            services: open("services.redb")?,
            jobs: open("jobs.redb")?,
        })
    }

    /// One registrar for all three: the state in ZooKeeper, one fenced writer.
    pub fn shared(registrar: Registrar) -> Stores {
        Stores {
            registry: registrar.clone(),
            services: registrar.clone(),
            jobs: registrar,
        }
    }

    /// Waits (bounded) until everything queued is durable: a process stopping loses no write
    /// its loops made last.
    pub async fn flush(&self) {
        for registrar in [&self.registry, &self.services, &self.jobs] {
            let committed = registrar.barrier().committed();
            if tokio::time::timeout(std::time::Duration::from_secs(10), committed)
                .await
                .is_err()
            {
                tracing::warn!("stopping before the last writes were committed");
            }
        }
    }

    /// Stops the process when any registrar fails.
    pub fn exit_on_failure(&self) {
        for (what, registrar) in [
            ("registry", &self.registry),
            ("services state", &self.services),
            ("jobs state", &self.jobs),
        ] {
            let registrar = registrar.clone();
            tokio::spawn(async move {
                let failed = registrar.failed().await;
                tracing::error!(%failed, "the {what} cannot be written; stopping");
                to_stderr!("agora: the {what} cannot be written ({failed}); stopping");
                std::process::exit(1);
            });
        }
    }
}
