//! Principals and their secrets, read as Mesos reads `--credentials`: JSON
//! (`{"credentials": [{"principal": "…", "secret": "…"}]}`) or text (a principal and its
//! secret a line, separated by white space). An agent's own `--credential` is one such entry,
//! as JSON (`{"principal": …, "secret": …}`) or one line.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// Why credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no credentials: expected Mesos' JSON or 'principal secret' lines")]
    Empty { path: String },
    #[error("{path}, line {line}: expected 'principal secret'")]
    Line { path: String, line: usize },
    #[error("{path} names the principal '{principal}', which is agora's own")]
    Reserved { path: String, principal: String },
    #[error("{path} holds {count} principals; a process authenticates as one")]
    Several { path: String, count: usize },
}

/// One principal and its secret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Credential {
    pub principal: String,
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret: this may end up in a log.
        f.debug_struct("Credential")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// An agent's or a client's own credential: one JSON object, or one line (a file of
    /// several is refused: which of them would be meant cannot be told).
    pub fn load(path: &Path) -> Result<Credential, CredentialsError> {
        let text = read(path)?;
        if let Ok(credential) = serde_json::from_str::<Credential>(&text) {
            return Ok(credential);
        }
        let entries = Credentials::parse(&text, path)?.entries;
        if entries.len() > 1 {
            return Err(CredentialsError::Several {
                path: path.display().to_string(),
                count: entries.len(),
            });
        }
        entries
            .into_iter()
            .next()
            .map(|(principal, secret)| Credential { principal, secret })
            .ok_or_else(|| CredentialsError::Empty {
                path: path.display().to_string(),
            })
    }
}

/// The principals a server knows, by name.
#[derive(Clone, Default)]
pub struct Credentials {
    entries: BTreeMap<String, String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("principals", &self.entries.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Deserialize)]
struct CredentialsFile {
    credentials: Vec<Credential>,
}

fn read(path: &Path) -> Result<String, CredentialsError> {
    warn_if_readable_by_others(path);
    std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Secrets others may read are not secret: said, as Mesos says it.
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the credentials file may be read by users other than its owner; make it 0600"
        );
    }
}

impl Credentials {
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        Credentials::parse(&read(path)?, path)
    }

    pub fn from_entries(entries: impl IntoIterator<Item = Credential>) -> Credentials {
        Credentials {
            entries: entries
                .into_iter()
                .map(|c| (c.principal, c.secret))
                .collect(),
        }
    }

    fn parse(text: &str, path: &Path) -> Result<Credentials, CredentialsError> {
        let credentials = Credentials::parse_entries(text, path)?;
        if credentials
            .entries
            .contains_key(super::acl::SYSTEM_PRINCIPAL)
        {
            return Err(CredentialsError::Reserved {
                path: path.display().to_string(),
                principal: super::acl::SYSTEM_PRINCIPAL.to_owned(),
            });
        }
        Ok(credentials)
    }

    fn parse_entries(text: &str, path: &Path) -> Result<Credentials, CredentialsError> {
        let shown = || path.display().to_string();
        if text.trim_start().starts_with('{') {
            let file: CredentialsFile = serde_json::from_str(text)
                .map_err(|_| CredentialsError::Empty { path: shown() })?;
            return Ok(Credentials::from_entries(file.credentials));
        }
        let mut entries = BTreeMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(principal), Some(secret), None) => {
                    entries.insert(principal.to_owned(), secret.to_owned());
                }
                _ => {
                    return Err(CredentialsError::Line {
                        path: shown(),
                        line: number + 1,
                    });
                }
            }
        }
        if entries.is_empty() {
            return Err(CredentialsError::Empty { path: shown() });
        }
        Ok(Credentials { entries })
    }

    /// Whether `secret` is `principal`'s (compared in time that does not depend on where they
    /// differ).
    pub fn verify(&self, principal: &str, secret: &str) -> bool {
        match self.entries.get(principal) {
            Some(expected) => super::same_secret(secret, expected),
            None => {
                // As long as for a known principal: whether one exists is not told by timing.
                let _ = super::same_secret(secret, secret);
                false
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn both_of_mesos_formats_are_read() {
        let json = write(
            r#"{"credentials": [{"principal": "marathon", "secret": "s1"},
                                {"principal": "ops", "secret": "s2"}]}"#,
        );
        let credentials = Credentials::load(json.path()).unwrap();
        assert!(credentials.verify("marathon", "s1"));
        assert!(!credentials.verify("marathon", "s2"));
        assert!(!credentials.verify("nobody", "s1"));
        let text = write("# principals\nmarathon s1\n\nops  s2\n");
        let credentials = Credentials::load(text.path()).unwrap();
        assert!(credentials.verify("ops", "s2"));
        assert!(Credentials::load(write("one two three\n").path()).is_err());
        assert!(Credentials::load(write("").path()).is_err());
        assert!(
            Credentials::load(write("agora s\n").path()).is_err(),
            "agora's own principal"
        );
    }

    #[test]
    fn an_agents_credential_is_one_entry() {
        let json = write(r#"{"principal": "agent", "secret": "s"}"#);
        assert_eq!(Credential::load(json.path()).unwrap().principal, "agent");
        let line = write("agent s\n");
        assert_eq!(Credential::load(line.path()).unwrap().secret, "s");
        let shown = format!("{:?}", Credential::load(line.path()).unwrap());
        assert!(!shown.contains("secret"), "{shown}");
        let listed = write(r#"{"credentials": [{"principal": "agent", "secret": "s"}]}"#);
        assert_eq!(Credential::load(listed.path()).unwrap().principal, "agent");
        for several in [
            "zed s1\nagent s2\n",
            r#"{"credentials": [{"principal": "b", "secret": "1"}, {"principal": "a", "secret": "2"}]}"#,
        ] {
            let error = Credential::load(write(several).path()).unwrap_err();
            assert!(error.to_string().contains("2 principals"), "{error}");
        }
    }
}
