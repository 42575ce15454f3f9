//! Operators' container-level operations on a task, by task id:
//! - `GET /slave(1)/tasks/{task}/top` — the processes of the task's container;
//! - `POST /slave(1)/tasks/{task}/exec` — a command run inside the task's container (its
//!   namespaces, cgroups, user and sandbox; `docker exec` for a Docker task), answered with its
//!   exit code and output, as `dcos task exec` without a terminal;
//! - `GET /slave(1)/tasks/{task}/attach?stream=stdout|stderr&from=start|end` — the task's
//!   output as it is written, until the task ends.
//!
//! Errors are `{"message": ...}` with 404 for an unknown task and 409 for one not running.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

use agora_http::auth::acl::Action;
use agora_types::{FrameworkId, TaskId};

use super::Shared;
use crate::core::{Agent, ExecutorKind};
use crate::docker::DockerError;

/// Output kept from an exec, per stream.
const EXEC_OUTPUT_LIMIT: usize = 1 << 20;
const EXEC_DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const EXEC_MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// The environment of an exec: none of the agent's, only what a shell needs and the task's
/// sandbox.
const EXEC_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the agent knows of a task's container.
struct Target {
    container_id: String,
    pid: Option<i32>,
    sandbox: PathBuf,
    /// Where the task's stdout and stderr are (its own directory in a task group).
    output: PathBuf,
    docker: bool,
    user: Option<String>,
    /// The user the task runs as, as it was asked (what the ACLs name).
    owner: String,
    running: bool,
}

fn locate(agent: &Agent, task_id: &str) -> Option<Target> {
    let id = TaskId::new(task_id);
    agent.with_state(|state| {
        state
            .frameworks
            .iter()
            .find_map(|(_, framework): (&FrameworkId, _)| {
                framework.executors.values().find_map(|executor| {
                    let task = executor.tasks.get(&id)?;
                    let docker = crate::docker::spec::is_docker(&task.info);
                    let output = if executor.kind == ExecutorKind::Default {
                        executor.directory.join("tasks").join(task_id)
                    } else {
                        executor.directory.clone()
                    };
                    // Whom the ACLs ask about, and (switching users) whom it runs as.
                    let owner = task
                        .info
                        .run_as(Some(&executor.info), &framework.info.user)
                        .to_owned();
                    let user = match &agent.switch_user {
                        Ok(()) if !docker => Some(owner.clone()).filter(|u| !u.is_empty()),
                        _ => None,
                    };
                    Some(Target {
                        container_id: executor.container_id.clone(),
                        pid: executor.pid,
                        sandbox: executor.directory.clone(),
                        output,
                        docker,
                        user,
                        owner,
                        running: !task.state.is_terminal(),
                    })
                })
            })
    })
}

/// A refusal of the calls into a task's container: its status and `{"message"}`, the shape
/// the CLI and the UI read.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"message": self.message}))).into_response()
    }
}

type Answer = Result<Response, Refusal>;

/// The caller's principal, if it named one.
type Caller = Option<Extension<agora_http::auth::Caller>>;

/// Whether the caller may do `action` to the task (by the user it runs as), as the ACLs say.
fn authorized(
    agent: &Agent,
    caller: &Caller,
    action: Action,
    target: &Target,
) -> Result<(), Refusal> {
    let principal = caller
        .as_ref()
        .and_then(|Extension(caller)| caller.principal.as_deref());
    if agent
        .config
        .acls
        .permits(action, principal, Some(&target.owner))
    {
        return Ok(());
    }
    Err(Refusal::new(
        StatusCode::FORBIDDEN,
        format!(
            "Not authorized for this task of user '{}' ('{}' in the ACLs)",
            target.owner,
            action.key()
        ),
    ))
}

fn running_target(agent: &Agent, task_id: &str) -> Result<Target, Refusal> {
    let target = locate(agent, task_id).ok_or_else(|| {
        Refusal::new(
            StatusCode::NOT_FOUND,
            format!("Task '{task_id}' is not running on this agent"),
        )
    })?;
    if !target.running {
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            format!("Task '{task_id}' has ended"),
        ));
    }
    Ok(target)
}

/// The host pid of a Docker task's container's first process.
/// The task's own container: found by this executor container's id (unique to this agent),
/// then by task id (a task group has one container per task).
async fn docker_pid(
    container_id: &str,
    task_id: &str,
) -> Result<(bollard::Docker, String, i32), DockerError> {
    let docker = crate::docker::connect().await?;
    let mut found = crate::docker::labelled(
        &docker,
        crate::docker::spec::labels::CONTAINER,
        container_id,
    )
    .await?;
    let tasks =
        crate::docker::labelled(&docker, crate::docker::spec::labels::TASK, task_id).await?;
    found.retain(|(id, _)| tasks.iter().any(|(other, _)| other == id));
    let (id, _) = found.into_iter().next().ok_or(DockerError::Gone)?;
    let pid = docker
        .inspect_container(&id, None)
        .await
        .map_err(|source| DockerError::Container {
            action: "inspect",
            source,
        })?
        .state
        .and_then(|s| s.pid)
        .filter(|pid| *pid > 0)
        .ok_or(DockerError::NotRunning)?;
    Ok((docker, id, pid as i32))
}

pub(crate) async fn top(
    State(agent): State<Shared>,
    caller: Caller,
    Path(task_id): Path<String>,
) -> Answer {
    let target = match running_target(&agent, &task_id)
        .and_then(|t| authorized(&agent, &caller, Action::ViewTasks, &t).map(|()| t))
    {
        Ok(target) => target,
        Err(refused) => return Err(refused),
    };
    let root = if target.docker {
        match docker_pid(&target.container_id, &task_id).await {
            Ok((_, _, pid)) => pid,
            Err(message) => return Err(Refusal::new(StatusCode::CONFLICT, message.to_string())),
        }
    } else {
        match target.pid {
            Some(pid) => pid,
            None => {
                return Err(Refusal::new(
                    StatusCode::CONFLICT,
                    "the task's container has not started",
                ));
            }
        }
    };
    let processes = tokio::task::spawn_blocking(move || crate::proc_tree::tree(root))
        .await
        .unwrap_or_default();
    Ok(Json(json!({
        "task_id": task_id,
        "container_id": target.container_id,
        "processes": processes,
    }))
    .into_response())
}

#[derive(Deserialize)]
pub(crate) struct ExecRequest {
    /// A shell command (run with `/bin/sh -c`)...
    #[serde(default)]
    command: Option<String>,
    /// ...or an argv.
    #[serde(default)]
    argv: Vec<String>,
    #[serde(default)]
    timeout_seconds: Option<f64>,
}

pub(crate) async fn exec(
    State(agent): State<Shared>,
    caller: Caller,
    Path(task_id): Path<String>,
    body: Bytes,
) -> Answer {
    let request: ExecRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse the request: {e}"),
            ));
        }
    };
    let argv = match (&request.command, request.argv.is_empty()) {
        (Some(command), true) => vec!["/bin/sh".to_owned(), "-c".to_owned(), command.clone()],
        (None, false) => request.argv.clone(),
        _ => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "Give either 'command' (a shell command) or 'argv'",
            ));
        }
    };
    let timeout = request
        .timeout_seconds
        .filter(|t| t.is_finite() && *t > 0.0)
        .map(|t| Duration::from_secs_f64(t.min(EXEC_MAX_TIMEOUT.as_secs_f64())))
        .unwrap_or(EXEC_DEFAULT_TIMEOUT);
    let target = match running_target(&agent, &task_id).and_then(|t| {
        authorized(&agent, &caller, Action::LaunchNestedContainerSessions, &t).map(|()| t)
    }) {
        Ok(target) => target,
        Err(refused) => return Err(refused),
    };
    let result = if target.docker {
        exec_in_docker(&target.container_id, &task_id, argv, timeout).await
    } else {
        exec_in_process_container(&agent, &target, &task_id, argv, timeout).await
    };
    match result {
        Ok(answer) => Ok(Json(answer).into_response()),
        Err(failed) => Err(Refusal::new(StatusCode::CONFLICT, failed.to_string())),
    }
}

/// Why a command could not be run in a task's container.
#[derive(Debug, thiserror::Error)]
enum ExecError {
    #[error("the task's container has not started")]
    NotStarted,
    #[error(transparent)]
    User(#[from] crate::namespaces::UnknownUser),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("cannot join the task's container: {0}")]
    Join(#[source] std::io::Error),
    #[error("cannot run the command: {0}")]
    Run(#[source] std::io::Error),
    #[error("cannot exec in the container: {0}")]
    DockerExec(#[source] bollard::errors::Error),
    #[error("the exec's output broke off: {0}")]
    OutputBrokeOff(#[source] bollard::errors::Error),
}

fn capped(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Appends what still fits under [`EXEC_OUTPUT_LIMIT`].
fn keep(kept: &mut Vec<u8>, more: &[u8]) {
    let room = EXEC_OUTPUT_LIMIT.saturating_sub(kept.len());
    kept.extend_from_slice(&more[..more.len().min(room)]);
}

/// Runs `argv` in the task's namespaces (through `nsenter`, which forks into the pid
/// namespace), its cgroups, as its user, in its sandbox.
async fn exec_in_process_container(
    agent: &Agent,
    target: &Target,
    task_id: &str,
    argv: Vec<String>,
    timeout: Duration,
) -> Result<serde_json::Value, ExecError> {
    let pid = target.pid.ok_or(ExecError::NotStarted)?;
    let user = crate::namespaces::RunAs::switch_to(target.user.as_deref()).await?;
    let mut command = if agent.namespaces.is_ok() {
        let mut command = std::process::Command::new("nsenter");
        command
            .arg(format!("--target={pid}"))
            .args(["--pid", "--mount"]);
        if let Some(user) = &user {
            command
                .arg(format!("--setgid={}", user.gid))
                .arg(format!("--setuid={}", user.uid));
        }
        // Into the sandbox once inside, as the user: nsenter's --wd opens its directory before
        // entering, which leaves the command in a directory of the host's mount namespace
        // (unreachable inside: getcwd fails) and reached with the agent's rights.
        command
            .args([
                "--",
                "/bin/sh",
                "-c",
                "cd -- \"$MESOS_SANDBOX\" || exit 126; exec \"$@\"",
                "agora-exec",
            ])
            .args(&argv);
        command
    } else {
        let mut command = std::process::Command::new(&argv[0]);
        command.args(&argv[1..]).current_dir(&target.sandbox);
        command
    };
    {
        use std::os::unix::process::CommandExt;
        // A group of its own, so a timeout kills everything it started (nsenter forks).
        command.process_group(0);
    }
    command
        .env_clear()
        .env("PATH", EXEC_PATH)
        .env("MESOS_SANDBOX", &target.sandbox)
        .env("MESOS_TASK_ID", task_id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let procs = match &agent.cgroups {
        Ok(cgroups) => cgroups.container(&target.container_id).procs_files(),
        Err(_) => Vec::new(),
    };
    // nsenter switches user itself, after entering; without it the spawn does.
    let switch = if agent.namespaces.is_ok() {
        None
    } else {
        user.as_ref()
    };
    crate::launcher::prepare_on_spawn(&mut command, &procs, switch).map_err(ExecError::Join)?;
    let mut child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .map_err(ExecError::Run)?;
    let group = child.id().map(|pid| pid as i32);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let run = async {
        let (stdout, stderr, status) =
            tokio::join!(read_capped(stdout), read_capped(stderr), child.wait());
        (stdout, stderr, status)
    };
    match tokio::time::timeout(timeout, run).await {
        Ok((stdout, stderr, Ok(status))) => Ok(json!({
            "exit_code": status.code(),
            "signal": std::os::unix::process::ExitStatusExt::signal(&status),
            "stdout": String::from_utf8_lossy(&stdout),
            "stderr": String::from_utf8_lossy(&stderr),
            "timed_out": false,
        })),
        Ok((_, _, Err(e))) => Err(ExecError::Run(e)),
        Err(_) => {
            if let Some(group) = group {
                crate::spawn::signal_group(group, nix::sys::signal::Signal::SIGKILL);
            }
            Ok(json!({
                "exit_code": null, "signal": 9, "stdout": "", "stderr": "",
                "timed_out": true,
            }))
        }
    }
}

/// Reads a pipe to its end, keeping the first [`EXEC_OUTPUT_LIMIT`] bytes.
async fn read_capped<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let _ = (&mut pipe)
        .take(EXEC_OUTPUT_LIMIT as u64)
        .read_to_end(&mut kept)
        .await;
    let _ = tokio::io::copy(&mut pipe, &mut tokio::io::sink()).await;
    kept
}

/// `docker exec` of `argv` in the task's container.
async fn exec_in_docker(
    container_id: &str,
    task_id: &str,
    argv: Vec<String>,
    timeout: Duration,
) -> Result<serde_json::Value, ExecError> {
    let (docker, id, _) = docker_pid(container_id, task_id).await?;
    let config = bollard::models::ExecConfig {
        cmd: Some(argv),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..Default::default()
    };
    let exec = docker
        .create_exec(&id, config)
        .await
        .map_err(ExecError::DockerExec)?;
    let run = async {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        if let bollard::exec::StartExecResults::Attached { mut output, .. } = docker
            .start_exec(&exec.id, None)
            .await
            .map_err(ExecError::DockerExec)?
        {
            while let Some(item) = output.next().await {
                match item {
                    Ok(bollard::container::LogOutput::StdErr { message }) => {
                        keep(&mut stderr, &message)
                    }
                    Ok(
                        bollard::container::LogOutput::StdOut { message }
                        | bollard::container::LogOutput::Console { message },
                    ) => keep(&mut stdout, &message),
                    Ok(_) => {}
                    Err(e) => return Err(ExecError::OutputBrokeOff(e)),
                }
            }
        }
        Ok((stdout, stderr))
    };
    let (stdout, stderr, timed_out) = match tokio::time::timeout(timeout, run).await {
        Ok(result) => {
            let (stdout, stderr) = result?;
            (stdout, stderr, false)
        }
        Err(_) => (Vec::new(), Vec::new(), true),
    };
    let code = docker
        .inspect_exec(&exec.id)
        .await
        .ok()
        .and_then(|i| i.exit_code);
    Ok(json!({
        "exit_code": code,
        "signal": null,
        "stdout": capped(stdout),
        "stderr": capped(stderr),
        "timed_out": timed_out,
    }))
}

#[derive(Deserialize)]
pub(crate) struct AttachQuery {
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    from: Option<String>,
}

/// The task's output as it grows, until the task has ended and all of it is sent.
pub(crate) async fn attach(
    State(agent): State<Shared>,
    caller: Caller,
    Path(task_id): Path<String>,
    Query(query): Query<AttachQuery>,
) -> Answer {
    let name = match query.stream.as_deref().unwrap_or("stdout") {
        "stdout" => "stdout",
        "stderr" => "stderr",
        other => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("'{other}' is not a stream: stdout or stderr"),
            ));
        }
    };
    let target = match running_target(&agent, &task_id)
        .and_then(|t| authorized(&agent, &caller, Action::AttachContainerOutput, &t).map(|()| t))
    {
        Ok(target) => target,
        Err(refused) => return Err(refused),
    };
    // The output is opened beneath the task's sandbox: a link the task put in its place
    // leads nowhere.
    let file = OutputFile {
        work_dir: agent.config.work_dir.clone(),
        directory: target.output.clone(),
        name,
    };
    let start = match query.from.as_deref().unwrap_or("end") {
        "start" => 0,
        "end" => file
            .open()
            .and_then(|f| f.metadata())
            .map(|m| m.len())
            .unwrap_or(0),
        other => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("'{other}' is not a position: start or end"),
            ));
        }
    };
    struct Follow {
        agent: Shared,
        task_id: String,
        file: OutputFile,
        /// Opened once found, and kept: the task's output goes on into that file whatever
        /// the task does to the name.
        opened: Option<Arc<std::fs::File>>,
        offset: u64,
        done: bool,
    }
    let follow = Follow {
        agent,
        task_id,
        file,
        opened: None,
        offset: start,
        done: false,
    };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        loop {
            if follow.done {
                return None;
            }
            if follow.opened.is_none() {
                follow.opened = follow.file.open().ok().map(Arc::new);
            }
            let chunk = read_from(follow.opened.as_ref(), follow.offset).await;
            if !chunk.is_empty() {
                follow.offset += chunk.len() as u64;
                return Some((Ok::<Bytes, std::io::Error>(Bytes::from(chunk)), follow));
            }
            // Nothing new: the end once the task has ended (its last output is read above).
            let running = locate(&follow.agent, &follow.task_id).is_some_and(|t| t.running);
            if !running {
                follow.done = true;
                let last = read_from(follow.opened.as_ref(), follow.offset).await;
                if last.is_empty() {
                    return None;
                }
                follow.offset += last.len() as u64;
                return Some((Ok(Bytes::from(last)), follow));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// A task's output file, by where it lies.
struct OutputFile {
    work_dir: PathBuf,
    directory: PathBuf,
    name: &'static str,
}

impl OutputFile {
    fn open(&self) -> std::io::Result<std::fs::File> {
        crate::beneath::Sandbox::open(&self.work_dir, &self.directory)?
            .file(std::path::Path::new(self.name))
    }
}

/// What a file holds from `offset` (at most 64 KiB): nothing without a file, or when it
/// has not grown (a poll that finds nothing new costs one `fstat`).
async fn read_from(file: Option<&Arc<std::fs::File>>, offset: u64) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let Some(file) = file else {
        return Vec::new();
    };
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    if length <= offset {
        return Vec::new();
    }
    let wanted = (length - offset).min(64 * 1024) as usize;
    let file = file.clone();
    let read = tokio::task::spawn_blocking(move || {
        let mut buffer = vec![0; wanted];
        let read = file.read_at(&mut buffer, offset)?;
        buffer.truncate(read);
        Ok::<_, std::io::Error>(buffer)
    })
    .await;
    match read {
        Ok(Ok(buffer)) => buffer,
        _ => Vec::new(),
    }
}
