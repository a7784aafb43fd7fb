//! What an idle case measured, and the table of both modes side by side.

use serde::Serialize;

use crate::cases::PerListener;
use crate::hibernate::STREAMS;
use crate::runtime::Rss;
use crate::stats::Summary;

/// One of the two events: its publishes and what the listeners got of it.
#[derive(Debug, Default, Serialize)]
pub struct Phase {
    pub published_ok: u64,
    pub publish_errors: u64,
    pub publish_rtt_ms: Option<Summary>,
    /// Listeners that got it (at least once).
    pub received: u64,
    /// Copies beyond the first, over all listeners.
    pub duplicates: u64,
    pub latency_ms: Option<Summary>,
    /// From the first publish until the last listener had it.
    pub seconds: f64,
    pub timed_out: bool,
}

/// What a channel's stats said.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ChannelStats {
    pub listeners: Option<u64>,
    pub sleeping: Option<u64>,
    pub starts: Option<u64>,
    pub published: Option<u64>,
    pub delivered: Option<u64>,
    pub last_id: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct IdleMemory {
    /// With the channels' objects open and no listener, after a garbage collection.
    pub before: Option<Rss>,
    /// Right after the first event reached every listener.
    pub active: Option<Rss>,
    /// Every 5 s while idle: (seconds into the idle time, memory).
    pub timeline: Vec<(f64, Rss)>,
    /// At the end of the idle time, as found.
    pub idle: Option<Rss>,
    /// Then, after a garbage collection (still idle).
    pub idle_collected: Option<Rss>,
    /// (idle − before) / connected listeners.
    pub per_idle_listener: Option<PerListener>,
    pub per_idle_listener_collected: Option<PerListener>,
    pub per_active_listener: Option<PerListener>,
}

#[derive(Debug, Default, Serialize)]
pub struct IdleResult {
    pub name: String,
    pub mode: String,
    pub hibernate: bool,
    pub build: Option<String>,
    pub listeners: usize,
    pub channels: usize,
    pub connected: usize,
    pub connect_failures: usize,
    pub connect_seconds: f64,
    pub idle_seconds: f64,
    pub first: Phase,
    pub next: Phase,
    /// Each channel's stats after the first event (the last request before the idle time).
    pub before_idle: Vec<ChannelStats>,
    /// Each channel's stats after the next event.
    pub after: Vec<ChannelStats>,
    /// Channels whose `starts` went up across the idle time.
    pub evicted: usize,
    /// Listeners that got the next event exactly once.
    pub next_exactly_once: u64,
    pub reconnects: u64,
    pub gaps: u64,
    pub foreign_events: u64,
    pub heartbeats: u64,
    #[serde(rename = "rss_kb")]
    pub memory: IdleMemory,
    pub errors: Vec<String>,
}

pub fn print_table(results: &[IdleResult]) {
    let kb = |m: Option<PerListener>| m.map_or("-".to_string(), |m| format!("{:.1}", m.workerd_kb));
    let mb = |r: Option<Rss>| {
        r.map_or("-".to_string(), |r| {
            format!("{:.0}", r.workerd_kb as f64 / 1024.0)
        })
    };
    let lat = |p: &Phase| {
        p.latency_ms
            .map_or("-".to_string(), |l| format!("{:.0}/{:.0}", l.p50, l.p99))
    };
    println!(
        "\nidle listeners: workerd's resident memory (MB; KB per listener: (idle − before) / listeners), evictions, the next event"
    );
    println!(
        "{:<16} {:<12} {:>9} {:>8} {:>7} {:>7} {:>6} {:>8} {:>9} {:>8} {:>10} {:>11} {:>6} {:>5}",
        "case",
        "mode",
        "connected",
        "evicted",
        "MB0",
        "MBidle",
        "KB/l",
        "KB/l gc",
        "next got",
        "exactly1",
        "p50/p99 ms",
        "1st p50/p99",
        "reconn",
        "dup"
    );
    for r in results {
        println!(
            "{:<16} {:<12} {:>9} {:>8} {:>7} {:>7} {:>6} {:>8} {:>9} {:>8} {:>10} {:>11} {:>6} {:>5}",
            r.name,
            r.mode,
            format!("{}/{}", r.connected, r.listeners),
            format!("{}/{}", r.evicted, r.channels),
            mb(r.memory.before),
            mb(r.memory.idle),
            kb(r.memory.per_idle_listener),
            kb(r.memory.per_idle_listener_collected),
            format!("{}/{}", r.next.received, r.connected),
            r.next_exactly_once,
            lat(&r.next),
            lat(&r.first),
            r.reconnects,
            r.first.duplicates + r.next.duplicates,
        );
    }
    for r in results {
        let starts = |v: &[ChannelStats]| {
            v.iter()
                .map(|s| s.starts.map_or("-".into(), |n| n.to_string()))
                .collect::<Vec<String>>()
                .join(",")
        };
        let sleeping: u64 = r.before_idle.iter().filter_map(|s| s.sleeping).sum();
        let sum = |v: &[ChannelStats], get: fn(&ChannelStats) -> Option<u64>| -> u64 {
            v.iter().filter_map(get).sum()
        };
        println!(
            "{} {:<12} starts before idle [{}], after [{}]; sleeping seats {sleeping}; {}",
            r.name,
            r.mode,
            starts(&r.before_idle),
            starts(&r.after),
            if r.mode == STREAMS {
                "(expect no eviction)"
            } else {
                "(expect every channel evicted)"
            }
        );
        println!(
            "{} {:<12} channels' published / delivered, summed: before idle {} / {}, after {} / {}",
            r.name,
            r.mode,
            sum(&r.before_idle, |s| s.published),
            sum(&r.before_idle, |s| s.delivered),
            sum(&r.after, |s| s.published),
            sum(&r.after, |s| s.delivered),
        );
    }
}
