//! Where each controller's cgroups live on this machine, read from `/proc/self/mountinfo` and
//! `/proc/self/cgroup`: the unified (v2) hierarchy where it has the controller, else the v1
//! hierarchy that has it mounted. Pure: the texts are passed in.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The controllers agora's containers use.
pub(crate) const CONTROLLERS: &[&str] = &["cpu", "cpuacct", "memory", "pids"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hierarchy {
    /// The directory of the agent's own cgroup in this hierarchy.
    pub own: PathBuf,
    pub v2: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Controller → the hierarchy that has it. `cpuacct` is met by v2's `cpu` (`cpu.stat`).
    pub controllers: BTreeMap<&'static str, Hierarchy>,
}

struct Mount {
    root: String,
    point: PathBuf,
    v2: bool,
    /// The mount's own options (`nosuid`, `relatime`, ...).
    mount_options: Vec<String>,
    /// The file system's options (for cgroup v1, its controllers).
    options: Vec<String>,
}

/// How to turn on cgroup2's `favordynmods`: remount `point` with the mount's own `flags`
/// kept and `data` (its file system options plus `favordynmods`: a cgroup2 remount resets
/// the options it is not given).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Remount {
    pub point: PathBuf,
    pub flags: Vec<String>,
    pub data: String,
}

/// What turning on `favordynmods` takes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FavorDynmods {
    /// It is on.
    On,
    /// No cgroup2 tree is mounted.
    NoMount,
    /// The tree is mounted read-only here: a remount would change it for the whole machine
    /// (read-only included), so it is left alone.
    ReadOnly,
    Remount(Remount),
}

fn mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let mut rest = after.split(' ');
            let fstype = rest.next()?;
            let _source = rest.next()?;
            let superoptions = rest.next().unwrap_or_default();
            let v2 = match fstype {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            Some(Mount {
                root: (*fields.get(3)?).to_owned(),
                point: PathBuf::from(unescape(fields.get(4)?)),
                v2,
                mount_options: fields
                    .get(5)
                    .map(|o| o.split(',').map(str::to_owned).collect())
                    .unwrap_or_default(),
                options: superoptions.split(',').map(str::to_owned).collect(),
            })
        })
        .collect()
}

/// Mount points escape spaces and the like as octal (`\040`).
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(value) = u8::from_str_radix(&text[i + 1..i + 4], 8)
        {
            out.push(value);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The agent's own cgroup in a hierarchy, as a directory under the mount.
fn own_dir(mount: &Mount, path: &str) -> PathBuf {
    let relative = path
        .strip_prefix(mount.root.trim_end_matches('/'))
        .unwrap_or(path)
        .trim_start_matches('/');
    if relative.is_empty() {
        mount.point.clone()
    } else {
        mount.point.join(relative)
    }
}

impl Layout {
    /// `v2_controllers` is the content of `cgroup.controllers` of the agent's own v2 cgroup
    /// (empty if there is none): the controllers v2 offers there.
    pub(crate) fn parse(mountinfo: &str, self_cgroup: &str, v2_controllers: &str) -> Layout {
        let mounts = mounts(mountinfo);
        let mut v1_paths: BTreeMap<String, String> = BTreeMap::new();
        let mut v2_path: Option<String> = None;
        for line in self_cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_id), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if controllers.is_empty() {
                v2_path = Some(path.to_owned());
            } else {
                for controller in controllers.split(',') {
                    v1_paths.insert(controller.to_owned(), path.to_owned());
                }
            }
        }
        let offered: Vec<&str> = v2_controllers.split_whitespace().collect();
        let mut layout = Layout::default();
        for &controller in CONTROLLERS {
            let wanted_v2 = if controller == "cpuacct" {
                "cpu"
            } else {
                controller
            };
            let unified = mounts.iter().find(|m| m.v2);
            if let (Some(mount), Some(path)) = (unified, &v2_path)
                && offered.contains(&wanted_v2)
            {
                layout.controllers.insert(
                    controller,
                    Hierarchy {
                        own: own_dir(mount, path),
                        v2: true,
                    },
                );
                continue;
            }
            let v1 = mounts
                .iter()
                .find(|m| !m.v2 && m.options.iter().any(|o| o == controller));
            if let (Some(mount), Some(path)) = (v1, v1_paths.get(controller)) {
                layout.controllers.insert(
                    controller,
                    Hierarchy {
                        own: own_dir(mount, path),
                        v2: false,
                    },
                );
            }
        }
        layout
    }

    /// What turns on `favordynmods` for the machine's cgroup2 tree. The lock that a move into a cgroup takes is
    /// shared by every hierarchy, v1 ones too, so the unified tree's setting is the one that
    /// counts even where the controllers are v1.
    pub(crate) fn favor_dynmods(mountinfo: &str) -> FavorDynmods {
        let Some(mount) = mounts(mountinfo).into_iter().find(|m| m.v2) else {
            return FavorDynmods::NoMount;
        };
        if mount.options.iter().any(|o| o == "favordynmods") {
            return FavorDynmods::On;
        }
        if mount
            .options
            .iter()
            .chain(&mount.mount_options)
            .any(|o| o == "ro")
        {
            return FavorDynmods::ReadOnly;
        }
        let mut data: Vec<&str> = mount
            .options
            .iter()
            .map(String::as_str)
            .filter(|o| !matches!(*o, "rw" | "ro" | ""))
            .collect();
        data.push("favordynmods");
        FavorDynmods::Remount(Remount {
            point: mount.point,
            flags: mount.mount_options,
            data: data.join(","),
        })
    }

    /// The unified hierarchy's own directory, if any controller uses it.
    pub(crate) fn v2_own(&self) -> Option<&PathBuf> {
        self.controllers.values().find(|h| h.v2).map(|h| &h.own)
    }

    pub(crate) fn missing(&self) -> Vec<&'static str> {
        CONTROLLERS
            .iter()
            .copied()
            .filter(|c| !self.controllers.contains_key(c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This build machine: v1 controllers, one per mount, plus an empty v2 `unified` tree.
    const MIXED_MOUNTS: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 30 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 30 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const MIXED_SELF: &str = "\
8:pids:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn v1_controllers_where_v2_has_none() {
        let layout = Layout::parse(MIXED_MOUNTS, MIXED_SELF, "hugetlb\n");
        assert_eq!(
            layout.controllers["memory"],
            Hierarchy {
                own: "/sys/fs/cgroup/memory/process_api/abc".into(),
                v2: false
            }
        );
        assert_eq!(
            layout.controllers["cpu"].own,
            PathBuf::from("/sys/fs/cgroup/cpu")
        );
        assert!(layout.missing().is_empty());
        assert!(layout.v2_own().is_none());
    }

    #[test]
    fn v2_where_it_has_the_controllers() {
        let mounts = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let own = "0::/system.slice/agora.service\n";
        let layout = Layout::parse(mounts, own, "cpuset cpu io memory pids");
        for controller in CONTROLLERS {
            assert_eq!(
                layout.controllers[controller],
                Hierarchy {
                    own: "/sys/fs/cgroup/system.slice/agora.service".into(),
                    v2: true
                },
                "{controller}"
            );
        }
    }

    #[test]
    fn co_mounted_controllers_and_mount_roots() {
        let mounts = "\
31 30 0:27 /docker/x /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 /docker/x /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        let own = "3:cpu,cpuacct:/docker/x\n2:memory:/docker/x/inner\n";
        let layout = Layout::parse(mounts, own, "");
        assert_eq!(
            layout.controllers["cpu"].own,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(
            layout.controllers["cpuacct"].own,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(
            layout.controllers["memory"].own,
            PathBuf::from("/sys/fs/cgroup/memory/inner")
        );
        assert_eq!(layout.missing(), vec!["pids"]);
    }

    #[test]
    fn favordynmods_keeps_the_mounts_options() {
        assert_eq!(
            Layout::favor_dynmods(MIXED_MOUNTS),
            FavorDynmods::Remount(Remount {
                point: "/sys/fs/cgroup/unified".into(),
                flags: vec!["rw".into(), "relatime".into()],
                data: "favordynmods".into(),
            })
        );
        let systemd = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 \
                       cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        let FavorDynmods::Remount(remount) = Layout::favor_dynmods(systemd) else {
            panic!("a cgroup2 mount to remount");
        };
        assert_eq!(remount.data, "nsdelegate,memory_recursiveprot,favordynmods");
        assert_eq!(
            remount.flags,
            ["rw", "nosuid", "nodev", "noexec", "relatime"]
        );
        let on = "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,favordynmods\n";
        assert_eq!(Layout::favor_dynmods(on), FavorDynmods::On);
        assert_eq!(Layout::favor_dynmods(""), FavorDynmods::NoMount);
        // A read-only view (systemd's ProtectControlGroups) is never remounted.
        let protected = "29 23 0:26 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(Layout::favor_dynmods(protected), FavorDynmods::ReadOnly);
        let read_only = "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 ro\n";
        assert_eq!(Layout::favor_dynmods(read_only), FavorDynmods::ReadOnly);
    }

    #[test]
    fn nothing_mounted_is_nothing_found() {
        let layout = Layout::parse("", "", "");
        assert_eq!(layout.missing(), CONTROLLERS.to_vec());
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
