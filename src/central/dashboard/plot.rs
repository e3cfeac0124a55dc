//! Inline SVG plots of sensor series around an anomaly, rendered on the server.

use maud::{html, Markup};

use super::view::{format_time, Series};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// A linear map from a data range onto a pixel range.
#[derive(Debug, Clone, Copy)]
struct Scale {
    from: (f64, f64),
    to: (f64, f64),
}

impl Scale {
    /// Creates a scale. A range of zero width is widened, so that a flat series draws as a
    /// line in the middle.
    fn new(mut low: f64, mut high: f64, to: (f64, f64)) -> Scale {
        if high - low < f64::EPSILON * high.abs().max(1.0) {
            low -= 1.0;
            high += 1.0;
        }
        Scale {
            from: (low, high),
            to,
        }
    }

    fn map(self, value: f64) -> f64 {
        let fraction = (value - self.from.0) / (self.from.1 - self.from.0);
        self.to.0 + fraction * (self.to.1 - self.to.0)
    }
}

/// Renders one sensor's series as an SVG line (means) over a band (minimum to maximum, where
/// the rollups have them), with a vertical marker at the anomaly's time `event_ms`.
pub(crate) fn series_plot(series: &Series, event_ms: i64) -> Markup {
    let points = &series.points;
    let first_ms = points.first().map_or(event_ms, |p| p.ts_ms).min(event_ms);
    let last_ms = points.last().map_or(event_ms, |p| p.ts_ms).max(event_ms);
    let low = points
        .iter()
        .map(|p| p.min.unwrap_or(p.mean).min(p.mean))
        .fold(f64::INFINITY, f64::min);
    let high = points
        .iter()
        .map(|p| p.max.unwrap_or(p.mean).max(p.mean))
        .fold(f64::NEG_INFINITY, f64::max);
    let (low, high) = if low.is_finite() && high.is_finite() {
        (low, high)
    } else {
        (0.0, 1.0)
    };
    let x = Scale::new(first_ms as f64, last_ms as f64, (LEFT, WIDTH - RIGHT));
    let y = Scale::new(low, high, (HEIGHT - BOTTOM, TOP));

    let line: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x.map(p.ts_ms as f64), y.map(p.mean)))
        .collect();
    let banded: Vec<_> = points
        .iter()
        .filter_map(|p| Some((p.ts_ms, p.min?, p.max?)))
        .collect();
    let band = if banded.len() >= 2 {
        let upper = banded
            .iter()
            .map(|(t, _, max)| format!("{:.1},{:.1}", x.map(*t as f64), y.map(*max)));
        let lower = banded
            .iter()
            .rev()
            .map(|(t, min, _)| format!("{:.1},{:.1}", x.map(*t as f64), y.map(*min)));
        Some(upper.chain(lower).collect::<Vec<_>>().join(" "))
    } else {
        None
    };
    let marker_x = format!("{:.1}", x.map(event_ms as f64));
    let title = format!(
        "{}: {} readings from {} to {}",
        series.sensor,
        points.len(),
        format_time(first_ms),
        format_time(last_ms)
    );

    html! {
        svg class="plot" xmlns="http://www.w3.org/2000/svg" role="img"
            viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) width=(WIDTH) height=(HEIGHT) {
            title { (title) }
            rect x=(LEFT) y=(TOP) width=(WIDTH - LEFT - RIGHT) height=(HEIGHT - TOP - BOTTOM)
                class="frame" {}
            @if let Some(band) = band {
                polygon class="band" points=(band) {}
            }
            polyline class="mean" fill="none" points=(line.join(" ")) {}
            line class="event" x1=(marker_x) x2=(marker_x) y1=(TOP) y2=(HEIGHT - BOTTOM) {}
            text x=(LEFT - 4.0) y=(TOP + 10.0) text-anchor="end" { (format_value(high)) }
            text x=(LEFT - 4.0) y=(HEIGHT - BOTTOM) text-anchor="end" { (format_value(low)) }
            text x=(LEFT) y=(HEIGHT - 8.0) { (format_clock(first_ms)) }
            text x=(WIDTH - RIGHT) y=(HEIGHT - 8.0) text-anchor="end" {
                (format_clock(last_ms))
            }
            text x=(marker_x) y=(HEIGHT - 8.0) text-anchor="middle" class="event-label" {
                "event"
            }
        }
    }
}

fn format_value(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn format_clock(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|time| time.format("%H:%M").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::view::SeriesPoint;
    use super::*;

    fn point(ts_ms: i64, mean: f64) -> SeriesPoint {
        SeriesPoint {
            ts_ms,
            mean,
            min: Some(mean - 1.0),
            max: Some(mean + 1.0),
        }
    }

    #[test]
    fn plot_draws_line_band_and_marker() {
        let series = Series {
            sensor: "vibration".into(),
            points: vec![point(0, 1.0), point(60_000, 3.0), point(120_000, 2.0)],
        };
        let svg = series_plot(&series, 60_000).into_string();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("<polyline class=\"mean\""), "{svg}");
        assert!(svg.contains("<polygon class=\"band\""), "{svg}");
        // The marker sits in the middle of the x range: (56 + 628) / 2.
        assert!(svg.contains("x1=\"342.0\""), "{svg}");
        // The highest value, 3 + 1, maps to the top of the frame.
        assert!(svg.contains("56.0,"), "{svg}");
        assert!(svg.contains(",12.0"), "{svg}");
    }

    #[test]
    fn flat_series_plots_without_nan() {
        let series = Series {
            sensor: "x".into(),
            points: vec![
                SeriesPoint {
                    ts_ms: 5,
                    mean: 2.0,
                    min: None,
                    max: None,
                },
                SeriesPoint {
                    ts_ms: 5,
                    mean: 2.0,
                    min: None,
                    max: None,
                },
            ],
        };
        let svg = series_plot(&series, 5).into_string();
        assert!(!svg.contains("NaN"), "{svg}");
        assert!(!svg.contains("inf"), "{svg}");
    }

    #[test]
    fn sensor_name_escaped_in_title() {
        let series = Series {
            sensor: "<script>".into(),
            points: vec![point(0, 1.0)],
        };
        let svg = series_plot(&series, 0).into_string();
        assert!(svg.contains("&lt;script&gt;"), "{svg}");
        assert!(!svg.contains("<script>"), "{svg}");
    }
}
