//! Who may read what the agent keeps. The work dir and the directories leading to sandboxes
//! are 0711: a task's user must pass through them to reach its sandbox by path
//! (`$MESOS_SANDBOX`), but nobody may list them. What only the agent reads — checkpoints,
//! which hold every task's environment, and the fetcher's cache — is 0700, its files 0600.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Passed through by tasks' users, listed by nobody but root.
pub(crate) const TRAVERSE_ONLY: u32 = 0o711;
/// The agent's alone.
pub(crate) const PRIVATE_DIR: u32 = 0o700;
pub(crate) const PRIVATE_FILE: u32 = 0o600;

/// Makes `dir` and its missing parents with `mode` (existing ones keep theirs).
pub(crate) fn make_dirs(dir: &Path, mode: u32) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
}

/// Makes `dir` if missing and gives it `mode` (a directory made by an older agent included).
pub(crate) fn make_dir_with(dir: &Path, mode: u32) -> io::Result<()> {
    make_dirs(dir, mode)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn directories_get_the_mode_asked_for() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        make_dirs(&deep, TRAVERSE_ONLY).unwrap();
        for dir in [root.path().join("a"), root.path().join("a/b"), deep.clone()] {
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o711, "{}", dir.display());
        }
        std::fs::set_permissions(&deep, std::fs::Permissions::from_mode(0o755)).unwrap();
        make_dir_with(&deep, PRIVATE_DIR).unwrap();
        let mode = std::fs::metadata(&deep).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
