//! The dependency graph of jobs: a dependent job names its parents, and runs once every parent
//! has succeeded since it last ran (Chronos' rule). The graph must have no cycle and no unknown
//! parent. Which parents have succeeded since each child's last run is state the scheduler
//! persists ([`Readiness`]), so a restart loses no progress towards a child's run.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ScheduleError;

/// Checks a whole graph (job → its parents): every parent exists, a job is not its own parent,
/// and there is no cycle. The error names the job and the way round the cycle.
pub fn check(parents: &BTreeMap<String, Vec<String>>) -> Result<(), ScheduleError> {
    for (job, own) in parents {
        for parent in own {
            if !parents.contains_key(parent) {
                return Err(ScheduleError::UnknownParent {
                    job: job.clone(),
                    parent: parent.clone(),
                });
            }
        }
    }
    // Depth-first search with colours; the stack gives the cycle's path.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        Unseen,
        Open,
        Done,
    }
    let mut colour: BTreeMap<&str, Colour> = parents
        .keys()
        .map(|k| (k.as_str(), Colour::Unseen))
        .collect();
    for root in parents.keys() {
        if colour[root.as_str()] != Colour::Unseen {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(root.as_str(), 0)];
        colour.insert(root.as_str(), Colour::Open);
        while let Some((job, index)) = stack.pop() {
            let own = &parents[job];
            if index < own.len() {
                stack.push((job, index + 1));
                let parent = own[index].as_str();
                match colour[parent] {
                    Colour::Open => {
                        let start = stack.iter().position(|(j, _)| *j == parent).unwrap_or(0);
                        let mut path: Vec<String> = stack[start..]
                            .iter()
                            .map(|(j, _)| (*j).to_owned())
                            .collect();
                        path.push(parent.to_owned());
                        return Err(ScheduleError::Cycle(path));
                    }
                    Colour::Unseen => {
                        colour.insert(parent, Colour::Open);
                        stack.push((parent, 0));
                    }
                    Colour::Done => {}
                }
            } else {
                colour.insert(job, Colour::Done);
            }
        }
    }
    Ok(())
}

/// The jobs that name `parent` among their parents.
pub fn children<'a>(
    parents: &'a BTreeMap<String, Vec<String>>,
    parent: &'a str,
) -> impl Iterator<Item = &'a String> + 'a {
    parents
        .iter()
        .filter(move |(_, own)| own.iter().any(|p| p == parent))
        .map(|(job, _)| job)
}

/// For each dependent job, the parents that have succeeded since it last ran.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    succeeded: BTreeMap<String, BTreeSet<String>>,
}

impl Readiness {
    /// `parent` succeeded: returns the children now ready to run (each has had every parent
    /// succeed since its last run), and starts counting afresh for them.
    pub fn parent_succeeded(
        &mut self,
        parents: &BTreeMap<String, Vec<String>>,
        parent: &str,
    ) -> Vec<String> {
        let mut ready = Vec::new();
        for child in children(parents, parent) {
            let seen = self.succeeded.entry(child.clone()).or_default();
            seen.insert(parent.to_owned());
            if parents[child].iter().all(|p| seen.contains(p)) {
                seen.clear();
                ready.push(child.clone());
            }
        }
        self.succeeded.retain(|_, seen| !seen.is_empty());
        ready
    }

    /// The parents that have succeeded since `child` last ran.
    pub fn waiting_on(&self, child: &str) -> Option<&BTreeSet<String>> {
        self.succeeded.get(child)
    }

    /// A job's parents changed or it was removed: what it had seen of parents no longer its
    /// own is forgotten (and a removed job forgets everything).
    pub fn job_changed(&mut self, parents: &BTreeMap<String, Vec<String>>, job: &str) {
        match parents.get(job) {
            Some(own) => {
                if let Some(seen) = self.succeeded.get_mut(job) {
                    seen.retain(|p| own.contains(p));
                }
            }
            None => {
                self.succeeded.remove(job);
            }
        }
        for seen in self.succeeded.values_mut() {
            if !parents.contains_key(job) {
                seen.remove(job);
            }
        }
        self.succeeded.retain(|_, seen| !seen.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        edges
            .iter()
            .map(|(job, parents)| {
                (
                    (*job).to_owned(),
                    parents.iter().map(|p| (*p).to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn unknown_parents_and_cycles_are_refused() {
        assert!(check(&graph(&[("a", &[]), ("b", &["a"]), ("c", &["a", "b"])])).is_ok());
        assert!(matches!(
            check(&graph(&[("a", &[]), ("b", &["x"])])),
            Err(ScheduleError::UnknownParent { job, parent }) if job == "b" && parent == "x"
        ));
        let Err(ScheduleError::Cycle(path)) = check(&graph(&[
            ("a", &["c"]),
            ("b", &["a"]),
            ("c", &["b"]),
            ("d", &[]),
        ])) else {
            panic!("a cycle was accepted");
        };
        assert_eq!(path.first(), path.last());
        assert_eq!(path.len(), 4, "{path:?}");
        assert!(matches!(
            check(&graph(&[("a", &["a"])])),
            Err(ScheduleError::Cycle(_))
        ));
    }

    #[test]
    fn a_child_runs_once_every_parent_has_succeeded_since_its_last_run() {
        let g = graph(&[("a", &[]), ("b", &[]), ("c", &["a", "b"]), ("d", &["c"])]);
        let mut r = Readiness::default();
        assert!(r.parent_succeeded(&g, "a").is_empty());
        assert!(
            r.parent_succeeded(&g, "a").is_empty(),
            "a twice is still not b"
        );
        assert_eq!(r.parent_succeeded(&g, "b"), vec!["c".to_owned()]);
        assert_eq!(r.waiting_on("c"), None, "counting starts afresh");
        assert!(r.parent_succeeded(&g, "b").is_empty());
        assert_eq!(r.parent_succeeded(&g, "c"), vec!["d".to_owned()]);
    }

    #[test]
    fn changed_parents_forget_what_no_longer_counts() {
        let mut g = graph(&[("a", &[]), ("b", &[]), ("c", &["a", "b"])]);
        let mut r = Readiness::default();
        r.parent_succeeded(&g, "a");
        g.insert("c".into(), vec!["b".into()]);
        r.job_changed(&g, "c");
        assert_eq!(r.waiting_on("c"), None);
        assert_eq!(r.parent_succeeded(&g, "b"), vec!["c".to_owned()]);
    }

    proptest! {
        /// Graphs whose edges only go from later to earlier jobs have no cycle; adding the
        /// reverse of any existing path's edge makes one, and `check` finds both.
        #[test]
        fn acyclic_graphs_pass_and_a_back_edge_fails(
            edges in prop::collection::vec((0usize..8, 0usize..8), 0..20),
            back in 0usize..20,
        ) {
            let mut parents: BTreeMap<String, Vec<String>> =
                (0..8).map(|i| (format!("j{i}"), Vec::new())).collect();
            let mut forward = Vec::new();
            for (a, b) in edges {
                if a > b {
                    parents.get_mut(&format!("j{a}")).expect("job").push(format!("j{b}"));
                    forward.push((a, b));
                }
            }
            prop_assert!(check(&parents).is_ok());
            if !forward.is_empty() {
                let (a, b) = forward[back % forward.len()];
                parents.get_mut(&format!("j{b}")).expect("job").push(format!("j{a}"));
                prop_assert!(matches!(check(&parents), Err(ScheduleError::Cycle(_))));
            }
        }
    }
}
