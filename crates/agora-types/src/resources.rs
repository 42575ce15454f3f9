//! Resources as Mesos models them: named scalars, ranges and sets, each possibly reserved for a
//! role. Scalars are fixed-point with three decimals (as Mesos rounds them) so that adding and
//! subtracting thousands of task allocations never drifts.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};

/// The role of unreserved resources.
pub const DEFAULT_ROLE: &str = "*";

/// A scalar quantity in thousandths (`1.5` cpus is `Scalar(1500)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scalar(i64);

impl Scalar {
    pub const ZERO: Scalar = Scalar(0);

    /// Rounds to the nearest thousandth, as Mesos does on input.
    pub fn from_f64(value: f64) -> Scalar {
        if !value.is_finite() {
            return Scalar(0);
        }
        Scalar((value * 1000.0).round() as i64)
    }

    pub const fn from_milli(milli: i64) -> Scalar {
        Scalar(milli)
    }

    pub const fn from_units(units: i64) -> Scalar {
        Scalar(units * 1000)
    }

    pub const fn milli(self) -> i64 {
        self.0
    }

    pub fn to_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub fn min(self, other: Scalar) -> Scalar {
        Scalar(self.0.min(other.0))
    }

    pub fn max(self, other: Scalar) -> Scalar {
        Scalar(self.0.max(other.0))
    }
}

impl Add for Scalar {
    type Output = Scalar;
    fn add(self, rhs: Scalar) -> Scalar {
        Scalar(self.0.saturating_add(rhs.0))
    }
}

impl Sub for Scalar {
    type Output = Scalar;
    fn sub(self, rhs: Scalar) -> Scalar {
        Scalar(self.0.saturating_sub(rhs.0))
    }
}

impl AddAssign for Scalar {
    fn add_assign(&mut self, rhs: Scalar) {
        *self = *self + rhs;
    }
}

impl SubAssign for Scalar {
    fn sub_assign(&mut self, rhs: Scalar) {
        *self = *self - rhs;
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (whole, frac) = (abs / 1000, abs % 1000);
        if frac == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let digits = format!("{frac:03}");
            write!(f, "{sign}{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

/// An inclusive range of integers, `[begin-end]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Range {
    pub begin: u64,
    pub end: u64,
}

impl Range {
    pub fn new(begin: u64, end: u64) -> Range {
        Range {
            begin: begin.min(end),
            end: begin.max(end),
        }
    }

    pub fn len(self) -> u64 {
        self.end - self.begin + 1
    }

    pub fn is_empty(self) -> bool {
        false
    }
}

/// The value of one resource entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ResourceValue {
    Scalar(Scalar),
    /// Sorted, merged, non-overlapping, non-adjacent ranges.
    Ranges(Vec<Range>),
    Set(BTreeSet<String>),
}

impl ResourceValue {
    /// Normalises ranges so equal values compare equal.
    pub fn ranges(ranges: impl IntoIterator<Item = Range>) -> ResourceValue {
        ResourceValue::Ranges(normalize_ranges(ranges.into_iter().collect()))
    }

    pub fn is_empty(&self) -> bool {
        match self {
            ResourceValue::Scalar(value) => !value.is_positive(),
            ResourceValue::Ranges(ranges) => ranges.is_empty(),
            ResourceValue::Set(items) => items.is_empty(),
        }
    }

    fn same_kind(&self, other: &ResourceValue) -> bool {
        matches!(
            (self, other),
            (ResourceValue::Scalar(_), ResourceValue::Scalar(_))
                | (ResourceValue::Ranges(_), ResourceValue::Ranges(_))
                | (ResourceValue::Set(_), ResourceValue::Set(_))
        )
    }

    fn contains(&self, other: &ResourceValue) -> bool {
        match (self, other) {
            (ResourceValue::Scalar(a), ResourceValue::Scalar(b)) => a >= b,
            (ResourceValue::Ranges(a), ResourceValue::Ranges(b)) => ranges_contain(a, b),
            (ResourceValue::Set(a), ResourceValue::Set(b)) => b.is_subset(a),
            _ => false,
        }
    }

    fn add(&mut self, other: &ResourceValue) {
        match (self, other) {
            (ResourceValue::Scalar(a), ResourceValue::Scalar(b)) => *a += *b,
            (ResourceValue::Ranges(a), ResourceValue::Ranges(b)) => {
                let mut all = std::mem::take(a);
                all.extend_from_slice(b);
                *a = normalize_ranges(all);
            }
            (ResourceValue::Set(a), ResourceValue::Set(b)) => a.extend(b.iter().cloned()),
            _ => {}
        }
    }

    /// Removes what `other` has in common with `self` (clamped at empty).
    fn subtract(&mut self, other: &ResourceValue) {
        match (self, other) {
            (ResourceValue::Scalar(a), ResourceValue::Scalar(b)) => {
                *a = (*a - *b).max(Scalar::ZERO)
            }
            (ResourceValue::Ranges(a), ResourceValue::Ranges(b)) => *a = subtract_ranges(a, b),
            (ResourceValue::Set(a), ResourceValue::Set(b)) => a.retain(|item| !b.contains(item)),
            _ => {}
        }
    }
}

fn normalize_ranges(mut ranges: Vec<Range>) -> Vec<Range> {
    ranges.sort();
    let mut merged: Vec<Range> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.begin <= last.end.saturating_add(1) => {
                last.end = last.end.max(range.end);
            }
            _ => merged.push(range),
        }
    }
    merged
}

fn ranges_contain(outer: &[Range], inner: &[Range]) -> bool {
    inner.iter().all(|needle| {
        outer
            .iter()
            .any(|hay| hay.begin <= needle.begin && needle.end <= hay.end)
    })
}

fn subtract_ranges(from: &[Range], remove: &[Range]) -> Vec<Range> {
    let mut result = Vec::with_capacity(from.len());
    for range in from {
        let mut pieces = vec![*range];
        for cut in remove {
            let mut next = Vec::with_capacity(pieces.len() + 1);
            for piece in pieces {
                if cut.end < piece.begin || cut.begin > piece.end {
                    next.push(piece);
                    continue;
                }
                if cut.begin > piece.begin {
                    next.push(Range::new(piece.begin, cut.begin - 1));
                }
                if cut.end < piece.end {
                    next.push(Range::new(cut.end + 1, piece.end));
                }
            }
            pieces = next;
        }
        result.extend(pieces);
    }
    normalize_ranges(result)
}

/// Whether a reservation was made by the agent's configuration or by an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReservationKind {
    Static,
    Dynamic,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reservation {
    pub role: String,
    pub kind: ReservationKind,
    pub principal: Option<String>,
}

impl Reservation {
    pub fn static_for(role: impl Into<String>) -> Reservation {
        Reservation {
            role: role.into(),
            kind: ReservationKind::Static,
            principal: None,
        }
    }
}

/// One named resource entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Resource {
    pub name: String,
    pub value: ResourceValue,
    /// `None` means unreserved (role `*`). Boxed: most resources are unreserved, and a
    /// master keeps some for each of 100,000 tasks (an entry is 64 bytes so, 112 inline).
    pub reservation: Option<Box<Reservation>>,
}

impl Resource {
    pub fn scalar(name: impl Into<String>, value: f64) -> Resource {
        Resource {
            name: name.into(),
            value: ResourceValue::Scalar(Scalar::from_f64(value)),
            reservation: None,
        }
    }

    pub fn ranges(name: impl Into<String>, ranges: impl IntoIterator<Item = Range>) -> Resource {
        Resource {
            name: name.into(),
            value: ResourceValue::ranges(ranges),
            reservation: None,
        }
    }

    pub fn set(name: impl Into<String>, items: impl IntoIterator<Item = String>) -> Resource {
        Resource {
            name: name.into(),
            value: ResourceValue::Set(items.into_iter().collect()),
            reservation: None,
        }
    }

    pub fn reserved_for(mut self, role: impl Into<String>) -> Resource {
        let role = role.into();
        self.reservation = (role != DEFAULT_ROLE).then(|| Box::new(Reservation::static_for(role)));
        self
    }

    /// The role the entry is reserved for, `*` when unreserved.
    pub fn role(&self) -> &str {
        self.reservation
            .as_ref()
            .map_or(DEFAULT_ROLE, |r| r.role.as_str())
    }

    fn mergeable_with(&self, other: &Resource) -> bool {
        self.name == other.name
            && self.reservation == other.reservation
            && self.value.same_kind(&other.value)
    }
}

/// A bag of resources. Invariant: at most one entry per (name, reservation, value kind), and no
/// empty entries, so equality is structural.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    entries: Vec<Resource>,
}

impl Resources {
    pub fn new() -> Resources {
        Resources::default()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Resource> {
        self.entries.iter()
    }

    /// Gives back the room kept for entries to come: for resources held for long, many of
    /// them (each task's, in a master).
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
    }

    pub fn push(&mut self, resource: Resource) {
        if resource.value.is_empty() {
            return;
        }
        match self
            .entries
            .iter_mut()
            .find(|entry| entry.mergeable_with(&resource))
        {
            Some(entry) => entry.value.add(&resource.value),
            None => self.entries.push(resource),
        }
    }

    /// Whether every entry of `other` fits in a matching entry of `self`.
    pub fn contains(&self, other: &Resources) -> bool {
        other.entries.iter().all(|wanted| {
            self.entries
                .iter()
                .any(|have| have.mergeable_with(wanted) && have.value.contains(&wanted.value))
        })
    }

    /// `self - other` when `other` is contained, else `None`.
    pub fn checked_sub(&self, other: &Resources) -> Option<Resources> {
        if !self.contains(other) {
            return None;
        }
        let mut result = self.clone();
        result.subtract(other);
        Some(result)
    }

    /// Removes from `self` what it shares with `other` (entries clamp at empty).
    pub fn subtract(&mut self, other: &Resources) {
        for removed in &other.entries {
            if let Some(entry) = self
                .entries
                .iter_mut()
                .find(|entry| entry.mergeable_with(removed))
            {
                entry.value.subtract(&removed.value);
            }
        }
        self.entries.retain(|entry| !entry.value.is_empty());
    }

    /// The total of a scalar resource across all reservations.
    pub fn scalar(&self, name: &str) -> Scalar {
        self.entries
            .iter()
            .filter(|entry| entry.name == name)
            .map(|entry| match entry.value {
                ResourceValue::Scalar(value) => value,
                _ => Scalar::ZERO,
            })
            .fold(Scalar::ZERO, |sum, value| sum + value)
    }

    /// All ranges of a named resource across reservations, normalised.
    pub fn ranges(&self, name: &str) -> Vec<Range> {
        let all = self
            .entries
            .iter()
            .filter(|entry| entry.name == name)
            .filter_map(|entry| match &entry.value {
                ResourceValue::Ranges(ranges) => Some(ranges.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect();
        normalize_ranges(all)
    }

    /// Names of all scalar resources present.
    pub fn scalar_names(&self) -> BTreeSet<&str> {
        self.entries
            .iter()
            .filter(|entry| matches!(entry.value, ResourceValue::Scalar(_)))
            .map(|entry| entry.name.as_str())
            .collect()
    }

    /// The entries a framework in `role` may use: unreserved ones and those reserved for `role`.
    pub fn allocatable_to(&self, role: &str) -> Resources {
        self.filter(|entry| entry.reservation.is_none() || entry.role() == role)
    }

    pub fn unreserved(&self) -> Resources {
        self.filter(|entry| entry.reservation.is_none())
    }

    pub fn reserved(&self) -> Resources {
        self.filter(|entry| entry.reservation.is_some())
    }

    pub fn filter(&self, keep: impl Fn(&Resource) -> bool) -> Resources {
        Resources {
            entries: self
                .entries
                .iter()
                .filter(|entry| keep(entry))
                .cloned()
                .collect(),
        }
    }

    /// Keeps only the given scalar amount of `name`, taking unreserved last (reserved resources
    /// are cheaper to hand out: nobody else can use them).
    pub fn without_entries_named(&self, name: &str) -> Resources {
        self.filter(|entry| entry.name != name)
    }

    /// Parses the Mesos `--resources` syntax: `cpus:4;mem:8192;ports:[31000-32000];cpus(web):2;
    /// zones:{a,b}`. Entries without a role are unreserved; with a role they are statically
    /// reserved.
    pub fn parse(text: &str) -> Result<Resources, ParseResourcesError> {
        let mut resources = Resources::new();
        for part in text
            .split(';')
            .map(str::trim)
            .filter(|part| !part.is_empty())
        {
            let (key, value) = part
                .split_once(':')
                .ok_or_else(|| ParseResourcesError::new(part, "expected name:value"))?;
            let key = key.trim();
            let (name, role) = match key.split_once('(') {
                Some((name, rest)) => {
                    let role = rest
                        .strip_suffix(')')
                        .ok_or_else(|| ParseResourcesError::new(part, "unclosed role"))?;
                    (name.trim(), role.trim())
                }
                None => (key, DEFAULT_ROLE),
            };
            if name.is_empty() || role.is_empty() {
                return Err(ParseResourcesError::new(part, "empty name or role"));
            }
            let value =
                parse_value(value.trim()).map_err(|why| ParseResourcesError::new(part, why))?;
            resources.push(
                Resource {
                    name: name.to_owned(),
                    value,
                    reservation: None,
                }
                .reserved_for(role),
            );
        }
        Ok(resources)
    }
}

fn parse_value(text: &str) -> Result<ResourceValue, &'static str> {
    if let Some(inner) = text.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("unclosed range list")?;
        let mut ranges = Vec::new();
        for piece in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (begin, end) = piece.split_once('-').ok_or("range must be begin-end")?;
            let begin: u64 = begin
                .trim()
                .parse()
                .map_err(|_| "range bound is not a number")?;
            let end: u64 = end
                .trim()
                .parse()
                .map_err(|_| "range bound is not a number")?;
            if begin > end {
                return Err("range begin is after its end");
            }
            ranges.push(Range::new(begin, end));
        }
        return Ok(ResourceValue::ranges(ranges));
    }
    if let Some(inner) = text.strip_prefix('{') {
        let inner = inner.strip_suffix('}').ok_or("unclosed set")?;
        let items = inner.split(',').map(str::trim).filter(|p| !p.is_empty());
        return Ok(ResourceValue::Set(items.map(str::to_owned).collect()));
    }
    let number: f64 = text
        .parse()
        .map_err(|_| "value is not a number, range list or set")?;
    if !number.is_finite() || number < 0.0 {
        return Err("scalar must be a finite non-negative number");
    }
    Ok(ResourceValue::Scalar(Scalar::from_f64(number)))
}

impl fmt::Display for Resources {
    /// The Mesos text form, e.g. `cpus:4; mem:1024; ports:[31000-32000]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, entry) in self.entries.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            f.write_str(&entry.name)?;
            if let Some(reservation) = &entry.reservation {
                write!(f, "({})", reservation.role)?;
            }
            f.write_str(":")?;
            match &entry.value {
                ResourceValue::Scalar(value) => write!(f, "{value}")?,
                ResourceValue::Ranges(ranges) => {
                    let parts: Vec<String> = ranges
                        .iter()
                        .map(|r| format!("{}-{}", r.begin, r.end))
                        .collect();
                    write!(f, "[{}]", parts.join(", "))?;
                }
                ResourceValue::Set(items) => {
                    let parts: Vec<&str> = items.iter().map(String::as_str).collect();
                    write!(f, "{{{}}}", parts.join(", "))?;
                }
            }
        }
        Ok(())
    }
}

impl FromIterator<Resource> for Resources {
    fn from_iter<I: IntoIterator<Item = Resource>>(iter: I) -> Resources {
        let mut resources = Resources::new();
        for resource in iter {
            resources.push(resource);
        }
        resources
    }
}

impl AddAssign<&Resources> for Resources {
    /// As [`Resources::push`] of each entry, but an entry is copied only when it has no
    /// match here: summing the resources of 100,000 tasks allocates nothing for their names.
    fn add_assign(&mut self, rhs: &Resources) {
        for resource in rhs.entries.iter().filter(|r| !r.value.is_empty()) {
            match self
                .entries
                .iter_mut()
                .find(|entry| entry.mergeable_with(resource))
            {
                Some(entry) => entry.value.add(&resource.value),
                None => self.entries.push(resource.clone()),
            }
        }
    }
}

impl SubAssign<&Resources> for Resources {
    fn sub_assign(&mut self, rhs: &Resources) {
        self.subtract(rhs);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid resource '{entry}': {reason}")]
pub struct ParseResourcesError {
    pub entry: String,
    pub reason: &'static str,
}

impl ParseResourcesError {
    fn new(entry: &str, reason: &'static str) -> ParseResourcesError {
        ParseResourcesError {
            entry: entry.to_owned(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_mesos_syntax() {
        let resources = Resources::parse(
            "cpus:4;mem:8192;ports:[31000-32000, 5000-5001];cpus(analytics):2;zones:{a,b}",
        )
        .unwrap();
        assert_eq!(resources.scalar("cpus"), Scalar::from_units(6));
        assert_eq!(
            resources.allocatable_to("web").scalar("cpus"),
            Scalar::from_units(4)
        );
        assert_eq!(
            resources.allocatable_to("analytics").scalar("cpus"),
            Scalar::from_units(6)
        );
        assert_eq!(
            resources.ranges("ports"),
            vec![Range::new(5000, 5001), Range::new(31000, 32000)]
        );
        assert_eq!(
            resources.to_string(),
            "cpus:4; mem:8192; ports:[5000-5001, 31000-32000]; cpus(analytics):2; zones:{a, b}"
        );
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "cpus",
            "cpus:x",
            "ports:[5-",
            "ports:[9-1]",
            "cpus(:1",
            "cpus:-1",
            ":3",
        ] {
            assert!(Resources::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn scalars_do_not_drift() {
        let mut total = Resources::new();
        for _ in 0..10_000 {
            total.push(Resource::scalar("cpus", 0.1));
        }
        assert_eq!(total.scalar("cpus"), Scalar::from_units(1000));
        assert_eq!(Scalar::from_f64(0.1 + 0.2).to_string(), "0.3");
    }

    #[test]
    fn subtracting_ranges_splits_them() {
        let have: Resources = [Resource::ranges("ports", [Range::new(31000, 31010)])]
            .into_iter()
            .collect();
        let take: Resources = [Resource::ranges("ports", [Range::new(31005, 31005)])]
            .into_iter()
            .collect();
        let left = have.checked_sub(&take).unwrap();
        assert_eq!(
            left.ranges("ports"),
            vec![Range::new(31000, 31004), Range::new(31006, 31010)]
        );
        assert!(left.checked_sub(&take).is_none());
    }

    fn arb_resources() -> impl Strategy<Value = Resources> {
        let scalar = (
            prop::sample::select(vec!["cpus", "mem", "disk"]),
            0i64..100_000,
            prop::option::of("[ab]"),
        )
            .prop_map(|(name, milli, role)| Resource {
                name: name.into(),
                value: ResourceValue::Scalar(Scalar::from_milli(milli)),
                reservation: role.map(|role| Box::new(Reservation::static_for(role))),
            });
        let ranges = prop::collection::vec((0u64..500, 0u64..20), 0..4).prop_map(|spans| {
            Resource::ranges(
                "ports",
                spans.into_iter().map(|(b, len)| Range::new(b, b + len)),
            )
        });
        let set = prop::collection::btree_set("[a-d]", 0..4)
            .prop_map(|items| Resource::set("zones", items));
        prop::collection::vec(prop_oneof![scalar, ranges, set], 0..8)
            .prop_map(|entries| entries.into_iter().collect())
    }

    proptest! {
        #[test]
        fn add_then_subtract_is_identity(a in arb_resources(), b in arb_resources()) {
            let mut sum = a.clone();
            sum += &b;
            prop_assert!(sum.contains(&a));
            prop_assert!(sum.contains(&b));
            let back = sum.checked_sub(&b);
            prop_assert!(back.is_some());
            // Ranges and sets may overlap between a and b, so only scalars are exactly restored.
            let back = back.unwrap_or_default();
            for name in ["cpus", "mem", "disk"] {
                prop_assert_eq!(back.scalar(name), a.scalar(name));
            }
        }

        #[test]
        fn adding_is_pushing_each_entry(a in arb_resources(), b in arb_resources()) {
            let mut added = a.clone();
            added += &b;
            let mut pushed = a;
            for entry in b.iter() {
                pushed.push(entry.clone());
            }
            prop_assert_eq!(added, pushed);
        }

        #[test]
        fn subtraction_never_goes_negative(a in arb_resources(), b in arb_resources()) {
            let mut left = a.clone();
            left -= &b;
            prop_assert!(a.contains(&left));
            for entry in left.iter() {
                prop_assert!(!entry.value.is_empty());
            }
        }

        #[test]
        fn display_parses_back(a in arb_resources()) {
            let text = a.to_string();
            let parsed = Resources::parse(&text);
            prop_assert!(parsed.is_ok(), "{}", text);
            let parsed = parsed.unwrap_or_default();
            prop_assert!(parsed.contains(&a) && a.contains(&parsed), "{} vs {}", a, parsed);
        }

        #[test]
        fn scalar_sums_are_exact(values in prop::collection::vec(0u32..100_000, 0..200)) {
            let mut total = Resources::new();
            for value in &values {
                total.push(Resource::scalar("mem", f64::from(*value) / 1000.0));
            }
            let expected: i64 = values.iter().map(|v| i64::from(*v)).sum();
            prop_assert_eq!(total.scalar("mem").milli(), expected);
        }
    }
}
