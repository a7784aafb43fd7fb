//! The benchmark cases and how one is run: connect N listeners in batches, publish M
//! timestamped messages (as fast as possible with K requests in flight, or at a steady
//! rate), wait until every listener has every message (or time runs out), and measure.
//! A memory case (`mem-n{N}`) publishes nothing: it measures N idle listeners.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use sse_edge::protocol::{ParsedEvent, Parser};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::sleep;

use crate::client::{Api, Body};
use crate::runtime::{self, Rss};
use crate::stats::{self, Summary};

/// Listener counts of the fan-out cases.
pub const LISTENER_COUNTS: [usize; 5] = [1, 100, 1000, 5000, 10000];
/// Listener counts of the memory cases.
pub const MEMORY_COUNTS: [usize; 3] = [1000, 5000, 10000];
/// The kind of the memory cases.
pub const MEMORY_KIND: &str = "mem";

/// The Mercure hub's case: the same publishing as `burst-k1`, to hub subscribers whose
/// selectors are mixed (exact, URI template, `*`, URL pattern, each beside one that
/// matches nothing), to compare the cost of a hub update with a channel event's.
pub const HUB_KIND: &str = "hub-burst-k1";
pub const HUB_COUNTS: [usize; 2] = [100, 1000];

/// The key the bench's runtime verifies hub tokens with (`MERCURE_PUBLISHER_JWT_KEY`).
pub const HUB_KEY: &str = "sse-bench-hub-key";
/// The hub's path.
const HUB_PATH: &str = "/.well-known/mercure";

/// Batch publishing: one publisher, one request in flight, `BATCH_EVENTS` events per
/// request (an `application/x-ndjson` body); a peer that cannot batch gets one per request.
pub const BATCH_KIND: &str = "batch";
pub const BATCH_COUNTS: [usize; 2] = [1, 100];
pub const BATCH_EVENTS: usize = 100;

/// A publisher that opens a new connection for every publish (and asks the server to
/// close it: `Connection: close`), as a client without keep-alive, or a short-lived
/// script per event, does; the other cases publish over keep-alive connections.
pub const CLOSE_KIND: &str = "burst-k1-close";
pub const CLOSE_COUNTS: [usize; 2] = [1, 100];

/// Token streaming: 5,000 small events to a few listeners, as one answer streamed by a
/// model would be; the same events published one per request (`tokens-k1`), in batches of
/// `BATCH_EVENTS` (`tokens-batch`), and as one streaming publish (`tokens-stream`, each
/// line written to the request's body as it is made; the channel ends after it).
pub const TOKEN_COUNTS: [usize; 3] = [1, 10, 100];
pub const TOKEN_MESSAGES: u64 = 5000;
pub const TOKEN_STREAM_KIND: &str = "tokens-stream";
/// The streaming publish again, its lines made at a model's pace rather than at once:
/// `TOKEN_PACED_RATE` a second, so that latency is not the wait behind lines made ahead.
pub const TOKEN_PACED_KIND: &str = "tokens-stream-paced";
pub const TOKEN_PACED_RATE: f64 = 1000.0;

#[derive(Debug, Clone, PartialEq)]
pub struct CaseSpec {
    pub name: String,
    /// The case kind without the listener count, e.g. `burst-k16`, `rate50`, `mem`.
    pub kind: String,
    pub listeners: usize,
    /// 0 for a memory case.
    pub messages: u64,
    /// Messages per second; 0: as fast as possible.
    pub rate: f64,
    /// Publish requests in flight at most (one keep-alive connection each).
    pub inflight: usize,
    /// Events per publish request (1: a single JSON publish; more: an NDJSON batch).
    pub batch: usize,
    /// A new connection for every publish request (no keep-alive).
    pub connection_per_publish: bool,
    /// One streaming publish (`?stream=1&end=1`) carries every message, a line each.
    pub streamed: bool,
}

impl CaseSpec {
    /// How it publishes: `50/s`, `max` (as fast as possible), or `-` (not at all).
    pub fn rate_label(&self) -> String {
        if self.is_memory() {
            "-".into()
        } else if self.rate > 0.0 {
            format!("{}/s", self.rate)
        } else {
            "max".into()
        }
    }

    pub fn is_memory(&self) -> bool {
        self.kind == MEMORY_KIND
    }

    pub fn is_hub(&self) -> bool {
        self.kind == HUB_KIND
    }

    pub fn is_batch(&self) -> bool {
        self.kind == BATCH_KIND
    }

    /// `kind` without the connection mode: a `burst-k1-close` case publishes as
    /// `burst-k1` does.
    pub fn base_kind(&self) -> &str {
        self.kind.strip_suffix("-close").unwrap_or(&self.kind)
    }
}

/// Every case, in order: the fan-out suite, then the memory cases. `messages` overrides
/// every fan-out case's message count.
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
        let mut kinds: Vec<(&str, f64, usize)> = vec![
            ("burst-k1", 0.0, 1),
            ("burst-k16", 0.0, 16),
            // A steady rate keeps a few requests in flight so that one slow publish
            // (a big fan-out) does not hold the schedule back.
            ("rate50", 50.0, 4),
        ];
        if n >= 5000 {
            kinds.push(("rate10", 10.0, 4));
        }
        if CLOSE_COUNTS.contains(&n) {
            kinds.insert(1, (CLOSE_KIND, 0.0, 1));
        }
        for (kind, rate, k) in kinds {
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
                batch: 1,
                connection_per_publish: kind == CLOSE_KIND,
                streamed: false,
            });
        }
    }
    for &n in &HUB_COUNTS {
        v.push(CaseSpec {
            name: format!("n{n}-{HUB_KIND}"),
            kind: HUB_KIND.to_string(),
            listeners: n,
            messages: messages.unwrap_or(500),
            rate: 0.0,
            inflight: 1,
            batch: 1,
            connection_per_publish: false,
            streamed: false,
        });
    }
    for &n in &BATCH_COUNTS {
        v.push(CaseSpec {
            name: format!("n{n}-{BATCH_KIND}"),
            kind: BATCH_KIND.to_string(),
            listeners: n,
            // Enough for the server's CPU to be more than a few of /proc's 10 ms ticks.
            messages: messages.unwrap_or(if n == 1 { 30_000 } else { 10_000 }),
            rate: 0.0,
            inflight: 1,
            batch: BATCH_EVENTS,
            connection_per_publish: false,
            streamed: false,
        });
    }
    for &n in &TOKEN_COUNTS {
        for (kind, batch, streamed, rate) in [
            ("tokens-k1", 1, false, 0.0),
            ("tokens-batch", BATCH_EVENTS, false, 0.0),
            (TOKEN_STREAM_KIND, 1, true, 0.0),
            (TOKEN_PACED_KIND, 1, true, TOKEN_PACED_RATE),
        ] {
            v.push(CaseSpec {
                name: format!("n{n}-{kind}"),
                kind: kind.to_string(),
                listeners: n,
                messages: messages.unwrap_or(TOKEN_MESSAGES),
                rate,
                inflight: 1,
                batch,
                connection_per_publish: false,
                streamed,
            });
        }
    }
    for &n in &MEMORY_COUNTS {
        v.push(CaseSpec {
            name: format!("{MEMORY_KIND}-n{n}"),
            kind: MEMORY_KIND.to_string(),
            listeners: n,
            messages: 0,
            rate: 0.0,
            inflight: 0,
            batch: 1,
            connection_per_publish: false,
            streamed: false,
        });
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

/// Where to run.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// The server process (tree) to measure, if known.
    pub pid: Option<i32>,
    /// Where to ask for a garbage collection in the runtime (bench/miniflare.mjs).
    pub gc: Option<SocketAddr>,
    /// nginx + nchan: one message per publish request, whatever the case's batch.
    pub nchan: bool,
    /// Where the runtime keeps the objects' storage, when the bench started it.
    pub persist: Option<std::path::PathBuf>,
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
    /// How long a memory case holds its listeners idle before measuring.
    pub hold: Duration,
    /// Makes channel names unique per run.
    pub run_id: String,
    pub request_timeout: Duration,
    pub bearer: Option<String>,
    pub listen_token: Option<String>,
}

/// The runtime's resident memory around a case, in KB.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    /// Whether `before` was sampled after a garbage collection (memory cases, Miniflare).
    pub before_collected: bool,
    pub before: Option<Rss>,
    pub after_connect: Option<Rss>,
    pub after_publish: Option<Rss>,
    /// (after_connect − before) / connected listeners.
    pub per_listener: Option<PerListener>,
    /// Memory cases with a collection: after connecting, once the garbage is collected.
    pub after_connect_collected: Option<Rss>,
    /// (after_connect_collected − before) / connected listeners.
    pub per_listener_collected: Option<PerListener>,
    pub by_process_after_publish: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PerListener {
    pub group_kb: f64,
    pub workerd_kb: f64,
}

impl PerListener {
    /// (after − before) / listeners; `None` without listeners.
    pub fn between(before: Rss, after: Rss, listeners: usize) -> Option<PerListener> {
        let per = |b: u64, a: u64| stats::round((a as f64 - b as f64) / listeners as f64, 2);
        (listeners > 0).then(|| PerListener {
            group_kb: per(before.group_kb, after.group_kb),
            workerd_kb: per(before.workerd_kb, after.workerd_kb),
        })
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Cpu {
    /// The runtime's processes, from the first publish until deliveries ended.
    pub server: Option<f64>,
    pub server_by_process: BTreeMap<String, f64>,
    /// The bench, the whole case.
    pub bench: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
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
    #[serde(rename = "publish_rtt_ms")]
    pub publish_rtt: Option<Summary>,
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    #[serde(rename = "foreign_events")]
    pub foreign: u64,
    pub gaps: u64,
    pub reconnects: u64,
    pub heartbeats: u64,
    pub delivery_seconds: f64,
    pub delivered_per_sec: f64,
    #[serde(rename = "latency_ms")]
    pub latency: Option<Summary>,
    #[serde(rename = "rss_kb")]
    pub memory: Memory,
    #[serde(rename = "cpu_seconds")]
    pub cpu: Cpu,
    pub server_stats: Option<Value>,
    /// The stats as the server answered them with the listeners connected (a channel's,
    /// or the hub's, read with a publisher's token).
    pub server_stats_connected: Option<Value>,
    pub timed_out: bool,
    pub server_reloads: u64,
    pub errors: Vec<String>,
    pub finished_at: u64,
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

/// What the listeners of a case share while it runs.
#[derive(Default)]
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
    api: Api,
    /// Listener `i` listens on `paths[i % paths.len()]`.
    paths: Vec<String>,
    messages: u64,
    hard_deadline: tokio::time::Instant,
    reconnect_delay: Option<Duration>,
    max_reconnects: u32,
}

#[derive(Default)]
struct ListenerResult {
    connected: bool,
    /// One bit per message sequence number.
    seen: Vec<u64>,
    latencies: Vec<u32>,
    unique: u64,
    duplicates: u64,
    foreign: u64,
    gaps: u64,
    reconnects: u64,
    heartbeats: u64,
    last_recv_us: u64,
}

impl ListenerResult {
    fn new(messages: u64) -> Self {
        ListenerResult {
            seen: vec![0; messages.div_ceil(64) as usize],
            ..Default::default()
        }
    }

    /// Counts one event received at `now` (µs).
    fn record(&mut self, event: &ParsedEvent, now: u64, messages: u64, shared: &Shared) {
        if event.event_type == "gap" {
            self.gaps += 1;
            return;
        }
        match parse_payload(&event.data) {
            Some((seq, t)) if seq < messages => {
                let (word, bit) = ((seq / 64) as usize, 1 << (seq % 64));
                if self.seen[word] & bit != 0 {
                    self.duplicates += 1;
                    return;
                }
                self.seen[word] |= bit;
                self.unique += 1;
                self.latencies
                    .push(now.saturating_sub(t).min(u32::MAX as u64) as u32);
                self.last_recv_us = now;
                shared.received.fetch_add(1, Ordering::Relaxed);
            }
            _ => self.foreign += 1,
        }
    }
}

/// How reading one stream ended.
enum StreamEnd {
    /// Every message is in.
    Complete,
    /// The case stopped the listeners, or its deadline passed.
    Stopped,
    /// The server ended the stream (or the connection broke): reconnect.
    Ended,
}

/// Reads an open stream until it ends, every message is in, or the case stops.
async fn read_stream(
    mut response: reqwest::Response,
    cfg: &ListenCfg,
    shared: &Shared,
    parser: &mut Parser,
    r: &mut ListenerResult,
    stop: &mut watch::Receiver<bool>,
) -> StreamEnd {
    loop {
        let chunk = tokio::select! {
            biased;
            _ = stop.changed() => return StreamEnd::Stopped,
            _ = tokio::time::sleep_until(cfg.hard_deadline) => return StreamEnd::Stopped,
            chunk = response.chunk() => chunk,
        };
        let Ok(Some(bytes)) = chunk else {
            return StreamEnd::Ended;
        };
        let comments_before = parser.comments;
        let events = parser.feed(&bytes);
        let now = now_us();
        r.heartbeats += (parser.comments - comments_before) as u64;
        for event in &events {
            r.record(event, now, cfg.messages, shared);
        }
        if cfg.messages > 0 && r.unique == cfg.messages {
            return StreamEnd::Complete;
        }
    }
}

/// One listener, as an `EventSource`: when its stream ends (e.g. cut as a slow listener)
/// it reconnects after the stream's `retry:` delay with `Last-Event-ID`.
async fn listener(
    cfg: Arc<ListenCfg>,
    index: usize,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> ListenerResult {
    let path = &cfg.paths[index % cfg.paths.len()];
    let mut r = ListenerResult::new(cfg.messages);
    let mut parser = Parser::new();
    let mut attempts_left = cfg.max_reconnects;
    loop {
        if *stop.borrow() || tokio::time::Instant::now() >= cfg.hard_deadline {
            break;
        }
        match cfg.api.open_stream(path, parser.last_event_id()).await {
            Ok(response) => {
                if !r.connected {
                    r.connected = true;
                    shared.connected.fetch_add(1, Ordering::Relaxed);
                }
                match read_stream(response, &cfg, &shared, &mut parser, &mut r, &mut stop).await {
                    StreamEnd::Complete | StreamEnd::Stopped => break,
                    StreamEnd::Ended => parser.end_of_stream(),
                }
            }
            Err(msg) => {
                shared.error(msg);
                if !r.connected {
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        if attempts_left == 0 {
            shared.error("too many reconnects".into());
            break;
        }
        attempts_left -= 1;
        r.reconnects += 1;
        let retry = Duration::from_millis(parser.retry_ms.unwrap_or(1000).min(60_000));
        tokio::select! {
            _ = stop.changed() => break,
            _ = sleep(cfg.reconnect_delay.unwrap_or(retry)) => {}
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

impl PubResult {
    fn note_error(&mut self, msg: String) {
        if self.error_msgs.len() < 5 && !self.error_msgs.contains(&msg) {
            self.error_msgs.push(msg);
        }
    }

    fn merge(&mut self, other: PubResult) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.rtts.extend(other.rtts);
        for msg in other.error_msgs {
            self.note_error(msg);
        }
        self.last_end = self.last_end.max(other.last_end);
    }
}

/// What the publisher does: `messages` publishes on `path`, `inflight` at a time.
#[derive(Clone)]
struct PublishPlan {
    addr: SocketAddr,
    path: String,
    /// For the hub: the topic, and the body is a Mercure form instead of JSON.
    hub_topic: Option<String>,
    messages: u64,
    /// Events per request.
    batch: usize,
    /// A new connection for every request.
    connection_per_publish: bool,
    /// Every message in one streaming publish that ends the channel.
    streamed: bool,
    rate: f64,
    inflight: usize,
    deadline: Instant,
    connect_timeout: Duration,
    request_timeout: Duration,
    bearer: Option<String>,
}

/// Publishes on its own thread and runtime so that its timing does not depend on how
/// busy the listeners' thread is.
fn publish_all(plan: PublishPlan) -> std::thread::JoinHandle<(Instant, PubResult)> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("publisher runtime");
        rt.block_on(async move {
            let api = if plan.connection_per_publish {
                Api::without_keep_alive(plan.addr, plan.connect_timeout, plan.request_timeout)
            } else {
                Api::new(plan.addr, plan.connect_timeout, plan.request_timeout)
            };
            let plan = Arc::new(plan);
            let next = Arc::new(AtomicU64::new(0));
            let start = Instant::now();
            if plan.streamed {
                return (start, stream_publisher(api, plan).await);
            }
            let tasks: Vec<_> = (0..plan.inflight.max(1))
                .map(|_| tokio::spawn(publisher(api.clone(), plan.clone(), next.clone(), start)))
                .collect();
            let mut all = PubResult::default();
            for t in tasks {
                if let Ok(r) = t.await {
                    all.merge(r);
                }
            }
            (start, all)
        })
    })
}

/// One of the publisher's requests in flight: takes the next sequence number until all
/// are sent (or the deadline passes).
async fn publisher(
    api: Api,
    plan: Arc<PublishPlan>,
    next: Arc<AtomicU64>,
    start: Instant,
) -> PubResult {
    let mut res = PubResult::default();
    loop {
        let batch = plan.batch.max(1) as u64;
        let i = next.fetch_add(batch, Ordering::Relaxed);
        if i >= plan.messages {
            break;
        }
        let count = batch.min(plan.messages - i);
        if plan.rate > 0.0 {
            let at = start + Duration::from_secs_f64(i as f64 / plan.rate);
            if at > plan.deadline {
                break;
            }
            tokio::time::sleep_until(at.into()).await;
        }
        if Instant::now() > plan.deadline {
            break;
        }
        let body = match &plan.hub_topic {
            Some(topic) => {
                let data = payload(i, now_us());
                Body::Form(form_urlencoded(&[("topic", topic), ("data", &data)]))
            }
            None if batch > 1 => {
                let t = now_us();
                let lines: Vec<String> = (i..i + count).map(|seq| payload(seq, t)).collect();
                Body::Ndjson(lines.join("\n") + "\n")
            }
            None => Body::Json(payload(i, now_us())),
        };
        match api.publish(&plan.path, body, plan.bearer.as_deref()).await {
            Ok(rtt) => {
                res.ok += count;
                res.rtts.push(rtt.as_micros().min(u32::MAX as u128) as u32);
            }
            Err((status, msg)) => {
                res.errors += count;
                res.note_error(msg);
                let back_off = match status.map(|s| s.as_u16()) {
                    Some(503 | 429) => Some(100),
                    Some(_) => None,
                    None => Some(50),
                };
                if let Some(ms) = back_off {
                    sleep(Duration::from_millis(ms)).await;
                }
            }
        }
        res.last_end = Some(Instant::now());
    }
    res
}

/// Every message in one streaming publish, each line written to the body as soon as it
/// is made (stamped then; at the plan's rate, or as fast as the body takes them), as a
/// server relaying a model's output does; the channel ends after the last.
async fn stream_publisher(api: Api, plan: Arc<PublishPlan>) -> PubResult {
    let mut res = PubResult::default();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let messages = plan.messages;
    let rate = plan.rate;
    let writer = tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        for seq in 0..messages {
            if rate > 0.0 {
                tokio::time::sleep_until(start + Duration::from_secs_f64(seq as f64 / rate)).await;
            }
            let line = format!("{}\n", payload(seq, now_us()));
            if tx.send(bytes::Bytes::from(line)).await.is_err() {
                break;
            }
        }
    });
    let path = format!("{}?stream=1&end=1", plan.path);
    match api
        .publish(&path, Body::NdjsonStream(rx), plan.bearer.as_deref())
        .await
    {
        Ok(rtt) => {
            res.ok = messages;
            res.rtts.push(rtt.as_micros().min(u32::MAX as u128) as u32);
        }
        Err((_, msg)) => {
            res.errors = messages;
            res.note_error(msg);
        }
    }
    let _ = writer.await;
    res.last_end = Some(Instant::now());
    res
}

/// `name=value&...`, percent-encoded as a form.
fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A 0.x Mercure token that may publish anywhere, signed with HS256 and `key`.
fn hub_token(key: &str) -> String {
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let signing = format!(
        "{}.{}",
        b64(r#"{"alg":"HS256","typ":"JWT"}"#),
        b64(r#"{"mercure":{"publish":["*"]}}"#)
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key");
    mac.update(signing.as_bytes());
    let signature =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing}.{signature}")
}

/// The runtime's memory: the median of three samples half a second apart (one sample
/// can catch a collection in the middle).
pub(crate) async fn sample_rss(pid: Option<i32>) -> Option<Rss> {
    let pid = pid?;
    let mut samples = Vec::with_capacity(3);
    for i in 0..3 {
        if i > 0 {
            sleep(Duration::from_millis(500)).await;
        }
        samples.push(runtime::rss(pid));
    }
    samples.sort_by_key(|r| r.workerd_kb);
    Some(samples[1])
}

/// A case while it runs.
struct Run<'a> {
    spec: &'a CaseSpec,
    target: &'a Target,
    opts: &'a Options,
    api: Api,
    channel: String,
    deadline: Instant,
    shared: Arc<Shared>,
    res: CaseResult,
}

/// The listeners of a case, and how to stop them.
struct Listeners {
    handles: Vec<JoinHandle<ListenerResult>>,
    stop: watch::Sender<bool>,
}

pub async fn run_case(spec: &CaseSpec, target: &Target, opts: &Options) -> CaseResult {
    let mut run = Run::new(spec, target, opts);
    let bench_cpu_start = runtime::own_cpu_seconds();
    let reloads_start = runtime::reloads();
    run.warm_up().await;
    let listeners = run.connect_listeners().await;
    run.await_server_count().await;
    run.measure_connected().await;
    let publish_start_us = now_us();
    if spec.messages > 0 {
        let cpu_start = target.pid.map(runtime::tree_cpu_by_name);
        run.publish().await;
        run.wait_for_deliveries().await;
        run.measure_after_publish(cpu_start).await;
    }
    run.stop_and_collect(listeners, publish_start_us).await;
    run.finish(bench_cpu_start, reloads_start).await
}

impl<'a> Run<'a> {
    fn new(spec: &'a CaseSpec, target: &'a Target, opts: &'a Options) -> Self {
        let channel = format!("bench-{}-{}", opts.run_id, spec.name);
        Run {
            spec,
            target,
            opts,
            api: Api::new(target.addr, opts.connect_timeout, opts.request_timeout),
            deadline: Instant::now() + opts.case_timeout,
            shared: Arc::new(Shared::default()),
            res: CaseResult {
                name: spec.name.clone(),
                kind: spec.kind.clone(),
                channel: channel.clone(),
                listeners: spec.listeners,
                messages: spec.messages,
                rate: spec.rate,
                inflight: spec.inflight,
                ..Default::default()
            },
            channel,
        }
    }

    async fn channel_stats(&self) -> Result<Value, String> {
        self.api
            .get_json(&format!("/channels/{}", self.channel))
            .await
    }

    /// The hub's stats (`GET /.well-known/mercure/stats`, with a publisher's token).
    async fn hub_stats(&self) -> Result<Value, String> {
        let token = hub_token(HUB_KEY);
        self.api
            .get_json_as(&format!("{HUB_PATH}/stats"), Some(&token))
            .await
    }

    /// One stats request opens the channel's object (and proves the route answers) before
    /// the first memory sample; a memory case collects the garbage of starting up first.
    async fn warm_up(&mut self) {
        // nchan knows a channel only once it has a subscriber (404 before).
        if let Err(e) = self.channel_stats().await {
            if !self.target.nchan {
                self.res.errors.push(format!("before the case: {e}"));
            }
        }
        sleep(Duration::from_millis(300)).await;
        if self.spec.is_memory() {
            self.res.memory.before_collected = self.collect_garbage().await;
        }
        self.res.memory.before = sample_rss(self.target.pid).await;
    }

    /// Whether the runtime collected its garbage (false: it cannot, or it failed).
    async fn collect_garbage(&mut self) -> bool {
        crate::client::collect_garbage_noting(self.target.gc, &mut self.res.errors).await
    }

    /// Where the listeners listen: the channel, or for a hub case the hub with mixed
    /// selectors that all match the case's topic (each beside one that matches nothing).
    fn listen_paths(&self) -> Vec<String> {
        if !self.spec.is_hub() {
            let mut path = format!("/channels/{}/events", self.channel);
            if let Some(token) = &self.opts.listen_token {
                path.push_str(&format!("?token={token}"));
            }
            return vec![path];
        }
        let topic = self.hub_topic();
        let base = format!("https://bench.test/{}", self.channel);
        [
            ("topic", topic.clone()),
            ("topic", format!("{base}/items/{{id}}")),
            ("topic", "*".to_string()),
            ("match_urlpattern", format!("{base}/items/:id")),
        ]
        .into_iter()
        .map(|(name, value)| {
            let query = form_urlencoded(&[
                (name, value.as_str()),
                ("topic", "https://bench.test/nothing-matches-this"),
            ]);
            format!("{HUB_PATH}?{query}")
        })
        .collect()
    }

    fn hub_topic(&self) -> String {
        format!("https://bench.test/{}/items/1", self.channel)
    }

    /// Opens the listeners in batches, each batch once the previous one has its heads.
    async fn connect_listeners(&mut self) -> Listeners {
        let cfg = Arc::new(ListenCfg {
            api: self.api.clone(),
            paths: self.listen_paths(),
            messages: self.spec.messages,
            hard_deadline: (self.deadline + Duration::from_secs(30)).into(),
            reconnect_delay: self.opts.reconnect_delay,
            max_reconnects: self.opts.max_reconnects,
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut handles = Vec::with_capacity(self.spec.listeners);
        let started = Instant::now();
        while handles.len() < self.spec.listeners {
            let end = (handles.len() + self.opts.batch.max(1)).min(self.spec.listeners);
            while handles.len() < end {
                let task = listener(
                    cfg.clone(),
                    handles.len(),
                    self.shared.clone(),
                    stop_rx.clone(),
                );
                handles.push(tokio::spawn(task));
            }
            if !self.await_heads(end).await {
                break;
            }
        }
        self.res.connect_seconds = stats::round(started.elapsed().as_secs_f64(), 3);
        self.res.connected = self.shared.connected.load(Ordering::Relaxed);
        self.res.connect_failures = self.shared.failed.load(Ordering::Relaxed);
        Listeners { handles, stop }
    }

    /// Waits until `n` listeners have their response head (or failed); false on time-out.
    async fn await_heads(&mut self, n: usize) -> bool {
        let batch_deadline = Instant::now() + self.opts.connect_timeout;
        loop {
            let done = self.shared.connected.load(Ordering::Relaxed)
                + self.shared.failed.load(Ordering::Relaxed);
            if done >= n {
                return true;
            }
            if Instant::now() > batch_deadline.min(self.deadline) {
                self.res.timed_out = true;
                self.res.errors.push(format!(
                    "connecting: only {done} of {n} listeners answered in time"
                ));
                return false;
            }
            sleep(Duration::from_millis(10)).await;
        }
    }

    /// Asks the server how many listeners it counts until it counts them all (its count
    /// may lag a moment behind the response heads), for five seconds at most.
    async fn await_server_count(&mut self) {
        if self.spec.is_hub() {
            // Its subscriber is registered before its head: one read shows them all.
            match self.hub_stats().await {
                Ok(v) => {
                    self.res.server_listeners = v.get("subscribers").and_then(Value::as_u64);
                    self.res.server_stats_connected = Some(v);
                }
                Err(e) => self.res.errors.push(e),
            }
            return;
        }
        let stats_deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.channel_stats().await {
                Ok(v) => {
                    // nchan's channel info says "subscribers".
                    let n = v
                        .get("listeners")
                        .or_else(|| v.get("subscribers"))
                        .and_then(Value::as_u64);
                    self.res.server_listeners = n;
                    self.res.server_stats_connected = Some(v);
                    if n.unwrap_or(0) >= self.res.connected as u64
                        || Instant::now() > stats_deadline
                    {
                        return;
                    }
                }
                Err(e) => {
                    self.res.errors.push(e);
                    return;
                }
            }
            sleep(Duration::from_millis(200)).await;
        }
    }

    /// Memory with the listeners connected: as found and, in a memory case (which holds
    /// them idle first), once the garbage is collected.
    async fn measure_connected(&mut self) {
        let memory_case = self.spec.is_memory();
        sleep(if memory_case {
            self.opts.hold
        } else {
            Duration::from_secs(1)
        })
        .await;
        let pid = self.target.pid;
        self.res.memory.after_connect = sample_rss(pid).await;
        if memory_case && self.res.memory.before_collected && self.collect_garbage().await {
            self.res.memory.after_connect_collected = sample_rss(pid).await;
        }
        let (memory, connected) = (&mut self.res.memory, self.res.connected);
        let per = |after: Option<Rss>| PerListener::between(memory.before?, after?, connected);
        memory.per_listener = per(memory.after_connect);
        memory.per_listener_collected = per(memory.after_connect_collected);
    }

    /// Publishes from its own thread, and waits for it without blocking this runtime (the
    /// listeners run on it).
    async fn publish(&mut self) {
        let spec = self.spec;
        let deadline = if spec.rate > 0.0 {
            Instant::now() + Duration::from_secs_f64(spec.messages as f64 / spec.rate * 1.5 + 30.0)
        } else {
            self.deadline
        };
        let (path, topic, bearer) = if spec.is_hub() {
            let token = hub_token(HUB_KEY);
            (HUB_PATH.to_string(), Some(self.hub_topic()), Some(token))
        } else {
            (
                format!("/channels/{}/events", self.channel),
                None,
                self.opts.bearer.clone(),
            )
        };
        let publisher = publish_all(PublishPlan {
            addr: self.target.addr,
            path,
            hub_topic: topic,
            messages: spec.messages,
            batch: if self.target.nchan { 1 } else { spec.batch },
            connection_per_publish: spec.connection_per_publish,
            streamed: spec.streamed && !self.target.nchan,
            rate: spec.rate,
            inflight: spec.inflight,
            deadline: deadline.min(self.deadline),
            connect_timeout: self.opts.connect_timeout,
            request_timeout: self.opts.request_timeout,
            bearer,
        });
        while !publisher.is_finished() {
            sleep(Duration::from_millis(20)).await;
        }
        let Ok((start, mut published)) = publisher.join() else {
            self.res.errors.push("publisher thread panicked".into());
            return;
        };
        let res = &mut self.res;
        res.published_ok = published.ok;
        res.publish_errors = published.errors;
        res.errors.append(&mut published.error_msgs);
        res.publish_seconds = published
            .last_end
            .map(|e| stats::round(e.duration_since(start).as_secs_f64(), 3))
            .unwrap_or(0.0);
        res.publish_rate = stats::round(stats::rate(published.ok, res.publish_seconds), 1);
        res.publish_rtt = stats::summarize_micros(&mut published.rtts);
        res.expected = res.connected as u64 * published.ok;
    }

    /// Until every listener has every message, or nothing new arrived for the idle
    /// time-out, or the case's time is up.
    async fn wait_for_deliveries(&mut self) {
        let mut last = self.shared.received.load(Ordering::Relaxed);
        let mut last_progress = Instant::now();
        loop {
            let now = self.shared.received.load(Ordering::Relaxed);
            if now >= self.res.expected {
                return;
            }
            if now != last {
                last = now;
                last_progress = Instant::now();
            }
            if last_progress.elapsed() > self.opts.idle_timeout || Instant::now() > self.deadline {
                self.res.timed_out = true;
                return;
            }
            sleep(Duration::from_millis(20)).await;
        }
    }

    async fn measure_after_publish(&mut self, cpu_start: Option<Vec<(String, f64)>>) {
        let Some(pid) = self.target.pid else {
            return;
        };
        let cpu_start = cpu_start.unwrap_or_default();
        for (name, secs) in runtime::tree_cpu_by_name(pid) {
            let was = cpu_start
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(0.0, |(_, s)| *s);
            self.res
                .cpu
                .server_by_process
                .insert(name, stats::round((secs - was).max(0.0), 2));
        }
        self.res.cpu.server = Some(stats::round(
            self.res.cpu.server_by_process.values().sum(),
            2,
        ));
        self.res.memory.after_publish = Some(runtime::rss(pid));
        self.res.memory.by_process_after_publish = runtime::tree_memory(pid).into_iter().collect();
    }

    /// Stops the listeners and adds up what they received.
    async fn stop_and_collect(&mut self, listeners: Listeners, publish_start_us: u64) {
        let _ = listeners.stop.send(true);
        let res = &mut self.res;
        let join_deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut latencies: Vec<u32> = Vec::with_capacity(res.expected.min(50_000_000) as usize);
        let mut last_recv_us = 0;
        for handle in listeners.handles {
            let abort = handle.abort_handle();
            match tokio::time::timeout_at(join_deadline, handle).await {
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
        res.delivered_per_sec = stats::round(stats::rate(res.received, res.delivery_seconds), 1);
        res.latency = stats::summarize_micros(&mut latencies);
        res.errors.append(&mut self.shared.errors.lock().unwrap());
    }

    /// The channel's (or the hub's) own counters, and what the case cost the bench.
    async fn finish(mut self, bench_cpu_start: f64, reloads_start: u64) -> CaseResult {
        let stats = if self.spec.is_hub() {
            self.hub_stats().await
        } else {
            self.channel_stats().await
        };
        match stats {
            Ok(v) => self.res.server_stats = Some(v),
            Err(e) => self.res.errors.push(format!("after the case: {e}")),
        }
        let res = &mut self.res;
        res.cpu.bench = stats::round(runtime::own_cpu_seconds() - bench_cpu_start, 2);
        res.server_reloads = runtime::reloads() - reloads_start;
        if res.server_reloads > 0 {
            res.errors.push(format!(
                "the server reloaded the worker {} time(s) during the case (wrangler watches src/), which cuts every stream: do not trust this case",
                res.server_reloads
            ));
        }
        res.finished_at = now_us() / 1_000_000;
        sleep(self.opts.settle).await;
        self.res
    }
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
        assert!(m.iter().all(|c| c.messages == 200 || c.is_memory()));
    }

    #[test]
    fn memory_cases_publish_nothing() {
        let mem: Vec<CaseSpec> = all_cases(Some(200), None)
            .into_iter()
            .filter(CaseSpec::is_memory)
            .collect();
        let names: Vec<&str> = mem.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["mem-n1000", "mem-n5000", "mem-n10000"]);
        assert!(mem.iter().all(|c| c.messages == 0 && c.rate_label() == "-"));
        assert!(matches("mem-*", "mem-n5000"));
    }

    #[test]
    fn memory_per_listener() {
        let rss = |group_kb, workerd_kb| Rss {
            group_kb,
            workerd_kb,
        };
        let per = PerListener::between(rss(1000, 400), rss(3000, 2300), 20).unwrap();
        assert_eq!((per.group_kb, per.workerd_kb), (100.0, 95.0));
        assert_eq!(
            PerListener::between(rss(1, 1), rss(0, 0), 3)
                .unwrap()
                .workerd_kb,
            -0.33
        );
        assert!(PerListener::between(rss(1, 1), rss(2, 2), 0).is_none());
    }

    #[test]
    fn a_listener_counts_each_message_once() {
        let shared = Shared::default();
        let mut r = ListenerResult::new(3);
        let mut parser = Parser::new();
        let stream = b"retry: 1000\n\n: keep-alive\n\nid: 1\ndata: {\"seq\":0,\"t\":10}\n\n\
            id: 2\ndata: {\"seq\":0,\"t\":10}\n\nevent: gap\ndata: {}\n\ndata: pong\n\n\
            data: {\"seq\":2,\"t\":40}\n\n";
        for event in parser.feed(stream) {
            r.record(&event, 50, 3, &shared);
        }
        assert_eq!((r.unique, r.duplicates, r.gaps, r.foreign), (2, 1, 1, 1));
        assert_eq!(r.latencies, [40, 10]);
        assert_eq!(shared.received.load(Ordering::Relaxed), 2);
        assert_eq!(parser.last_event_id(), "2");
    }
}
