//! sse-bench: a load benchmark for the sse-edge worker.
//!
//! It starts the worker (`--runtime wrangler` or `--runtime miniflare`) or uses a running
//! one (`--url`), then for each case opens N SSE listeners, publishes M timestamped
//! messages and reports delivery, publish→receive latency and the runtime's memory.
//! See bench/README.md.

mod cases;
mod http;
mod plot;
mod runtime;
mod sse;
mod stats;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use cases::{CaseResult, CaseSpec, Options, Target};

const USAGE: &str = "\
sse-bench: SSE fan-out benchmark for the sse-edge worker

USAGE:
  cargo run --release -p sse-bench -- --runtime wrangler|miniflare [OPTIONS]
  cargo run --release -p sse-bench -- --url http://127.0.0.1:PORT [--server-pid PID] [OPTIONS]
  cargo run --release -p sse-bench -- --plot        (only redraw bench/results/throughput.svg)
  cargo run --release -p sse-bench -- --list        (list the cases)

OPTIONS:
  --case PATTERN         run matching cases only (repeatable or comma-separated; `*` is a
                         wildcard, e.g. `n100-*`); default: all cases
  --listeners LIST       only cases with these listener counts, e.g. 1,100
  --messages M           messages per case (default 500; 100 for 5000 listeners, 50 for 10000)
  --inflight K           publish requests in flight for the steady-rate cases (default 4)
  --batch B              listeners opened per batch (default 250)
  --var NAME:VALUE       worker variable, passed to wrangler / miniflare (repeatable)
  --reconnect-delay-ms D delay before a cut listener reconnects (default: the stream's retry)
  --max-reconnects R     per listener (default 100)
  --connect-timeout S    per batch of listeners (default 30)
  --idle-timeout S       stop waiting for deliveries after S s without progress (default 15)
  --case-timeout S       bound on one whole case (default 300)
  --settle-ms MS         pause after each case (default 1000)
  --startup-timeout S    wait for `Ready on` (default 120)
  --publish-secret S     sent as `Authorization: Bearer S` (if PUBLISH_SECRET is set)
  --listen-secret S      sent as `?token=S` (if LISTEN_SECRET is set)
  --root DIR             project root (default: the directory above bench/)
  --out DIR              results directory (default: bench/results)
  --label NAME           results file name / runtime label (default: runtime name, or `url`)
  --fresh                replace the results file instead of merging by case name
  --plot                 also write bench/results/throughput.svg after the run
";

struct Args {
    runtime: Option<runtime::Kind>,
    url: Option<SocketAddr>,
    server_pid: Option<i32>,
    cases: Vec<String>,
    listeners: Option<Vec<usize>>,
    messages: Option<u64>,
    inflight: Option<usize>,
    batch: usize,
    vars: Vec<(String, String)>,
    reconnect_delay: Option<Duration>,
    max_reconnects: u32,
    connect_timeout: Duration,
    idle_timeout: Duration,
    case_timeout: Duration,
    settle: Duration,
    startup_timeout: Duration,
    publish_secret: Option<String>,
    listen_secret: Option<String>,
    root: PathBuf,
    out: PathBuf,
    label: Option<String>,
    fresh: bool,
    plot: bool,
    list: bool,
}

fn parse_args(argv: Vec<String>) -> Result<Args, String> {
    let bench_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        runtime: None,
        url: None,
        server_pid: None,
        cases: Vec::new(),
        listeners: None,
        messages: None,
        inflight: None,
        batch: 250,
        vars: Vec::new(),
        reconnect_delay: None,
        max_reconnects: 100,
        connect_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(15),
        case_timeout: Duration::from_secs(300),
        settle: Duration::from_millis(1000),
        startup_timeout: Duration::from_secs(120),
        publish_secret: None,
        listen_secret: None,
        root: bench_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
        out: bench_dir.join("results"),
        label: None,
        fresh: false,
        plot: false,
        list: false,
    };
    let mut it = argv.into_iter();
    fn val(it: &mut impl Iterator<Item = String>, flag: &str) -> Result<String, String> {
        it.next().ok_or_else(|| format!("{flag} needs a value"))
    }
    fn num<T: std::str::FromStr>(s: String, flag: &str) -> Result<T, String> {
        s.parse()
            .map_err(|_| format!("{flag}: not a number: {s:?}"))
    }
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let v = |it: &mut std::vec::IntoIter<String>| match inline.clone() {
            Some(v) => Ok(v),
            None => val(it, &flag),
        };
        match flag.as_str() {
            "--runtime" => {
                a.runtime = Some(match v(&mut it)?.as_str() {
                    "wrangler" => runtime::Kind::Wrangler,
                    "miniflare" => runtime::Kind::Miniflare,
                    other => {
                        return Err(format!("--runtime: wrangler or miniflare, not {other:?}"))
                    }
                })
            }
            "--url" => a.url = Some(parse_url(&v(&mut it)?)?),
            "--server-pid" => a.server_pid = Some(num(v(&mut it)?, &flag)?),
            "--case" => a.cases.extend(
                v(&mut it)?
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            ),
            "--listeners" => {
                let list = v(&mut it)?
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<usize>()
                            .map_err(|_| format!("--listeners: bad number {s:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                a.listeners = Some(list);
            }
            "--messages" => a.messages = Some(num(v(&mut it)?, &flag)?),
            "--inflight" => a.inflight = Some(num(v(&mut it)?, &flag)?),
            "--batch" => a.batch = num(v(&mut it)?, &flag)?,
            "--var" => {
                let s = v(&mut it)?;
                let (k, val) = s
                    .split_once(':')
                    .ok_or_else(|| format!("--var: NAME:VALUE, not {s:?}"))?;
                a.vars.push((k.to_string(), val.to_string()));
            }
            "--reconnect-delay-ms" => {
                a.reconnect_delay = Some(Duration::from_millis(num(v(&mut it)?, &flag)?))
            }
            "--max-reconnects" => a.max_reconnects = num(v(&mut it)?, &flag)?,
            "--connect-timeout" => {
                a.connect_timeout = Duration::from_secs_f64(num(v(&mut it)?, &flag)?)
            }
            "--idle-timeout" => a.idle_timeout = Duration::from_secs_f64(num(v(&mut it)?, &flag)?),
            "--case-timeout" => a.case_timeout = Duration::from_secs_f64(num(v(&mut it)?, &flag)?),
            "--settle-ms" => a.settle = Duration::from_millis(num(v(&mut it)?, &flag)?),
            "--startup-timeout" => {
                a.startup_timeout = Duration::from_secs_f64(num(v(&mut it)?, &flag)?)
            }
            "--publish-secret" => a.publish_secret = Some(v(&mut it)?),
            "--listen-secret" => a.listen_secret = Some(v(&mut it)?),
            "--root" => a.root = PathBuf::from(v(&mut it)?),
            "--out" => a.out = PathBuf::from(v(&mut it)?),
            "--label" => a.label = Some(v(&mut it)?),
            "--fresh" => a.fresh = true,
            "--plot" => a.plot = true,
            "--list" => a.list = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if a.runtime.is_some() && a.url.is_some() {
        return Err("give either --runtime or --url, not both".into());
    }
    if a.runtime.is_none() && a.url.is_none() && !a.plot && !a.list {
        return Err(
            "give --runtime wrangler|miniflare or --url http://127.0.0.1:PORT (see --help)".into(),
        );
    }
    Ok(a)
}

/// `http://HOST:PORT[/]` with a loopback host only: this bench never sends traffic elsewhere.
fn parse_url(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--url: only http:// URLs, not {url:?}"))?;
    let hostport = rest.split('/').next().unwrap_or("");
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| format!("--url: cannot resolve {hostport}: {e}"))?
        .find(|a| a.ip().is_loopback())
        .ok_or_else(|| {
            format!(
                "--url: {hostport} is not a loopback address; this bench only targets this machine"
            )
        })?;
    match addr.ip() {
        IpAddr::V4(_) | IpAddr::V6(_) => Ok(addr),
    }
}

fn selected_cases(a: &Args) -> Vec<CaseSpec> {
    cases::all_cases(a.messages, a.inflight)
        .into_iter()
        .filter(|c| a.cases.is_empty() || a.cases.iter().any(|p| cases::matches(p, &c.name)))
        .filter(|c| {
            a.listeners
                .as_ref()
                .is_none_or(|l| l.contains(&c.listeners))
        })
        .collect()
}

fn main() {
    // Before any thread exists, so that every thread inherits the blocked signals.
    runtime::install_signal_thread();
    runtime::become_subreaper();
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sse-bench: {e}");
            std::process::exit(2);
        }
    };
    if args.list {
        for c in cases::all_cases(args.messages, args.inflight) {
            println!(
                "{:<18} listeners={:<6} messages={:<5} rate={} inflight={}",
                c.name,
                c.listeners,
                c.messages,
                c.rate_label(),
                c.inflight
            );
        }
        return;
    }
    let code = if args.runtime.is_some() || args.url.is_some() {
        match run(&args) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("sse-bench: {e}");
                1
            }
        }
    } else {
        0
    };
    if args.plot {
        match plot::plot_dir(&args.out) {
            Ok(path) => println!("wrote {}", path.display()),
            Err(e) => {
                eprintln!("sse-bench: plot: {e}");
                std::process::exit(1);
            }
        }
    }
    std::process::exit(code);
}

fn run(args: &Args) -> Result<(), String> {
    let specs = selected_cases(args);
    if specs.is_empty() {
        return Err("no case matches (see --list)".into());
    }
    let max_listeners = specs.iter().map(|c| c.listeners).max().unwrap_or(1) as u64;
    // Ours: one per listener; the server's (inherits the limit): two or three per listener
    // (wrangler's proxy holds both sides). Plus slack.
    let (soft, warning) = runtime::raise_nofile(max_listeners * 3 + 2048);
    if let Some(w) = warning {
        eprintln!("sse-bench: warning: {w}");
        if soft < max_listeners + 256 {
            return Err(format!(
                "RLIMIT_NOFILE {soft} is too low for {max_listeners} listeners; see the warning above"
            ));
        }
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;

    let label = args.label.clone().unwrap_or_else(|| match args.runtime {
        Some(k) => k.name().to_string(),
        None => "url".to_string(),
    });
    let mut server = None;
    let target = match (args.runtime, args.url) {
        (Some(kind), _) => {
            eprintln!(
                "sse-bench: starting {} in {}",
                kind.name(),
                args.root.display()
            );
            let s = runtime::Server::start(
                kind,
                &args.root,
                &args.vars,
                args.startup_timeout,
                &args.out,
            )?;
            eprintln!(
                "sse-bench: {} ready on http://{} (pid {}, log {})",
                kind.name(),
                s.addr,
                s.pid(),
                s.log_path.display()
            );
            let t = Target {
                addr: s.addr,
                pid: Some(s.pid()),
            };
            server = Some(s);
            t
        }
        (None, Some(addr)) => Target {
            addr,
            pid: args.server_pid,
        },
        (None, None) => unreachable!("checked in parse_args"),
    };

    let run_id = format!("{:x}", cases::now_us() / 1000 % 0xffff_ffff);
    let opts = Options {
        batch: args.batch,
        connect_timeout: args.connect_timeout,
        idle_timeout: args.idle_timeout,
        case_timeout: args.case_timeout,
        reconnect_delay: args.reconnect_delay,
        max_reconnects: args.max_reconnects,
        settle: args.settle,
        run_id,
        request_timeout: Duration::from_secs(30),
        bearer: args.publish_secret.clone(),
        listen_token: args.listen_secret.clone(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let results_path = args.out.join(format!("{label}.json"));
    let mut results: Vec<CaseResult> = Vec::new();
    print_header();
    for spec in &specs {
        eprintln!(
            "sse-bench: case {}: {} listeners, {} messages, {}",
            spec.name,
            spec.listeners,
            spec.messages,
            match spec.rate_label().as_str() {
                "max" => format!("max rate, {} in flight", spec.inflight),
                rate => rate.to_string(),
            }
        );
        let r = rt.block_on(cases::run_case(spec, &target, &opts));
        print_row(&label, &r);
        for e in &r.errors {
            eprintln!("    {}: {e}", r.name);
        }
        results.push(r);
        // Write after every case, so an interrupted run keeps what it measured.
        write_results(&results_path, &label, args, &results)?;
    }
    drop(rt);
    if let Some(mut s) = server.take() {
        s.stop();
    }
    println!("\nresults: {}", results_path.display());
    Ok(())
}

fn fmt_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

fn print_header() {
    println!(
        "{:<10} {:<16} {:>11} {:>6} {:>8} {:>9} {:>9} {:>7} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8} {:>7} note",
        "runtime", "case", "listeners", "msgs", "pub/s", "expected", "received", "lost", "reconn",
        "events/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "RSS0 MB", "RSS1 MB", "KB/lstn", "srvCPU"
    );
}

fn print_row(label: &str, r: &CaseResult) {
    let lat = |f: fn(&stats::Summary) -> f64| {
        r.latency
            .as_ref()
            .map(|s| format!("{:.1}", f(s)))
            .unwrap_or("-".into())
    };
    let mb = |kb: Option<u64>| {
        kb.map(|k| format!("{:.0}", k as f64 / 1024.0))
            .unwrap_or("-".into())
    };
    let mut note = Vec::new();
    if r.timed_out {
        note.push("TIMEOUT");
    }
    if r.publish_errors > 0 {
        note.push("PUBERR");
    }
    if r.duplicates > 0 {
        note.push("DUP");
    }
    if r.server_reloads > 0 {
        note.push("RELOAD");
    }
    println!(
        "{:<10} {:<16} {:>11} {:>6} {:>8.0} {:>9} {:>9} {:>7} {:>6} {:>9.0} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8} {:>7} {}",
        label,
        r.name,
        format!("{}/{}", r.connected, r.listeners),
        r.published_ok,
        r.publish_rate,
        r.expected,
        r.received,
        r.lost,
        r.reconnects,
        r.delivered_per_sec,
        lat(|s| s.p50),
        lat(|s| s.p90),
        lat(|s| s.p99),
        lat(|s| s.max),
        mb(r.rss_kb_before),
        mb(r.rss_kb_after_connect),
        fmt_opt(r.rss_kb_per_listener.map(|v| format!("{v:.1}"))),
        fmt_opt(r.server_cpu_seconds.map(|v| format!("{v:.1}s"))),
        note.join(",")
    );
}

fn summary_json(s: &Option<stats::Summary>) -> Value {
    match s {
        Some(s) => json!({
            "count": s.count,
            "p50": stats::round(s.p50, 3),
            "p90": stats::round(s.p90, 3),
            "p99": stats::round(s.p99, 3),
            "max": stats::round(s.max, 3),
            "mean": stats::round(s.mean, 3),
        }),
        None => Value::Null,
    }
}

fn case_json(r: &CaseResult) -> Value {
    let by_process: serde_json::Map<String, Value> = r
        .rss_by_process
        .iter()
        .map(|(n, kb)| (n.clone(), json!(kb)))
        .collect();
    json!({
        "name": r.name,
        "kind": r.kind,
        "channel": r.channel,
        "listeners": r.listeners,
        "connected": r.connected,
        "connect_failures": r.connect_failures,
        "connect_seconds": stats::round(r.connect_seconds, 3),
        "server_listeners": r.server_listeners,
        "messages": r.messages,
        "rate": r.rate,
        "inflight": r.inflight,
        "published_ok": r.published_ok,
        "publish_errors": r.publish_errors,
        "publish_seconds": stats::round(r.publish_seconds, 3),
        "publish_rate": stats::round(r.publish_rate, 1),
        "publish_rtt_ms": summary_json(&r.publish_rtt),
        "expected": r.expected,
        "received": r.received,
        "lost": r.lost,
        "duplicates": r.duplicates,
        "foreign_events": r.foreign,
        "gaps": r.gaps,
        "reconnects": r.reconnects,
        "heartbeats": r.heartbeats,
        "delivery_seconds": stats::round(r.delivery_seconds, 3),
        "delivered_per_sec": stats::round(r.delivered_per_sec, 1),
        "latency_ms": summary_json(&r.latency),
        "rss_kb": {
            "before": r.rss_kb_before,
            "after_connect": r.rss_kb_after_connect,
            "after_publish": r.rss_kb_after_publish,
            "per_listener": r.rss_kb_per_listener.map(|v| stats::round(v, 2)),
            "by_process_after_publish": by_process,
        },
        "cpu_seconds": {
            "server": r.server_cpu_seconds,
            "server_by_process": r.server_cpu_by_process.iter().map(|(n, v)| (n.clone(), json!(v))).collect::<serde_json::Map<String, Value>>(),
            "bench": r.bench_cpu_seconds,
            "note": "server: from the first publish until deliveries ended; bench: the whole case",
        },
        "server_stats": r.server_stats,
        "timed_out": r.timed_out,
        "server_reloads": r.server_reloads,
        "errors": r.errors,
        "finished_at": cases::now_us() / 1_000_000,
    })
}

fn package_version(root: &Path, pkg: &str) -> Value {
    std::fs::read_to_string(root.join("node_modules").join(pkg).join("package.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| v.get("version").cloned())
        .unwrap_or(Value::Null)
}

/// Writes `<out>/<label>.json`, keeping cases of earlier runs that this run did not repeat
/// (unless `--fresh`).
fn write_results(
    path: &Path,
    label: &str,
    args: &Args,
    results: &[CaseResult],
) -> Result<(), String> {
    let mut cases_out: Vec<Value> = Vec::new();
    if !args.fresh {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(old) = serde_json::from_str::<Value>(&text) {
                if let Some(arr) = old.get("cases").and_then(|c| c.as_array()) {
                    cases_out.extend(arr.iter().cloned());
                }
            }
        }
    }
    for r in results {
        let v = case_json(r);
        match cases_out
            .iter_mut()
            .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(&r.name))
        {
            Some(slot) => *slot = v,
            None => cases_out.push(v),
        }
    }
    // Suite order: by listeners, then kind.
    let order: Vec<String> = cases::all_cases(None, None)
        .into_iter()
        .map(|c| c.name)
        .collect();
    cases_out.sort_by_key(|c| {
        let name = c.get("name").and_then(|n| n.as_str()).unwrap_or("");
        order.iter().position(|o| o == name).unwrap_or(usize::MAX)
    });
    let vars: serde_json::Map<String, Value> = args
        .vars
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let doc = json!({
        "runtime": label,
        "updated": cases::now_us() / 1_000_000,
        "machine": {
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        },
        "versions": {
            "wrangler": package_version(&args.root, "wrangler"),
            "miniflare": package_version(&args.root, "miniflare"),
            "workerd": package_version(&args.root, "workerd"),
        },
        "vars": vars,
        "cases": cases_out,
    });
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Result<Args, String> {
        parse_args(s.iter().map(|x| x.to_string()).collect())
    }

    #[test]
    fn url_must_be_loopback() {
        assert!(parse_url("http://127.0.0.1:8787").is_ok());
        assert!(parse_url("http://localhost:8787/").is_ok());
        assert!(parse_url("http://10.0.0.1:8787").is_err());
        assert!(parse_url("https://127.0.0.1:8787").is_err());
    }

    #[test]
    fn selection() {
        let a = args(&[
            "--runtime",
            "miniflare",
            "--listeners",
            "1,100",
            "--messages",
            "200",
        ])
        .unwrap();
        let names: Vec<String> = selected_cases(&a).into_iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "n1-burst-k1",
                "n1-burst-k16",
                "n1-rate50",
                "n100-burst-k1",
                "n100-burst-k16",
                "n100-rate50"
            ]
        );
        let a = args(&["--url", "http://127.0.0.1:1", "--case", "n1000-*,n1-rate50"]).unwrap();
        assert_eq!(selected_cases(&a).len(), 4);
        assert!(args(&[]).is_err());
        assert!(args(&["--runtime", "node"]).is_err());
        let a = args(&["--runtime=wrangler", "--var", "QUEUE_CAPACITY:64"]).unwrap();
        assert_eq!(
            a.vars,
            vec![("QUEUE_CAPACITY".to_string(), "64".to_string())]
        );
    }
}
