//! Small readings of API JSON for pages: numbers as people write them, resources, states.

use serde_json::Value;

/// 0.1 rather than 0.1000000001; whole numbers without a fraction.
pub fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// A JSON value as text: strings bare, numbers as [`number`], absent as "—".
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "—".into(),
        Value::String(s) if s.is_empty() => "—".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().map(number).unwrap_or_else(|| n.to_string()),
        other => other.to_string(),
    }
}

/// The array under `key`, or nothing.
pub fn items<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value[key].as_array().into_iter().flatten()
}

/// A v0 flat resource map as `cpus 2 · mem 512 · ports [31000-31010]`.
pub fn resources(resources: &Value) -> String {
    let parts: Vec<String> = resources
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null() && v.as_f64() != Some(0.0))
        .map(|(name, v)| format!("{name} {}", text(v)))
        .collect();
    if parts.is_empty() {
        "—".into()
    } else {
        parts.join(" · ")
    }
}

/// `TASK_RUNNING` → `running`.
pub fn state(state: &str) -> String {
    state.trim_start_matches("TASK_").to_lowercase()
}

/// The CSS class of a task state: good, bad or pending.
pub fn state_class(state: &str) -> &'static str {
    match state {
        "TASK_RUNNING" | "TASK_FINISHED" => "good",
        "TASK_FAILED"
        | "TASK_ERROR"
        | "TASK_LOST"
        | "TASK_GONE"
        | "TASK_DROPPED"
        | "TASK_UNREACHABLE"
        | "TASK_GONE_BY_OPERATOR" => "bad",
        "TASK_KILLED" | "TASK_KILLING" => "muted",
        _ => "pending",
    }
}

pub use agora_client::readings::{dominant_share, is_terminal};

/// A path segment for a link (ids may hold `/`, `:` or spaces).
pub fn segment(text: &str) -> String {
    agora_client::escape_segment(text)
}

/// An app id as it goes after `/ui/apps/`: its segments escaped, slashes kept.
pub fn app_path(id: &str) -> String {
    id.trim_matches('/')
        .split('/')
        .map(segment)
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn readings() {
        assert_eq!(number(0.1 + 0.2), "0.3");
        assert_eq!(number(4.0), "4");
        assert_eq!(text(&json!(null)), "—");
        assert_eq!(
            resources(&json!({"cpus": 0.5, "disk": 0, "mem": 64})),
            "cpus 0.5 · mem 64"
        );
        assert_eq!(state("TASK_RUNNING"), "running");
        assert_eq!(app_path("/prod/web app"), "prod/web%20app");
    }
}
