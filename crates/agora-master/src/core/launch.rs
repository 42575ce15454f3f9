//! The offer cycle: turning allocator grants into offers, and validating ACCEPT (LAUNCH,
//! LAUNCH_GROUP) and DECLINE against them.

use std::collections::HashMap;
use std::sync::Arc;

use agora_api::agent_protocol::AgentCommand;
use agora_api::mesos::{
    Address, AllocationInfo, ExecutorInfo, Id, ResourceFormat, TaskInfo, TaskStatus,
    from_resources, validate_id,
};
use agora_api::scheduler::{Accept, Decline, Event, Filters, Offer, Offers, Operation, Url};
use agora_types::{AgentId, ExecutorId, FrameworkId, OfferId, Resources, TaskId, TaskState};

use super::{Master, OutstandingOffer, Task, epoch_secs};
use crate::views;

/// Why the offers of an ACCEPT cannot be used (its tasks end LOST, or DROPPED).
#[derive(Debug, thiserror::Error)]
pub(crate) enum InvalidOffers {
    #[error("No offers specified")]
    NoOffers,
    #[error("Offer {0} is no longer valid")]
    NoLongerValid(String),
    #[error("Offer {0} has invalid framework")]
    OtherFramework(String),
    #[error("Aggregated offers must belong to one single agent")]
    SeveralAgents,
    #[error(
        "Aggregated offers must be allocated to the same role. Offer {offer} uses role '{role}' \
         but another is using role '{other}'"
    )]
    SeveralRoles {
        offer: String,
        role: String,
        other: String,
    },
}

/// What the ACLs do not allow a task (TASK_ERROR, REASON_TASK_UNAUTHORIZED).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unauthorized {
    #[error("Not authorized to launch as user '{0}' ('run_tasks' in the ACLs)")]
    RunAs(String),
    #[error("Not authorized to use secret '{0}' ('use_secrets' in the ACLs)")]
    Secret(String),
}

/// Why a task cannot be launched as asked (TASK_ERROR, REASON_TASK_INVALID), in Mesos' words.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InvalidTask {
    #[error(transparent)]
    Id(agora_api::ApiError),
    #[error("Framework is not subscribed")]
    NotSubscribed,
    #[error("Task has duplicate ID: {0}")]
    DuplicateId(TaskId),
    #[error("Task uses agent {task} but the offer is for agent {offer}")]
    OtherAgent { task: String, offer: AgentId },
    #[error("Task should have at most one of CommandInfo or ExecutorInfo present")]
    CommandAndExecutor,
    #[error("Task should have at least one (but not both) of CommandInfo or ExecutorInfo present")]
    NoCommandOrExecutor,
    #[error("Task's CommandInfo has no 'value'")]
    NoCommandValue,
    #[error(transparent)]
    HealthCheck(agora_api::ApiError),
    #[error("Task uses invalid resources: {0}")]
    TaskResources(agora_api::ApiError),
    #[error("Executor uses invalid resources: {0}")]
    ExecutorResources(agora_api::ApiError),
    #[error("ExecutorInfo has an invalid FrameworkID")]
    ExecutorFramework,
    #[error("ExecutorInfo must have a command")]
    ExecutorCommand,
    #[error("Task uses more resources {needed} than available {available}")]
    TooLarge {
        needed: Resources,
        available: Resources,
    },
    #[error("Operation IDs are not supported for {0} operations")]
    OperationId(&'static str),
    #[error("LAUNCH_GROUP needs an executor of type DEFAULT")]
    GroupExecutorKind,
    #[error("Task group is empty")]
    EmptyGroup,
    #[error("Executor uses more resources than available")]
    ExecutorTooLarge,
    #[error("Tasks in a group must not set 'executor'")]
    GroupTaskExecutor,
}

impl Master {
    /// One allocation round: every grant becomes an offer sent to its framework. Timed, offers
    /// sent included, as Mesos' `allocator/mesos/allocation_run_ms`.
    pub(crate) fn allocate(&mut self) {
        self.timed_round(false);
    }

    /// A round soon after a change: only the agents that changed when nothing else did
    /// (`Allocator::allocate_changed`); the periodic round visits them all.
    pub(crate) fn allocate_changed(&mut self) {
        self.timed_round(true);
    }

    fn timed_round(&mut self, changed_only: bool) {
        let started = std::time::Instant::now();
        self.allocate_and_offer(changed_only);
        self.metrics.allocation_runs += 1;
        self.metrics.allocation_run.record(started.elapsed());
    }

    fn allocate_and_offer(&mut self, changed_only: bool) {
        let now = self.now_ms();
        let grants = if changed_only {
            self.allocator.allocate_changed(now)
        } else {
            self.allocator.allocate(now)
        };
        if grants.is_empty() {
            return;
        }
        let mut by_framework: HashMap<FrameworkId, Vec<Offer>> = HashMap::new();
        for grant in grants {
            let offer_id = self.next_offer_id();
            let Some(agent) = self.agents.get(&grant.agent) else {
                self.allocator.recover(
                    &grant.framework,
                    &grant.agent,
                    &grant.role,
                    &grant.resources,
                    None,
                    now,
                );
                continue;
            };
            let Some(framework) = self.frameworks.get(&grant.framework) else {
                self.allocator.recover(
                    &grant.framework,
                    &grant.agent,
                    &grant.role,
                    &grant.resources,
                    None,
                    now,
                );
                continue;
            };
            let format = ResourceFormat {
                refinement: framework.info.has_capability("RESERVATION_REFINEMENT"),
                allocation_role: framework.info.has_capability("MULTI_ROLE"),
            };
            let (host, port) = split_endpoint(&agent.endpoint);
            let executor_ids = framework
                .executors
                .keys()
                .filter(|(agent_id, _)| agent_id == &grant.agent)
                .map(|(_, executor)| Id::new(executor.as_str()))
                .collect();
            let offer = Offer {
                id: Id::new(offer_id.as_str()),
                framework_id: Id::new(grant.framework.as_str()),
                agent_id: Id::new(grant.agent.as_str()),
                hostname: agent.info.hostname.clone(),
                url: Some(Url {
                    scheme: "http".into(),
                    address: Address {
                        hostname: agent.info.hostname.clone(),
                        ip: host,
                        port,
                    },
                    path: "/slave(1)".into(),
                }),
                resources: from_resources(&grant.resources, format, Some(&grant.role)),
                attributes: agent.info.attributes.clone(),
                executor_ids,
                allocation_info: format.allocation_role.then(|| AllocationInfo {
                    role: grant.role.clone(),
                }),
            };
            if let Some(framework) = self.frameworks.get_mut(&grant.framework) {
                framework.offers.insert(offer_id.clone());
            }
            if let Some(agent) = self.agents.get_mut(&grant.agent) {
                agent.offers.insert(offer_id.clone());
            }
            self.offers.insert(
                offer_id,
                OutstandingOffer {
                    framework_id: grant.framework.clone(),
                    agent_id: grant.agent,
                    role: grant.role,
                    resources: grant.resources,
                },
            );
            by_framework.entry(grant.framework).or_default().push(offer);
        }
        for (framework_id, offers) in by_framework {
            self.send_event(
                &framework_id,
                &Event::Offers {
                    offers: Offers { offers },
                },
            );
        }
    }

    /// DECLINE: the offers' resources return with a refuse filter.
    pub(crate) fn decline(&mut self, framework_id: &FrameworkId, decline: Decline) {
        let refuse = Filters::refuse_ms(decline.filters.as_ref());
        let now = self.now_ms();
        for offer_id in decline.offer_ids {
            let offer_id = OfferId::new(offer_id.value);
            if self
                .offers
                .get(&offer_id)
                .is_none_or(|offer| &offer.framework_id != framework_id)
            {
                continue;
            }
            if let Some(offer) = self.take_offer(&offer_id) {
                self.allocator.recover(
                    framework_id,
                    &offer.agent_id,
                    &offer.role,
                    &offer.resources,
                    Some(refuse),
                    now,
                );
            }
        }
        self.want_allocation();
    }

    /// Removes an outstanding offer from every index that holds it.
    pub(crate) fn take_offer(&mut self, offer_id: &OfferId) -> Option<OutstandingOffer> {
        let offer = self.offers.remove(offer_id)?;
        if let Some(framework) = self.frameworks.get_mut(&offer.framework_id) {
            framework.offers.remove(offer_id);
        }
        if let Some(agent) = self.agents.get_mut(&offer.agent_id) {
            agent.offers.remove(offer_id);
        }
        Some(offer)
    }

    /// ACCEPT: validates the offers, then each operation; unused resources return with the
    /// call's refuse filter.
    pub(crate) fn accept(&mut self, framework_id: &FrameworkId, accept: Accept) {
        let refuse = Filters::refuse_ms(accept.filters.as_ref());
        let now = self.now_ms();
        if let Err(message) = self.check_offers(framework_id, &accept.offer_ids) {
            let partition_aware = self
                .frameworks
                .get(framework_id)
                .is_some_and(|f| f.partition_aware());
            let state = if partition_aware {
                TaskState::Dropped
            } else {
                TaskState::Lost
            };
            for task in operation_tasks(&accept.operations) {
                let status = TaskStatus::new(task.task_id.value.as_str(), state)
                    .with_source("SOURCE_MASTER")
                    .with_reason("REASON_INVALID_OFFERS")
                    .with_message(message.to_string());
                self.send_event(framework_id, &Event::update(stamp(status)));
            }
            // Valid offers among them go back, as Mesos does.
            for offer_id in &accept.offer_ids {
                let offer_id = OfferId::new(&offer_id.value);
                if self
                    .offers
                    .get(&offer_id)
                    .is_some_and(|o| &o.framework_id == framework_id)
                    && let Some(offer) = self.take_offer(&offer_id)
                {
                    self.allocator.recover(
                        framework_id,
                        &offer.agent_id,
                        &offer.role,
                        &offer.resources,
                        None,
                        now,
                    );
                }
            }
            self.want_allocation();
            return;
        }
        let mut available = Resources::new();
        let mut agent_id = None;
        let mut role = String::from("*");
        for offer_id in &accept.offer_ids {
            if let Some(offer) = self.take_offer(&OfferId::new(&offer_id.value)) {
                available += &offer.resources;
                role = offer.role;
                agent_id = Some(offer.agent_id);
            }
        }
        let Some(agent_id) = agent_id else { return };
        for operation in accept.operations {
            self.apply_operation(framework_id, &agent_id, &role, &mut available, operation);
        }
        self.allocator.recover(
            framework_id,
            &agent_id,
            &role,
            &available,
            Some(refuse),
            now,
        );
        self.want_allocation();
    }

    fn check_offers(
        &self,
        framework_id: &FrameworkId,
        offer_ids: &[Id],
    ) -> Result<(), InvalidOffers> {
        if offer_ids.is_empty() {
            return Err(InvalidOffers::NoOffers);
        }
        let mut agent: Option<&AgentId> = None;
        let mut role: Option<&str> = None;
        for offer_id in offer_ids {
            let Some(offer) = self.offers.get(&OfferId::new(&offer_id.value)) else {
                return Err(InvalidOffers::NoLongerValid(offer_id.value.clone()));
            };
            if &offer.framework_id != framework_id {
                return Err(InvalidOffers::OtherFramework(offer_id.value.clone()));
            }
            // Tasks are accounted to one role: offers of two cannot pay for them together.
            match role {
                Some(role) if role != offer.role => {
                    return Err(InvalidOffers::SeveralRoles {
                        offer: offer_id.value.clone(),
                        role: offer.role.clone(),
                        other: role.to_owned(),
                    });
                }
                _ => role = Some(&offer.role),
            }
            if agent.is_some_and(|a| a != &offer.agent_id) {
                return Err(InvalidOffers::SeveralAgents);
            }
            agent = Some(&offer.agent_id);
        }
        Ok(())
    }

    fn apply_operation(
        &mut self,
        framework_id: &FrameworkId,
        agent_id: &AgentId,
        role: &str,
        available: &mut Resources,
        operation: Operation,
    ) {
        let has_operation_id = operation.id.is_some();
        match operation.kind.as_str() {
            "LAUNCH" => {
                let tasks = operation.launch.map(|l| l.task_infos).unwrap_or_default();
                for task in tasks {
                    if let Err(refusal) = self.authorize_task(framework_id, &task) {
                        let message = refusal.to_string();
                        self.task_refused(framework_id, &task, message, "REASON_TASK_UNAUTHORIZED");
                        continue;
                    }
                    let checked = if has_operation_id {
                        Err(InvalidTask::OperationId("LAUNCH"))
                    } else {
                        self.check_task(framework_id, agent_id, &task, available, &[])
                    };
                    match checked {
                        Ok(needed) => {
                            available.subtract(&needed);
                            self.launch(framework_id, agent_id, role, vec![(task, needed)], None);
                        }
                        Err(invalid) => self.task_error(framework_id, &task, invalid.to_string()),
                    }
                }
            }
            "LAUNCH_GROUP" => {
                let Some(group) = operation.launch_group else {
                    return;
                };
                let unauthorized = group
                    .task_group
                    .tasks
                    .iter()
                    .find_map(|task| self.authorize_task(framework_id, task).err())
                    .or_else(|| {
                        let executor = group.executor.command.as_ref();
                        self.authorize_secrets(framework_id, [executor]).err()
                    });
                if let Some(refusal) = unauthorized {
                    let message = refusal.to_string();
                    for task in &group.task_group.tasks {
                        self.task_refused(
                            framework_id,
                            task,
                            message.clone(),
                            "REASON_TASK_UNAUTHORIZED",
                        );
                    }
                    return;
                }
                let checked = self.check_group(
                    framework_id,
                    agent_id,
                    &group.executor,
                    &group.task_group.tasks,
                    available,
                    has_operation_id,
                );
                match checked {
                    Ok(launches) => {
                        for (_, needed) in &launches {
                            available.subtract(needed);
                        }
                        let mut executor = group.executor;
                        executor.framework_id = Some(Id::new(framework_id.as_str()));
                        self.launch(framework_id, agent_id, role, launches, Some(executor));
                    }
                    Err(invalid) => {
                        for task in &group.task_group.tasks {
                            self.task_error(framework_id, task, invalid.to_string());
                        }
                    }
                }
            }
            other => {
                tracing::warn!(framework = %framework_id, operation = other, "unsupported offer operation ignored");
            }
        }
    }

    fn task_error(&mut self, framework_id: &FrameworkId, task: &TaskInfo, message: String) {
        self.task_refused(framework_id, task, message, "REASON_TASK_INVALID");
    }

    fn task_refused(
        &mut self,
        framework_id: &FrameworkId,
        task: &TaskInfo,
        message: String,
        reason: &str,
    ) {
        tracing::info!(framework = %framework_id, task = %task.task_id.value, %message, "task rejected");
        self.metrics.count_task_state(TaskState::Error);
        let status = TaskStatus::new(task.task_id.value.as_str(), TaskState::Error)
            .with_source("SOURCE_MASTER")
            .with_reason(reason)
            .with_message(message);
        self.send_event(framework_id, &Event::update(stamp(status)));
    }

    /// Whether the framework's principal may run the task as the user it would run as (its
    /// command's, its executor's, else the framework's): Mesos' `run_tasks`; and whether it
    /// may use the secrets the task's environment refers to: agora's `use_secrets`.
    fn authorize_task(
        &self,
        framework_id: &FrameworkId,
        task: &TaskInfo,
    ) -> Result<(), Unauthorized> {
        let Some(framework) = self.frameworks.get(framework_id) else {
            return Ok(());
        };
        let user = task.run_as(task.executor.as_ref(), &framework.info.user);
        let principal = framework.info.principal.as_deref();
        if !self.config.acls.permits(
            agora_http::auth::acl::Action::RunTasks,
            principal,
            Some(user),
        ) {
            return Err(Unauthorized::RunAs(user.to_owned()));
        }
        self.authorize_secrets(
            framework_id,
            [
                task.command.as_ref(),
                task.executor.as_ref().and_then(|e| e.command.as_ref()),
            ],
        )
    }

    /// Whether the framework's principal may use the secrets the commands' environments
    /// refer to (agora's `use_secrets`).
    fn authorize_secrets<'a>(
        &self,
        framework_id: &FrameworkId,
        commands: impl IntoIterator<Item = Option<&'a agora_api::mesos::CommandInfo>>,
    ) -> Result<(), Unauthorized> {
        let Some(framework) = self.frameworks.get(framework_id) else {
            return Ok(());
        };
        let principal = framework.info.principal.as_deref();
        let secrets = commands
            .into_iter()
            .flatten()
            .filter_map(|command| command.environment.as_ref())
            .flat_map(|environment| &environment.variables)
            .filter_map(|variable| variable.secret.as_ref()?.reference.as_ref());
        for reference in secrets {
            if !self.config.acls.permits(
                agora_http::auth::acl::Action::UseSecrets,
                principal,
                Some(&reference.name),
            ) {
                return Err(Unauthorized::Secret(reference.name.clone()));
            }
        }
        Ok(())
    }

    /// Validates one task against the offer; returns the resources it consumes (its own plus
    /// its executor's when that executor is not running yet).
    fn check_task(
        &self,
        framework_id: &FrameworkId,
        agent_id: &AgentId,
        task: &TaskInfo,
        available: &Resources,
        siblings: &[TaskId],
    ) -> Result<Resources, InvalidTask> {
        validate_id("Task", &task.task_id.value).map_err(InvalidTask::Id)?;
        let task_id = TaskId::new(&task.task_id.value);
        let framework = self
            .frameworks
            .get(framework_id)
            .ok_or(InvalidTask::NotSubscribed)?;
        if framework.tasks.contains_key(&task_id) || siblings.contains(&task_id) {
            return Err(InvalidTask::DuplicateId(task_id));
        }
        if task.agent_id.value != agent_id.as_str() {
            return Err(InvalidTask::OtherAgent {
                task: task.agent_id.value.clone(),
                offer: agent_id.clone(),
            });
        }
        match (&task.command, &task.executor) {
            (Some(_), Some(_)) => return Err(InvalidTask::CommandAndExecutor),
            (None, None) => return Err(InvalidTask::NoCommandOrExecutor),
            (Some(command), None) => {
                if command.value.as_deref().unwrap_or("").is_empty() {
                    return Err(InvalidTask::NoCommandValue);
                }
            }
            (None, Some(_)) => {}
        }
        if let Some(check) = &task.health_check {
            agora_api::health::HealthCheck::parse(check).map_err(InvalidTask::HealthCheck)?;
        }
        let mut needed =
            agora_api::mesos::to_resources(&task.resources).map_err(InvalidTask::TaskResources)?;
        if let Some(executor) = &task.executor {
            validate_id("Executor", &executor.executor_id.value).map_err(InvalidTask::Id)?;
            if let Some(owner) = &executor.framework_id
                && owner.value != framework_id.as_str()
            {
                return Err(InvalidTask::ExecutorFramework);
            }
            if executor
                .command
                .as_ref()
                .is_none_or(|c| c.value.as_deref().unwrap_or("").is_empty())
                && executor.kind.as_deref() != Some("DEFAULT")
            {
                return Err(InvalidTask::ExecutorCommand);
            }
            let executor_key = (
                agent_id.clone(),
                ExecutorId::new(&executor.executor_id.value),
            );
            if !framework.executors.contains_key(&executor_key) {
                needed += &agora_api::mesos::to_resources(&executor.resources)
                    .map_err(InvalidTask::ExecutorResources)?;
            }
        }
        if !available.contains(&needed) {
            return Err(InvalidTask::TooLarge {
                needed,
                available: available.clone(),
            });
        }
        Ok(needed)
    }

    fn check_group(
        &self,
        framework_id: &FrameworkId,
        agent_id: &AgentId,
        executor: &ExecutorInfo,
        tasks: &[TaskInfo],
        available: &Resources,
        has_operation_id: bool,
    ) -> Result<Vec<(TaskInfo, Resources)>, InvalidTask> {
        if has_operation_id {
            return Err(InvalidTask::OperationId("LAUNCH_GROUP"));
        }
        if executor.kind.as_deref() != Some("DEFAULT") {
            return Err(InvalidTask::GroupExecutorKind);
        }
        if tasks.is_empty() {
            return Err(InvalidTask::EmptyGroup);
        }
        validate_id("Executor", &executor.executor_id.value).map_err(InvalidTask::Id)?;
        let framework = self
            .frameworks
            .get(framework_id)
            .ok_or(InvalidTask::NotSubscribed)?;
        let executor_key = (
            agent_id.clone(),
            ExecutorId::new(&executor.executor_id.value),
        );
        let mut remaining = available.clone();
        if !framework.executors.contains_key(&executor_key) {
            let executor_resources = agora_api::mesos::to_resources(&executor.resources)
                .map_err(InvalidTask::ExecutorResources)?;
            remaining = remaining
                .checked_sub(&executor_resources)
                .ok_or(InvalidTask::ExecutorTooLarge)?;
        }
        let mut launches = Vec::new();
        let mut seen: Vec<TaskId> = Vec::new();
        for task in tasks {
            if task.executor.is_some() {
                return Err(InvalidTask::GroupTaskExecutor);
            }
            let needed = self.check_task(framework_id, agent_id, task, &remaining, &seen)?;
            remaining.subtract(&needed);
            seen.push(TaskId::new(&task.task_id.value));
            launches.push((task.clone(), needed));
        }
        // The executor's own resources ride with the first task for accounting.
        if let Some(first) = launches.first_mut()
            && !framework.executors.contains_key(&executor_key)
        {
            first.1 += &agora_api::mesos::to_resources(&executor.resources).unwrap_or_default();
        }
        Ok(launches)
    }

    /// Records the tasks as STAGING and sends them to the agent.
    fn launch(
        &mut self,
        framework_id: &FrameworkId,
        agent_id: &AgentId,
        role: &str,
        tasks: Vec<(TaskInfo, Resources)>,
        group_executor: Option<ExecutorInfo>,
    ) {
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let framework_info = framework.info.clone();
        let mut infos = Vec::with_capacity(tasks.len());
        let mut added = Vec::new();
        // TASK_ADDED is built only for someone to send it to.
        let publish = !self.operator_streams.is_empty();
        for (mut info, resources) in tasks {
            self.allocator
                .mark_used(framework_id, agent_id, role, &resources);
            if let Some(executor) = info.executor.as_mut() {
                executor.framework_id = Some(Id::new(framework_id.as_str()));
                framework.executors.insert(
                    (
                        agent_id.clone(),
                        ExecutorId::new(&executor.executor_id.value),
                    ),
                    executor.clone(),
                );
            }
            let executor_id = info
                .executor
                .as_ref()
                .or(group_executor.as_ref())
                .map(|e| ExecutorId::new(&e.executor_id.value));
            let task_id = TaskId::new(&info.task_id.value);
            let mut staging =
                TaskStatus::new(task_id.as_str(), TaskState::Staging).with_source("SOURCE_MASTER");
            staging.agent_id = Some(Id::new(agent_id.as_str()));
            staging.timestamp = Some(epoch_secs());
            let mut resources = resources;
            resources.shrink_to_fit();
            let task = Task {
                info: super::task_info::StoredTaskInfo::new(&info),
                framework_id: framework_id.clone(),
                agent_id: agent_id.clone(),
                executor_id,
                state: TaskState::Staging,
                statuses: super::history::StatusHistory::new(staging, &task_id, agent_id),
                resources,
                role: framework.task_role(role),
                released: false,
                unreachable_since: None,
            };
            if publish {
                added.push(views::v1_task(&task));
            }
            framework.tasks.insert(task_id.clone(), Arc::new(task));
            if let Some(agent) = self.agents.get_mut(agent_id) {
                agent.tasks.insert((framework_id.clone(), task_id));
            }
            infos.push(info);
        }
        if let Some(executor) = &group_executor {
            framework.executors.insert(
                (
                    agent_id.clone(),
                    ExecutorId::new(&executor.executor_id.value),
                ),
                executor.clone(),
            );
        }
        for _ in &infos {
            self.metrics.count_task_state(TaskState::Staging);
        }
        let group = group_executor.is_some();
        let commands: Vec<AgentCommand> = if group {
            vec![AgentCommand::RunTasks {
                framework: framework_info,
                executor: group_executor,
                tasks: infos,
                group,
            }]
        } else {
            infos
                .into_iter()
                .map(|task| AgentCommand::RunTasks {
                    framework: framework_info.clone(),
                    executor: task.executor.clone(),
                    tasks: vec![task],
                    group: false,
                })
                .collect()
        };
        for command in &commands {
            self.send_agent(agent_id, command);
        }
        for task in added {
            self.publish(serde_json::json!({"type": "TASK_ADDED", "task_added": {"task": task}}));
        }
    }
}

fn operation_tasks(operations: &[Operation]) -> Vec<&TaskInfo> {
    let mut tasks = Vec::new();
    for operation in operations {
        if let Some(launch) = &operation.launch {
            tasks.extend(launch.task_infos.iter());
        }
        if let Some(group) = &operation.launch_group {
            tasks.extend(group.task_group.tasks.iter());
        }
    }
    tasks
}

fn stamp(mut status: TaskStatus) -> TaskStatus {
    status.timestamp = Some(epoch_secs());
    status
}

/// `host:port` → (host, port), port 5051 when absent or invalid.
pub(crate) fn split_endpoint(endpoint: &str) -> (String, u16) {
    match endpoint.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.parse().unwrap_or(5051)),
        None => (endpoint.to_owned(), 5051),
    }
}
