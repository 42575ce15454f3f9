//! Parses stout duration strings (`5secs`, `1.5mins`, `100ms`) as Mesos passes them in the
//! executor environment.

use std::time::Duration;

pub(crate) fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ns" => value / 1e9,
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "secs" => value,
        "mins" => value * 60.0,
        "hrs" => value * 3600.0,
        "days" => value * 86400.0,
        "weeks" => value * 604_800.0,
        _ => return None,
    };
    if !(seconds.is_finite() && seconds >= 0.0) {
        return None;
    }
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stout_units() {
        assert_eq!(parse("5secs"), Some(Duration::from_secs(5)));
        assert_eq!(parse("1.5mins"), Some(Duration::from_secs(90)));
        assert_eq!(parse("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse("15mins"), Some(Duration::from_secs(900)));
        assert_eq!(parse("5"), None);
        assert_eq!(parse("xsecs"), None);
        assert_eq!(parse("1e300weeks"), None, "too long for a Duration");
    }
}
