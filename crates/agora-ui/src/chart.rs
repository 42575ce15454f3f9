//! The allocation chart: each framework's share over time as an SVG line chart, drawn on the
//! server from the sampled history (pure: samples in, markup out).

use std::collections::BTreeSet;

use maud::{Markup, html};

use crate::history::Sample;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 34.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 8.0;

/// Colours that stay apart from one another and from the page.
const PALETTE: [&str; 8] = [
    "#2f7ed8", "#e4572e", "#29a36a", "#a05ee5", "#f2a541", "#17becf", "#d6336c", "#7f7f7f",
];

/// The x of a time and the y of a share in the plot area.
fn point(at_ms: i64, share: f64, first: i64, span: f64) -> (f64, f64) {
    let x = LEFT + (at_ms - first) as f64 / span * (WIDTH - LEFT - 4.0);
    let y = TOP + (1.0 - share.clamp(0.0, 1.0)) * (HEIGHT - TOP - BOTTOM);
    (x, y)
}

/// The chart, or a note while there are fewer than two samples.
pub fn allocation(samples: &[Sample]) -> Markup {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return html! { p.muted { "Collecting allocation samples…" } };
    };
    if samples.len() < 2 {
        return html! { p.muted { "Collecting allocation samples…" } };
    }
    let span = ((last.at_ms - first.at_ms) as f64).max(1.0);
    let names: BTreeSet<&String> = samples.iter().flat_map(|s| s.shares.keys()).collect();
    let seconds = (last.at_ms - first.at_ms) / 1000;
    let start = if seconds < 60 {
        format!("{seconds} s ago")
    } else {
        format!("{} min ago", seconds / 60)
    };
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img"
                aria-label="Allocation share per framework over time" {
                @for level in [0.0, 0.25, 0.5, 0.75, 1.0] {
                    @let (_, y) = point(first.at_ms, level, first.at_ms, span);
                    line.grid x1=(LEFT) x2=(WIDTH - 4.0) y1=(format!("{y:.1}")) y2=(format!("{y:.1}")) {}
                    text.axis x=(LEFT - 4.0) y=(format!("{:.1}", y + 3.0)) text-anchor="end" {
                        (format!("{:.0}%", level * 100.0))
                    }
                }
                text.axis x=(LEFT) y=(HEIGHT - 4.0) { (start) }
                text.axis x=(WIDTH - 4.0) y=(HEIGHT - 4.0) text-anchor="end" { "now" }
                @for (index, name) in names.iter().enumerate() {
                    @let points: Vec<String> = samples
                        .iter()
                        .map(|s| {
                            let (x, y) = point(s.at_ms, s.shares.get(*name).copied().unwrap_or(0.0), first.at_ms, span);
                            format!("{x:.1},{y:.1}")
                        })
                        .collect();
                    polyline.series data-framework=(name) fill="none"
                        stroke=(PALETTE[index % PALETTE.len()]) stroke-width="2"
                        points=(points.join(" ")) {}
                }
            }
            figcaption.legend {
                @for (index, name) in names.iter().enumerate() {
                    span.legend-item {
                        span.swatch style=(format!("background:{}", PALETTE[index % PALETTE.len()])) {}
                        (name) " "
                        span.muted {
                            (format!("{:.1}%", last.shares.get(*name).copied().unwrap_or(0.0) * 100.0))
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn sample(at_ms: i64, shares: &[(&str, f64)]) -> Sample {
        Sample {
            at_ms,
            shares: shares
                .iter()
                .map(|(n, s)| ((*n).to_owned(), *s))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn one_line_per_framework_from_left_to_right() {
        let svg = allocation(&[
            sample(0, &[("marathon", 0.0)]),
            sample(60_000, &[("marathon", 0.5), ("chronos", 1.0)]),
        ])
        .into_string();
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        // marathon: from the bottom-left to the middle of the right edge.
        assert!(svg.contains(r#"points="34.0,160.0 596.0,84.0""#), "{svg}");
        // chronos had no share at first: it starts at zero.
        assert!(svg.contains(r#"points="34.0,160.0 596.0,8.0""#), "{svg}");
        assert!(svg.contains("1 min ago"), "{svg}");
        assert!(svg.contains("50.0%"), "the legend's latest share: {svg}");
    }

    #[test]
    fn too_few_samples_say_so() {
        assert!(allocation(&[]).into_string().contains("Collecting"));
        let short = allocation(&[sample(0, &[]), sample(45_000, &[])]).into_string();
        assert!(short.contains("45 s ago"), "{short}");
        assert!(
            allocation(&[sample(0, &[])])
                .into_string()
                .contains("Collecting")
        );
    }
}
