//! The engine: one object's share of a stream (a channel's, or the Mercure hub's): its
//! seats, its ids and history, and its counters. A stream is its root object and, when its
//! audience outgrows one object, a tree of further objects (see [`crate::domain::tree`]);
//! [`Stream`] is any one of them, with the face's filter `F` on its seats. Everything here
//! runs to completion without awaiting, so no event can slip between a resume's replay and
//! the live stream.
//!
//! Its state, piece by piece:
//! - the [`Announcer`]s hold the listeners, and the child objects fed from this one
//!   (*relays*), with their bounded queues;
//! - the [`EventLog`] keeps the history (on the root: durable, with the high-water mark of
//!   ids; below it: the recent events in memory, to resume listeners without asking up);
//! - the [`Outbox`] holds what was published (or relayed) since the last flush, to go out
//!   as one write;
//! - the [`Placement`] says where the next listener goes once this object has its share;
//! - the [`Counters`] count what happened, and [`StreamStats`] is what is reported.

use serde_json::json;

use crate::protocol;

use super::{Counters, Everyone, Filter, Outbox, Route, Seat};
use crate::domain::announcer::{Announcer, Fanout, Outlet};
use crate::domain::config::{Config, PublishAck};
use crate::domain::history::{
    plan_resume, Ending, EventId, EventLog, Gap, HistoryPolicy, LogError, Replay, StoredEvent,
};
use crate::domain::message::{Message, GAP_EVENT_TYPE};
use crate::domain::tree::{NodePath, Place, Placement, Region, TreeSettings};

mod answers;
mod end;
#[cfg(test)]
mod end_tests;
mod held;
mod node;
mod publish;
mod replay;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tree_tests;

pub use answers::{Published, PublishedBatch, PublishedStream, StreamStats};
pub use end::{EndError, Finale, StreamEnded};
use node::{Origin, Upstream};

/// The comment written at every keep-alive.
pub const KEEP_ALIVE_COMMENT: &str = "keep-alive";

/// Under `PublishAck::Accepted`, ids are reserved this many at a time: a publish is
/// answered before its event is stored, so the high-water mark is raised (durably, one
/// write per this many publishes) ahead of the ids handed out. After a crash, ids go on
/// above the reservation, and a listener resuming across the skipped ids gets `gap`.
pub const ID_RESERVATION: u64 = 1000;

/// The settings of [`Config`] that a stream uses.
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    pub queue_capacity: usize,
    pub max_listeners: usize,
    pub retry_ms: u64,
    pub history: HistoryPolicy,
    pub publish_ack: PublishAck,
    pub tree: TreeSettings,
}

impl From<&Config> for StreamSettings {
    fn from(c: &Config) -> Self {
        StreamSettings {
            queue_capacity: c.queue_capacity,
            max_listeners: c.max_listeners,
            retry_ms: c.retry_ms,
            history: HistoryPolicy {
                max_events: c.history_size,
                max_age_ms: c.history_max_age_ms,
            },
            publish_ack: c.publish_ack,
            tree: c.tree,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeError {
    /// The stream already has its maximum number of seats, over its whole tree.
    TooManyListeners { max: usize },
    /// The history to replay could not be read.
    Log(LogError),
    /// This object (below the root) does not hold what the resume needs: ask the object
    /// above for the replay, and join with [`Stream::join_replayed`].
    NotCovered,
    /// The stream has ended: this object seats no one (a child, or anyone below the
    /// root; a listener goes to the root).
    Ended,
    /// The stream has ended: what the listener gets instead of a seat, from the root.
    Finished(Finale),
}

impl std::fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubscribeError::TooManyListeners { max } => {
                write!(f, "the stream has its maximum of {max} seats")
            }
            SubscribeError::Log(e) => write!(f, "{e}"),
            SubscribeError::NotCovered => write!(f, "the resume is not held here"),
            SubscribeError::Ended | SubscribeError::Finished(_) => write!(f, "{StreamEnded}"),
        }
    }
}

impl std::error::Error for SubscribeError {}

/// Who takes a stream: a client, with the filter that says which events are its (on a
/// channel, [`Everyone`]), or a child object of the tree (which takes every event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatKind<F = Everyone> {
    Listener(F),
    Relay(NodePath),
}

/// Where a seat's stream starts.
enum StartAt {
    /// From now: what is published next.
    Now,
    /// After this id, with what this object holds after it.
    After(EventId),
    /// After this id, which this object has not reached yet: nothing to replay here.
    Ahead(EventId),
}

/// A child object fed from this one, and the last id it has (it gets only later ones).
#[derive(Debug, Clone)]
struct Relay {
    child: NodePath,
    after: EventId,
}

pub struct Stream<O: Outlet, L: EventLog, F: Filter = Everyone> {
    settings: StreamSettings,
    path: NodePath,
    origin: Origin,
    announcer: Announcer<O, Seat<F>>,
    relays: Announcer<O, Relay>,
    placement: Placement,
    log: L,
    outbox: Outbox,
    counters: Counters,
    /// What nodes below counted (deliveries, drops) before they emptied and handed their
    /// counts up: the channel's stats keep them when those nodes are gone.
    handed_up: Counters,
    /// The last id given out (on the root) or relayed (below it). Below the root it never
    /// exceeds what the parent has answered this node with (a position, or an event).
    last_id: EventId,
    /// Below the root: where the stream from the parent had got to when it started (a
    /// listener that does not resume starts from there, not from the replay before it).
    upstream_position: EventId,
    /// Publishes since the last keep-alive (an idle channel releases its id reservation).
    published_since_keep_alive: u64,
    /// A storage failure met after a publish was answered, for the platform to report.
    store_error: Option<LogError>,
    /// On the root: how the stream ended, if it did (kept in its log).
    ending: Option<Ending>,
    /// Below the root: the stream from the parent said it ended.
    ended_above: bool,
}

impl<O: Outlet, L: EventLog, F: Filter> Stream<O, L, F> {
    /// A channel's root, over its durable log.
    pub fn new(settings: StreamSettings, log: L) -> Self {
        let last_id = log.high_water();
        Self::build(settings, NodePath::root(), Origin::Root, log, last_id)
    }

    /// A node below the root, keeping the recent events it relays in `log`. It takes
    /// listeners once its stream from the parent has started ([`Stream::relay_started`]).
    pub fn relayed(settings: StreamSettings, path: NodePath, log: L) -> Self {
        debug_assert!(!path.is_root());
        let origin = Origin::Relayed(Upstream::Waiting);
        Self::build(settings, path, origin, log, EventId(0))
    }

    fn build(
        settings: StreamSettings,
        path: NodePath,
        origin: Origin,
        log: L,
        last_id: EventId,
    ) -> Self {
        Stream {
            announcer: if F::REPORTS_DEPARTURES {
                Announcer::new(settings.queue_capacity).reporting_departures()
            } else {
                Announcer::new(settings.queue_capacity)
            },
            relays: Announcer::new(settings.queue_capacity),
            placement: Placement::new(settings.tree),
            settings,
            path,
            origin,
            outbox: Outbox::default(),
            counters: Counters::default(),
            handed_up: Counters::default(),
            last_id,
            upstream_position: EventId(0),
            published_since_keep_alive: 0,
            store_error: None,
            ending: log.ending(),
            ended_above: false,
            log,
        }
    }

    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    pub fn path(&self) -> &NodePath {
        &self.path
    }

    /// Listeners held by this object.
    pub fn listeners(&self) -> usize {
        self.announcer.len()
    }

    /// Child objects fed from this one.
    pub fn relays(&self) -> usize {
        self.relays.len()
    }

    /// The children fed now.
    pub fn relay_children(&self) -> Vec<NodePath> {
        self.relays.interests().map(|r| r.child.clone()).collect()
    }

    /// Listeners in this object's subtree: its own, and what its children last reported
    /// (plus those sent to them since).
    pub fn subtree_listeners(&self) -> u64 {
        self.announcer.len() as u64 + self.placement.below()
    }

    /// The last id given out (root) or relayed (below).
    pub fn last_id(&self) -> EventId {
        self.last_id
    }

    /// Where the next listener of `region` goes: here, or down the tree. `arriving`: the
    /// listeners this object has taken but not seated yet (a node below may still be
    /// waiting for its stream from its parent), which count as held.
    pub fn place(&mut self, region: Region, arriving: usize) -> Place {
        // A stream that ended is answered where it ended, not spread further.
        if self.has_ended() {
            return Place::Here;
        }
        let held = self.announcer.len() + arriving;
        self.placement.place(&self.path, held, region)
    }

    /// A child reported how many listeners its subtree holds, and, when it emptied, what
    /// it counted.
    pub fn report(&mut self, child: &NodePath, listeners: u64, handed: Option<&Counters>) {
        self.placement.report(child, listeners);
        if let Some(handed) = handed {
            self.handed_up.add_deliveries(handed);
        }
    }

    /// Takes back what [`Stream::hand_up`] gave, when the parent could not be told.
    pub fn hand_back(&mut self, handed: &Counters) {
        self.handed_up.add_deliveries(handed);
    }

    /// What this node and the nodes below it counted (deliveries, drops), for its parent
    /// to keep once this node has emptied; counted from zero again here.
    pub fn hand_up(&mut self) -> Counters {
        let mut handed = Counters::default();
        handed.add_deliveries(&self.counters);
        handed.add_deliveries(&self.handed_up);
        self.counters = Counters {
            published: self.counters.published,
            ..Counters::default()
        };
        self.handed_up = Counters::default();
        handed
    }

    /// A storage failure met after a publish was answered, if any (each is reported once).
    pub fn take_store_error(&mut self) -> Option<LogError> {
        self.store_error.take()
    }

    /// Whether a new listener would be accepted now (listeners known to be gone are
    /// removed first). The root counts its whole tree against `max_listeners`.
    pub fn has_room(&mut self) -> bool {
        let below = if self.path.is_root() {
            self.placement.below() as usize
        } else {
            0
        };
        if self.announcer.len() + below >= self.settings.max_listeners {
            let gone = self.announcer.sweep();
            self.counters.record_gone(gone);
        }
        self.announcer.len() + below < self.settings.max_listeners
    }

    /// Removes the listeners whose client is known to be gone.
    pub fn sweep(&mut self) {
        let gone = self.announcer.sweep();
        self.counters.record_gone(gone);
    }

    /// Writes a keep-alive to every listener, so that the runtime finds out which clients
    /// are gone (a write to a vanished client fails); [`Stream::has_room`] then sees it.
    pub fn probe(&mut self) {
        self.flush();
        // Seats on sockets too: their far end writes the comment, and closes the socket
        // of a client that went away.
        let fanout = self.announcer.announce(&keep_alive_chunk::<O>(), 0);
        self.counters.record(fanout);
    }

    /// Starts a listener: writes the `retry:` field and, when it resumes after `last_seen`,
    /// the gap notice and the kept events it missed, as one chunk; then adds it. Returns
    /// the id its stream goes on after.
    pub fn subscribe(
        &mut self,
        outlet: O,
        last_seen: Option<EventId>,
        now_ms: u64,
    ) -> Result<EventId, SubscribeError>
    where
        F: Default,
    {
        self.join(SeatKind::Listener(F::default()), outlet, last_seen, now_ms)
    }

    /// Starts a listener or a child's relay, resuming after `last_seen` when given.
    /// Below the root, a resume this object does not hold is [`SubscribeError::NotCovered`].
    pub fn join(
        &mut self,
        seat: SeatKind<F>,
        outlet: O,
        last_seen: Option<EventId>,
        now_ms: u64,
    ) -> Result<EventId, SubscribeError> {
        let from = match last_seen {
            Some(after) => StartAt::After(after),
            None => StartAt::Now,
        };
        self.open_seat(seat, outlet, "", from, now_ms)
    }

    /// Writes a seat's start (the `retry:` field, `replay`, then what this object has
    /// after `from`) as one chunk, and seats it; returns the id its stream goes on after.
    fn open_seat(
        &mut self,
        seat: SeatKind<F>,
        mut outlet: O,
        replay: &str,
        from: StartAt,
        now_ms: u64,
    ) -> Result<EventId, SubscribeError> {
        // Those already listening get what is pending first; the newcomer gets it from
        // history (or not at all when it did not ask to resume): never twice, never lost.
        self.flush();
        let last_seen = match from {
            StartAt::After(after) => Some(after),
            StartAt::Now | StartAt::Ahead(_) => None,
        };
        self.refuse_ended(&seat, last_seen, now_ms)?;
        self.check_room(&seat)?;
        let mut start = protocol::retry(self.settings.retry_ms);
        start.push_str(replay);
        let position = match from {
            StartAt::After(after) => {
                start.push_str(&self.replay_text(after, &seat, now_ms)?);
                self.last_id
            }
            StartAt::Ahead(upstream) => upstream,
            StartAt::Now => self.last_id.max(self.upstream_position),
        };
        outlet.write(&O::chunk(&start));
        self.seat(seat, outlet, position);
        Ok(position)
    }

    fn check_room(&mut self, seat: &SeatKind<F>) -> Result<(), SubscribeError> {
        if matches!(seat, SeatKind::Listener(_)) && !self.has_room() {
            return Err(SubscribeError::TooManyListeners {
                max: self.settings.max_listeners,
            });
        }
        if !self.is_live() {
            return Err(SubscribeError::NotCovered);
        }
        Ok(())
    }

    fn seat(&mut self, seat: SeatKind<F>, outlet: O, after: EventId) {
        match seat {
            SeatKind::Listener(filter) => self.announcer.add(outlet, Seat { after, filter }, 1),
            SeatKind::Relay(child) => self.relays.add(outlet, Relay { child, after }, 1),
        }
    }

    /// A keep-alive: writes a comment to every listener and child, cuts those that took
    /// nothing since the previous one, and applies the history's age limit. A root that
    /// published nothing since the previous keep-alive releases its id reservation, so a
    /// restart while idle skips no ids.
    pub fn keep_alive(&mut self, now_ms: u64) {
        self.flush();
        let chunk = keep_alive_chunk::<O>();
        let fanout = self.announcer.keep_alive(&chunk);
        self.counters.record(fanout);
        self.relays.keep_alive(&chunk);
        self.apply_history(now_ms);
        let idle = self.published_since_keep_alive == 0;
        if self.origin == Origin::Root && idle && self.log.high_water() > self.last_id {
            if let Err(e) = self.log.reserve(self.last_id) {
                self.store_error = Some(e);
            }
        }
        self.published_since_keep_alive = 0;
    }

    /// Counters and sizes of this object, after removing listeners known to be gone and
    /// events past the history's limits.
    pub fn stats(&mut self, now_ms: u64) -> StreamStats {
        self.flush();
        let gone = self.announcer.sweep();
        self.counters.record_gone(gone);
        self.relays.sweep();
        self.apply_history(now_ms);
        let mut counters = self.counters;
        counters.add_deliveries(&self.handed_up);
        StreamStats {
            listeners: self.announcer.len(),
            sleeping: self.announcer.sleeping(),
            starts: 0,
            counters,
            last_id: self.last_id,
            history_length: self.log.len(),
            objects: 1,
        }
    }

    /// The sequence number of the first kept event whose public key is `key`, once the
    /// history's limits are applied (an expired event is not found).
    pub fn find_key(&mut self, key: &str, now_ms: u64) -> Result<Option<EventId>, LogError> {
        self.settings.history.apply(&mut self.log, now_ms)?;
        self.note_pruned();
        self.log.find(key)
    }

    /// The filters of the listeners seated here, in seating order.
    pub fn filters(&self) -> impl Iterator<Item = &F> {
        self.announcer.interests().map(|seat| &seat.filter)
    }

    /// Ends the streams of the listeners whose filter `ends` says are over (say, their
    /// token expired); returns how many.
    pub fn close_where(&mut self, mut ends: impl FnMut(&F) -> bool) -> usize {
        self.announcer.close_where(|seat| ends(&seat.filter))
    }

    /// The filters of the listeners that left (slow, gone, stalled, closed) since the last
    /// call.
    pub fn take_departed(&mut self) -> Vec<F> {
        self.announcer
            .take_departed()
            .into_iter()
            .map(|seat| seat.filter)
            .collect()
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn log(&self) -> &L {
        &self.log
    }

    /// Applies the history policy; a failure is kept for the platform to report (the
    /// events it would have dropped stay a little longer).
    fn apply_history(&mut self, now_ms: u64) {
        if let Err(e) = self.settings.history.apply(&mut self.log, now_ms) {
            self.store_error = Some(e);
        }
        self.note_pruned();
    }
}

fn keep_alive_chunk<O: Outlet>() -> O::Chunk {
    O::chunk(&protocol::comment(KEEP_ALIVE_COMMENT))
}
