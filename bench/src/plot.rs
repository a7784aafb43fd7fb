//! Draws bench/results/throughput.svg from bench/results/*.json by hand: two panels,
//! delivered events/s and p99 publish→receive latency against listeners, both axes log.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Series {
    pub runtime: String,
    pub kind: String,
    /// (listeners, delivered events/s, p99 latency ms)
    pub points: Vec<(f64, Option<f64>, Option<f64>)>,
}

const COLORS: [&str; 6] = [
    "#d9480f", "#1c7ed6", "#2b8a3e", "#862e9c", "#e8590c", "#495057",
];
const KINDS: [(&str, &str); 4] = [
    ("burst-k1", ""),
    ("burst-k16", "7 4"),
    ("rate50", "2 3"),
    ("rate10", "10 3 2 3"),
];

/// Reads every `*.json` result file of `dir` into series (runtime × case kind).
pub fn load_series(dir: &Path) -> Result<Vec<Series>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let doc: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("plot: skipping {}: {e}", f.display());
                continue;
            }
        };
        let stem = f
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("?")
            .to_string();
        out.extend(series_from_doc(&doc, &stem));
    }
    Ok(out)
}

pub fn series_from_doc(doc: &Value, fallback_name: &str) -> Vec<Series> {
    let runtime = doc
        .get("runtime")
        .and_then(|r| r.as_str())
        .unwrap_or(fallback_name)
        .to_string();
    let mut out: Vec<Series> = Vec::new();
    let Some(cases) = doc.get("cases").and_then(|c| c.as_array()) else {
        return out;
    };
    for c in cases {
        let kind = c
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("?")
            .to_string();
        let Some(listeners) = c
            .get("connected")
            .and_then(|v| v.as_f64())
            .filter(|&v| v > 0.0)
            .or_else(|| c.get("listeners").and_then(|v| v.as_f64()))
        else {
            continue;
        };
        let eps = c
            .get("delivered_per_sec")
            .and_then(|v| v.as_f64())
            .filter(|&v| v > 0.0);
        let p99 = c
            .pointer("/latency_ms/p99")
            .and_then(|v| v.as_f64())
            .filter(|&v| v > 0.0);
        let s = match out.iter_mut().find(|s| s.kind == kind) {
            Some(s) => s,
            None => {
                out.push(Series {
                    runtime: runtime.clone(),
                    kind,
                    points: Vec::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        s.points.push((listeners, eps, p99));
    }
    for s in &mut out {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// Decade bounds [10^lo, 10^hi] covering the values (at least one decade wide).
pub fn decades(values: impl Iterator<Item = f64>) -> (i32, i32) {
    let mut lo = i32::MAX;
    let mut hi = i32::MIN;
    for v in values.filter(|v| *v > 0.0 && v.is_finite()) {
        lo = lo.min(v.log10().floor() as i32);
        hi = hi.max(v.log10().ceil() as i32);
    }
    if lo == i32::MAX {
        return (0, 1);
    }
    if hi <= lo {
        hi = lo + 1;
    }
    (lo, hi)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt_tick(exp: i32) -> String {
    let v = 10f64.powi(exp);
    if v >= 1_000_000.0 {
        format!("{}M", v / 1_000_000.0)
    } else if v >= 1000.0 {
        format!("{}k", v / 1000.0)
    } else {
        format!("{v}")
    }
}

struct Panel {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    xd: (i32, i32),
    yd: (i32, i32),
}

impl Panel {
    fn px(&self, x: f64) -> f64 {
        self.x0 + (x.log10() - self.xd.0 as f64) / (self.xd.1 - self.xd.0) as f64 * self.w
    }
    fn py(&self, y: f64) -> f64 {
        self.y0 + self.h - (y.log10() - self.yd.0 as f64) / (self.yd.1 - self.yd.0) as f64 * self.h
    }

    fn axes(&self, svg: &mut String, title: &str, ylabel: &str) {
        let (x0, y0, w, h) = (self.x0, self.y0, self.w, self.h);
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="15" font-weight="bold" text-anchor="middle">{}</text>"##,
            x0 + w / 2.0,
            y0 - 14.0,
            esc(title)
        );
        // Grid and ticks.
        for e in self.xd.0..=self.xd.1 {
            let x = self.px(10f64.powi(e));
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{:.1}" stroke="#dee2e6"/>"##,
                y0 + h
            );
            let _ = writeln!(
                svg,
                r##"<text x="{x:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"##,
                y0 + h + 16.0,
                fmt_tick(e)
            );
            if e < self.xd.1 {
                for m in 2..10 {
                    let xm = self.px(m as f64 * 10f64.powi(e));
                    let _ = writeln!(
                        svg,
                        r##"<line x1="{xm:.1}" y1="{y0:.1}" x2="{xm:.1}" y2="{:.1}" stroke="#f1f3f5"/>"##,
                        y0 + h
                    );
                }
            }
        }
        for e in self.yd.0..=self.yd.1 {
            let y = self.py(10f64.powi(e));
            let _ = writeln!(
                svg,
                r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#dee2e6"/>"##,
                x0 + w
            );
            let _ = writeln!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end">{}</text>"##,
                x0 - 6.0,
                y + 4.0,
                fmt_tick(e)
            );
        }
        let _ = writeln!(
            svg,
            r##"<rect x="{x0:.1}" y="{y0:.1}" width="{w:.1}" height="{h:.1}" fill="none" stroke="#495057"/>"##
        );
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="13" text-anchor="middle">listeners (log)</text>"##,
            x0 + w / 2.0,
            y0 + h + 36.0
        );
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="13" text-anchor="middle" transform="rotate(-90 {:.1} {:.1})">{}</text>"##,
            x0 - 52.0,
            y0 + h / 2.0,
            x0 - 52.0,
            y0 + h / 2.0,
            esc(ylabel)
        );
    }

    fn line(&self, svg: &mut String, pts: &[(f64, f64)], color: &str, dash: &str, tip: &str) {
        if pts.is_empty() {
            return;
        }
        let d: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", self.px(x), self.py(y)))
            .collect();
        let dash_attr = if dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{dash}""#)
        };
        let _ = writeln!(
            svg,
            r##"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash_attr}/>"##,
            d.join(" ")
        );
        for &(x, y) in pts {
            let _ = writeln!(
                svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"><title>{}: {} listeners, {}</title></circle>"##,
                self.px(x),
                self.py(y),
                esc(tip),
                x,
                if y >= 100.0 {
                    format!("{y:.0}")
                } else {
                    format!("{y:.2}")
                }
            );
        }
    }
}

pub fn render_svg(series: &[Series]) -> String {
    let (width, height) = (1100.0, 560.0);
    let xd = decades(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let xd = (xd.0.min(0), xd.1.max(4));
    let eps_d = decades(
        series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|p| p.1)),
    );
    let p99_d = decades(
        series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|p| p.2)),
    );
    let left = Panel {
        x0: 80.0,
        y0: 60.0,
        w: 430.0,
        h: 340.0,
        xd,
        yd: eps_d,
    };
    let right = Panel {
        x0: 630.0,
        y0: 60.0,
        w: 430.0,
        h: 340.0,
        xd,
        yd: p99_d,
    };

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="24" font-size="17" text-anchor="middle">sse-edge fan-out benchmark (sse-bench)</text>"##,
        width / 2.0
    );
    left.axes(&mut svg, "Delivered events/s", "events per second (log)");
    right.axes(
        &mut svg,
        "p99 publish→receive latency",
        "milliseconds (log)",
    );

    let mut runtimes: Vec<String> = Vec::new();
    for s in series {
        if !runtimes.contains(&s.runtime) {
            runtimes.push(s.runtime.clone());
        }
    }
    let color_of =
        |rt: &str| COLORS[runtimes.iter().position(|r| r == rt).unwrap_or(0) % COLORS.len()];
    let dash_of = |kind: &str| {
        KINDS
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, d)| *d)
            .unwrap_or("1 2")
    };
    for s in series {
        let tip = format!("{} {}", s.runtime, s.kind);
        let eps: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter_map(|p| p.1.map(|y| (p.0, y)))
            .collect();
        let p99: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter_map(|p| p.2.map(|y| (p.0, y)))
            .collect();
        left.line(&mut svg, &eps, color_of(&s.runtime), dash_of(&s.kind), &tip);
        right.line(&mut svg, &p99, color_of(&s.runtime), dash_of(&s.kind), &tip);
    }

    // Legend: colours = runtimes, dashes = case kinds.
    let mut y = 460.0;
    let _ = writeln!(
        svg,
        r##"<text x="80" y="{y:.1}" font-size="13" font-weight="bold">runtime</text>"##
    );
    for (i, rt) in runtimes.iter().enumerate() {
        legend_entry(
            &mut svg,
            160.0 + i as f64 * 150.0,
            y,
            &format!(r#"stroke="{}" stroke-width="3""#, color_of(rt)),
            rt,
        );
    }
    y += 26.0;
    let _ = writeln!(
        svg,
        r##"<text x="80" y="{y:.1}" font-size="13" font-weight="bold">case</text>"##
    );
    let mut kinds: Vec<&str> = KINDS
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| series.iter().any(|s| s.kind == *k))
        .collect();
    for s in series {
        if !kinds.contains(&s.kind.as_str()) {
            kinds.push(&s.kind);
        }
    }
    for (i, kind) in kinds.iter().enumerate() {
        let dash = dash_of(kind);
        let dash_attr = if dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{dash}""#)
        };
        legend_entry(
            &mut svg,
            160.0 + i as f64 * 150.0,
            y,
            &format!(r##"stroke="#212529" stroke-width="2"{dash_attr}"##),
            kind,
        );
    }
    y += 26.0;
    let _ = writeln!(
        svg,
        r##"<text x="80" y="{y:.1}" font-size="11" fill="#495057">burst-kK: messages published as fast as possible with K requests in flight; rateR: R messages/s. Points without deliveries are not drawn.</text>"##
    );
    svg.push_str("</svg>\n");
    svg
}

/// Reads `dir/*.json`, writes `dir/throughput.svg`.
pub fn plot_dir(dir: &Path) -> Result<PathBuf, String> {
    let series = load_series(dir)?;
    if series.is_empty() {
        return Err(format!("no results in {}/*.json", dir.display()));
    }
    let path = dir.join("throughput.svg");
    std::fs::write(&path, render_svg(&series))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// One legend entry at (`x`, `y`): a short line drawn with `stroke_attrs`, then `label`.
fn legend_entry(svg: &mut String, x: f64, y: f64, stroke_attrs: &str, label: &str) {
    let _ = writeln!(
        svg,
        r##"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" {stroke_attrs}/>"##,
        y - 4.0,
        x + 30.0,
        y - 4.0
    );
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{y:.1}" font-size="13">{}</text>"##,
        x + 36.0,
        esc(label)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decade_bounds() {
        assert_eq!(decades([1.0, 10000.0].into_iter()), (0, 4));
        assert_eq!(decades([150.0, 2500.0].into_iter()), (2, 4));
        assert_eq!(decades([100.0].into_iter()), (2, 3));
        assert_eq!(decades(std::iter::empty()), (0, 1));
        assert_eq!(decades([0.5, 3.0].into_iter()), (-1, 1));
    }

    #[test]
    fn renders_series() {
        let doc = json!({"runtime": "miniflare", "cases": [
            {"kind": "burst-k1", "listeners": 1, "connected": 1, "delivered_per_sec": 900.0, "latency_ms": {"p99": 2.5}},
            {"kind": "burst-k1", "listeners": 100, "connected": 100, "delivered_per_sec": 20000.0, "latency_ms": {"p99": 40.0}},
            {"kind": "rate50", "listeners": 100, "connected": 0, "delivered_per_sec": 0.0, "latency_ms": null},
        ]});
        let s = series_from_doc(&doc, "x");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].points.len(), 2);
        assert_eq!(s[1].points, vec![(100.0, None, None)]);
        let svg = render_svg(&s);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("miniflare"));
    }
}
