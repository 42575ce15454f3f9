//! Executor processes: spawning them in their own process group with the Mesos executor
//! environment, signalling the group, and telling whether a recovered pid is still ours.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use agora_api::mesos::CommandInfo;

/// What to run: a shell command or an argv.
pub(crate) struct Launch<'a> {
    pub command: &'a CommandInfo,
    pub environment: BTreeMap<String, String>,
    pub directory: &'a Path,
}

/// The command that starts an executor, ready to spawn from any process (the agent's or the
/// launcher's): in its own process group (so killing the group cannot reach the agent, and
/// pymesos executors that `killpg(0)` only kill themselves), with stdout and stderr appended
/// to the sandbox files.
pub(crate) fn command(launch: Launch<'_>) -> std::io::Result<std::process::Command> {
    let (stdout, stderr) = sandbox_output(launch.directory)?;
    let mut command = command_of(launch.command);
    command
        .current_dir(launch.directory)
        .envs(&launch.environment)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .process_group(0);
    Ok(command)
}

/// The sandbox's `stdout` and `stderr`, opened for appending; never through a symbolic link
/// (a fetched archive could have put one there, and the agent opens these as root).
pub(crate) fn sandbox_output(directory: &Path) -> std::io::Result<(File, File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |name: &str| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(directory.join(name))
    };
    Ok((open("stdout")?, open("stderr")?))
}

/// The process a `CommandInfo` describes: `/bin/sh -c value` for a shell command, otherwise
/// `value` with `arguments` (which Mesos passes as the full argv, argv[0] included).
pub(crate) fn command_of(info: &CommandInfo) -> std::process::Command {
    let value = info.value.clone().unwrap_or_default();
    if info.shell {
        let mut command = std::process::Command::new("/bin/sh");
        command.arg("-c").arg(&value);
        command
    } else {
        let mut command = std::process::Command::new(&value);
        command.args(info.arguments.iter().skip(1));
        command
    }
}

/// Signals a whole process group; a group already gone is not an error.
pub(crate) fn signal_group(pid: i32, signal: Signal) {
    if pid <= 1 {
        return;
    }
    if let Err(error) = killpg(Pid::from_raw(pid), signal)
        && error != nix::errno::Errno::ESRCH
    {
        tracing::warn!(pid, %error, "cannot signal process group");
    }
}

/// The start time (clock ticks since boot) of a process, from `/proc/<pid>/stat`.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state); starttime is field 22.
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether `pid` is alive and is the same process that was checkpointed.
pub(crate) fn is_same_process(pid: i32, expected_start: Option<u64>) -> bool {
    match (start_time(pid), expected_start) {
        (Some(actual), Some(expected)) => actual == expected,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_matches() {
        let pid = std::process::id() as i32;
        let started = start_time(pid);
        assert!(started.is_some());
        assert!(is_same_process(pid, started));
        assert!(!is_same_process(pid, started.map(|s| s + 1)));
        assert!(!is_same_process(i32::MAX - 1, None));
    }
}
