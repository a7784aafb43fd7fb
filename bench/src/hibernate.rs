//! `--compare-hibernate`: one build served twice, side by side, with `HIBERNATE=0` (each
//! object holds its listeners' streams) and `HIBERNATE=1` (the entry Worker holds them,
//! fed by the objects over WebSockets accepted with the hibernation API), the channel
//! and hub fan-out cases interleaved (each case on both before the next, the order
//! turning each round), printed as ratios: the runtime's CPU per delivery (its whole
//! process group: Worker and objects together), delivered events/s, latency, losses.

use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::cases::{self, CaseResult, CaseSpec, Options};
use crate::compare::{self, Row, Variant};
use crate::runtime::{self, Serves};
use crate::Args;

/// `HIBERNATE=0`: each object holds its listeners' streams.
pub const STREAMS: &str = "streams";
/// `HIBERNATE=1`: the entry Worker holds them; objects sleep between events.
pub const HIBERNATING: &str = "hibernating";

/// The cases unless `--case` says: fan-out to 100 and 1,000 listeners on a channel and
/// on the hub, one publish in flight.
pub const DEFAULT_CASES: [&str; 4] = [
    "n100-burst-k1",
    "n1000-burst-k1",
    "n100-hub-burst-k1",
    "n1000-hub-burst-k1",
];

/// The CPU per delivery the hibernating mode may cost, as a multiple of the other's.
pub const TARGET: f64 = 1.3;

/// Both modes of the same build.
pub fn variants() -> Vec<Variant> {
    vec![
        Variant::new(STREAMS, Serves::Product, &[("HIBERNATE", "0")]),
        Variant::new(HIBERNATING, Serves::Product, &[("HIBERNATE", "1")]),
    ]
}

/// `--case` or the default cases; a channel's and the hub's with as many listeners get
/// the same messages (a comparison's `burst-k1` count) unless `--messages`.
pub fn cases(a: &Args) -> Vec<CaseSpec> {
    cases::all_cases(a.messages, a.inflight)
        .into_iter()
        .filter(|c| match a.cases.is_empty() {
            true => DEFAULT_CASES.contains(&c.name.as_str()),
            false => a.cases.iter().any(|p| cases::matches(p, &c.name)),
        })
        .filter(|c| a.listeners.is_empty() || a.listeners.contains(&c.listeners))
        .filter(|c| !c.is_memory())
        .map(|mut c| {
            if a.messages.is_none() && (c.base_kind() == "burst-k1" || c.is_hub()) {
                c.messages = compare::default_messages(&c);
            }
            c
        })
        .collect()
}

/// What identifies the build a runtime serves: the SHA-256 of the worker's files (its
/// first 16 hex digits), so that a run can tell whether both modes ran the same one.
pub fn build_id(root: &Path) -> Option<String> {
    let mut hash = Sha256::new();
    for file in [
        "build/index.js",
        "build/index_bg.wasm",
        "build/worker/shim.mjs",
    ] {
        hash.update(std::fs::read(root.join(file)).ok()?);
    }
    let digest = hash.finalize();
    Some(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// One case in one mode over the rounds: what the sums do not keep.
#[derive(Debug, Default, Serialize)]
pub struct Detail {
    pub p50_ms: Vec<f64>,
    pub p99_ms: Vec<f64>,
    pub lost: u64,
    pub duplicates: u64,
    pub reconnects: u64,
    /// `sleeping` as the server counted it with the listeners connected, each round.
    pub sleeping: Vec<Option<u64>>,
    /// `starts` after the case, each round.
    pub starts: Vec<Option<u64>>,
}

impl Detail {
    fn add(&mut self, r: &CaseResult) {
        if let Some(l) = &r.latency {
            self.p50_ms.push(l.p50);
            self.p99_ms.push(l.p99);
        }
        self.lost += r.lost;
        self.duplicates += r.duplicates;
        self.reconnects += r.reconnects;
        let number = |v: &Option<Value>, key: &str| {
            v.as_ref().and_then(|v| v.get(key)).and_then(Value::as_u64)
        };
        self.sleeping
            .push(number(&r.server_stats_connected, "sleeping"));
        self.starts.push(number(&r.server_stats, "starts"));
    }

    fn mean(v: &[f64]) -> Option<f64> {
        (!v.is_empty()).then(|| crate::stats::round(v.iter().sum::<f64>() / v.len() as f64, 1))
    }

    pub fn p50(&self) -> Option<f64> {
        Detail::mean(&self.p50_ms)
    }

    pub fn p99(&self) -> Option<f64> {
        Detail::mean(&self.p99_ms)
    }
}

/// Every case's details, by case and mode.
#[derive(Debug, Default)]
pub struct Details(Vec<(String, &'static str, Detail)>);

impl Details {
    pub fn add(&mut self, spec: &CaseSpec, variant: &'static str, r: &CaseResult) {
        let i = match self
            .0
            .iter()
            .position(|(c, v, _)| *c == spec.name && *v == variant)
        {
            Some(i) => i,
            None => {
                self.0.push((spec.name.clone(), variant, Detail::default()));
                self.0.len() - 1
            }
        };
        self.0[i].2.add(r);
    }

    fn get(&self, case: &str, variant: &str) -> Option<&Detail> {
        self.0
            .iter()
            .find(|(c, v, _)| c == case && *v == variant)
            .map(|(_, _, d)| d)
    }
}

/// hibernating / streams, of CPU per delivery, delivered events/s, and mean p50 and p99.
#[derive(Debug, Serialize)]
pub struct Ratios {
    pub cpu_per_delivery: Option<f64>,
    pub delivered_per_sec: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(crate::stats::round(a / b, 2)),
        _ => None,
    }
}

fn ratios(row: &Row, details: &Details) -> Option<Ratios> {
    let (h, s) = (row.get(HIBERNATING)?, row.get(STREAMS)?);
    let [_, delivered, _, cpu] = compare::ratios(h, s);
    let (dh, ds) = (
        details.get(&row.case, HIBERNATING)?,
        details.get(&row.case, STREAMS)?,
    );
    Some(Ratios {
        cpu_per_delivery: cpu,
        delivered_per_sec: delivered,
        p50: ratio(dh.p50(), ds.p50()),
        p99: ratio(dh.p99(), ds.p99()),
    })
}

/// A hub case's CPU per delivery over its channel twin's (as many listeners), in `variant`.
fn hub_over_channel(row: &Row, rows: &[Row], variant: &str) -> Option<f64> {
    if !row.case.contains("-hub-") {
        return None;
    }
    let twin = format!("n{}-burst-k1", row.listeners);
    let channel = rows.iter().find(|r| r.case == twin)?;
    ratio(
        row.get(variant)?.cpu_per_delivery(),
        channel.get(variant)?.cpu_per_delivery(),
    )
}

pub fn print_table(rows: &[Row], details: &Details) {
    let f = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
    let list = |v: &[Option<u64>]| {
        v.iter()
            .map(|n| n.map_or("-".to_string(), |n| n.to_string()))
            .collect::<Vec<_>>()
            .join(",")
    };
    println!(
        "\n{:<19} {:<12} {:>6} {:>9} {:>9} {:>8} {:>8} {:>6} {:>5} {:>6} {:>9} {:>7}  note",
        "case",
        "mode",
        "rounds",
        "ev/s",
        "µs/deliv",
        "p50 ms",
        "p99 ms",
        "lost",
        "dup",
        "reconn",
        "sleeping",
        "starts"
    );
    for row in rows {
        for (name, s) in &row.variants {
            let d = details.get(&row.case, name);
            println!(
                "{:<19} {:<12} {:>6} {:>9.0} {:>9} {:>8} {:>8} {:>6} {:>5} {:>6} {:>9} {:>7}  {}",
                row.case,
                name,
                s.rounds,
                s.delivered_rate(),
                f(s.cpu_per_delivery(), 1),
                f(d.and_then(Detail::p50), 1),
                f(d.and_then(Detail::p99), 1),
                s.expected.saturating_sub(s.received),
                d.map_or(0, |d| d.duplicates),
                d.map_or(0, |d| d.reconnects),
                d.map_or("-".into(), |d| list(&d.sleeping)),
                d.map_or("-".into(), |d| list(&d.starts)),
                s.notes.join(",")
            );
        }
    }
    println!(
        "\n{HIBERNATING} / {STREAMS} (runtime CPU per delivery, target ≤ {TARGET:.2}; ev/s higher is faster; latency lower is better)"
    );
    println!(
        "{:<19} {:>10} {:>8} {:>8} {:>8}  {:<7} {:>22}",
        "case", "CPU/deliv", "ev/s", "p50", "p99", "target", "hub/channel: str, hib"
    );
    for row in rows {
        let Some(r) = ratios(row, details) else {
            continue;
        };
        let met = match r.cpu_per_delivery {
            Some(c) if c <= TARGET => "met",
            Some(_) => "NOT met",
            None => "-",
        };
        let hub = format!(
            "{}, {}",
            f(hub_over_channel(row, rows, STREAMS), 2),
            f(hub_over_channel(row, rows, HIBERNATING), 2)
        );
        println!(
            "{:<19} {:>10} {:>8} {:>8} {:>8}  {:<7} {:>22}",
            row.case,
            f(r.cpu_per_delivery, 2),
            f(r.delivered_per_sec, 2),
            f(r.p50, 2),
            f(r.p99, 2),
            met,
            if row.case.contains("-hub-") {
                hub
            } else {
                String::new()
            }
        );
    }
}

/// The rows with their details and ratios, for the results file.
pub fn to_json(rows: &[Row], details: &Details) -> Value {
    let rows: Vec<Value> = rows
        .iter()
        .map(|row| {
            let modes: serde_json::Map<String, Value> = row
                .variants
                .iter()
                .map(|(n, s)| {
                    let d = details.get(&row.case, n);
                    (
                        n.clone(),
                        json!({
                            "sum": s,
                            "delivered_per_sec": crate::stats::round(s.delivered_rate(), 1),
                            "cpu_us_per_delivery": s.cpu_per_delivery().map(|v| crate::stats::round(v, 2)),
                            "cpu_us_per_publish": s.cpu_per_publish().map(|v| crate::stats::round(v, 1)),
                            "p50_ms_mean": d.and_then(Detail::p50),
                            "p99_ms_mean": d.and_then(Detail::p99),
                            "detail": d,
                            "hub_over_channel_cpu": hub_over_channel(row, rows, n),
                        }),
                    )
                })
                .collect();
            json!({
                "case": row.case,
                "listeners": row.listeners,
                "modes": modes,
                "hibernating_over_streams": ratios(row, details),
            })
        })
        .collect();
    Value::Array(rows)
}

/// `--compare-hibernate`: both modes' runtimes started side by side, the cases
/// interleaved, the ratios printed, `<out>/hibernate-compare[-<label>].json` written.
pub fn run_compare(args: &Args) -> Result<(), String> {
    let kind = args.runtime.ok_or("--compare-hibernate needs --runtime")?;
    let specs = cases(args);
    if specs.is_empty() {
        return Err("no fan-out case matches (see --list)".into());
    }
    let max_listeners = specs.iter().map(|c| c.listeners).max().unwrap_or(1) as u64;
    let (_, warning) = runtime::raise_nofile(max_listeners * 3 * 2 + 2048);
    if let Some(w) = warning {
        eprintln!("sse-bench: warning: {w}");
    }
    let out = args.out();
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let variants = variants();
    let root = args.root();
    let build = build_id(&root);
    let servers = crate::start_variants(args, kind, &variants, "hibernate")?;
    if build_id(&root) != build {
        return Err("the build changed while the runtimes started: run again".into());
    }
    let targets: Vec<_> = servers
        .iter()
        .zip(&variants)
        .map(|(s, v)| compare::target(s.addr, s.pid(), v.serves))
        .collect();
    let opts = crate::run_options(args);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let name = match &args.label {
        Some(label) => format!("hibernate-compare-{label}.json"),
        None => "hibernate-compare.json".to_string(),
    };
    let path = out.join(name);
    let mut results: Vec<Value> = Vec::new();
    let mut details = Details::default();
    let mut write_error = None;
    crate::print_header();
    let rows = compare::run(
        &specs,
        &variants,
        args.rounds.max(1),
        |i, spec, round| {
            eprintln!(
                "sse-bench: case {} on {} (round {round}): {} listeners, {} events",
                spec.name, variants[i].name, spec.listeners, spec.messages
            );
            let opts = Options {
                run_id: format!("{}-r{round}", opts.run_id),
                ..opts.clone()
            };
            rt.block_on(cases::run_case(spec, &targets[i], &opts))
        },
        |spec, variant, round, r, rows| {
            crate::print_row(variant.name, r);
            for e in &r.errors {
                eprintln!("    {}: {e}", r.name);
            }
            details.add(spec, variant.name, r);
            results.push(crate::round_entry(&spec.name, variant.name, round, r));
            let extra = json!({
                "note": "compare-hibernate: the same build with HIBERNATE=0 (streams) and HIBERNATE=1 (hibernating), \
                         side by side, each case on both, interleaved; CPU: the runtime's whole process group from the \
                         first publish until deliveries end; summary: sums over rounds, latency: mean of the rounds' \
                         percentiles; ratios hibernating / streams",
                "build": build,
                "target_cpu_ratio": TARGET,
                "variants": variants.iter().map(|v| json!({"name": v.name, "vars": v.vars.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>()})).collect::<Vec<_>>(),
                "summary": to_json(rows, &details),
            });
            if let Err(e) = crate::write_results(&path, "runs", args, extra, &results) {
                write_error = Some(e);
            }
        },
    );
    for mut s in servers {
        s.stop();
    }
    print_table(&rows, &details);
    println!("\nresults: {}", path.display());
    write_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_modes_run_every_case() {
        let vs = variants();
        assert_eq!(vs.len(), 2);
        let specs = cases::all_cases(Some(10), None);
        for spec in specs
            .iter()
            .filter(|c| DEFAULT_CASES.contains(&c.name.as_str()))
        {
            assert!(vs.iter().all(|v| compare::runs(v, spec)), "{}", spec.name);
        }
        assert_eq!(vs[1].vars, [("HIBERNATE".to_string(), "1".to_string())]);
    }

    #[test]
    fn default_cases_and_their_messages() {
        use clap::Parser as _;
        let a =
            Args::try_parse_from(["sse-bench", "--runtime", "miniflare", "--compare-hibernate"])
                .unwrap();
        let c = cases(&a);
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "n100-burst-k1",
                "n1000-burst-k1",
                "n100-hub-burst-k1",
                "n1000-hub-burst-k1"
            ]
        );
        let messages: Vec<u64> = c.iter().map(|c| c.messages).collect();
        assert_eq!(messages, [1000, 200, 1000, 200]);
        assert!(Args::try_parse_from([
            "sse-bench",
            "--runtime",
            "miniflare",
            "--compare-hibernate",
            "--rounds",
            "2"
        ])
        .is_ok());
        assert!(Args::try_parse_from([
            "sse-bench",
            "--runtime",
            "miniflare",
            "--compare",
            "--compare-hibernate"
        ])
        .is_err());
        let a = Args::try_parse_from([
            "sse-bench",
            "--runtime",
            "miniflare",
            "--case",
            "idle-*",
            "--listeners",
            "1000",
        ])
        .unwrap();
        let idle: Vec<String> = crate::idle::selected(&a)
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(idle, ["idle-n1000-c10"]);
        let a = Args::try_parse_from(["sse-bench", "--runtime", "miniflare"]).unwrap();
        assert!(
            crate::idle::selected(&a).is_empty(),
            "only when --case names them"
        );
    }
}
