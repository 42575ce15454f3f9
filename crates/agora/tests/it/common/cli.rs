//! Running the `agora` operator commands as a person would: the real binary, `AGORA_MASTER`
//! in its environment, its exit code and both outputs kept.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::BIN;

/// One finished command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Its stdout as JSON (for `-o json`).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts that it succeeded; returns its stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "{self:?}");
        &self.stdout
    }

    /// Asserts that it failed (exit code 1) with an error that starts `agora: ` (after any
    /// progress lines), one line but for a definition's field problems; returns from there.
    pub fn error(&self) -> &str {
        assert_eq!(self.code, 1, "{self:?}");
        assert!(!self.stderr.contains("panicked"), "{self:?}");
        let start = self
            .stderr
            .find("agora: ")
            .unwrap_or_else(|| panic!("no error line: {self:?}"));
        assert!(
            start == 0 || self.stderr[..start].ends_with('\n'),
            "{self:?}"
        );
        &self.stderr[start..]
    }
}

/// `agora <args>` against `master`.
pub async fn agora(master: &str, args: &[&str]) -> Run {
    agora_with_stdin(master, args, None).await
}

/// `agora <args>` with `input` on its stdin (for `-` as a file).
pub async fn agora_with_stdin(master: &str, args: &[&str], input: Option<&str>) -> Run {
    let mut child = tokio::process::Command::new(BIN)
        .args(args)
        .env("AGORA_MASTER", master)
        .env_remove("AGORA_LOG")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn agora");
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(input.as_bytes())
            .await
            .expect("write stdin");
    }
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .unwrap_or_else(|_| panic!("agora {args:?} did not end"))
    .expect("wait for agora");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The first line of `text` that contains `needle`.
pub fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

/// A table's cells in the row that starts with `first`.
pub fn row<'a>(text: &'a str, first: &str) -> Vec<&'a str> {
    text.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row {first:?} in:\n{text}"))
}

/// One output of a running command, collected as it comes.
type Collected = std::sync::Arc<std::sync::Mutex<String>>;

fn collect(
    mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> (Collected, tokio::task::JoinHandle<()>) {
    let text = Collected::default();
    let collected = text.clone();
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = [0u8; 4096];
        while let Ok(read) = pipe.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            collected
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buffer[..read]));
        }
    });
    (text, reader)
}

/// A command still running, its outputs collected as they come (progress lines and what it
/// printed say how far it got).
pub struct Running {
    child: tokio::process::Child,
    stdout: (Collected, tokio::task::JoinHandle<()>),
    stderr: (Collected, tokio::task::JoinHandle<()>),
}

impl Running {
    /// `agora <args>` against `master`, left running.
    pub fn start(master: &str, args: &[&str]) -> Running {
        let mut child = tokio::process::Command::new(BIN)
            .args(args)
            .env("AGORA_MASTER", master)
            .env_remove("AGORA_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn agora");
        let stdout = collect(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));
        Running {
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("still running") as i32
    }

    /// Waits until its stderr holds `text`.
    pub async fn wait_for_stderr(&self, text: &str) {
        wait_for(&self.stderr.0, "stderr", text).await;
    }

    /// Waits until its stdout holds `text`.
    pub async fn wait_for_stdout(&self, text: &str) {
        wait_for(&self.stdout.0, "stdout", text).await;
    }

    /// Waits for it to end (at most 20 s).
    pub async fn finish(mut self) -> Run {
        let status = tokio::time::timeout(std::time::Duration::from_secs(20), self.child.wait())
            .await
            .expect("it ends")
            .expect("wait for agora");
        let _ = self.stdout.1.await;
        let _ = self.stderr.1.await;
        let text = |collected: &Collected| collected.lock().unwrap().clone();
        Run {
            code: status.code().unwrap_or(-1),
            stdout: text(&self.stdout.0),
            stderr: text(&self.stderr.0),
        }
    }
}

async fn wait_for(collected: &Collected, name: &str, text: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !collected.lock().unwrap().contains(text) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {text:?} on {name}: {}",
            collected.lock().unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
