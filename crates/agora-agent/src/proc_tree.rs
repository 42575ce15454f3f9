//! A process and its descendants, read from `/proc`: what `top` of a task shows (pid, parent,
//! user, state, cpu time, resident memory, threads, command line). A container's processes
//! all descend from its init (orphans are re-parented to it), so the tree from the pid the
//! agent keeps is the whole container.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct ProcessInfo {
    pub pid: i32,
    pub ppid: i32,
    pub user: String,
    pub state: String,
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub threads: u64,
    pub command: String,
}

/// The fields of `/proc/<pid>/stat` that `top` shows.
#[derive(Clone, Debug, PartialEq)]
struct Stat {
    name: String,
    state: char,
    ppid: i32,
    cpu_ticks: u64,
    threads: u64,
    rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`: the name sits in parentheses and may hold spaces and
/// parentheses itself, so fields are counted from the last ')'.
fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is 14, stime 15, num_threads 20, rss 24.
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        name,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        cpu_ticks: field(14)? + field(15)?,
        threads: field(20)?,
        rss_pages: field(24)?,
    })
}

/// `root` and every process below it, parents before children.
pub(crate) fn tree(root: i32) -> Vec<ProcessInfo> {
    let mut stats: BTreeMap<i32, Stat> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(stat) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|text| parse_stat(&text))
        {
            stats.insert(pid, stat);
        }
    }
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .filter(|p| *p > 0)
        .unwrap_or(4096) as u64;
    let mut users: HashMap<u32, String> = HashMap::new();
    let mut found = Vec::new();
    let mut pending = vec![root];
    while let Some(pid) = pending.pop() {
        let Some(stat) = stats.get(&pid) else {
            continue;
        };
        pending.extend(
            stats
                .iter()
                .filter(|(_, s)| s.ppid == pid)
                .map(|(child, _)| *child),
        );
        let uid = owner(pid);
        let user = uid.map_or_else(String::new, |uid| {
            users
                .entry(uid)
                .or_insert_with(|| {
                    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                        .ok()
                        .flatten()
                        .map_or_else(|| uid.to_string(), |u| u.name)
                })
                .clone()
        });
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let command = cmdline
            .split(|b| *b == 0)
            .filter(|part| !part.is_empty())
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        found.push(ProcessInfo {
            pid,
            ppid: stat.ppid,
            user,
            state: stat.state.to_string(),
            cpu_seconds: stat.cpu_ticks as f64 / ticks,
            rss_bytes: stat.rss_pages * page,
            threads: stat.threads,
            command: if command.is_empty() {
                format!("[{}]", stat.name)
            } else {
                command
            },
        });
    }
    found.sort_by_key(|p| p.pid);
    found
}

/// The real uid of a process, from `/proc/<pid>/status`.
fn owner(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_awkward_names_parse() {
        let text = "4242 (my (odd) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 12345 1000000 512 18446744073709551615";
        let stat = parse_stat(text).unwrap_or_else(|| panic!("unparsed"));
        assert_eq!(stat.name, "my (odd) name");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.ppid, 17);
        assert_eq!(stat.cpu_ticks, 300);
        assert_eq!(stat.threads, 3);
        assert_eq!(stat.rss_pages, 512);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn the_tree_of_this_process_holds_its_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let me = std::process::id() as i32;
        let listed = tree(me);
        assert_eq!(listed.first().map(|p| p.pid), Some(me));
        let sleeper = listed.iter().find(|p| p.pid == child.id() as i32);
        let _ = child.kill();
        let _ = child.wait();
        let sleeper = sleeper.unwrap_or_else(|| panic!("the child is in the tree: {listed:?}"));
        assert_eq!(sleeper.ppid, me);
        assert_eq!(sleeper.command, "sleep 5");
    }
}
