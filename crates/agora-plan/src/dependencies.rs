//! Ordering a deployment by dependencies, as Marathon does: every app gets a level (the longest
//! chain of dependencies below it, over the whole graph, so an unchanged app in between still
//! orders the changed ones around it), and the changed apps are deployed level by level. A
//! dependency on a group means every app in it; callers resolve that into app edges first.

use std::collections::{BTreeMap, BTreeSet};

/// `app → the apps it depends on`.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// A cycle, as the apps on it in order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Dependency graph has cyclic dependencies: {}", .0.join(" -> "))]
pub struct Cycle(pub Vec<String>);

/// Levels of every node in `graph` (0: depends on nothing). Edges to nodes missing from the
/// graph's keys are ignored (a dependency on an app that does not exist yet).
pub fn levels(graph: &Graph) -> Result<BTreeMap<String, usize>, Cycle> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done(usize),
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    // Iterative depth-first search: deep chains must not overflow the stack.
    for root in graph.keys() {
        if marks.contains_key(root.as_str()) {
            continue;
        }
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(root.as_str(), children(graph, root))];
        let mut path: Vec<&str> = vec![root.as_str()];
        marks.insert(root.as_str(), Mark::Visiting);
        while let Some((node, pending)) = stack.last_mut() {
            let node = *node;
            match pending.pop() {
                Some(next) => match marks.get(next) {
                    Some(Mark::Done(_)) => {}
                    Some(Mark::Visiting) => {
                        let start = path.iter().position(|n| *n == next).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            path[start..].iter().map(|n| (*n).to_owned()).collect();
                        cycle.push(next.to_owned());
                        return Err(Cycle(cycle));
                    }
                    None => {
                        marks.insert(next, Mark::Visiting);
                        path.push(next);
                        stack.push((next, children(graph, next)));
                    }
                },
                None => {
                    let level = graph
                        .get(node)
                        .into_iter()
                        .flatten()
                        .filter_map(|d| match marks.get(d.as_str()) {
                            Some(Mark::Done(level)) => Some(level + 1),
                            _ => None,
                        })
                        .max()
                        .unwrap_or(0);
                    marks.insert(node, Mark::Done(level));
                    stack.pop();
                    path.pop();
                }
            }
        }
    }
    Ok(marks
        .into_iter()
        .filter_map(|(node, mark)| match mark {
            Mark::Done(level) => Some((node.to_owned(), level)),
            Mark::Visiting => None,
        })
        .collect())
}

fn children<'a>(graph: &'a Graph, node: &str) -> Vec<&'a str> {
    graph
        .get(node)
        .into_iter()
        .flatten()
        .filter(|d| graph.contains_key(d.as_str()))
        .map(String::as_str)
        .collect()
}

/// The changed apps in deployment steps: dependencies first. With `reverse` (stopping apps),
/// dependants first.
pub fn steps(
    graph: &Graph,
    changed: &BTreeSet<String>,
    reverse: bool,
) -> Result<Vec<Vec<String>>, Cycle> {
    let levels = levels(graph)?;
    let mut by_level: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for app in changed {
        let level = levels.get(app).copied().unwrap_or(0);
        by_level.entry(level).or_default().push(app.clone());
    }
    let mut steps: Vec<Vec<String>> = by_level.into_values().collect();
    if reverse {
        steps.reverse();
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        edges
            .iter()
            .map(|(node, deps)| {
                (
                    (*node).to_owned(),
                    deps.iter().map(|d| (*d).to_owned()).collect(),
                )
            })
            .collect()
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|i| (*i).to_owned()).collect()
    }

    #[test]
    fn dependencies_deploy_first_even_through_unchanged_apps() {
        // web → api → db; only web and db change: db goes first, web after.
        let g = graph(&[("/web", &["/api"]), ("/api", &["/db"]), ("/db", &[])]);
        assert_eq!(
            steps(&g, &set(&["/web", "/db"]), false),
            Ok(vec![vec!["/db".to_owned()], vec!["/web".to_owned()]])
        );
        assert_eq!(
            steps(&g, &set(&["/web", "/db"]), true),
            Ok(vec![vec!["/web".to_owned()], vec!["/db".to_owned()]])
        );
        // Independent apps share a step.
        let g = graph(&[("/a", &[]), ("/b", &["/missing"])]);
        assert_eq!(
            steps(&g, &set(&["/a", "/b"]), false),
            Ok(vec![vec!["/a".to_owned(), "/b".to_owned()]])
        );
    }

    #[test]
    fn cycles_are_named() {
        let g = graph(&[("/a", &["/b"]), ("/b", &["/c"]), ("/c", &["/a"])]);
        let cycle = levels(&g).unwrap_err();
        assert_eq!(cycle.0.first(), cycle.0.last());
        assert_eq!(cycle.0.len(), 4);
        assert!(cycle.to_string().contains("cyclic"));
        assert!(levels(&graph(&[("/a", &["/a"])])).is_err());
    }

    fn reaches(g: &Graph, from: &str, to: &str) -> bool {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(node) = todo.pop() {
            for dep in g.get(&node).into_iter().flatten() {
                if dep == to {
                    return true;
                }
                if seen.insert(dep.clone()) {
                    todo.push(dep.clone());
                }
            }
        }
        false
    }

    proptest! {
        /// In any acyclic graph, every changed app is deployed after everything it depends on,
        /// directly or through other apps, and each changed app is in exactly one step.
        #[test]
        fn steps_respect_every_dependency(
            n in 1usize..12,
            edges in prop::collection::vec((0usize..12, 0usize..12), 0..30),
            changed in prop::collection::vec(any::<bool>(), 12),
        ) {
            let name = |i: usize| format!("/app{i}");
            let mut g: Graph = (0..n).map(|i| (name(i), BTreeSet::new())).collect();
            for (a, b) in edges {
                // Only edges to lower numbers: acyclic by construction.
                if a < n && b < a {
                    g.entry(name(a)).or_default().insert(name(b));
                }
            }
            let changed: BTreeSet<String> =
                (0..n).filter(|i| changed[*i]).map(name).collect();
            let steps = steps(&g, &changed, false).unwrap();
            let position = |app: &str| steps.iter().position(|s| s.iter().any(|a| a == app));
            let total: usize = steps.iter().map(Vec::len).sum();
            prop_assert_eq!(total, changed.len());
            for a in &changed {
                for b in &changed {
                    if reaches(&g, a, b) {
                        prop_assert!(position(a) > position(b), "{} must follow {}", a, b);
                    }
                }
            }
        }

        /// A graph with a back edge somewhere is always refused.
        #[test]
        fn any_cycle_is_found(n in 2usize..10, back in 0usize..10) {
            let name = |i: usize| format!("/app{i}");
            let mut g: Graph = (0..n).map(|i| (name(i), BTreeSet::new())).collect();
            for i in 1..n {
                g.entry(name(i)).or_default().insert(name(i - 1));
            }
            let from = back % n;
            g.entry(name(0)).or_default().insert(name(from));
            prop_assert!(levels(&g).is_err());
        }
    }
}
