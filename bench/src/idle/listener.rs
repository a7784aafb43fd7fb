//! The idle case's listener: an `EventSource` that counts each copy of the case's two
//! events it gets, and their latency.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sse_edge::protocol::Parser;
use tokio::sync::watch;
use tokio::time::sleep;

use crate::cases::{now_us, parse_payload};
use crate::client::Api;

/// What the listeners share.
#[derive(Default)]
pub struct Shared {
    pub connected: AtomicUsize,
    pub failed: AtomicUsize,
    /// Listeners that have event 0, event 1.
    pub got: [AtomicU64; 2],
    pub errors: Mutex<Vec<String>>,
}

impl Shared {
    pub fn error(&self, e: String) {
        let mut errs = self.errors.lock().unwrap();
        if errs.len() < 5 && !errs.contains(&e) {
            errs.push(e);
        }
    }
}

/// What one listener got.
#[derive(Default)]
pub struct Got {
    pub count: [u32; 2],
    pub latency_us: [Option<u32>; 2],
    pub reconnects: u64,
    pub heartbeats: u64,
    pub foreign: u64,
    pub gaps: u64,
}

/// One listener, as an `EventSource`: reads its stream until told to stop; when the
/// stream ends it reconnects with `Last-Event-ID` after the stream's `retry:` (counted:
/// in this case no stream should end).
pub async fn listen(
    api: Api,
    path: String,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    deadline: tokio::time::Instant,
    max_reconnects: u32,
) -> Got {
    let mut parser = Parser::new();
    let mut g = Got::default();
    let mut connected = false;
    for attempt in 0..=max_reconnects {
        if attempt > 0 {
            g.reconnects += 1;
            let retry = Duration::from_millis(parser.retry_ms.unwrap_or(1000).min(60_000));
            tokio::select! {
                _ = stop.changed() => return g,
                _ = tokio::time::sleep_until(deadline) => return g,
                _ = sleep(retry) => {}
            }
        }
        let mut response = match api.open_stream(&path, parser.last_event_id()).await {
            Ok(r) => r,
            Err(e) => {
                shared.error(e);
                if !connected {
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                    return g;
                }
                continue;
            }
        };
        if !connected {
            connected = true;
            shared.connected.fetch_add(1, Ordering::Relaxed);
        }
        loop {
            let chunk = tokio::select! {
                biased;
                _ = stop.changed() => return g,
                _ = tokio::time::sleep_until(deadline) => return g,
                chunk = response.chunk() => chunk,
            };
            let Ok(Some(bytes)) = chunk else {
                parser.end_of_stream();
                break;
            };
            let comments = parser.comments;
            let events = parser.feed(&bytes);
            g.heartbeats += (parser.comments - comments) as u64;
            let now = now_us();
            for event in events {
                if event.event_type == "gap" {
                    g.gaps += 1;
                    continue;
                }
                match parse_payload(&event.data) {
                    Some((seq, t)) if seq < 2 => {
                        let i = seq as usize;
                        g.count[i] += 1;
                        if g.count[i] == 1 {
                            g.latency_us[i] =
                                Some(now.saturating_sub(t).min(u32::MAX as u64) as u32);
                            shared.got[i].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => g.foreign += 1,
                }
            }
        }
    }
    g
}
