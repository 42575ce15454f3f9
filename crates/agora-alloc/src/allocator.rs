//! The allocator's state and its bookkeeping calls: agents, frameworks, roles, what each
//! framework holds on each agent, decline filters, weights and quota. The offer round itself
//! lives in `round.rs`.

use std::collections::HashMap;
use std::hash::Hash;

use agora_types::{AgentId, FrameworkId, Resources, Scalar};

use crate::config::AllocatorConfig;
use crate::share::{ClusterTotals, Quantities, common, quantities, scalar_part, unreserved_scalar};

/// Hierarchical DRF allocator. See the crate documentation.
#[derive(Clone, Debug)]
pub struct Allocator {
    pub(crate) config: AllocatorConfig,
    pub(crate) agents: Slab<AgentId, AgentState>,
    pub(crate) frameworks: Slab<FrameworkId, FrameworkState>,
    pub(crate) roles: Vec<RoleState>,
    role_index: HashMap<String, usize>,
    pub(crate) cluster_totals: ClusterTotals,
    /// Counts rounds; the agent visiting order rotates with it so no agent is always first.
    pub(crate) rounds: u64,
    /// Agents whose offerable resources grew since the last round (added, reactivated,
    /// resources returned), for [`Allocator::allocate_changed`]; `None` when anything else
    /// changed (frameworks, roles, weights, quota), and the next round must visit every agent.
    pub(crate) changed: Option<Vec<usize>>,
}

/// Dense storage with stable indices, so the round can refer to agents and frameworks by `usize`
/// instead of hashing their string ids. Freed slots are reused.
#[derive(Clone, Debug)]
pub(crate) struct Slab<K, V> {
    entries: Vec<Option<V>>,
    index: HashMap<K, usize>,
    free: Vec<usize>,
}

impl<K: Hash + Eq + Clone, V> Slab<K, V> {
    fn new() -> Slab<K, V> {
        Slab {
            entries: Vec::new(),
            index: HashMap::new(),
            free: Vec::new(),
        }
    }

    pub(crate) fn position(&self, key: &K) -> Option<usize> {
        self.index.get(key).copied()
    }

    fn insert(&mut self, key: K, value: V) -> usize {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.entries[slot] = Some(value);
                slot
            }
            None => {
                self.entries.push(Some(value));
                self.entries.len() - 1
            }
        };
        self.index.insert(key, slot);
        slot
    }

    fn remove(&mut self, key: &K) -> Option<(usize, V)> {
        let slot = self.index.remove(key)?;
        let value = self.entries.get_mut(slot)?.take()?;
        self.free.push(slot);
        Some((slot, value))
    }

    pub(crate) fn get(&self, slot: usize) -> Option<&V> {
        self.entries.get(slot).and_then(Option::as_ref)
    }

    pub(crate) fn get_mut(&mut self, slot: usize) -> Option<&mut V> {
        self.entries.get_mut(slot).and_then(Option::as_mut)
    }

    pub(crate) fn find(&self, key: &K) -> Option<&V> {
        self.position(key).and_then(|slot| self.get(slot))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &V)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(slot, entry)| Some((slot, entry.as_ref()?)))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut V)> {
        self.entries
            .iter_mut()
            .enumerate()
            .filter_map(|(slot, entry)| Some((slot, entry.as_mut()?)))
    }

    pub(crate) fn capacity(&self) -> usize {
        self.entries.len()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct AgentState {
    pub(crate) id: AgentId,
    pub(crate) total: Resources,
    /// `total` minus everything offered or used; never more than `total`.
    pub(crate) available: Resources,
    pub(crate) active: bool,
    /// Roles with reservations here, for the pass after unreserved resources run out.
    pub(crate) reserved_roles: Vec<usize>,
    pub(crate) allocations: Vec<Allocation>,
}

/// What one framework holds on one agent in one role.
#[derive(Clone, Debug)]
pub(crate) struct Allocation {
    pub(crate) framework: usize,
    pub(crate) role: usize,
    /// Granted and not yet accepted, declined or rescinded.
    pub(crate) offered: Resources,
    /// Held by tasks (accepted offers, or tasks reported by a re-registering agent).
    pub(crate) used: Resources,
}

#[derive(Clone, Debug)]
pub(crate) struct FrameworkState {
    pub(crate) id: FrameworkId,
    /// False while the framework is only known from tasks on a re-registered agent.
    pub(crate) registered: bool,
    pub(crate) active: bool,
    pub(crate) roles: Vec<FrameworkRole>,
}

impl FrameworkState {
    pub(crate) fn role(&self, role: usize) -> Option<&FrameworkRole> {
        self.roles.iter().find(|entry| entry.role == role)
    }

    fn role_mut(&mut self, role: usize) -> &mut FrameworkRole {
        let position = match self.roles.iter().position(|entry| entry.role == role) {
            Some(position) => position,
            None => {
                self.roles.push(FrameworkRole::new(role, false));
                self.roles.len() - 1
            }
        };
        &mut self.roles[position]
    }

    /// Whether the round may offer to this framework in `role` at all.
    pub(crate) fn offerable_in(&self, role: &FrameworkRole) -> bool {
        self.registered && self.active && role.subscribed && !role.suppressed
    }
}

/// A framework in one of its roles: the unit DRF sorts inside a role.
#[derive(Clone, Debug)]
pub(crate) struct FrameworkRole {
    pub(crate) role: usize,
    /// The framework asked for this role; false when it is only known from running tasks.
    pub(crate) subscribed: bool,
    pub(crate) suppressed: bool,
    /// Scalars offered or used in this role, on all agents.
    pub(crate) allocated: Resources,
    /// Decline filters by agent slot.
    pub(crate) filters: HashMap<usize, Vec<RefuseFilter>>,
}

impl FrameworkRole {
    fn new(role: usize, subscribed: bool) -> FrameworkRole {
        FrameworkRole {
            role,
            subscribed,
            suppressed: false,
            allocated: Resources::new(),
            filters: HashMap::new(),
        }
    }

    /// Mesos filter semantics: an offer is blocked only if it is a subset of refused resources.
    pub(crate) fn refuses(&self, agent: usize, chunk: &Resources, now_ms: u64) -> bool {
        if self.filters.is_empty() {
            return false;
        }
        self.filters.get(&agent).is_some_and(|filters| {
            filters
                .iter()
                .any(|filter| filter.until_ms > now_ms && filter.resources.contains(chunk))
        })
    }
}

/// "Do not offer me (a subset of) these resources of this agent before `until_ms`."
#[derive(Clone, Debug)]
pub(crate) struct RefuseFilter {
    pub(crate) resources: Resources,
    pub(crate) until_ms: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct RoleState {
    pub(crate) name: String,
    pub(crate) weight: f64,
    /// Scalars the role is guaranteed; empty means no guarantee.
    pub(crate) guarantees: Quantities,
    /// Per-name caps; a name not listed is unlimited.
    pub(crate) limits: Option<Quantities>,
    /// Scalars offered to or used by the role's frameworks, on all agents.
    pub(crate) allocated: Resources,
    /// Scalars reserved for the role on all agents, allocated or not.
    pub(crate) reserved: Resources,
}

impl RoleState {
    /// Quota consumption as Mesos 1.9+ counts it: every reservation of the role (allocated or
    /// not) plus the unreserved resources allocated to it.
    pub(crate) fn consumption(&self, name: &str) -> Scalar {
        self.reserved.scalar(name) + unreserved_scalar(&self.allocated, name)
    }

    /// What the guarantee still lacks, by name (positive amounts only).
    pub(crate) fn unsatisfied_guarantee(&self) -> Quantities {
        self.guarantees
            .iter()
            .map(|(name, guaranteed)| (name.clone(), *guaranteed - self.consumption(name)))
            .filter(|(_, lacking)| lacking.is_positive())
            .collect()
    }

    fn is_interesting(&self) -> bool {
        !self.allocated.is_empty()
            || !self.reserved.is_empty()
            || self.weight != 1.0
            || !self.guarantees.is_empty()
            || self.limits.is_some()
    }
}

/// Which bookkeeping bucket newly allocated resources go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bucket {
    Offered,
    Used,
}

impl Allocator {
    pub fn new(config: AllocatorConfig) -> Allocator {
        Allocator {
            config,
            agents: Slab::new(),
            frameworks: Slab::new(),
            roles: Vec::new(),
            role_index: HashMap::new(),
            cluster_totals: ClusterTotals::default(),
            rounds: 0,
            changed: None,
        }
    }

    /// Something beyond one agent changed: the next round visits every agent.
    fn changed_everything(&mut self) {
        self.changed = None;
    }

    /// Only this agent's offerable resources grew.
    fn changed_agent(&mut self, slot: usize) {
        if let Some(changed) = &mut self.changed {
            changed.push(slot);
        }
    }

    /// Adds an agent, or replaces it when it re-registers. `used` lists what tasks already
    /// running there hold, per framework and role; frameworks not added yet are tracked until
    /// they are (or until `remove_framework`). Used resources not contained in `total` are
    /// ignored.
    pub fn add_agent(
        &mut self,
        agent: AgentId,
        total: Resources,
        used: Vec<(FrameworkId, String, Resources)>,
    ) {
        if self.agents.position(&agent).is_some() {
            self.remove_agent(&agent);
        }
        let mut reserved_roles = Vec::new();
        for entry in total.reserved().iter() {
            let role = self.intern_role(entry.role());
            let single: Resources = std::iter::once(entry.clone()).collect();
            self.roles[role].reserved += &scalar_part(&single);
            if !reserved_roles.contains(&role) {
                reserved_roles.push(role);
            }
        }
        self.cluster_totals.add(&total);
        let state = AgentState {
            id: agent.clone(),
            available: total.clone(),
            total,
            active: true,
            reserved_roles,
            allocations: Vec::new(),
        };
        let slot = self.agents.insert(agent, state);
        self.changed_agent(slot);
        for (framework, role, resources) in used {
            let framework = self.ensure_framework(&framework);
            let role = self.intern_role(&role);
            let Some(available) = self.agents.get(slot).map(|agent| &agent.available) else {
                return;
            };
            let resources = common(&resources, available);
            if !resources.is_empty() {
                self.assign(slot, framework, role, &resources, Bucket::Used);
            }
        }
    }

    /// Forgets an agent and everything allocated on it (the master has already dealt with its
    /// tasks and offers).
    pub fn remove_agent(&mut self, agent: &AgentId) {
        let Some((slot, state)) = self.agents.remove(agent) else {
            return;
        };
        for allocation in &state.allocations {
            let mut held = allocation.offered.clone();
            held += &allocation.used;
            self.unassign_totals(allocation.framework, allocation.role, &scalar_part(&held));
        }
        for entry in state.total.reserved().iter() {
            if let Some(role) = self.role_index.get(entry.role()).copied() {
                let single: Resources = std::iter::once(entry.clone()).collect();
                self.roles[role].reserved -= &scalar_part(&single);
            }
        }
        self.cluster_totals.remove(&state.total);
        for (_, framework) in self.frameworks.iter_mut() {
            for role in &mut framework.roles {
                role.filters.remove(&slot);
            }
        }
    }

    /// Deactivated or draining agents keep their allocations but get no offers.
    pub fn set_agent_active(&mut self, agent: &AgentId, active: bool) {
        let Some(slot) = self.agents.position(agent) else {
            return;
        };
        if let Some(state) = self.agents.get_mut(slot) {
            state.active = active;
        }
        if active {
            self.changed_agent(slot);
        }
    }

    /// Adds a framework, or updates its roles and activity when it re-subscribes. Roles it no
    /// longer has keep their allocations (running tasks) but get no more offers.
    pub fn add_framework(&mut self, framework: FrameworkId, roles: Vec<String>, active: bool) {
        self.changed_everything();
        let role_slots: Vec<usize> = roles.iter().map(|role| self.intern_role(role)).collect();
        let slot = self.ensure_framework(&framework);
        let Some(state) = self.frameworks.get_mut(slot) else {
            return;
        };
        state.registered = true;
        state.active = active;
        for entry in &mut state.roles {
            entry.subscribed = role_slots.contains(&entry.role);
            if !entry.subscribed {
                entry.suppressed = false;
                entry.filters.clear();
            }
        }
        for role in role_slots {
            state.role_mut(role).subscribed = true;
        }
        if !active {
            clear_filters(state);
        }
    }

    /// Removes a framework and frees everything it held on every agent.
    pub fn remove_framework(&mut self, framework: &FrameworkId) {
        self.changed_everything();
        let Some((slot, _)) = self.frameworks.remove(framework) else {
            return;
        };
        for (_, agent) in self.agents.iter_mut() {
            agent.allocations.retain(|allocation| {
                if allocation.framework != slot {
                    return true;
                }
                agent.available += &allocation.offered;
                agent.available += &allocation.used;
                let mut held = scalar_part(&allocation.offered);
                held += &scalar_part(&allocation.used);
                if let Some(role) = self.roles.get_mut(allocation.role) {
                    role.allocated -= &held;
                }
                false
            });
        }
    }

    /// Disconnected frameworks keep their allocations but get no offers; their filters are
    /// dropped, as Mesos does, so they see everything again when they come back.
    pub fn set_framework_active(&mut self, framework: &FrameworkId, active: bool) {
        self.changed_everything();
        if let Some(state) = self.framework_mut(framework) {
            state.active = active;
            if !active {
                clear_filters(state);
            }
        }
    }

    /// Stops offers to the framework in the given roles (`None`: all its roles).
    pub fn suppress(&mut self, framework: &FrameworkId, roles: Option<&[String]>) {
        self.changed_everything();
        let selected = self.select_roles(roles);
        if let Some(state) = self.framework_mut(framework) {
            for entry in &mut state.roles {
                if entry.subscribed
                    && selected
                        .as_ref()
                        .is_none_or(|set| set.contains(&entry.role))
                {
                    entry.suppressed = true;
                }
            }
        }
    }

    /// Resumes offers in the given roles (`None`: all) and drops their decline filters.
    pub fn revive(&mut self, framework: &FrameworkId, roles: Option<&[String]>) {
        self.changed_everything();
        let selected = self.select_roles(roles);
        if let Some(state) = self.framework_mut(framework) {
            for entry in &mut state.roles {
                if selected
                    .as_ref()
                    .is_none_or(|set| set.contains(&entry.role))
                {
                    entry.suppressed = false;
                    entry.filters.clear();
                }
            }
        }
    }

    /// Offered or used resources come back (decline, unused part of an accept, rescind, task
    /// ended). Only what the framework holds there in that role is freed: offered resources
    /// first, then used ones. With `refuse_ms`, the framework is not offered a subset of
    /// `resources` of this agent in this role before `now_ms + max(refuse_ms, min_refuse_ms)`.
    pub fn recover(
        &mut self,
        framework: &FrameworkId,
        agent: &AgentId,
        role: &str,
        resources: &Resources,
        refuse_ms: Option<u64>,
        now_ms: u64,
    ) {
        let (Some(framework), Some(agent), Some(role)) = (
            self.frameworks.position(framework),
            self.agents.position(agent),
            self.role_index.get(role).copied(),
        ) else {
            return;
        };
        self.release(agent, framework, role, resources);
        self.changed_agent(agent);
        let Some(refuse_ms) = refuse_ms else {
            return;
        };
        if resources.is_empty() {
            return;
        }
        let until_ms = now_ms.saturating_add(refuse_ms.max(self.config.min_refuse_ms));
        let Some(state) = self.frameworks.get_mut(framework) else {
            return;
        };
        if !state.registered || !state.active {
            return;
        }
        if let Some(entry) = state.roles.iter_mut().find(|entry| entry.role == role) {
            let filter = RefuseFilter {
                resources: resources.clone(),
                until_ms,
            };
            entry.filters.entry(agent).or_default().push(filter);
        }
    }

    /// Resources of an offer became used by a task (the offer was accepted): they move from
    /// offered to used; the allocation total does not change. Resources that were not offered
    /// are ignored.
    pub fn mark_used(
        &mut self,
        framework: &FrameworkId,
        agent: &AgentId,
        role: &str,
        resources: &Resources,
    ) {
        let (Some(framework), Some(agent), Some(role)) = (
            self.frameworks.position(framework),
            self.agents.position(agent),
            self.role_index.get(role).copied(),
        ) else {
            return;
        };
        let Some(state) = self.agents.get_mut(agent) else {
            return;
        };
        let Some(allocation) = state
            .allocations
            .iter_mut()
            .find(|allocation| allocation.framework == framework && allocation.role == role)
        else {
            return;
        };
        let moved = common(resources, &allocation.offered);
        allocation.offered.subtract(&moved);
        allocation.used += &moved;
    }

    /// Sets a role's weight (default 1.0). Non-positive or non-finite weights are ignored; the
    /// caller rejects them.
    pub fn set_weight(&mut self, role: &str, weight: f64) {
        self.changed_everything();
        if weight.is_finite() && weight > 0.0 {
            let role = self.intern_role(role);
            self.roles[role].weight = weight;
        }
    }

    pub fn weight(&self, role: &str) -> f64 {
        self.role_index
            .get(role)
            .map_or(1.0, |&role| self.roles[role].weight)
    }

    /// Sets a role's quota. Scalars only; reservations in the arguments are ignored. Empty
    /// `guarantees` means no guarantee, `limits: None` means unlimited. A limit below what the
    /// role already holds takes nothing back; it only stops further offers.
    pub fn set_quota(&mut self, role: &str, guarantees: Resources, limits: Option<Resources>) {
        self.changed_everything();
        let role = self.intern_role(role);
        let state = &mut self.roles[role];
        state.guarantees = quantities(&guarantees);
        state.limits = limits.map(|limits| quantities(&limits));
    }

    /// For each known role, sorted by name: its dominant share (not divided by its weight) and
    /// the scalars allocated to it. Roles with nothing allocated, reserved or configured and no
    /// framework are left out.
    pub fn role_shares(&self) -> Vec<(String, f64, Resources)> {
        let mut subscribed = vec![false; self.roles.len()];
        for (_, framework) in self.frameworks.iter() {
            for entry in framework.roles.iter().filter(|entry| entry.subscribed) {
                subscribed[entry.role] |= framework.registered;
            }
        }
        let mut shares: Vec<(String, f64, Resources)> = self
            .roles
            .iter()
            .enumerate()
            .filter(|(slot, role)| subscribed[*slot] || role.is_interesting())
            .map(|(_, role)| {
                let share = self.cluster_totals.dominant_share(&role.allocated);
                (role.name.clone(), share, role.allocated.clone())
            })
            .collect();
        shares.sort_by(|a, b| a.0.cmp(&b.0));
        shares
    }

    /// The framework's dominant share over all its roles (0 for an unknown framework).
    pub fn framework_share(&self, framework: &FrameworkId) -> f64 {
        let Some(state) = self.frameworks.find(framework) else {
            return 0.0;
        };
        let mut allocated = Resources::new();
        for entry in &state.roles {
            allocated += &entry.allocated;
        }
        self.cluster_totals.dominant_share(&allocated)
    }

    /// The agent's resources neither offered nor used.
    pub fn available(&self, agent: &AgentId) -> Option<Resources> {
        self.agents.find(agent).map(|state| state.available.clone())
    }

    pub(crate) fn intern_role(&mut self, name: &str) -> usize {
        if let Some(&role) = self.role_index.get(name) {
            return role;
        }
        self.roles.push(RoleState {
            name: name.to_owned(),
            weight: 1.0,
            guarantees: Quantities::new(),
            limits: None,
            allocated: Resources::new(),
            reserved: Resources::new(),
        });
        self.role_index
            .insert(name.to_owned(), self.roles.len() - 1);
        self.roles.len() - 1
    }

    fn ensure_framework(&mut self, framework: &FrameworkId) -> usize {
        if let Some(slot) = self.frameworks.position(framework) {
            return slot;
        }
        let state = FrameworkState {
            id: framework.clone(),
            registered: false,
            active: false,
            roles: Vec::new(),
        };
        self.frameworks.insert(framework.clone(), state)
    }

    fn framework_mut(&mut self, framework: &FrameworkId) -> Option<&mut FrameworkState> {
        let slot = self.frameworks.position(framework)?;
        self.frameworks.get_mut(slot)
    }

    /// Role slots named in `roles`; unknown names select nothing.
    fn select_roles(&self, roles: Option<&[String]>) -> Option<Vec<usize>> {
        roles.map(|names| {
            names
                .iter()
                .filter_map(|name| self.role_index.get(name.as_str()).copied())
                .collect()
        })
    }

    /// Records `resources` (already known to be available) as allocated to the framework in
    /// `role` on the agent.
    pub(crate) fn assign(
        &mut self,
        agent: usize,
        framework: usize,
        role: usize,
        resources: &Resources,
        bucket: Bucket,
    ) {
        let Some(state) = self.agents.get_mut(agent) else {
            return;
        };
        state.available -= resources;
        let position = match state
            .allocations
            .iter()
            .position(|allocation| allocation.framework == framework && allocation.role == role)
        {
            Some(position) => position,
            None => {
                state.allocations.push(Allocation {
                    framework,
                    role,
                    offered: Resources::new(),
                    used: Resources::new(),
                });
                state.allocations.len() - 1
            }
        };
        let allocation = &mut state.allocations[position];
        match bucket {
            Bucket::Offered => allocation.offered += resources,
            Bucket::Used => allocation.used += resources,
        }
        let scalars = scalar_part(resources);
        if let Some(role_state) = self.roles.get_mut(role) {
            role_state.allocated += &scalars;
        }
        if let Some(framework_state) = self.frameworks.get_mut(framework) {
            framework_state.role_mut(role).allocated += &scalars;
        }
    }

    /// Frees what the framework holds of `resources` on the agent in `role` (offered first, then
    /// used) and returns what was freed.
    fn release(
        &mut self,
        agent: usize,
        framework: usize,
        role: usize,
        resources: &Resources,
    ) -> Resources {
        let Some(state) = self.agents.get_mut(agent) else {
            return Resources::new();
        };
        let Some(position) = state
            .allocations
            .iter()
            .position(|allocation| allocation.framework == framework && allocation.role == role)
        else {
            return Resources::new();
        };
        let allocation = &mut state.allocations[position];
        let mut freed = common(resources, &allocation.offered);
        allocation.offered.subtract(&freed);
        let mut rest = resources.clone();
        rest.subtract(&freed);
        let from_used = common(&rest, &allocation.used);
        allocation.used.subtract(&from_used);
        freed += &from_used;
        if allocation.offered.is_empty() && allocation.used.is_empty() {
            state.allocations.remove(position);
        }
        state.available += &freed;
        self.unassign_totals(framework, role, &scalar_part(&freed));
        freed
    }

    /// Takes freed scalars off the role's and the framework's running totals.
    fn unassign_totals(&mut self, framework: usize, role: usize, scalars: &Resources) {
        if let Some(role_state) = self.roles.get_mut(role) {
            role_state.allocated -= scalars;
        }
        if let Some(framework_state) = self.frameworks.get_mut(framework) {
            framework_state.role_mut(role).allocated -= scalars;
        }
    }

    /// Drops the filters that have run out; returns whether any had.
    pub(crate) fn expire_filters(&mut self, now_ms: u64) -> bool {
        let mut expired = false;
        for (_, framework) in self.frameworks.iter_mut() {
            for entry in &mut framework.roles {
                if entry.filters.is_empty() {
                    continue;
                }
                entry.filters.retain(|_, filters| {
                    let before = filters.len();
                    filters.retain(|filter| filter.until_ms > now_ms);
                    expired |= filters.len() != before;
                    !filters.is_empty()
                });
            }
        }
        expired
    }

    /// Whether any role has a guarantee or a limit: a grant anywhere then changes what every
    /// agent may give (headroom, limits).
    pub(crate) fn has_quota(&self) -> bool {
        self.roles
            .iter()
            .any(|role| !role.guarantees.is_empty() || role.limits.is_some())
    }
}

fn clear_filters(state: &mut FrameworkState) {
    for entry in &mut state.roles {
        entry.filters.clear();
    }
}
