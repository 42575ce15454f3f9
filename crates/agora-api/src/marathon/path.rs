//! Marathon path ids (`/prod/web`): absolute, `/`-separated segments of lowercase letters,
//! digits, `-` and `.`; relative forms (`web`, `../db`) resolve against a parent group.

/// Why an id is not valid, worded for the 422 body.
pub const SEGMENT_RULE: &str = "must be fully qualified path of lowercase letters, digits, hyphens and dots, each segment starting and ending with a letter or digit";

/// Resolves `id` against `parent` (an absolute group path) and checks every segment.
pub fn resolve(id: &str, parent: &str) -> Result<String, String> {
    let id = id.trim();
    if id.is_empty() {
        return Err("id must not be empty".into());
    }
    let mut segments: Vec<&str> = if id.starts_with('/') {
        Vec::new()
    } else {
        parent.split('/').filter(|s| !s.is_empty()).collect()
    };
    for segment in id.split('/').filter(|s| !s.is_empty()) {
        match segment {
            "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(format!("'{id}' goes above the root group"));
                }
            }
            segment if valid_segment(segment) => segments.push(segment),
            _ => return Err(format!("'{id}' {SEGMENT_RULE}")),
        }
    }
    if segments.is_empty() {
        return Err("an app id must name something below the root group".into());
    }
    Ok(format!("/{}", segments.join("/")))
}

fn valid_segment(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let inner = |b: u8| edge(b) || b == b'-' || b == b'.';
    match bytes {
        [] => false,
        [only] => edge(*only),
        [first, middle @ .., last] => {
            edge(*first) && edge(*last) && middle.iter().all(|b| inner(*b))
        }
    }
}

/// The parent group of an absolute id (`/prod/web` → `/prod`).
pub fn parent(id: &str) -> &str {
    match id.rfind('/') {
        Some(0) | None => "/",
        Some(index) => &id[..index],
    }
}

/// Marathon's "safe path" for task ids: segments joined by `_` (`/prod/web` → `prod_web`).
pub fn safe_name(id: &str) -> String {
    id.trim_matches('/').replace('/', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_and_validates() {
        assert_eq!(resolve("/prod/web", "/"), Ok("/prod/web".into()));
        assert_eq!(resolve("web", "/prod"), Ok("/prod/web".into()));
        assert_eq!(resolve("../db", "/prod/web"), Ok("/prod/db".into()));
        assert_eq!(resolve("./a/./b", "/"), Ok("/a/b".into()));
        assert_eq!(resolve("/a1.b-2", "/"), Ok("/a1.b-2".into()));
        for bad in ["", "/", "/Web", "/-web", "/web-", "/we_b", "/../x", "/a b"] {
            assert!(resolve(bad, "/").is_err(), "{bad} should be refused");
        }
        assert_eq!(parent("/prod/web"), "/prod");
        assert_eq!(parent("/web"), "/");
        assert_eq!(safe_name("/prod/web"), "prod_web");
    }
}
