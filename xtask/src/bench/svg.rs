//! A hand-written SVG bar chart of throughput by server (or client) and concurrency:
//! one panel per operation, one group of bars per concurrency level.

use std::fmt::Write as _;

use super::markdown::sig;
use super::results::Results;
use super::targets::{CLIENT_WORKERS, CONNECTIONS, SERVERS};

const PANEL_WIDTH: f64 = 470.0;
const PANEL_HEIGHT: f64 = 300.0;
const MARGIN_LEFT: f64 = 64.0;
const MARGIN_TOP: f64 = 72.0;
/// Height of one row of the legend.
const LEGEND_ROW: f64 = 16.0;
const MARGIN_BOTTOM: f64 = 40.0;
const COLORS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"];

/// One chart panel: bars of each series at each category.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Title over the panel.
    pub title: String,
    /// The x axis groups (concurrency levels).
    pub categories: Vec<String>,
    /// Label and one value per category of each series.
    pub series: Vec<(String, Vec<Option<f64>>)>,
}

impl Panel {
    fn max(&self) -> f64 {
        self.series
            .iter()
            .flat_map(|(_, v)| v.iter().flatten())
            .fold(0.0, |a, &b| a.max(b))
    }
}

/// The panels of a run: GET and PUT of the load run, get and set of the clients.
pub fn panels(results: &Results) -> Vec<Panel> {
    let mut out = Vec::new();
    for (op, title) in [("get", "GET 1 KiB, req/s"), ("put", "PUT 1 KiB, req/s")] {
        let series: Vec<_> = SERVERS
            .iter()
            .map(|(server, label)| {
                let values = CONNECTIONS
                    .iter()
                    .map(|c| results.get(&format!("load/{server}/{op}/{c}/rate")))
                    .collect::<Vec<_>>();
                (label.to_string(), values)
            })
            .filter(|(_, v)| v.iter().any(Option::is_some))
            .collect();
        if !series.is_empty() {
            out.push(Panel {
                title: title.to_owned(),
                categories: CONNECTIONS.iter().map(|c| format!("{c} conn")).collect(),
                series,
            });
        }
    }
    for op in ["get", "set"] {
        let series: Vec<_> = [
            ("rust", "Rust client (HttpStore)"),
            ("js", "official JS client"),
        ]
        .iter()
        .map(|(client, label)| {
            let values = CLIENT_WORKERS
                .iter()
                .map(|w| results.get(&format!("client/{client}/{op}/{w}/rate")))
                .collect::<Vec<_>>();
            (label.to_string(), values)
        })
        .filter(|(_, v)| v.iter().any(Option::is_some))
        .collect();
        if !series.is_empty() {
            out.push(Panel {
                title: format!("client {op} 1 KiB via emulator, ops/s"),
                categories: CLIENT_WORKERS
                    .iter()
                    .map(|w| format!("{w} at a time"))
                    .collect(),
                series,
            });
        }
    }
    out
}

/// A round axis maximum at or above `max`, and its tick step.
fn axis(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.25);
    }
    let rough = max / 4.0;
    let magnitude = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * magnitude);
    ((max / step).ceil() * step, step)
}

/// A short label without trailing zeros: 12.3k, 1.5M, 500, 0.
fn short(v: f64) -> String {
    let (scaled, suffix) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let mut text = sig(scaled);
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    format!("{text}{suffix}")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn panel(svg: &mut String, p: &Panel, x0: f64, y0: f64) {
    let plot_w = PANEL_WIDTH - MARGIN_LEFT - 16.0;
    let plot_h = PANEL_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let (top, step) = axis(p.max());
    let left = x0 + MARGIN_LEFT;
    let bottom = y0 + MARGIN_TOP + plot_h;
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="14" font-weight="bold">{}</text>"#,
        x0 + 8.0,
        y0 + 20.0,
        escape(&p.title)
    );
    // Legend, wrapped to the panel's width.
    let (mut lx, mut ly) = (x0 + 8.0, y0 + 30.0);
    for (i, (label, _)) in p.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let width = 14.0 + 6.0 * label.chars().count() as f64 + 14.0;
        if lx > x0 + 8.0 && lx + width > x0 + PANEL_WIDTH - 8.0 {
            lx = x0 + 8.0;
            ly += LEGEND_ROW;
        }
        let _ = writeln!(
            svg,
            r#"<rect x="{lx:.1}" y="{ly:.1}" width="10" height="10" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
            lx + 14.0,
            ly + 9.0,
            escape(label)
        );
        lx += width;
    }
    // Grid and y labels.
    let mut tick = 0.0;
    while tick <= top + step / 2.0 {
        let y = bottom - tick / top * plot_h;
        let _ = writeln!(
            svg,
            r##"<line x1="{left:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
            left + plot_w,
            left - 6.0,
            y + 3.5,
            short(tick)
        );
        tick += step;
    }
    // Bars.
    let groups = p.categories.len().max(1) as f64;
    let group_w = plot_w / groups;
    let bar_w = (group_w * 0.8) / p.series.len().max(1) as f64;
    // Value labels shrink with the bars so that neighbours do not overlap.
    let label_size = (bar_w / 3.3).clamp(6.0, 10.0);
    for (g, category) in p.categories.iter().enumerate() {
        let gx = left + g as f64 * group_w + group_w * 0.1;
        for (s, (_, values)) in p.series.iter().enumerate() {
            let Some(v) = values.get(g).copied().flatten() else {
                continue;
            };
            let h = v / top * plot_h;
            let x = gx + s as f64 * bar_w;
            let color = COLORS[s % COLORS.len()];
            let _ = writeln!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{color}"><title>{}</title></rect><text x="{:.1}" y="{:.1}" font-size="{label_size:.1}" text-anchor="middle">{}</text>"#,
                bottom - h,
                (bar_w - 2.0).max(1.0),
                sig(v),
                x + bar_w / 2.0 - 1.0,
                bottom - h - 3.0,
                short(v)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
            left + (g as f64 + 0.5) * group_w,
            bottom + 16.0,
            escape(category)
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{left:.1}" y1="{bottom:.1}" x2="{:.1}" y2="{bottom:.1}" stroke="#333"/>"##,
        left + plot_w
    );
}

/// The chart, or `None` when the run measured no throughput.
pub fn chart(results: &Results) -> Option<String> {
    let panels = panels(results);
    if panels.is_empty() {
        return None;
    }
    let columns = panels.len().min(2);
    let rows = panels.len().div_ceil(2);
    let width = PANEL_WIDTH * columns as f64;
    let height = PANEL_HEIGHT * rows as f64 + 30.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="8" y="20" font-size="15">Throughput by server and concurrency ({} CPUs, {} run)</text>"#,
        results.machine.cpus,
        escape(&results.mode)
    );
    for (i, p) in panels.iter().enumerate() {
        let x0 = (i % 2) as f64 * PANEL_WIDTH;
        let y0 = 30.0 + (i / 2) as f64 * PANEL_HEIGHT;
        panel(&mut svg, p, x0, y0);
    }
    svg.push_str("</svg>\n");
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::super::results::Unit;
    use super::*;

    #[test]
    fn axis_is_round_and_covers_the_maximum() {
        assert_eq!(axis(9_000.0), (10_000.0, 2_500.0));
        assert_eq!(axis(31_000.0), (40_000.0, 10_000.0));
        assert_eq!(axis(0.0), (1.0, 0.25));
        let (top, step) = axis(123.0);
        assert!(top >= 123.0 && top / step <= 5.0);
    }

    #[test]
    fn a_bar_per_measured_point_and_escaped_text() {
        let mut r = Results {
            mode: "quick <test>".into(),
            ..Results::default()
        };
        r.set("load/emulator_nosync/get/1/rate", 9_000.0, Unit::PerSec);
        r.set("load/emulator_nosync/get/16/rate", 30_000.0, Unit::PerSec);
        r.set("load/blobs_server/get/16/rate", 2_000.0, Unit::PerSec);
        r.set("client/rust/set/1/rate", 5_000.0, Unit::PerSec);
        let svg = chart(&r).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // Background, two legend swatches and three bars in the GET panel; one swatch and
        // one bar in the client panel.
        assert_eq!(svg.matches("<rect").count(), 1 + 2 + 3 + 1 + 1);
        assert!(svg.contains("quick &lt;test&gt;"));
        assert!(svg.contains(">30k<") && svg.contains(">2k<"));
        assert_eq!(short(1500.0), "1.5k");
        assert_eq!(short(0.0), "0");
        assert_eq!(short(12_345.0), "12.3k");
        assert!(!svg.contains("PUT 1 KiB"));
        assert!(chart(&Results::default()).is_none());
    }
}
