//! `/files/*`: read, browse and download sandbox files, and nothing else: a path must lie in
//! the sandbox of an executor this agent runs or ran (by its host path, or Mesos' virtual
//! `/frameworks/<f>/executors/<e>/runs/<latest|container>/...`), and it is opened beneath that
//! sandbox (`crate::beneath`), so neither `..` nor a link a task planted leads anywhere else —
//! not to the agent's checkpoints, which hold every task's environment.

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nix::fcntl::AtFlags;
use nix::sys::stat::{FileStat, SFlag, fstat, fstatat};
use serde_json::{Value, json};

use agora_http::Query;
use agora_http::auth::acl::Action;
use serde::Deserialize;

use super::{Answer, MesosError, Shared, json_response};
use crate::beneath::Sandbox;

/// Mesos caps one read at 16 pages.
const MAX_READ: u64 = 16 * 4096;

/// The query of `/files/*`: the path, and for a read the range (`-1`: from the end).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct FileQuery {
    path: Option<String>,
    offset: Option<i64>,
    length: Option<i64>,
}

impl FileQuery {
    fn path(&self) -> Result<&str, MesosError> {
        self.path
            .as_deref()
            .ok_or_else(|| MesosError::bad_request("Expecting 'path' query parameter"))
    }
}

/// A sandbox this agent knows: an executor's run, live or ended.
#[derive(Clone)]
struct Run {
    framework_id: String,
    executor_id: String,
    container_id: String,
    directory: PathBuf,
    /// The user the executor runs as (what `access_sandboxes` in the ACLs names).
    user: String,
}

fn runs(agent: &Shared) -> Vec<Run> {
    agent.with_state(|state| {
        let mut runs = Vec::new();
        let frameworks = state
            .frameworks
            .iter()
            .map(|(id, framework)| (id.to_string(), framework))
            .chain(state.completed_frameworks.iter().map(|framework| {
                let id = framework
                    .info
                    .id
                    .as_ref()
                    .map(|id| id.value.clone())
                    .unwrap_or_default();
                (id, framework)
            }));
        for (framework_id, framework) in frameworks {
            // Oldest first: the newest run of an executor is what `runs/latest` names.
            for executor in framework
                .completed_executors
                .iter()
                .chain(framework.executors.values())
            {
                let user = executor
                    .info
                    .command
                    .as_ref()
                    .and_then(|c| c.user.clone())
                    .or_else(|| {
                        executor
                            .tasks
                            .values()
                            .find_map(|t| t.info.command.as_ref().and_then(|c| c.user.clone()))
                    })
                    .unwrap_or_else(|| framework.info.user.clone());
                runs.push(Run {
                    framework_id: framework_id.clone(),
                    executor_id: executor.info.executor_id.value.clone(),
                    container_id: executor.container_id.clone(),
                    directory: executor.directory.clone(),
                    user,
                });
            }
        }
        runs
    })
}

/// The sandbox a requested path lies in, and the rest of the path within it; a caller the ACLs
/// keep from that sandbox (`access_sandboxes`, by its executor's user) is refused.
fn locate(
    agent: &Shared,
    caller: &Caller,
    requested: &str,
) -> Result<(PathBuf, PathBuf), MesosError> {
    let (run, inside) = find_run(agent, requested)?;
    let principal = caller
        .as_ref()
        .and_then(|Extension(caller)| caller.principal.as_deref());
    if !agent
        .config
        .acls
        .permits(Action::AccessSandboxes, principal, Some(&run.user))
    {
        return Err(MesosError::forbidden(format!(
            "Not authorized to read sandboxes of user '{}' ('access_sandboxes' in the ACLs)",
            run.user
        )));
    }
    Ok((run.directory, inside))
}

/// The caller's principal, if it named one.
pub(crate) type Caller = Option<Extension<agora_http::auth::Caller>>;

/// The run a requested path lies in, and the rest of the path within it.
fn find_run(agent: &Shared, requested: &str) -> Result<(Run, PathBuf), MesosError> {
    let not_found =
        || MesosError::not_found(format!("'{requested}' is in no sandbox of this agent"));
    let runs = runs(agent);
    if let Some(rest) = requested.strip_prefix("/frameworks/") {
        // <f>/executors/<e>/runs/<run>[/...]
        let mut parts = rest.splitn(6, '/');
        let (Some(framework), Some("executors"), Some(executor), Some("runs"), Some(run)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(not_found());
        };
        let inside = PathBuf::from(parts.next().unwrap_or(""));
        let found = runs.iter().rev().find(|r| {
            r.framework_id == framework
                && r.executor_id == executor
                && (r.container_id == run || run == "latest")
        });
        return found.map(|r| (r.clone(), inside)).ok_or_else(not_found);
    }
    let path = Path::new(requested);
    for run in runs.iter().rev() {
        if let Ok(inside) = path.strip_prefix(&run.directory) {
            return Ok((run.clone(), inside.to_path_buf()));
        }
        // `runs/latest`, the link to the executor's current run.
        if let Some(latest) = run.directory.parent().map(|runs| runs.join("latest"))
            && let Ok(inside) = path.strip_prefix(&latest)
        {
            return Ok((run.clone(), inside.to_path_buf()));
        }
    }
    Err(not_found())
}

/// Opens what a requested path names, beneath its sandbox.
fn open(agent: &Shared, caller: &Caller, requested: &str) -> Result<OwnedFd, MesosError> {
    let (directory, inside) = locate(agent, caller, requested)?;
    let refused = |error: std::io::Error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            MesosError::not_found(format!("'{requested}' was not found"))
        } else {
            MesosError::forbidden(format!("'{requested}' cannot be opened: {error}"))
        }
    };
    Sandbox::open(&agent.config.work_dir, &directory)
        .and_then(|sandbox| sandbox.entry(&inside))
        .map_err(refused)
}

fn is_dir(stat: &FileStat) -> bool {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

fn is_file(stat: &FileStat) -> bool {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
}

pub(crate) async fn read(
    State(agent): State<Shared>,
    caller: Caller,
    Query(params): Query<FileQuery>,
) -> Answer {
    let requested = params.path()?.to_owned();
    let (offset, length) = (params.offset, params.length);
    if offset.is_some_and(|o| o < -1) || length.is_some_and(|l| l < -1) {
        return Err(MesosError::bad_request(
            "Negative 'offset' or 'length' (other than -1)",
        ));
    }
    let opened = open(&agent, &caller, &requested)?;
    match fstat(opened.as_fd()) {
        Ok(stat) if is_file(&stat) => {}
        Ok(stat) if is_dir(&stat) => {
            return Err(MesosError::bad_request("Cannot read a directory"));
        }
        _ => {
            return Err(MesosError::bad_request("Not a regular file"));
        }
    }
    let file = std::fs::File::from(opened);
    let result = tokio::task::spawn_blocking(move || read_range(file, offset, length)).await;
    match result {
        Ok(Ok(value)) => Ok(json_response(&value)),
        Ok(Err(error)) => Err(MesosError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Failed to read file: {error}"),
        )),
        Err(error) => Err(MesosError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Failed to read file: {error}"),
        )),
    }
}

fn read_range(
    mut file: std::fs::File,
    offset: Option<i64>,
    length: Option<i64>,
) -> std::io::Result<Value> {
    let size = file.metadata()?.len();
    let Some(offset) = offset.filter(|o| *o >= 0) else {
        return Ok(json!({"offset": size, "data": ""}));
    };
    let offset = offset as u64;
    let wanted = match length {
        Some(length) if length >= 0 => (length as u64).min(MAX_READ),
        _ => MAX_READ,
    };
    if offset >= size || wanted == 0 {
        return Ok(json!({"offset": offset, "data": ""}));
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut buffer = Vec::with_capacity(wanted as usize);
    file.take(wanted).read_to_end(&mut buffer)?;
    let length = whole_characters(&buffer);
    buffer.truncate(length);
    // `length` (agora's addition; Mesos clients ignore it) is how many bytes `data` stands for:
    // readers that follow a file advance by it, as `data` may hold replacement characters.
    Ok(json!({"offset": offset, "data": String::from_utf8_lossy(&buffer), "length": length}))
}

/// The bytes up to the end of the last whole UTF-8 character: a character cut by the end of
/// a read is left for the next read, so text never arrives split into replacement characters.
fn whole_characters(buffer: &[u8]) -> usize {
    match std::str::from_utf8(buffer) {
        Err(error) if error.error_len().is_none() => error.valid_up_to(),
        _ => buffer.len(),
    }
}

/// `ls -l`'s mode column: the kind (`d`, `l` for a link, never followed), then the bits.
fn mode_string(mode: u32) -> String {
    let mut text = String::with_capacity(10);
    let kind = SFlag::from_bits_truncate(mode) & SFlag::S_IFMT;
    text.push(if kind == SFlag::S_IFDIR {
        'd'
    } else if kind == SFlag::S_IFLNK {
        'l'
    } else {
        '-'
    });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        text.push(if bits & 4 != 0 { 'r' } else { '-' });
        text.push(if bits & 2 != 0 { 'w' } else { '-' });
        text.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    text
}

fn file_info(path: &str, stat: &FileStat) -> Value {
    json!({
        "path": path,
        "nlink": stat.st_nlink,
        "size": stat.st_size,
        "mtime": stat.st_mtime,
        "mode": mode_string(stat.st_mode),
        "uid": stat.st_uid.to_string(),
        "gid": stat.st_gid.to_string(),
    })
}

pub(crate) async fn browse(
    State(agent): State<Shared>,
    caller: Caller,
    Query(params): Query<FileQuery>,
) -> Answer {
    let requested = params.path()?.trim_end_matches('/').to_owned();
    let opened = open(&agent, &caller, &requested)?;
    let listed = tokio::task::spawn_blocking(move || list(opened, &requested)).await;
    match listed {
        Ok(Ok(listing)) => Ok(json_response(&Value::Array(listing))),
        Ok(Err(refused)) => Err(refused),
        Err(error) => Err(MesosError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Failed to list: {error}"),
        )),
    }
}

/// A directory's entries (links described, never followed), or a file's own line.
fn list(opened: OwnedFd, requested: &str) -> Result<Vec<Value>, MesosError> {
    let stat = fstat(opened.as_fd())
        .map_err(|error| MesosError::not_found(format!("'{requested}' cannot be read: {error}")))?;
    if !is_dir(&stat) {
        return Ok(vec![file_info(requested, &stat)]);
    }
    let mut directory = nix::dir::Dir::from_fd(opened).map_err(|error| {
        MesosError::not_found(format!("'{requested}' cannot be listed: {error}"))
    })?;
    let names: Vec<std::ffi::OsString> = directory
        .iter()
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_bytes().to_vec())
        .map(std::os::unix::ffi::OsStringExt::from_vec)
        .filter(|name: &std::ffi::OsString| name != "." && name != "..")
        .collect();
    let mut listing: Vec<Value> = names
        .iter()
        .filter_map(|name| {
            let stat = fstatat(&directory, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
            let path = format!("{requested}/{}", name.to_string_lossy());
            Some(file_info(&path, &stat))
        })
        .collect();
    listing.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    Ok(listing)
}

/// The file's bytes, streamed (a log of gigabytes is never held in memory).
pub(crate) async fn download(
    State(agent): State<Shared>,
    caller: Caller,
    Query(params): Query<FileQuery>,
) -> Answer {
    let requested = params.path()?.to_owned();
    let opened = open(&agent, &caller, &requested)?;
    let size = match fstat(opened.as_fd()) {
        Ok(stat) if is_file(&stat) => stat.st_size.max(0) as u64,
        Ok(stat) if is_dir(&stat) => {
            return Err(MesosError::bad_request("Cannot download a directory"));
        }
        _ => {
            return Err(MesosError::bad_request("Not a regular file"));
        }
    };
    let name = Path::new(&requested)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let disposition = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        name.replace(['"', '\\'], "")
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    let file = tokio::fs::File::from_std(std::fs::File::from(opened));
    // The length read at open: a file that grows meanwhile is sent as it was then.
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(
        tokio::io::AsyncReadExt::take(file, size),
    ));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CONTENT_LENGTH, HeaderValue::from(size)),
        ],
        body,
    )
        .into_response())
}

pub(crate) async fn debug(State(agent): State<Shared>) -> Response {
    let attached: serde_json::Map<String, Value> = agent.with_state(|state| {
        let mut map = serde_json::Map::new();
        for (framework_id, framework) in &state.frameworks {
            for (executor_id, executor) in &framework.executors {
                let directory = executor.directory.display().to_string();
                map.insert(directory.clone(), json!(directory));
                map.insert(
                    format!("/frameworks/{framework_id}/executors/{executor_id}/runs/latest"),
                    json!(directory),
                );
            }
        }
        map
    });
    json_response(&Value::Object(attached))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_end_on_whole_characters() {
        let text = "héllo".as_bytes();
        assert_eq!(super::whole_characters(text), text.len());
        assert_eq!(
            super::whole_characters(&text[..2]),
            1,
            "the é is cut: left for later"
        );
        assert_eq!(
            super::whole_characters(b"a\xffb"),
            3,
            "invalid bytes are not waited for"
        );
    }
}
