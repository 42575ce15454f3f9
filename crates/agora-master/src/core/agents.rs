//! Agent lifecycle: registration and re-registration (with task reconciliation), the ping-based
//! failure detector, unreachable and gone agents, maintenance (deactivate, drain).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use agora_api::agent_protocol::{AgentCommand, RegisterAgent, ReportedTask};
use agora_api::mesos::{Id, TaskStatus};
use agora_api::scheduler::{Event, Failure};
use agora_types::{AgentId, FrameworkId, TaskId, TaskState};

use super::{
    Agent, AgentConnection, AgentLink, DrainState, Master, StreamSender, Task, epoch_secs,
};
use crate::views;

/// Why an agent's subscription was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AgentRefused {
    #[error("agent id {0} belongs to another agent: its secret was not given")]
    NotItsId(String),
    #[error("agent {0} has been marked gone")]
    Gone(String),
    #[error("invalid agent resources: {0}")]
    InvalidResources(#[source] agora_api::ApiError),
}

/// An operator call named an agent this master does not have.
#[derive(Debug, thiserror::Error)]
#[error("Agent {0} is not registered")]
pub(crate) struct UnknownAgent(pub AgentId);

/// What reconciling an agent's report with the master's tasks decided.
#[derive(Default)]
struct Reconciled {
    /// The tasks the agent reported and the master keeps.
    reported: HashSet<(FrameworkId, TaskId)>,
    /// Tasks the agent must kill: the master reported them lost, or never launched them.
    kills: Vec<(String, String)>,
    /// Updates for frameworks whose tasks came back from unreachable.
    updates: Vec<(FrameworkId, TaskStatus)>,
}

impl Master {
    /// An agent subscribed (registration or re-registration). On success the stream has already
    /// received `REGISTERED` followed by any kill/shutdown commands reconciliation decided.
    pub(crate) fn register_agent(
        &mut self,
        mut request: RegisterAgent<ReportedTask>,
        token: Option<&str>,
        sender: StreamSender,
    ) -> Result<(AgentId, u64), AgentRefused> {
        let send = |command: &AgentCommand| {
            let _ = sender.send(agora_api::recordio::encode(&command.to_json()));
        };
        let (token_sha256, issued) = self.agent_secret(&request, token)?;
        if let Some(id) = &request.agent_id
            && self.gone_agents.contains(&AgentId::new(id))
        {
            send(&AgentCommand::Shutdown {
                message: format!("Agent {id} has been marked gone"),
            });
            return Err(AgentRefused::Gone(id.clone()));
        }
        let total = agora_api::mesos::to_resources(&request.info.resources)
            .map_err(AgentRefused::InvalidResources)?;
        let id = match &request.agent_id {
            Some(id) => AgentId::new(id),
            None => self.next_agent_id(),
        };
        let now = epoch_secs();
        let generation = self.next_link_generation();
        // Offers of the previous registration are void: rescind them while the agent (and so
        // its offer index) is still known.
        self.rescind_agent_offers(&id);
        let mut previous = self.agents.remove(&id);
        // Tasks it reports that the master does not know were reported lost (or never
        // launched) by this master: they must not keep running.
        let kill_unknown = previous
            .as_ref()
            .is_some_and(|agent| agent.registered || !agent.is_reachable());
        if previous.is_some() {
            self.allocator.remove_agent(&id);
        }
        let mut shutdown_frameworks = self.recover_frameworks_of(&request, now);

        let mut info = std::mem::take(&mut request.info);
        info.id = Some(Id::new(id.as_str()));
        let agent = Agent {
            id: id.clone(),
            info: Arc::new(info),
            endpoint: request.endpoint.clone(),
            version: request.version.clone(),
            total: Arc::new(total.clone()),
            registered_time: previous.as_ref().map_or(now, |p| p.registered_time),
            reregistered_time: previous.as_ref().map(|_| now),
            connection: AgentConnection::Connected(AgentLink {
                generation,
                sender: sender.clone(),
            }),
            deactivated: previous.as_ref().is_some_and(|p| p.deactivated),
            drain: previous.as_ref().and_then(|p| p.drain),
            mark_gone_when_drained: previous.as_ref().is_some_and(|p| p.mark_gone_when_drained),
            last_seen: Instant::now(),
            registered: true,
            tasks: HashSet::new(),
            offers: HashSet::new(),
            token_sha256: Some(token_sha256.clone()),
            pending_kills: Vec::new(),
        };
        let known_tasks: HashSet<(FrameworkId, TaskId)> = previous
            .as_mut()
            .map(|p| std::mem::take(&mut p.tasks))
            .unwrap_or_default();
        let pending_kills = previous
            .as_mut()
            .map(|p| std::mem::take(&mut p.pending_kills))
            .unwrap_or_default();
        let deactivated = agent.deactivated;
        let record = agent.record(false);
        self.agents.insert(id.clone(), agent);
        send(&AgentCommand::Registered {
            agent_id: id.to_string(),
            master_id: self.id.clone(),
            ping_interval_ms: self.config.agent_ping_timeout.as_millis() as u64,
            token: issued,
        });

        let reported_tasks = std::mem::take(&mut request.tasks);
        let task_count = reported_tasks.len();
        let reconciled = self.reconcile_reported_tasks(
            &id,
            reported_tasks,
            &mut shutdown_frameworks,
            kill_unknown,
        );
        self.record_executors_of(&id, &request);
        self.lose_unreported_tasks(&known_tasks, &reconciled.reported);
        for (framework_id, status) in reconciled.updates {
            self.send_event(&framework_id, &Event::update(status));
        }
        self.allocate_agent(&id, total, &reconciled.reported, deactivated);
        if let Some(stored) = self.agents.get_mut(&id) {
            stored.tasks = reconciled.reported;
        }
        for framework_id in shutdown_frameworks {
            send(&AgentCommand::ShutdownFramework { framework_id });
        }
        for (framework_id, task_id) in reconciled.kills {
            send(&AgentCommand::KillTask {
                framework_id,
                task_id,
                kill_policy: None,
            });
        }
        for (framework_id, task_id, kill_policy) in pending_kills {
            let live = self
                .frameworks
                .get(&framework_id)
                .and_then(|f| f.tasks.get(&task_id))
                .is_some_and(|task| task.agent_id == id && !task.state.is_terminal());
            if live {
                tracing::info!(task = %task_id, agent = %id, "sending the kill asked for while the agent was away");
                send(&AgentCommand::KillTask {
                    framework_id: framework_id.to_string(),
                    task_id: task_id.to_string(),
                    kill_policy,
                });
            }
        }
        // A re-registration that changes nothing the registry holds writes nothing: after a
        // master restart, every agent comes back at once, and their records stand as they were.
        if previous.as_ref().is_none_or(|p| p.record(false) != record) {
            self.registry.put_agent(&record);
        }
        if previous.is_some() {
            self.metrics.agent_reregistrations += 1;
        } else {
            self.metrics.agent_registrations += 1;
        }
        // AGENT_ADDED is built only for someone to send it to.
        let agent_json = (!self.operator_streams.is_empty())
            .then(|| {
                self.agents.get(&id).map(|a| {
                    views::v1_agent(&views::AgentCopy::of(a), &views::agent_usage(self, a))
                })
            })
            .flatten();
        if let Some(agent_json) = agent_json {
            self.publish(
                serde_json::json!({"type": "AGENT_ADDED", "agent_added": {"agent": agent_json}}),
            );
        }
        tracing::info!(agent = %id, endpoint = %request.endpoint, tasks = task_count, reregistered = previous.is_some(), "agent registered");
        self.want_allocation();
        Ok((id, generation))
    }

    /// The agent's secret (as its SHA-256) and, for a new agent, the secret issued to it. An
    /// agent id is taken only by the agent holding its secret; nothing of the agent that has
    /// it changes otherwise.
    fn agent_secret(
        &mut self,
        request: &RegisterAgent<ReportedTask>,
        token: Option<&str>,
    ) -> Result<(String, Option<String>), AgentRefused> {
        let known_token = request
            .agent_id
            .as_ref()
            .and_then(|id| self.agents.get(&AgentId::new(id)))
            .and_then(|agent| agent.token_sha256.clone());
        match (known_token, token) {
            (Some(expected), Some(token)) if expected == super::token_sha256(token) => {
                Ok((expected, None))
            }
            (Some(_), _) => {
                self.metrics.invalid_agent_registrations += 1;
                Err(AgentRefused::NotItsId(
                    request.agent_id.clone().unwrap_or_default(),
                ))
            }
            // An agent this master has no secret for (a registry from before secrets, or
            // none at all): what it holds, else a new one, becomes its secret.
            (None, Some(token)) if request.agent_id.is_some() => {
                Ok((super::token_sha256(token), None))
            }
            (None, _) => {
                let issued = agora_http::auth::new_secret();
                Ok((super::token_sha256(&issued), Some(issued)))
            }
        }
    }

    /// Frameworks the agent runs tasks for that this master does not know yet (it restarted)
    /// are recovered; the ids of those that completed here, for the agent to shut down.
    fn recover_frameworks_of(
        &mut self,
        request: &RegisterAgent<ReportedTask>,
        now: f64,
    ) -> HashSet<String> {
        let mut shutdown_frameworks = HashSet::new();
        for info in &request.frameworks {
            let Some(framework_id) = info.framework_id() else {
                continue;
            };
            if self
                .completed_frameworks
                .iter()
                .any(|f| f.id == framework_id)
            {
                shutdown_frameworks.insert(framework_id.to_string());
            } else {
                self.add_recovered_framework(framework_id, info.clone(), now);
            }
        }
        shutdown_frameworks
    }

    /// The agent's reported tasks against the master's: known ones take the agent's state,
    /// unknown ones are adopted (or killed, with `kill_unknown`); tasks of frameworks the
    /// master does not have join `shutdown_frameworks`.
    fn reconcile_reported_tasks(
        &mut self,
        id: &AgentId,
        reported_tasks: Vec<ReportedTask>,
        shutdown_frameworks: &mut HashSet<String>,
        kill_unknown: bool,
    ) -> Reconciled {
        let mut reconciled = Reconciled::default();
        for reported_task in reported_tasks {
            if shutdown_frameworks.contains(&reported_task.framework_id) {
                continue;
            }
            let framework_id = FrameworkId::new(reported_task.framework_id);
            let head = &reported_task.task.head;
            let task_id = TaskId::new(&head.task_id.value);
            // The status the agent reports is the task's, whatever id it names.
            let mut reported_status = reported_task.status;
            reported_status.task_id = head.task_id.clone();
            let Some(framework) = self.frameworks.get_mut(&framework_id) else {
                shutdown_frameworks.insert(framework_id.to_string());
                continue;
            };
            let state = reported_status.state;
            if framework.tasks.contains_key(&task_id) {
                let updates = &mut reconciled.updates;
                framework.tasks.update(&task_id, |task| {
                    let back_from_unreachable = task.state == TaskState::Unreachable;
                    task.state = state;
                    task.agent_id = id.clone();
                    task.unreachable_since = None;
                    if back_from_unreachable {
                        let mut status = reported_status.clone();
                        status.uuid = None;
                        status.source = Some("SOURCE_MASTER".into());
                        status.reason = Some("REASON_AGENT_REREGISTERED".into());
                        status.message = Some("Agent re-registered".into());
                        updates.push((framework_id.clone(), status));
                    }
                    if task.statuses.latest_state() != state {
                        task.statuses.push(reported_status, id);
                    }
                });
            } else if kill_unknown {
                // The master already reported this task lost (or never launched it): the
                // framework has moved on, so the task must not keep running.
                reconciled
                    .kills
                    .push((framework_id.to_string(), task_id.to_string()));
                continue;
            } else {
                let resources = agora_api::mesos::to_resources(&head.resources).unwrap_or_default();
                let role = framework.roles.first().cloned();
                let role = framework.task_role(role.as_deref().unwrap_or("*"));
                let executor_id = head
                    .executor
                    .as_ref()
                    .map(|e| agora_types::ExecutorId::new(&e.executor_id.value));
                let own_user = head.own_user().map(Box::from);
                framework.tasks.insert(
                    task_id.clone(),
                    Arc::new(Task {
                        info: super::task_info::StoredTaskInfo::reported(
                            reported_task.task.json,
                            own_user,
                        ),
                        framework_id: framework_id.clone(),
                        agent_id: id.clone(),
                        executor_id,
                        state,
                        statuses: super::history::StatusHistory::new(reported_status, &task_id, id),
                        resources,
                        role,
                        released: state.is_terminal(),
                        unreachable_since: None,
                    }),
                );
            }
            reconciled.reported.insert((framework_id, task_id));
        }
        reconciled
    }

    /// The agent's custom executors, under their frameworks.
    fn record_executors_of(&mut self, id: &AgentId, request: &RegisterAgent<ReportedTask>) {
        for executor in &request.executors {
            let framework_id = FrameworkId::new(&executor.framework_id);
            if let Some(framework) = self.frameworks.get_mut(&framework_id) {
                let executor_id =
                    agora_types::ExecutorId::new(&executor.executor.executor_id.value);
                framework
                    .executors
                    .insert((id.clone(), executor_id), executor.executor.clone());
            }
        }
    }

    /// Tasks the master placed on the agent that it does not know: they are gone.
    fn lose_unreported_tasks(
        &mut self,
        known_tasks: &HashSet<(FrameworkId, TaskId)>,
        reported: &HashSet<(FrameworkId, TaskId)>,
    ) {
        for (framework_id, task_id) in known_tasks.difference(reported) {
            let partition_aware = self
                .frameworks
                .get(framework_id)
                .is_some_and(|f| f.partition_aware());
            let state = if partition_aware {
                TaskState::Gone
            } else {
                TaskState::Lost
            };
            let status = TaskStatus::new(task_id.as_str(), state)
                .with_source("SOURCE_MASTER")
                .with_reason("REASON_RECONCILIATION")
                .with_message("Task is unknown to the agent");
            self.master_update(framework_id, task_id, status);
        }
    }

    /// The agent's resources to the allocator, less what its live tasks use.
    fn allocate_agent(
        &mut self,
        id: &AgentId,
        total: agora_types::Resources,
        reported: &HashSet<(FrameworkId, TaskId)>,
        deactivated: bool,
    ) {
        let used: Vec<_> = reported
            .iter()
            .filter_map(|(framework_id, task_id)| {
                let task = self.frameworks.get(framework_id)?.tasks.get(task_id)?;
                (!task.released).then(|| {
                    (
                        framework_id.clone(),
                        task.role.to_string(),
                        task.resources.clone(),
                    )
                })
            })
            .collect();
        self.allocator.add_agent(id.clone(), total, used);
        if deactivated {
            self.allocator.set_agent_active(id, false);
        }
    }

    /// The agent's subscription stream closed. It stays alive (without offers) until its ping
    /// timeout: it is probably reconnecting.
    pub(crate) fn agent_disconnected(&mut self, agent_id: &AgentId, generation: u64) {
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return;
        };
        match &agent.connection {
            AgentConnection::Connected(link) if link.generation == generation => {}
            _ => return,
        }
        agent.connection = AgentConnection::Disconnected;
        tracing::info!(agent = %agent_id, "agent disconnected");
        self.allocator.set_agent_active(agent_id, false);
        self.rescind_agent_offers(agent_id);
    }

    /// A ping from an agent. `false` tells it to subscribe again.
    pub(crate) fn agent_ping(&mut self, agent_id: &AgentId) -> bool {
        match self.agents.get_mut(agent_id) {
            Some(agent) if matches!(agent.connection, AgentConnection::Connected(_)) => {
                agent.last_seen = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Whether a report names an agent this master knows and comes from it (its secret).
    pub(crate) fn agent_authentic(&self, agent_id: &AgentId, token: Option<&str>) -> bool {
        self.agents
            .get(agent_id)
            .is_some_and(|agent| agent.holds(token))
    }

    /// Marks agents silent past their timeout unreachable: the ping timeout for those that
    /// registered with this master, the re-registration timeout for those it recovered.
    pub(crate) fn check_agent_timeouts(&mut self) {
        let timeout = self.config.agent_timeout();
        let reregister = self.config.agent_reregister_timeout;
        let silent: Vec<AgentId> = self
            .agents
            .values()
            .filter(|agent| {
                let allowed = if agent.registered {
                    timeout
                } else {
                    reregister
                };
                agent.is_reachable() && agent.last_seen.elapsed() >= allowed
            })
            .map(|agent| agent.id.clone())
            .collect();
        for id in silent {
            self.mark_unreachable(&id);
        }
        let drained: Vec<(AgentId, bool)> = self
            .agents
            .values()
            // A recovered agent has reported no tasks yet: drained only once it is back.
            .filter(|agent| {
                agent.drain == Some(DrainState::Draining)
                    && agent.registered
                    && agent.tasks.is_empty()
            })
            .map(|agent| (agent.id.clone(), agent.mark_gone_when_drained))
            .collect();
        for (id, mark_gone) in drained {
            if mark_gone {
                let _ = self.mark_agent_gone(&id);
            } else if let Some(agent) = self.agents.get_mut(&id) {
                agent.drain = Some(DrainState::Drained);
                self.persist_agent(&id);
            }
        }
    }

    fn mark_unreachable(&mut self, agent_id: &AgentId) {
        let since = epoch_secs();
        tracing::warn!(agent = %agent_id, "agent unreachable: no ping within the timeout");
        self.rescind_agent_offers(agent_id);
        self.allocator.remove_agent(agent_id);
        let tasks: Vec<(FrameworkId, TaskId)> = match self.agents.get_mut(agent_id) {
            Some(agent) => {
                agent.connection = AgentConnection::Unreachable { since };
                agent.tasks.iter().cloned().collect()
            }
            None => return,
        };
        for (framework_id, task_id) in tasks {
            let partition_aware = self
                .frameworks
                .get(&framework_id)
                .is_some_and(|f| f.partition_aware());
            let state = if partition_aware {
                TaskState::Unreachable
            } else {
                TaskState::Lost
            };
            let mut status = TaskStatus::new(task_id.as_str(), state)
                .with_source("SOURCE_MASTER")
                .with_reason("REASON_AGENT_REMOVED")
                .with_message(format!("Agent {agent_id} is unreachable"));
            status.agent_id = Some(Id::new(agent_id.as_str()));
            if partition_aware {
                status.unreachable_time =
                    Some(serde_json::json!({"nanoseconds": (since * 1e9) as i64}));
            }
            self.master_update(&framework_id, &task_id, status);
        }
        let failure = Event::Failure {
            failure: Failure {
                agent_id: Some(Id::new(agent_id.as_str())),
                executor_id: None,
                status: None,
            },
        };
        let connected: Vec<FrameworkId> = self
            .frameworks
            .values()
            .filter(|f| f.connected())
            .map(|f| f.id.clone())
            .collect();
        for framework_id in connected {
            self.send_event(&framework_id, &failure);
        }
        self.metrics.agent_removals += 1;
        self.publish(serde_json::json!({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": agent_id.as_str()}}}));
    }

    /// MARK_AGENT_GONE: permanent; its tasks become TASK_GONE_BY_OPERATOR.
    pub(crate) fn mark_agent_gone(&mut self, agent_id: &AgentId) -> Result<(), UnknownAgent> {
        let Some(agent) = self.agents.get(agent_id) else {
            return Err(UnknownAgent(agent_id.clone()));
        };
        let tasks: Vec<(FrameworkId, TaskId)> = agent.tasks.iter().cloned().collect();
        self.send_agent(
            agent_id,
            &AgentCommand::Shutdown {
                message: "Agent marked gone by operator".into(),
            },
        );
        for (framework_id, task_id) in tasks {
            let status = TaskStatus::new(task_id.as_str(), TaskState::GoneByOperator)
                .with_source("SOURCE_MASTER")
                .with_reason("REASON_AGENT_REMOVED_BY_OPERATOR")
                .with_message(format!("Agent {agent_id} was marked gone"));
            self.master_update(&framework_id, &task_id, status);
        }
        self.rescind_agent_offers(agent_id);
        self.allocator.remove_agent(agent_id);
        if let Some(agent) = self.agents.remove(agent_id) {
            self.registry.put_agent(&agent.record(true));
        }
        self.gone_agents.insert(agent_id.clone());
        self.metrics.agent_removals += 1;
        self.publish(serde_json::json!({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": agent_id.as_str()}}}));
        Ok(())
    }

    pub(crate) fn set_agent_deactivated(
        &mut self,
        agent_id: &AgentId,
        deactivated: bool,
    ) -> Result<(), UnknownAgent> {
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return Err(UnknownAgent(agent_id.clone()));
        };
        agent.deactivated = deactivated;
        if !deactivated {
            agent.drain = None;
        }
        let record = agent.record(false);
        let connected = matches!(agent.connection, AgentConnection::Connected(_));
        self.registry.put_agent(&record);
        self.allocator
            .set_agent_active(agent_id, connected && !deactivated);
        if deactivated {
            self.rescind_agent_offers(agent_id);
        } else {
            self.want_allocation();
        }
        Ok(())
    }

    /// DRAIN_AGENT: no new offers, every task killed (with the given grace period).
    pub(crate) fn drain_agent(
        &mut self,
        agent_id: &AgentId,
        grace_ns: Option<i64>,
    ) -> Result<(), UnknownAgent> {
        self.set_agent_deactivated(agent_id, true)?;
        let tasks: Vec<(FrameworkId, TaskId)> = match self.agents.get_mut(agent_id) {
            Some(agent) => {
                agent.drain = Some(DrainState::Draining);
                let tasks = agent.tasks.iter().cloned().collect();
                self.persist_agent(agent_id);
                tasks
            }
            None => Vec::new(),
        };
        let kill_policy = grace_ns.map(|nanoseconds| agora_api::mesos::KillPolicy {
            grace_period: Some(agora_api::mesos::DurationInfo { nanoseconds }),
        });
        for (framework_id, task_id) in tasks {
            self.send_agent(
                agent_id,
                &AgentCommand::KillTask {
                    framework_id: framework_id.to_string(),
                    task_id: task_id.to_string(),
                    kill_policy: kill_policy.clone(),
                },
            );
        }
        Ok(())
    }

    pub(crate) fn mark_gone_after_drain(&mut self, agent_id: &AgentId) {
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.mark_gone_when_drained = true;
            self.persist_agent(agent_id);
        }
    }

    /// Queues the agent's record as it stands (its maintenance state changed).
    fn persist_agent(&self, agent_id: &AgentId) {
        if let Some(agent) = self.agents.get(agent_id) {
            self.registry.put_agent(&agent.record(false));
        }
    }

    pub(crate) fn rescind_agent_offers(&mut self, agent_id: &AgentId) {
        let offers: Vec<_> = self
            .agents
            .get(agent_id)
            .map(|agent| agent.offers.iter().cloned().collect())
            .unwrap_or_default();
        for offer in offers {
            self.rescind_offer(&offer);
        }
    }

    pub(crate) fn rescind_framework_offers(&mut self, framework_id: &FrameworkId) {
        let offers: Vec<_> = self
            .frameworks
            .get(framework_id)
            .map(|framework| framework.offers.iter().cloned().collect())
            .unwrap_or_default();
        for offer in offers {
            self.rescind_offer(&offer);
        }
    }

    /// Takes an offer back: resources return to the allocator, the framework gets RESCIND.
    pub(crate) fn rescind_offer(&mut self, offer_id: &agora_types::OfferId) {
        let Some(offer) = self.take_offer(offer_id) else {
            return;
        };
        let now = self.now_ms();
        self.allocator.recover(
            &offer.framework_id,
            &offer.agent_id,
            &offer.role,
            &offer.resources,
            None,
            now,
        );
        self.send_event(
            &offer.framework_id,
            &Event::Rescind {
                rescind: agora_api::scheduler::Rescind {
                    offer_id: Id::new(offer_id.as_str()),
                },
            },
        );
        self.want_allocation();
    }
}
