//! One allocation round. Stage 1 gives roles below their quota guarantee what the guarantee
//! still lacks; stage 2 walks every agent and gives what is left to the role with the lowest
//! weighted dominant share (and inside it to the framework with the lowest share), holding back
//! the unreserved resources other roles' unmet guarantees need. Shares are updated after every
//! grant, so one round already spreads a large cluster fairly.
//!
//! Sort orders are `BTreeSet`s of `(share, rank)` keys built once per round; a grant moves one
//! role and one framework key. A round costs O(agents × log(frameworks)) when every agent finds
//! a taker at once; decline filters make it walk further down the order.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use agora_types::{Resource, ResourceValue, Resources, Scalar};

use crate::allocator::{AgentState, Allocator, Bucket};
use crate::config::OfferGrant;
use crate::share::{OrderKey, Quantities, meets_minimum, unreserved_scalar};

/// The state of one round: sort orders, headroom and the grants made so far.
struct Round {
    now_ms: u64,
    /// Rank (position by name) of each role slot, for deterministic tie breaks.
    role_rank: Vec<u32>,
    role_by_rank: Vec<usize>,
    /// Rank (position by id) of each framework slot.
    framework_rank: Vec<u32>,
    framework_by_rank: Vec<usize>,
    /// Roles with at least one framework that may receive offers, by weighted share.
    role_order: BTreeSet<OrderKey>,
    /// The current key of each role in `role_order`.
    role_keys: Vec<Option<OrderKey>>,
    /// Per role slot: its offerable frameworks, by their share in that role.
    framework_order: Vec<BTreeSet<OrderKey>>,
    /// Present while some quota guarantee is not met.
    headroom: Option<Headroom>,
    grants: Vec<PendingGrant>,
    /// (framework, agent, role) to index in `grants`: one grant per triple per round.
    grant_slots: HashMap<(usize, usize, usize), usize>,
}

/// Unreserved resources kept back for quota guarantees that are not yet met.
struct Headroom {
    /// Per quota role: what its guarantee still lacks (empty once met).
    unsatisfied: Vec<(usize, Quantities)>,
    /// The sum of `unsatisfied`.
    required: Quantities,
    /// Unreserved resources not allocated on active agents, for the names in `required`.
    available: Quantities,
}

impl Headroom {
    fn unsatisfied_of(&self, role: usize) -> Option<&Quantities> {
        self.unsatisfied
            .iter()
            .find(|(slot, _)| *slot == role)
            .map(|(_, lack)| lack)
    }

    fn recompute_required(&mut self) {
        self.required.clear();
        for (_, lack) in &self.unsatisfied {
            for (name, amount) in lack {
                *self.required.entry(name.clone()).or_default() += *amount;
            }
        }
    }
}

struct PendingGrant {
    framework: usize,
    agent: usize,
    role: usize,
    resources: Resources,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Quota roles get up to what their guarantees lack.
    Guarantees,
    /// Everyone, by weighted DRF.
    Fairness,
}

impl Allocator {
    /// Runs one allocation round at `now_ms` and returns the grants, already recorded as
    /// offered. Inactive agents, inactive or suppressed frameworks and active decline filters
    /// are skipped; expired filters are dropped.
    pub fn allocate(&mut self, now_ms: u64) -> Vec<OfferGrant> {
        self.expire_filters(now_ms);
        let agents = self.visiting_order();
        self.round_over(now_ms, &agents)
    }

    /// A round after a change: when only some agents' offerable resources grew since the last
    /// round (agents registering, resources coming back), it visits only those — Mesos'
    /// `allocate(slaveIds)` —, since every other agent was offered all a framework would take
    /// by the round before and nothing that decides their grants has changed. Otherwise (a
    /// framework, a role's weight or quota changed, a filter ran out, or quota is set at all)
    /// it is [`Allocator::allocate`]. At 10,000 agents coming back after a master restart,
    /// rounds visiting each of them again were a sixth of the master's work.
    pub fn allocate_changed(&mut self, now_ms: u64) -> Vec<OfferGrant> {
        let expired = self.expire_filters(now_ms);
        let narrowed = match self.changed.take() {
            Some(mut changed) if !expired && !self.has_quota() => {
                changed.sort_unstable();
                changed.dedup();
                changed.retain(|&slot| self.agents.get(slot).is_some_and(|agent| agent.active));
                changed
            }
            _ => self.visiting_order(),
        };
        self.round_over(now_ms, &narrowed)
    }

    fn round_over(&mut self, now_ms: u64, agents: &[usize]) -> Vec<OfferGrant> {
        self.rounds = self.rounds.wrapping_add(1);
        // Whatever happens below, the round leaves every agent offered what it can be.
        self.changed = Some(Vec::new());
        let mut round = self.prepare_round(now_ms);
        if round.role_order.is_empty() {
            return Vec::new();
        }
        if round.headroom.is_some() {
            self.satisfy_guarantees(&mut round, agents);
        }
        self.share_fairly(&mut round, agents);
        self.finish(round)
    }

    fn prepare_round(&self, now_ms: u64) -> Round {
        let mut role_by_rank: Vec<usize> = (0..self.roles.len()).collect();
        role_by_rank.sort_by(|a, b| self.roles[*a].name.cmp(&self.roles[*b].name));
        let mut role_rank = vec![0; self.roles.len()];
        for (rank, &role) in role_by_rank.iter().enumerate() {
            role_rank[role] = rank_of(rank);
        }

        let mut framework_by_rank: Vec<usize> =
            self.frameworks.iter().map(|(slot, _)| slot).collect();
        framework_by_rank.sort_by_key(|&slot| self.frameworks.get(slot).map(|state| &state.id));
        let mut framework_rank = vec![u32::MAX; self.frameworks.capacity()];
        for (rank, &framework) in framework_by_rank.iter().enumerate() {
            framework_rank[framework] = rank_of(rank);
        }

        let mut framework_order = vec![BTreeSet::new(); self.roles.len()];
        for (slot, framework) in self.frameworks.iter() {
            for entry in framework
                .roles
                .iter()
                .filter(|entry| framework.offerable_in(entry))
            {
                framework_order[entry.role].insert(OrderKey {
                    share: self.cluster_totals.dominant_share(&entry.allocated),
                    rank: framework_rank[slot],
                });
            }
        }

        let mut round = Round {
            now_ms,
            role_rank,
            role_by_rank,
            framework_rank,
            framework_by_rank,
            role_order: BTreeSet::new(),
            role_keys: vec![None; self.roles.len()],
            framework_order,
            headroom: self.initial_headroom(),
            grants: Vec::new(),
            grant_slots: HashMap::new(),
        };
        for role in 0..self.roles.len() {
            if !round.framework_order[role].is_empty() {
                let key = self.role_key(&round, role);
                round.role_order.insert(key);
                round.role_keys[role] = Some(key);
            }
        }
        round
    }

    fn initial_headroom(&self) -> Option<Headroom> {
        let unsatisfied: Vec<(usize, Quantities)> = self
            .roles
            .iter()
            .enumerate()
            .filter(|(_, role)| !role.guarantees.is_empty())
            .map(|(slot, role)| (slot, role.unsatisfied_guarantee()))
            .filter(|(_, lack)| !lack.is_empty())
            .collect();
        if unsatisfied.is_empty() {
            return None;
        }
        let mut headroom = Headroom {
            unsatisfied,
            required: Quantities::new(),
            available: Quantities::new(),
        };
        headroom.recompute_required();
        for (_, agent) in self.agents.iter().filter(|(_, agent)| agent.active) {
            for name in headroom.required.keys() {
                let free = unreserved_scalar(&agent.available, name);
                *headroom.available.entry(name.clone()).or_default() += free;
            }
        }
        Some(headroom)
    }

    /// Active agents in slot order, starting at a point that moves every round.
    fn visiting_order(&self) -> Vec<usize> {
        let mut agents: Vec<usize> = self
            .agents
            .iter()
            .filter(|(_, agent)| agent.active)
            .map(|(slot, _)| slot)
            .collect();
        if !agents.is_empty() {
            let start = (self.rounds % agents.len() as u64) as usize;
            agents.rotate_left(start);
        }
        agents
    }

    /// Stage 1: roles whose guarantee is not met, lowest weighted share first on every agent.
    fn satisfy_guarantees(&mut self, round: &mut Round, agents: &[usize]) {
        let mut candidates: Vec<(OrderKey, usize)> = Vec::new();
        for &agent in agents {
            candidates.clear();
            if let Some(headroom) = &round.headroom {
                for (role, _) in headroom
                    .unsatisfied
                    .iter()
                    .filter(|(_, lack)| !lack.is_empty())
                {
                    if let Some(key) = round.role_keys[*role] {
                        candidates.push((key, *role));
                    }
                }
            }
            if candidates.is_empty() {
                return;
            }
            candidates.sort();
            for &(_, role) in &candidates {
                self.try_grant(round, agent, role, Stage::Guarantees);
            }
        }
    }

    /// Stage 2: on every agent, roles in weighted-share order take what is left; once the
    /// unreserved resources are gone, only roles with reservations here are tried.
    fn share_fairly(&mut self, round: &mut Round, agents: &[usize]) {
        // `visited[role] == stamp` marks roles already tried on the current agent.
        let mut visited = vec![usize::MAX; self.roles.len()];
        let mut reserved: Vec<(OrderKey, usize)> = Vec::new();
        for (stamp, &agent) in agents.iter().enumerate() {
            let mut cursor: Option<OrderKey> = None;
            while self.has_unreserved(agent) {
                let next = match cursor {
                    None => round.role_order.first(),
                    Some(after) => round
                        .role_order
                        .range((Bound::Excluded(after), Bound::Unbounded))
                        .next(),
                };
                let Some(&key) = next else {
                    break;
                };
                cursor = Some(key);
                let role = round.role_by_rank[key.rank as usize];
                if visited[role] == stamp {
                    // Its key grew after a grant on this agent; it has had its turn.
                    continue;
                }
                visited[role] = stamp;
                self.try_grant(round, agent, role, Stage::Fairness);
            }
            reserved.clear();
            if let Some(state) = self.agents.get(agent) {
                for &role in &state.reserved_roles {
                    if visited[role] != stamp
                        && let Some(key) = round.role_keys[role]
                    {
                        reserved.push((key, role));
                    }
                }
            }
            reserved.sort();
            for &(_, role) in &reserved {
                self.try_grant(round, agent, role, Stage::Fairness);
            }
        }
    }

    /// Whether the agent still has enough unreserved cpus or memory to be worth offering.
    fn has_unreserved(&self, agent: usize) -> bool {
        self.agents.get(agent).is_some_and(|state| {
            let minimum_cpus = self.config.min_allocatable_cpus.max(Scalar::from_milli(1));
            let minimum_mem = self.config.min_allocatable_mem.max(Scalar::from_milli(1));
            unreserved_scalar(&state.available, "cpus") >= minimum_cpus
                || unreserved_scalar(&state.available, "mem") >= minimum_mem
        })
    }

    /// Offers the agent's chunk for `role` to the first framework of the role that does not
    /// filter it. Returns whether a grant was made.
    fn try_grant(&mut self, round: &mut Round, agent: usize, role: usize, stage: Stage) -> bool {
        let Some(state) = self.agents.get(agent) else {
            return false;
        };
        let chunk = self.chunk(round, state, role, stage);
        if !meets_minimum(
            &chunk,
            self.config.min_allocatable_cpus,
            self.config.min_allocatable_mem,
        ) {
            return false;
        }
        let taker = round.framework_order[role]
            .iter()
            .map(|key| round.framework_by_rank[key.rank as usize])
            .find(|&framework| {
                self.frameworks
                    .get(framework)
                    .and_then(|state| state.role(role))
                    .is_some_and(|entry| !entry.refuses(agent, &chunk, round.now_ms))
            });
        match taker {
            Some(framework) => {
                self.grant(round, agent, framework, role, chunk);
                true
            }
            None => false,
        }
    }

    /// What the agent can give `role` now: unreserved and role-reserved resources, with
    /// unreserved scalars trimmed to the quota limit, to the headroom other roles' guarantees
    /// need, and in stage 1 to what the role's own guarantee lacks.
    fn chunk(&self, round: &Round, agent: &AgentState, role: usize, stage: Stage) -> Resources {
        let state = &self.roles[role];
        let mut chunk = agent.available.allocatable_to(&state.name);
        if round.headroom.is_none() && state.limits.is_none() {
            return chunk;
        }
        let lacking = round
            .headroom
            .as_ref()
            .and_then(|headroom| headroom.unsatisfied_of(role));
        let mut excess = Resources::new();
        for entry in chunk.iter() {
            let (None, ResourceValue::Scalar(amount)) = (&entry.reservation, &entry.value) else {
                continue;
            };
            let name = entry.name.as_str();
            let own_lack = lacking
                .and_then(|lack| lack.get(name))
                .copied()
                .unwrap_or_default();
            let mut cap: Option<Scalar> = None;
            if stage == Stage::Guarantees && state.guarantees.contains_key(name) {
                cap = Some(own_lack);
            } else if let Some(headroom) = &round.headroom
                && let Some(&required) = headroom.required.get(name)
            {
                let free = headroom.available.get(name).copied().unwrap_or_default();
                cap = Some(free - (required - own_lack));
            }
            if let Some(limit) = state.limits.as_ref().and_then(|limits| limits.get(name)) {
                let room = *limit - state.consumption(name);
                cap = Some(cap.map_or(room, |cap| cap.min(room)));
            }
            if let Some(cap) = cap {
                let cap = cap.max(Scalar::ZERO);
                if *amount > cap {
                    excess.push(Resource {
                        name: entry.name.clone(),
                        value: ResourceValue::Scalar(*amount - cap),
                        reservation: None,
                    });
                }
            }
        }
        chunk.subtract(&excess);
        chunk
    }

    fn grant(
        &mut self,
        round: &mut Round,
        agent: usize,
        framework: usize,
        role: usize,
        chunk: Resources,
    ) {
        let old_framework_key = self.framework_key(round, framework, role);
        self.assign(agent, framework, role, &chunk, Bucket::Offered);
        let new_framework_key = self.framework_key(round, framework, role);
        if let (Some(old), Some(new)) = (old_framework_key, new_framework_key) {
            round.framework_order[role].remove(&old);
            round.framework_order[role].insert(new);
        }
        if let Some(old) = round.role_keys[role] {
            let new = self.role_key(round, role);
            round.role_order.remove(&old);
            round.role_order.insert(new);
            round.role_keys[role] = Some(new);
        }
        if let Some(headroom) = &mut round.headroom {
            for (name, free) in headroom.available.iter_mut() {
                *free = (*free - unreserved_scalar(&chunk, name)).max(Scalar::ZERO);
            }
            let role_state = &self.roles[role];
            if let Some((_, lack)) = headroom
                .unsatisfied
                .iter_mut()
                .find(|(slot, _)| *slot == role)
            {
                *lack = role_state.unsatisfied_guarantee();
                headroom.recompute_required();
            }
        }
        match round.grant_slots.get(&(framework, agent, role)) {
            Some(&index) => round.grants[index].resources += &chunk,
            None => {
                round
                    .grant_slots
                    .insert((framework, agent, role), round.grants.len());
                round.grants.push(PendingGrant {
                    framework,
                    agent,
                    role,
                    resources: chunk,
                });
            }
        }
    }

    fn role_key(&self, round: &Round, role: usize) -> OrderKey {
        let state = &self.roles[role];
        OrderKey {
            share: self.cluster_totals.dominant_share(&state.allocated) / state.weight,
            rank: round.role_rank[role],
        }
    }

    fn framework_key(&self, round: &Round, framework: usize, role: usize) -> Option<OrderKey> {
        let entry = self.frameworks.get(framework)?.role(role)?;
        Some(OrderKey {
            share: self.cluster_totals.dominant_share(&entry.allocated),
            rank: *round.framework_rank.get(framework)?,
        })
    }

    fn finish(&self, round: Round) -> Vec<OfferGrant> {
        round
            .grants
            .into_iter()
            .filter_map(|grant| {
                Some(OfferGrant {
                    framework: self.frameworks.get(grant.framework)?.id.clone(),
                    agent: self.agents.get(grant.agent)?.id.clone(),
                    role: self.roles.get(grant.role)?.name.clone(),
                    resources: grant.resources,
                })
            })
            .collect()
    }
}

fn rank_of(position: usize) -> u32 {
    u32::try_from(position).unwrap_or(u32::MAX)
}
