//! Marathon placement constraints: `[field, OPERATOR, value?]` with the operators UNIQUE,
//! CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER and IS, on `hostname` or an agent attribute.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

/// What a constraint can see of an agent: its hostname and attributes as text (`rack` → `a`,
/// scalars printed as Mesos prints them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentFacts {
    pub hostname: String,
    pub attributes: BTreeMap<String, String>,
}

impl AgentFacts {
    /// The value of a constraint field: `hostname` (or `@hostname`) or an attribute.
    pub fn field(&self, field: &str) -> Option<&str> {
        match field {
            "hostname" | "@hostname" => Some(self.hostname.as_str()),
            other => self
                .attributes
                .get(other.trim_start_matches('@'))
                .map(String::as_str),
        }
    }
}

#[derive(Clone, Debug)]
pub enum Operator {
    Unique,
    /// With a value: only agents with it; without: the value of the first placed task.
    Cluster(Option<String>),
    /// Spread evenly; the optional number is how many distinct values to expect.
    GroupBy(Option<usize>),
    Like(Regex),
    Unlike(Regex),
    MaxPer(usize),
    Is(String),
}

#[derive(Clone, Debug)]
pub struct Constraint {
    pub field: String,
    pub operator: Operator,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    #[error("a constraint needs a field and an operator")]
    TooShort,
    #[error(
        "unknown constraint operator '{0}' (use UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER or IS)"
    )]
    UnknownOperator(String),
    #[error("{0} needs a value")]
    MissingValue(&'static str),
    #[error("{operator} takes a non-negative integer, got '{value}'")]
    NotANumber {
        operator: &'static str,
        value: String,
    },
    #[error("'{0}' is not a valid regular expression")]
    BadRegex(String),
    #[error("UNIQUE takes no value")]
    UnexpectedValue,
}

impl Constraint {
    /// Parses the JSON array form, `["hostname", "UNIQUE"]` or `["rack", "GROUP_BY", "3"]`.
    pub fn parse(parts: &[String]) -> Result<Constraint, ConstraintError> {
        let (field, operator) = match parts {
            [field, operator, ..] if !field.is_empty() => {
                (field.clone(), operator.to_ascii_uppercase())
            }
            _ => return Err(ConstraintError::TooShort),
        };
        let value = parts.get(2).filter(|v| !v.is_empty()).cloned();
        let number =
            |name: &'static str, value: Option<String>| -> Result<usize, ConstraintError> {
                let value = value.ok_or(ConstraintError::MissingValue(name))?;
                value
                    .trim()
                    .parse()
                    .map_err(|_| ConstraintError::NotANumber {
                        operator: name,
                        value,
                    })
            };
        // Marathon anchors LIKE/UNLIKE patterns: the whole value must match.
        let regex = |name: &'static str, value: Option<String>| -> Result<Regex, ConstraintError> {
            let value = value.ok_or(ConstraintError::MissingValue(name))?;
            Regex::new(&format!("^(?:{value})$")).map_err(|_| ConstraintError::BadRegex(value))
        };
        let operator = match operator.as_str() {
            "UNIQUE" if value.is_some() => return Err(ConstraintError::UnexpectedValue),
            "UNIQUE" => Operator::Unique,
            "CLUSTER" => Operator::Cluster(value),
            "GROUP_BY" => Operator::GroupBy(match value {
                Some(_) => Some(number("GROUP_BY", value)?),
                None => None,
            }),
            "LIKE" => Operator::Like(regex("LIKE", value)?),
            "UNLIKE" => Operator::Unlike(regex("UNLIKE", value)?),
            "MAX_PER" => Operator::MaxPer(number("MAX_PER", value)?),
            "IS" => Operator::Is(value.ok_or(ConstraintError::MissingValue("IS"))?),
            other => return Err(ConstraintError::UnknownOperator(other.to_owned())),
        };
        Ok(Constraint { field, operator })
    }

    /// Whether a new instance may go to `candidate`, given the agents the app's other
    /// instances already occupy (one entry per instance).
    pub fn allows(&self, candidate: &AgentFacts, placed: &[&AgentFacts]) -> bool {
        let value = candidate.field(&self.field);
        let placed_values = || placed.iter().filter_map(|facts| facts.field(&self.field));
        match &self.operator {
            Operator::Unique => value.is_some_and(|v| placed_values().all(|other| other != v)),
            Operator::Cluster(Some(wanted)) => value == Some(wanted.as_str()),
            Operator::Cluster(None) => match (value, placed_values().next()) {
                (Some(v), Some(first)) => v == first,
                (Some(_), None) => true,
                (None, _) => false,
            },
            Operator::GroupBy(expected) => {
                let Some(value) = value else { return false };
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                for other in placed_values() {
                    *counts.entry(other).or_default() += 1;
                }
                let mine = counts.get(value).copied().unwrap_or(0);
                // Values not seen yet count as empty groups while fewer than expected are known.
                let known: BTreeSet<&str> = counts.keys().copied().collect();
                let unseen_groups =
                    expected.is_some_and(|n| known.len() < n) || !known.contains(value);
                let least = if unseen_groups {
                    0
                } else {
                    counts.values().copied().min().unwrap_or(0)
                };
                mine <= least
            }
            Operator::Like(pattern) => value.is_some_and(|v| pattern.is_match(v)),
            Operator::Unlike(pattern) => value.is_none_or(|v| !pattern.is_match(v)),
            Operator::MaxPer(limit) => {
                value.is_some_and(|v| placed_values().filter(|other| *other == v).count() < *limit)
            }
            Operator::Is(wanted) => value == Some(wanted.as_str()),
        }
    }
}

/// Whether every constraint allows the candidate.
pub fn all_allow(
    constraints: &[Constraint],
    candidate: &AgentFacts,
    placed: &[&AgentFacts],
) -> bool {
    constraints
        .iter()
        .all(|constraint| constraint.allows(candidate, placed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn agent(host: &str, rack: &str) -> AgentFacts {
        AgentFacts {
            hostname: host.into(),
            attributes: [("rack".to_owned(), rack.to_owned())].into(),
        }
    }

    fn constraint(parts: &[&str]) -> Constraint {
        Constraint::parse(&parts.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn parses_and_rejects() {
        assert!(matches!(
            constraint(&["hostname", "unique"]).operator,
            Operator::Unique
        ));
        assert!(matches!(
            constraint(&["rack", "GROUP_BY", "3"]).operator,
            Operator::GroupBy(Some(3))
        ));
        let parse = |parts: &[&str]| {
            Constraint::parse(&parts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(parse(&["rack"]).unwrap_err(), ConstraintError::TooShort);
        assert_eq!(
            parse(&["rack", "NEAR"]).unwrap_err(),
            ConstraintError::UnknownOperator("NEAR".into())
        );
        assert_eq!(
            parse(&["rack", "LIKE"]).unwrap_err(),
            ConstraintError::MissingValue("LIKE")
        );
        assert_eq!(
            parse(&["rack", "LIKE", "("]).unwrap_err(),
            ConstraintError::BadRegex("(".into())
        );
        assert!(matches!(
            parse(&["rack", "MAX_PER", "x"]).unwrap_err(),
            ConstraintError::NotANumber { .. }
        ));
        assert_eq!(
            parse(&["hostname", "UNIQUE", "x"]).unwrap_err(),
            ConstraintError::UnexpectedValue
        );
    }

    #[test]
    fn unique_max_per_and_cluster() {
        let (a, b) = (agent("a", "r1"), agent("b", "r1"));
        let unique = constraint(&["hostname", "UNIQUE"]);
        assert!(unique.allows(&a, &[&b]));
        assert!(!unique.allows(&a, &[&a]));
        let max_per = constraint(&["rack", "MAX_PER", "2"]);
        assert!(max_per.allows(&a, &[&b]));
        assert!(!max_per.allows(&a, &[&a, &b]));
        let pinned = constraint(&["rack", "CLUSTER", "r2"]);
        assert!(!pinned.allows(&a, &[]));
        let first = constraint(&["rack", "CLUSTER"]);
        assert!(first.allows(&a, &[]));
        assert!(!first.allows(&agent("c", "r9"), &[&a]));
    }

    #[test]
    fn like_unlike_and_is() {
        let a = agent("web-1.example", "rack-2");
        assert!(constraint(&["rack", "LIKE", "rack-[1-3]"]).allows(&a, &[]));
        assert!(
            !constraint(&["rack", "LIKE", "rack"]).allows(&a, &[]),
            "patterns are anchored"
        );
        assert!(!constraint(&["hostname", "UNLIKE", "web-.*"]).allows(&a, &[]));
        assert!(
            constraint(&["zone", "UNLIKE", "z1"]).allows(&a, &[]),
            "a missing attribute passes UNLIKE"
        );
        assert!(
            !constraint(&["zone", "LIKE", ".*"]).allows(&a, &[]),
            "and fails LIKE"
        );
        assert!(constraint(&["rack", "IS", "rack-2"]).allows(&a, &[]));
        assert!(!constraint(&["rack", "IS", "rack-20"]).allows(&a, &[]));
    }

    #[test]
    fn group_by_fills_the_emptiest_value() {
        let (r1, r2) = (agent("a", "r1"), agent("b", "r2"));
        let group = constraint(&["rack", "GROUP_BY"]);
        assert!(group.allows(&r2, &[&r1]), "a new value is the emptiest");
        assert!(
            group.allows(&r1, &[&r1]),
            "without a count, the values seen so far are all there is"
        );
        assert!(!group.allows(&r1, &[&r1, &r1, &r2]), "r1 is fuller than r2");
        let expect_two = constraint(&["rack", "GROUP_BY", "2"]);
        assert!(
            !expect_two.allows(&r1, &[&r1]),
            "a second rack is expected to be empty"
        );
        assert!(group.allows(&r1, &[&r1, &r2]));
        let expect_three = constraint(&["rack", "GROUP_BY", "3"]);
        assert!(
            !expect_three.allows(&r1, &[&r1, &r2]),
            "a third rack is still expected to be empty"
        );
    }

    proptest! {
        /// Placing greedily with GROUP_BY over k racks never lets two racks differ by more
        /// than one instance, and MAX_PER never exceeds its limit.
        #[test]
        fn greedy_placement_respects_spread_and_limits(racks in 1usize..5, instances in 0usize..40, limit in 1usize..6, order in prop::collection::vec(0usize..5, 200)) {
            let agents: Vec<AgentFacts> = (0..racks).map(|i| agent(&format!("h{i}"), &format!("r{i}"))).collect();
            let group = constraint(&["rack", "GROUP_BY", &racks.to_string()]);
            let max_per = constraint(&["rack", "MAX_PER", &limit.to_string()]);
            let mut placed: Vec<&AgentFacts> = Vec::new();
            let mut offers = order.iter().map(|i| &agents[i % racks]);
            while placed.len() < instances.min(racks * limit) {
                let Some(candidate) = offers.next() else { break };
                if all_allow(&[group.clone(), max_per.clone()], candidate, &placed) {
                    placed.push(candidate);
                }
            }
            let counts: Vec<usize> = agents.iter().map(|a| placed.iter().filter(|p| p.hostname == a.hostname).count()).collect();
            let (min, max) = (counts.iter().min().copied().unwrap_or(0), counts.iter().max().copied().unwrap_or(0));
            prop_assert!(max - min <= 1, "{:?}", counts);
            prop_assert!(max <= limit);
        }
    }
}
