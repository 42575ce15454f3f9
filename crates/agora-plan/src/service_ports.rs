//! Service ports: every port definition of an app gets one, from 10000–20000 unless given,
//! unique across apps. A port the app already had is kept across updates.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

/// Marathon's `--local_port_min`..`--local_port_max`.
pub const DEFAULT_RANGE: RangeInclusive<u64> = 10000..=20000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServicePortError {
    #[error("service port {port} is already used by app {owner}")]
    Taken { port: u64, owner: String },
    #[error("service port {0} is requested twice")]
    Duplicate(u64),
    #[error("no free service port left in {}-{}", .0.start(), .0.end())]
    Exhausted(RangeInclusive<u64>),
}

/// Assigns the service ports of one app. `requested` has one entry per port definition (0 =
/// pick one); `previous` are the app's current ports, reused in order where they are free;
/// `taken` maps the ports of every other app to its id.
pub fn assign(
    requested: &[u64],
    previous: &[u64],
    taken: &BTreeMap<u64, String>,
    range: RangeInclusive<u64>,
) -> Result<Vec<u64>, ServicePortError> {
    let mut used: BTreeSet<u64> = BTreeSet::new();
    for port in requested.iter().copied().filter(|p| *p != 0) {
        if let Some(owner) = taken.get(&port) {
            return Err(ServicePortError::Taken {
                port,
                owner: owner.clone(),
            });
        }
        if !used.insert(port) {
            return Err(ServicePortError::Duplicate(port));
        }
    }
    let reusable: Vec<u64> = previous
        .iter()
        .copied()
        .filter(|p| *p != 0 && !taken.contains_key(p) && !used.contains(p))
        .collect();
    let mut reusable = reusable.into_iter();
    let mut candidates = range.clone().filter(|p| !taken.contains_key(p));
    let mut assigned = Vec::with_capacity(requested.len());
    for port in requested {
        let port = if *port != 0 {
            *port
        } else if let Some(previous) = reusable.by_ref().find(|p| !used.contains(p)) {
            previous
        } else {
            candidates
                .by_ref()
                .find(|p| !used.contains(p))
                .ok_or(ServicePortError::Exhausted(range.clone()))?
        };
        used.insert(port);
        assigned.push(port);
    }
    Ok(assigned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn picks_lowest_free_and_keeps_previous() {
        let taken: BTreeMap<u64, String> =
            [(10000, "/a".to_owned()), (10002, "/b".to_owned())].into();
        assert_eq!(
            assign(&[0, 0], &[], &taken, DEFAULT_RANGE),
            Ok(vec![10001, 10003])
        );
        assert_eq!(
            assign(&[0, 0], &[10007], &taken, DEFAULT_RANGE),
            Ok(vec![10007, 10001])
        );
        assert_eq!(
            assign(&[0, 80], &[], &taken, DEFAULT_RANGE),
            Ok(vec![10001, 80]),
            "explicit ports outside the range are kept"
        );
        assert_eq!(
            assign(&[10002], &[], &taken, DEFAULT_RANGE),
            Err(ServicePortError::Taken {
                port: 10002,
                owner: "/b".into()
            })
        );
        assert_eq!(
            assign(&[9000, 9000], &[], &taken, DEFAULT_RANGE),
            Err(ServicePortError::Duplicate(9000))
        );
        assert_eq!(
            assign(&[0, 0], &[], &taken, 10000..=10001),
            Err(ServicePortError::Exhausted(10000..=10001))
        );
    }

    proptest! {
        #[test]
        fn assigned_ports_are_distinct_and_free(requested in prop::collection::vec(prop_oneof![Just(0u64), 10000u64..10030], 0..12), previous in prop::collection::vec(10000u64..10030, 0..4), others in prop::collection::btree_set(10000u64..10030, 0..10)) {
            let taken: BTreeMap<u64, String> = others.iter().map(|p| (*p, "/other".to_owned())).collect();
            if let Ok(ports) = assign(&requested, &previous, &taken, 10000..=10040) {
                let distinct: BTreeSet<u64> = ports.iter().copied().collect();
                prop_assert_eq!(distinct.len(), requested.len());
                prop_assert!(ports.iter().all(|p| !taken.contains_key(p)));
                for (want, got) in requested.iter().zip(&ports) {
                    prop_assert!(*want == 0 || want == got);
                }
            }
        }
    }
}
