//! Framework lifecycle: subscribe and re-subscribe, disconnect and failover timeout, teardown.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use agora_api::agent_protocol::AgentCommand;
use agora_api::mesos::{FrameworkInfo, Id};
use agora_api::scheduler::{Event, Subscribed};
use agora_types::{AgentId, FrameworkId};

use agora_http::auth::acl::Action;

use super::{Framework, FrameworkStream, Master, StreamSender, epoch_secs};
use crate::views;

/// Why a subscription was refused on the stream (Mesos answers 200 + ERROR for these).
pub(crate) struct SubscribeRefused(pub String);

impl Master {
    pub(crate) fn add_recovered_framework(
        &mut self,
        id: FrameworkId,
        mut info: FrameworkInfo,
        now: f64,
    ) {
        if self.frameworks.contains_key(&id) {
            return;
        }
        info.id = Some(Id::new(id.as_str()));
        let roles = info.effective_roles();
        self.allocator
            .add_framework(id.clone(), roles.clone(), false);
        self.frameworks.insert(
            id.clone(),
            Framework {
                id,
                info,
                roles,
                registered_time: now,
                reregistered_time: None,
                unregistered_time: Some(now),
                stream: None,
                disconnected_since: Some(Instant::now()),
                recovered: true,
                tasks: super::task_map::TaskMap::default(),
                completed_tasks: VecDeque::new(),
                offers: HashSet::new(),
                executors: HashMap::new(),
                task_roles: Vec::new(),
            },
        );
    }

    /// Handles SUBSCRIBE: registers a new framework or fails an existing one over to this
    /// connection. Returns the framework id and the new stream id.
    pub(crate) fn subscribe(
        &mut self,
        mut info: FrameworkInfo,
        suppressed_roles: Vec<String>,
        sender: StreamSender,
    ) -> Result<(FrameworkId, String), SubscribeRefused> {
        if info.user.is_empty() && info.name.is_empty() {
            return Err(SubscribeRefused(
                "FrameworkInfo must set 'user' and 'name'".into(),
            ));
        }
        if info.has_capability("MULTI_ROLE") && info.role.is_some() && !info.roles.is_empty() {
            return Err(SubscribeRefused(
                "'FrameworkInfo.role' must not be set together with 'roles'".into(),
            ));
        }
        let roles = info.effective_roles();
        for role in &roles {
            if let Err(invalid) = validate_role(role) {
                return Err(SubscribeRefused(invalid.to_string()));
            }
            // The framework's principal (authenticated, or as it names itself where
            // frameworks are not authenticated), as Mesos authorizes it.
            if !self.config.acls.permits(
                Action::RegisterFrameworks,
                info.principal.as_deref(),
                Some(role),
            ) {
                return Err(SubscribeRefused(format!(
                    "Not authorized to use role '{role}' ('register_frameworks' in the ACLs)"
                )));
            }
        }
        let stream_id = uuid::Uuid::new_v4().to_string();
        let now = epoch_secs();
        let framework_id = match info.framework_id() {
            Some(id) => {
                // A framework id names directories and files on every agent.
                if let Err(error) = agora_api::mesos::validate_id("Framework", id.as_str()) {
                    return Err(SubscribeRefused(error.to_string()));
                }
                if self.completed_frameworks.iter().any(|f| f.id == id) {
                    return Err(SubscribeRefused("Framework has been removed".into()));
                }
                // Failing over is the same principal's (Mesos' rule): another one would take
                // the framework's tasks, offers and stream.
                if let Some(framework) = self.frameworks.get(&id)
                    && framework.info.principal.is_some()
                    && framework.info.principal != info.principal
                {
                    return Err(SubscribeRefused(
                        "Changing framework's principal is not allowed".into(),
                    ));
                }
                id
            }
            None => self.next_framework_id(),
        };
        info.id = Some(Id::new(framework_id.as_str()));
        let stream = FrameworkStream {
            id: stream_id.clone(),
            sender,
        };

        let existing = self.frameworks.contains_key(&framework_id);
        if existing {
            self.rescind_framework_offers(&framework_id);
            let framework = self.frameworks.get_mut(&framework_id);
            if let Some(framework) = framework {
                if let Some(old) = framework.stream.take() {
                    let error = Event::error("Framework failed over");
                    let _ = old
                        .sender
                        .send(agora_api::recordio::encode(&error.to_json()));
                }
                framework.info = info.clone();
                framework.roles = roles.clone();
                framework.stream = Some(stream);
                framework.disconnected_since = None;
                framework.unregistered_time = None;
                framework.reregistered_time = Some(now);
                framework.recovered = false;
            }
            // Updates roles and reactivates; the framework's allocations stay.
            self.allocator
                .add_framework(framework_id.clone(), roles.clone(), true);
            // Agents run the new scheduler's tasks under the updated info.
            let agents: HashSet<AgentId> = self
                .frameworks
                .get(&framework_id)
                .map(|f| f.tasks.values().map(|t| t.agent_id.clone()).collect())
                .unwrap_or_default();
            for agent in agents {
                self.send_agent(
                    &agent,
                    &AgentCommand::UpdateFramework {
                        framework: info.clone(),
                    },
                );
            }
        } else {
            self.allocator
                .add_framework(framework_id.clone(), roles.clone(), true);
            self.frameworks.insert(
                framework_id.clone(),
                Framework {
                    id: framework_id.clone(),
                    info: info.clone(),
                    roles: roles.clone(),
                    registered_time: now,
                    reregistered_time: None,
                    unregistered_time: None,
                    stream: Some(stream),
                    disconnected_since: None,
                    recovered: false,
                    tasks: super::task_map::TaskMap::default(),
                    completed_tasks: VecDeque::new(),
                    offers: HashSet::new(),
                    executors: HashMap::new(),
                    task_roles: Vec::new(),
                },
            );
        }
        if !suppressed_roles.is_empty() {
            self.allocator
                .suppress(&framework_id, Some(&suppressed_roles));
        }
        self.registry.put_framework(&info);
        let subscribed = Event::Subscribed {
            subscribed: Subscribed {
                framework_id: Id::new(framework_id.as_str()),
                heartbeat_interval_seconds: self.config.heartbeat_interval.as_secs_f64(),
                master_info: Some(self.info.clone()),
            },
        };
        self.send_event(&framework_id, &subscribed);
        let framework_json = self.frameworks.get(&framework_id).map(|f| {
            views::v1_framework(
                &views::FrameworkCopy::head(f),
                &views::framework_usage(self, f),
            )
        });
        if let Some(framework_json) = framework_json {
            let kind = if existing {
                "FRAMEWORK_UPDATED"
            } else {
                "FRAMEWORK_ADDED"
            };
            let key = kind.to_lowercase();
            self.publish(serde_json::json!({"type": kind, key: {"framework": framework_json}}));
        }
        tracing::info!(framework = %framework_id, name = %info.name, resubscribed = existing, "framework subscribed");
        self.want_allocation();
        Ok((framework_id, stream_id))
    }

    /// The stream of `stream_id` closed: start the failover timeout.
    pub(crate) fn framework_disconnected(&mut self, framework_id: &FrameworkId, stream_id: &str) {
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        if framework.stream.as_ref().map(|s| s.id.as_str()) != Some(stream_id) {
            return;
        }
        framework.stream = None;
        framework.disconnected_since = Some(Instant::now());
        framework.unregistered_time = Some(epoch_secs());
        tracing::info!(framework = %framework_id, failover_timeout = framework.info.failover_timeout, "framework disconnected");
        self.allocator.set_framework_active(framework_id, false);
        self.rescind_framework_offers(framework_id);
        self.check_failover_timeouts();
    }

    /// Removes frameworks whose failover timeout has passed while disconnected.
    pub(crate) fn check_failover_timeouts(&mut self) {
        let expired: Vec<FrameworkId> = self
            .frameworks
            .values()
            .filter(|framework| match framework.disconnected_since {
                Some(since) => {
                    let timeout = framework.info.failover_timeout.max(0.0);
                    since.elapsed().as_secs_f64() >= timeout
                }
                None => false,
            })
            .map(|framework| framework.id.clone())
            .collect();
        for id in expired {
            tracing::info!(framework = %id, "framework failover timeout expired; removing it");
            self.remove_framework(&id);
        }
    }

    /// TEARDOWN or failover expiry: kill everything of the framework and forget it.
    pub(crate) fn remove_framework(&mut self, framework_id: &FrameworkId) {
        self.rescind_framework_offers(framework_id);
        let Some(mut framework) = self.frameworks.remove(framework_id) else {
            return;
        };
        let agents: HashSet<AgentId> = framework
            .tasks
            .values()
            .map(|task| task.agent_id.clone())
            .chain(framework.executors.keys().map(|(agent, _)| agent.clone()))
            .collect();
        for agent in &agents {
            self.send_agent(
                agent,
                &AgentCommand::ShutdownFramework {
                    framework_id: framework_id.to_string(),
                },
            );
        }
        for (task_id, mut task) in framework.tasks.drain() {
            if let Some(agent) = self.agents.get_mut(&task.agent_id) {
                agent.tasks.remove(&(framework_id.clone(), task_id.clone()));
            }
            if !task.state.is_terminal() {
                Arc::make_mut(&mut task).state = agora_types::TaskState::Killed;
                self.metrics.count_task_state(task.state);
            }
            framework.completed_tasks.push_back(task);
        }
        while framework.completed_tasks.len() > self.config.max_completed_tasks_per_framework {
            framework.completed_tasks.pop_front();
        }
        self.allocator.remove_framework(framework_id);
        framework.stream = None;
        framework.disconnected_since = None;
        framework.unregistered_time = Some(epoch_secs());
        self.registry.remove_framework(framework_id.as_str());
        self.publish(serde_json::json!({
            "type": "FRAMEWORK_REMOVED",
            "framework_removed": {"framework_info": framework.info},
        }));
        self.completed_frameworks.push_back(framework);
        while self.completed_frameworks.len() > self.config.max_completed_frameworks {
            self.completed_frameworks.pop_front();
        }
        self.want_allocation();
    }

    pub(crate) fn revive(&mut self, framework_id: &FrameworkId, roles: &[String]) {
        let roles = (!roles.is_empty()).then_some(roles);
        self.allocator.revive(framework_id, roles);
        self.want_allocation();
    }

    pub(crate) fn suppress(&mut self, framework_id: &FrameworkId, roles: &[String]) {
        let roles = (!roles.is_empty()).then_some(roles);
        self.allocator.suppress(framework_id, roles);
    }
}

/// Why a role name is not one Mesos accepts.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InvalidRole {
    #[error("Role '{0}' is invalid")]
    Name(String),
    #[error("Role '{0}' is invalid: empty or dot path component")]
    PathComponent(String),
    #[error("Role '{0}' contains an invalid character")]
    Character(String),
}

/// Mesos' role name rules.
pub(crate) fn validate_role(role: &str) -> Result<(), InvalidRole> {
    if role == "*" {
        return Ok(());
    }
    if role.is_empty() || role == "." || role == ".." || role.starts_with('-') {
        return Err(InvalidRole::Name(role.to_owned()));
    }
    if role
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(InvalidRole::PathComponent(role.to_owned()));
    }
    if role
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\' || c == '*')
    {
        return Err(InvalidRole::Character(role.to_owned()));
    }
    Ok(())
}
