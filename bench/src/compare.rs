//! Comparison runs (`--compare`): the publish cases on the product, the runtime's floor
//! (bench/floor.mjs, with and without a SQLite insert per publish) and a peer (nginx +
//! nchan), all started at once and the cases interleaved (each case on every variant
//! before the next case), printed as ratios.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::{json, Value};

use crate::cases::{CaseResult, CaseSpec, Target};
use crate::runtime::Serves;

/// One server of a comparison run.
#[derive(Debug, Clone)]
pub struct Variant {
    pub name: &'static str,
    pub serves: Serves,
    /// Worker variables on top of the run's `--var`s.
    pub vars: Vec<(String, String)>,
    /// The checkout it runs from (none: the run's `--root`).
    pub root: Option<PathBuf>,
    /// It runs only the cases with more listeners than this (a tree's variant: the cases
    /// one object would hold alone are the one-object variant's).
    pub above_listeners: usize,
}

impl Variant {
    pub fn new(name: &'static str, serves: Serves, vars: &[(&str, &str)]) -> Self {
        Variant {
            name,
            serves,
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            root: None,
            above_listeners: 0,
        }
    }
}

/// The product with both acknowledgements, the floor with and without its insert, nchan;
/// with `before`, that checkout's build; with `tree`, this build spread over objects of
/// `tree` listeners each.
pub fn variants(with_nchan: bool, before: Option<PathBuf>, tree: Option<usize>) -> Vec<Variant> {
    let mut v = vec![
        Variant::new(
            PRODUCT_STORED,
            Serves::Product,
            &[("PUBLISH_ACK", "stored")],
        ),
        Variant::new(
            PRODUCT_ACCEPTED,
            Serves::Product,
            &[("PUBLISH_ACK", "accepted")],
        ),
        Variant::new(FLOOR_SQL, Serves::Floor, &[("FLOOR_SQL", "1")]),
        Variant::new(FLOOR, Serves::Floor, &[("FLOOR_SQL", "0")]),
    ];
    if with_nchan {
        v.push(Variant::new(NCHAN, Serves::Nchan, &[]));
    }
    if let Some(root) = before {
        v.push(Variant {
            root: Some(root),
            ..Variant::new(BEFORE_STORED, Serves::Product, &[("PUBLISH_ACK", "stored")])
        });
    }
    if let Some(per_object) = tree {
        let mut tree = Variant::new(PRODUCT_TREE, Serves::Product, &[("PUBLISH_ACK", "stored")]);
        tree.vars
            .push(("LISTENERS_PER_OBJECT".into(), per_object.to_string()));
        tree.above_listeners = per_object;
        v.push(tree);
    }
    v
}

pub const PRODUCT_STORED: &str = "product-stored";
pub const PRODUCT_ACCEPTED: &str = "product-accepted";
pub const FLOOR_SQL: &str = "floor-sql";
pub const FLOOR: &str = "floor";
pub const NCHAN: &str = "nchan";
pub const BEFORE_STORED: &str = "before-stored";
pub const PRODUCT_TREE: &str = "product-tree";

/// Whether `variant` runs `spec`: the floor publishes single JSON events only, so it
/// sits out the batch cases (nchan runs them one message per request); neither serves
/// the Mercure hub; a tree's variant runs only what one object would not hold alone.
pub fn runs(variant: &Variant, spec: &CaseSpec) -> bool {
    let peer = matches!(variant.serves, Serves::Floor | Serves::Nchan);
    let sits_out = (spec.is_batch() && variant.serves == Serves::Floor) || (spec.is_hub() && peer);
    !sits_out && spec.listeners > variant.above_listeners
}

/// The cases a comparison runs unless `--case` says: the publish path with 1, 100 and
/// 1,000 listeners, one publish in flight; to 1 listener with a new connection per
/// publish; and batch publishing.
pub const DEFAULT_CASES: [&str; 6] = [
    "n1-burst-k1",
    "n1-burst-k1-close",
    "n100-burst-k1",
    "n1000-burst-k1",
    "n1-batch",
    "n100-batch",
];

/// Messages of a `burst-k1` case (either connection mode) in a comparison (unless
/// `--messages`): enough publishes for a steady rate and CPU well above /proc's ticks,
/// few enough for a short run (1,000 listeners: 200 publishes, 200,000 deliveries).
pub fn default_messages(spec: &CaseSpec) -> u64 {
    match (spec.listeners, spec.connection_per_publish) {
        (1, false) => 3000,
        (1, true) => 2000,
        (1000, _) => 200,
        _ => 1000,
    }
}

/// What one variant did in one case, summed over the rounds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sum {
    pub rounds: u32,
    pub published: u64,
    pub publish_seconds: f64,
    pub received: u64,
    pub expected: u64,
    pub delivery_seconds: f64,
    pub server_cpu: Option<f64>,
    pub notes: Vec<String>,
}

impl Sum {
    pub fn add(&mut self, r: &CaseResult) {
        self.rounds += 1;
        self.published += r.published_ok;
        self.publish_seconds += r.publish_seconds;
        self.received += r.received;
        self.expected += r.expected;
        self.delivery_seconds += r.delivery_seconds;
        self.server_cpu = match (self.server_cpu, r.cpu.server) {
            (Some(a), Some(b)) => Some(a + b),
            (None, b) if self.rounds == 1 => b,
            _ => None,
        };
        for (on, note) in [
            (r.timed_out, "TIMEOUT"),
            (r.publish_errors > 0, "PUBERR"),
            (r.duplicates > 0, "DUP"),
            (r.lost > 0, "LOST"),
        ] {
            if on && !self.notes.iter().any(|n| n == note) {
                self.notes.push(note.to_string());
            }
        }
    }

    /// Events published per second (a batch counts its events).
    pub fn publish_rate(&self) -> f64 {
        crate::stats::rate(self.published, self.publish_seconds)
    }

    /// Events received by all listeners per second.
    pub fn delivered_rate(&self) -> f64 {
        crate::stats::rate(self.received, self.delivery_seconds)
    }

    /// Server CPU µs per event published.
    pub fn cpu_per_publish(&self) -> Option<f64> {
        self.server_cpu
            .filter(|_| self.published > 0)
            .map(|s| s * 1e6 / self.published as f64)
    }

    /// Server CPU µs per event delivered to a listener.
    pub fn cpu_per_delivery(&self) -> Option<f64> {
        self.server_cpu
            .filter(|_| self.received > 0)
            .map(|s| s * 1e6 / self.received as f64)
    }
}

/// One case: each variant's sums.
#[derive(Debug, Serialize)]
pub struct Row {
    pub case: String,
    pub listeners: usize,
    pub variants: Vec<(String, Sum)>,
}

impl Row {
    pub fn get(&self, name: &str) -> Option<&Sum> {
        self.variants
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }
}

/// Adds `r` (of `variant`) to the rows.
pub fn record(rows: &mut Vec<Row>, spec: &CaseSpec, variant: &str, r: &CaseResult) {
    let row = match rows.iter_mut().position(|row| row.case == spec.name) {
        Some(i) => &mut rows[i],
        None => {
            rows.push(Row {
                case: spec.name.clone(),
                listeners: spec.listeners,
                variants: Vec::new(),
            });
            rows.last_mut().expect("just pushed")
        }
    };
    match row.variants.iter_mut().find(|(n, _)| n == variant) {
        Some((_, sum)) => sum.add(r),
        None => {
            let mut sum = Sum::default();
            sum.add(r);
            row.variants.push((variant.to_string(), sum));
        }
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(crate::stats::round(a / b, 2)),
        _ => None,
    }
}

/// The four ratios of `a` to `b`: publishes/s, delivered/s, CPU per publish, per delivery.
pub fn ratios(a: &Sum, b: &Sum) -> [Option<f64>; 4] {
    [
        ratio(Some(a.publish_rate()), Some(b.publish_rate())),
        ratio(Some(a.delivered_rate()), Some(b.delivered_rate())),
        ratio(a.cpu_per_publish(), b.cpu_per_publish()),
        ratio(a.cpu_per_delivery(), b.cpu_per_delivery()),
    ]
}

/// What each product variant is compared with: both floors (the one with the insert
/// does the storage work of a publish, as both acknowledgements store every event) and
/// nchan.
const BASES: [&str; 3] = [FLOOR_SQL, FLOOR, NCHAN];

/// The ratios a row has, each as (label, numerator, denominator): each product variant to
/// each base; this build to the build before it; the tree to one object; and, for a hub
/// case, the hub to the channel case with as many listeners (`rows`), per variant.
fn pairs<'a>(row: &'a Row, rows: &'a [Row]) -> Vec<(String, &'a Sum, &'a Sum)> {
    let mut out = Vec::new();
    for product in [PRODUCT_STORED, PRODUCT_ACCEPTED] {
        let Some(p) = row.get(product) else { continue };
        for base in BASES {
            if let Some(b) = row.get(base) {
                out.push((format!("{product} / {base}"), p, b));
            }
        }
    }
    for (a, b) in [
        (PRODUCT_STORED, BEFORE_STORED),
        (PRODUCT_TREE, PRODUCT_STORED),
    ] {
        if let (Some(x), Some(y)) = (row.get(a), row.get(b)) {
            out.push((format!("{a} / {b}"), x, y));
        }
    }
    let twin = format!("n{}-burst-k1", row.listeners);
    let channel = rows.iter().find(|r| r.case == twin);
    if let (true, Some(channel)) = (row.case.contains("-hub-"), channel) {
        for variant in [PRODUCT_STORED, BEFORE_STORED, PRODUCT_TREE] {
            if let (Some(h), Some(c)) = (row.get(variant), channel.get(variant)) {
                out.push((format!("hub / channel, {variant}"), h, c));
            }
        }
    }
    out
}

pub fn print_table(rows: &[Row]) {
    let f = |v: Option<f64>, prec: usize| match v {
        Some(v) => format!("{v:.prec$}"),
        None => "-".to_string(),
    };
    println!(
        "\n{:<15} {:<17} {:>8} {:>10} {:>8} {:>8} {:>9} {:>10}  note",
        "case", "variant", "rounds", "pub/s", "ev/s", "lost", "µs/pub", "µs/deliv"
    );
    for row in rows {
        for (name, s) in &row.variants {
            println!(
                "{:<15} {:<17} {:>8} {:>10.0} {:>8.0} {:>8} {:>9} {:>10}  {}",
                row.case,
                name,
                s.rounds,
                s.publish_rate(),
                s.delivered_rate(),
                s.expected.saturating_sub(s.received),
                f(s.cpu_per_publish(), 0),
                f(s.cpu_per_delivery(), 1),
                s.notes.join(",")
            );
        }
    }
    println!(
        "\nratios (pub/s and ev/s: higher is faster; µs/pub and µs/deliv: server CPU, higher costs more)"
    );
    println!(
        "{:<15} {:<30} {:>8} {:>8} {:>8} {:>9}",
        "case", "ratio", "pub/s", "ev/s", "µs/pub", "µs/deliv"
    );
    for row in rows {
        for (label, a, b) in pairs(row, rows) {
            let [pr, dr, cp, cd] = ratios(a, b);
            println!(
                "{:<15} {:<30} {:>8} {:>8} {:>8} {:>9}",
                row.case,
                label,
                f(pr, 2),
                f(dr, 2),
                f(cp, 2),
                f(cd, 2)
            );
        }
    }
}

/// The rows with their ratios, for the results file.
pub fn to_json(rows: &[Row]) -> Value {
    let rows: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut ratio_map = serde_json::Map::new();
            for (label, a, b) in pairs(row, rows) {
                let [pr, dr, cp, cd] = ratios(a, b);
                ratio_map.insert(
                    label.replace(" / ", "/"),
                    json!({"publishes_per_sec": pr, "delivered_per_sec": dr,
                           "cpu_per_publish": cp, "cpu_per_delivery": cd}),
                );
            }
            let variants: serde_json::Map<String, Value> = row
                .variants
                .iter()
                .map(|(n, s)| {
                    (
                        n.clone(),
                        json!({
                            "sum": s,
                            "publishes_per_sec": crate::stats::round(s.publish_rate(), 1),
                            "delivered_per_sec": crate::stats::round(s.delivered_rate(), 1),
                            "cpu_us_per_publish": s.cpu_per_publish().map(|v| crate::stats::round(v, 1)),
                            "cpu_us_per_delivery": s.cpu_per_delivery().map(|v| crate::stats::round(v, 2)),
                        }),
                    )
                })
                .collect();
            json!({"case": row.case, "listeners": row.listeners, "variants": variants, "ratios": ratio_map})
        })
        .collect();
    Value::Array(rows)
}

/// Runs every case on every variant that runs it, `rounds` times, interleaved: round by
/// round, case by case, variant by variant (the order of the variants turns each round,
/// so that none always runs first). `run_on(i, spec, round)` runs a case on variant `i`;
/// `done` sees each result as it comes.
pub fn run(
    specs: &[CaseSpec],
    variants: &[Variant],
    rounds: u32,
    mut run_on: impl FnMut(usize, &CaseSpec, u32) -> CaseResult,
    mut done: impl FnMut(&CaseSpec, &Variant, u32, &CaseResult, &[Row]),
) -> Vec<Row> {
    let mut rows = Vec::new();
    for round in 0..rounds {
        for spec in specs {
            let n = variants.len();
            for k in 0..n {
                let i = (k + round as usize) % n;
                let variant = &variants[i];
                if !runs(variant, spec) {
                    continue;
                }
                let r = run_on(i, spec, round + 1);
                record(&mut rows, spec, variant.name, &r);
                done(spec, variant, round + 1, &r, &rows);
            }
        }
    }
    rows
}

/// A target for the variant's server.
pub fn target(addr: std::net::SocketAddr, pid: i32, serves: Serves) -> Target {
    Target {
        addr,
        pid: Some(pid),
        gc: None,
        nchan: serves == Serves::Nchan,
        persist: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(published: u64, received: u64, secs: f64, cpu: f64) -> CaseResult {
        let mut r = CaseResult {
            published_ok: published,
            publish_seconds: secs,
            received,
            expected: received,
            delivery_seconds: secs,
            ..Default::default()
        };
        r.cpu.server = Some(cpu);
        r
    }

    #[test]
    fn sums_and_ratios() {
        let spec = crate::cases::all_cases(Some(10), None)
            .into_iter()
            .find(|c| c.name == "n100-burst-k1")
            .unwrap();
        let mut rows = Vec::new();
        record(&mut rows, &spec, FLOOR_SQL, &result(100, 10_000, 1.0, 0.5));
        record(&mut rows, &spec, FLOOR_SQL, &result(100, 10_000, 1.0, 0.5));
        record(
            &mut rows,
            &spec,
            PRODUCT_STORED,
            &result(100, 10_000, 4.0, 2.0),
        );
        let floor = rows[0].get(FLOOR_SQL).unwrap();
        assert_eq!(floor.rounds, 2);
        assert_eq!(floor.publish_rate(), 100.0);
        assert_eq!(floor.cpu_per_publish(), Some(5000.0));
        assert_eq!(floor.cpu_per_delivery(), Some(50.0));
        let product = rows[0].get(PRODUCT_STORED).unwrap();
        assert_eq!(
            ratios(product, floor),
            [Some(0.25), Some(0.25), Some(4.0), Some(4.0)]
        );
    }

    /// Runs `specs` on `vs` with made-up results: the order they ran in, and the rows.
    fn run_order(specs: &[CaseSpec], vs: &[Variant], rounds: u32) -> (Vec<String>, Vec<Row>) {
        let mut order = Vec::new();
        let rows = run(
            specs,
            vs,
            rounds,
            |i, spec, _| {
                order.push(format!("{}@{}", spec.name, vs[i].name));
                result(10, 10, 1.0, 0.1)
            },
            |_, _, _, _, _| {},
        );
        (order, rows)
    }

    #[test]
    fn floors_sit_out_batches_and_the_order_turns() {
        let specs: Vec<CaseSpec> = crate::cases::all_cases(Some(10), None)
            .into_iter()
            .filter(|c| c.name == "n1-burst-k1" || c.name == "n1-batch")
            .collect();
        let vs = variants(true, None, None);
        let (order, _) = run_order(&specs, &vs, 2);
        assert_eq!(order.len(), 2 * (5 + 3));
        assert_eq!(order[0], "n1-burst-k1@product-stored");
        assert_eq!(order[8], "n1-burst-k1@product-accepted");
        assert!(!order.iter().any(|o| o.starts_with("n1-batch@floor")));
    }

    #[test]
    fn the_hub_runs_on_the_product_only_and_the_tree_only_past_one_object() {
        let specs: Vec<CaseSpec> = crate::cases::all_cases(Some(10), None)
            .into_iter()
            .filter(|c| {
                ["n100-hub-burst-k1", "n1000-hub-burst-k1", "n1000-burst-k1"]
                    .contains(&c.name.as_str())
            })
            .collect();
        let vs = variants(true, Some("/before".into()), Some(100));
        let (order, rows) = run_order(&specs, &vs, 1);
        assert!(!order
            .iter()
            .any(|o| o.contains("hub-burst-k1@floor") || o.contains("hub-burst-k1@nchan")));
        assert!(order.contains(&"n1000-hub-burst-k1@product-tree".to_string()));
        assert!(!order.contains(&"n100-hub-burst-k1@product-tree".to_string()));
        assert!(order.contains(&"n100-hub-burst-k1@before-stored".to_string()));
        let hub = rows
            .iter()
            .find(|r| r.case == "n1000-hub-burst-k1")
            .unwrap();
        let labels: Vec<String> = pairs(hub, &rows).into_iter().map(|p| p.0).collect();
        for expected in [
            "product-stored / before-stored",
            "product-tree / product-stored",
            "hub / channel, product-stored",
            "hub / channel, product-tree",
        ] {
            assert!(
                labels.iter().any(|l| l == expected),
                "{expected} in {labels:?}"
            );
        }
    }
}
