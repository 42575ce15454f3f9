//! Secrets' names and who may use them. Pure.

use crate::SecretError;

/// A name is a relative path of plain segments (a leading `/`, as DC/OS spells them, is
/// dropped): no `..`, no empty segment, no control characters.
pub fn validate_name(name: &str) -> Result<String, SecretError> {
    let trimmed = name.strip_prefix('/').unwrap_or(name);
    let valid = !trimmed.is_empty()
        && trimmed.len() <= 1024
        && trimmed
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
        && !trimmed.chars().any(char::is_control);
    if valid {
        Ok(trimmed.to_owned())
    } else {
        Err(SecretError::BadName(name.to_owned()))
    }
}

/// Whether the app or job at `path` (`/team-a/web`; a job's `team-a.backup` is
/// `/team-a/backup`) may use the secret `name`: it lies under the secret's directory.
pub fn may_use(path: &str, name: &str) -> bool {
    let Ok(name) = validate_name(name) else {
        return false;
    };
    let directory = match name.rsplit_once('/') {
        Some((directory, _)) => directory,
        None => return true,
    };
    let path = path.trim_start_matches('/');
    path.strip_prefix(directory)
        .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn names_are_relative_paths_within_the_directory() {
        assert_eq!(validate_name("db").unwrap(), "db");
        assert_eq!(validate_name("/team-a/db").unwrap(), "team-a/db");
        for bad in [
            "",
            "/",
            "../etc/shadow",
            "a/../../b",
            "a//b",
            "a/",
            "./a",
            "a\nb",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_secret_serves_the_apps_under_its_directory() {
        assert!(may_use("/anything/at/all", "db"));
        assert!(may_use("/team-a/web", "team-a/db"));
        assert!(may_use("/team-a/sub/web", "/team-a/db"));
        assert!(may_use("team-a/backup", "team-a/db"));
        assert!(!may_use("/team-ab/web", "team-a/db"));
        assert!(
            !may_use("/team-a", "team-a/db"),
            "the group itself is not under it"
        );
        assert!(!may_use("/team-b/web", "team-a/db"));
        assert!(!may_use("/team-a/web", "../team-a/db"));
    }

    proptest! {
        #[test]
        fn no_valid_name_climbs_out(name in "[a-z./]{0,12}") {
            if let Ok(valid) = validate_name(&name) {
                prop_assert!(!valid.starts_with('/'));
                prop_assert!(valid.split('/').all(|s| s != ".." && !s.is_empty()));
            }
        }
    }
}
