//! Secrets in tasks' and executors' environments (Mesos' `SECRET` variables): a reference is
//! read from `--secrets-dir`, a value is decoded. They are resolved only on the way to the
//! executor (its process's environment, or the LAUNCH it receives): the TaskInfos the agent
//! keeps, checkpoints and shows hold references alone.

use agora_api::mesos::{CommandInfo, EnvironmentVariable, Secret, TaskInfo};
use agora_secrets::SecretsDir;
use base64::Engine as _;

/// Why a secret in an environment cannot be given its value.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UnreadableSecret {
    #[error("{variable} refers to secret '{secret}' but this agent has no --secrets-dir")]
    NoSecretsDir { variable: String, secret: String },
    #[error(transparent)]
    Read(#[from] agora_secrets::SecretError),
    #[error("secret '{secret}' has no text field '{key}'")]
    NoField { secret: String, key: String },
    #[error("the secret value of {0} is not base64 of text")]
    NotBase64Text(String),
    #[error("{0} is a SECRET without a reference or a value")]
    Empty(String),
}

/// Whether every secret the commands refer to can be read (for refusing a launch up front).
pub(crate) fn check<'a>(
    commands: impl IntoIterator<Item = Option<&'a CommandInfo>>,
    dir: Option<&SecretsDir>,
) -> Result<(), UnreadableSecret> {
    for command in commands.into_iter().flatten() {
        for variable in variables(command) {
            if variable.is_secret() {
                value_of(variable, dir)?;
            }
        }
    }
    Ok(())
}

/// `task` as its executor receives it: its secrets' values in its environment. A secret that
/// cannot be read stays a reference (the built-in executor fails such a task, saying so).
pub(crate) fn resolve_task(task: &TaskInfo, dir: Option<&SecretsDir>) -> TaskInfo {
    let mut task = task.clone();
    if let Some(command) = task.command.as_mut()
        && let Err(error) = resolve_command(command, dir)
    {
        tracing::warn!(task = %task.task_id.value, %error, "a secret of the task cannot be read");
    }
    task
}

/// The command's secrets replaced by their values.
pub(crate) fn resolve_command(
    command: &mut CommandInfo,
    dir: Option<&SecretsDir>,
) -> Result<(), UnreadableSecret> {
    let Some(environment) = command.environment.as_mut() else {
        return Ok(());
    };
    let mut failed = Ok(());
    for variable in &mut environment.variables {
        if !variable.is_secret() {
            continue;
        }
        match value_of(variable, dir) {
            Ok(value) => {
                *variable = EnvironmentVariable {
                    name: std::mem::take(&mut variable.name),
                    value: Some(value),
                    ..EnvironmentVariable::default()
                }
            }
            Err(error) => failed = Err(error),
        }
    }
    failed
}

/// Why a variable still names a secret after the agent resolved its task (for the executor).
pub(crate) fn unresolved(command: &CommandInfo) -> Option<String> {
    variables(command).find(|v| v.is_secret()).map(|variable| {
        format!(
            "the secret for {} could not be read by the agent (see its log)",
            variable.name
        )
    })
}

fn variables(command: &CommandInfo) -> impl Iterator<Item = &EnvironmentVariable> {
    command
        .environment
        .iter()
        .flat_map(|environment| &environment.variables)
}

fn value_of(
    variable: &EnvironmentVariable,
    dir: Option<&SecretsDir>,
) -> Result<String, UnreadableSecret> {
    let secret = variable.secret.as_ref();
    let name = &variable.name;
    match secret {
        Some(Secret {
            reference: Some(reference),
            ..
        }) => {
            let dir = dir.ok_or_else(|| UnreadableSecret::NoSecretsDir {
                variable: name.clone(),
                secret: reference.name.clone(),
            })?;
            let text = dir.read(&reference.name)?;
            match &reference.key {
                None => Ok(text),
                // Mesos' key: one field of a secret holding a JSON object.
                Some(key) => serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|object| object.get(key)?.as_str().map(str::to_owned))
                    .ok_or_else(|| UnreadableSecret::NoField {
                        secret: reference.name.clone(),
                        key: key.clone(),
                    }),
            }
        }
        Some(Secret {
            value: Some(value), ..
        }) => base64::engine::general_purpose::STANDARD
            .decode(&value.data)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|text| !text.contains('\0'))
            .ok_or_else(|| UnreadableSecret::NotBase64Text(name.clone())),
        _ => Err(UnreadableSecret::Empty(name.clone())),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use agora_api::mesos::{Environment, SecretValue};

    use super::*;

    fn command(variables: Vec<EnvironmentVariable>) -> CommandInfo {
        CommandInfo {
            environment: Some(Environment { variables }),
            ..CommandInfo::default()
        }
    }

    #[test]
    fn references_and_values_become_plain_values() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [("db", "s3cret"), ("json", r#"{"user": "u", "n": 1}"#)] {
            std::fs::write(dir.path().join(name), text).unwrap();
            let mode = std::fs::Permissions::from_mode(0o600);
            std::fs::set_permissions(dir.path().join(name), mode).unwrap();
        }
        let secrets = SecretsDir::open(dir.path()).unwrap();
        let mut keyed = EnvironmentVariable::secret_reference("USER", "json");
        if let Some(reference) = keyed.secret.as_mut().and_then(|s| s.reference.as_mut()) {
            reference.key = Some("user".into());
        }
        let by_value = EnvironmentVariable {
            name: "V".into(),
            kind: Some("SECRET".into()),
            secret: Some(Secret {
                kind: Some("VALUE".into()),
                value: Some(SecretValue {
                    data: "aGk=".into(),
                }),
                reference: None,
            }),
            value: None,
        };
        let plain = EnvironmentVariable {
            name: "P".into(),
            value: Some("p".into()),
            ..EnvironmentVariable::default()
        };
        let mut resolved = command(vec![
            EnvironmentVariable::secret_reference("DB", "db"),
            keyed,
            by_value,
            plain.clone(),
        ]);
        assert!(check([Some(&resolved)], Some(&secrets)).is_ok());
        resolve_command(&mut resolved, Some(&secrets)).unwrap();
        let values: Vec<(&str, Option<&str>, bool)> = variables(&resolved)
            .map(|v| (v.name.as_str(), v.value.as_deref(), v.is_secret()))
            .collect();
        assert_eq!(
            values,
            [
                ("DB", Some("s3cret"), false),
                ("USER", Some("u"), false),
                ("V", Some("hi"), false),
                ("P", Some("p"), false)
            ]
        );
        assert_eq!(unresolved(&resolved), None);

        let missing = command(vec![EnvironmentVariable::secret_reference("X", "nope")]);
        assert!(check([Some(&missing)], Some(&secrets)).is_err());
        let error = check([Some(&missing)], None).unwrap_err();
        assert!(error.to_string().contains("--secrets-dir"), "{error}");
        let mut kept = missing.clone();
        assert!(resolve_command(&mut kept, Some(&secrets)).is_err());
        assert_eq!(kept, missing, "an unreadable secret stays a reference");
        assert!(unresolved(&kept).is_some_and(|m| m.contains('X')));
    }
}
