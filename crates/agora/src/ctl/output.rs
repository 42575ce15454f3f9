//! How answers are shown: the API's JSON exactly (`-o json`), the same as YAML, or tables for
//! people — borderless, kubectl-style, built by each command from the same JSON.

use comfy_table::{Table, presets};
use serde_json::Value;

use crate::cli::Output;

/// Prints `value` as asked; `table` renders it for people.
pub fn print(output: Output, value: &Value, table: impl FnOnce(&Value) -> String) {
    let text = match output {
        Output::Json => serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()),
        Output::Yaml => serde_yaml_ng::to_string(value).unwrap_or_else(|_| value.to_string()),
        Output::Table => table(value),
    };
    let text = text.trim_end();
    if !text.is_empty() {
        write_out(format!("{text}\n").as_bytes());
    }
}

/// Writes to stdout; when the reader has gone (`agora app list | head -1`), ends quietly as
/// a command killed by SIGPIPE would, rather than failing every later write.
pub fn write_out(bytes: &[u8]) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("agora: cannot write to stdout: {error}");
            std::process::exit(1);
        }
    }
}

/// `println!` through [`write_out`].
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::ctl::output::write_out(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}
pub(crate) use say;

/// A table with a header row and no borders.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    table.set_header(header.iter().copied());
    table
}

/// A table's text, each line without the padding comfy-table leaves at its ends.
pub fn render(table: &Table) -> String {
    table
        .lines()
        .map(|line| line.trim().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A table's text, or `empty` when it has no rows.
pub fn render_or(table: &Table, empty: &str) -> String {
    if table.is_empty() {
        empty.to_owned()
    } else {
        render(table)
    }
}

/// A detail view: its fields, then a table of what it holds (or `empty`).
pub fn fields_then(fields: String, table: &Table, empty: &str) -> String {
    format!("{fields}\n\n{}", render_or(table, empty))
}

/// Key: value lines, keys padded to one width.
pub fn fields(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 1;
    rows.iter()
        .map(|(key, value)| format!("{:width$} {value}", format!("{key}:")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A JSON value as a table cell: strings bare, absent as "-".
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) if text.is_empty() => "-".into(),
        Value::String(text) => text.clone(),
        Value::Number(number) => number
            .as_f64()
            .map(number_text)
            .unwrap_or_else(|| number.to_string()),
        other => other.to_string(),
    }
}

/// The cells of the array under `key`.
pub fn cells(value: &Value, key: &str) -> Vec<String> {
    value[key]
        .as_array()
        .into_iter()
        .flatten()
        .map(cell)
        .collect()
}

/// Items joined by `separator`, or "-" when there are none.
pub fn joined(items: &[String], separator: &str) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(separator)
    }
}

/// 0.1 rather than 0.1000000001; whole numbers without a fraction.
pub fn number_text(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{number:.0}")
    } else {
        let text = format!("{number:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// `used/total` of one scalar of two v0 flat resource maps.
pub fn used_of(used: &Value, total: &Value, name: &str) -> String {
    format!(
        "{}/{}",
        number_text(used[name].as_f64().unwrap_or(0.0)),
        number_text(total[name].as_f64().unwrap_or(0.0))
    )
}

/// A v0 flat resource map as `cpus:2 mem:512 ports:[31000-31010]`.
pub fn resources_text(resources: &Value) -> String {
    let Some(map) = resources.as_object() else {
        return "-".into();
    };
    let parts: Vec<String> = map
        .iter()
        .filter(|(_, value)| !matches!(value, Value::Null) && value.as_f64() != Some(0.0))
        .map(|(name, value)| format!("{name}:{}", cell(value)))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}

/// Seconds since the epoch (Mesos' float timestamps) as an age: `3s`, `5m`, `2h`, `4d`.
pub fn age(seconds_since_epoch: f64, now: f64) -> String {
    let elapsed = (now - seconds_since_epoch).max(0.0) as u64;
    match elapsed {
        0..60 => format!("{elapsed}s"),
        60..3600 => format!("{}m", elapsed / 60),
        3600..86400 => format!("{}h", elapsed / 3600),
        _ => format!("{}d", elapsed / 86400),
    }
}

pub fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(number_text(0.1), "0.1");
        assert_eq!(number_text(2.0), "2");
        assert_eq!(number_text(0.30000000000000004), "0.3");
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!("")), "-");
        assert_eq!(cell(&json!(1.5)), "1.5");
    }

    #[test]
    fn tables_have_no_border_and_no_trailing_space() {
        let mut t = table(&["ID", "CPUS"]);
        t.add_row(vec!["/web".to_owned(), "0.5".to_owned()]);
        let text = render(&t);
        assert!(text.starts_with("ID"), "{text}");
        assert!(text.contains("/web"), "{text}");
        assert!(!text.lines().any(|l| l.ends_with(' ')), "{text:?}");
        assert!(!text.contains('|') && !text.contains('+'), "{text}");
    }

    #[test]
    fn resources_and_ages() {
        assert_eq!(
            resources_text(
                &json!({"cpus": 2.0, "disk": 0, "mem": 512.0, "ports": "[31000-31010]"})
            ),
            "cpus:2 mem:512 ports:[31000-31010]"
        );
        assert_eq!(
            used_of(&json!({"cpus": 0.5}), &json!({"cpus": 4}), "cpus"),
            "0.5/4"
        );
        assert_eq!(age(100.0, 130.0), "30s");
        assert_eq!(age(0.0, 7300.0), "2h");
    }

    #[test]
    fn yaml_and_json_are_the_api_answer() {
        let value = json!({"id": "/web", "instances": 2});
        let yaml = serde_yaml_ng::to_string(&value).unwrap_or_default();
        assert_eq!(yaml, "id: /web\ninstances: 2\n");
    }
}
