//! Who leads a group: Mesos' masters join `<path>` as ephemeral sequential znodes named
//! `json.info_<sequence>`, and the one with the lowest sequence leads — the rule Mesos'
//! detectors and pymesos' (`min()` of the children) apply. Pure.

/// The prefix of a master's znode in its group.
pub const MEMBER_PREFIX: &str = "json.info_";

/// A member's sequence, from its znode's name; `None` for a name that is not a member's.
pub fn sequence(name: &str) -> Option<u64> {
    name.strip_prefix(MEMBER_PREFIX)?.parse().ok()
}

/// The leading member's znode name among a group's children, if any member is there.
pub fn leader(children: &[String]) -> Option<&str> {
    children
        .iter()
        .filter_map(|name| sequence(name).map(|seq| (seq, name.as_str())))
        .min()
        .map(|(_, name)| name)
}

/// The members among a group's children.
pub fn members(children: &[String]) -> Vec<&str> {
    children
        .iter()
        .filter(|name| sequence(name).is_some())
        .map(String::as_str)
        .collect()
}

/// Children of a group path that are not members: a path shared with something else.
pub fn strangers(children: &[String]) -> Vec<&str> {
    children
        .iter()
        .filter(|name| sequence(name).is_none())
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_lowest_sequence_leads() {
        let children: Vec<String> = ["json.info_0000000012", "json.info_0000000003", "x"]
            .map(String::from)
            .to_vec();
        assert_eq!(leader(&children), Some("json.info_0000000003"));
        assert_eq!(strangers(&children), ["x"]);
        assert_eq!(leader(&[]), None);
        assert_eq!(sequence("json.info_abc"), None);
    }

    proptest! {
        #[test]
        fn the_leader_is_the_minimum_by_name_as_pymesos_picks_it(
            sequences in proptest::collection::btree_set(0u64..10_000_000_000, 1..20)
        ) {
            // ZooKeeper pads sequences to ten digits: the least name is the least number.
            let children: Vec<String> =
                sequences.iter().map(|s| format!("{MEMBER_PREFIX}{s:010}")).collect();
            let by_name = children.iter().min().map(String::as_str);
            prop_assert_eq!(leader(&children), by_name);
        }
    }
}
