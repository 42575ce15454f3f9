//! What pages read of the master, a page at a time: a cluster of 10,000 agents and 100,000
//! tasks is never read whole for one page.

use std::collections::HashMap;

use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::layout;

/// Rows on a page of a list.
pub const PAGE: usize = 100;

/// `?offset=`: where a page of a list starts.
#[derive(Deserialize, Default)]
pub struct Paging {
    #[serde(default)]
    pub offset: usize,
}

/// A page of rows and whether more follow it.
pub struct Rows {
    pub rows: Vec<Value>,
    pub more: bool,
}

impl Rows {
    /// `PAGE + 1` rows asked for: the last says that more follow, and is not shown.
    fn of(mut rows: Vec<Value>) -> Rows {
        let more = rows.len() > PAGE;
        rows.truncate(PAGE);
        Rows { rows, more }
    }
}

async fn get(api: &crate::Api, section: &str, path: &str) -> Result<Value, Response> {
    api.master
        .get_json(path)
        .await
        .map_err(|error| layout::client_failure(section, &error))
}

fn array(value: &mut Value, key: &str) -> Vec<Value> {
    match value[key].take() {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

/// A page of the master's tasks (`/master/tasks`), newest first; `filter` is more of its query
/// (`&framework_id=…`, `&slave_id=…`, `&ended=false`).
pub async fn tasks(
    api: &crate::Api,
    section: &str,
    filter: &str,
    offset: usize,
) -> Result<Rows, Response> {
    let path = format!("/master/tasks?limit={}&offset={offset}{filter}", PAGE + 1);
    let mut answer = get(api, section, &path).await?;
    Ok(Rows::of(array(&mut answer, "tasks")))
}

/// A page of agents, by id (`/master/slaves?offset=&limit=`).
pub async fn agents(api: &crate::Api, section: &str, offset: usize) -> Result<Rows, Response> {
    let path = format!("/master/slaves?offset={offset}&limit={}", PAGE + 1);
    let mut answer = get(api, section, &path).await?;
    Ok(Rows::of(array(&mut answer, "slaves")))
}

/// The agents of these ids, by id (one request).
pub async fn agents_named(
    api: &crate::Api,
    section: &str,
    ids: &[&str],
) -> Result<HashMap<String, Value>, Response> {
    let mut ids: Vec<&str> = ids.iter().copied().filter(|id| !id.is_empty()).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let list = ids
        .iter()
        .map(|id| agora_client::escape_segment(id))
        .collect::<Vec<_>>()
        .join(",");
    let mut answer = get(api, section, &format!("/master/slaves?slave_id={list}")).await?;
    Ok(array(&mut answer, "slaves")
        .into_iter()
        .filter_map(|agent| Some((agent["id"].as_str()?.to_owned(), agent)))
        .collect())
}

/// One agent, if it is registered.
pub async fn agent(api: &crate::Api, section: &str, id: &str) -> Result<Option<Value>, Response> {
    Ok(agents_named(api, section, &[id]).await?.remove(id))
}

/// Every framework the viewer may see, active and completed, without tasks (the operator
/// API's `GET_FRAMEWORKS`), in the v0 shape pages read: `id`, `name`, `user`, `principal`,
/// `roles`, `active`, `webui_url`, `used_resources`, `offered_resources`, and `completed`
/// (torn down, or gone past its failover timeout).
pub async fn frameworks(api: &crate::Api, section: &str) -> Result<Vec<Value>, Response> {
    read_frameworks(&api.master)
        .await
        .map_err(|error| layout::client_failure(section, &error))
}

/// [`frameworks`] as `master`'s client sees them.
pub async fn read_frameworks(
    master: &agora_client::MasterClient,
) -> Result<Vec<Value>, agora_client::ClientError> {
    let answer = master.operator(&json!({"type": "GET_FRAMEWORKS"})).await?;
    let listed = &answer["get_frameworks"];
    let active = listed["frameworks"].as_array().into_iter().flatten();
    let completed = listed["completed_frameworks"]
        .as_array()
        .into_iter()
        .flatten();
    Ok(active
        .map(|f| v0_framework(f, false))
        .chain(completed.map(|f| v0_framework(f, true)))
        .collect())
}

/// The name of each framework, by id.
pub fn names(frameworks: &[Value]) -> HashMap<&str, &str> {
    frameworks
        .iter()
        .filter_map(|f| Some((f["id"].as_str()?, f["name"].as_str()?)))
        .collect()
}

fn v0_framework(framework: &Value, completed: bool) -> Value {
    let info = &framework["framework_info"];
    let roles = match info["roles"].as_array() {
        Some(roles) => Value::Array(roles.clone()),
        None => json!([info["role"].as_str().unwrap_or("*")]),
    };
    json!({
        "id": info["id"]["value"],
        "name": info["name"],
        "user": info["user"],
        "principal": info["principal"],
        "webui_url": info["webui_url"],
        "roles": roles,
        "active": framework["active"],
        "completed": completed,
        "used_resources": flat(&framework["allocated_resources"]),
        "offered_resources": flat(&framework["offered_resources"]),
    })
}

/// v1 resources (a list) as a v0 flat map: scalars summed, ranges as `[a-b, c-d]`.
pub fn flat(resources: &Value) -> Value {
    let mut scalars: HashMap<&str, f64> = HashMap::new();
    let mut ranges: HashMap<&str, Vec<String>> = HashMap::new();
    for resource in resources.as_array().into_iter().flatten() {
        let Some(name) = resource["name"].as_str() else {
            continue;
        };
        if let Some(value) = resource["scalar"]["value"].as_f64() {
            *scalars.entry(name).or_default() += value;
        }
        for range in resource["ranges"]["range"].as_array().into_iter().flatten() {
            ranges
                .entry(name)
                .or_default()
                .push(format!("{}-{}", range["begin"], range["end"]));
        }
    }
    let mut map = serde_json::Map::new();
    for (name, value) in scalars {
        map.insert(name.to_owned(), json!(value));
    }
    for (name, parts) in ranges {
        map.insert(name.to_owned(), json!(format!("[{}]", parts.join(", "))));
    }
    Value::Object(map)
}

/// The cluster's cpus, mem and disk (from the metrics, which count every agent).
pub fn totals(metrics: &Value) -> [f64; 3] {
    ["cpus", "mem", "disk"].map(|name| {
        metrics[format!("master/{name}_total")]
            .as_f64()
            .unwrap_or(0.0)
    })
}

/// Links to the pages before and after this one; `base` is the list's address with its query
/// (but no offset).
pub fn pager(base: &str, offset: usize, rows: &Rows) -> Markup {
    let separator = if base.contains('?') { '&' } else { '?' };
    let at = |offset: usize| format!("{base}{separator}offset={offset}");
    html! {
        @if offset > 0 || rows.more {
            p.pager {
                @if offset > 0 {
                    a rel="prev" href=(at(offset.saturating_sub(PAGE))) { "← Previous" }
                    " "
                }
                span.muted { (offset + 1) "–" (offset + rows.rows.len()) }
                @if rows.more {
                    " "
                    a rel="next" href=(at(offset + PAGE)) { "Next →" }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_resources_read_as_v0() {
        let wire = json!([
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0}, "role": "web"},
            {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31001}]}},
        ]);
        assert_eq!(flat(&wire), json!({"cpus": 1.5, "ports": "[31000-31001]"}));
    }

    #[test]
    fn a_page_says_whether_more_follow() {
        let full = Rows::of(vec![json!(1); PAGE + 1]);
        assert!(full.more);
        assert_eq!(full.rows.len(), PAGE);
        let last = Rows::of(vec![json!(1); 3]);
        assert!(!last.more);
        let markup = pager("/ui/tasks?all=1", PAGE, &last).into_string();
        assert!(markup.contains("/ui/tasks?all=1&amp;offset=0"), "{markup}");
        assert!(!markup.contains("Next"), "{markup}");
    }
}
