//! Draws bench/results/throughput.svg from bench/results/*.json with `plotters`: two
//! panels, delivered events/s and p99 publish→receive latency against listeners, both
//! axes log; one colour per runtime, one dash pattern per case kind.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Series {
    pub runtime: String,
    pub kind: String,
    /// (listeners, delivered events/s, p99 latency ms)
    pub points: Vec<(f64, Option<f64>, Option<f64>)>,
}

const COLORS: [RGBColor; 6] = [
    RGBColor(0xd9, 0x48, 0x0f),
    RGBColor(0x1c, 0x7e, 0xd6),
    RGBColor(0x2b, 0x8a, 0x3e),
    RGBColor(0x86, 0x2e, 0x9c),
    RGBColor(0xe8, 0x59, 0x0c),
    RGBColor(0x49, 0x50, 0x57),
];

/// The dash (length, gap) of each fan-out case kind; `None`: a solid line.
const KINDS: [(&str, Option<(i32, i32)>); 4] = [
    ("burst-k1", None),
    ("burst-k16", Some((8, 4))),
    ("rate50", Some((2, 3))),
    ("rate10", Some((12, 3))),
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
        match serde_json::from_str::<Value>(&text) {
            Ok(doc) => {
                let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("?");
                out.extend(series_from_doc(&doc, stem));
            }
            Err(e) => eprintln!("plot: skipping {}: {e}", f.display()),
        }
    }
    Ok(out)
}

/// The fan-out cases of one results file (memory cases have no deliveries to draw).
pub fn series_from_doc(doc: &Value, fallback_name: &str) -> Vec<Series> {
    let runtime = doc
        .get("runtime")
        .and_then(Value::as_str)
        .unwrap_or(fallback_name);
    let mut out: Vec<Series> = Vec::new();
    for c in doc
        .get("cases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = c.get("kind").and_then(Value::as_str).unwrap_or("?");
        if kind == crate::cases::MEMORY_KIND {
            continue;
        }
        let positive = |v: Option<&Value>| v.and_then(Value::as_f64).filter(|&v| v > 0.0);
        let Some(listeners) = positive(c.get("connected")).or_else(|| positive(c.get("listeners")))
        else {
            continue;
        };
        let point = (
            listeners,
            positive(c.get("delivered_per_sec")),
            positive(c.pointer("/latency_ms/p99")),
        );
        match out.iter_mut().find(|s| s.kind == kind) {
            Some(s) => s.points.push(point),
            None => out.push(Series {
                runtime: runtime.to_string(),
                kind: kind.to_string(),
                points: vec![point],
            }),
        }
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
    (lo, hi.max(lo + 1))
}

fn fmt_tick(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{}M", v / 1_000_000.0)
    } else if v >= 1000.0 {
        format!("{}k", v / 1000.0)
    } else {
        format!("{v}")
    }
}

type Pick = fn(&(f64, Option<f64>, Option<f64>)) -> Option<f64>;

/// One panel: `pick` chooses the value drawn against listeners.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
    runtimes: &[String],
    (title, y_desc): (&str, &str),
    pick: Pick,
    legend: bool,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let xd = decades(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let (x_lo, x_hi) = (xd.0.min(0), xd.1.max(4));
    let yd = decades(series.iter().flat_map(|s| s.points.iter().filter_map(pick)));
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (10f64.powi(x_lo)..10f64.powi(x_hi)).log_scale(),
            (10f64.powi(yd.0)..10f64.powi(yd.1)).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("listeners (log)")
        .y_desc(y_desc)
        .x_label_formatter(&|v| fmt_tick(*v))
        .y_label_formatter(&|v| fmt_tick(*v))
        .draw()
        .map_err(err)?;
    for s in series {
        let color =
            COLORS[runtimes.iter().position(|r| *r == s.runtime).unwrap_or(0) % COLORS.len()];
        let style = color.stroke_width(2);
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter_map(|p| Some((p.0, pick(p)?)))
            .collect();
        let dash = KINDS
            .iter()
            .find(|(k, _)| *k == s.kind)
            .map_or(Some((1, 2)), |(_, d)| *d);
        let drawn = match dash {
            None => chart.draw_series(LineSeries::new(points.clone(), style)),
            Some((size, gap)) => {
                chart.draw_series(DashedLineSeries::new(points.clone(), size, gap, style))
            }
        }
        .map_err(err)?;
        drawn
            .label(format!("{} {}", s.runtime, s.kind))
            .legend(move |(x, y)| {
                let (size, gap) = dash.unwrap_or((30, 0));
                DashedPathElement::new(vec![(x, y), (x + 24, y)], size, gap, style)
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
    }
    if legend {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// Draws both panels on `area`.
pub fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    series: &[Series],
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    area.fill(&WHITE).map_err(err)?;
    let area = area
        .titled("sse-edge fan-out benchmark (sse-bench)", ("sans-serif", 20))
        .map_err(err)?;
    let (left, right) = area.split_horizontally(area.dim_in_pixel().0 / 2);
    let mut runtimes: Vec<String> = Vec::new();
    for s in series {
        if !runtimes.contains(&s.runtime) {
            runtimes.push(s.runtime.clone());
        }
    }
    let eps = ("Delivered events/s", "events per second (log)");
    panel(&left, series, &runtimes, eps, |p| p.1, false)?;
    let p99 = ("p99 publish→receive latency", "milliseconds (log)");
    panel(&right, series, &runtimes, p99, |p| p.2, true)?;
    area.present().map_err(err)
}

/// Reads `dir/*.json`, writes `dir/throughput.svg`.
pub fn plot_dir(dir: &Path) -> Result<PathBuf, String> {
    let series = load_series(dir)?;
    if series.is_empty() {
        return Err(format!("no results in {}/*.json", dir.display()));
    }
    let path = dir.join("throughput.svg");
    draw(
        SVGBackend::new(&path, (1200, 620)).into_drawing_area(),
        &series,
    )?;
    Ok(path)
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
            {"kind": "mem", "listeners": 1000, "connected": 1000},
        ]});
        let s = series_from_doc(&doc, "x");
        assert_eq!(s.len(), 2, "the memory case is not drawn");
        assert_eq!(s[0].points.len(), 2);
        assert_eq!(s[1].points, vec![(100.0, None, None)]);
        let mut svg = String::new();
        draw(
            SVGBackend::with_string(&mut svg, (1200, 620)).into_drawing_area(),
            &s,
        )
        .unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        // Two points in each panel, and one legend entry per series.
        assert_eq!(svg.matches("<circle").count(), 4);
        assert_eq!(svg.matches("miniflare burst-k1").count(), 1);
        assert_eq!(svg.matches("miniflare rate50").count(), 1);
    }
}
