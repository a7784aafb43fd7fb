//! A node's stream from its parent: while anyone is seated on the node, it reads the
//! parent's events and passes them on; when the stream ends, it resumes from the last id
//! it relayed, as any listener would. A parent that cannot be reached for longer than
//! [`UPLINK_WAIT`] has the node end its seats' streams, so that no one waits on a stream
//! with nothing to carry.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use worker::{Delay, Env};

use super::{ask_node, now_ms, position_of, Face, Hosted, UPLINK_WAIT};
use crate::domain::{EventId, NodePath};
use crate::platform::contract::{StreamCall, StreamRequest, Target};
use crate::platform::error::Error;
use crate::platform::host::Shared;
use crate::protocol::FrameReader;

/// Waits between attempts to reach the parent again: doubling, up to the last.
const UPLINK_BACKOFF_MS: [u64; 6] = [0, 50, 100, 250, 500, 1000];

/// A node's stream from its parent.
#[derive(Default)]
pub(super) struct Uplink {
    pub(super) state: Cell<LinkState>,
    /// Set when no one is left to serve: the stream is let go.
    pub(super) stop: Cell<bool>,
    /// Where a node that has relayed nothing yet starts its stream (none: from now).
    pub(super) seed: Cell<Option<EventId>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum LinkState {
    #[default]
    Down,
    Connecting,
    Up,
}

/// A node's stream from its parent, for as long as anyone is seated here: it takes the
/// parent's events and sends them on; when the stream ends (the parent cut it as slow, or
/// restarted), it resumes from the last event it relayed, as any listener would. When the
/// parent has been unreachable for longer than [`UPLINK_WAIT`], the listeners and children
/// here would wait on streams that carry nothing: the node ends them (their clients
/// reconnect and resume, possibly elsewhere in the tree) and lets the stream go, until a
/// new seat starts it again.
pub(super) async fn run<F: Face>(
    hosted: Shared<Hosted<F>>,
    env: Env,
    uplink: Rc<Uplink>,
    target: Target,
    path: NodePath,
) {
    let Some(parent) = path.parent() else {
        return;
    };
    let mut failures = 0;
    let mut failing_since = None;
    while !uplink.stop.get() {
        let resume = hosted.with(|h| h.stream.resume_after()).flatten();
        // A node that has relayed nothing yet asks from its seed, or from now.
        let asked = resume.or_else(|| uplink.seed.take());
        let request = StreamRequest::Relay {
            child: path.clone(),
            last_seen: asked,
        };
        let call = StreamCall::to_node(target.clone(), parent.clone(), request);
        match open(&call, &env).await {
            Ok((position, mut stream)) => {
                failures = 0;
                failing_since = None;
                hosted.with(|h| h.stream.relay_started(position, asked));
                uplink.state.set(LinkState::Up);
                let mut reader = FrameReader::new();
                while let Some(Ok(bytes)) = stream.next().await {
                    let frames = reader.feed(&bytes);
                    if !frames.is_empty() {
                        hosted.with(|h| {
                            h.stream.ingest(&frames, now_ms());
                            F::settle(h);
                        });
                    }
                    if uplink.stop.get() {
                        break;
                    }
                }
            }
            Err(e) => {
                worker::console_error!("node {path} could not reach its parent: {e}");
                // A node that has relayed nothing asks from the same place again.
                if resume.is_none() {
                    uplink.seed.set(asked);
                }
                failures += 1;
                let since = *failing_since.get_or_insert_with(now_ms);
                if now_ms().saturating_sub(since) > UPLINK_WAIT.as_millis() as u64 {
                    worker::console_error!("node {path} ends its streams: no parent since {since}");
                    hosted.with(|h| h.stream.end_streams());
                    break;
                }
            }
        }
        if !hosted.with(|h| h.seated()).unwrap_or(false) {
            break;
        }
        uplink.state.set(LinkState::Connecting);
        let wait = UPLINK_BACKOFF_MS[failures.min(UPLINK_BACKOFF_MS.len() - 1)];
        Delay::from(Duration::from_millis(wait)).await;
    }
    uplink.state.set(LinkState::Down);
}

async fn open(call: &StreamCall, env: &Env) -> Result<(EventId, worker::ByteStream), Error> {
    let mut response = ask_node(call, env, &[200]).await?;
    let position = position_of(&response)?;
    Ok((position, response.stream()?))
}
