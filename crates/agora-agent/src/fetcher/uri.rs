//! What a `CommandInfo.uris` entry asks for, read from its JSON, and what it becomes in the
//! sandbox: where it comes from, the file it is saved as, and whether (and how) it is
//! extracted. Pure: the fetcher does the I/O.

use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::error::UriError;

/// One URI to fetch, as Mesos' `CommandInfo.URI`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FetchUri {
    pub value: String,
    pub executable: bool,
    /// Mesos' default is to extract recognised archives.
    pub extract: bool,
    pub cache: bool,
    /// The file's name in the sandbox, when not the URI's last path segment.
    pub output_file: Option<String>,
}

/// Where a URI's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// `http://` or `https://`.
    Http(String),
    /// `file://` or an absolute path on the agent.
    File(PathBuf),
}

/// How an archive is unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Archive {
    /// Anything `tar` reads (it recognises the compression itself).
    Tar,
    Zip,
    /// A single gzip-compressed file (`x.gz` becomes `x`).
    Gzip,
}

impl FetchUri {
    /// Reads one entry of `CommandInfo.uris`.
    pub(crate) fn parse(value: &Value) -> Result<FetchUri, UriError> {
        let text = value
            .get("value")
            .and_then(Value::as_str)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| UriError::NoValue(value.to_string()))?;
        let flag =
            |name: &str, default: bool| value.get(name).and_then(Value::as_bool).unwrap_or(default);
        Ok(FetchUri {
            value: text.trim().to_owned(),
            executable: flag("executable", false),
            extract: flag("extract", true),
            cache: flag("cache", false),
            output_file: value
                .get("output_file")
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
        })
    }

    pub(crate) fn source(&self) -> Result<Source, UriError> {
        let value = self.value.as_str();
        if value.starts_with("http://") || value.starts_with("https://") {
            return Ok(Source::Http(value.to_owned()));
        }
        if let Some(path) = value.strip_prefix("file://") {
            return Ok(Source::File(PathBuf::from(path)));
        }
        if value.starts_with('/') {
            return Ok(Source::File(PathBuf::from(value)));
        }
        match value.split_once("://") {
            Some((scheme, _)) => Err(UriError::UnsupportedScheme(scheme.to_owned())),
            None => Err(UriError::NoScheme),
        }
    }

    /// The file's path relative to the sandbox: `output_file`, else the URI's last path
    /// segment (without query or fragment). Never leaves the sandbox.
    pub(crate) fn destination(&self) -> Result<PathBuf, UriError> {
        let name = match &self.output_file {
            Some(output) => output.clone(),
            None => {
                let path = self.value.split(['?', '#']).next().unwrap_or_default();
                let path = path.split_once("://").map(|(_, rest)| rest).unwrap_or(path);
                // The authority of an http URI is not a file name.
                let segment = path.rsplit('/').next().unwrap_or_default();
                let has_path = path.trim_end_matches('/').contains('/');
                if segment.is_empty()
                    || !has_path && self.value.contains("://") && !self.value.starts_with("file://")
                {
                    return Err(UriError::NamesNoFile(self.value.clone()));
                }
                segment.to_owned()
            }
        };
        let relative = PathBuf::from(&name);
        let inside = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside || relative.as_os_str().is_empty() {
            return Err(UriError::OutsideSandbox(name));
        }
        Ok(relative)
    }

    /// How the fetched file is unpacked, if at all: only when `extract` is asked and
    /// `executable` is not (as Mesos), by its name.
    pub(crate) fn archive(&self, destination: &Path) -> Option<Archive> {
        if !self.extract || self.executable {
            return None;
        }
        let name = destination.file_name()?.to_string_lossy().to_lowercase();
        const TAR: [&str; 9] = [
            ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst", ".tzst",
        ];
        if TAR.iter().any(|suffix| name.ends_with(suffix)) {
            Some(Archive::Tar)
        } else if name.ends_with(".zip") {
            Some(Archive::Zip)
        } else if name.ends_with(".gz") {
            Some(Archive::Gzip)
        } else {
            None
        }
    }
}

/// The cache's name for a URI fetched for a user: stable, file-name safe, and ending in the
/// URI's own name so tools that go by extension still see it.
pub(crate) fn cache_key(user: &str, uri: &str, destination: &Path) -> String {
    let hash = crate::fnv::fnv1a(user.bytes().chain([0]).chain(uri.bytes()));
    let name: String = destination
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{hash:016x}-{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn uri(value: Value) -> FetchUri {
        FetchUri::parse(&value).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn defaults_are_mesos_ones() {
        let parsed = uri(json!({"value": "http://h/app.tgz"}));
        assert!(parsed.extract && !parsed.executable && !parsed.cache);
        assert!(FetchUri::parse(&json!({"extract": true})).is_err());
    }

    #[test]
    fn sources_by_scheme() {
        assert_eq!(
            uri(json!({"value": "https://h:8443/a/b.tar.gz?x=1"})).source(),
            Ok(Source::Http("https://h:8443/a/b.tar.gz?x=1".into()))
        );
        assert_eq!(
            uri(json!({"value": "file:///srv/x"})).source(),
            Ok(Source::File("/srv/x".into()))
        );
        assert_eq!(
            uri(json!({"value": "/srv/x"})).source(),
            Ok(Source::File("/srv/x".into()))
        );
        assert!(
            uri(json!({"value": "hdfs://nn/x"}))
                .source()
                .unwrap_err()
                .to_string()
                .contains("hdfs")
        );
        assert!(uri(json!({"value": "x.tgz"})).source().is_err());
    }

    #[test]
    fn destinations_stay_in_the_sandbox() {
        let named = |v: Value| uri(v).destination();
        assert_eq!(
            named(json!({"value": "http://h/a/b.tar.gz?x=1#f"})),
            Ok("b.tar.gz".into())
        );
        assert_eq!(
            named(json!({"value": "file:///srv/run.sh"})),
            Ok("run.sh".into())
        );
        assert_eq!(
            named(json!({"value": "http://h/a", "output_file": "bin/tool"})),
            Ok("bin/tool".into())
        );
        assert!(named(json!({"value": "http://h/"})).is_err());
        assert!(named(json!({"value": "http://h"})).is_err());
        assert!(named(json!({"value": "http://h/a", "output_file": "../x"})).is_err());
        assert!(named(json!({"value": "http://h/a", "output_file": "/etc/x"})).is_err());
    }

    #[test]
    fn archives_by_name_unless_executable() {
        let archive = |v: Value| {
            let parsed = uri(v);
            let destination = parsed.destination().unwrap_or_default();
            parsed.archive(&destination)
        };
        assert_eq!(
            archive(json!({"value": "http://h/a.tgz"})),
            Some(Archive::Tar)
        );
        assert_eq!(
            archive(json!({"value": "http://h/a.TAR.XZ"})),
            Some(Archive::Tar)
        );
        assert_eq!(
            archive(json!({"value": "http://h/a.zip"})),
            Some(Archive::Zip)
        );
        assert_eq!(
            archive(json!({"value": "http://h/a.json.gz"})),
            Some(Archive::Gzip)
        );
        assert_eq!(archive(json!({"value": "http://h/a.sh"})), None);
        assert_eq!(
            archive(json!({"value": "http://h/a.tgz", "extract": false})),
            None
        );
        assert_eq!(
            archive(json!({"value": "http://h/a.tgz", "executable": true})),
            None
        );
    }

    #[test]
    fn cache_keys_differ_by_user_and_uri() {
        let d = Path::new("app.tgz");
        let a = cache_key("root", "http://h/app.tgz", d);
        assert!(a.ends_with("-app.tgz"), "{a}");
        assert_ne!(a, cache_key("nobody", "http://h/app.tgz", d));
        assert_ne!(a, cache_key("root", "http://h/v2/app.tgz", d));
        assert_eq!(a, cache_key("root", "http://h/app.tgz", d));
    }
}
