//! The idle cases (`idle-n{N}-c{C}`): N listeners over C channels, held idle between two
//! events, in both modes of the same build (`HIBERNATE=0`, `HIBERNATE=1`), each on a
//! fresh runtime. One event per channel, every listener gets it; each channel's `starts`
//! is read; then nothing touches the channels for `--idle` seconds (a stats request
//! would wake a sleeping object) while the runtime's resident memory is sampled from
//! /proc; then one more event per channel: every listener must get it exactly once, and
//! a channel whose `starts` went up was evicted while idle and woken by the publish.

mod listener;
mod report;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::sleep;

use crate::cases::{self, now_us, payload, sample_rss, PerListener, Target};
use crate::client::{Api, Body};
use crate::compare::Variant;
use crate::hibernate::{build_id, HIBERNATING};
use crate::runtime::{self, Rss};
use crate::stats;
use crate::Args;
use listener::{listen, Got, Shared};
use report::{print_table, ChannelStats, IdleResult, Phase};

#[derive(Debug, Clone)]
pub struct IdleSpec {
    pub name: String,
    pub listeners: usize,
    pub channels: usize,
}

/// The idle cases: 1,000 listeners over 10 channels, and a small one for smoke runs.
pub fn specs() -> Vec<IdleSpec> {
    [(100, 10), (1000, 10)]
        .into_iter()
        .map(|(listeners, channels)| IdleSpec {
            name: format!("idle-n{listeners}-c{channels}"),
            listeners,
            channels,
        })
        .collect()
}

/// The idle cases `--case` names (never part of a run without `--case`).
pub fn selected(a: &Args) -> Vec<IdleSpec> {
    specs()
        .into_iter()
        .filter(|c| a.cases.iter().any(|p| cases::matches(p, &c.name)))
        .filter(|c| a.listeners.is_empty() || a.listeners.contains(&c.listeners))
        .collect()
}

/// A case on one runtime.
struct Run {
    target: Target,
    api: Api,
    channels: Vec<String>,
    shared: Arc<Shared>,
    res: IdleResult,
}

impl Run {
    async fn stats(&mut self) -> Vec<ChannelStats> {
        let mut all = Vec::with_capacity(self.channels.len());
        for name in &self.channels {
            match self.api.get_json(&format!("/channels/{name}")).await {
                Ok(v) => {
                    let n = |k: &str| v.get(k).and_then(Value::as_u64);
                    all.push(ChannelStats {
                        listeners: n("listeners"),
                        sleeping: n("sleeping"),
                        starts: n("starts"),
                        published: n("published"),
                        delivered: n("delivered"),
                        last_id: v.get("lastId").and_then(Value::as_str).map(String::from),
                    });
                }
                Err(e) => {
                    self.res.errors.push(e);
                    all.push(ChannelStats::default());
                }
            }
        }
        all
    }

    async fn collect_garbage(&mut self) -> bool {
        crate::client::collect_garbage_noting(self.target.gc, &mut self.res.errors).await
    }

    /// Event `seq` to every channel, one publish at a time; then waits until every
    /// listener has it, nothing new came for `idle_timeout`, or `deadline`.
    async fn phase(&mut self, seq: usize, idle_timeout: Duration, deadline: Instant) -> Phase {
        let mut p = Phase::default();
        let mut rtts = Vec::new();
        let start = Instant::now();
        for name in &self.channels {
            let body = Body::Json(payload(seq as u64, now_us()));
            match self
                .api
                .publish(&format!("/channels/{name}/events"), body, None)
                .await
            {
                Ok(rtt) => {
                    p.published_ok += 1;
                    rtts.push(rtt.as_micros().min(u32::MAX as u128) as u32);
                }
                Err((_, e)) => {
                    p.publish_errors += 1;
                    self.res.errors.push(e);
                }
            }
        }
        p.publish_rtt_ms = stats::summarize_micros(&mut rtts);
        let want = self.res.connected as u64;
        let (mut last, mut progress) = (0, Instant::now());
        loop {
            let now = self.shared.got[seq].load(Ordering::Relaxed);
            if now >= want {
                break;
            }
            if now != last {
                (last, progress) = (now, Instant::now());
            }
            if progress.elapsed() > idle_timeout || Instant::now() > deadline {
                p.timed_out = true;
                break;
            }
            sleep(Duration::from_millis(20)).await;
        }
        p.seconds = stats::round(start.elapsed().as_secs_f64(), 3);
        p
    }
}

/// Runs `spec` on `target` (a fresh runtime in one mode).
async fn run_one(
    spec: &IdleSpec,
    target: Target,
    args: &Args,
    mode: &str,
    build: Option<String>,
) -> IdleResult {
    let opts = crate::run_options(args);
    let deadline = Instant::now() + args.case_timeout + args.idle;
    let channels = (0..spec.channels)
        .map(|i| format!("bench-{}-{}-{mode}-c{i}", opts.run_id, spec.name))
        .collect();
    let mut run = Run {
        target: target.clone(),
        api: Api::new(target.addr, opts.connect_timeout, opts.request_timeout),
        channels,
        shared: Arc::new(Shared::default()),
        res: IdleResult {
            name: spec.name.clone(),
            mode: mode.to_string(),
            hibernate: mode == HIBERNATING,
            build,
            listeners: spec.listeners,
            channels: spec.channels,
            ..Default::default()
        },
    };
    // Open every channel's object, then the baseline.
    run.stats().await;
    sleep(Duration::from_millis(300)).await;
    run.collect_garbage().await;
    run.res.memory.before = sample_rss(target.pid).await;

    let (stop, stop_rx) = watch::channel(false);
    let listen_deadline: tokio::time::Instant = (deadline + Duration::from_secs(30)).into();
    let mut handles = Vec::with_capacity(spec.listeners);
    let started = Instant::now();
    while handles.len() < spec.listeners {
        let end = (handles.len() + opts.batch.max(1)).min(spec.listeners);
        while handles.len() < end {
            let path = format!(
                "/channels/{}/events",
                run.channels[handles.len() % spec.channels]
            );
            handles.push(tokio::spawn(listen(
                run.api.clone(),
                path,
                run.shared.clone(),
                stop_rx.clone(),
                listen_deadline,
                opts.max_reconnects,
            )));
        }
        let batch_deadline = Instant::now() + opts.connect_timeout;
        while run.shared.connected.load(Ordering::Relaxed)
            + run.shared.failed.load(Ordering::Relaxed)
            < end
        {
            if Instant::now() > batch_deadline.min(deadline) {
                run.res.errors.push(format!(
                    "connecting: not all of {end} listeners answered in time"
                ));
                break;
            }
            sleep(Duration::from_millis(10)).await;
        }
    }
    run.res.connect_seconds = stats::round(started.elapsed().as_secs_f64(), 3);
    run.res.connected = run.shared.connected.load(Ordering::Relaxed);
    run.res.connect_failures = run.shared.failed.load(Ordering::Relaxed);
    // Until the server counts them all (its count may lag the heads), 5 s at most.
    let count_deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let counted: u64 = run.stats().await.iter().filter_map(|s| s.listeners).sum();
        if counted >= run.res.connected as u64 || Instant::now() > count_deadline {
            break;
        }
        sleep(Duration::from_millis(200)).await;
    }

    run.res.first = run.phase(0, opts.idle_timeout, deadline).await;
    run.res.memory.active = sample_rss(target.pid).await;
    run.res.before_idle = run.stats().await;

    // Idle: nothing but /proc until the next event.
    let idle_start = Instant::now();
    let steps = (args.idle.as_secs_f64() / 5.0).ceil() as u32;
    for step in 1..=steps {
        let at = idle_start + (args.idle * step / steps.max(1));
        tokio::time::sleep_until(at.into()).await;
        if let Some(pid) = target.pid {
            let secs = stats::round(idle_start.elapsed().as_secs_f64(), 1);
            run.res.memory.timeline.push((secs, runtime::rss(pid)));
        }
    }
    run.res.memory.idle = sample_rss(target.pid).await;
    if run.collect_garbage().await {
        run.res.memory.idle_collected = sample_rss(target.pid).await;
    }
    run.res.idle_seconds = stats::round(idle_start.elapsed().as_secs_f64(), 1);

    run.res.next = run.phase(1, opts.idle_timeout, deadline).await;
    // A moment for a late copy to show up as a duplicate.
    sleep(Duration::from_secs(1)).await;
    run.res.after = run.stats().await;
    let _ = stop.send(true);
    collect(&mut run, handles).await;
    let m = &mut run.res.memory;
    let per = |after: Option<Rss>| PerListener::between(m.before?, after?, run.res.connected);
    m.per_idle_listener = per(m.idle);
    m.per_idle_listener_collected = per(m.idle_collected);
    m.per_active_listener = per(m.active);
    run.res.evicted = run
        .res
        .before_idle
        .iter()
        .zip(&run.res.after)
        .filter(|(b, a)| matches!((b.starts, a.starts), (Some(b), Some(a)) if a > b))
        .count();
    run.res
}

/// Stops the listeners and adds up what each got.
async fn collect(run: &mut Run, handles: Vec<tokio::task::JoinHandle<Got>>) {
    let join_deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut latencies: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
    let res = &mut run.res;
    for handle in handles {
        let abort = handle.abort_handle();
        match tokio::time::timeout_at(join_deadline, handle).await {
            Ok(Ok(g)) => {
                for (i, phase) in [&mut res.first, &mut res.next].into_iter().enumerate() {
                    phase.received += (g.count[i] > 0) as u64;
                    phase.duplicates += g.count[i].saturating_sub(1) as u64;
                    latencies[i].extend(g.latency_us[i]);
                }
                res.next_exactly_once += (g.count[1] == 1) as u64;
                res.reconnects += g.reconnects;
                res.gaps += g.gaps;
                res.foreign_events += g.foreign;
                res.heartbeats += g.heartbeats;
            }
            Ok(Err(e)) => res.errors.push(format!("listener task failed: {e}")),
            Err(_) => {
                abort.abort();
                res.errors.push("a listener did not stop in time".into());
            }
        }
    }
    res.first.latency_ms = stats::summarize_micros(&mut latencies[0]);
    res.next.latency_ms = stats::summarize_micros(&mut latencies[1]);
    res.errors.append(&mut run.shared.errors.lock().unwrap());
}

/// Both modes of each case, each on a fresh runtime; prints them side by side and writes
/// `<out>/hibernate-idle[-<label>].json`.
pub fn run(args: &Args, specs: &[IdleSpec]) -> Result<(), String> {
    let kind = args
        .runtime
        .ok_or("the idle cases start their runtimes: --runtime")?;
    let max = specs.iter().map(|s| s.listeners).max().unwrap_or(1) as u64;
    let (_, warning) = runtime::raise_nofile(max * 3 + 2048);
    if let Some(w) = warning {
        eprintln!("sse-bench: warning: {w}");
    }
    let out = args.out();
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let path = out.join(match &args.label {
        Some(label) => format!("hibernate-idle-{label}.json"),
        None => "hibernate-idle.json".to_string(),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let mut results: Vec<IdleResult> = Vec::new();
    for spec in specs {
        for v in crate::hibernate::variants() {
            eprintln!(
                "sse-bench: case {}: {} listeners over {} channels, {} idle s, {}",
                spec.name,
                spec.listeners,
                spec.channels,
                args.idle.as_secs_f64(),
                v.name
            );
            let build = build_id(&args.root());
            let r = start_and_run(args, kind, &v, |target| {
                rt.block_on(run_one(spec, target, args, v.name, build.clone()))
            })?;
            for e in &r.errors {
                eprintln!("    {}@{}: {e}", r.name, r.mode);
            }
            results.push(r);
            let entries: Vec<Value> = results
                .iter()
                .map(|r| {
                    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
                    if let Value::Object(m) = &mut v {
                        m.insert("name".into(), json!(format!("{}@{}", r.name, r.mode)));
                    }
                    v
                })
                .collect();
            let extra = json!({
                "note": "idle cases: each mode on a fresh runtime; per_idle_listener: (resident memory of the \
                         runtime after the idle time − before the listeners, the channels' objects open) / \
                         connected listeners; evicted: channels whose starts went up across the idle time",
                "idle_seconds": args.idle.as_secs_f64(),
            });
            crate::write_results(&path, "cases", args, extra, &entries)?;
        }
    }
    print_table(&results);
    println!("\nresults: {}", path.display());
    Ok(())
}

/// Starts a fresh runtime for `variant`, runs `f` on it, stops it.
fn start_and_run<T>(
    args: &Args,
    kind: runtime::Kind,
    variant: &Variant,
    f: impl FnOnce(Target) -> T,
) -> Result<T, String> {
    let mut servers = crate::start_variants(args, kind, std::slice::from_ref(variant), "idle")?;
    let server = &servers[0];
    let result = f(Target {
        addr: server.addr,
        pid: Some(server.pid()),
        gc: server.gc,
        nchan: false,
        persist: None,
    });
    for s in &mut servers {
        s.stop();
    }
    Ok(result)
}
