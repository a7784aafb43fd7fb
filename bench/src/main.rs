//! sse-bench: a load benchmark for the sse-edge worker.
//!
//! It starts the worker (`--runtime wrangler` or `--runtime miniflare`) or uses a running
//! one (`--url`), then for each case opens N SSE listeners, publishes M timestamped
//! messages and reports delivery, publish→receive latency and the runtime's memory; the
//! memory cases compare idle listeners' memory with the runtime's floor.
//! See bench/README.md.

mod cases;
mod client;
mod compare;
mod hibernate;
mod idle;
mod memory;
mod plot;
mod runtime;
mod stats;
mod tokens;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser as _;
use serde_json::{json, Value};

use cases::{CaseResult, CaseSpec, Options, Target};
use runtime::Serves;

/// SSE fan-out benchmark for the sse-edge worker (see bench/README.md).
#[derive(clap::Parser, Debug)]
#[command(name = "sse-bench")]
#[command(group(clap::ArgGroup::new("comparing").args(["compare", "compare_hibernate"])))]
struct Args {
    /// Start the worker with this runtime.
    #[arg(long, value_enum, conflicts_with = "url",
          required_unless_present_any = ["url", "plot", "list"])]
    runtime: Option<runtime::Kind>,
    /// A worker already running on this machine (http://127.0.0.1:PORT).
    #[arg(long, value_parser = parse_url)]
    url: Option<SocketAddr>,
    /// With --url: the server's process (tree) to measure memory and CPU of.
    #[arg(long, requires = "url")]
    server_pid: Option<i32>,
    /// Run matching cases only (`*` is a wildcard, e.g. `n100-*`, `mem-*`); default: all.
    #[arg(long = "case", value_delimiter = ',')]
    cases: Vec<String>,
    /// Only cases with these listener counts, e.g. 1,100.
    #[arg(long, value_delimiter = ',')]
    listeners: Vec<usize>,
    /// Messages per fan-out case (default 500; 100 for 5000 listeners, 50 for 10000).
    #[arg(long)]
    messages: Option<u64>,
    /// Publish requests in flight for the steady-rate cases (default 4).
    #[arg(long)]
    inflight: Option<usize>,
    /// Listeners opened per batch.
    #[arg(long, default_value_t = 250)]
    batch: usize,
    /// Worker variable NAME:VALUE, passed to wrangler / miniflare (repeatable).
    #[arg(long = "var", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// Delay before a cut listener reconnects (default: the stream's retry).
    #[arg(long)]
    reconnect_delay_ms: Option<u64>,
    /// Reconnects per listener at most.
    #[arg(long, default_value_t = 100)]
    max_reconnects: u32,
    /// Seconds for a batch of listeners to get their response heads.
    #[arg(long, default_value = "30", value_parser = parse_secs)]
    connect_timeout: Duration,
    /// Stop waiting for deliveries after this many seconds without progress.
    #[arg(long, default_value = "15", value_parser = parse_secs)]
    idle_timeout: Duration,
    /// Bound on one whole case, in seconds.
    #[arg(long, default_value = "300", value_parser = parse_secs)]
    case_timeout: Duration,
    /// Pause after each case, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
    /// Seconds to wait for the runtime's `Ready on`.
    #[arg(long, default_value = "120", value_parser = parse_secs)]
    startup_timeout: Duration,
    /// Publish cases beside the runtime's floor and nchan, all in one run, as ratios
    /// (default cases: n1-burst-k1, n100-burst-k1, n1-batch, n100-batch); Miniflare only.
    #[arg(long)]
    compare: bool,
    /// The same build with HIBERNATE=0 and HIBERNATE=1 side by side, the channel and hub
    /// fan-out cases interleaved, as ratios (default cases: n100-burst-k1,
    /// n1000-burst-k1, n100-hub-burst-k1, n1000-hub-burst-k1).
    #[arg(long)]
    compare_hibernate: bool,
    /// With --compare or --compare-hibernate: how many times to run each case on each
    /// variant (interleaved).
    #[arg(long, default_value_t = 1, requires = "comparing")]
    rounds: u32,
    /// With --compare: leave nchan out.
    #[arg(long, requires = "compare")]
    no_nchan: bool,
    /// With --compare: also run the build in this checkout (an earlier commit, built with
    /// scripts/build.sh) as `before-stored`, and print this build's ratios to it.
    #[arg(long, requires = "compare")]
    before: Option<PathBuf>,
    /// With --compare: also run this build with LISTENERS_PER_OBJECT=N as `product-tree`,
    /// on the cases with more than N listeners, and print its ratios to one object.
    #[arg(long, requires = "compare")]
    tree: Option<usize>,
    /// Memory cases: measure the product only, not the runtime's floor.
    #[arg(long)]
    no_floor: bool,
    /// Memory cases: seconds the listeners are held idle before measuring (the product
    /// writes a keep-alive every HEARTBEAT_SECONDS / 3, 5 s by default).
    #[arg(long, default_value = "11", value_parser = parse_secs)]
    hold: Duration,
    /// Idle cases (`idle-*`): seconds the listeners are held without events.
    #[arg(long, default_value = "20", value_parser = parse_secs)]
    idle: Duration,
    /// Sent as `Authorization: Bearer S` (if PUBLISH_SECRET is set).
    #[arg(long)]
    publish_secret: Option<String>,
    /// Sent as `?token=S` (if LISTEN_SECRET is set).
    #[arg(long)]
    listen_secret: Option<String>,
    /// Project root (default: the directory above bench/).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Results directory (default: bench/results).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Results file name / runtime label (default: the runtime's name, or `url`).
    #[arg(long)]
    label: Option<String>,
    /// Replace the results file instead of merging by case name.
    #[arg(long)]
    fresh: bool,
    /// Write bench/results/throughput.svg (alone: only redraw it).
    #[arg(long)]
    plot: bool,
    /// List the cases.
    #[arg(long)]
    list: bool,
}

impl Args {
    fn root(&self) -> PathBuf {
        self.root.clone().unwrap_or_else(|| {
            let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
            bench.parent().unwrap_or(bench).to_path_buf()
        })
    }

    fn out(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("results"))
    }

    fn label(&self) -> String {
        self.label.clone().unwrap_or_else(|| match self.runtime {
            Some(k) => k.name().to_string(),
            None => "url".to_string(),
        })
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("not a number of seconds: {s:?}"))
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    s.split_once(':')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("NAME:VALUE, not {s:?}"))
}

/// `http://HOST:PORT[/]` with a loopback host only: this bench never sends traffic elsewhere.
fn parse_url(url: &str) -> Result<SocketAddr, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
    if parsed.scheme() != "http" {
        return Err(format!("only http:// URLs, not {url:?}"));
    }
    let host = parsed.host_str().unwrap_or("");
    let port = parsed.port_or_known_default().unwrap_or(80);
    (host.trim_matches(['[', ']']), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .find(|a| a.ip().is_loopback())
        .ok_or_else(|| {
            format!("{host} is not a loopback address; this bench only targets this machine")
        })
}

fn selected_cases(a: &Args) -> Vec<CaseSpec> {
    cases::all_cases(a.messages, a.inflight)
        .into_iter()
        .filter(|c| a.cases.is_empty() || a.cases.iter().any(|p| cases::matches(p, &c.name)))
        .filter(|c| a.listeners.is_empty() || a.listeners.contains(&c.listeners))
        .collect()
}

fn main() {
    // Before any thread exists, so that every thread inherits the blocked signals.
    runtime::install_signal_thread();
    runtime::become_subreaper();
    let args = Args::parse();
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
        for c in idle::specs() {
            println!(
                "{:<18} listeners={:<6} channels={:<4} (HIBERNATE=0 and 1; only with --case)",
                c.name, c.listeners, c.channels
            );
        }
        return;
    }
    let mut code = 0;
    if args.runtime.is_some() || args.url.is_some() {
        if let Err(e) = run(&args) {
            eprintln!("sse-bench: {e}");
            code = 1;
        }
    }
    if args.plot {
        match plot::plot_dir(&args.out()) {
            Ok(path) => println!("wrote {}", path.display()),
            Err(e) => {
                eprintln!("sse-bench: plot: {e}");
                code = 1;
            }
        }
    }
    std::process::exit(code);
}

/// The cases of a comparison run: `--case` or the default ones, and for `burst-k1` more
/// messages than the suite's (unless `--messages`).
fn compare_cases(a: &Args) -> Vec<CaseSpec> {
    cases::all_cases(a.messages, a.inflight)
        .into_iter()
        .filter(|c| {
            if a.cases.is_empty() {
                compare::DEFAULT_CASES.contains(&c.name.as_str())
            } else {
                a.cases.iter().any(|p| cases::matches(p, &c.name))
            }
        })
        .filter(|c| a.listeners.is_empty() || a.listeners.contains(&c.listeners))
        // The hub cases only when asked for: the floor and nchan sit them out.
        .filter(|c| !c.is_memory() && (!c.is_hub() || !a.cases.is_empty()))
        .map(|mut c| {
            if a.messages.is_none() && c.base_kind() == "burst-k1" {
                c.messages = compare::default_messages(&c);
            }
            c
        })
        .collect()
}

fn run(args: &Args) -> Result<(), String> {
    if args.compare {
        return run_compare(args);
    }
    if args.compare_hibernate {
        return hibernate::run_compare(args);
    }
    let specs = selected_cases(args);
    let idle_specs = idle::selected(args);
    if !idle_specs.is_empty() {
        idle::run(args, &idle_specs)?;
        if specs.is_empty() {
            return Ok(());
        }
    }
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
    let out = args.out();
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let opts = run_options(args);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let (memory_specs, fanout_specs): (Vec<CaseSpec>, Vec<CaseSpec>) =
        specs.into_iter().partition(CaseSpec::is_memory);
    let label = args.label();
    if !fanout_specs.is_empty() {
        let path = out.join(format!("{label}.json"));
        with_server(args, Serves::Product, |target| {
            let mut results: Vec<Value> = Vec::new();
            let mut done: Vec<CaseResult> = Vec::new();
            print_header();
            for spec in &fanout_specs {
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
                results.push(serde_json::to_value(&r).map_err(|e| e.to_string())?);
                // Written after every case, so an interrupted run keeps what it measured.
                write_results(&path, "cases", args, json!({}), &results)?;
                done.push(r);
            }
            print_hub_ratios(&done);
            print_token_ratios(&done);
            if fanout_specs.iter().any(|c| c.streamed) {
                let storage = token_storage(args, &target, &opts, &rt);
                let extra = json!({ "ended_channel_storage": storage });
                write_results(&path, "cases", args, extra, &results)?;
            }
            println!("\nresults: {}", path.display());
            Ok::<(), String>(())
        })??;
    }
    if !memory_specs.is_empty() {
        let with_floor = !args.no_floor && memory::has_floor(args.runtime);
        if !with_floor && !args.no_floor {
            eprintln!("sse-bench: the floor is measured under --runtime miniflare only");
        }
        let rows = memory::run(&memory_specs, with_floor, |serves, spec| {
            with_server(args, serves, |target| {
                rt.block_on(cases::run_case(spec, &target, &opts))
            })
        })?;
        memory::print_table(&label, &rows);
        let path = out.join(format!("memory-{label}.json"));
        let extra = json!({ "note": memory::note() });
        write_results(&path, "memory", args, extra, &memory::to_json(&rows)?)?;
        println!("\nresults: {}", path.display());
    }
    Ok(())
}

/// The token cases side by side: per listener count, each way of publishing the same
/// events as its events/s and latency beside the streaming publish's.
fn print_token_ratios(done: &[CaseResult]) {
    let find = |kind: &str, n: usize| done.iter().find(|r| r.kind == kind && r.listeners == n);
    let mut header = false;
    for n in cases::TOKEN_COUNTS {
        let Some(streamed) = find(cases::TOKEN_STREAM_KIND, n) else {
            continue;
        };
        if !header {
            println!(
                "\ntoken streaming (events/s delivered, publish-to-receive latency ms p50/p99):"
            );
            header = true;
        }
        for kind in [
            "tokens-k1",
            "tokens-batch",
            cases::TOKEN_STREAM_KIND,
            cases::TOKEN_PACED_KIND,
        ] {
            let Some(r) = find(kind, n) else { continue };
            let (p50, p99) = r
                .latency
                .as_ref()
                .map_or((f64::NAN, f64::NAN), |l| (l.p50, l.p99));
            let ratio = r.delivered_per_sec / streamed.delivered_per_sec.max(f64::MIN_POSITIVE);
            println!(
                "  n{n:<4} {kind:<20} {:>10.0}/s ({ratio:>5.2}x the stream)  p50 {p50:>8.1}  p99 {p99:>8.1}",
                r.delivered_per_sec
            );
        }
    }
}

/// What an ended channel's objects keep after `ENDED_TTL_SECONDS` (see tokens.rs), when
/// the bench started the runtime and the setting is short enough to wait for.
fn token_storage(
    args: &Args,
    target: &Target,
    opts: &Options,
    rt: &tokio::runtime::Runtime,
) -> Value {
    let ttl = args
        .vars
        .iter()
        .find(|(k, _)| k == "ENDED_TTL_SECONDS")
        .and_then(|(_, v)| v.parse::<u64>().ok());
    let (Some(persist), Some(ttl)) = (&target.persist, ttl.filter(|t| *t <= 60)) else {
        println!("\nended channel storage: not measured (start the runtime here, with --var ENDED_TTL_SECONDS:2)");
        return Value::Null;
    };
    let ttl = Duration::from_secs(ttl);
    match rt.block_on(tokens::storage_after_ttl(target, persist, opts, ttl)) {
        Ok(s) => {
            println!(
                "\nended channel storage: {} rows in {} objects at its end; {} rows and keys {} s after (ENDED_TTL_SECONDS)",
                s.rows_at_end,
                s.objects,
                s.rows_after_ttl,
                ttl.as_secs()
            );
            json!({ "objects": s.objects, "rows_at_end": s.rows_at_end, "rows_after_ttl": s.rows_after_ttl, "ttl_seconds": ttl.as_secs() })
        }
        Err(e) => {
            eprintln!("sse-bench: ended channel storage: {e}");
            json!({ "error": e })
        }
    }
}

fn run_options(args: &Args) -> Options {
    Options {
        batch: args.batch,
        connect_timeout: args.connect_timeout,
        idle_timeout: args.idle_timeout,
        case_timeout: args.case_timeout,
        reconnect_delay: args.reconnect_delay_ms.map(Duration::from_millis),
        max_reconnects: args.max_reconnects,
        settle: Duration::from_millis(args.settle_ms),
        hold: args.hold,
        run_id: format!("{:x}", cases::now_us() / 1000 % 0xffff_ffff),
        request_timeout: Duration::from_secs(30),
        bearer: args.publish_secret.clone(),
        listen_token: args.listen_secret.clone(),
    }
}

/// `--compare`: every variant's server started at once (see compare.rs), the cases
/// interleaved, the ratios printed, `bench/results/compare-<label>.json` written.
fn run_compare(args: &Args) -> Result<(), String> {
    if args.runtime != Some(runtime::Kind::Miniflare) {
        return Err(
            "--compare needs --runtime miniflare (the floor is served by Miniflare)".into(),
        );
    }
    let specs = compare_cases(args);
    if specs.is_empty() {
        return Err("no publish case matches (see --list)".into());
    }
    let max_listeners = specs.iter().map(|c| c.listeners).max().unwrap_or(1) as u64;
    let (_, warning) = runtime::raise_nofile(max_listeners * 3 * 5 + 2048);
    if let Some(w) = warning {
        eprintln!("sse-bench: warning: {w}");
    }
    let with_nchan = !args.no_nchan && Path::new(runtime::NCHAN_MODULE).exists();
    if !args.no_nchan && !with_nchan {
        eprintln!(
            "sse-bench: {} not found (sh bench/setup-nchan.sh): comparing without nchan",
            runtime::NCHAN_MODULE
        );
    }
    let variants = compare::variants(with_nchan, args.before.clone(), args.tree);
    let out = args.out();
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    // All at once: idle, the others cost next to nothing while one is measured.
    let servers = start_variants(args, runtime::Kind::Miniflare, &variants, "compare")?;
    let targets: Vec<Target> = servers
        .iter()
        .zip(&variants)
        .map(|(s, v)| compare::target(s.addr, s.pid(), v.serves))
        .collect();
    let opts = run_options(args);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let label = args.label();
    let path = out.join(format!("compare-{label}.json"));
    let mut results: Vec<Value> = Vec::new();
    let mut write_error = None;
    print_header();
    let rows = compare::run(
        &specs,
        &variants,
        args.rounds.max(1),
        |i, spec, round| {
            eprintln!(
                "sse-bench: case {} on {}: {} listeners, {} events, {} per request",
                spec.name,
                variants[i].name,
                spec.listeners,
                spec.messages,
                if targets[i].nchan { 1 } else { spec.batch }
            );
            // A channel of its own in each round (nchan and the product keep messages).
            let opts = Options {
                run_id: format!("{}-r{round}", opts.run_id),
                ..opts.clone()
            };
            rt.block_on(cases::run_case(spec, &targets[i], &opts))
        },
        |spec, variant, round, r, rows| {
            print_row(variant.name, r);
            for e in &r.errors {
                eprintln!("    {}: {e}", r.name);
            }
            results.push(round_entry(&spec.name, variant.name, round, r));
            let extra = json!({
                "note": "compare: each case on each variant, interleaved; summary: sums over rounds, ratios product / base",
                "variants": variants.iter().map(|v| json!({"name": v.name, "vars": v.vars.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>()})).collect::<Vec<_>>(),
                "summary": compare::to_json(rows),
            });
            if let Err(e) = write_results(&path, "runs", args, extra, &results) {
                write_error = Some(e);
            }
        },
    );
    for mut s in servers {
        s.stop();
    }
    compare::print_table(&rows);
    println!(
        "
results: {}",
        path.display()
    );
    write_error.map_or(Ok(()), Err)
}

/// Starts a server for each variant under `kind` (its `--var`s over the run's), one after
/// the other; its log is `<out>/<prefix>-<variant>.log`.
fn start_variants(
    args: &Args,
    kind: runtime::Kind,
    variants: &[compare::Variant],
    prefix: &str,
) -> Result<Vec<runtime::Server>, String> {
    let root = args.root();
    let mut servers = Vec::new();
    for v in variants {
        let mut vars = run_vars(args);
        for (k, val) in &v.vars {
            vars.retain(|(name, _)| name != k);
            vars.push((k.clone(), val.clone()));
        }
        eprintln!("sse-bench: starting {} ({:?})", v.name, v.serves);
        let server = runtime::Server::start(
            kind,
            v.serves,
            v.root.as_deref().unwrap_or(&root),
            &vars,
            args.startup_timeout,
            &args.out(),
            Some(&format!("{prefix}-{}", v.name)),
        )?;
        eprintln!(
            "sse-bench: {} ready on http://{} (pid {}, log {})",
            v.name,
            server.addr,
            server.pid(),
            server.log_path.display()
        );
        servers.push(server);
    }
    Ok(servers)
}

/// The run's `--var`s, plus the hub's key and anonymous subscribing for the hub cases
/// (unless the run says otherwise).
fn run_vars(args: &Args) -> Vec<(String, String)> {
    let mut vars = args.vars.clone();
    for (name, value) in [
        ("MERCURE_PUBLISHER_JWT_KEY", cases::HUB_KEY),
        ("MERCURE_ANONYMOUS", "1"),
    ] {
        if !vars.iter().any(|(k, _)| k == name) {
            vars.push((name.to_string(), value.to_string()));
        }
    }
    vars
}

/// Runs `f` on a runtime started for it (stopped afterwards), or on the `--url` server.
fn with_server<T>(args: &Args, serves: Serves, f: impl FnOnce(Target) -> T) -> Result<T, String> {
    let Some(kind) = args.runtime else {
        let addr = args.url.expect("clap requires --runtime or --url");
        return Ok(f(Target {
            addr,
            pid: args.server_pid,
            gc: None,
            nchan: false,
            persist: None,
        }));
    };
    let root = args.root();
    eprintln!(
        "sse-bench: starting {} ({serves:?}) in {}",
        kind.name(),
        root.display()
    );
    let vars = run_vars(args);
    let mut server = runtime::Server::start(
        kind,
        serves,
        &root,
        &vars,
        args.startup_timeout,
        &args.out(),
        None,
    )?;
    eprintln!(
        "sse-bench: {} ready on http://{} (pid {}, log {})",
        kind.name(),
        server.addr,
        server.pid(),
        server.log_path.display()
    );
    let result = f(Target {
        addr: server.addr,
        pid: Some(server.pid()),
        gc: server.gc,
        nchan: false,
        persist: server.persist_dir(),
    });
    server.stop();
    Ok(result)
}

fn print_header() {
    println!(
        "{:<16} {:<16} {:>11} {:>6} {:>8} {:>9} {:>9} {:>7} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8} {:>7} note",
        "runtime", "case", "listeners", "msgs", "pub/s", "expected", "received", "lost", "reconn",
        "events/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "RSS0 MB", "RSS1 MB", "KB/lstn", "srvCPU"
    );
}

/// One case's result on one variant in one round, as the results file keeps it.
pub(crate) fn round_entry(case: &str, variant: &str, round: u32, r: &CaseResult) -> Value {
    let mut entry = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut entry {
        m.insert("name".into(), json!(format!("{case}@{variant}#{round}")));
        m.insert("case".into(), json!(case));
        m.insert("variant".into(), json!(variant));
        m.insert("round".into(), json!(round));
    }
    entry
}

fn print_row(label: &str, r: &CaseResult) {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let lat =
        |f: fn(&stats::Summary) -> f64| opt(r.latency.as_ref().map(|s| format!("{:.1}", f(s))));
    let mb =
        |rss: Option<runtime::Rss>| opt(rss.map(|m| format!("{:.0}", m.group_kb as f64 / 1024.0)));
    let notes = [
        (r.timed_out, "TIMEOUT"),
        (r.publish_errors > 0, "PUBERR"),
        (r.duplicates > 0, "DUP"),
        (r.server_reloads > 0, "RELOAD"),
    ];
    let note: Vec<&str> = notes
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
    println!(
        "{:<16} {:<16} {:>11} {:>6} {:>8.0} {:>9} {:>9} {:>7} {:>6} {:>9.0} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8} {:>7} {}",
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
        mb(r.memory.before),
        mb(r.memory.after_connect),
        opt(r.memory.per_listener.map(|m| format!("{:.1}", m.group_kb))),
        opt(r.cpu.server.map(|v| format!("{v:.1}s"))),
        note.join(",")
    );
}

/// Each hub case beside the channel case that publishes the same way to as many
/// listeners, measured in this run: the hub's delivered events/s and server CPU per
/// delivery as ratios to the channel's.
fn print_hub_ratios(done: &[CaseResult]) {
    for hub in done.iter().filter(|r| r.kind == cases::HUB_KIND) {
        let twin = format!("n{}-burst-k1", hub.listeners);
        let Some(channel) = done.iter().find(|r| r.name == twin) else {
            continue;
        };
        let per_delivery = |r: &CaseResult| {
            r.cpu
                .server
                .filter(|_| r.received > 0)
                .map(|s| s * 1e6 / r.received as f64)
        };
        let cpu = match (per_delivery(hub), per_delivery(channel)) {
            (Some(h), Some(c)) if c > 0.0 => {
                format!(
                    "server CPU per delivery {h:.0} µs vs {c:.0} µs: {:.2}x",
                    h / c
                )
            }
            _ => "server CPU not measured".to_string(),
        };
        let rate = if channel.delivered_per_sec > 0.0 {
            hub.delivered_per_sec / channel.delivered_per_sec
        } else {
            0.0
        };
        println!(
            "hub vs channel, {} listeners: delivered {:.0}/s vs {:.0}/s: {rate:.2}x; {cpu}",
            hub.listeners, hub.delivered_per_sec, channel.delivered_per_sec
        );
    }
}

fn package_version(root: &Path, pkg: &str) -> Value {
    std::fs::read_to_string(root.join("node_modules").join(pkg).join("package.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| v.get("version").cloned())
        .unwrap_or(Value::Null)
}

/// Writes `path`: the run's settings and versions, `extra`'s fields, and under `key`
/// the `entries` (each with a `name`) merged with those of earlier runs that this run did
/// not repeat (unless `--fresh`), in suite order.
fn write_results(
    path: &Path,
    key: &str,
    args: &Args,
    extra: Value,
    entries: &[Value],
) -> Result<(), String> {
    let name_of = |v: &Value| {
        v.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut merged: Vec<Value> = Vec::new();
    if !args.fresh {
        let old = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok());
        if let Some(Value::Array(old)) = old.and_then(|mut v| v.get_mut(key).map(Value::take)) {
            merged = old;
        }
    }
    for entry in entries {
        match merged.iter_mut().find(|c| name_of(c) == name_of(entry)) {
            Some(slot) => slot.clone_from(entry),
            None => merged.push(entry.clone()),
        }
    }
    let order: Vec<String> = cases::all_cases(None, None)
        .into_iter()
        .map(|c| c.name)
        .collect();
    merged.sort_by_key(|c| {
        order
            .iter()
            .position(|o| *o == name_of(c))
            .unwrap_or(usize::MAX)
    });
    let root = args.root();
    let mut doc = json!({
        "runtime": args.label(),
        "updated": cases::now_us() / 1_000_000,
        "machine": {
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        },
        "versions": {
            "wrangler": package_version(&root, "wrangler"),
            "miniflare": package_version(&root, "miniflare"),
            "workerd": package_version(&root, "workerd"),
        },
        "vars": args.vars.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
    });
    if let (Value::Object(doc), Value::Object(extra)) = (&mut doc, extra) {
        doc.extend(extra);
        doc.insert(key.to_string(), Value::Array(merged));
    }
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("sse-bench").chain(s.iter().copied()))
    }

    #[test]
    fn url_must_be_loopback() {
        assert!(parse_url("http://127.0.0.1:8787").is_ok());
        assert!(parse_url("http://localhost:8787/").is_ok());
        assert!(parse_url("http://[::1]:8787").is_ok());
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
                "n1-burst-k1-close",
                "n1-burst-k16",
                "n1-rate50",
                "n100-burst-k1",
                "n100-burst-k1-close",
                "n100-burst-k16",
                "n100-rate50",
                "n100-hub-burst-k1",
                "n1-batch",
                "n100-batch",
                "n1-tokens-k1",
                "n1-tokens-batch",
                "n1-tokens-stream",
                "n1-tokens-stream-paced",
                "n100-tokens-k1",
                "n100-tokens-batch",
                "n100-tokens-stream",
                "n100-tokens-stream-paced"
            ]
        );
        let a = args(&["--url", "http://127.0.0.1:1", "--case", "n1000-*,n1-rate50"]).unwrap();
        assert_eq!(
            selected_cases(&a).len(),
            5,
            "n1000: three fan-out kinds and the hub case, and n1-rate50"
        );
        let a = args(&["--runtime", "miniflare", "--compare"]).unwrap();
        let c = compare_cases(&a);
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, compare::DEFAULT_CASES);
        let messages: Vec<u64> = c.iter().map(|c| c.messages).collect();
        assert_eq!(messages, [3000, 2000, 1000, 200, 30_000, 10_000]);
        assert!(c.iter().all(|c| c.batch == 1 || c.is_batch()));
        assert!(args(&["--runtime", "miniflare", "--rounds", "2"]).is_err());
        let a = args(&[
            "--runtime",
            "miniflare",
            "--case",
            "mem-*",
            "--listeners",
            "1000",
        ])
        .unwrap();
        let names: Vec<String> = selected_cases(&a).into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["mem-n1000"]);
        assert!(args(&[]).is_err());
        assert!(args(&["--runtime", "node"]).is_err());
        assert!(args(&["--runtime", "miniflare", "--url", "http://127.0.0.1:1"]).is_err());
        assert!(args(&["--plot"]).is_ok());
        let a = args(&["--runtime=wrangler", "--var", "QUEUE_CAPACITY:64"]).unwrap();
        assert_eq!(a.vars, [("QUEUE_CAPACITY".to_string(), "64".to_string())]);
        assert!(args(&["--runtime=wrangler", "--var", "nocolon"]).is_err());
        assert_eq!(
            args(&["--plot", "--idle-timeout", "2.5"])
                .unwrap()
                .idle_timeout,
            Duration::from_millis(2500)
        );
    }
}
