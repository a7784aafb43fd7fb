//! The memory cases (`mem-n{N}`): N idle listeners on one channel, the runtime's
//! resident memory before and after, for the product and for the runtime's floor
//! (bench/floor.mjs, a Durable Object that only holds the streams), each N on a fresh
//! runtime so that memory freed by an earlier case cannot hide what a listener costs.

use serde::Serialize;
use serde_json::{json, Value};

use crate::cases::{CaseResult, CaseSpec, PerListener};
use crate::runtime::{Kind, Serves};

/// One listener count: the product's case, the floor's, and their ratio.
#[derive(Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub listeners: usize,
    pub kb_per_listener: Comparison,
    pub product: CaseResult,
    pub floor: Option<CaseResult>,
}

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub product: Option<PerListener>,
    pub floor: Option<PerListener>,
    /// product / floor, of workerd's memory.
    pub ratio_workerd: Option<f64>,
    /// product / floor, of the whole process group's.
    pub ratio_group: Option<f64>,
}

impl Row {
    pub fn new(spec: &CaseSpec, product: CaseResult, floor: Option<CaseResult>) -> Row {
        let of = |r: &CaseResult| r.memory.per_listener;
        let (p, f) = (of(&product), floor.as_ref().and_then(of));
        let ratio = |get: fn(&PerListener) -> f64| match (p, f) {
            (Some(p), Some(f)) if get(&f) > 0.0 => Some(crate::stats::round(get(&p) / get(&f), 2)),
            _ => None,
        };
        Row {
            name: spec.name.clone(),
            listeners: spec.listeners,
            kb_per_listener: Comparison {
                product: p,
                floor: f,
                ratio_workerd: ratio(|m| m.workerd_kb),
                ratio_group: ratio(|m| m.group_kb),
            },
            product,
            floor,
        }
    }
}

/// Whether the floor can be measured beside the product: it is served by Miniflare.
pub fn has_floor(runtime: Option<Kind>) -> bool {
    runtime == Some(Kind::Miniflare)
}

/// Runs each memory case on the product and then (under Miniflare) on the floor;
/// `run_on` runs a case on a fresh runtime serving one or the other.
pub fn run(
    specs: &[CaseSpec],
    with_floor: bool,
    mut run_on: impl FnMut(Serves, &CaseSpec) -> Result<CaseResult, String>,
) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for spec in specs {
        let mut measure = |serves: Serves| {
            eprintln!(
                "sse-bench: case {}: {} idle listeners, {serves:?}",
                spec.name, spec.listeners
            );
            let r = run_on(serves, spec)?;
            for e in &r.errors {
                eprintln!("    {}: {e}", r.name);
            }
            Ok::<_, String>(r)
        };
        let product = measure(Serves::Product)?;
        let floor = if with_floor {
            Some(measure(Serves::Floor)?)
        } else {
            None
        };
        rows.push(Row::new(spec, product, floor));
    }
    Ok(rows)
}

pub fn print_table(label: &str, rows: &[Row]) {
    println!(
        "\nmemory per idle listener under {label}: resident KB, (after − before) / listeners, each case on a fresh runtime"
    );
    println!(
        "{:<12} {:>11} {:>11} {:>11} {:>8} {:>11} {:>11} {:>8}",
        "case", "listeners", "product", "floor", "ratio", "product", "floor", "ratio"
    );
    println!(
        "{:<12} {:>11} {:>11} {:>11} {:>8} {:>11} {:>11} {:>8}",
        "", "prod/floor", "workerd", "workerd", "", "group", "group", ""
    );
    let kb = |m: Option<PerListener>, get: fn(&PerListener) -> f64| {
        m.map_or("-".to_string(), |m| format!("{:.1}", get(&m)))
    };
    let ratio = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}"));
    for row in rows {
        let c = &row.kb_per_listener;
        let connected = format!(
            "{}/{}",
            row.product.connected,
            row.floor
                .as_ref()
                .map_or("-".to_string(), |f| f.connected.to_string())
        );
        println!(
            "{:<12} {:>11} {:>11} {:>11} {:>8} {:>11} {:>11} {:>8}",
            row.name,
            connected,
            kb(c.product, |m| m.workerd_kb),
            kb(c.floor, |m| m.workerd_kb),
            ratio(c.ratio_workerd),
            kb(c.product, |m| m.group_kb),
            kb(c.floor, |m| m.group_kb),
            ratio(c.ratio_group),
        );
    }
}

/// The rows as JSON values, for the results file.
pub fn to_json(rows: &[Row]) -> Result<Vec<Value>, String> {
    rows.iter()
        .map(|r| serde_json::to_value(r).map_err(|e| e.to_string()))
        .collect()
}

/// What the memory results file says about its figures.
pub fn note() -> Value {
    json!(
        "kb_per_listener: (resident memory after connecting − before) / connected listeners, \
         of the workerd processes and of the runtime's whole process group, each case on a \
         fresh runtime; floor: bench/floor.mjs"
    )
}
