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
    /// As found: resident memory, the garbage of the requests included.
    pub resident: Pair,
    /// Once the runtime's isolates have collected their garbage (Miniflare).
    pub collected: Pair,
}

#[derive(Debug, Serialize)]
pub struct Pair {
    pub product: Option<PerListener>,
    pub floor: Option<PerListener>,
    /// product / floor, of workerd's memory.
    pub ratio_workerd: Option<f64>,
    /// product / floor, of the whole process group's.
    pub ratio_group: Option<f64>,
}

impl Pair {
    fn new(product: Option<PerListener>, floor: Option<PerListener>) -> Pair {
        let ratio = |get: fn(&PerListener) -> f64| match (product, floor) {
            (Some(p), Some(f)) if get(&f) > 0.0 => Some(crate::stats::round(get(&p) / get(&f), 2)),
            _ => None,
        };
        Pair {
            product,
            floor,
            ratio_workerd: ratio(|m| m.workerd_kb),
            ratio_group: ratio(|m| m.group_kb),
        }
    }
}

impl Row {
    pub fn new(spec: &CaseSpec, product: CaseResult, floor: Option<CaseResult>) -> Row {
        let pair = |get: fn(&CaseResult) -> Option<PerListener>| {
            Pair::new(get(&product), floor.as_ref().and_then(get))
        };
        Row {
            name: spec.name.clone(),
            listeners: spec.listeners,
            kb_per_listener: Comparison {
                resident: pair(|r| r.memory.per_listener),
                collected: pair(|r| r.memory.per_listener_collected),
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
        "\nmemory per idle listener under {label}: workerd's resident KB, (after − before) / listeners;\n\
         each case on a fresh runtime; `collected`: after a garbage collection in its isolates"
    );
    let line = |cells: [&str; 9]| {
        println!(
            "{:<12} {:>11} {:>9} {:>9} {:>7} {:>9} {:>9} {:>7} {:>11}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            cells[6],
            cells[7],
            cells[8]
        )
    };
    line(["", "", "resident", "", "", "collected", "", "", "connect s"]);
    line([
        "case",
        "listeners",
        "product",
        "floor",
        "ratio",
        "product",
        "floor",
        "ratio",
        "prod/floor",
    ]);
    let kb = |m: Option<PerListener>| m.map_or("-".to_string(), |m| format!("{:.1}", m.workerd_kb));
    let ratio = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}"));
    for row in rows {
        let (found, collected) = (
            &row.kb_per_listener.resident,
            &row.kb_per_listener.collected,
        );
        let floor = row.floor.as_ref();
        let connected = format!(
            "{}/{}",
            row.product.connected,
            floor.map_or("-".to_string(), |f| f.connected.to_string())
        );
        let seconds = format!(
            "{:.1}/{}",
            row.product.connect_seconds,
            floor.map_or("-".to_string(), |f| format!("{:.1}", f.connect_seconds))
        );
        line([
            &row.name,
            &connected,
            &kb(found.product),
            &kb(found.floor),
            &ratio(found.ratio_workerd),
            &kb(collected.product),
            &kb(collected.floor),
            &ratio(collected.ratio_workerd),
            &seconds,
        ]);
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
        "kb_per_listener: (resident memory with the listeners connected and held idle − \
         before) / connected listeners, of the workerd processes and of the runtime's whole \
         process group, each case on a fresh runtime; before: after a garbage collection; \
         resident: as found; collected: after another collection; floor: bench/floor.mjs"
    )
}
