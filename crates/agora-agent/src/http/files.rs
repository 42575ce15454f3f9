//! `/files/*`: read, browse and download sandbox files, confined to the work dir (paths are
//! canonicalised, so neither `..` nor a symlink can escape it).

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Shared, json_response, text};

/// Mesos caps one read at 16 pages.
const MAX_READ: u64 = 16 * 4096;

type Params = Query<HashMap<String, String>>;

/// Resolves a requested path (a host path inside the work dir, or the virtual
/// `/frameworks/<f>/executors/<e>/runs/latest[/...]` form) to a real path inside the work dir.
fn resolve(agent: &Shared, requested: &str) -> Result<PathBuf, Response> {
    let work_dir = agent
        .config
        .work_dir
        .canonicalize()
        .map_err(|_| text(StatusCode::NOT_FOUND, "work dir is not available"))?;
    let candidate = if requested.starts_with("/frameworks/") {
        match agent.agent_id() {
            Some(agent_id) => work_dir
                .join("slaves")
                .join(agent_id)
                .join(requested.trim_start_matches('/')),
            None => return Err(text(StatusCode::NOT_FOUND, "agent is not registered yet")),
        }
    } else {
        PathBuf::from(requested)
    };
    let real = candidate.canonicalize().map_err(|_| {
        text(
            StatusCode::NOT_FOUND,
            format!("'{requested}' was not found"),
        )
    })?;
    if !real.starts_with(&work_dir) {
        return Err(text(
            StatusCode::FORBIDDEN,
            format!("'{requested}' is outside the agent's work dir"),
        ));
    }
    Ok(real)
}

fn path_param(params: &HashMap<String, String>) -> Result<&str, Response> {
    params
        .get("path")
        .map(String::as_str)
        .ok_or_else(|| text(StatusCode::BAD_REQUEST, "Expecting 'path' query parameter"))
}

fn parse_signed(params: &HashMap<String, String>, key: &str) -> Result<Option<i64>, Response> {
    match params.get(key) {
        None => Ok(None),
        Some(value) => value.parse::<i64>().map(Some).map_err(|_| {
            text(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse '{key}': not a number"),
            )
        }),
    }
}

pub(crate) async fn read(State(agent): State<Shared>, Query(params): Params) -> Response {
    let requested = match path_param(&params) {
        Ok(path) => path.to_owned(),
        Err(response) => return response,
    };
    let (offset, length) = match (
        parse_signed(&params, "offset"),
        parse_signed(&params, "length"),
    ) {
        (Ok(offset), Ok(length)) => (offset, length),
        (Err(response), _) | (_, Err(response)) => return response,
    };
    if offset.is_some_and(|o| o < -1) || length.is_some_and(|l| l < -1) {
        return text(
            StatusCode::BAD_REQUEST,
            "Negative 'offset' or 'length' (other than -1)",
        );
    }
    let path = match resolve(&agent, &requested) {
        Ok(path) => path,
        Err(response) => return response,
    };
    if path.is_dir() {
        return text(StatusCode::BAD_REQUEST, "Cannot read a directory");
    }
    let result = tokio::task::spawn_blocking(move || read_range(&path, offset, length)).await;
    match result {
        Ok(Ok(value)) => json_response(&value),
        Ok(Err(error)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Failed to read file: {error}"),
        ),
        Err(error) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Failed to read file: {error}"),
        ),
    }
}

fn read_range(path: &Path, offset: Option<i64>, length: Option<i64>) -> std::io::Result<Value> {
    let mut file = std::fs::File::open(path)?;
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

fn mode_string(mode: u32, is_dir: bool) -> String {
    let mut text = String::with_capacity(10);
    text.push(if is_dir { 'd' } else { '-' });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        text.push(if bits & 4 != 0 { 'r' } else { '-' });
        text.push(if bits & 2 != 0 { 'w' } else { '-' });
        text.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    text
}

fn file_info(path: &Path) -> Option<Value> {
    let metadata = std::fs::metadata(path).ok()?;
    Some(json!({
        "path": path.display().to_string(),
        "nlink": metadata.nlink(),
        "size": metadata.len(),
        "mtime": metadata.mtime(),
        "mode": mode_string(metadata.permissions().mode(), metadata.is_dir()),
        "uid": metadata.uid().to_string(),
        "gid": metadata.gid().to_string(),
    }))
}

pub(crate) async fn browse(State(agent): State<Shared>, Query(params): Params) -> Response {
    let requested = match path_param(&params) {
        Ok(path) => path.to_owned(),
        Err(response) => return response,
    };
    let path = match resolve(&agent, &requested) {
        Ok(path) => path,
        Err(response) => return response,
    };
    if !path.is_dir() {
        return match file_info(&path) {
            Some(info) => json_response(&json!([info])),
            None => text(StatusCode::NOT_FOUND, "not found"),
        };
    }
    let Ok(entries) = std::fs::read_dir(&path) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("'{requested}' cannot be listed"),
        );
    };
    let mut listing: Vec<Value> = entries
        .filter_map(Result::ok)
        .filter_map(|e| file_info(&e.path()))
        .collect();
    listing.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    json_response(&Value::Array(listing))
}

pub(crate) async fn download(State(agent): State<Shared>, Query(params): Params) -> Response {
    let requested = match path_param(&params) {
        Ok(path) => path.to_owned(),
        Err(response) => return response,
    };
    let path = match resolve(&agent, &requested) {
        Ok(path) => path,
        Err(response) => return response,
    };
    if path.is_dir() {
        return text(StatusCode::BAD_REQUEST, "Cannot download a directory");
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let disposition = HeaderValue::from_str(&format!(
                "attachment; filename=\"{}\"",
                name.replace('"', "")
            ))
            .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/octet-stream"),
                    ),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                bytes,
            )
                .into_response()
        }
        Err(error) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Failed to read file: {error}"),
        ),
    }
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
