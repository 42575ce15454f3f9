//! Groups: Marathon's tree of apps. A group exists when it was created through the API (it may
//! be empty and may carry `dependencies`) or when an app lives below it; its apps and subgroups
//! are found by path, so the tree never disagrees with the apps.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use agora_api::marathon::app::AppDefinition;
use agora_plan::dependencies::Graph;

/// A group created through the API.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct GroupRecord {
    pub id: String,
    /// Absolute app or group ids every app in this group depends on.
    pub dependencies: Vec<String>,
    pub version: String,
}

/// Whether `id` is `group` or lies below it.
pub(crate) fn is_under(id: &str, group: &str) -> bool {
    group == "/"
        || id == group
        || id
            .strip_prefix(group)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The groups above an id, nearest first, ending with the root (`/a/b/c` → `/a/b`, `/a`, `/`).
pub(crate) fn ancestors(id: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = id;
    while current != "/" {
        current = agora_api::marathon::path::parent(current);
        out.push(current.to_owned());
    }
    out
}

/// Every group that exists: the root, the explicit ones and all groups above an app or group.
pub(crate) fn group_ids<'a>(
    apps: impl Iterator<Item = &'a str>,
    explicit: impl Iterator<Item = &'a str>,
) -> BTreeSet<String> {
    let mut ids = BTreeSet::from(["/".to_owned()]);
    for app in apps {
        ids.extend(ancestors(app));
    }
    for group in explicit {
        ids.insert(group.to_owned());
        ids.extend(ancestors(group));
    }
    ids
}

/// The dependency graph of `apps`: an app depends on its own `dependencies` and on those of
/// every group above it; a dependency naming a group means every app below that group.
pub(crate) fn dependency_graph(
    apps: &BTreeMap<String, AppDefinition>,
    groups: &BTreeMap<String, GroupRecord>,
) -> Graph {
    let resolve = |dependency: &str| -> Vec<String> {
        if apps.contains_key(dependency) {
            return vec![dependency.to_owned()];
        }
        apps.keys()
            .filter(|id| is_under(id, dependency) && dependency != "/")
            .cloned()
            .collect()
    };
    apps.iter()
        .map(|(id, definition)| {
            let inherited = ancestors(id)
                .into_iter()
                .filter_map(|group| groups.get(&group))
                .flat_map(|group| group.dependencies.clone());
            let dependencies: BTreeSet<String> = definition
                .dependencies
                .iter()
                .cloned()
                .chain(inherited)
                .flat_map(|d| resolve(&d))
                .filter(|d| d != id)
                .collect();
            (id.clone(), dependencies)
        })
        .collect()
}

/// The JSON of group `id` with its apps (rendered by the caller) and subgroups, recursively, in
/// Marathon's shape: `id`, `apps`, `groups`, `dependencies`, `version`, `pods`.
pub(crate) fn tree(
    id: &str,
    apps: &BTreeMap<String, Value>,
    versions: &BTreeMap<String, String>,
    groups: &BTreeMap<String, GroupRecord>,
    default_version: &str,
) -> Value {
    let all = group_ids(
        apps.keys().map(String::as_str),
        groups.keys().map(String::as_str),
    );
    render(id, apps, versions, groups, &all, default_version)
}

fn render(
    id: &str,
    apps: &BTreeMap<String, Value>,
    versions: &BTreeMap<String, String>,
    groups: &BTreeMap<String, GroupRecord>,
    all: &BTreeSet<String>,
    default_version: &str,
) -> Value {
    let parent_of = agora_api::marathon::path::parent;
    let own_apps: Vec<Value> = apps
        .iter()
        .filter(|(app_id, _)| parent_of(app_id) == id)
        .map(|(_, app)| app.clone())
        .collect();
    let subgroups: Vec<Value> = all
        .iter()
        .filter(|g| g.as_str() != "/" && parent_of(g) == id)
        .map(|g| render(g, apps, versions, groups, all, default_version))
        .collect();
    // A group's version is its latest change: its own, or that of an app below it.
    let version = versions
        .iter()
        .filter(|(app_id, _)| is_under(app_id, id))
        .map(|(_, v)| v.as_str())
        .chain(groups.get(id).map(|g| g.version.as_str()))
        .max()
        .unwrap_or(default_version);
    json!({
        "id": id,
        "apps": own_apps,
        "groups": subgroups,
        "dependencies": groups.get(id).map(|g| g.dependencies.clone()).unwrap_or_default(),
        "version": version,
        "pods": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str, deps: &[&str]) -> (String, AppDefinition) {
        let mut definition =
            AppDefinition::parse(&json!({"id": id, "cmd": "x", "dependencies": deps})).unwrap();
        definition.normalize("/").unwrap();
        (id.to_owned(), definition)
    }

    #[test]
    fn paths_and_ancestors() {
        assert!(is_under("/a/b", "/a"));
        assert!(is_under("/a", "/a"));
        assert!(!is_under("/ab", "/a"));
        assert!(is_under("/x", "/"));
        assert_eq!(ancestors("/a/b/c"), vec!["/a/b", "/a", "/"]);
        let ids = group_ids(["/a/b/web"].into_iter(), ["/empty/x"].into_iter());
        assert_eq!(
            ids.into_iter().collect::<Vec<_>>(),
            vec!["/", "/a", "/a/b", "/empty", "/empty/x"]
        );
    }

    #[test]
    fn group_dependencies_reach_every_app_inside() {
        let apps: BTreeMap<String, AppDefinition> = [
            app("/prod/db/main", &[]),
            app("/prod/db/replica", &[]),
            app("/prod/web/front", &["/prod/cache"]),
            app("/prod/cache", &[]),
        ]
        .into_iter()
        .collect();
        let groups = BTreeMap::from([(
            "/prod/web".to_owned(),
            GroupRecord {
                id: "/prod/web".into(),
                dependencies: vec!["/prod/db".into()],
                version: "v".into(),
            },
        )]);
        let graph = dependency_graph(&apps, &groups);
        let front: Vec<&str> = graph["/prod/web/front"]
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(
            front,
            vec!["/prod/cache", "/prod/db/main", "/prod/db/replica"]
        );
        assert!(graph["/prod/cache"].is_empty());
    }

    #[test]
    fn trees_nest_by_path() {
        let apps = BTreeMap::from([
            ("/a/b/web".to_owned(), json!({"id": "/a/b/web"})),
            ("/top".to_owned(), json!({"id": "/top"})),
        ]);
        let versions = BTreeMap::from([
            ("/a/b/web".to_owned(), "2".to_owned()),
            ("/top".to_owned(), "1".to_owned()),
        ]);
        let root = tree("/", &apps, &versions, &BTreeMap::new(), "0");
        assert_eq!(root["apps"][0]["id"], "/top");
        assert_eq!(root["groups"][0]["id"], "/a");
        assert_eq!(root["groups"][0]["groups"][0]["apps"][0]["id"], "/a/b/web");
        assert_eq!(root["version"], "2");
        assert_eq!(root["groups"][0]["version"], "2");
        let keys: Vec<&String> = root.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            vec!["apps", "dependencies", "groups", "id", "pods", "version"]
        );
    }
}
