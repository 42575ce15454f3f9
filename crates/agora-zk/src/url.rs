//! `zk://host:port,host:port/path` as Mesos, pymesos and Marathon take it: the ensemble's
//! members and the path under which masters join their group.

use std::fmt;

use crate::ZkError;

/// A ZooKeeper URL: where the ensemble is and which path the cluster uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZkUrl {
    /// `host:port` of each member, as given (a member without a port gets 2181).
    pub hosts: Vec<String>,
    /// The group's path: absolute, without a trailing `/`, never the root.
    pub path: String,
}

impl ZkUrl {
    /// Reads `zk://h1:2181,h2:2181/agora` (`zoo://` too, as Mesos' detectors do).
    pub fn parse(text: &str) -> Result<ZkUrl, ZkError> {
        let bad = |why: &str| ZkError::Url {
            url: text.to_owned(),
            why: why.to_owned(),
        };
        let rest = text
            .strip_prefix("zk://")
            .or_else(|| text.strip_prefix("zoo://"))
            .ok_or_else(|| bad("it must start with zk://"))?;
        let (hosts, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("it names no path: add one, e.g. zk://host:2181/agora"))?;
        let path = format!("/{}", path.trim_end_matches('/'));
        if path == "/" {
            return Err(bad(
                "its path is the root: give the cluster a path of its own, e.g. /agora",
            ));
        }
        if path.split('/').skip(1).any(str::is_empty) {
            return Err(bad("its path has an empty component"));
        }
        // Credentials (`zk://user:secret@host/…`, Mesos' digest form) are not supported yet:
        // refused rather than taken for a host name.
        if hosts.contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let hosts: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|host| !host.is_empty())
            .map(|host| {
                if host
                    .rsplit_once(':')
                    .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
                {
                    host.to_owned()
                } else {
                    format!("{host}:2181")
                }
            })
            .collect();
        if hosts.is_empty() {
            return Err(bad("it names no ZooKeeper server"));
        }
        Ok(ZkUrl { hosts, path })
    }

    /// The connect string the client takes: `h1:2181,h2:2181`.
    pub fn connect_string(&self) -> String {
        self.hosts.join(",")
    }
}

impl fmt::Display for ZkUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "zk://{}{}", self.hosts.join(","), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::ZkUrl;

    #[test]
    fn urls_are_read_as_mesos_reads_them() {
        let url = ZkUrl::parse("zk://a:2181,b:2182/agora/").unwrap();
        assert_eq!(url.hosts, ["a:2181", "b:2182"]);
        assert_eq!(url.path, "/agora");
        assert_eq!(url.connect_string(), "a:2181,b:2182");
        assert_eq!(url.to_string(), "zk://a:2181,b:2182/agora");
        assert_eq!(ZkUrl::parse("zoo://c/x/y").unwrap().hosts, ["c:2181"]);
        assert_eq!(ZkUrl::parse("zoo://c/x/y").unwrap().path, "/x/y");
    }

    #[test]
    fn bad_urls_say_what_to_do() {
        for (text, says) in [
            ("http://a:2181/agora", "zk://"),
            ("zk://a:2181", "names no path"),
            ("zk://a:2181/", "root"),
            ("zk:///agora", "no ZooKeeper server"),
            ("zk://a//b", "empty component"),
            ("zk://u:p@a:2181/agora", "credentials"),
        ] {
            let error = ZkUrl::parse(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
