//! Test harness: real `agora` processes on loopback with temporary directories, a
//! wait-until helper, and framework helpers over the real scheduler SDK.

#![allow(dead_code)]

pub mod cli;
pub mod dns;
pub mod docker;
pub mod marathon;
pub mod tls;
pub mod traffic;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agora_api::mesos::{CommandInfo, FrameworkInfo, Id, TaskInfo, WireResource};
use agora_api::scheduler::{Event, Offer};
use agora_client::{MasterClient, Scheduler, SchedulerOptions};
use agora_types::TaskState;

pub const BIN: &str = env!("CARGO_BIN_EXE_agora");

/// A running `agora` process, killed (SIGKILL) when dropped.
pub struct Process {
    pub child: Child,
    pub port: u16,
    pub args: Vec<String>,
    /// Where it runs, when not here: its relative paths are relative to that.
    pub cwd: Option<PathBuf>,
}

impl Process {
    /// Starts `agora <args>` with `--port 0` and waits for its "listening on" line.
    pub fn start(args: &[&str]) -> Process {
        Process::start_with_env(args, &[])
    }

    /// Starts `agora <args>` with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Process {
        Process::start_in(None, args, env)
    }

    /// Starts `agora <args>` in a working directory of its own (for relative paths).
    pub fn start_in(cwd: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Process {
        agora_tls::install_default_provider();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut command = Command::new(BIN);
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let mut child = command
            .args(&args)
            .envs(env.iter().copied())
            .env(
                "AGORA_LOG",
                std::env::var("AGORA_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn agora");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .expect("read the listening line");
        let port = line
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split([':', ' ', ',']).nth(1))
            .and_then(|port| port.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in reader.lines() {});
        Process {
            child,
            port,
            args,
            cwd: cwd.map(Path::to_path_buf),
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The text of a GET on this process (`/metrics`, say).
    pub async fn get_text(&self, path: &str) -> String {
        reqwest::get(format!("http://{}{path}", self.address()))
            .await
            .expect("get")
            .text()
            .await
            .expect("text")
    }

    /// A request with a JSON body: its status and its answer's text.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> (reqwest::StatusCode, String) {
        let response = reqwest::Client::new()
            .request(method, format!("http://{}{path}", self.address()))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.text().await.unwrap_or_default())
    }

    /// The id of the first task (live or ended) whose id contains `part`, from
    /// `/master/tasks`, once there is one.
    pub async fn task_id_containing(&self, part: &str) -> String {
        wait_until(Duration::from_secs(20), part, || async {
            let tasks: serde_json::Value =
                serde_json::from_str(&self.get_text("/master/tasks?limit=1000").await).ok()?;
            tasks["tasks"]
                .as_array()?
                .iter()
                .filter_map(|t| t["id"].as_str())
                .find(|id| id.contains(part))
                .map(str::to_owned)
        })
        .await
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn terminate(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
    }
}

impl Process {
    /// The agent work dir this process uses, if it runs an agent.
    fn work_dir(&self) -> Option<PathBuf> {
        let value = |flag: &str| {
            self.args
                .iter()
                .position(|a| a == flag)
                .and_then(|i| self.args.get(i + 1))
        };
        let dir = match self.args.first().map(String::as_str) {
            Some("agent") => value("--work-dir").map(PathBuf::from),
            Some("up") => value("--work-dir")
                .map(PathBuf::from)
                .or_else(|| value("--data-dir").map(|d| Path::new(d).join("agent"))),
            _ => None,
        }?;
        Some(match &self.cwd {
            Some(cwd) => cwd.join(dir),
            None => dir,
        })
    }
}

/// Stops the process and whatever tasks it left: a test must not leave executors behind,
/// whether its agent was stopped, killed or is still running.
impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
        if let Some(work_dir) = self.work_dir() {
            kill_leftovers(&work_dir);
        }
    }
}

/// Fast failure detection so tests take seconds, not minutes.
pub const FAST_MASTER: &[&str] = &[
    "--agent-ping-timeout",
    "300ms",
    "--max-agent-ping-timeouts",
    "4",
    "--allocation-interval",
    "200ms",
];

pub fn start_master(data_dir: &Path) -> Process {
    start_master_on(data_dir, 0)
}

/// A master on a given port (0: any), e.g. restarted where its agents expect it.
pub fn start_master_on(data_dir: &Path, port: u16) -> Process {
    start_master_with(data_dir, port, &[])
}

/// A master with more flags (`--credentials`, `--tls-cert`, ...).
pub fn start_master_with(data_dir: &Path, port: u16, extra: &[&str]) -> Process {
    let port = port.to_string();
    let mut args = vec![
        "master",
        "--port",
        port.as_str(),
        "--bind",
        "127.0.0.1",
        "--data-dir",
        data_dir.to_str().expect("utf8"),
    ];
    args.extend_from_slice(FAST_MASTER);
    args.extend_from_slice(extra);
    Process::start(&args)
}

pub fn start_agent(master: &str, work_dir: &Path, resources: &str) -> Process {
    start_agent_on(master, work_dir, resources, 0)
}

pub fn start_agent_on(master: &str, work_dir: &Path, resources: &str, port: u16) -> Process {
    start_agent_with(master, work_dir, resources, port, &[])
}

/// An agent with more flags (`--hostname`, `--attributes`, ...).
pub fn start_agent_with(
    master: &str,
    work_dir: &Path,
    resources: &str,
    port: u16,
    extra: &[&str],
) -> Process {
    let port = port.to_string();
    let mut args = vec![
        "agent",
        "--master",
        master,
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--work-dir",
        work_dir.to_str().expect("utf8"),
        "--resources",
        resources,
        "--status-update-retry",
        "500ms",
    ];
    args.extend_from_slice(extra);
    args.extend(discovery_defaults(extra));
    Process::start(&args)
}

/// Discovery's shared ports stay closed unless a test asks for them: tests run side by side.
fn discovery_defaults(extra: &[&str]) -> Vec<&'static str> {
    let mut args = Vec::new();
    for (flag, value) in [("--proxy-http-port", "0"), ("--dns-port", "0")] {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args
}

pub fn start_up(data_dir: &Path, extra: &[&str]) -> Process {
    start_up_with_env(data_dir, extra, &[])
}

/// `agora up` with extra environment variables.
pub fn start_up_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Process {
    start_up_in(None, data_dir, extra, env)
}

/// `agora up` running in `cwd` (a relative `data_dir` is relative to that).
pub fn start_up_in(
    cwd: Option<&Path>,
    data_dir: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Process {
    let mut args = vec![
        "up",
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--data-dir",
        data_dir.to_str().expect("utf8"),
    ];
    args.extend_from_slice(FAST_MASTER);
    args.extend_from_slice(extra);
    args.extend(discovery_defaults(extra));
    Process::start_in(cwd, &args, env)
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_for_agents(master: &MasterClient, count: usize) {
    wait_until(
        Duration::from_secs(20),
        &format!("{count} active agents"),
        || async {
            let state = master.get_json("/master/state").await.ok()?;
            (state["activated_slaves"].as_u64()? as usize >= count).then_some(())
        },
    )
    .await
}

pub fn framework_info(name: &str) -> FrameworkInfo {
    FrameworkInfo {
        user: "root".into(),
        name: name.into(),
        failover_timeout: 60.0,
        ..FrameworkInfo::default()
    }
}

pub async fn subscribe(master: &str, info: FrameworkInfo) -> Scheduler {
    Scheduler::subscribe(master, info, SchedulerOptions::default())
        .await
        .expect("subscribe")
}

pub fn scalar(name: &str, value: f64) -> WireResource {
    WireResource {
        name: name.into(),
        kind: "SCALAR".into(),
        scalar: Some(agora_api::mesos::ScalarValue { value }),
        role: Some("*".into()),
        ..WireResource::default()
    }
}

pub fn command_task(id: &str, offer: &Offer, command: &str, cpus: f64, mem: f64) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: Id::new(id),
        agent_id: offer.agent_id.clone(),
        resources: vec![scalar("cpus", cpus), scalar("mem", mem)],
        command: Some(CommandInfo {
            value: Some(command.into()),
            ..CommandInfo::default()
        }),
        ..TaskInfo::default()
    }
}

/// Launches command tasks `(id, command, cpus, mem)` together on the next offer; returns the
/// offer (its agent, say).
pub async fn launch_on_next_offer(
    scheduler: &mut Scheduler,
    tasks: &[(&str, &str, f64, f64)],
) -> Offer {
    launch_built_on_next_offer(scheduler, |offer| {
        tasks
            .iter()
            .map(|(id, command, cpus, mem)| command_task(id, offer, command, *cpus, *mem))
            .collect()
    })
    .await
}

/// Launches the tasks `build` makes from the next offer together (for tasks that are more
/// than a command: a user, URIs, a container, an executor); returns the offer.
pub async fn launch_built_on_next_offer(
    scheduler: &mut Scheduler,
    build: impl FnOnce(&Offer) -> Vec<TaskInfo>,
) -> Offer {
    let offer = next_offers(scheduler, Duration::from_secs(10))
        .await
        .remove(0);
    let tasks = build(&offer);
    scheduler
        .launch(vec![offer.id.clone()], tasks, None)
        .await
        .expect("launch");
    offer
}

/// Next event that is not a heartbeat, with a timeout.
pub async fn next_event(scheduler: &mut Scheduler, timeout: Duration) -> Event {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, scheduler.next_event()).await {
            Ok(Some(Event::Heartbeat)) => continue,
            Ok(Some(event)) => return event,
            Ok(None) => panic!("event stream ended"),
            Err(_) => panic!("no event within {timeout:?}"),
        }
    }
}

/// Waits for offers, declining nothing.
pub async fn next_offers(scheduler: &mut Scheduler, timeout: Duration) -> Vec<Offer> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Event::Offers { offers } = next_event(scheduler, left).await {
            return offers.offers;
        }
    }
}

/// Waits until the task reaches `state`, returning its status (other events are skipped).
pub async fn wait_for_state(
    scheduler: &mut Scheduler,
    task_id: &str,
    state: TaskState,
    timeout: Duration,
) -> agora_api::mesos::TaskStatus {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Event::Update { update } = next_event(scheduler, left).await
            && update.status.task_id.value == task_id
        {
            if update.status.state == state {
                return update.status;
            }
            assert!(
                !update.status.state.is_terminal(),
                "task {task_id} ended {:?} ({:?}) while waiting for {state:?}",
                update.status.state,
                update.status.message
            );
        }
    }
}

pub fn temp_dir() -> tempfile::TempDir {
    // reqwest is built with TLS but no crypto of its own: the tests' clients use ring too.
    agora_tls::install_default_provider();
    tempfile::Builder::new()
        .prefix("agora-test-")
        .tempdir()
        .expect("tempdir")
}

pub fn path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The executor pids recorded in an agent's checkpoint.
pub fn checkpointed_executor_pids(work_dir: &Path) -> Vec<i32> {
    // meta/frameworks/<framework>/executors/<executor>.json, one file per executor.
    let mut pids = Vec::new();
    let Ok(frameworks) = std::fs::read_dir(work_dir.join("meta/frameworks")) else {
        return pids;
    };
    for framework in frameworks.flatten() {
        let Ok(executors) = std::fs::read_dir(framework.path().join("executors")) else {
            continue;
        };
        for file in executors.flatten() {
            let Ok(text) = std::fs::read_to_string(file.path()) else {
                continue;
            };
            let Ok(executor) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if let Some(pid) = executor["executor"]["pid"].as_i64() {
                pids.push(pid as i32);
            }
        }
    }
    pids
}

/// Kills every executor process group recorded in an agent checkpoint (tests whose agent was
/// killed leave its tasks behind, as a real agent crash does).
pub fn kill_leftovers(work_dir: &Path) {
    use nix::sys::signal::{Signal, killpg};
    let pids = checkpointed_executor_pids(work_dir);
    // SIGTERM first: the built-in executor then kills its tasks' process groups.
    for pid in &pids {
        let _ = killpg(nix::unistd::Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && pids.iter().any(|pid| process_alive(*pid)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in pids {
        let _ = killpg(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    remove_agent_cgroups(work_dir);
    remove_agent_containers(work_dir);
}

/// Removes the Docker containers of a killed agent (labelled with its id), which its killed
/// executors may not have had time to remove.
fn remove_agent_containers(work_dir: &Path) {
    let Ok(text) = std::fs::read_to_string(work_dir.join("meta").join("agent.json")) else {
        return;
    };
    let agent_id = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["agent_id"].as_str().map(str::to_owned));
    let Some(agent_id) = agent_id else { return };
    let ids = docker::containers_labelled("agora.agent_id", &agent_id);
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids.iter().map(String::as_str));
        let _ = docker::docker(&args);
    }
}

/// Empties and removes the cgroups of an agent that was killed (the agent lists its
/// directories in `meta/cgroups`): left behind, thousands of them slow the kernel down for
/// every later test.
fn remove_agent_cgroups(work_dir: &Path) {
    let Ok(listed) = std::fs::read_to_string(work_dir.join("meta").join("cgroups")) else {
        return;
    };
    for parent in listed.lines().map(PathBuf::from) {
        let containers: Vec<PathBuf> = std::fs::read_dir(&parent)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        for container in containers.iter().chain(std::iter::once(&parent)) {
            for _ in 0..50 {
                let procs =
                    std::fs::read_to_string(container.join("cgroup.procs")).unwrap_or_default();
                let pids: Vec<i32> = procs
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect();
                if pids.is_empty() {
                    break;
                }
                for pid in pids {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = std::fs::remove_dir(container);
        }
    }
}

/// Like [`wait_for_state`], but remembers every status it passes over in `seen`, and looks
/// there first: tasks launched together report in any order.
pub async fn wait_for_status(
    scheduler: &mut Scheduler,
    seen: &mut Vec<agora_api::mesos::TaskStatus>,
    task_id: &str,
    state: TaskState,
    timeout: Duration,
) -> agora_api::mesos::TaskStatus {
    if let Some(status) = seen
        .iter()
        .find(|s| s.task_id.value == task_id && s.state == state)
    {
        return status.clone();
    }
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Event::Update { update } = next_event(scheduler, left).await {
            seen.push(update.status.clone());
            if update.status.task_id.value == task_id && update.status.state == state {
                return update.status;
            }
        }
    }
}

/// Waits until every one of `task_ids` has reached `state` (in any order).
pub async fn wait_for_all(
    scheduler: &mut Scheduler,
    seen: &mut Vec<agora_api::mesos::TaskStatus>,
    task_ids: &[&str],
    state: TaskState,
    timeout: Duration,
) {
    for task_id in task_ids {
        wait_for_status(scheduler, seen, task_id, state, timeout).await;
    }
}

/// The (framework id, sandbox directory) of an executor, live or completed, from an agent's
/// `/slave(1)/state`.
pub async fn executor_directory(agent_address: &str, executor_id: &str) -> (String, String) {
    let client = MasterClient::new(agent_address);
    wait_until(
        Duration::from_secs(5),
        "the executor in the agent's state",
        || async {
            let state = client.get_json("/slave(1)/state").await.ok()?;
            let frameworks = state["frameworks"]
                .as_array()?
                .iter()
                .chain(state["completed_frameworks"].as_array()?);
            for framework in frameworks {
                let executors = framework["executors"]
                    .as_array()?
                    .iter()
                    .chain(framework["completed_executors"].as_array()?);
                for executor in executors {
                    if executor["id"] == executor_id {
                        return Some((
                            framework["id"].as_str()?.to_owned(),
                            executor["directory"].as_str()?.to_owned(),
                        ));
                    }
                }
            }
            None
        },
    )
    .await
}

/// The first output of a running command task, once it has written some: TASK_RUNNING comes
/// as its shell starts, before anything the shell prints.
pub async fn first_stdout(agent_address: &str, task_id: &str) -> String {
    wait_until(Duration::from_secs(5), "the task's output", || async {
        let stdout = task_stdout(agent_address, task_id).await;
        (!stdout.is_empty()).then_some(stdout)
    })
    .await
}

/// The stdout of a command task (its executor has the task's id), read through the agent.
pub async fn task_stdout(agent_address: &str, task_id: &str) -> String {
    try_task_stdout(agent_address, task_id)
        .await
        .expect("read stdout")
}

/// The stdout of a command task, or `None` while its sandbox is not there yet (the agent
/// names an executor's directory before the executor starts).
pub async fn try_task_stdout(agent_address: &str, task_id: &str) -> Option<String> {
    let (_, directory) = executor_directory(agent_address, task_id).await;
    let read = MasterClient::new(agent_address)
        .get_json(&format!("/files/read?path={directory}/stdout&offset=0"))
        .await
        .ok()?;
    Some(read["data"].as_str().unwrap_or_default().to_owned())
}

/// The framework called `name` in a v0 master state (`agora up` also runs the services
/// scheduler's framework, so positions are not stable).
pub fn framework<'a>(state: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    static MISSING: serde_json::Value = serde_json::Value::Null;
    state["frameworks"]
        .as_array()
        .and_then(|frameworks| frameworks.iter().find(|f| f["name"] == name))
        .unwrap_or(&MISSING)
}
