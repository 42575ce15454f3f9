//! Secrets from a directory (`--secrets-dir`): one file a secret, named by its path under the
//! directory (`db-password`, `team-a/db-password`), readable by its owner only (0600 or
//! 0400). Apps and jobs refer to a secret by that name; masters check the references when an
//! app or job is defined, and agents read the values when a task is handed to its executor,
//! so a value is never in a definition, a TaskInfo, a checkpoint or a state document.
//!
//! Who may use which secret follows DC/OS: a secret serves the apps and jobs under its
//! directory (`team-a/db-password` serves `/team-a/...`; a secret at the top serves all), and
//! frameworks as `use_secrets` in the ACLs says.

mod dir;
mod name;

pub use dir::{MAX_SECRET_BYTES, SecretsDir};
pub use name::{may_use, validate_name};

/// Whether the app or job at `owner` may use the secret `name` from `dir` (the check when
/// it is defined), or why not, in words for its API's error.
pub fn check_use(dir: Option<&SecretsDir>, owner: &str, name: &str) -> Result<(), String> {
    let Some(dir) = dir else {
        return Err("secrets need --secrets-dir, and none is configured".into());
    };
    let valid = validate_name(name).map_err(|e| e.to_string())?;
    if !may_use(owner, &valid) {
        return Err(format!(
            "{owner} may not use secret '{valid}': a secret serves the apps and jobs under its \
             directory"
        ));
    }
    dir.check(&valid).map_err(|e| e.to_string())
}

/// Why a secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "'{0}' is not a secret's name: a relative path without '..', such as team-a/db-password"
    )]
    BadName(String),
    #[error("no secret '{0}' in the secrets directory")]
    Missing(String),
    #[error("secret '{name}' is readable by others (mode {mode:04o}): make it 0600")]
    Exposed { name: String, mode: u32 },
    #[error("secret '{0}' is not a regular file")]
    NotAFile(String),
    #[error("secret '{0}' is over {MAX_SECRET_BYTES} bytes")]
    TooLarge(String),
    #[error("secret '{0}' is not text without NUL bytes, as an environment variable must be")]
    NotText(String),
    #[error("cannot read secret '{name}': {source}")]
    Io {
        name: String,
        source: std::io::Error,
    },
    #[error("cannot open the secrets directory {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
}
