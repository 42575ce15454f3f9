//! A cgroup per container (an executor and its tasks), under the agent's own cgroup as
//! `agora/<container id>` in each hierarchy: cpu shares (v1 `cpu.shares`, v2 `cpu.weight`)
//! and a memory limit from the resources, pids counted, usage read back, an OOM kill noticed,
//! and every process in it killed when the container ends — daemons and orphans included.

mod layout;

use crate::unavailable::Unavailable;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use layout::Layout;

/// The directory under the agent's own cgroup that holds agents' containers; each agent has
/// its own below it, named after its work dir, so agents sharing a machine (and a cgroup)
/// never take each other's containers for orphans.
const PARENT: &str = "agora";

/// A stable name for a work dir: FNV-1a of its path, in hex.
fn agent_dir_name(work_dir: &Path) -> String {
    let hash = crate::fnv::fnv1a(work_dir.as_os_str().as_encoded_bytes().iter().copied());
    format!("agent-{hash:016x}")
}

/// Turns on cgroup2's `favordynmods` (Linux 6.0+), and says how moves into cgroups go.
///
/// Every move of a process into a cgroup, in any hierarchy, takes one machine-wide lock for
/// writing; by default that lock is tuned for forks and exits and its writer waits for an RCU
/// grace period, which made single task launches wait 15–30 ms here. `favordynmods` tunes it
/// for moves instead, at a small cost to every fork and exit, which is the trade a machine
/// that starts containers all day wants (the kernel's cgroup-v2 documentation).
fn favor_dynamic_moves(mountinfo: &str) -> String {
    use layout::FavorDynmods;
    use nix::mount::{MsFlags, mount};
    let remount = match Layout::favor_dynmods(mountinfo) {
        FavorDynmods::On => return "fast moves into cgroups (favordynmods)".into(),
        FavorDynmods::NoMount => {
            return "moves into cgroups may wait for the kernel (no cgroup2 mount for favordynmods)"
                .into();
        }
        FavorDynmods::ReadOnly => {
            return "moves into cgroups may wait for the kernel (cgroup2 is read-only here)".into();
        }
        FavorDynmods::Remount(remount) => remount,
    };
    // The mount's own flags, kept (a remount resets those it is not given). Read-only never
    // gets here: on a superblock the whole machine shares, it would be the machine's.
    let mut flags = MsFlags::MS_REMOUNT;
    for option in &remount.flags {
        flags |= match option.as_str() {
            "nosuid" => MsFlags::MS_NOSUID,
            "nodev" => MsFlags::MS_NODEV,
            "noexec" => MsFlags::MS_NOEXEC,
            "noatime" => MsFlags::MS_NOATIME,
            "nodiratime" => MsFlags::MS_NODIRATIME,
            "relatime" => MsFlags::MS_RELATIME,
            "strictatime" => MsFlags::MS_STRICTATIME,
            "nosymfollow" => MsFlags::from_bits_retain(nix::libc::MS_NOSYMFOLLOW),
            _ => MsFlags::empty(),
        };
    }
    if let Err(error) = mount(
        None::<&str>,
        &remount.point,
        None::<&str>,
        flags,
        Some(remount.data.as_str()),
    ) {
        tracing::warn!(mount = %remount.point.display(), %error, "cannot turn on cgroup2's favordynmods: task launches may wait for the kernel");
        return format!("moves into cgroups may wait for the kernel (favordynmods: {error})");
    }
    // A kernel may take the remount and not the option (in a cgroup namespace of its own).
    let now = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if Layout::favor_dynmods(&now) == FavorDynmods::On {
        tracing::info!(mount = %remount.point.display(), "cgroup2 remounted with favordynmods: moves into cgroups no longer wait for RCU grace periods");
        "fast moves into cgroups (favordynmods turned on)".into()
    } else {
        tracing::warn!(mount = %remount.point.display(), "the kernel did not take cgroup2's favordynmods: task launches may wait for it");
        "moves into cgroups may wait for the kernel (favordynmods not taken)".into()
    }
}

/// The CFS period hard cpu limits are set in (Mesos' default).
const CFS_PERIOD_US: u64 = 100_000;

/// What a container may use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Limits {
    pub cpus: f64,
    pub mem_bytes: u64,
}

/// What a container has used.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Usage {
    pub cpu_user_seconds: f64,
    pub cpu_system_seconds: f64,
    pub mem_bytes: u64,
    pub mem_peak_bytes: u64,
    pub pids: u64,
}

impl Usage {
    /// Both together: an executor's container and its tasks' Docker containers.
    pub(crate) fn plus(self, other: Usage) -> Usage {
        Usage {
            cpu_user_seconds: self.cpu_user_seconds + other.cpu_user_seconds,
            cpu_system_seconds: self.cpu_system_seconds + other.cpu_system_seconds,
            mem_bytes: self.mem_bytes + other.mem_bytes,
            mem_peak_bytes: self.mem_peak_bytes + other.mem_peak_bytes,
            pids: self.pids + other.pids,
        }
    }
}

/// The hierarchies this agent puts its containers in.
#[derive(Clone, Debug)]
pub(crate) struct Cgroups {
    layout: Layout,
    /// This agent's directory under `agora/`.
    agent_dir: String,
    /// Hard cpu limits (CFS quota) on top of shares.
    cfs_quota: bool,
    /// Whether moves into cgroups are fast (`favordynmods`), and why not.
    moves: String,
    /// `/proc/self/mountinfo` as read at start: where the hierarchies are mounted, for
    /// placing other processes' cgroups (a remount for `favordynmods` moves nothing).
    mountinfo: String,
}

impl Cgroups {
    /// Finds the hierarchies and checks that the agent may make cgroups there; the reason
    /// when it cannot isolate with cgroups at all.
    pub(crate) fn detect(
        work_dir: &Path,
        cfs_quota: bool,
        favor_dynmods: bool,
    ) -> Result<Cgroups, Unavailable> {
        if !nix::unistd::geteuid().is_root() {
            return Err(Unavailable::NotRoot);
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| {
            Unavailable::Unreadable {
                path: "/proc/self/mountinfo",
                source,
            }
        })?;
        let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|source| {
            Unavailable::Unreadable {
                path: "/proc/self/cgroup",
                source,
            }
        })?;
        let v2_controllers = Layout::parse(&mountinfo, &own, "cpu memory pids")
            .v2_own()
            .and_then(|dir| std::fs::read_to_string(dir.join("cgroup.controllers")).ok())
            .unwrap_or_default();
        let layout = Layout::parse(&mountinfo, &own, &v2_controllers);
        if !layout.controllers.contains_key("memory") || !layout.controllers.contains_key("cpu") {
            return Err(Unavailable::NoControllers {
                missing: layout.missing().join(", "),
            });
        }
        let mut cgroups = Cgroups {
            layout,
            agent_dir: agent_dir_name(work_dir),
            cfs_quota,
            moves: String::new(),
            mountinfo: mountinfo.clone(),
        };
        cgroups.prepare_parents()?;
        // Only once the agent knows it will use cgroups does it change the machine's.
        cgroups.moves = if favor_dynmods {
            favor_dynamic_moves(&mountinfo)
        } else {
            "moves into cgroups as the machine has them (--cgroups-favor-dynmods false)".into()
        };
        Ok(cgroups)
    }

    /// Makes `agora/` in each hierarchy; in v2 it also hands the controllers down to it.
    fn prepare_parents(&self) -> Result<(), Unavailable> {
        for dir in self.parent_dirs() {
            std::fs::create_dir_all(&dir).map_err(|source| Unavailable::CannotCreate {
                dir: dir.clone(),
                source,
            })?;
        }
        if let Some(own) = self.layout.v2_own() {
            let wanted: Vec<String> = ["cpu", "memory", "pids"]
                .iter()
                .filter(|c| self.layout.controllers.get(**c).is_some_and(|h| h.v2))
                .map(|c| format!("+{c}"))
                .collect();
            // A v2 cgroup hands controllers to its children only while it holds no process
            // itself: the agent's own cgroup must be delegated to it and otherwise empty.
            for dir in [
                own.clone(),
                own.join(PARENT),
                own.join(PARENT).join(&self.agent_dir),
            ] {
                std::fs::write(dir.join("cgroup.subtree_control"), wanted.join(" ")).map_err(
                    |source| Unavailable::CannotDelegate {
                        controllers: wanted.join(" "),
                        dir: dir.clone(),
                        source,
                    },
                )?;
            }
        }
        Ok(())
    }

    /// This agent's directory in each hierarchy (its containers' parent).
    pub(crate) fn parent_dirs(&self) -> BTreeSet<PathBuf> {
        self.layout
            .controllers
            .values()
            .map(|h| h.own.join(PARENT).join(&self.agent_dir))
            .collect()
    }

    /// The containers this agent has cgroups for that are not in `live`: left by an agent
    /// that died, or by executors that ended while it was down.
    pub(crate) fn orphans(&self, live: &BTreeSet<String>) -> Vec<Container> {
        let mut ids = BTreeSet::new();
        for parent in self.parent_dirs() {
            if let Ok(entries) = std::fs::read_dir(parent) {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        ids.insert(entry.file_name().to_string_lossy().into_owned());
                    }
                }
            }
        }
        ids.into_iter()
            .filter(|id| !live.contains(id))
            .map(|id| self.container(&id))
            .collect()
    }

    /// What is used, in a word for the agent's state: `cgroups v1`, `cgroups v2` or both.
    pub(crate) fn describe(&self) -> String {
        let versions: BTreeSet<&str> = self
            .layout
            .controllers
            .values()
            .map(|h| if h.v2 { "v2" } else { "v1" })
            .collect();
        let versions: Vec<&str> = versions.into_iter().collect();
        format!(
            "cgroups {} ({}); {}",
            versions.join("+"),
            self.layout
                .controllers
                .keys()
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
            self.moves
        )
    }

    /// The cgroups a process is in, read from `/proc/<pid>/cgroup` in the hierarchies this
    /// agent uses: how a Docker container's usage is read, through its first process. `None`
    /// once the process is gone.
    pub(crate) fn of_process(&self, pid: i32) -> Option<Container> {
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let v2: Vec<&str> = ["cpu", "memory", "pids"]
            .into_iter()
            .filter(|c| self.layout.controllers.get(*c).is_some_and(|h| h.v2))
            .collect();
        let layout = Layout::parse(&self.mountinfo, &own, &v2.join(" "));
        let dir = |controller: &str| {
            layout
                .controllers
                .get(controller)
                .map(|h| (h.own.clone(), h.v2))
        };
        Some(Container {
            cfs_quota: self.cfs_quota,
            cpu: dir("cpu"),
            cpuacct: dir("cpuacct"),
            memory: dir("memory"),
            pids: dir("pids"),
        })
    }

    /// The cgroup of one container (nothing is made until [`Container::create`]).
    pub(crate) fn container(&self, container_id: &str) -> Container {
        let dir = |controller: &str| {
            self.layout.controllers.get(controller).map(|h| {
                let dir = h.own.join(PARENT).join(&self.agent_dir).join(container_id);
                (dir, h.v2)
            })
        };
        Container {
            cfs_quota: self.cfs_quota,
            cpu: dir("cpu"),
            cpuacct: dir("cpuacct"),
            memory: dir("memory"),
            pids: dir("pids"),
        }
    }
}

/// One container's directories, by controller, with whether each is v2.
#[derive(Clone, Debug)]
pub(crate) struct Container {
    cfs_quota: bool,
    cpu: Option<(PathBuf, bool)>,
    cpuacct: Option<(PathBuf, bool)>,
    memory: Option<(PathBuf, bool)>,
    pids: Option<(PathBuf, bool)>,
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `key value` lines (`memory.oom_control`, `memory.events`, `cpu.stat`).
fn keyed(path: &Path, key: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix(key)?.trim().parse().ok())
}

impl Container {
    fn dirs(&self) -> BTreeSet<&PathBuf> {
        [&self.cpu, &self.cpuacct, &self.memory, &self.pids]
            .into_iter()
            .flatten()
            .map(|(dir, _)| dir)
            .collect()
    }

    /// Makes the cgroup and sets its limits. Blocking, as [`Container::empty_and_remove`].
    pub(crate) fn create(&self, limits: Limits) -> std::io::Result<()> {
        for dir in self.dirs() {
            std::fs::create_dir_all(dir)?;
        }
        self.set_limits(limits)
    }

    pub(crate) fn set_limits(&self, limits: Limits) -> std::io::Result<()> {
        // Mesos' arithmetic: 1024 shares a cpu, at least 2.
        let shares = ((limits.cpus * 1024.0) as u64).max(2);
        // The hard limit, when asked for: the cpus in each 100 ms period, at least 1 ms.
        let quota_us = ((limits.cpus * CFS_PERIOD_US as f64) as u64).max(1000);
        match &self.cpu {
            Some((dir, false)) => {
                std::fs::write(dir.join("cpu.shares"), shares.to_string())?;
                if self.cfs_quota {
                    std::fs::write(dir.join("cpu.cfs_period_us"), CFS_PERIOD_US.to_string())?;
                    std::fs::write(dir.join("cpu.cfs_quota_us"), quota_us.to_string())?;
                }
            }
            Some((dir, true)) => {
                // The kubelet's mapping of shares (2..262144) onto weights (1..10000).
                let weight = 1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142;
                std::fs::write(dir.join("cpu.weight"), weight.to_string())?;
                if self.cfs_quota {
                    std::fs::write(dir.join("cpu.max"), format!("{quota_us} {CFS_PERIOD_US}"))?;
                }
            }
            None => {}
        }
        if limits.mem_bytes > 0 {
            match &self.memory {
                Some((dir, false)) => {
                    // Memory and swap together, so a task cannot swap its way past the
                    // limit (memsw must never be below the memory limit, so it is lifted
                    // first). Kernels without swap accounting have no memsw file.
                    let memsw = dir.join("memory.memsw.limit_in_bytes");
                    let _ = std::fs::write(&memsw, "-1");
                    std::fs::write(
                        dir.join("memory.limit_in_bytes"),
                        limits.mem_bytes.to_string(),
                    )?;
                    let _ = std::fs::write(&memsw, limits.mem_bytes.to_string());
                }
                Some((dir, true)) => {
                    std::fs::write(dir.join("memory.max"), limits.mem_bytes.to_string())?;
                    let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                }
                None => {}
            }
        }
        Ok(())
    }

    /// The `cgroup.procs` files a process writes `0` to, to join the container.
    pub(crate) fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs()
            .into_iter()
            .map(|dir| dir.join("cgroup.procs"))
            .collect()
    }

    /// Whether the kernel has killed a process of this container for its memory limit.
    pub(crate) fn oom_killed(&self) -> bool {
        match &self.memory {
            Some((dir, false)) => {
                keyed(&dir.join("memory.oom_control"), "oom_kill ").unwrap_or(0) > 0
            }
            Some((dir, true)) => keyed(&dir.join("memory.events"), "oom_kill ").unwrap_or(0) > 0,
            None => false,
        }
    }

    pub(crate) fn usage(&self) -> Usage {
        let mut usage = Usage::default();
        match &self.cpuacct {
            Some((dir, false)) => {
                // USER_HZ ticks, 100 a second on Linux.
                let stat = dir.join("cpuacct.stat");
                usage.cpu_user_seconds = keyed(&stat, "user ").unwrap_or(0) as f64 / 100.0;
                usage.cpu_system_seconds = keyed(&stat, "system ").unwrap_or(0) as f64 / 100.0;
            }
            Some((dir, true)) => {
                let stat = dir.join("cpu.stat");
                usage.cpu_user_seconds = keyed(&stat, "user_usec ").unwrap_or(0) as f64 / 1e6;
                usage.cpu_system_seconds = keyed(&stat, "system_usec ").unwrap_or(0) as f64 / 1e6;
            }
            None => {}
        }
        match &self.memory {
            Some((dir, false)) => {
                usage.mem_bytes = read_u64(&dir.join("memory.usage_in_bytes")).unwrap_or(0);
                usage.mem_peak_bytes =
                    read_u64(&dir.join("memory.max_usage_in_bytes")).unwrap_or(0);
            }
            Some((dir, true)) => {
                usage.mem_bytes = read_u64(&dir.join("memory.current")).unwrap_or(0);
                usage.mem_peak_bytes = read_u64(&dir.join("memory.peak")).unwrap_or(0);
            }
            None => {}
        }
        if let Some((dir, _)) = &self.pids {
            usage.pids = read_u64(&dir.join("pids.current")).unwrap_or(0);
        }
        usage
    }

    fn members(&self) -> Vec<i32> {
        let mut pids = BTreeSet::new();
        for file in self.procs_files() {
            if let Ok(text) = std::fs::read_to_string(file) {
                pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        }
        pids.into_iter().collect()
    }

    /// Kills every process in the container, including those that left the task's process
    /// group (daemons) or lost their parent, until none is left (a process forking meanwhile
    /// is caught on the next pass), then removes the cgroup. Blocking (cgroup directories
    /// take milliseconds to remove): run it off the async workers.
    pub(crate) fn empty_and_remove(&self) {
        for _ in 0..100 {
            let members = self.members();
            if members.is_empty() {
                break;
            }
            for pid in members {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let survivors = !self.members().is_empty();
        if survivors {
            tracing::warn!("processes of an ended container would not die");
        }
        // Under v1 a removed memory cgroup lingers, dying, while the page cache its tasks
        // left is charged to it (hundreds after an afternoon of short tasks, slowing every
        // later cgroup operation); emptying it first lets it go at once. The sandbox's files
        // lose their cache, which nobody is about to read.
        // (Not while processes survive: it would reclaim memory they still use.)
        if let Some((dir, false)) = &self.memory
            && !survivors
        {
            let _ = std::fs::write(dir.join("memory.force_empty"), "0");
        }
        for dir in self.dirs() {
            if let Err(error) = std::fs::remove_dir(dir)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.display(), %error, "cannot remove a container's cgroup");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_s_directory_is_named_after_its_work_dir_and_stable() {
        let name = agent_dir_name(Path::new("/var/lib/agora/agent"));
        assert_eq!(name, agent_dir_name(Path::new("/var/lib/agora/agent")));
        assert_ne!(name, agent_dir_name(Path::new("/var/lib/agora/agent2")));
        assert!(name.starts_with("agent-") && name.len() == 22, "{name}");
        // FNV-1a's offset basis for the empty path: the name does not change between builds.
        assert_eq!(agent_dir_name(Path::new("")), "agent-cbf29ce484222325");
    }

    /// A unified (v2) tree stood in for by a directory: the files a container is limited,
    /// measured and checked through are v2's. (This machine's controllers are v1, so the
    /// kernel's own v2 files cannot be used here; the file names and values are what is
    /// checked.)
    fn v2_cgroups(root: &Path, cfs_quota: bool) -> Cgroups {
        let mountinfo = format!("29 23 0:26 / {} rw - cgroup2 cgroup2 rw\n", root.display());
        let layout = Layout::parse(&mountinfo, "0::/agent.slice\n", "cpu memory pids");
        Cgroups {
            layout,
            agent_dir: "agent-test".into(),
            cfs_quota,
            moves: String::new(),
            mountinfo,
        }
    }

    #[test]
    fn a_v1_memory_cgroup_is_emptied_before_it_is_removed() {
        let root = tempfile::tempdir().unwrap();
        let memory = root.path().join("memory");
        let mountinfo = format!(
            "30 23 0:27 / {} rw - cgroup cgroup rw,memory\n",
            memory.display()
        );
        let cgroups = Cgroups {
            layout: Layout::parse(&mountinfo, "5:memory:/\n", ""),
            agent_dir: "agent-test".into(),
            cfs_quota: false,
            moves: String::new(),
            mountinfo,
        };
        let container = cgroups.container("c1");
        let dir = memory.join("agora/agent-test/c1");
        std::fs::create_dir_all(&dir).unwrap();
        container.empty_and_remove();
        // (A stand-in directory keeps the file the kernel's would not, so it stays too.)
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.force_empty")).unwrap(),
            "0"
        );
    }

    #[test]
    fn v2_containers_are_limited_measured_and_checked_through_v2_files() {
        let root = tempfile::tempdir().unwrap();
        let cgroups = v2_cgroups(root.path(), true);
        assert_eq!(
            cgroups.describe(),
            "cgroups v2 (cpu, cpuacct, memory, pids); "
        );
        let container = cgroups.container("c1");
        let dir = root.path().join("agent.slice/agora/agent-test/c1");
        assert_eq!(container.procs_files(), vec![dir.join("cgroup.procs")]);
        container
            .create(Limits {
                cpus: 1.5,
                mem_bytes: 256 << 20,
            })
            .unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        // 1.5 cpus = 1536 shares, as the kubelet maps shares onto weights.
        assert_eq!(read("cpu.weight"), "59");
        assert_eq!(read("cpu.max"), "150000 100000");
        assert_eq!(read("memory.max"), (256u64 << 20).to_string());
        assert_eq!(read("memory.swap.max"), "0");

        let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
        write(
            "cpu.stat",
            "usage_usec 3500000\nuser_usec 2500000\nsystem_usec 1000000\n",
        );
        write("memory.current", "104857600\n");
        write("memory.peak", "209715200\n");
        write("pids.current", "3\n");
        write("memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 0\n");
        assert_eq!(
            container.usage(),
            Usage {
                cpu_user_seconds: 2.5,
                cpu_system_seconds: 1.0,
                mem_bytes: 100 << 20,
                mem_peak_bytes: 200 << 20,
                pids: 3,
            }
        );
        assert!(!container.oom_killed());
        write("memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n");
        assert!(container.oom_killed());
        // Without a hard cap, only the weight.
        let shares_only = v2_cgroups(root.path(), false).container("c2");
        shares_only
            .create(Limits {
                cpus: 0.1,
                mem_bytes: 0,
            })
            .unwrap();
        let c2 = root.path().join("agent.slice/agora/agent-test/c2");
        assert_eq!(std::fs::read_to_string(c2.join("cpu.weight")).unwrap(), "4");
        assert!(!c2.join("cpu.max").exists());
        assert!(!c2.join("memory.max").exists());
    }
}
