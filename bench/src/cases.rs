//! The benchmark cases and how one is run: connect N listeners in batches, publish M
//! timestamped messages (as fast as possible with K requests in flight, or at a steady
//! rate), wait until every listener has every message (or time runs out), and measure.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::sleep;

use crate::http::{self, BodyDecoder, Conn, ResponseHead};
use crate::runtime;
use crate::sse::{Item, Parser};
use crate::stats::{self, Summary};

/// Listener counts of the full suite.
pub const LISTENER_COUNTS: [usize; 5] = [1, 100, 1000, 5000, 10000];

#[derive(Debug, Clone, PartialEq)]
pub struct CaseSpec {
    pub name: String,
    /// The case kind without the listener count, e.g. `burst-k16`, `rate50`.
    pub kind: String,
    pub listeners: usize,
    pub messages: u64,
    /// Messages per second; 0: as fast as possible.
    pub rate: f64,
    /// Publish requests in flight at most (one keep-alive connection each).
    pub inflight: usize,
}

impl CaseSpec {
    /// How it publishes: `50/s`, or `max` (as fast as possible).
    pub fn rate_label(&self) -> String {
        if self.rate > 0.0 {
            format!("{}/s", self.rate)
        } else {
            "max".into()
        }
    }
}

/// Every case of the suite, in order. `messages` overrides every case's message count.
pub fn all_cases(messages: Option<u64>, inflight_override: Option<usize>) -> Vec<CaseSpec> {
    let mut v = Vec::new();
    for &n in &LISTENER_COUNTS {
        // Fewer messages for the big fan-outs keep every case to about a minute or two:
        // locally one delivery costs the runtime tens of microseconds of CPU, so 10,000
        // listeners × 500 messages would take longer than a case may.
        let m = match n {
            0..=1000 => 500,
            1001..=5000 => 100,
            _ => 50,
        };
        let mut kinds: Vec<(&str, f64, usize, u64)> = vec![
            ("burst-k1", 0.0, 1, m),
            ("burst-k16", 0.0, 16, m),
            // A steady rate keeps a few requests in flight so that one slow publish
            // (a big fan-out) does not hold the schedule back.
            ("rate50", 50.0, 4, m),
        ];
        if n >= 5000 {
            kinds.push(("rate10", 10.0, 4, m));
        }
        for (kind, rate, k, m) in kinds {
            let inflight = if rate > 0.0 {
                inflight_override.unwrap_or(k)
            } else {
                k
            };
            v.push(CaseSpec {
                name: format!("n{n}-{kind}"),
                kind: kind.to_string(),
                listeners: n,
                messages: messages.unwrap_or(m),
                rate,
                inflight,
            });
        }
    }
    v
}

/// Whether `name` matches `pattern` (exact, or `*` as a wildcard for any run of characters).
pub fn matches(pattern: &str, name: &str) -> bool {
    fn rec(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| rec(rest, &n[i..])),
            Some((c, rest)) => n.first() == Some(c) && rec(rest, &n[1..]),
        }
    }
    rec(pattern.as_bytes(), name.as_bytes())
}

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// The server process (tree) to measure, if known.
    pub pid: Option<i32>,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub batch: usize,
    pub connect_timeout: Duration,
    /// Give up waiting for deliveries when nothing new arrived for this long.
    pub idle_timeout: Duration,
    /// Bound on one whole case.
    pub case_timeout: Duration,
    /// Reconnect delay after a stream ends; `None`: the stream's `retry:` value (as an
    /// EventSource does).
    pub reconnect_delay: Option<Duration>,
    pub max_reconnects: u32,
    /// Pause after a case (lets the server drop the closed listeners).
    pub settle: Duration,
    /// Makes channel names unique per run.
    pub run_id: String,
    pub request_timeout: Duration,
    pub bearer: Option<String>,
    pub listen_token: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CaseResult {
    pub name: String,
    pub kind: String,
    pub channel: String,
    pub listeners: usize,
    pub connected: usize,
    pub connect_failures: usize,
    pub connect_seconds: f64,
    pub server_listeners: Option<u64>,
    pub messages: u64,
    pub rate: f64,
    pub inflight: usize,
    pub published_ok: u64,
    pub publish_errors: u64,
    pub publish_seconds: f64,
    pub publish_rate: f64,
    pub publish_rtt: Option<Summary>,
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub foreign: u64,
    pub gaps: u64,
    pub reconnects: u64,
    pub heartbeats: u64,
    pub delivery_seconds: f64,
    pub delivered_per_sec: f64,
    pub latency: Option<Summary>,
    pub rss_kb_before: Option<u64>,
    pub rss_kb_after_connect: Option<u64>,
    pub rss_kb_after_publish: Option<u64>,
    pub rss_kb_per_listener: Option<f64>,
    pub rss_by_process: Vec<(String, u64)>,
    pub server_cpu_seconds: Option<f64>,
    pub server_cpu_by_process: Vec<(String, f64)>,
    pub bench_cpu_seconds: f64,
    pub server_stats: Option<serde_json::Value>,
    pub timed_out: bool,
    pub server_reloads: u64,
    pub errors: Vec<String>,
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Extracts `seq` and `t` from `{"seq":<n>,"t":<micros>}` (any key order, any spacing).
pub fn parse_payload(data: &str) -> Option<(u64, u64)> {
    fn field(data: &str, key: &str) -> Option<u64> {
        let at = data.find(key)? + key.len();
        let rest = data[at..].trim_start().strip_prefix(':')?.trim_start();
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    }
    Some((field(data, "\"seq\"")?, field(data, "\"t\"")?))
}

pub fn payload(seq: u64, t: u64) -> String {
    format!("{{\"data\":{{\"seq\":{seq},\"t\":{t}}}}}")
}

struct Shared {
    connected: AtomicUsize,
    failed: AtomicUsize,
    received: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Shared {
    fn error(&self, e: String) {
        let mut errs = self.errors.lock().unwrap();
        if errs.len() < 5 && !errs.contains(&e) {
            errs.push(e);
        }
    }
}

struct ListenCfg {
    addr: SocketAddr,
    request_head: String,
    messages: u64,
    hard_deadline: tokio::time::Instant,
    reconnect_delay: Option<Duration>,
    max_reconnects: u32,
    connect_timeout: Duration,
}

#[derive(Default)]
struct ListenerResult {
    connected: bool,
    latencies: Vec<u32>,
    unique: u64,
    duplicates: u64,
    foreign: u64,
    gaps: u64,
    reconnects: u64,
    heartbeats: u64,
    last_recv_us: u64,
}

/// Opens the event stream: returns the stream, bytes read past the head, and the head.
async fn open_stream(
    cfg: &ListenCfg,
    last_id: &str,
) -> io::Result<(TcpStream, Vec<u8>, ResponseHead)> {
    let mut stream = http::connect(cfg.addr, cfg.connect_timeout).await?;
    let mut req = cfg.request_head.clone();
    if !last_id.is_empty() {
        req.push_str("Last-Event-ID: ");
        req.push_str(last_id);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let mut buf = Vec::new();
    let head = tokio::time::timeout(cfg.connect_timeout, async {
        stream.write_all(req.as_bytes()).await?;
        http::read_head(&mut stream, &mut buf).await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no response head in time"))??;
    Ok((stream, buf, head))
}

/// Reads a little of an error response's body, for the message.
async fn error_body(stream: &mut TcpStream, mut buf: Vec<u8>, head: &ResponseHead) -> String {
    let mut body = Vec::new();
    if let Ok(kind) = head.body_kind("GET") {
        let mut dec = BodyDecoder::new(kind);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let mut chunk = [0u8; 2048];
            loop {
                if let Ok(used) = dec.feed(&buf, &mut body) {
                    buf.drain(..used);
                }
                if dec.is_done() || body.len() > 500 {
                    break;
                }
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
    }
    let text = String::from_utf8_lossy(&body);
    let line = text
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect::<String>();
    format!("HTTP {} {}: {}", head.status, head.reason, line)
}

async fn listener(
    cfg: Arc<ListenCfg>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> ListenerResult {
    let mut r = ListenerResult::default();
    let m = cfg.messages;
    let mut seen = vec![0u64; m.div_ceil(64) as usize];
    let mut parser = Parser::new();
    let mut items: Vec<Item> = Vec::new();
    let mut body: Vec<u8> = Vec::with_capacity(1024);
    let mut rbuf = vec![0u8; 4096];
    let mut retry = Duration::from_millis(1000);
    let mut attempts_left = cfg.max_reconnects;

    'outer: loop {
        if *stop.borrow() || tokio::time::Instant::now() >= cfg.hard_deadline {
            break;
        }
        let last_id = parser.last_event_id().to_string();
        let opened = match open_stream(&cfg, &last_id).await {
            Ok((mut stream, buf, head)) => {
                if head.status == 200 {
                    Ok((stream, buf, head))
                } else {
                    Err(error_body(&mut stream, buf, &head).await)
                }
            }
            Err(e) => Err(format!("connect/request failed: {e}")),
        };
        let (mut stream, leftover, head) = match opened {
            Ok(x) => x,
            Err(msg) => {
                shared.error(msg);
                if !r.connected {
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                    return r;
                }
                if attempts_left == 0 {
                    break;
                }
                attempts_left -= 1;
                r.reconnects += 1;
                let delay = cfg.reconnect_delay.unwrap_or(retry);
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = sleep(delay) => continue,
                }
            }
        };
        if !r.connected {
            r.connected = true;
            shared.connected.fetch_add(1, Ordering::Relaxed);
        }
        let mut decoder = match head.body_kind("GET") {
            Ok(kind) => BodyDecoder::new(kind),
            Err(e) => {
                shared.error(format!("bad stream response: {e}"));
                break;
            }
        };
        let mut pending = leftover;
        loop {
            body.clear();
            match decoder.feed(&pending, &mut body) {
                Ok(_) => {}
                Err(e) => {
                    shared.error(format!("stream framing error: {e}"));
                    break;
                }
            }
            pending.clear();
            if !body.is_empty() {
                parser.feed(&body, &mut items);
                let now = now_us();
                for item in items.drain(..) {
                    match item {
                        Item::Event(ev) => {
                            if ev.event_type == "gap" {
                                r.gaps += 1;
                                continue;
                            }
                            match parse_payload(&ev.data) {
                                Some((seq, t)) if seq < m => {
                                    let (w, b) = ((seq / 64) as usize, seq % 64);
                                    if seen[w] & (1 << b) != 0 {
                                        r.duplicates += 1;
                                    } else {
                                        seen[w] |= 1 << b;
                                        r.unique += 1;
                                        r.latencies.push(now.saturating_sub(t).min(u32::MAX as u64) as u32);
                                        r.last_recv_us = now;
                                        shared.received.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                                _ => r.foreign += 1,
                            }
                        }
                        Item::Retry(ms) => retry = Duration::from_millis(ms.min(60_000)),
                        Item::Comment => r.heartbeats += 1,
                    }
                }
                if r.unique == m {
                    break 'outer;
                }
            }
            if decoder.is_done() {
                break;
            }
            tokio::select! {
                biased;
                _ = stop.changed() => break 'outer,
                _ = tokio::time::sleep_until(cfg.hard_deadline) => break 'outer,
                n = stream.read(&mut rbuf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => pending.extend_from_slice(&rbuf[..n]),
                },
            }
        }
        // The stream ended (e.g. cut as a slow listener): reconnect like an EventSource,
        // with the last event id.
        parser.end_of_stream();
        drop(stream);
        if attempts_left == 0 {
            shared.error("too many reconnects".into());
            break;
        }
        attempts_left -= 1;
        r.reconnects += 1;
        let delay = cfg.reconnect_delay.unwrap_or(retry);
        tokio::select! {
            _ = stop.changed() => break,
            _ = sleep(delay) => {}
        }
    }
    r
}

#[derive(Default)]
struct PubResult {
    ok: u64,
    errors: u64,
    rtts: Vec<u32>,
    error_msgs: Vec<String>,
    last_end: Option<Instant>,
}

/// Publishes on its own thread and runtime so that its timing does not depend on how
/// busy the listeners' thread is.
#[allow(clippy::too_many_arguments)]
fn publish_all(
    addr: SocketAddr,
    path: String,
    messages: u64,
    rate: f64,
    inflight: usize,
    deadline: Instant,
    request_timeout: Duration,
    bearer: Option<String>,
) -> std::thread::JoinHandle<(Instant, PubResult)> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("publisher runtime");
        rt.block_on(async move {
            let next = Arc::new(AtomicU64::new(0));
            let start = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..inflight.max(1) {
                let next = next.clone();
                let path = path.clone();
                let bearer = bearer.clone();
                tasks.push(tokio::spawn(async move {
                    let mut conn = Conn::new(addr, request_timeout);
                    let mut res = PubResult::default();
                    let auth = bearer.map(|b| format!("Bearer {b}"));
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= messages {
                            break;
                        }
                        if rate > 0.0 {
                            let at = start + Duration::from_secs_f64(i as f64 / rate);
                            if at > deadline {
                                break;
                            }
                            tokio::time::sleep_until(at.into()).await;
                        }
                        if Instant::now() > deadline {
                            break;
                        }
                        let sent = Instant::now();
                        let body = payload(i, now_us());
                        let mut headers = vec![("Content-Type", "application/json")];
                        if let Some(a) = auth.as_deref() {
                            headers.push(("Authorization", a));
                        }
                        match conn
                            .request("POST", &path, &headers, Some(body.as_bytes()))
                            .await
                        {
                            Ok(resp) if resp.head.status == 200 => {
                                res.ok += 1;
                                res.rtts
                                    .push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                            }
                            Ok(resp) => {
                                res.errors += 1;
                                if res.error_msgs.len() < 3 {
                                    res.error_msgs.push(format!(
                                        "publish: HTTP {} {}",
                                        resp.head.status,
                                        resp.body_text().lines().next().unwrap_or("")
                                    ));
                                }
                                if resp.head.status == 503 || resp.head.status == 429 {
                                    sleep(Duration::from_millis(100)).await;
                                }
                            }
                            Err(e) => {
                                res.errors += 1;
                                if res.error_msgs.len() < 3 {
                                    res.error_msgs.push(format!("publish: {e}"));
                                }
                                sleep(Duration::from_millis(50)).await;
                            }
                        }
                        res.last_end = Some(Instant::now());
                    }
                    res
                }));
            }
            let mut all = PubResult::default();
            for t in tasks {
                if let Ok(r) = t.await {
                    all.ok += r.ok;
                    all.errors += r.errors;
                    all.rtts.extend(r.rtts);
                    for m in r.error_msgs {
                        if all.error_msgs.len() < 5 && !all.error_msgs.contains(&m) {
                            all.error_msgs.push(m);
                        }
                    }
                    all.last_end = all.last_end.max(r.last_end);
                }
            }
            (start, all)
        })
    })
}

/// GET /channels/<name> (stats JSON).
async fn channel_stats(
    addr: SocketAddr,
    channel: &str,
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    let mut conn = Conn::new(addr, timeout);
    let resp = conn
        .request(
            "GET",
            &format!("/channels/{channel}"),
            &[("Accept", "application/json")],
            None,
        )
        .await
        .map_err(|e| format!("stats request failed: {e}"))?;
    if resp.head.status != 200 {
        return Err(format!(
            "stats: HTTP {} {}",
            resp.head.status,
            resp.body_text().trim()
        ));
    }
    serde_json::from_slice(&resp.body).map_err(|e| format!("stats: bad JSON: {e}"))
}

fn rss_kb(pid: Option<i32>) -> Option<u64> {
    pid.map(|p| runtime::tree_memory(p).iter().map(|m| m.rss_kb).sum())
}

pub async fn run_case(spec: &CaseSpec, target: &Target, opts: &Options) -> CaseResult {
    let case_start = Instant::now();
    let case_deadline = case_start + opts.case_timeout;
    let channel = format!("bench-{}-{}", opts.run_id, spec.name);
    let mut res = CaseResult {
        name: spec.name.clone(),
        kind: spec.kind.clone(),
        channel: channel.clone(),
        listeners: spec.listeners,
        messages: spec.messages,
        rate: spec.rate,
        inflight: spec.inflight,
        ..Default::default()
    };
    let bench_cpu_start = runtime::own_cpu_seconds();
    let reloads_start = runtime::reloads();

    // Warm up: one stats request creates nothing but proves the route answers.
    if let Err(e) = channel_stats(target.addr, &channel, opts.request_timeout).await {
        res.errors.push(format!("before the case: {e}"));
    }
    sleep(Duration::from_millis(300)).await;
    res.rss_kb_before = rss_kb(target.pid);

    // --- connect listeners in batches ---
    let shared = Arc::new(Shared {
        connected: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        received: AtomicU64::new(0),
        errors: Mutex::new(Vec::new()),
    });
    let mut path = format!("/channels/{channel}/events");
    if let Some(token) = &opts.listen_token {
        path.push_str(&format!("?token={token}"));
    }
    let cfg = Arc::new(ListenCfg {
        addr: target.addr,
        request_head: format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n",
            target.addr
        ),
        messages: spec.messages,
        hard_deadline: (case_deadline + Duration::from_secs(30)).into(),
        reconnect_delay: opts.reconnect_delay,
        max_reconnects: opts.max_reconnects,
        connect_timeout: opts.connect_timeout,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut handles = Vec::with_capacity(spec.listeners);
    let connect_start = Instant::now();
    let mut start = 0;
    while start < spec.listeners {
        let end = (start + opts.batch.max(1)).min(spec.listeners);
        for _ in start..end {
            handles.push(tokio::spawn(listener(
                cfg.clone(),
                shared.clone(),
                stop_rx.clone(),
            )));
        }
        let batch_deadline = Instant::now() + opts.connect_timeout;
        loop {
            let done =
                shared.connected.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed);
            if done >= end {
                break;
            }
            if Instant::now() > batch_deadline || Instant::now() > case_deadline {
                res.timed_out = true;
                res.errors.push(format!(
                    "connecting: only {done} of {end} listeners answered in time"
                ));
                break;
            }
            sleep(Duration::from_millis(10)).await;
        }
        if res.timed_out {
            break;
        }
        start = end;
    }
    res.connect_seconds = connect_start.elapsed().as_secs_f64();
    res.connected = shared.connected.load(Ordering::Relaxed);
    res.connect_failures = shared.failed.load(Ordering::Relaxed);

    // The server's own count (it may lag a moment behind the response heads).
    let stats_deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match channel_stats(target.addr, &channel, opts.request_timeout).await {
            Ok(v) => {
                let n = v.get("listeners").and_then(|x| x.as_u64());
                res.server_listeners = n;
                if n.unwrap_or(0) >= res.connected as u64 || Instant::now() > stats_deadline {
                    break;
                }
            }
            Err(e) => {
                res.errors.push(e);
                break;
            }
        }
        sleep(Duration::from_millis(200)).await;
    }
    sleep(Duration::from_millis(500)).await;
    res.rss_kb_after_connect = rss_kb(target.pid);
    if let (Some(before), Some(after)) = (res.rss_kb_before, res.rss_kb_after_connect) {
        if res.connected > 0 {
            res.rss_kb_per_listener = Some((after as f64 - before as f64) / res.connected as f64);
        }
    }

    // --- publish ---
    let server_cpu_start = target.pid.map(runtime::tree_cpu_by_name);
    let publish_deadline = if spec.rate > 0.0 {
        Instant::now() + Duration::from_secs_f64(spec.messages as f64 / spec.rate * 1.5 + 30.0)
    } else {
        case_deadline
    }
    .min(case_deadline);
    let publish_start_us = now_us();
    let mut publisher = Some(publish_all(
        target.addr,
        format!("/channels/{channel}/events"),
        spec.messages,
        spec.rate,
        spec.inflight,
        publish_deadline,
        opts.request_timeout,
        opts.bearer.clone(),
    ));
    // Wait for the publisher without blocking this runtime (the listeners run on it).
    let (pub_start, mut pubres) = loop {
        if publisher.as_ref().is_some_and(|h| h.is_finished()) {
            match publisher.take().expect("checked").join() {
                Ok(x) => break x,
                Err(_) => {
                    res.errors.push("publisher thread panicked".into());
                    break (Instant::now(), PubResult::default());
                }
            }
        }
        sleep(Duration::from_millis(20)).await;
    };
    res.published_ok = pubres.ok;
    res.publish_errors = pubres.errors;
    res.errors.append(&mut pubres.error_msgs);
    res.publish_seconds = pubres
        .last_end
        .map(|e| e.duration_since(pub_start).as_secs_f64())
        .unwrap_or(0.0);
    res.publish_rate = stats::rate(pubres.ok, res.publish_seconds);
    res.publish_rtt = stats::summarize_micros(&mut pubres.rtts);
    res.expected = res.connected as u64 * pubres.ok;

    // --- wait for deliveries ---
    let mut last = shared.received.load(Ordering::Relaxed);
    let mut last_progress = Instant::now();
    loop {
        let now = shared.received.load(Ordering::Relaxed);
        if now >= res.expected {
            break;
        }
        if now != last {
            last = now;
            last_progress = Instant::now();
        }
        if last_progress.elapsed() > opts.idle_timeout || Instant::now() > case_deadline {
            res.timed_out = true;
            break;
        }
        sleep(Duration::from_millis(20)).await;
    }
    if let (Some(before), Some(after)) =
        (server_cpu_start, target.pid.map(runtime::tree_cpu_by_name))
    {
        for (name, secs) in after {
            let was = before
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, s)| *s)
                .unwrap_or(0.0);
            res.server_cpu_by_process
                .push((name, stats::round((secs - was).max(0.0), 2)));
        }
        res.server_cpu_seconds = Some(stats::round(
            res.server_cpu_by_process.iter().map(|(_, s)| s).sum(),
            2,
        ));
    }
    res.rss_kb_after_publish = rss_kb(target.pid);
    if let Some(pid) = target.pid {
        let mut by: Vec<(String, u64)> = Vec::new();
        for m in runtime::tree_memory(pid) {
            match by.iter_mut().find(|(n, _)| *n == m.name) {
                Some(e) => e.1 += m.rss_kb,
                None => by.push((m.name, m.rss_kb)),
            }
        }
        res.rss_by_process = by;
    }

    // --- stop listeners and collect ---
    let _ = stop_tx.send(true);
    let join_deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut latencies: Vec<u32> = Vec::with_capacity(res.expected.min(50_000_000) as usize);
    let mut last_recv_us = 0;
    for h in handles {
        let abort = h.abort_handle();
        match tokio::time::timeout_at(join_deadline, h).await {
            Ok(Ok(r)) => {
                res.received += r.unique;
                res.duplicates += r.duplicates;
                res.foreign += r.foreign;
                res.gaps += r.gaps;
                res.reconnects += r.reconnects;
                res.heartbeats += r.heartbeats;
                last_recv_us = last_recv_us.max(r.last_recv_us);
                latencies.extend_from_slice(&r.latencies);
            }
            Ok(Err(e)) => res.errors.push(format!("listener task failed: {e}")),
            Err(_) => {
                abort.abort();
                res.errors.push("a listener did not stop in time".into());
            }
        }
    }
    res.lost = res.expected.saturating_sub(res.received);
    res.delivery_seconds = if last_recv_us > publish_start_us {
        (last_recv_us - publish_start_us) as f64 / 1e6
    } else {
        0.0
    };
    res.delivered_per_sec = stats::rate(res.received, res.delivery_seconds);
    res.latency = stats::summarize_micros(&mut latencies);
    drop(latencies);
    for e in shared.errors.lock().unwrap().drain(..) {
        res.errors.push(e);
    }
    match channel_stats(target.addr, &channel, opts.request_timeout).await {
        Ok(v) => res.server_stats = Some(v),
        Err(e) => res.errors.push(format!("after the case: {e}")),
    }
    res.bench_cpu_seconds = stats::round(runtime::own_cpu_seconds() - bench_cpu_start, 2);
    res.server_reloads = runtime::reloads() - reloads_start;
    if res.server_reloads > 0 {
        res.errors.push(format!(
            "the server reloaded the worker {} time(s) during the case (wrangler watches src/), which cuts every stream: do not trust this case",
            res.server_reloads
        ));
    }
    sleep(opts.settle).await;
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        let p = payload(42, 1_700_000_000_123_456);
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        let data = serde_json::to_string(&v["data"]).unwrap();
        assert_eq!(parse_payload(&data), Some((42, 1_700_000_000_123_456)));
        assert_eq!(parse_payload("{ \"t\" : 5 , \"seq\": 3 }"), Some((3, 5)));
        assert_eq!(parse_payload("pong"), None);
        assert_eq!(parse_payload("{\"seq\":\"x\",\"t\":1}"), None);
    }

    #[test]
    fn case_list_and_matching() {
        let all = all_cases(None, None);
        let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        assert!(names.contains(&"n1-burst-k1"));
        assert!(names.contains(&"n100-burst-k16"));
        assert!(names.contains(&"n1000-rate50"));
        assert!(names.contains(&"n10000-rate10"));
        assert!(!names.contains(&"n100-rate10"));
        assert!(matches("n100-*", "n100-rate50"));
        assert!(!matches("n100-*", "n1000-rate50"));
        assert!(matches("*-burst-*", "n1-burst-k16"));
        assert!(matches("n1-burst-k1", "n1-burst-k1"));
        assert!(!matches("n1-burst-k1", "n1-burst-k16"));
        let m = all_cases(Some(200), None);
        assert!(m.iter().all(|c| c.messages == 200));
    }
}
