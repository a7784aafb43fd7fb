//! A node's stream from its parent: while anyone is seated on the node, it reads the
//! parent's events and passes them on; when the stream ends, it resumes from the last id
//! it relayed, as any listener would. With objects that sleep, the node instead asks the
//! parent to feed it over a socket ([`super::feed`]), and asks again when that closes. A
//! parent that cannot be reached for longer than [`UPLINK_WAIT`] has the node end its
//! seats' streams, so that no one waits on a stream with nothing to carry. Replays a node
//! does not hold are asked of the parent here too.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use worker::{Delay, Env};

use worker::Response;

use super::{ask_node, now_ms, position_of, Face, Hosted, StreamObject};
use crate::domain::SubscribeError;
use crate::domain::{EventId, NodePath};
use crate::platform::contract::POSITION_HEADER;
use crate::platform::contract::{StreamCall, StreamRequest, Target};
use crate::platform::error::Error;
use crate::platform::host::wait_until;
use crate::platform::host::Shared;
use crate::protocol::FrameReader;

/// How long a node waits for its stream from its parent before it turns a seat away.
const UPLINK_WAIT: Duration = Duration::from_millis(5000);
const UPLINK_POLL: Duration = Duration::from_millis(5);

/// Waits between attempts to reach the parent again: doubling, up to the last.
const UPLINK_BACKOFF_MS: [u64; 6] = [0, 50, 100, 250, 500, 1000];

/// A node's stream from its parent.
#[derive(Default)]
pub(super) struct Uplink {
    pub(super) state: Cell<LinkState>,
    /// Set when no one is left to serve: the stream is let go.
    pub(super) stop: Cell<bool>,
    /// Whether a task is asking the parent for the stream now (it handles what fails
    /// meanwhile).
    pub(super) asking: Cell<bool>,
    /// Where a node that has relayed nothing yet starts its stream (none: from now).
    pub(super) seed: Cell<Option<EventId>>,
    /// Fed over a socket: chunks that came before the parent's position, taken once it
    /// has come.
    pub(super) pending: RefCell<Vec<Vec<u8>>>,
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
    let fed = hosted.with(|h| h.config.hibernate).unwrap_or(false);
    let mut failures = 0;
    let mut failing_since = None;
    while !uplink.stop.get() {
        let resume = hosted.with(|h| h.stream.resume_after()).flatten();
        // A node that has relayed nothing yet asks from its seed, or from now.
        let asked = resume.or_else(|| uplink.seed.take());
        let child = path.clone();
        let request = match fed {
            true => StreamRequest::FeedMe {
                child,
                last_seen: asked,
            },
            false => StreamRequest::Relay {
                child,
                last_seen: asked,
            },
        };
        let call = StreamCall::to_node(target.clone(), parent.clone(), request);
        let attempt = match fed {
            true => ask_to_be_fed(&call, &env).await,
            false => hold(&hosted, &uplink, &call, asked, &env).await,
        };
        match attempt {
            // The socket carries the rest; its close asks again.
            Ok(Attempt::Fed) => return,
            Ok(Attempt::Ended) => {
                failures = 0;
                failing_since = None;
            }
            Err(Error::Ended(_)) => {
                // Asked after the end: the seats here go to the root for what they missed.
                hosted.with(|h| {
                    h.stream.ended_elsewhere();
                    h.drop_storage_if_ended();
                });
                break;
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

/// What came of asking the parent for the node's stream.
enum Attempt {
    /// A stream held here, which ended: ask again.
    Ended,
    /// A socket the parent opened, which carries the stream from now on.
    Fed,
}

/// Holds the stream from the parent (`call`, a relay), passing its events on, until it
/// ends.
async fn hold<F: Face>(
    hosted: &Shared<Hosted<F>>,
    uplink: &Uplink,
    call: &StreamCall,
    asked: Option<EventId>,
    env: &Env,
) -> Result<Attempt, Error> {
    let mut response = ask_node(call, env, &[200]).await?;
    let position = position_of(&response)?;
    let mut stream = response.stream()?;
    hosted.with(|h| h.stream.relay_started(position, asked));
    uplink.state.set(LinkState::Up);
    let mut reader = FrameReader::new();
    while let Some(Ok(bytes)) = stream.next().await {
        let frames = reader.feed(&bytes);
        if !frames.is_empty() {
            hosted.with(|h| h.relayed(&frames));
        }
        if uplink.stop.get() {
            break;
        }
    }
    Ok(Attempt::Ended)
}

/// With objects that sleep: asks the parent to feed this node (`call`) over a socket it
/// opens to it ([`super::feed`]); the socket's start sets the stream up.
async fn ask_to_be_fed(call: &StreamCall, env: &Env) -> Result<Attempt, Error> {
    ask_node(call, env, &[204]).await?;
    Ok(Attempt::Fed)
}

/// Replays asked of the parent, and the stream from it started.
impl<F: Face> StreamObject<F> {
    /// The replay for a resume after `after`, through at least `through`: from here, or
    /// from above.
    pub(super) async fn replay(&self, after: EventId, through: EventId) -> Result<Response, Error> {
        let answered = self.with(|h| h.stream.replay(after, through, now_ms()));
        let (text, position) = match answered {
            // Only below the root: the root answers every replay itself.
            Err(SubscribeError::NotCovered) => self.ask_parent_replay(after, through).await?,
            answered => answered?,
        };
        let mut response = Response::ok(text)?;
        response
            .headers_mut()
            .set(POSITION_HEADER, &position.to_string())?;
        Ok(response)
    }

    /// Asks the parent for a replay after `after` that brings a seat at least to
    /// `through`.
    pub(super) async fn ask_parent_replay(
        &self,
        after: EventId,
        through: EventId,
    ) -> Result<(String, EventId), Error> {
        let parent = self
            .path()
            .parent()
            .ok_or_else(|| Error::Contract("a replay asked above the root".into()))?;
        let request = StreamRequest::Replay { after, through };
        let call = StreamCall::to_node(self.target(), parent, request);
        let mut response = ask_node(&call, &self.env, &[200]).await?;
        let position = position_of(&response)?;
        Ok((response.text().await?, position))
    }

    /// Below the root: makes sure the stream from the parent is up (and has brought the
    /// parent's gap, when the node starts over at the parent's ids), so that a seat made
    /// now gets every event from now on.
    pub(super) async fn ensure_uplink(&self) -> Result<(), Error> {
        if self.with(|h| h.stream.path().is_root() || h.stream.has_ended()) {
            return Ok(());
        }
        self.uplink.stop.set(false);
        if self.uplink.state.get() == LinkState::Down {
            self.start_uplink();
        }
        // A stream that turns out to have ended has nothing to wait for.
        let up = || {
            let live =
                self.uplink.state.get() == LinkState::Up && self.with(|h| h.stream.is_live());
            live || self.with(|h| h.stream.has_ended())
        };
        if !wait_until(up, UPLINK_WAIT, UPLINK_POLL).await {
            return Err(Error::TreeBusy("its stream from the tree is not up yet"));
        }
        Ok(())
    }

    /// Below the root: starts the stream from the parent (held, or, with objects that
    /// sleep, asked to be fed over a socket).
    pub(super) fn start_uplink(&self) {
        self.uplink.state.set(LinkState::Connecting);
        self.uplink.asking.set(true);
        let uplink = Rc::clone(&self.uplink);
        let task = run(
            self.host.shared(),
            self.env.clone(),
            Rc::clone(&uplink),
            self.target(),
            self.path(),
        );
        self.state.wait_until(async move {
            task.await;
            uplink.asking.set(false);
        });
    }
}
