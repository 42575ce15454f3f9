//! Authorization: who may do what, in Mesos' ACL JSON (`--acls`) and with its local
//! authorizer's rules. Each action has a list of rules, each naming principals (the subject)
//! and the objects they may act on (roles, users, paths...), as `{"values": [...]}`,
//! `{"type": "ANY"}` or `{"type": "NONE"}`. The rules are read in order: the first whose
//! subject and object both match the request decides (allowed, unless either entity is
//! NONE); when none matches, `permissive` (true by default) decides.
//!
//! Beside Mesos' actions, agora's own for its APIs: `view_apps` and `manage_apps` (Marathon app
//! and group ids, by path prefix: `/team-a` covers `/team-a` and everything under it),
//! `view_jobs` and `manage_jobs` (job names, by prefix at a `.`, `-` or `/`: `team-a` covers
//! `team-a`, `team-a.nightly` and `team-a-report`).
//!
//! Pure: the decision is a function of the rules and the request.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// The principal the process's own components use (the UI's background work, discovery):
/// every action is theirs. No `--credentials` entry may take the name.
pub const SYSTEM_PRINCIPAL: &str = "agora";

/// What a request would do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// A framework subscribing with a role (object: the role).
    RegisterFrameworks,
    /// A framework launching a task as a user (object: the user).
    RunTasks,
    /// Tearing a framework down (object: the framework's principal).
    TeardownFrameworks,
    /// Seeing a framework in the state (object: the framework's user).
    ViewFrameworks,
    /// Seeing a task (object: the task's user).
    ViewTasks,
    /// Seeing an executor (object: the executor's user).
    ViewExecutors,
    /// Reading a sandbox's files (object: the executor's user).
    AccessSandboxes,
    /// GET of a protected endpoint such as `/metrics/snapshot` (object: the path).
    GetEndpoints,
    /// Changing a role's weight (object: the role).
    UpdateWeights,
    /// Changing a role's quota (object: the role).
    UpdateQuotas,
    /// Marking an agent gone (object: the agent id).
    MarkAgentsGone,
    /// Draining, deactivating or reactivating an agent (object: the agent id).
    DrainAgents,
    /// Running a command inside a task (`exec`; object: the task's user).
    LaunchNestedContainerSessions,
    /// Following a task's output (`attach`; object: the task's user).
    AttachContainerOutput,
    /// Seeing a Marathon app or group (object: its id).
    ViewApps,
    /// Creating, changing, restarting or removing an app or group, killing its tasks (object:
    /// its id).
    ManageApps,
    /// Seeing a job (object: its name).
    ViewJobs,
    /// Creating, changing, running, killing or removing a job (object: its name).
    ManageJobs,
    /// A framework's task reading a secret from `--secrets-dir` (object: the secret's name).
    UseSecrets,
}

const ACTIONS: [(Action, &str, &str); 19] = [
    (Action::RegisterFrameworks, "register_frameworks", "roles"),
    (Action::RunTasks, "run_tasks", "users"),
    (
        Action::TeardownFrameworks,
        "teardown_frameworks",
        "framework_principals",
    ),
    (Action::ViewFrameworks, "view_frameworks", "users"),
    (Action::ViewTasks, "view_tasks", "users"),
    (Action::ViewExecutors, "view_executors", "users"),
    (Action::AccessSandboxes, "access_sandboxes", "users"),
    (Action::GetEndpoints, "get_endpoints", "paths"),
    (Action::UpdateWeights, "update_weights", "roles"),
    (Action::UpdateQuotas, "update_quotas", "roles"),
    (Action::MarkAgentsGone, "mark_agents_gone", "agents"),
    (Action::DrainAgents, "drain_agents", "agents"),
    (
        Action::LaunchNestedContainerSessions,
        "launch_nested_container_sessions",
        "users",
    ),
    (
        Action::AttachContainerOutput,
        "attach_container_output",
        "users",
    ),
    (Action::ViewApps, "view_apps", "paths"),
    (Action::ManageApps, "manage_apps", "paths"),
    (Action::ViewJobs, "view_jobs", "jobs"),
    (Action::ManageJobs, "manage_jobs", "jobs"),
    (Action::UseSecrets, "use_secrets", "secrets"),
];

impl Action {
    /// The action's key in the ACL JSON.
    pub fn key(self) -> &'static str {
        ACTIONS
            .iter()
            .find(|(action, _, _)| *action == self)
            .map_or("", |(_, key, _)| key)
    }

    /// Whether a rule's value covers a request's value: equal, or (for app paths and job
    /// names) an ancestor of it.
    fn covers(self, rule: &str, request: &str) -> bool {
        if rule == request {
            return true;
        }
        match self {
            // Secrets are named without a leading '/', as DC/OS' may be spelled with one.
            Action::UseSecrets => {
                let rule = rule.trim_matches('/');
                let request = request.trim_start_matches('/');
                rule.is_empty()
                    || rule == request
                    || request
                        .strip_prefix(rule)
                        .is_some_and(|rest| rest.starts_with('/'))
            }
            Action::ViewApps | Action::ManageApps => {
                let rule = rule.trim_end_matches('/');
                rule.is_empty()
                    || request
                        .strip_prefix(rule)
                        .is_some_and(|rest| rest.starts_with('/'))
            }
            Action::ViewJobs | Action::ManageJobs => request
                .strip_prefix(rule)
                .is_some_and(|rest| rest.starts_with(['.', '-', '/'])),
            _ => false,
        }
    }
}

/// A rule's subject or object.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entity {
    Any,
    None,
    Some(Vec<String>),
}

#[derive(Clone, Debug)]
struct Rule {
    principals: Entity,
    objects: Entity,
}

/// Why an ACL file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the ACLs are not JSON: {0}")]
    Json(String),
    #[error("unknown ACL action '{0}' (known: {1})")]
    UnknownAction(String, String),
    #[error("{action}[{index}]: {problem}")]
    Rule {
        action: String,
        index: usize,
        problem: String,
    },
}

/// The rules, by action, and what decides when none matches.
#[derive(Clone, Debug)]
pub struct Acls {
    permissive: bool,
    rules: BTreeMap<Action, Vec<Rule>>,
}

impl Default for Acls {
    /// No rules and permissive: everything is allowed (as Mesos without `--acls`).
    fn default() -> Acls {
        Acls {
            permissive: true,
            rules: BTreeMap::new(),
        }
    }
}

#[derive(Deserialize)]
struct EntityJson {
    #[serde(rename = "type")]
    kind: Option<String>,
    values: Option<Vec<String>>,
}

fn entity(value: Option<&Value>, field: &str) -> Result<Entity, String> {
    let Some(value) = value else {
        return Err(format!("'{field}' is missing"));
    };
    let parsed: EntityJson =
        serde_json::from_value(value.clone()).map_err(|e| format!("'{field}': {e}"))?;
    match (parsed.kind.as_deref(), parsed.values) {
        (Some("ANY"), None) => Ok(Entity::Any),
        (Some("NONE"), None) => Ok(Entity::None),
        (None | Some("SOME"), Some(values)) => Ok(Entity::Some(values)),
        _ => Err(format!(
            "'{field}' must be {{\"values\": [...]}}, {{\"type\": \"ANY\"}} or {{\"type\": \"NONE\"}}"
        )),
    }
}

impl Acls {
    pub fn load(path: &Path) -> Result<Acls, AclError> {
        let text = std::fs::read_to_string(path).map_err(|source| AclError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Acls::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Acls, AclError> {
        let value: Value = serde_json::from_str(text).map_err(|e| AclError::Json(e.to_string()))?;
        let object = value
            .as_object()
            .ok_or_else(|| AclError::Json("expected an object".into()))?;
        let mut acls = Acls::default();
        for (key, value) in object {
            if key == "permissive" {
                acls.permissive = value
                    .as_bool()
                    .ok_or_else(|| AclError::Json("'permissive' must be true or false".into()))?;
                continue;
            }
            let Some((action, _, field)) = ACTIONS.iter().find(|(_, name, _)| name == key) else {
                let known: Vec<&str> = ACTIONS.iter().map(|(_, name, _)| *name).collect();
                return Err(AclError::UnknownAction(key.clone(), known.join(", ")));
            };
            let entries = value.as_array().ok_or_else(|| AclError::Rule {
                action: key.clone(),
                index: 0,
                problem: "must be a list of rules".into(),
            })?;
            let mut rules = Vec::new();
            for (index, entry) in entries.iter().enumerate() {
                let problem = |problem: String| AclError::Rule {
                    action: key.clone(),
                    index,
                    problem,
                };
                let principals = entity(entry.get("principals"), "principals").map_err(problem)?;
                let objects = entity(entry.get(*field), field).map_err(problem)?;
                rules.push(Rule {
                    principals,
                    objects,
                });
            }
            acls.rules.insert(*action, rules);
        }
        Ok(acls)
    }

    /// Whether `principal` (none: an unauthenticated caller, which only `ANY` rules name) may
    /// do `action` on `object` (none: no particular one, which only `ANY` rules cover).
    pub fn permits(&self, action: Action, principal: Option<&str>, object: Option<&str>) -> bool {
        if principal == Some(SYSTEM_PRINCIPAL) {
            return true;
        }
        let Some(rules) = self.rules.get(&action) else {
            return self.permissive;
        };
        let covers = |rule: &str, request: &str| rule == request;
        for rule in rules {
            let subject = matches(principal, &rule.principals, covers);
            let target = matches(object, &rule.objects, |r, q| action.covers(r, q));
            if subject && target {
                return allows(principal, &rule.principals, covers)
                    && allows(object, &rule.objects, |r, q| action.covers(r, q));
            }
        }
        self.permissive
    }

    /// Whether any rule is given for `action` (views unfiltered otherwise).
    pub fn restricts(&self, action: Action) -> bool {
        self.rules.contains_key(&action) || !self.permissive
    }
}

/// Mesos' `matches`: a named request matches a rule naming it (or ANY/NONE); an unnamed one
/// only ANY or NONE.
fn matches(request: Option<&str>, rule: &Entity, covers: impl Fn(&str, &str) -> bool) -> bool {
    match (request, rule) {
        (None, Entity::Any | Entity::None) => true,
        (None, Entity::Some(_)) => false,
        (Some(value), Entity::Some(values)) => values.iter().any(|v| covers(v, value)),
        (Some(_), _) => true,
    }
}

/// Mesos' `allows`: NONE never, ANY always, a list when it holds the request.
fn allows(request: Option<&str>, rule: &Entity, covers: impl Fn(&str, &str) -> bool) -> bool {
    match (request, rule) {
        (_, Entity::None) => false,
        (_, Entity::Any) => true,
        (Some(value), Entity::Some(values)) => values.iter().any(|v| covers(v, value)),
        (None, Entity::Some(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn acls(text: &str) -> Acls {
        Acls::parse(text).unwrap()
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let acls = acls(
            r#"{"permissive": false,
                "register_frameworks": [
                  {"principals": {"values": ["marathon"]}, "roles": {"values": ["web"]}},
                  {"principals": {"values": ["analytics"]}, "roles": {"type": "NONE"}},
                  {"principals": {"type": "ANY"}, "roles": {"values": ["*"]}}]}"#,
        );
        let may = |principal, role| acls.permits(Action::RegisterFrameworks, principal, Some(role));
        assert!(may(Some("marathon"), "web"));
        assert!(!may(Some("analytics"), "web"), "NONE: no role at all");
        assert!(!may(Some("analytics"), "*"), "its NONE rule matches first");
        assert!(may(Some("someone"), "*"));
        assert!(may(None, "*"), "ANY covers the unauthenticated");
        assert!(
            !may(Some("someone"), "web"),
            "no rule matches: not permissive"
        );
        assert!(
            !may(Some("marathon"), "other"),
            "its rule does not match the role; the ANY rule does not cover it"
        );
    }

    #[test]
    fn without_rules_permissive_decides() {
        assert!(Acls::default().permits(Action::RunTasks, Some("x"), Some("root")));
        let strict = acls(r#"{"permissive": false}"#);
        assert!(!strict.permits(Action::RunTasks, Some("x"), Some("root")));
        assert!(
            strict.permits(Action::RunTasks, Some(SYSTEM_PRINCIPAL), Some("root")),
            "the process's own components"
        );
    }

    #[test]
    fn app_paths_and_job_names_cover_what_lies_under_them() {
        let acls = acls(
            r#"{"permissive": false,
                "manage_apps": [{"principals": {"values": ["team-a"]},
                                 "paths": {"values": ["/team-a"]}}],
                "view_jobs": [{"principals": {"values": ["team-a"]},
                               "jobs": {"values": ["team-a"]}}]}"#,
        );
        let app = |path| acls.permits(Action::ManageApps, Some("team-a"), Some(path));
        assert!(app("/team-a") && app("/team-a/web") && app("/team-a/db/primary"));
        assert!(!app("/team-ab") && !app("/team-b/web") && !app("/"));
        let job = |name| acls.permits(Action::ViewJobs, Some("team-a"), Some(name));
        assert!(job("team-a") && job("team-a.nightly") && job("team-a-report"));
        assert!(!job("team-ab") && !job("other"));
    }

    #[test]
    fn secrets_cover_what_lies_under_them() {
        let acls = acls(
            r#"{"permissive": false,
                "use_secrets": [{"principals": {"values": ["team-a"]},
                                 "secrets": {"values": ["/team-a", "shared-token"]}}]}"#,
        );
        let secret = |name| acls.permits(Action::UseSecrets, Some("team-a"), Some(name));
        assert!(secret("team-a/db") && secret("/team-a/x/y") && secret("shared-token"));
        assert!(!secret("team-ab/db") && !secret("team-b/db") && !secret("other"));
    }

    #[test]
    fn mistakes_in_the_file_are_named() {
        let typo = Acls::parse(r#"{"run_task": []}"#).unwrap_err().to_string();
        assert!(
            typo.contains("run_task") && typo.contains("run_tasks"),
            "{typo}"
        );
        let field = Acls::parse(r#"{"run_tasks": [{"principals": {"type": "ANY"}}]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            field.contains("run_tasks[0]") && field.contains("users"),
            "{field}"
        );
        assert!(Acls::parse("[]").is_err());
    }

    proptest! {
        /// With one rule for a principal, the decision for it is that rule's, and for anyone
        /// else `permissive`'s.
        #[test]
        fn one_rule_decides_for_its_principal_only(
            permissive in any::<bool>(),
            allowed in proptest::collection::vec("[a-c]", 0..3),
            object in "[a-c]",
            other in "[d-f]",
        ) {
            let rule = serde_json::json!({
                "permissive": permissive,
                "run_tasks": [{"principals": {"values": ["p"]}, "users": {"values": allowed}}],
            });
            let acls = Acls::parse(&rule.to_string()).unwrap();
            let listed = allowed.contains(&object);
            prop_assert_eq!(
                acls.permits(Action::RunTasks, Some("p"), Some(&object)),
                listed || permissive
            );
            prop_assert_eq!(acls.permits(Action::RunTasks, Some(&other), Some(&object)), permissive);
        }

        #[test]
        fn no_text_makes_the_parser_panic(text in "\\PC{0,120}") {
            let _ = Acls::parse(&text);
        }
    }
}
