//! Matching one instance's needs against an offer: which resources (reserved for the role
//! first, then unreserved) and which host ports it takes, or why the offer does not fit, named
//! as Marathon names the reasons in `/v2/queue`.

use std::collections::BTreeSet;

use agora_types::{Range, Resource, ResourceValue, Resources, Scalar};

/// What one instance of an app needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceNeeds {
    pub cpus: Scalar,
    pub mem: Scalar,
    pub disk: Scalar,
    pub gpus: Scalar,
    /// One entry per port definition: a fixed host port, or 0 for any.
    pub ports: Vec<u64>,
}

/// Why an offer does not fit, with Marathon's reason names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mismatch {
    InsufficientCpus,
    InsufficientMemory,
    InsufficientDisk,
    InsufficientGpus,
    InsufficientPorts,
    UnfulfilledConstraint,
}

impl Mismatch {
    pub fn as_str(self) -> &'static str {
        match self {
            Mismatch::InsufficientCpus => "InsufficientCpus",
            Mismatch::InsufficientMemory => "InsufficientMemory",
            Mismatch::InsufficientDisk => "InsufficientDisk",
            Mismatch::InsufficientGpus => "InsufficientGpus",
            Mismatch::InsufficientPorts => "InsufficientPorts",
            Mismatch::UnfulfilledConstraint => "UnfulfilledConstraint",
        }
    }
}

/// What an instance takes from an offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matched {
    /// Exactly what to put in the TaskInfo (entries keep their reservations).
    pub resources: Resources,
    /// Host ports in port-definition order.
    pub host_ports: Vec<u64>,
}

/// Takes what `needs` asks for out of `offered`. Reserved entries are used before unreserved
/// ones, because nobody else can use them.
pub fn match_offer(needs: &InstanceNeeds, offered: &Resources) -> Result<Matched, Mismatch> {
    let mut taken = Resources::new();
    for (name, amount, mismatch) in [
        ("cpus", needs.cpus, Mismatch::InsufficientCpus),
        ("mem", needs.mem, Mismatch::InsufficientMemory),
        ("disk", needs.disk, Mismatch::InsufficientDisk),
        ("gpus", needs.gpus, Mismatch::InsufficientGpus),
    ] {
        if !amount.is_positive() {
            continue;
        }
        if offered.scalar(name) < amount {
            return Err(mismatch);
        }
        let mut left = amount;
        for entry in reserved_first(offered, name) {
            let ResourceValue::Scalar(available) = entry.value else {
                continue;
            };
            let take = left.min(available);
            if take.is_positive() {
                taken.push(Resource {
                    value: ResourceValue::Scalar(take),
                    ..entry.clone()
                });
                left -= take;
            }
        }
    }
    let host_ports = take_ports(&needs.ports, offered, &mut taken)?;
    Ok(Matched {
        resources: taken,
        host_ports,
    })
}

fn reserved_first<'a>(offered: &'a Resources, name: &'a str) -> impl Iterator<Item = &'a Resource> {
    let reserved = offered
        .iter()
        .filter(move |r| r.name == name && r.reservation.is_some());
    let unreserved = offered
        .iter()
        .filter(move |r| r.name == name && r.reservation.is_none());
    reserved.chain(unreserved)
}

fn take_ports(
    wanted: &[u64],
    offered: &Resources,
    taken: &mut Resources,
) -> Result<Vec<u64>, Mismatch> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let entries: Vec<&Resource> = reserved_first(offered, "ports").collect();
    let holder = |port: u64| {
        entries.iter().find(|entry| match &entry.value {
            ResourceValue::Ranges(ranges) => {
                ranges.iter().any(|r| r.begin <= port && port <= r.end)
            }
            _ => false,
        })
    };
    let fixed: BTreeSet<u64> = wanted.iter().copied().filter(|p| *p != 0).collect();
    if fixed.len() != wanted.iter().filter(|p| **p != 0).count() {
        return Err(Mismatch::InsufficientPorts);
    }
    let mut chosen: Vec<u64> = Vec::with_capacity(wanted.len());
    let mut used: BTreeSet<u64> = fixed.clone();
    let mut free = entries.iter().flat_map(|entry| match &entry.value {
        ResourceValue::Ranges(ranges) => ranges.clone(),
        _ => Vec::new(),
    });
    let mut current: Option<(u64, u64)> = None;
    let mut next_free = || -> Option<u64> {
        loop {
            match current {
                Some((next, end)) if next <= end => {
                    current = Some((next + 1, end));
                    if !used.contains(&next) {
                        used.insert(next);
                        return Some(next);
                    }
                }
                _ => {
                    let range = free.next()?;
                    current = Some((range.begin, range.end));
                }
            }
        }
    };
    for port in wanted {
        let port = match *port {
            0 => next_free().ok_or(Mismatch::InsufficientPorts)?,
            fixed_port => fixed_port,
        };
        chosen.push(port);
    }
    for port in &chosen {
        let entry = holder(*port).ok_or(Mismatch::InsufficientPorts)?;
        taken.push(Resource {
            value: ResourceValue::ranges([Range::new(*port, *port)]),
            ..(*entry).clone()
        });
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn needs(cpus: f64, mem: f64, ports: Vec<u64>) -> InstanceNeeds {
        InstanceNeeds {
            cpus: Scalar::from_f64(cpus),
            mem: Scalar::from_f64(mem),
            ports,
            ..InstanceNeeds::default()
        }
    }

    #[test]
    fn takes_reserved_first_and_reports_shortfalls() {
        let offered = Resources::parse("cpus:2;cpus(web):1;mem:512;ports:[31000-31002]").unwrap();
        let matched = match_offer(&needs(1.5, 128.0, vec![0, 0]), &offered).unwrap();
        assert_eq!(
            matched.resources.allocatable_to("web").scalar("cpus"),
            Scalar::from_f64(1.5)
        );
        assert_eq!(
            matched.resources.reserved().scalar("cpus"),
            Scalar::from_units(1)
        );
        assert_eq!(matched.host_ports, vec![31000, 31001]);
        assert_eq!(
            match_offer(&needs(4.0, 1.0, vec![]), &offered),
            Err(Mismatch::InsufficientCpus)
        );
        assert_eq!(
            match_offer(&needs(1.0, 1024.0, vec![]), &offered),
            Err(Mismatch::InsufficientMemory)
        );
        assert_eq!(
            match_offer(&needs(0.1, 1.0, vec![0, 0, 0, 0]), &offered),
            Err(Mismatch::InsufficientPorts)
        );
    }

    #[test]
    fn fixed_ports_must_be_offered_and_dynamic_ones_avoid_them() {
        let offered = Resources::parse("cpus:1;mem:64;ports:[31000-31001, 8080-8080]").unwrap();
        let matched = match_offer(&needs(0.1, 8.0, vec![0, 8080, 0]), &offered).unwrap();
        assert_eq!(matched.host_ports, vec![31000, 8080, 31001]);
        assert_eq!(
            match_offer(&needs(0.1, 8.0, vec![9090]), &offered),
            Err(Mismatch::InsufficientPorts)
        );
        assert_eq!(
            match_offer(&needs(0.1, 8.0, vec![8080, 8080]), &offered),
            Err(Mismatch::InsufficientPorts)
        );
    }

    proptest! {
        /// Whatever is matched is contained in the offer, has exactly the scalars asked for, and
        /// has one distinct offered port per port definition.
        #[test]
        fn matches_are_exact_and_within_the_offer(cpus in 0u32..4000, mem in 0u32..5000, dynamic in 0usize..6, offered_cpus in 0u32..4000, reserved_cpus in 0u32..2000, width in 0u64..8) {
            let offered = Resources::parse(&format!(
                "cpus:{};cpus(web):{};mem:4096;ports:[31000-{}]",
                f64::from(offered_cpus) / 1000.0, f64::from(reserved_cpus) / 1000.0, 31000 + width
            )).unwrap();
            let wanted = needs(f64::from(cpus) / 1000.0, f64::from(mem), vec![0; dynamic]);
            match match_offer(&wanted, &offered) {
                Ok(matched) => {
                    prop_assert!(offered.contains(&matched.resources));
                    prop_assert_eq!(matched.resources.scalar("cpus"), wanted.cpus);
                    prop_assert_eq!(matched.resources.scalar("mem"), wanted.mem);
                    let distinct: BTreeSet<u64> = matched.host_ports.iter().copied().collect();
                    prop_assert_eq!(distinct.len(), dynamic);
                }
                Err(Mismatch::InsufficientCpus) => prop_assert!(offered.scalar("cpus") < wanted.cpus),
                Err(Mismatch::InsufficientMemory) => prop_assert!(offered.scalar("mem") < wanted.mem),
                Err(Mismatch::InsufficientPorts) => prop_assert!(dynamic as u64 > width + 1),
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
