//! The jobs and the rules that change them: definitions checked against each other (schedules,
//! parents, no cycle), when runs are due, the queue of runs waiting for resources, runs in
//! flight, their outcomes (retries, errors, dependent jobs) and each job's history. Every method
//! takes the time it acts at; nothing here reads the clock or speaks to the master, so the
//! framework loop and the API drive it, and tests can too.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use agora_api::chronos::{EnvironmentVariable, FieldError, Job, JobStatus};
use agora_api::marathon::time::format_millis;
use agora_api::metronome::{JobSpec, ScheduleSpec};
use agora_schedule::graph::{self, Readiness};
use agora_schedule::{CronSchedule, Decision, Repeating, Schedule, ScheduleError};
use agora_store::{Registrar, StoreError};

/// Runs kept per job in its history.
pub const HISTORY_KEPT: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// Bad input: Chronos answers 400 with this as the message.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("job {0:?} not found")]
    NotFound(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Why a run was started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    /// Its schedule's slot at this time (epoch ms).
    Schedule(i64),
    /// Asked for through the API.
    Manual,
    /// Every parent succeeded.
    Dependency,
}

/// A run waiting to be launched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// The run's id (Metronome's run id; retries keep it).
    #[serde(default)]
    pub id: String,
    pub job: String,
    pub trigger: Trigger,
    /// 0 for the first try, then one more per retry.
    pub attempt: u32,
    /// Not launched before this time (epoch ms): retries wait.
    pub not_before: i64,
    /// Extra arguments for a run asked for with `?arguments=` (appended unless `shell`).
    pub arguments: Vec<String>,
    /// Environment a run asked for through the API adds to the job's.
    pub environment: Vec<EnvironmentVariable>,
}

/// A run launched and not yet ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub task_id: String,
    pub pending: Pending,
    pub started: i64,
    pub agent_id: String,
    pub host: String,
    /// Killed through the API: its end is not retried.
    #[serde(default)]
    pub kill_requested: bool,
}

/// One ended run, as the job's history keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ended {
    #[serde(default)]
    pub run_id: String,
    pub task_id: String,
    pub attempt: u32,
    pub trigger: Trigger,
    pub started: i64,
    pub ended: i64,
    /// The task's final state (`TASK_FINISHED`, `TASK_FAILED`, …).
    pub state: String,
    pub message: String,
    pub host: String,
    pub succeeded: bool,
}

/// What a job's record holds besides its definition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    pub status: JobStatus,
    /// The latest schedule slot run or skipped (epoch ms).
    pub handled: Option<i64>,
    /// Slots skipped because they were missed by more than the job's epsilon.
    pub skipped: u64,
    pub history: VecDeque<Ended>,
}

/// A job created through Metronome's API: its own spec and cron schedules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metronome {
    pub spec: JobSpec,
    pub schedules: Vec<ScheduleSpec>,
}

pub struct JobEntry {
    pub definition: Job,
    pub metronome: Option<Metronome>,
    pub schedule: Option<Schedule>,
    pub epsilon: SignedDuration,
    pub state: JobState,
}

impl JobEntry {
    /// An ISO 8601 schedule as Chronos shows it while it runs: starting at its next slot,
    /// with the repetitions left. None for a job without one (dependent, or Metronome's cron).
    pub fn schedule_now(&self) -> Option<String> {
        let Some(Schedule::Repeating(repeating)) = &self.schedule else {
            return None;
        };
        let next = self
            .state
            .handled
            .and_then(|handled| Timestamp::from_millisecond(handled).ok())
            .and_then(|at| repeating.first_at_or_after(at))
            .map(|(k, _)| repeating.rewritten_from(k + 1));
        next.or_else(|| self.definition.schedule.clone())
    }
}

/// A run ended: what the framework should do about it.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// Runs queued because of it (a retry, dependent jobs).
    pub queued: Vec<String>,
}

pub struct Jobs {
    pub jobs: BTreeMap<String, JobEntry>,
    pub readiness: Readiness,
    pub queue: Vec<Pending>,
    pub runs: BTreeMap<String, Run>,
    /// Time before a failed run is tried again (Chronos' `--failure_retry`, 60 s).
    pub failure_retry: SignedDuration,
    /// What Docker jobs may ask of their hosts (`--docker-allow`).
    pub docker: agora_api::docker_policy::DockerPolicy,
    /// Where jobs' secrets are (`--secrets-dir`); without it a job naming one is refused.
    pub secrets: Option<Arc<agora_secrets::SecretsDir>>,
    /// Writes go to the registrar, off this lock; the HTTP layer answers a change once it is
    /// durable.
    registrar: Registrar,
}

const JOBS: &str = "jobs/definitions/";
const METRONOME: &str = "jobs/metronome/";
const STATES: &str = "jobs/states/";
const RUNS: &str = "jobs/runs/";
const QUEUE: &str = "jobs/queue";
const READINESS: &str = "jobs/readiness";

/// A run id in Metronome's form: the time, then a few letters that keep ids apart.
pub fn run_id(now: Timestamp) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let letters: String = (0..5)
        .map(|i| {
            let digit = (n
                .wrapping_mul(2_654_435_761)
                .wrapping_add(now.subsec_nanosecond() as u64)
                >> (i * 5))
                % 36;
            char::from_digit(digit as u32, 36)
                .unwrap_or('x')
                .to_ascii_uppercase()
        })
        .collect();
    format!("{}{letters}", now.strftime("%Y%m%d%H%M%S"))
}

fn millis(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A record as the store keeps it.
fn encoded(value: &impl Serialize) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(e.to_string()))
}

/// Whether `new` runs on another schedule than `old`: its slots then start afresh.
fn schedule_changed(old: &Job, new: &Job) -> bool {
    old.schedule != new.schedule || old.schedule_time_zone != new.schedule_time_zone
}

fn invalid(field: &str, error: ScheduleError) -> JobsError {
    JobsError::Invalid(FieldError::new(field, error.to_string()))
}

/// A Metronome job's timing: its first enabled schedule, with its starting deadline.
fn metronome_timing(
    metronome: &Metronome,
) -> Result<(Option<Schedule>, SignedDuration), JobsError> {
    for (index, schedule) in metronome.schedules.iter().enumerate() {
        let cron = CronSchedule::parse(&schedule.cron, &schedule.timezone)
            .map_err(|e| invalid(&format!("schedules[{index}].cron"), e))?;
        if schedule.enabled {
            let deadline = SignedDuration::from_secs(schedule.starting_deadline_seconds.max(1));
            return Ok((Some(Schedule::Cron(cron)), deadline));
        }
    }
    Ok((None, SignedDuration::from_secs(900)))
}

/// Reads a job's schedule and epsilon (an ISO 8601 duration).
fn parse_timing(
    job: &Job,
    now: Timestamp,
) -> Result<(Option<Schedule>, SignedDuration), JobsError> {
    let schedule = match &job.schedule {
        Some(text) => Some(Schedule::Repeating(
            Repeating::parse(text, Some(&job.schedule_time_zone), now)
                .map_err(|e| invalid("schedule", e))?,
        )),
        None => None,
    };
    let epsilon = jiff::fmt::temporal::SpanParser::new()
        .parse_span(job.epsilon.trim())
        .ok()
        .and_then(|span| SignedDuration::try_from(span).ok())
        .filter(|d| !d.is_negative())
        .ok_or_else(|| {
            JobsError::Invalid(FieldError::new(
                "epsilon",
                format!(
                    "{:?} is not an ISO 8601 duration in days, hours, minutes or seconds",
                    job.epsilon
                ),
            ))
        })?;
    Ok((schedule, epsilon))
}

impl Jobs {
    /// Loads every job, its state, the queue and the runs in flight from the store.
    pub fn load(registrar: Registrar, now: Timestamp) -> Result<Jobs, JobsError> {
        let store = registrar.store();
        let mut jobs = BTreeMap::new();
        let states: BTreeMap<String, JobState> = store
            .list(STATES)?
            .into_iter()
            .filter_map(|(key, bytes)| {
                let name = key.strip_prefix(STATES)?.to_owned();
                Some((name, serde_json::from_slice(&bytes).ok()?))
            })
            .collect();
        for (key, bytes) in store.list(JOBS)? {
            let Ok(definition) = serde_json::from_slice::<Job>(&bytes) else {
                tracing::error!(key, "unreadable job definition skipped");
                continue;
            };
            let metronome: Option<Metronome> = store
                .get(&format!("{METRONOME}{}", definition.name))?
                .and_then(|bytes| serde_json::from_slice(&bytes).ok());
            let timing = match &metronome {
                Some(metronome) => metronome_timing(metronome),
                None => parse_timing(&definition, now),
            };
            let (schedule, epsilon) = match timing {
                Ok(timing) => timing,
                Err(error) => {
                    tracing::error!(key, %error, "stored job no longer valid; skipped");
                    continue;
                }
            };
            let state = states.get(&definition.name).cloned().unwrap_or_default();
            jobs.insert(
                definition.name.clone(),
                JobEntry {
                    definition,
                    metronome,
                    schedule,
                    epsilon,
                    state,
                },
            );
        }
        let queue = store
            .get(QUEUE)?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let readiness = store
            .get(READINESS)?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let runs = store
            .list(RUNS)?
            .into_iter()
            .filter_map(|(_, bytes)| serde_json::from_slice::<Run>(&bytes).ok())
            .map(|run| (run.task_id.clone(), run))
            .collect();
        Ok(Jobs {
            jobs,
            readiness,
            queue,
            runs,
            failure_retry: SignedDuration::from_secs(60),
            docker: agora_api::docker_policy::DockerPolicy::default(),
            secrets: None,
            registrar,
        })
    }

    /// The jobs that name `name` among their parents: a delete of `name` changes them.
    pub fn children(&self, name: &str) -> Vec<String> {
        graph::children(&self.parents(), name).cloned().collect()
    }

    fn parents(&self) -> BTreeMap<String, Vec<String>> {
        self.jobs
            .iter()
            .map(|(name, entry)| (name.clone(), entry.definition.parents.clone()))
            .collect()
    }

    /// Creates or replaces a job. `dependent` says which endpoint it came through: a scheduled
    /// job needs a schedule, a dependent one parents that exist, and no cycle may form.
    /// Nothing is stored unless all of it holds. A replaced job keeps its counts and history;
    /// a changed schedule starts afresh.
    pub fn put(
        &mut self,
        definition: Job,
        dependent: bool,
        now: Timestamp,
    ) -> Result<(), JobsError> {
        match (
            dependent,
            definition.schedule.is_some(),
            definition.parents.is_empty(),
        ) {
            (false, false, _) => {
                return Err(FieldError::new("schedule", "is required for a scheduled job").into());
            }
            (true, _, true) => {
                return Err(FieldError::new("parents", "a dependent job needs parents").into());
            }
            _ => {}
        }
        let (schedule, epsilon) = parse_timing(&definition, now)?;
        self.check_container(&definition, "container")?;
        self.check_secrets(
            &definition.name,
            &definition.environment_variables,
            |index| format!("environmentVariables[{index}]"),
        )?;
        let mut parents = self.parents();
        parents.insert(definition.name.clone(), definition.parents.clone());
        graph::check(&parents).map_err(|e| invalid("parents", e))?;
        let name = definition.name.clone();
        let mut state = self
            .jobs
            .get(&name)
            .map(|entry| entry.state.clone())
            .unwrap_or_default();
        if self
            .jobs
            .get(&name)
            .is_none_or(|entry| schedule_changed(&entry.definition, &definition))
        {
            state.handled = None;
        }
        drop(self.registrar.write(vec![
            (format!("{JOBS}{name}"), Some(encoded(&definition)?)),
            (format!("{STATES}{name}"), Some(encoded(&state)?)),
        ]));
        if self.jobs.get(&name).is_some_and(|e| e.metronome.is_some()) {
            drop(self.registrar.delete(format!("{METRONOME}{name}")));
        }
        self.jobs.insert(
            name.clone(),
            JobEntry {
                definition,
                metronome: None,
                schedule,
                epsilon,
                state,
            },
        );
        self.readiness.job_changed(&parents, &name);
        self.save_readiness();
        Ok(())
    }

    /// Each secret the variables of `job` name may be used by the job (it lies under the
    /// secret's directory) and can be read; `field` names a variable in the API's shape.
    fn check_secrets(
        &self,
        job: &str,
        variables: &[EnvironmentVariable],
        field: impl Fn(usize) -> String,
    ) -> Result<(), JobsError> {
        let owner = format!("/{}", job.replace('.', "/"));
        for (index, variable) in variables.iter().enumerate() {
            if let Some(source) = &variable.secret
                && let Err(reason) =
                    agora_secrets::check_use(self.secrets.as_deref(), &owner, source)
            {
                return Err(FieldError::new(&field(index), reason).into());
            }
        }
        Ok(())
    }

    /// A job's container (at `field` of its API's shape) asks nothing of its host that
    /// `--docker-allow` does not allow.
    fn check_container(&self, definition: &Job, field: &str) -> Result<(), JobsError> {
        let Some(container) = definition.mesos_container() else {
            return Ok(());
        };
        match self.docker.refusals(&container).into_iter().next() {
            Some(refusal) => Err(FieldError::new(field, refusal.reason).into()),
            None => Ok(()),
        }
    }

    /// Creates or replaces a Metronome job with its schedules (each cron expression and zone
    /// checked; the first enabled one is the job's). A changed schedule counts from `now`.
    pub fn put_metronome(&mut self, metronome: Metronome, now: Timestamp) -> Result<(), JobsError> {
        let (schedule, epsilon) = metronome_timing(&metronome)?;
        let concurrent = metronome
            .schedules
            .iter()
            .find(|s| s.enabled)
            .is_none_or(|s| s.concurrency_policy == "ALLOW");
        let definition = metronome.spec.to_job(concurrent);
        self.check_container(&definition, "run.docker")?;
        self.check_secrets(
            &definition.name,
            &definition.environment_variables,
            |index| {
                let variable = definition
                    .environment_variables
                    .get(index)
                    .map_or("", |v| v.name.as_str());
                format!("run.env.{variable}")
            },
        )?;
        let name = definition.name.clone();
        if let Some(child) = graph::children(&self.parents(), &name).next() {
            return Err(FieldError::new(
                "id",
                format!("{name:?} is a parent of the Chronos job {child:?}"),
            )
            .into());
        }
        let mut state = self
            .jobs
            .get(&name)
            .map(|entry| entry.state.clone())
            .unwrap_or_default();
        let previous = self.jobs.get(&name).and_then(|e| e.metronome.as_ref());
        let first_enabled =
            |m: Option<&Metronome>| m.and_then(|m| m.schedules.iter().find(|s| s.enabled).cloned());
        if first_enabled(previous) != first_enabled(Some(&metronome)) {
            // A cron schedule has no first slot of its own: it counts from its creation.
            state.handled = Some(millis(now));
        }
        drop(self.registrar.write(vec![
            (format!("{JOBS}{name}"), Some(encoded(&definition)?)),
            (format!("{METRONOME}{name}"), Some(encoded(&metronome)?)),
            (format!("{STATES}{name}"), Some(encoded(&state)?)),
        ]));
        self.jobs.insert(
            name,
            JobEntry {
                definition,
                metronome: Some(metronome),
                schedule,
                epsilon,
                state,
            },
        );
        Ok(())
    }

    /// Removes a job; returns its runs in flight, to kill. Its children stay, as Chronos keeps
    /// them: those of a dependent job take its parents in its place; those of a scheduled job
    /// become scheduled jobs on its schedule as it stands now (their next run is its next run)
    /// in its time zone. All of it is stored at once, or nothing is.
    pub fn delete(&mut self, name: &str, now: Timestamp) -> Result<Vec<String>, JobsError> {
        let Some(entry) = self.jobs.get(name) else {
            return Err(JobsError::NotFound(name.to_owned()));
        };
        let mut parents = self.parents();
        let children: Vec<String> = graph::children(&parents, name).cloned().collect();
        parents.remove(name);
        let mut heirs = Vec::new();
        for child in children {
            let Some(child_entry) = self.jobs.get(&child) else {
                continue;
            };
            let mut definition = child_entry.definition.clone();
            definition.parents.retain(|parent| parent != name);
            if !entry.definition.parents.is_empty() {
                for parent in &entry.definition.parents {
                    if !definition.parents.contains(parent) {
                        definition.parents.push(parent.clone());
                    }
                }
            } else if let Some(schedule) = entry.schedule_now() {
                definition.parents.clear();
                definition.schedule = Some(schedule);
                definition.schedule_time_zone = entry.definition.schedule_time_zone.clone();
            } else {
                // A Metronome job's cron schedule is not one a Chronos job can take.
                return Err(FieldError::new(
                    "name",
                    format!(
                        "job {name:?} is a parent of {child:?} and has no ISO 8601 schedule \
                         to hand down: delete or change {child:?} first"
                    ),
                )
                .into());
            }
            let (schedule, epsilon) = parse_timing(&definition, now)?;
            let mut state = child_entry.state.clone();
            if schedule_changed(&child_entry.definition, &definition) {
                state.handled = None;
            }
            parents.insert(child.clone(), definition.parents.clone());
            heirs.push(JobEntry {
                definition,
                metronome: None,
                schedule,
                epsilon,
                state,
            });
        }
        graph::check(&parents).map_err(|e| invalid("parents", e))?;
        let mut batch = vec![
            (format!("{JOBS}{name}"), None),
            (format!("{METRONOME}{name}"), None),
            (format!("{STATES}{name}"), None),
        ];
        for heir in &heirs {
            let child = &heir.definition.name;
            batch.push((format!("{JOBS}{child}"), Some(encoded(&heir.definition)?)));
            batch.push((format!("{STATES}{child}"), Some(encoded(&heir.state)?)));
        }
        drop(self.registrar.write(batch));
        self.jobs.remove(name);
        self.queue.retain(|p| p.job != name);
        self.save_queue();
        self.readiness.job_changed(&parents, name);
        for heir in heirs {
            let child = heir.definition.name.clone();
            self.jobs.insert(child.clone(), heir);
            self.readiness.job_changed(&parents, &child);
        }
        self.save_readiness();
        Ok(self.running(name))
    }

    /// The task ids of a job's runs in flight.
    pub fn running(&self, name: &str) -> Vec<String> {
        self.runs
            .values()
            .filter(|run| run.pending.job == name)
            .map(|run| run.task_id.clone())
            .collect()
    }

    /// Queues a run now (the API's "run now"), disabled jobs included, as Chronos does.
    pub fn run_now(
        &mut self,
        name: &str,
        arguments: Vec<String>,
        environment: Vec<EnvironmentVariable>,
        now: Timestamp,
    ) -> Result<String, JobsError> {
        if !self.jobs.contains_key(name) {
            return Err(JobsError::NotFound(name.to_owned()));
        }
        self.check_secrets(name, &environment, |index| {
            format!("environmentVariables[{index}]")
        })?;
        let id = run_id(now);
        self.queue.push(Pending {
            id: id.clone(),
            job: name.to_owned(),
            trigger: Trigger::Manual,
            attempt: 0,
            not_before: millis(now),
            arguments,
            environment,
        });
        self.save_queue();
        Ok(id)
    }

    /// Applies every schedule at `now`: due slots are queued (and recorded as handled first,
    /// so a restart never runs one twice), slots missed by more than epsilon are skipped and
    /// counted. Returns when to look again.
    pub fn tick(&mut self, now: Timestamp) -> Option<Timestamp> {
        let mut wake: Option<Timestamp> = None;
        let names: Vec<String> = self.jobs.keys().cloned().collect();
        for name in names {
            let Some(entry) = self.jobs.get_mut(&name) else {
                continue;
            };
            if entry.definition.disabled {
                continue;
            }
            let Some(schedule) = &entry.schedule else {
                continue;
            };
            let mut changed = false;
            let mut queued = None;
            loop {
                let handled = entry.state.handled.map(timestamp);
                let decision = schedule.decide(handled, now, entry.epsilon);
                // Every decision must move past what was handled; one that does not would
                // loop forever in a server path.
                if let Decision::Run { slot: at, .. } | Decision::Skip { through: at, .. } =
                    decision
                    && handled.is_some_and(|h| millis(at) <= millis(h))
                {
                    tracing::error!(job = %name, "schedule made no progress; waiting for the next look");
                    break;
                }
                match decision {
                    Decision::WaitUntil(at) => {
                        wake = Some(wake.map_or(at, |w: Timestamp| w.min(at)));
                        break;
                    }
                    Decision::Finished => break,
                    Decision::Run { slot, skipped } => {
                        if skipped > 0 {
                            tracing::warn!(job = %name, skipped, "scheduled runs missed by more than epsilon were skipped");
                        }
                        entry.state.skipped += skipped;
                        entry.state.handled = Some(millis(slot));
                        queued = Some(millis(slot));
                        changed = true;
                    }
                    Decision::Skip { through, skipped } => {
                        tracing::warn!(job = %name, skipped, "scheduled runs missed by more than epsilon were skipped");
                        entry.state.skipped += skipped;
                        entry.state.handled = Some(millis(through));
                        changed = true;
                    }
                }
            }
            if changed {
                self.save_state(&name);
            }
            if let Some(slot) = queued {
                self.queue.push(Pending {
                    id: run_id(now),
                    job: name.clone(),
                    trigger: Trigger::Schedule(slot),
                    attempt: 0,
                    not_before: slot,
                    arguments: Vec::new(),
                    environment: Vec::new(),
                });
                self.save_queue();
            }
        }
        self.expire_queued(now);
        let retry = self
            .queue
            .iter()
            .map(|p| timestamp(p.not_before))
            .filter(|t| *t > now)
            .min();
        match (wake, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A scheduled run still waiting for resources more than its job's epsilon after its slot
    /// is skipped, not run late (a retry, a dependent or an asked-for run waits on).
    fn expire_queued(&mut self, now: Timestamp) {
        let mut expired: Vec<String> = Vec::new();
        let jobs = &self.jobs;
        self.queue.retain(|pending| {
            let Trigger::Schedule(slot) = pending.trigger else {
                return true;
            };
            let late = jobs.get(&pending.job).is_some_and(|entry| {
                pending.attempt == 0 && now.duration_since(timestamp(slot)) > entry.epsilon
            });
            if late {
                expired.push(pending.job.clone());
            }
            !late
        });
        if expired.is_empty() {
            return;
        }
        for name in &expired {
            tracing::warn!(job = %name, "a scheduled run found no resources within epsilon; skipped");
            if let Some(entry) = self.jobs.get_mut(name) {
                entry.state.skipped += 1;
            }
            self.save_state(name);
        }
        self.save_queue();
    }

    /// The queued runs that may launch at `now`: past their retry delay, and not a second run
    /// of a job that does not allow concurrent runs.
    pub fn launchable(&self, now: Timestamp) -> Vec<Pending> {
        let mut starting: Vec<&str> = Vec::new();
        let mut ready = Vec::new();
        for pending in &self.queue {
            let Some(entry) = self.jobs.get(&pending.job) else {
                continue;
            };
            if pending.not_before > millis(now) {
                continue;
            }
            let busy = self.runs.values().any(|r| r.pending.job == pending.job)
                || starting.contains(&pending.job.as_str());
            if busy && !entry.definition.concurrent {
                continue;
            }
            starting.push(&pending.job);
            ready.push(pending.clone());
        }
        ready
    }

    /// A queued run was launched as `task_id`.
    pub fn launched(
        &mut self,
        pending: &Pending,
        task_id: &str,
        agent_id: &str,
        host: &str,
        now: Timestamp,
    ) {
        if let Some(index) = self.queue.iter().position(|p| p == pending) {
            self.queue.remove(index);
        }
        let run = Run {
            task_id: task_id.to_owned(),
            pending: pending.clone(),
            started: millis(now),
            agent_id: agent_id.to_owned(),
            host: host.to_owned(),
            kill_requested: false,
        };
        // The run is recorded before the queue loses it: a crash between leaves a duplicate
        // entry (reconciled away), never a lost run.
        if let Ok(bytes) = serde_json::to_vec(&run) {
            drop(self.registrar.put(format!("{RUNS}{task_id}"), bytes));
        }
        self.runs.insert(task_id.to_owned(), run);
        self.save_queue();
    }

    /// A run's task ended with `state`: the job's counts and history, a retry after a failure
    /// while retries remain, and dependent jobs once every parent has succeeded.
    pub fn ended(&mut self, task_id: &str, state: &str, message: &str, now: Timestamp) -> Outcome {
        let mut outcome = Outcome::default();
        let Some(run) = self.runs.remove(task_id) else {
            return outcome;
        };
        drop(self.registrar.delete(format!("{RUNS}{task_id}")));
        let succeeded = state == "TASK_FINISHED";
        let name = run.pending.job.clone();
        let Some(entry) = self.jobs.get_mut(&name) else {
            return outcome;
        };
        let at = format_millis(millis(now));
        entry.state.history.push_back(Ended {
            run_id: run.pending.id.clone(),
            task_id: task_id.to_owned(),
            attempt: run.pending.attempt,
            trigger: run.pending.trigger.clone(),
            started: run.started,
            ended: millis(now),
            state: state.to_owned(),
            message: message.to_owned(),
            host: run.host.clone(),
            succeeded,
        });
        while entry.state.history.len() > HISTORY_KEPT {
            entry.state.history.pop_front();
        }
        let retries = u32::try_from(entry.definition.retries).unwrap_or(0);
        if succeeded {
            entry.state.status.success_count += 1;
            entry.state.status.last_success = at;
            entry.state.status.errors_since_last_success = 0;
        } else if run.pending.attempt < retries && !run.kill_requested {
            self.queue.push(Pending {
                attempt: run.pending.attempt + 1,
                not_before: millis(now.saturating_add(self.failure_retry).unwrap_or(now)),
                ..run.pending.clone()
            });
            outcome.queued.push(name.clone());
        } else {
            entry.state.status.error_count += 1;
            entry.state.status.last_error = at;
            entry.state.status.errors_since_last_success += 1;
        }
        self.save_state(&name);
        if succeeded {
            let parents = self.parents();
            for child in self.readiness.parent_succeeded(&parents, &name) {
                self.queue.push(Pending {
                    id: run_id(now),
                    job: child.clone(),
                    trigger: Trigger::Dependency,
                    attempt: 0,
                    not_before: millis(now),
                    arguments: Vec::new(),
                    environment: Vec::new(),
                });
                outcome.queued.push(child);
            }
            self.save_readiness();
        }
        self.save_queue();
        outcome
    }

    /// Drops a job's queued runs; returns the task ids of its runs in flight, to kill.
    pub fn kill(&mut self, name: &str) -> Result<Vec<String>, JobsError> {
        if !self.jobs.contains_key(name) {
            return Err(JobsError::NotFound(name.to_owned()));
        }
        self.queue.retain(|p| p.job != name);
        self.save_queue();
        let running = self.running(name);
        self.mark_killed(&running);
        Ok(running)
    }

    /// Runs killed through the API end without a retry.
    fn mark_killed(&mut self, task_ids: &[String]) {
        for task_id in task_ids {
            if let Some(run) = self.runs.get_mut(task_id) {
                run.kill_requested = true;
                if let Ok(bytes) = serde_json::to_vec(run) {
                    drop(self.registrar.put(format!("{RUNS}{task_id}"), bytes));
                }
            }
        }
    }

    /// Stops one run: dropped if still queued; returns its tasks in flight, to kill, or `None`
    /// when the job has no such run.
    pub fn stop_run(&mut self, name: &str, run: &str) -> Option<Vec<String>> {
        let queued = self.queue.len();
        self.queue.retain(|p| !(p.id == run && p.job == name));
        let dropped = self.queue.len() != queued;
        if dropped {
            self.save_queue();
        }
        let tasks: Vec<String> = self
            .runs
            .values()
            .filter(|r| r.pending.id == run && r.pending.job == name)
            .map(|r| r.task_id.clone())
            .collect();
        self.mark_killed(&tasks);
        (dropped || !tasks.is_empty()).then_some(tasks)
    }

    /// Gauges and counters as `(name, value)` under `jobs/...`; counters end in `_total`.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let sum = |f: fn(&JobEntry) -> u64| self.jobs.values().map(f).sum::<u64>() as f64;
        vec![
            ("jobs/jobs".into(), self.jobs.len() as f64),
            ("jobs/runs_queued".into(), self.queue.len() as f64),
            ("jobs/runs_running".into(), self.runs.len() as f64),
            (
                "jobs/successes_total".into(),
                sum(|e| e.state.status.success_count),
            ),
            (
                "jobs/errors_total".into(),
                sum(|e| e.state.status.error_count),
            ),
            ("jobs/skipped_total".into(), sum(|e| e.state.skipped)),
        ]
    }

    fn save_state(&self, name: &str) {
        let Some(entry) = self.jobs.get(name) else {
            return;
        };
        match serde_json::to_vec(&entry.state) {
            Ok(bytes) => drop(self.registrar.put(format!("{STATES}{name}"), bytes)),
            Err(error) => tracing::error!(%error, "cannot encode a job's state"),
        }
    }

    fn save_queue(&self) {
        if let Ok(bytes) = serde_json::to_vec(&self.queue) {
            drop(self.registrar.put(QUEUE.to_owned(), bytes));
        }
    }

    fn save_readiness(&self) {
        if let Ok(bytes) = serde_json::to_vec(&self.readiness) {
            drop(self.registrar.put(READINESS.to_owned(), bytes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_store::MemoryStore;
    use serde_json::json;

    fn registrar() -> Registrar {
        Registrar::spawn(Arc::new(MemoryStore::default())).expect("a registrar")
    }

    /// The jobs as a scheduler starting now would load them: after what was queued commits.
    fn load(store: &Registrar, now: Timestamp) -> Result<Jobs, JobsError> {
        store.barrier().wait().expect("committed");
        Jobs::load(store.clone(), now)
    }

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    fn job(body: serde_json::Value) -> Job {
        Job::parse(&body).expect("job")
    }

    fn scheduled(name: &str, schedule: &str) -> Job {
        job(json!({"name": name, "command": "true", "schedule": schedule, "epsilon": "PT30S"}))
    }

    fn dependent(name: &str, parents: &[&str]) -> Job {
        job(json!({"name": name, "command": "true", "parents": parents}))
    }

    fn launch_all(jobs: &mut Jobs, now: Timestamp) -> Vec<String> {
        let mut ids = Vec::new();
        for pending in jobs.launchable(now) {
            let id = format!("ct:{}:{}:{}", millis(now), pending.attempt, pending.job);
            jobs.launched(&pending, &id, "agent", "host", now);
            ids.push(id);
        }
        ids
    }

    #[test]
    fn bad_jobs_are_refused_whole() {
        let store = registrar();
        let mut jobs = load(&store, ts("2026-01-01T00:00:00Z")).expect("load");
        let now = ts("2026-01-01T00:00:00Z");
        let field = |r: Result<(), JobsError>| match r {
            Err(JobsError::Invalid(e)) => e.field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(jobs.put(scheduled("a", "R/bad/P1D"), false, now)),
            "schedule"
        );
        assert_eq!(
            field(jobs.put(job(json!({"name": "a", "command": "x"})), false, now)),
            "schedule"
        );
        assert_eq!(
            field(jobs.put(
                job(json!({"name": "a", "command": "x", "schedule": "R/2026-01-01T00:00:00Z/P1D", "epsilon": "soon"})),
                false,
                now
            )),
            "epsilon"
        );
        assert_eq!(
            field(jobs.put(dependent("b", &["nobody"]), true, now)),
            "parents"
        );
        jobs.put(scheduled("a", "R/2026-01-01T00:00:00Z/P1D"), false, now)
            .expect("a");
        jobs.put(dependent("b", &["a"]), true, now).expect("b");
        // b -> a would close a cycle through a's new parents.
        let mut a = dependent("a", &["b"]);
        a.schedule = None;
        assert_eq!(field(jobs.put(a, true, now)), "parents");
        assert!(
            jobs.jobs["a"].definition.parents.is_empty(),
            "nothing stored"
        );
        assert_eq!(
            {
                store.barrier().wait().expect("committed");
                store.store().list(JOBS).expect("list")
            }
            .len(),
            2
        );
    }

    #[test]
    fn a_deleted_dependent_job_hands_its_parents_to_its_children() {
        let store = registrar();
        let now = ts("2026-01-01T00:00:00Z");
        let mut jobs = load(&store, now).expect("load");
        jobs.put(scheduled("a", "R/2026-01-01T00:01:00Z/PT1M"), false, now)
            .expect("a");
        jobs.put(scheduled("x", "R/2026-01-01T00:01:00Z/PT1M"), false, now)
            .expect("x");
        jobs.put(dependent("b", &["a"]), true, now).expect("b");
        jobs.put(dependent("c", &["b"]), true, now).expect("c");
        jobs.put(dependent("d", &["x", "b", "a"]), true, now)
            .expect("d");
        assert!(matches!(
            jobs.delete("ghost", now),
            Err(JobsError::NotFound(_))
        ));

        jobs.delete("b", now).expect("delete b");
        assert!(!jobs.jobs.contains_key("b"));
        assert_eq!(jobs.jobs["c"].definition.parents, ["a"]);
        assert_eq!(jobs.jobs["d"].definition.parents, ["x", "a"], "no twice");
        assert!(jobs.jobs["c"].definition.schedule.is_none());
        // Stored so: a restart sees the same graph.
        let again = load(&store, now).expect("reload");
        assert_eq!(again.jobs["c"].definition.parents, ["a"]);
        assert!(!again.jobs.contains_key("b"));
        // And the graph runs on it: when a succeeds, c follows.
        jobs.run_now("a", Vec::new(), Vec::new(), now)
            .expect("run a");
        let id = launch_all(&mut jobs, now).pop().expect("a launched");
        let outcome = jobs.ended(&id, "TASK_FINISHED", "", now);
        assert!(outcome.queued.iter().any(|job| job == "c"), "{outcome:?}");
    }

    #[test]
    fn a_deleted_scheduled_job_hands_its_schedule_to_its_children() {
        let store = registrar();
        let start = ts("2026-01-01T00:00:00Z");
        let mut jobs = load(&store, start).expect("load");
        // Paris local time: 00:00:10 UTC.
        let mut parent = scheduled("a", "R5/2026-01-01T01:00:10/PT10S");
        parent.schedule_time_zone = "Europe/Paris".into();
        jobs.put(parent, false, start).expect("a");
        jobs.put(dependent("b", &["a"]), true, start).expect("b");
        jobs.put(dependent("c", &["a", "b"]), true, start)
            .expect("c");
        // a runs its first two slots; its next is at 00:00:30, three runs left.
        for at in ["2026-01-01T00:00:10.5Z", "2026-01-01T00:00:20.5Z"] {
            let at = ts(at);
            jobs.tick(at);
            for id in launch_all(&mut jobs, at) {
                jobs.ended(&id, "TASK_FINISHED", "", at);
            }
        }
        let now = ts("2026-01-01T00:00:25Z");
        let running: Vec<String> = jobs.runs.keys().cloned().collect();
        for id in running {
            jobs.ended(&id, "TASK_FINISHED", "", now);
        }
        let schedule = jobs.jobs["a"].schedule_now().expect("a's schedule");

        jobs.delete("a", now).expect("delete a");
        for child in ["b", "c"] {
            let definition = &jobs.jobs[child].definition;
            assert!(definition.parents.is_empty(), "{child}: {definition:?}");
            assert_eq!(definition.schedule.as_deref(), Some(schedule.as_str()));
            assert_eq!(definition.schedule_time_zone, "Europe/Paris");
            assert_eq!(
                jobs.jobs[child].epsilon,
                SignedDuration::from_secs(60),
                "its own"
            );
        }
        assert_eq!(schedule, "R3/2026-01-01T01:00:30.000+01:00/PT10S");
        // Their next run is what a's would have been.
        assert_eq!(jobs.tick(now), Some(ts("2026-01-01T00:00:30Z")));
        let at = ts("2026-01-01T00:00:30.5Z");
        jobs.tick(at);
        let mut launched: Vec<String> = jobs.launchable(at).into_iter().map(|p| p.job).collect();
        launched.sort();
        assert_eq!(launched, ["b", "c"]);
        let again = load(&store, at).expect("reload");
        assert_eq!(
            again.jobs["b"].definition.schedule.as_deref(),
            Some(schedule.as_str())
        );
    }

    #[test]
    fn schedules_queue_each_slot_once_and_survive_a_restart() {
        let store = registrar();
        let start = ts("2026-01-01T00:00:00Z");
        let mut jobs = load(&store, start).expect("load");
        jobs.put(
            scheduled("every10s", "R/2026-01-01T00:00:10Z/PT10S"),
            false,
            start,
        )
        .expect("put");
        assert_eq!(jobs.tick(start), Some(ts("2026-01-01T00:00:10Z")));
        assert!(jobs.launchable(start).is_empty());
        let at = ts("2026-01-01T00:00:10.5Z");
        jobs.tick(at);
        jobs.tick(at);
        assert_eq!(launch_all(&mut jobs, at).len(), 1, "one run per slot");
        // Restarted: the slot is handled and its run is in flight.
        let mut again = load(&store, at).expect("reload");
        assert_eq!(again.tick(at), Some(ts("2026-01-01T00:00:20Z")));
        assert!(again.launchable(at).is_empty());
        assert_eq!(again.runs.len(), 1);
        // Down for a minute: the slots missed by more than epsilon (30 s) are skipped, the
        // latest one runs once.
        let later = ts("2026-01-01T00:01:15Z");
        again.tick(later);
        let ids = launch_all(&mut again, later);
        assert_eq!(
            ids.len(),
            0,
            "the first run is still in flight and runs are not concurrent"
        );
        let first = again.runs.keys().next().cloned().expect("run");
        again.ended(&first, "TASK_FINISHED", "", later);
        assert_eq!(launch_all(&mut again, later).len(), 1);
        assert_eq!(again.jobs["every10s"].state.skipped, 5);
        let metrics: BTreeMap<String, f64> = again.metrics().into_iter().collect();
        assert_eq!(metrics["jobs/skipped_total"], 5.0);
        assert_eq!(metrics["jobs/runs_running"], 1.0);
        assert_eq!(again.jobs["every10s"].state.status.success_count, 1);
    }

    #[test]
    fn a_scheduled_run_without_resources_past_epsilon_is_skipped() {
        let store = registrar();
        let start = ts("2026-01-01T00:00:00Z");
        let mut jobs = Jobs::load(store, start).expect("load");
        jobs.put(
            scheduled("hourly", "R/2026-01-01T00:00:00Z/PT1H"),
            false,
            start,
        )
        .expect("put");
        jobs.run_now("hourly", vec![], vec![], start)
            .expect("manual");
        jobs.tick(start);
        assert_eq!(
            jobs.queue.len(),
            2,
            "the slot and the manual run wait for offers"
        );
        // No offer came for 31 s: the scheduled run is skipped, the asked-for one waits on.
        jobs.tick(ts("2026-01-01T00:00:31Z"));
        assert_eq!(jobs.queue.len(), 1);
        assert_eq!(jobs.queue[0].trigger, Trigger::Manual);
        assert_eq!(jobs.jobs["hourly"].state.skipped, 1);
    }

    #[test]
    fn failures_retry_then_count_as_errors() {
        let store = registrar();
        let now = ts("2026-01-01T00:00:00Z");
        let mut jobs = Jobs::load(store, now).expect("load");
        jobs.failure_retry = SignedDuration::from_secs(5);
        let mut flaky = scheduled("flaky", "R1/2026-01-01T00:00:00Z/PT1H");
        flaky.retries = 1;
        jobs.put(flaky, false, now).expect("put");
        jobs.tick(now);
        let first = launch_all(&mut jobs, now);
        let outcome = jobs.ended(&first[0], "TASK_FAILED", "exit 1", now);
        assert_eq!(outcome.queued, vec!["flaky".to_owned()]);
        assert!(jobs.launchable(now).is_empty(), "the retry waits");
        assert_eq!(jobs.tick(now), Some(ts("2026-01-01T00:00:05Z")));
        let later = ts("2026-01-01T00:00:05Z");
        let second = launch_all(&mut jobs, later);
        assert_eq!(jobs.runs[&second[0]].pending.attempt, 1);
        assert!(
            jobs.ended(&second[0], "TASK_FAILED", "exit 1", later)
                .queued
                .is_empty()
        );
        let status = &jobs.jobs["flaky"].state.status;
        assert_eq!(
            (status.error_count, status.errors_since_last_success),
            (1, 1)
        );
        assert_eq!(status.last_error, "2026-01-01T00:00:05.000Z");
        assert_eq!(jobs.jobs["flaky"].state.history.len(), 2);
    }

    #[test]
    fn a_chain_runs_in_order_once_per_parent_success() {
        let store = registrar();
        let now = ts("2026-01-01T00:00:00Z");
        let mut jobs = Jobs::load(store, now).expect("load");
        jobs.put(
            scheduled("extract", "R/2026-01-01T00:00:00Z/P1D"),
            false,
            now,
        )
        .expect("e");
        jobs.put(dependent("transform", &["extract"]), true, now)
            .expect("t");
        jobs.put(dependent("load", &["transform"]), true, now)
            .expect("l");
        jobs.tick(now);
        let mut order = Vec::new();
        for _ in 0..3 {
            let ids = launch_all(&mut jobs, now);
            assert_eq!(ids.len(), 1, "one job at a time down the chain");
            order.push(jobs.runs[&ids[0]].pending.job.clone());
            jobs.ended(&ids[0], "TASK_FINISHED", "", now);
        }
        assert_eq!(order, ["extract", "transform", "load"]);
        assert!(launch_all(&mut jobs, now).is_empty());
    }

    #[test]
    fn manual_runs_and_kills() {
        let store = registrar();
        let now = ts("2026-01-01T00:00:00Z");
        let mut jobs = Jobs::load(store, now).expect("load");
        let mut disabled = scheduled("report", "R/2030-01-01T00:00:00Z/P1D");
        disabled.disabled = true;
        jobs.put(disabled, false, now).expect("put");
        assert!(matches!(
            jobs.run_now("nope", vec![], vec![], now),
            Err(JobsError::NotFound(_))
        ));
        jobs.run_now("report", vec!["--fast".into()], vec![], now)
            .expect("run");
        let ids = launch_all(&mut jobs, now);
        assert_eq!(
            jobs.runs[&ids[0]].pending.arguments,
            vec!["--fast".to_owned()]
        );
        jobs.run_now("report", vec![], vec![], now).expect("run");
        assert_eq!(jobs.kill("report").expect("kill"), ids);
        assert!(jobs.queue.is_empty(), "queued runs are dropped");
        let outcome = jobs.ended(&ids[0], "TASK_KILLED", "killed", now);
        assert!(outcome.queued.is_empty(), "a killed run is not retried");
        assert_eq!(jobs.jobs["report"].state.status.error_count, 1);
    }
}
