//! Dominant shares and the small resource arithmetic the allocator needs on top of
//! `agora_types::Resources`: scalar-only sums, intersections and per-name quantities.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use agora_types::{ResourceValue, Resources, Scalar};

/// The scalar kinds that make up a dominant share, as in Mesos' DRF sorter.
pub(crate) const SHARE_KINDS: [&str; 4] = ["cpus", "mem", "disk", "gpus"];

/// Scalar amounts by resource name, ignoring reservations (quota guarantees, limits, headroom).
pub(crate) type Quantities = BTreeMap<String, Scalar>;

/// The cluster-wide total of each share kind, in thousandths: the denominators of every share.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ClusterTotals([i64; SHARE_KINDS.len()]);

impl ClusterTotals {
    pub(crate) fn add(&mut self, resources: &Resources) {
        for (total, name) in self.0.iter_mut().zip(SHARE_KINDS) {
            *total = total.saturating_add(resources.scalar(name).milli());
        }
    }

    pub(crate) fn remove(&mut self, resources: &Resources) {
        for (total, name) in self.0.iter_mut().zip(SHARE_KINDS) {
            *total = total.saturating_sub(resources.scalar(name).milli()).max(0);
        }
    }

    /// The largest fraction of any share kind that `allocated` holds; kinds the cluster does
    /// not have are ignored.
    pub(crate) fn dominant_share(&self, allocated: &Resources) -> f64 {
        self.0
            .iter()
            .zip(SHARE_KINDS)
            .filter(|(total, _)| **total > 0)
            .map(|(total, name)| allocated.scalar(name).milli() as f64 / *total as f64)
            .fold(0.0, f64::max)
    }
}

/// A position in a sort order: lowest share first, ties broken by a rank taken from the name,
/// so rounds are deterministic.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OrderKey {
    pub(crate) share: f64,
    pub(crate) rank: u32,
}

impl PartialEq for OrderKey {
    fn eq(&self, other: &OrderKey) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for OrderKey {}

impl PartialOrd for OrderKey {
    fn partial_cmp(&self, other: &OrderKey) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderKey {
    fn cmp(&self, other: &OrderKey) -> Ordering {
        self.share
            .total_cmp(&other.share)
            .then(self.rank.cmp(&other.rank))
    }
}

/// The scalar entries of `resources`, reservations kept. Ranges and sets are per agent and do
/// not add up across agents, so cluster-wide sums hold scalars only.
pub(crate) fn scalar_part(resources: &Resources) -> Resources {
    resources.filter(|entry| matches!(entry.value, ResourceValue::Scalar(_)))
}

/// What `a` and `b` have in common, entry by entry: `a - (a - b)`.
pub(crate) fn common(a: &Resources, b: &Resources) -> Resources {
    let mut outside = a.clone();
    outside.subtract(b);
    let mut inside = a.clone();
    inside.subtract(&outside);
    inside
}

/// The unreserved amount of the scalar `name`.
pub(crate) fn unreserved_scalar(resources: &Resources, name: &str) -> Scalar {
    resources
        .iter()
        .filter(|entry| entry.name == name && entry.reservation.is_none())
        .map(|entry| match entry.value {
            ResourceValue::Scalar(value) => value,
            _ => Scalar::ZERO,
        })
        .fold(Scalar::ZERO, |sum, value| sum + value)
}

/// Scalar amounts by name across reservations; zero amounts are dropped.
pub(crate) fn quantities(resources: &Resources) -> Quantities {
    let mut result = Quantities::new();
    for entry in resources.iter() {
        if let ResourceValue::Scalar(value) = entry.value {
            *result.entry(entry.name.clone()).or_default() += value;
        }
    }
    result.retain(|_, value| value.is_positive());
    result
}

/// Whether `chunk` is worth offering: enough cpus or enough memory.
pub(crate) fn meets_minimum(chunk: &Resources, min_cpus: Scalar, min_mem: Scalar) -> bool {
    chunk.scalar("cpus") >= min_cpus.max(Scalar::from_milli(1))
        || chunk.scalar("mem") >= min_mem.max(Scalar::from_milli(1))
}

#[cfg(test)]
mod tests {
    use agora_types::Range;

    use super::*;

    fn parse(text: &str) -> Resources {
        Resources::parse(text).unwrap_or_default()
    }

    #[test]
    fn dominant_share_takes_the_largest_fraction() {
        let mut totals = ClusterTotals::default();
        totals.add(&parse("cpus:10;mem:1000;ports:[1-10]"));
        assert_eq!(totals.dominant_share(&parse("cpus:1;mem:500")), 0.5);
        assert_eq!(totals.dominant_share(&parse("cpus(a):5;gpus:1")), 0.5);
        assert_eq!(totals.dominant_share(&Resources::new()), 0.0);
    }

    #[test]
    fn common_intersects_every_kind() {
        let a = parse("cpus:2;mem:100;ports:[1-10];zones:{x,y}");
        let b = parse("cpus:1;ports:[5-20];zones:{y,z};disk:5");
        let both = common(&a, &b);
        assert_eq!(both.scalar("cpus"), Scalar::from_units(1));
        assert_eq!(both.scalar("mem"), Scalar::ZERO);
        assert_eq!(both.ranges("ports"), vec![Range::new(5, 10)]);
        assert_eq!(both.to_string(), "cpus:1; ports:[5-10]; zones:{y}");
    }

    #[test]
    fn order_keys_sort_by_share_then_rank() {
        let mut keys = [
            OrderKey {
                share: 0.5,
                rank: 0,
            },
            OrderKey {
                share: 0.1,
                rank: 2,
            },
            OrderKey {
                share: 0.1,
                rank: 1,
            },
        ];
        keys.sort();
        let ranks: Vec<u32> = keys.iter().map(|key| key.rank).collect();
        assert_eq!(ranks, vec![1, 2, 0]);
    }
}
