//! A channel's object: its listeners, its ids and history, and its counters. A channel is
//! its root object and, when its audience outgrows one object, a tree of further objects
//! (see [`crate::domain::tree`]); this type is any one of them. Everything here runs to
//! completion without awaiting, so no event can slip between a resume's replay and the
//! live stream.
//!
//! Its state, piece by piece:
//! - the [`Announcer`]s hold the listeners, and the child objects fed from this one
//!   (*relays*), with their bounded queues;
//! - the [`EventLog`] keeps the history (on the root: durable, with the high-water mark of
//!   ids; below it: the recent events in memory, to resume listeners without asking up);
//! - the [`Outbox`] holds what was published (or relayed) since the last flush, to go out
//!   as one write;
//! - the [`Placement`] says where the next listener goes once this object has its share;
//! - the [`Counters`] count what happened, and [`ChannelStats`] is what is reported.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::protocol;

use super::announcer::{Announcer, Fanout, Outlet};
use super::config::{Config, PublishAck};
use super::history::{
    plan_resume, EventId, EventLog, Gap, HistoryPolicy, LogError, Replay, StoredEvent,
};
use super::message::{Message, GAP_EVENT_TYPE};
use super::tree::{NodePath, Place, Placement, Region, TreeSettings};

/// The comment written at every keep-alive.
pub const KEEP_ALIVE_COMMENT: &str = "keep-alive";

/// Under `PublishAck::Accepted`, ids are reserved this many at a time: a publish is
/// answered before its event is stored, so the high-water mark is raised (durably, one
/// write per this many publishes) ahead of the ids handed out. After a crash, ids go on
/// above the reservation, and a listener resuming across the skipped ids gets `gap`.
pub const ID_RESERVATION: u64 = 1000;

/// The settings of [`Config`] that a channel uses.
#[derive(Debug, Clone, Copy)]
pub struct ChannelSettings {
    pub queue_capacity: usize,
    pub max_listeners: usize,
    pub retry_ms: u64,
    pub history: HistoryPolicy,
    pub publish_ack: PublishAck,
    pub tree: TreeSettings,
}

impl From<&Config> for ChannelSettings {
    fn from(c: &Config) -> Self {
        ChannelSettings {
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

/// What a channel has done since its object started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub published: u64,
    /// Events written to listeners (an event written to three listeners counts three).
    pub delivered: u64,
    /// Listeners cut because their queue was full.
    pub dropped_slow: u64,
    /// Listeners whose client vanished or stopped reading.
    pub dropped_gone: u64,
}

impl Counters {
    /// Adds what `other` delivered and dropped (what a node below counted).
    pub fn add_deliveries(&mut self, other: &Counters) {
        self.delivered += other.delivered;
        self.dropped_slow += other.dropped_slow;
        self.dropped_gone += other.dropped_gone;
    }

    /// Counts what one fan-out did.
    pub(crate) fn record(&mut self, fanout: Fanout) {
        self.delivered += fanout.events;
        self.dropped_slow += fanout.slow as u64;
        self.dropped_gone += fanout.gone as u64;
    }

    pub(crate) fn record_gone(&mut self, gone: usize) {
        self.dropped_gone += gone as u64;
    }
}

/// What `GET /channels/{name}` reports: for one object, or summed over the objects of a
/// channel's tree (listeners, deliveries and drops add up; ids and history are the
/// root's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelStats {
    pub listeners: usize,
    pub counters: Counters,
    /// The last id given out (0: none yet).
    pub last_id: EventId,
    pub history_length: u64,
    /// Objects serving the channel.
    pub objects: u64,
}

impl ChannelStats {
    pub fn to_json(&self, channel: &str) -> Value {
        json!({
            "channel": channel,
            "listeners": self.listeners,
            "published": self.counters.published,
            "delivered": self.counters.delivered,
            "droppedSlow": self.counters.dropped_slow,
            "droppedGone": self.counters.dropped_gone,
            "lastId": (self.last_id.0 > 0).then(|| self.last_id.to_string()),
            "historyLength": self.history_length,
            "objects": self.objects,
        })
    }

    /// Reads back what [`ChannelStats::to_json`] wrote (a child object's report).
    pub fn from_json(value: &Value) -> Option<ChannelStats> {
        let number = |name: &str| value.get(name).and_then(Value::as_u64);
        Some(ChannelStats {
            listeners: number("listeners")? as usize,
            counters: Counters {
                published: number("published")?,
                delivered: number("delivered")?,
                dropped_slow: number("droppedSlow")?,
                dropped_gone: number("droppedGone")?,
            },
            last_id: match value.get("lastId").and_then(Value::as_str) {
                Some(id) => EventId::parse(id).ok()?,
                None => EventId(0),
            },
            history_length: number("historyLength")?,
            objects: number("objects")?,
        })
    }

    /// Adds a subtree's listeners, deliveries, drops and objects to these.
    pub fn absorb(&mut self, below: &ChannelStats) {
        self.listeners += below.listeners;
        self.counters.add_deliveries(&below.counters);
        self.objects += below.objects;
    }
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub id: EventId,
    /// Listeners the event is going to.
    pub listeners: usize,
}

impl Published {
    pub fn to_json(&self) -> Value {
        json!({ "id": self.id.to_string(), "listeners": self.listeners })
    }
}

/// What a batch publish did: its events have the ids `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishedBatch {
    pub first: EventId,
    pub last: EventId,
    pub listeners: usize,
}

impl PublishedBatch {
    pub fn to_json(&self) -> Value {
        json!({
            "firstId": self.first.to_string(),
            "lastId": self.last.to_string(),
            "count": self.last.0 + 1 - self.first.0,
            "listeners": self.listeners,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeError {
    /// The channel already has its maximum number of listeners.
    TooManyListeners { max: usize },
    /// The history to replay could not be read.
    Log(LogError),
    /// This object (below the root) does not hold what the resume needs: ask the object
    /// above for the replay, and join with [`Channel::join_replayed`].
    NotCovered,
}

impl std::fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubscribeError::TooManyListeners { max } => {
                write!(f, "channel has its maximum of {max} listeners")
            }
            SubscribeError::Log(e) => write!(f, "{e}"),
            SubscribeError::NotCovered => write!(f, "the resume is not held here"),
        }
    }
}

impl std::error::Error for SubscribeError {}

/// Who takes a stream: a client, or a child object of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seat {
    Listener,
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

/// Events published since the last flush. Each is stored (or, under
/// `PublishAck::Accepted`, has its id reserved) before it is put here, so nothing put
/// here is ever taken back.
#[derive(Debug, Default)]
struct Outbox {
    /// Their frames, concatenated: written to every listener as one chunk.
    frames: String,
    /// Each frame's end in `frames` and the id a seat must be below to get it (for a
    /// `gap` notice, the id after the hole's start).
    ends: Vec<(usize, EventId)>,
    events: u64,
    /// Those not stored yet: stored at the flush, before anyone sees them.
    unstored: Vec<StoredEvent>,
}

impl Outbox {
    fn push(&mut self, event: StoredEvent, stored: bool) {
        self.push_frame(&event.frame, event.id);
        if !stored {
            self.unstored.push(event);
        }
    }

    fn push_frame(&mut self, frame: &str, key: EventId) {
        self.frames.push_str(frame);
        self.ends.push((self.frames.len(), key));
        self.events += 1;
    }

    fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// The first and last keys.
    fn span(&self) -> (EventId, EventId) {
        let first = self.ends.first().map_or(EventId(0), |e| e.1);
        let last = self.ends.last().map_or(EventId(0), |e| e.1);
        (first, last)
    }

    /// The frames a seat that has everything up to `after` still needs, and how many.
    fn after(&self, after: EventId) -> (String, u64) {
        let mut start = 0;
        let mut text = String::new();
        let mut count = 0;
        for &(end, key) in &self.ends {
            if key > after {
                text.push_str(&self.frames[start..end]);
                count += 1;
            }
            start = end;
        }
        (text, count)
    }

    /// Writes the outbox to every seat of `announcer`, each getting what comes after its
    /// watermark: the whole chunk for nearly all, a part of it for seats that joined ahead.
    fn announce<O: Outlet, I>(
        &self,
        announcer: &mut Announcer<O, I>,
        chunk: &O::Chunk,
        watermark: impl Fn(&I) -> EventId,
    ) -> Fanout {
        let (first, last) = self.span();
        let partial: BTreeMap<EventId, (O::Chunk, u64)> = announcer
            .interests()
            .map(&watermark)
            .filter(|w| *w >= first && *w < last)
            .map(|w| {
                let (text, count) = self.after(w);
                (w, (O::chunk(&text), count))
            })
            .collect();
        announcer.announce_by(|interest| {
            let w = watermark(interest);
            if w < first {
                Some((chunk, self.events))
            } else {
                partial.get(&w).map(|(c, n)| (c, *n))
            }
        })
    }
}

/// Where this object's events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The channel's root: it gives the ids, and its log holds the whole history.
    Root,
    /// A node below: its events arrive from its parent.
    Relayed(Upstream),
}

/// Below the root: how far the node's stream from its parent has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upstream {
    /// Not started yet: the node takes no seat.
    Waiting,
    /// The parent answered with a head below the id the node asked after, so the node
    /// starts over at the parent's ids ([`Channel::relay_started`]). The stream begins
    /// with the parent's `gap`, which is for the seats the node already had: it takes no
    /// new seat until the gap has arrived. `after`: the id it asked after, asked again
    /// if the stream ends before.
    StartingOver { after: EventId },
    /// Every event of the channel after `known_from`, up to the last relayed, is in the
    /// log (a resume from there is answered here).
    Live { known_from: EventId },
}

pub struct Channel<O: Outlet, L: EventLog> {
    settings: ChannelSettings,
    path: NodePath,
    origin: Origin,
    announcer: Announcer<O, EventId>,
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
}

impl<O: Outlet, L: EventLog> Channel<O, L> {
    /// A channel's root, over its durable log.
    pub fn new(settings: ChannelSettings, log: L) -> Self {
        let last_id = log.high_water();
        Self::build(settings, NodePath::root(), Origin::Root, log, last_id)
    }

    /// A node below the root, keeping the recent events it relays in `log`. It takes
    /// listeners once its stream from the parent has started ([`Channel::relay_started`]).
    pub fn relayed(settings: ChannelSettings, path: NodePath, log: L) -> Self {
        debug_assert!(!path.is_root());
        let origin = Origin::Relayed(Upstream::Waiting);
        Self::build(settings, path, origin, log, EventId(0))
    }

    fn build(
        settings: ChannelSettings,
        path: NodePath,
        origin: Origin,
        log: L,
        last_id: EventId,
    ) -> Self {
        Channel {
            announcer: Announcer::new(settings.queue_capacity),
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
            log,
        }
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

    /// Takes back what [`Channel::hand_up`] gave, when the parent could not be told.
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

    /// Gives the message the next id and makes it durable as the acknowledgement mode
    /// says (stored, or its id reserved); it goes out to the listeners with the next
    /// [`Channel::flush`], together with everything else published by then. On an error
    /// nothing changed: the id was not given out.
    pub fn publish(&mut self, message: &Message, now_ms: u64) -> Result<Published, LogError> {
        let batch = self.publish_batch(std::slice::from_ref(message), now_ms)?;
        Ok(Published {
            id: batch.last,
            listeners: batch.listeners,
        })
    }

    /// Publishes messages together: consecutive ids, stored at once (all or none), and
    /// sent with the next flush as part of one write per listener.
    pub fn publish_batch(
        &mut self,
        messages: &[Message],
        now_ms: u64,
    ) -> Result<PublishedBatch, LogError> {
        debug_assert_eq!(self.origin, Origin::Root, "only the root publishes");
        let first = self.last_id.next();
        let events: Vec<StoredEvent> = messages
            .iter()
            .zip(first.0..)
            .map(|(message, n)| {
                let id = EventId(n);
                StoredEvent::new(id, now_ms, message.to_event(id).encode())
            })
            .collect();
        let listeners = self.subtree_listeners() as usize;
        let Some(last) = events.last().map(|e| e.id) else {
            return Ok(PublishedBatch {
                first,
                last: self.last_id,
                listeners,
            });
        };
        let stored = match self.settings.publish_ack {
            PublishAck::Stored => {
                self.log.append(&events)?;
                self.apply_history(now_ms);
                true
            }
            PublishAck::Accepted => {
                if last > self.log.high_water() {
                    self.log.reserve(EventId(last.0 + ID_RESERVATION - 1))?;
                }
                false
            }
        };
        self.last_id = last;
        self.counters.published += events.len() as u64;
        self.published_since_keep_alive += events.len() as u64;
        for event in events {
            self.outbox.push(event, stored);
        }
        Ok(PublishedBatch {
            first,
            last,
            listeners,
        })
    }

    /// The stream from the parent has started (again), asked after `asked`
    /// ([`Channel::resume_after`], or, for a node that has relayed nothing yet, a resume
    /// it was started for, to hold what its returning listeners missed; none: from now).
    /// It brings what the parent has after that id (a replay, each event with its
    /// publication time) up to `position`, the parent's head when it answered, then live
    /// events.
    ///
    /// A node's last id never exceeds what its parent has answered it with. A parent
    /// whose head is below the id asked after (the root's storage was reset, or the
    /// resume was from an id the channel never gave) answers as the root answers such a
    /// resume: `gap`, then every event it keeps. The node then starts over at the
    /// parent's ids: what it kept is dropped (those ids may name other events now), its
    /// listeners get the parent's gap and events, as a listener resuming on the root
    /// would, and its children's streams are ended, so that each starts over the same
    /// way when it resumes.
    pub fn relay_started(&mut self, position: EventId, asked: Option<EventId>) {
        let Origin::Relayed(upstream) = self.origin else {
            return;
        };
        self.upstream_position = position;
        let from = asked.unwrap_or(position);
        if from > position {
            self.start_over(from);
        } else if !matches!(upstream, Upstream::Live { .. }) {
            self.last_id = from;
            self.origin = Origin::Relayed(Upstream::Live { known_from: from });
        }
    }

    /// Below the root, the id its stream from the parent asks after when it starts again:
    /// its last relayed id, or, while it starts over, the id it asked after (so that the
    /// parent's gap comes again). None before its stream first started, and on the root.
    pub fn resume_after(&self) -> Option<EventId> {
        match self.origin {
            Origin::Relayed(Upstream::Live { .. }) => Some(self.last_id),
            Origin::Relayed(Upstream::StartingOver { after }) => Some(after),
            _ => None,
        }
    }

    /// Drops what this node relayed before its parent's head went below it, and sets every
    /// listener to receive the stream from the parent's first frame on (its gap). A child
    /// fed from here cannot go on from its last id, which is above this node's now: its
    /// stream is ended, and it starts over when it resumes.
    fn start_over(&mut self, asked: EventId) {
        self.flush();
        let kept = self.log.len();
        if let Err(e) = self.log.prune(kept, 0) {
            self.store_error = Some(e);
        }
        self.last_id = EventId(0);
        self.announcer.update_interests(|after| *after = EventId(0));
        self.relays.close_where(|_| true);
        self.origin = Origin::Relayed(Upstream::StartingOver { after: asked });
    }

    /// Ends every listener's and child's stream, after what is queued, when this node
    /// cannot get its stream from its parent: they would stay open with nothing to carry.
    /// Their clients reconnect and resume, possibly elsewhere in the tree.
    pub fn end_streams(&mut self) {
        self.flush();
        self.announcer.close_where(|_| true);
        self.relays.close_where(|_| true);
    }

    /// Takes frames relayed from the parent, in the channel's order: events (with their
    /// id) and `gap` notices (without); they go out with the next flush. An event at or
    /// below the last relayed id is one already had, and is skipped.
    pub fn ingest(&mut self, frames: &[protocol::RawFrame], now_ms: u64) {
        let known_from = match self.origin {
            Origin::Relayed(Upstream::Live { known_from }) => known_from,
            Origin::Relayed(Upstream::StartingOver { .. }) if !frames.is_empty() => {
                // The parent's gap (its first frame) goes to every seat, all of which the
                // node had before it started over; from here on the node is live again.
                let known_from = EventId(0);
                self.origin = Origin::Relayed(Upstream::Live { known_from });
                known_from
            }
            _ => return,
        };
        let mut kept = Vec::new();
        for frame in frames {
            match frame.id.as_deref().map(EventId::parse) {
                Some(Ok(id)) if id > self.last_id => {
                    self.last_id = id;
                    let at_ms = frame.at_ms.unwrap_or(now_ms);
                    let event = StoredEvent::new(id, at_ms, frame.text.clone());
                    self.outbox.push_frame(&event.frame, id);
                    if id > known_from {
                        kept.push(event);
                    }
                }
                Some(_) => {}
                None => self.outbox.push_frame(&frame.text, self.last_id.next()),
            }
        }
        if !kept.is_empty() {
            if let Err(e) = self.log.append(&kept) {
                self.store_error = Some(e);
            }
            self.apply_history(now_ms);
        }
    }

    /// Writes every event published since the last flush to every listener and child, as
    /// one chunk encoded once and shared.
    pub fn flush(&mut self) -> Fanout {
        if self.outbox.is_empty() {
            return Fanout::default();
        }
        let outbox = std::mem::take(&mut self.outbox);
        // Stored before anyone sees them: a listener can always resume what it was sent.
        // What cannot be stored is not sent either; its ids stay given, and a listener
        // resuming across them gets a gap.
        if let Some(last) = outbox.unstored.last() {
            let now_ms = last.at_ms;
            if let Err(e) = self.log.append(&outbox.unstored) {
                self.store_error = Some(e);
                return Fanout::default();
            }
            self.apply_history(now_ms);
        }
        let chunk = O::chunk(&outbox.frames);
        let fanout = outbox.announce(&mut self.announcer, &chunk, |after| *after);
        self.counters.record(fanout);
        outbox.announce(&mut self.relays, &chunk, |relay| relay.after);
        fanout
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

    /// Writes a keep-alive to every listener, so that the runtime finds out which clients
    /// are gone (a write to a vanished client fails); [`Channel::has_room`] then sees it.
    pub fn probe(&mut self) {
        self.flush();
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
    ) -> Result<EventId, SubscribeError> {
        self.join(Seat::Listener, outlet, last_seen, now_ms)
    }

    /// Starts a listener or a child's relay, resuming after `last_seen` when given.
    /// Below the root, a resume this object does not hold is [`SubscribeError::NotCovered`].
    pub fn join(
        &mut self,
        seat: Seat,
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

    /// Starts a listener or relay with the replay an object above answered (`replay`,
    /// which brings it to `upstream`), then what this object has after that. A seat that
    /// is ahead of this object gets only the events after `upstream`.
    ///
    /// `through` is what the replay was asked to reach ([`Channel::holds_through`] when
    /// asked). Only the root answers below it, when its head went back under this node's:
    /// this node's ids are not the root's until its own stream from the parent starts over
    /// ([`Channel::relay_started`]), so it seats no one on that answer (`NotCovered`).
    pub fn join_replayed(
        &mut self,
        seat: Seat,
        outlet: O,
        replay: &str,
        upstream: EventId,
        through: EventId,
        now_ms: u64,
    ) -> Result<EventId, SubscribeError> {
        if upstream < through {
            return Err(SubscribeError::NotCovered);
        }
        let from = if upstream < self.last_id {
            StartAt::After(upstream)
        } else {
            StartAt::Ahead(upstream)
        };
        self.open_seat(seat, outlet, replay, from, now_ms)
    }

    /// Writes a seat's start (the `retry:` field, `replay`, then what this object has
    /// after `from`) as one chunk, and seats it; returns the id its stream goes on after.
    fn open_seat(
        &mut self,
        seat: Seat,
        mut outlet: O,
        replay: &str,
        from: StartAt,
        now_ms: u64,
    ) -> Result<EventId, SubscribeError> {
        // Those already listening get what is pending first; the newcomer gets it from
        // history (or not at all when it did not ask to resume): never twice, never lost.
        self.flush();
        self.check_room(&seat)?;
        let mut start = protocol::retry(self.settings.retry_ms);
        start.push_str(replay);
        let timed = matches!(seat, Seat::Relay(_));
        let position = match from {
            StartAt::After(after) => {
                start.push_str(&self.replay_text(after, timed, now_ms)?);
                self.last_id
            }
            StartAt::Ahead(upstream) => upstream,
            StartAt::Now => self.last_id.max(self.upstream_position),
        };
        outlet.write(&O::chunk(&start));
        self.seat(seat, outlet, position);
        Ok(position)
    }

    /// What a resume after `after` replays (gap notices and events), and the id it brings
    /// the listener to, for a child object to pass on. A child asks for at least
    /// `through` (its own [`Channel::holds_through`]), so that it can go on from the
    /// answer with what it holds; a node that is not that far yet says `NotCovered`.
    /// The root answers every replay, whatever `through`: its head is the channel's, and
    /// an answer below `through` tells the child that the head went back.
    /// `timed`: each event says when it was published ([`protocol::timed`]), for a
    /// child's relay to keep it as long as the root would.
    pub fn replay(
        &mut self,
        after: EventId,
        through: EventId,
        timed: bool,
        now_ms: u64,
    ) -> Result<(String, EventId), SubscribeError> {
        self.flush();
        if self.origin != Origin::Root && self.last_id < through {
            return Err(SubscribeError::NotCovered);
        }
        Ok((self.replay_text(after, timed, now_ms)?, self.last_id))
    }

    /// The least a replay from above must bring a seat to for this object to go on from
    /// there with what it holds: its last id, or, while it catches up after its stream
    /// from the parent resumed, where what it keeps begins.
    pub fn holds_through(&self) -> EventId {
        match self.origin {
            Origin::Relayed(Upstream::Live { known_from }) => known_from.max(self.last_id),
            _ => self.last_id,
        }
    }

    fn check_room(&mut self, seat: &Seat) -> Result<(), SubscribeError> {
        if *seat == Seat::Listener && !self.has_room() {
            return Err(SubscribeError::TooManyListeners {
                max: self.settings.max_listeners,
            });
        }
        if !self.is_live() {
            return Err(SubscribeError::NotCovered);
        }
        Ok(())
    }

    fn seat(&mut self, seat: Seat, outlet: O, after: EventId) {
        match seat {
            Seat::Listener => self.announcer.add(outlet, after, 1),
            Seat::Relay(child) => self.relays.add(outlet, Relay { child, after }, 1),
        }
    }

    /// Whether this object can take seats: the root always; a node below once its
    /// stream from the parent has started (and, when it starts over, once the parent's
    /// gap has arrived).
    pub fn is_live(&self) -> bool {
        matches!(
            self.origin,
            Origin::Root | Origin::Relayed(Upstream::Live { .. })
        )
    }

    /// The replay for a resume after `after`, when this object holds it (`timed`: for a
    /// child's relay, each event with its publication time).
    fn replay_text(
        &mut self,
        after: EventId,
        timed: bool,
        now_ms: u64,
    ) -> Result<String, SubscribeError> {
        // Nothing older than the age limit is replayed, however long since the last prune.
        self.settings
            .history
            .apply(&mut self.log, now_ms)
            .map_err(SubscribeError::Log)?;
        self.note_pruned();
        if let Origin::Relayed(upstream) = self.origin {
            let held = matches!(upstream, Upstream::Live { known_from }
                if known_from <= after && after <= self.last_id);
            if !held {
                return Err(SubscribeError::NotCovered);
            }
        }
        let plan = plan_resume(&self.log, after, self.last_id).map_err(SubscribeError::Log)?;
        let mut text = String::new();
        for step in plan.steps {
            match step {
                Replay::Gap(gap) => gap_notice(&gap).encode_into(&mut text),
                Replay::Event(event) if timed => {
                    text.push_str(&protocol::timed(&event.frame, event.at_ms))
                }
                Replay::Event(event) => text.push_str(&event.frame),
            }
        }
        Ok(text)
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
    pub fn stats(&mut self, now_ms: u64) -> ChannelStats {
        self.flush();
        let gone = self.announcer.sweep();
        self.counters.record_gone(gone);
        self.relays.sweep();
        self.apply_history(now_ms);
        let mut counters = self.counters;
        counters.add_deliveries(&self.handed_up);
        ChannelStats {
            listeners: self.announcer.len(),
            counters,
            last_id: self.last_id,
            history_length: self.log.len(),
            objects: 1,
        }
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

    /// Below the root, what the log no longer holds is no longer answered here.
    fn note_pruned(&mut self) {
        if let Origin::Relayed(Upstream::Live { known_from: from }) = &mut self.origin {
            let held_from = match self.log.oldest_id() {
                Some(oldest) => EventId(oldest.0 - 1),
                None => self.last_id,
            };
            *from = (*from).max(held_from);
        }
    }
}

/// The `gap` event: no id (it is not part of the channel's sequence), and data saying
/// where the hole is.
fn gap_notice(gap: &Gap) -> protocol::Event {
    let notice = json!({
        "lastEventId": gap.last_event_id.to_string(),
        "firstAvailableId": gap.first_available_id.map(|id| id.to_string()),
    });
    protocol::Event::new(notice.to_string())
        .with_type(GAP_EVENT_TYPE)
        .expect("the gap type is a valid event type")
}

pub(crate) fn keep_alive_chunk<O: Outlet>() -> O::Chunk {
    O::chunk(&protocol::comment(KEEP_ALIVE_COMMENT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::announcer::tests::TestOutlet;
    use crate::domain::history::MemoryLog;
    use crate::protocol::Parser;

    fn settings(capacity: usize, history: u64) -> ChannelSettings {
        ChannelSettings {
            queue_capacity: capacity,
            max_listeners: 3,
            retry_ms: 1000,
            history: HistoryPolicy {
                max_events: history,
                max_age_ms: u64::MAX,
            },
            publish_ack: PublishAck::Stored,
            tree: TreeSettings {
                listeners_per_object: 0,
                fanout: 2,
            },
        }
    }

    fn msg(data: &str) -> Message {
        Message {
            data: data.into(),
            event_type: None,
            retry_ms: None,
        }
    }

    fn listen(ch: &mut Channel<TestOutlet, MemoryLog>, last: Option<u64>) -> TestOutlet {
        let o = TestOutlet::default();
        ch.subscribe(o.clone(), last.map(EventId), 0).unwrap();
        o
    }

    fn events(o: &TestOutlet) -> Vec<(String, String, String)> {
        o.0.borrow_mut().read_all();
        Parser::parse_all(o.0.borrow().text().as_bytes())
            .into_iter()
            .map(|e| (e.last_event_id, e.event_type, e.data))
            .collect()
    }

    #[test]
    fn ids_increase_and_continue_from_the_log() {
        let mut ch = Channel::<TestOutlet, _>::new(settings(5, 10), MemoryLog::default());
        assert_eq!(ch.publish(&msg("a"), 1).unwrap().id, EventId(1));
        assert_eq!(ch.publish(&msg("b"), 2).unwrap().id, EventId(2));
        // A restart: a new channel over the same log continues the sequence.
        let log = ch.log().clone();
        let mut again = Channel::<TestOutlet, _>::new(settings(5, 10), log);
        assert_eq!(again.publish(&msg("c"), 3).unwrap().id, EventId(3));
    }

    #[test]
    fn stream_starts_with_retry_and_events_carry_ids() {
        let mut ch = Channel::new(settings(5, 10), MemoryLog::default());
        let o = listen(&mut ch, None);
        ch.publish(
            &Message {
                data: "x\ny".into(),
                event_type: Some("t".into()),
                retry_ms: None,
            },
            1,
        )
        .unwrap();
        ch.flush();
        let text =
            o.0.borrow()
                .queue
                .iter()
                .map(|c| c.to_string())
                .collect::<String>();
        assert!(text.starts_with("retry: 1000\n\n"), "{text}");
        assert_eq!(events(&o), [("1".into(), "t".into(), "x\ny".into())]);
    }

    #[test]
    fn resume_replays_then_goes_live_without_loss_or_duplicates() {
        let mut ch = Channel::new(settings(5, 100), MemoryLog::default());
        for i in 1..=50 {
            ch.publish(&msg(&format!("m{i}")), i).unwrap();
        }
        let o = listen(&mut ch, Some(20));
        ch.publish(&msg("m51"), 51).unwrap();
        ch.flush();
        let got: Vec<String> = events(&o).into_iter().map(|e| e.2).collect();
        let want: Vec<String> = (21..=51).map(|i| format!("m{i}")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn resume_before_history_starts_with_a_gap_event() {
        let mut ch = Channel::new(settings(5, 5), MemoryLog::default());
        for i in 1..=20 {
            ch.publish(&msg(&format!("m{i}")), i).unwrap();
        }
        let got = events(&listen(&mut ch, Some(3)));
        assert_eq!(got[0].1, "gap");
        assert_eq!(got[0].2, r#"{"firstAvailableId":"16","lastEventId":"3"}"#);
        assert_eq!(got[0].0, "", "the gap event carries no id");
        assert_eq!(
            got[1..].iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
            ["16", "17", "18", "19", "20"]
        );
    }

    #[test]
    fn slow_listener_is_closed_and_catches_up_by_resuming() {
        let mut ch = Channel::new(settings(5, 1000), MemoryLog::default());
        let fast = listen(&mut ch, None);
        let slow = listen(&mut ch, None);
        slow.0.borrow_mut().read_all(); // it took the retry field, then stops reading
        let mut fast_seen = Vec::new();
        for i in 1..=100 {
            ch.publish(&msg(&i.to_string()), i).unwrap();
            ch.flush();
            fast_seen.extend(events(&fast).into_iter().map(|e| e.2));
            fast.0.borrow_mut().received.clear();
        }
        assert_eq!(fast_seen.len(), 100, "the fast listener never stalls");
        assert!(slow.0.borrow().closed);
        // The slow client reads what was queued before the close, then resumes from its last id.
        let before: Vec<_> = events(&slow);
        let last = before.last().unwrap().0.parse().unwrap();
        let again = listen(&mut ch, Some(last));
        let mut all: Vec<String> = before.into_iter().map(|e| e.2).collect();
        all.extend(events(&again).into_iter().map(|e| e.2));
        assert_eq!(all, (1..=100).map(|i| i.to_string()).collect::<Vec<_>>());
        assert_eq!(ch.counters().dropped_slow, 1);
    }

    #[test]
    fn events_published_together_go_out_as_one_chunk() {
        let mut ch = Channel::new(settings(5, 100), MemoryLog::default());
        let o = listen(&mut ch, None);
        o.0.borrow_mut().read_all();
        for i in 1..=3 {
            assert_eq!(ch.publish(&msg(&format!("m{i}")), i).unwrap().listeners, 1);
        }
        assert!(
            o.0.borrow().queue.is_empty(),
            "nothing goes out before the flush"
        );
        assert_eq!(ch.flush().delivered, 1);
        assert_eq!(
            o.0.borrow().queue.len(),
            1,
            "one chunk for the three events"
        );
        assert_eq!(
            events(&o).into_iter().map(|e| e.2).collect::<Vec<_>>(),
            ["m1", "m2", "m3"]
        );
        assert_eq!(ch.counters().delivered, 3);
        assert_eq!(ch.flush(), Fanout::default());
    }

    #[test]
    fn a_listener_joining_before_a_flush_gets_pending_events_once() {
        let mut ch = Channel::new(settings(5, 100), MemoryLog::default());
        let early = listen(&mut ch, None);
        ch.publish(&msg("a"), 1).unwrap();
        // Resuming from 0 while "a" is pending: it comes from history, not again from the batch.
        let resuming = listen(&mut ch, Some(0));
        let live_only = listen(&mut ch, None);
        ch.publish(&msg("b"), 2).unwrap();
        ch.flush();
        let data = |o: &TestOutlet| events(o).into_iter().map(|e| e.2).collect::<Vec<_>>();
        assert_eq!(data(&early), ["a", "b"]);
        assert_eq!(data(&resuming), ["a", "b"]);
        assert_eq!(data(&live_only), ["b"]);
    }

    #[test]
    fn accepted_events_are_stored_at_the_flush_before_anyone_sees_them() {
        let mut ch = Channel::new(
            ChannelSettings {
                publish_ack: PublishAck::Accepted,
                ..settings(5, 100)
            },
            MemoryLog::default(),
        );
        let o = listen(&mut ch, None);
        assert_eq!(ch.publish(&msg("a"), 1).unwrap().id, EventId(1));
        assert_eq!(ch.publish(&msg("b"), 2).unwrap().id, EventId(2));
        assert!(ch.log().is_empty(), "not stored before the flush");
        assert_eq!(ch.stats(0).last_id, EventId(2));
        // stats flushed: both are stored and delivered.
        assert_eq!(ch.log().len(), 2);
        assert_eq!(
            events(&o).into_iter().map(|e| e.2).collect::<Vec<_>>(),
            ["a", "b"]
        );
        // A resume right after an accepted publish finds it in history.
        ch.publish(&msg("c"), 3).unwrap();
        let resumed = listen(&mut ch, Some(2));
        assert_eq!(
            events(&resumed)
                .into_iter()
                .map(|e| e.2)
                .collect::<Vec<_>>(),
            ["c"]
        );
        assert_eq!(ch.take_store_error(), None);
    }

    #[test]
    fn a_full_channel_removes_the_gone_before_refusing_a_newcomer() {
        let mut ch = Channel::new(settings(5, 10), MemoryLog::default());
        let outlets: Vec<_> = (0..3).map(|_| listen(&mut ch, None)).collect();
        assert_eq!(
            ch.subscribe(TestOutlet::default(), None, 0),
            Err(SubscribeError::TooManyListeners { max: 3 })
        );
        outlets[0].0.borrow_mut().gone = true;
        assert!(ch.subscribe(TestOutlet::default(), None, 0).is_ok());
    }

    #[test]
    fn stats_add_up_after_a_known_sequence() {
        let mut ch = Channel::new(settings(5, 2), MemoryLog::default());
        let a = listen(&mut ch, None);
        let _b = listen(&mut ch, None);
        for i in 1..=3 {
            ch.publish(&msg("x"), i).unwrap();
        }
        ch.flush();
        a.0.borrow_mut().gone = true;
        let s = ch.stats(3);
        assert_eq!(s.listeners, 1);
        assert_eq!(s.counters.published, 3);
        assert_eq!(s.counters.delivered, 6);
        assert_eq!(s.counters.dropped_gone, 1);
        assert_eq!(s.last_id, EventId(3));
        assert_eq!(s.history_length, 2);
        let json = s.to_json("news");
        assert_eq!(json["channel"], "news");
        assert_eq!(json["lastId"], "3");
        assert_eq!(json["droppedGone"], 1);
    }

    fn accepted(history: u64) -> ChannelSettings {
        ChannelSettings {
            publish_ack: PublishAck::Accepted,
            ..settings(5, history)
        }
    }

    fn gap_of(o: &TestOutlet) -> Option<String> {
        events(o)
            .into_iter()
            .find(|e| e.1 == GAP_EVENT_TYPE)
            .map(|e| e.2)
    }

    #[test]
    fn replay_never_serves_an_event_older_than_the_age_limit() {
        let mut ch = Channel::new(
            ChannelSettings {
                history: HistoryPolicy {
                    max_events: 100,
                    max_age_ms: 1000,
                },
                ..settings(5, 100)
            },
            MemoryLog::default(),
        );
        for i in 1..=5 {
            ch.publish(&msg(&format!("old{i}")), i).unwrap();
        }
        ch.publish(&msg("new"), 3000).unwrap();
        // Nothing was published or pruned since: the resume at 4000 still must not see them.
        let o = TestOutlet::default();
        ch.subscribe(o.clone(), Some(EventId(0)), 4000).unwrap();
        let got = events(&o);
        assert_eq!(
            gap_of(&o).as_deref(),
            Some(r#"{"firstAvailableId":"6","lastEventId":"0"}"#)
        );
        assert_eq!(
            got.iter()
                .filter(|e| e.1 != GAP_EVENT_TYPE)
                .map(|e| e.2.as_str())
                .collect::<Vec<_>>(),
            ["new"]
        );
        // All of it expired: a gap with nothing available, and nothing replayed.
        let o = TestOutlet::default();
        ch.subscribe(o.clone(), Some(EventId(2)), 9000).unwrap();
        assert_eq!(
            gap_of(&o).as_deref(),
            Some(r#"{"firstAvailableId":null,"lastEventId":"2"}"#)
        );
        assert_eq!(events(&o).len(), 1);
    }

    #[test]
    fn accepted_ids_are_reserved_ahead_so_a_crash_never_reuses_one() {
        let mut ch = Channel::<TestOutlet, _>::new(accepted(100), MemoryLog::default());
        for i in 1..=3 {
            ch.publish(&msg(&format!("m{i}")), i).unwrap();
        }
        ch.flush();
        assert_eq!(ch.log().high_water(), EventId(ID_RESERVATION));
        // Two more answered, then a crash before their flush: what survives is the log.
        ch.publish(&msg("lost4"), 4).unwrap();
        ch.publish(&msg("lost5"), 5).unwrap();
        let survived = ch.log().clone();
        assert_eq!(survived.len(), 3);
        let mut again = Channel::new(accepted(100), survived);
        let next = again.publish(&msg("after"), 6).unwrap().id;
        assert!(next > EventId(5), "id {next} was already handed out");
        assert_eq!(next, EventId(ID_RESERVATION + 1));
        again.flush();
        // A listener that saw 3, or one that saw a lost id, is told of the gap.
        for last_seen in [3, 5] {
            let o = TestOutlet::default();
            again
                .subscribe(o.clone(), Some(EventId(last_seen)), 7)
                .unwrap();
            assert!(gap_of(&o).is_some(), "resume after {last_seen}");
            assert_eq!(events(&o).last().unwrap().2, "after");
        }
        // One that saw the newest id resumes with no gap.
        let o = TestOutlet::default();
        again.subscribe(o.clone(), Some(next), 7).unwrap();
        assert_eq!(events(&o), []);
    }

    #[test]
    fn an_idle_channel_releases_its_reservation_so_a_clean_restart_skips_no_ids() {
        let mut ch = Channel::<TestOutlet, _>::new(accepted(100), MemoryLog::default());
        ch.publish(&msg("a"), 1).unwrap();
        ch.keep_alive(2); // published since the previous keep-alive: kept
        assert_eq!(ch.log().high_water(), EventId(ID_RESERVATION));
        ch.keep_alive(3); // idle for a whole keep-alive: released
        assert_eq!(ch.log().high_water(), EventId(1));
        let mut again = Channel::<TestOutlet, _>::new(accepted(100), ch.log().clone());
        assert_eq!(again.publish(&msg("b"), 4).unwrap().id, EventId(2));
    }

    /// A log whose appends fail while `.1` is set.
    #[derive(Default)]
    struct FailingLog(MemoryLog, bool);
    impl EventLog for FailingLog {
        fn high_water(&self) -> EventId {
            self.0.high_water()
        }
        fn oldest(&self) -> Option<(EventId, u64)> {
            self.0.oldest()
        }
        fn len(&self) -> u64 {
            self.0.len()
        }
        fn append(&mut self, events: &[StoredEvent]) -> Result<(), LogError> {
            if self.1 {
                return Err(LogError("disk full".into()));
            }
            self.0.append(events)
        }
        fn reserve(&mut self, through: EventId) -> Result<(), LogError> {
            self.0.reserve(through)
        }
        fn after(&self, after: EventId) -> Result<Vec<StoredEvent>, LogError> {
            self.0.after(after)
        }
        fn find(&self, key: &str) -> Result<Option<EventId>, LogError> {
            self.0.find(key)
        }
        fn prune(&mut self, oldest: u64, before_ms: u64) -> Result<(), LogError> {
            self.0.prune(oldest, before_ms)
        }
    }

    #[test]
    fn a_stored_publish_that_fails_gives_out_no_id_and_sends_nothing() {
        let mut ch = Channel::new(settings(5, 10), FailingLog::default());
        let o = TestOutlet::default();
        ch.subscribe(o.clone(), None, 0).unwrap();
        ch.publish(&msg("a"), 1).unwrap();
        ch.log.1 = true;
        assert!(ch.publish(&msg("b"), 2).is_err());
        ch.log.1 = false;
        assert_eq!(ch.publish(&msg("c"), 3).unwrap().id, EventId(2));
        ch.flush();
        assert_eq!(
            events(&o)
                .into_iter()
                .map(|e| (e.0, e.2))
                .collect::<Vec<_>>(),
            [("1".into(), "a".into()), ("2".into(), "c".into())]
        );
    }

    #[test]
    fn a_probe_lets_a_full_channel_find_clients_that_went_away() {
        let mut ch = Channel::new(settings(5, 10), MemoryLog::default());
        let outlets: Vec<_> = (0..3).map(|_| listen(&mut ch, None)).collect();
        assert!(!ch.has_room());
        // A client that reset its connection: the runtime only says so once written to.
        outlets[1].0.borrow_mut().fails_on_write = true;
        assert!(!ch.has_room(), "nothing was written yet");
        ch.probe();
        assert!(ch.has_room());
        assert_eq!(ch.listeners(), 2);
        assert!(outlets[0].0.borrow().queue.back().unwrap().starts_with(':'));
    }

    #[test]
    fn an_accepted_batch_that_cannot_be_stored_is_not_sent_and_resumes_see_a_gap() {
        let mut ch = Channel::new(accepted(100), FailingLog::default());
        let o = TestOutlet::default();
        ch.subscribe(o.clone(), None, 0).unwrap();
        ch.publish(&msg("a"), 1).unwrap();
        ch.flush();
        ch.log.1 = true;
        assert_eq!(ch.publish(&msg("b"), 2).unwrap().id, EventId(2));
        assert_eq!(ch.flush().delivered, 0);
        assert!(ch.take_store_error().is_some());
        ch.log.1 = false;
        ch.publish(&msg("c"), 3).unwrap();
        ch.flush();
        assert_eq!(
            events(&o).into_iter().map(|e| e.2).collect::<Vec<_>>(),
            ["a", "c"],
            "what could not be kept was not sent"
        );
        let resumed = TestOutlet::default();
        ch.subscribe(resumed.clone(), Some(EventId(1)), 4).unwrap();
        assert_eq!(
            gap_of(&resumed).as_deref(),
            Some(r#"{"firstAvailableId":"3","lastEventId":"1"}"#)
        );
    }

    #[test]
    fn a_batch_gets_consecutive_ids_is_stored_at_once_and_goes_out_as_one_write() {
        let mut ch = Channel::new(settings(5, 100), MemoryLog::default());
        let o = listen(&mut ch, None);
        o.0.borrow_mut().read_all();
        ch.publish(&msg("before"), 1).unwrap();
        let batch = ch
            .publish_batch(&[msg("a"), msg("b"), msg("c")], 2)
            .unwrap();
        assert_eq!((batch.first, batch.last), (EventId(2), EventId(4)));
        assert_eq!(batch.to_json()["count"], 3);
        assert_eq!(ch.log().len(), 4);
        ch.flush();
        assert_eq!(
            o.0.borrow().queue.len(),
            1,
            "one write for the publish and the batch"
        );
        assert_eq!(
            events(&o)
                .into_iter()
                .map(|e| (e.0, e.2))
                .collect::<Vec<_>>(),
            [
                ("1".into(), "before".into()),
                ("2".into(), "a".into()),
                ("3".into(), "b".into()),
                ("4".into(), "c".into())
            ]
        );
        // A resume from inside the batch gets the rest of it.
        let resumed = listen(&mut ch, Some(2));
        assert_eq!(
            events(&resumed)
                .into_iter()
                .map(|e| e.2)
                .collect::<Vec<_>>(),
            ["b", "c"]
        );
        assert_eq!(ch.counters().published, 4);
    }

    #[test]
    fn a_batch_that_cannot_be_stored_gives_out_no_id() {
        let mut ch = Channel::<TestOutlet, _>::new(settings(5, 10), FailingLog::default());
        ch.log.1 = true;
        assert!(ch.publish_batch(&[msg("a"), msg("b")], 1).is_err());
        ch.log.1 = false;
        let batch = ch.publish_batch(&[msg("c")], 2).unwrap();
        assert_eq!((batch.first, batch.last), (EventId(1), EventId(1)));
    }

    // The tree: a root and nodes below it, wired as the platform wires them, in memory.

    type Node = Channel<TestOutlet, MemoryLog>;

    fn tree_settings(history: u64) -> ChannelSettings {
        ChannelSettings {
            max_listeners: 100,
            // Listeners here read only when a test looks: never cut as slow.
            queue_capacity: 10_000,
            ..settings(5, history)
        }
    }

    /// A node below the root, its relay seat on `parent`, and the reader of that stream.
    struct Below {
        node: Node,
        relay: TestOutlet,
        reader: protocol::FrameReader,
    }

    impl Below {
        fn join(parent: &mut Node, path: &str, history: u64) -> Below {
            Below::start(parent, path, tree_settings(history), None, 0)
        }

        /// A fresh node below `parent`, its stream from it starting after `seed` (from now
        /// when none), as the platform starts one.
        fn start(
            parent: &mut Node,
            path: &str,
            settings: ChannelSettings,
            seed: Option<EventId>,
            now_ms: u64,
        ) -> Below {
            let path = NodePath::parse(path).unwrap();
            let mut node = Channel::relayed(settings, path.clone(), MemoryLog::default());
            let relay = TestOutlet::default();
            let position = parent
                .join(Seat::Relay(path), relay.clone(), seed, now_ms)
                .unwrap();
            node.relay_started(position, seed);
            Below {
                node,
                relay,
                reader: protocol::FrameReader::new(),
            }
        }

        /// Takes a new stream from `parent`, resuming after the last id relayed, as the
        /// platform does when the old one ends (the parent must hold the resume).
        fn resume(&mut self, parent: &mut Node, now_ms: u64) {
            self.relay = TestOutlet::default();
            self.reader.end_of_stream();
            let seat = Seat::Relay(self.node.path().clone());
            let last = Some(self.node.last_id());
            let position = parent.join(seat, self.relay.clone(), last, now_ms).unwrap();
            self.node.relay_started(position, last);
        }

        /// As [`Below::resume`], with the replay asked of `above` when the parent does not
        /// hold the resume, as the platform asks up.
        fn resume_asking(&mut self, parent: &mut Node, above: &mut Node, now_ms: u64) {
            self.relay = TestOutlet::default();
            self.reader.end_of_stream();
            let seat = Seat::Relay(self.node.path().clone());
            let last = self.node.last_id();
            let position = match parent.join(seat.clone(), self.relay.clone(), Some(last), now_ms) {
                Err(SubscribeError::NotCovered) => {
                    let through = parent.holds_through();
                    let (replay, upstream) = above.replay(last, through, true, now_ms).unwrap();
                    parent
                        .join_replayed(seat, self.relay.clone(), &replay, upstream, through, now_ms)
                        .unwrap()
                }
                joined => joined.unwrap(),
            };
            self.node.relay_started(position, Some(last));
        }

        /// Takes what the parent has written on the relay, and sends it on.
        fn pump(&mut self, now_ms: u64) {
            let mut client = self.relay.0.borrow_mut();
            let chunks: Vec<_> = client.queue.drain(..).collect();
            drop(client);
            for chunk in chunks {
                let frames = self.reader.feed(chunk.as_bytes());
                self.node.ingest(&frames, now_ms);
            }
            self.node.flush();
        }
    }

    fn ids_of(o: &TestOutlet) -> Vec<u64> {
        events(o)
            .into_iter()
            .filter(|e| e.1 != GAP_EVENT_TYPE)
            .map(|e| e.0.parse().unwrap())
            .collect()
    }

    fn publish_n(root: &mut Node, range: std::ops::RangeInclusive<u64>) {
        for i in range {
            root.publish(&msg(&format!("m{i}")), i).unwrap();
        }
        root.flush();
    }

    #[test]
    fn listeners_below_the_root_see_the_roots_ids_in_its_order() {
        let mut root = Channel::new(tree_settings(100), MemoryLog::default());
        let on_root = listen(&mut root, None);
        let mut head = Below::join(&mut root, "weur", 100);
        let mut leaf = Below::join(&mut head.node, "weur.0", 100);
        let on_leaf = TestOutlet::default();
        leaf.node.subscribe(on_leaf.clone(), None, 0).unwrap();
        publish_n(&mut root, 1..=3);
        root.publish_batch(&[msg("b1"), msg("b2")], 4).unwrap();
        root.flush();
        head.pump(5);
        leaf.pump(5);
        assert_eq!(ids_of(&on_root), [1, 2, 3, 4, 5]);
        assert_eq!(events(&on_leaf), events(&on_root));
        assert_eq!(root.relays(), 1);
        assert_eq!(
            head.node.relay_children(),
            [NodePath::parse("weur.0").unwrap()]
        );
    }

    #[test]
    fn a_resume_below_the_root_is_answered_there_or_from_above_without_loss_or_doubles() {
        let mut root = Channel::new(tree_settings(100), MemoryLog::default());
        publish_n(&mut root, 1..=5);
        let mut leaf = Below::join(&mut root, "oc", 100);
        publish_n(&mut root, 6..=9);
        leaf.pump(9);
        // Held here: after 7.
        let near = TestOutlet::default();
        leaf.node
            .subscribe(near.clone(), Some(EventId(7)), 9)
            .unwrap();
        assert_eq!(ids_of(&near), [8, 9]);
        // Before what this node holds: the replay comes from the root.
        let far = TestOutlet::default();
        assert_eq!(
            leaf.node.subscribe(far.clone(), Some(EventId(2)), 9),
            Err(SubscribeError::NotCovered)
        );
        let (replay, upstream) = root.replay(EventId(2), EventId(0), false, 9).unwrap();
        // The root publishes while the answer travels; the node has not relayed it yet.
        publish_n(&mut root, 10..=10);
        leaf.node
            .join_replayed(
                Seat::Listener,
                far.clone(),
                &replay,
                upstream,
                EventId(0),
                10,
            )
            .unwrap();
        leaf.pump(10);
        assert_eq!(ids_of(&far), (3..=10).collect::<Vec<_>>());
        assert_eq!(ids_of(&near), [8, 9, 10]);
    }

    #[test]
    fn a_listener_ahead_of_its_node_gets_each_later_event_once() {
        let mut root = Channel::new(tree_settings(100), MemoryLog::default());
        let mut leaf = Below::join(&mut root, "sam", 100);
        publish_n(&mut root, 1..=4);
        leaf.pump(4);
        publish_n(&mut root, 5..=6);
        // It saw 6 on another node; this one has relayed only 4.
        let ahead = TestOutlet::default();
        assert_eq!(
            leaf.node.subscribe(ahead.clone(), Some(EventId(6)), 6),
            Err(SubscribeError::NotCovered)
        );
        let (replay, upstream) = root.replay(EventId(6), EventId(0), false, 6).unwrap();
        assert_eq!((replay.as_str(), upstream), ("", EventId(6)));
        leaf.node
            .join_replayed(
                Seat::Listener,
                ahead.clone(),
                &replay,
                upstream,
                EventId(0),
                6,
            )
            .unwrap();
        publish_n(&mut root, 7..=7);
        leaf.pump(7);
        assert_eq!(ids_of(&ahead), [7]);
    }

    #[test]
    fn a_node_whose_stream_from_its_parent_was_cut_loses_nothing_for_its_listeners() {
        let mut root = Channel::new(tree_settings(100), MemoryLog::default());
        let mut leaf = Below::join(&mut root, "afr", 100);
        let listener = TestOutlet::default();
        leaf.node.subscribe(listener.clone(), None, 0).unwrap();
        publish_n(&mut root, 1..=2);
        leaf.pump(2);
        // The relay is cut (say, as slow); events go on meanwhile.
        leaf.relay.0.borrow_mut().gone = true;
        publish_n(&mut root, 3..=5);
        assert_eq!(root.relays(), 0);
        // It resumes as any listener does, from the last id it relayed.
        leaf.resume(&mut root, 5);
        publish_n(&mut root, 6..=6);
        leaf.pump(6);
        assert_eq!(ids_of(&listener), (1..=6).collect::<Vec<_>>());
        // The replayed part came with its publication times and is kept here too: a
        // resume into it is answered by the node.
        let resumed = TestOutlet::default();
        leaf.node
            .subscribe(resumed.clone(), Some(EventId(2)), 6)
            .unwrap();
        assert_eq!(ids_of(&resumed), [3, 4, 5, 6]);
    }

    #[test]
    fn a_gap_upstream_reaches_the_listeners_below_and_resumes_there_say_gap_like_the_root() {
        let mut root = Channel::new(tree_settings(3), MemoryLog::default());
        let mut leaf = Below::join(&mut root, "me", 3);
        let listener = TestOutlet::default();
        leaf.node.subscribe(listener.clone(), None, 0).unwrap();
        publish_n(&mut root, 1..=1);
        leaf.pump(1);
        // Cut while 2..=6 are published; the root keeps only the last three.
        leaf.relay.0.borrow_mut().gone = true;
        publish_n(&mut root, 2..=6);
        leaf.resume(&mut root, 6);
        leaf.pump(6);
        assert_eq!(ids_of(&listener), [1, 4, 5, 6]);
        assert_eq!(
            gap_of(&listener).as_deref(),
            Some(r#"{"firstAvailableId":"4","lastEventId":"1"}"#)
        );
        // Both answer a resume from 1 the same way.
        let at_root = listen(&mut root, Some(1));
        let (replay, upstream) = root.replay(EventId(1), EventId(0), false, 6).unwrap();
        let below = TestOutlet::default();
        leaf.node
            .join_replayed(
                Seat::Listener,
                below.clone(),
                &replay,
                upstream,
                EventId(0),
                6,
            )
            .unwrap();
        assert_eq!(events(&below), events(&at_root));
    }

    #[test]
    fn a_node_below_takes_no_one_before_its_stream_has_started() {
        let path = NodePath::parse("enam").unwrap();
        let mut node: Node = Channel::relayed(tree_settings(10), path, MemoryLog::default());
        assert!(!node.is_live());
        assert_eq!(
            node.subscribe(TestOutlet::default(), None, 0),
            Err(SubscribeError::NotCovered)
        );
        node.relay_started(EventId(41), None);
        assert_eq!(
            node.subscribe(TestOutlet::default(), None, 0),
            Ok(EventId(41))
        );
    }

    #[test]
    fn tree_stats_add_up_over_the_objects() {
        let mut root = Channel::new(tree_settings(10), MemoryLog::default());
        let a = listen(&mut root, None);
        let mut leaf = Below::join(&mut root, "weur", 10);
        let b = TestOutlet::default();
        leaf.node.subscribe(b.clone(), None, 0).unwrap();
        leaf.node.subscribe(TestOutlet::default(), None, 0).unwrap();
        publish_n(&mut root, 1..=2);
        leaf.pump(2);
        let mut total = root.stats(2);
        let below = ChannelStats::from_json(&leaf.node.stats(2).to_json("x")).unwrap();
        total.absorb(&below);
        assert_eq!(total.listeners, 3);
        assert_eq!(total.counters.delivered, 6);
        assert_eq!(total.objects, 2);
        assert_eq!(total.last_id, EventId(2));
        assert_eq!(total.counters.published, 2);
        drop((a, b));
    }

    #[test]
    fn a_node_started_for_a_resume_holds_what_its_returning_listeners_missed() {
        let mut root = Channel::new(tree_settings(100), MemoryLog::default());
        publish_n(&mut root, 1..=20);
        // Everything restarted: a fresh node's first seat resumes after 18, so it takes its
        // stream from a little before (here 10), as the platform does.
        let seed = Some(EventId(10));
        let mut below = Below::start(&mut root, "weur", tree_settings(100), seed, 20);
        below.pump(20);
        // The listeners coming back are all answered here, each from its own id.
        for after in [18, 12, 10, 20] {
            let o = TestOutlet::default();
            below
                .node
                .subscribe(o.clone(), Some(EventId(after)), 20)
                .unwrap();
            assert_eq!(
                ids_of(&o),
                (after + 1..=20).collect::<Vec<_>>(),
                "after {after}"
            );
        }
        // Older than that is asked of the root, as before.
        assert_eq!(
            below
                .node
                .subscribe(TestOutlet::default(), Some(EventId(9)), 20),
            Err(SubscribeError::NotCovered)
        );
        // A listener that does not resume starts from where the parent was, not from the
        // replay before it.
        let fresh = TestOutlet::default();
        below.node.subscribe(fresh.clone(), None, 20).unwrap();
        publish_n(&mut root, 21..=21);
        below.pump(21);
        assert_eq!(ids_of(&fresh), [21]);
    }

    #[test]
    fn events_replayed_to_a_node_keep_their_age_so_it_never_serves_an_expired_one() {
        let aging = ChannelSettings {
            history: HistoryPolicy {
                max_events: 100,
                max_age_ms: 1000,
            },
            ..tree_settings(100)
        };
        let mut root = Channel::new(aging, MemoryLog::default());
        root.publish(&msg("old"), 0).unwrap();
        root.publish(&msg("new"), 900).unwrap();
        root.flush();
        let mut below = Below::start(&mut root, "oc", aging, Some(EventId(0)), 950);
        // Arriving at 950, both are within the limit; at 1500 the first is older than it.
        below.pump(950);
        let o = TestOutlet::default();
        let answered = below.node.subscribe(o.clone(), Some(EventId(0)), 1500);
        match answered {
            // The node no longer holds 1: the root answers, with a gap, as it would.
            Err(SubscribeError::NotCovered) => {}
            Ok(_) => assert_eq!(ids_of(&o), [2], "an expired event was served"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_node_that_empties_hands_its_counts_up_so_the_stats_keep_them() {
        let mut root = Channel::new(tree_settings(10), MemoryLog::default());
        let mut leaf = Below::join(&mut root, "oc", 10);
        let gone = TestOutlet::default();
        leaf.node.subscribe(gone.clone(), None, 0).unwrap();
        publish_n(&mut root, 1..=3);
        leaf.pump(3);
        gone.0.borrow_mut().gone = true;
        leaf.node.keep_alive(4);
        assert_eq!(leaf.node.listeners(), 0);
        // Empty now: its last report carries what it counted, and it counts from zero.
        let handed = leaf.node.hand_up();
        assert_eq!((handed.delivered, handed.dropped_gone), (3, 1));
        assert_eq!(leaf.node.hand_up(), Counters::default());
        root.report(leaf.node.path(), 0, Some(&handed));
        let s = root.stats(5);
        assert_eq!((s.counters.delivered, s.counters.dropped_gone), (3, 1));
        assert_eq!(s.counters.published, 3);
        // The root hands up nothing (it has no parent), but a node between does, with
        // what it was handed.
        let mut head = Below::join(&mut root, "weur", 10);
        head.node
            .report(&NodePath::parse("weur.0").unwrap(), 0, Some(&handed));
        assert_eq!(head.node.hand_up().delivered, 3);
    }

    /// The text a stream has carried so far.
    fn text_of(o: &TestOutlet) -> String {
        o.0.borrow_mut().read_all();
        o.0.borrow().text()
    }

    /// A listener on `node` resuming after `after`, with its replay asked of `root` when
    /// the node does not hold it, as the platform asks up.
    fn resume_below(node: &mut Node, root: &mut Node, after: u64, now_ms: u64) -> TestOutlet {
        let o = TestOutlet::default();
        let after = EventId(after);
        match node.subscribe(o.clone(), Some(after), now_ms) {
            Err(SubscribeError::NotCovered) => {
                let through = node.holds_through();
                let (replay, upstream) = root.replay(after, through, false, now_ms).unwrap();
                node.join_replayed(
                    Seat::Listener,
                    o.clone(),
                    &replay,
                    upstream,
                    through,
                    now_ms,
                )
                .unwrap();
            }
            joined => {
                joined.unwrap();
            }
        }
        o
    }

    #[test]
    fn a_nodes_last_id_never_exceeds_what_its_parent_answered() {
        let mut root = Channel::new(tree_settings(100), MemoryLog::default());
        publish_n(&mut root, 1..=3);
        // Started for a resume (seeded before it), from now, and for a resume far ahead of
        // the root (seeded beyond its head): the root answers each with its head, 3.
        for seed in [Some(1), None, Some(900)] {
            let seed = seed.map(EventId);
            let mut below = Below::start(&mut root, "weur", tree_settings(100), seed, 3);
            let last = below.node.last_id();
            assert!(last <= EventId(3), "seeded {seed:?}: at {last}");
            below.pump(3);
            assert_eq!(below.node.last_id(), EventId(3), "seeded {seed:?}");
        }
    }

    #[test]
    fn a_resume_far_ahead_of_the_head_is_answered_below_the_root_exactly_as_on_it() {
        let mut root = Channel::new(tree_settings(100), MemoryLog::default());
        publish_n(&mut root, 1..=3);
        let at_root = listen(&mut root, Some(1000));
        // The resume from 1000 starts a fresh node, which asks its parent from 900: the
        // root is at 3. The node starts at the root's ids, and seats no one before it has
        // read the root's gap (which is for no one: it had no seats).
        let seed = Some(EventId(900));
        let mut head = Below::start(&mut root, "weur", tree_settings(100), seed, 3);
        assert!(!head.node.is_live());
        head.pump(3);
        assert!(head.node.is_live());
        let below = resume_below(&mut head.node, &mut root, 1000, 3);
        assert_eq!(text_of(&below), text_of(&at_root));
        assert_eq!(
            gap_of(&below).as_deref(),
            Some(r#"{"firstAvailableId":"1","lastEventId":"1000"}"#)
        );
        assert_eq!(ids_of(&below), [1, 2, 3]);
        // Later listeners there: the same resume again, one from now, one on a node below.
        let again = resume_below(&mut head.node, &mut root, 1000, 3);
        let from_now = TestOutlet::default();
        head.node.subscribe(from_now.clone(), None, 3).unwrap();
        let mut leaf = Below::join(&mut head.node, "weur.0", 100);
        let on_leaf = TestOutlet::default();
        leaf.node.subscribe(on_leaf.clone(), None, 3).unwrap();
        publish_n(&mut root, 4..=5);
        head.pump(5);
        leaf.pump(5);
        assert_eq!(ids_of(&below), [1, 2, 3, 4, 5]);
        assert_eq!(events(&below), events(&at_root));
        assert_eq!(events(&again), events(&at_root));
        assert_eq!(ids_of(&from_now), [4, 5]);
        assert_eq!(ids_of(&on_leaf), [4, 5]);
    }

    #[test]
    fn a_node_whose_parent_comes_back_with_a_lower_head_takes_its_position_and_its_gap() {
        let mut root = Channel::new(tree_settings(100), MemoryLog::default());
        let mut head = Below::join(&mut root, "weur", 100);
        let mut leaf = Below::join(&mut head.node, "weur.0", 100);
        let on_head = TestOutlet::default();
        head.node.subscribe(on_head.clone(), None, 0).unwrap();
        let on_leaf = TestOutlet::default();
        leaf.node.subscribe(on_leaf.clone(), None, 0).unwrap();
        publish_n(&mut root, 1..=5);
        head.pump(5);
        leaf.pump(5);
        // The root lost its storage: it starts again over an empty log and gives 1 and 2
        // to other events. The head's stream ended with the old root; it resumes after 5.
        let mut root = Channel::new(tree_settings(100), MemoryLog::default());
        root.publish_batch(&[msg("new1"), msg("new2")], 6).unwrap();
        root.flush();
        head.resume(&mut root, 6);
        let last = head.node.last_id();
        assert!(last <= EventId(2), "the head is at {last}, the root at 2");
        head.pump(6);
        // Its listener gets what a listener resuming after 5 on the root gets: the root's
        // gap and the events it keeps.
        let on_root = text_of(&listen(&mut root, Some(5)));
        let replayed = on_root.strip_prefix(&protocol::retry(1000)).unwrap();
        assert!(replayed.starts_with("event: gap\n"), "{replayed}");
        assert!(
            text_of(&on_head).ends_with(replayed),
            "{}",
            text_of(&on_head)
        );
        // Its history of the old ids is gone: a resume after 1 gets the new 2.
        let after_one = resume_below(&mut head.node, &mut root, 1, 6);
        assert_eq!(
            events(&after_one),
            [("2".into(), "message".into(), "new2".into())]
        );
        // Its child's stream was ended: the child resumes after 5 too, and takes the same
        // position and gap.
        assert!(leaf.relay.0.borrow().closed);
        leaf.pump(6);
        leaf.resume_asking(&mut head.node, &mut root, 6);
        let last = leaf.node.last_id();
        assert!(last <= EventId(2), "the leaf is at {last}, its parent at 2");
        leaf.pump(6);
        root.publish(&msg("new3"), 7).unwrap();
        root.flush();
        head.pump(7);
        leaf.pump(7);
        assert_eq!(ids_of(&on_head), [1, 2, 3, 4, 5, 1, 2, 3]);
        assert_eq!(events(&on_leaf), events(&on_head));
        assert_eq!(ids_of(&after_one), [2, 3]);
    }

    #[test]
    fn a_node_seats_no_one_on_a_replay_from_a_root_that_is_behind_it() {
        let mut root = Channel::new(tree_settings(100), MemoryLog::default());
        let mut head = Below::join(&mut root, "weur", 100);
        publish_n(&mut root, 1..=5);
        head.pump(5);
        // The root starts again over an empty log before the head's stream from it
        // resumes; a resume the head asks up for comes back behind what it holds.
        let mut root = Channel::new(tree_settings(100), MemoryLog::default());
        publish_n(&mut root, 1..=2);
        let o = TestOutlet::default();
        let after = EventId(7);
        let joined = head.node.subscribe(o.clone(), Some(after), 6);
        assert_eq!(joined, Err(SubscribeError::NotCovered));
        let through = head.node.holds_through();
        let (replay, upstream) = root.replay(after, through, false, 6).unwrap();
        assert_eq!(upstream, EventId(2), "the root answers with its own head");
        let joined =
            head.node
                .join_replayed(Seat::Listener, o.clone(), &replay, upstream, through, 6);
        assert_eq!(joined, Err(SubscribeError::NotCovered));
        assert_eq!(head.node.listeners(), 0);
    }

    #[test]
    fn a_node_cut_off_from_its_parent_ends_its_streams_and_seats_again_once_it_is_back() {
        let mut root = Channel::new(tree_settings(100), MemoryLog::default());
        let mut head = Below::join(&mut root, "weur", 100);
        let leaf = Below::join(&mut head.node, "weur.0", 100);
        let on_head = TestOutlet::default();
        head.node.subscribe(on_head.clone(), None, 0).unwrap();
        publish_n(&mut root, 1..=2);
        head.pump(2);
        // Its parent has been out of reach too long: it ends every stream it feeds, after
        // what they were sent.
        head.node.end_streams();
        assert!(on_head.0.borrow().closed);
        assert!(leaf.relay.0.borrow().closed);
        assert_eq!((head.node.listeners(), head.node.relays()), (0, 0));
        assert_eq!(ids_of(&on_head), [1, 2]);
        // Once its stream is back, the listener that left resumes here, missing nothing.
        publish_n(&mut root, 3..=4);
        head.relay.0.borrow_mut().gone = true;
        head.resume(&mut root, 4);
        let back = TestOutlet::default();
        head.node
            .subscribe(back.clone(), Some(EventId(2)), 4)
            .unwrap();
        head.pump(4);
        assert_eq!(ids_of(&back), [3, 4]);
    }

    mod tree_properties {
        use super::*;
        use proptest::prelude::*;

        /// What happens to a three-level tree (root, a region head, a leaf below it).
        #[derive(Debug, Clone)]
        enum Step {
            /// The root publishes a batch of this many events.
            Publish(usize),
            /// The head (false) or the leaf (true) reads what its parent wrote.
            Pump(bool),
            /// The head's or the leaf's stream from its parent is cut; it resumes.
            Cut(bool),
            /// A listener leaves and comes back with its last id, on this node (0..3).
            Move(usize, usize),
            /// A listener comes back, on this node, with an id this far ahead of the
            /// root's head (one it never gave: a client that made it up, or storage reset).
            Jump(usize, usize, u64),
            /// The leaf restarts: a fresh one takes its stream from this far from the
            /// root's head (ahead of it, for a resume from the future; none: from now),
            /// and the leaf's listeners come back to it with their last ids.
            Renew(Option<i64>),
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                (1usize..4).prop_map(Step::Publish),
                any::<bool>().prop_map(Step::Pump),
                any::<bool>().prop_map(Step::Pump),
                any::<bool>().prop_map(Step::Cut),
                (0usize..6, 0usize..3).prop_map(|(l, n)| Step::Move(l, n)),
                (0usize..6, 0usize..3, 1u64..2000).prop_map(|(l, n, a)| Step::Jump(l, n, a)),
                proptest::option::of(-8i64..1000).prop_map(Step::Renew),
            ]
        }

        struct Listener {
            outlet: TestOutlet,
            /// The node it is on (0 root, 1 head, 2 leaf).
            at: usize,
            /// Ids seen on earlier connections, in order.
            seen: Vec<u64>,
            /// `gap` notices seen on earlier connections.
            gaps: Vec<String>,
        }

        impl Listener {
            fn all(&self) -> Vec<u64> {
                let mut all = self.seen.clone();
                all.extend(ids_of(&self.outlet));
                all
            }

            fn all_gaps(&self) -> Vec<String> {
                let mut gaps = self.gaps.clone();
                gaps.extend(gaps_of(&self.outlet));
                gaps
            }

            /// Leaves its stream, keeping what it saw; returns its last id.
            fn leave(&mut self) -> EventId {
                self.seen = self.all();
                self.gaps = self.all_gaps();
                self.outlet.0.borrow_mut().gone = true;
                self.outlet = TestOutlet::default();
                EventId(self.seen.last().copied().unwrap_or(0))
            }
        }

        fn gaps_of(o: &TestOutlet) -> Vec<String> {
            events(o)
                .into_iter()
                .filter(|e| e.1 == GAP_EVENT_TYPE)
                .map(|e| e.2)
                .collect()
        }

        struct Tree {
            root: Node,
            below: Vec<Below>,
            now: u64,
        }

        impl Tree {
            fn new() -> Tree {
                let mut root = Channel::new(tree_settings(10_000), MemoryLog::default());
                let head = Below::join(&mut root, "weur", 10_000);
                let mut tree = Tree {
                    root,
                    below: vec![head],
                    now: 0,
                };
                let leaf = Below::join(&mut tree.below[0].node, "weur.0", 10_000);
                tree.below.push(leaf);
                tree
            }

            fn pump(&mut self, i: usize) {
                self.below[i].pump(self.now);
            }

            /// Seats a listener on node `at` (0 root, 1 head, 2 leaf), resuming after
            /// `after`, asking up the tree as the platform does.
            fn seat(&mut self, at: usize, outlet: TestOutlet, after: EventId) {
                let now = self.now;
                if at == 0 {
                    self.root.subscribe(outlet, Some(after), now).unwrap();
                    return;
                }
                if !self.below[at - 1].node.is_live() {
                    // The platform seats no one before the node's stream has begun.
                    self.pump(at - 1);
                }
                let node = &mut self.below[at - 1].node;
                match node.subscribe(outlet.clone(), Some(after), now) {
                    Err(SubscribeError::NotCovered) => {
                        let through = self.below[at - 1].node.holds_through();
                        let (replay, upstream) = self.replay(at - 1, after, through);
                        self.below[at - 1]
                            .node
                            .join_replayed(Seat::Listener, outlet, &replay, upstream, through, now)
                            .unwrap();
                    }
                    joined => {
                        joined.unwrap();
                    }
                }
            }

            /// The replay node `at`'s parent answers (asking its own parent when needed).
            fn replay(&mut self, at: usize, after: EventId, through: EventId) -> (String, EventId) {
                let now = self.now;
                if at == 0 {
                    return self.root.replay(after, through, false, now).unwrap();
                }
                match self.below[at - 1].node.replay(after, through, false, now) {
                    Err(SubscribeError::NotCovered) => self.replay(at - 1, after, through),
                    answered => answered.unwrap(),
                }
            }

            fn parent(&mut self, i: usize) -> &mut Node {
                match i {
                    0 => &mut self.root,
                    _ => &mut self.below[i - 1].node,
                }
            }

            /// Opens the relay of `below[i]` (`path`) on its parent, after `after` (from
            /// now when none), asking up the tree as the platform does; its position.
            fn open_relay(
                &mut self,
                i: usize,
                path: NodePath,
                relay: TestOutlet,
                after: Option<EventId>,
            ) -> EventId {
                let now = self.now;
                let parent = self.parent(i);
                parent.flush();
                match (
                    parent.join(Seat::Relay(path.clone()), relay.clone(), after, now),
                    after,
                ) {
                    (Err(SubscribeError::NotCovered), Some(after)) => {
                        let through = self.parent(i).holds_through();
                        let (replay, upstream) = self.replay(i, after, through);
                        self.parent(i)
                            .join_replayed(
                                Seat::Relay(path),
                                relay,
                                &replay,
                                upstream,
                                through,
                                now,
                            )
                            .unwrap()
                    }
                    (joined, _) => joined.unwrap(),
                }
            }

            fn cut(&mut self, i: usize) {
                self.below[i].relay.0.borrow_mut().gone = true;
                // The parent finds out at its next write; the child resumes at once.
                let fresh = TestOutlet::default();
                let path = self.below[i].node.path().clone();
                let last = self.below[i].node.last_id();
                let position = self.open_relay(i, path, fresh.clone(), Some(last));
                let below = &mut self.below[i];
                below.relay = fresh;
                below.reader.end_of_stream();
                below.node.relay_started(position, Some(last));
                let last = below.node.last_id();
                assert!(last <= position, "at {last}, answered {position}");
            }

            /// A fresh leaf in place of the old one, its stream starting after `seed`.
            fn renew(&mut self, seed: Option<EventId>) {
                self.below[1].relay.0.borrow_mut().gone = true;
                let path = self.below[1].node.path().clone();
                let relay = TestOutlet::default();
                let position = self.open_relay(1, path.clone(), relay.clone(), seed);
                let mut node = Channel::relayed(tree_settings(10_000), path, MemoryLog::default());
                node.relay_started(position, seed);
                let last = node.last_id();
                assert!(
                    last <= position,
                    "seeded {seed:?}: at {last}, answered {position}"
                );
                self.below[1] = Below {
                    node,
                    relay,
                    reader: protocol::FrameReader::new(),
                };
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            /// Whatever the order of publishes, relays, cuts, restarts and listeners moving
            /// between nodes, every listener ends up with every id once, in order; one that
            /// comes back from ahead of the head gets the root's `gap` and every event
            /// again, wherever it lands.
            #[test]
            fn every_listener_gets_every_event_once_in_order_wherever_it_moves(
                steps in proptest::collection::vec(step(), 1..60)
            ) {
                let mut tree = Tree::new();
                let mut listeners: Vec<Listener> = (0..6)
                    .map(|i| {
                        let outlet = TestOutlet::default();
                        tree.seat(i % 3, outlet.clone(), EventId(0));
                        Listener { outlet, at: i % 3, seen: Vec::new(), gaps: Vec::new() }
                    })
                    .collect();
                let mut gaps: Vec<Vec<String>> = vec![Vec::new(); listeners.len()];
                for step in steps {
                    tree.now += 1;
                    match step {
                        Step::Publish(n) => {
                            let batch: Vec<Message> = (0..n).map(|i| msg(&format!("e{i}"))).collect();
                            tree.root.publish_batch(&batch, tree.now).unwrap();
                            tree.root.flush();
                        }
                        Step::Pump(leaf) => tree.pump(usize::from(leaf)),
                        Step::Cut(leaf) => tree.cut(usize::from(leaf)),
                        Step::Move(l, at) => {
                            let after = listeners[l].leave();
                            listeners[l].at = at;
                            tree.seat(at, listeners[l].outlet.clone(), after);
                        }
                        Step::Jump(l, at, ahead) => {
                            listeners[l].leave();
                            // It starts over: what the channel keeps is all new to it.
                            listeners[l].seen.clear();
                            let head = tree.root.last_id();
                            let after = EventId(head.0 + ahead);
                            let first = if head.0 > 0 { r#""1""# } else { "null" };
                            gaps[l].push(format!(r#"{{"firstAvailableId":{first},"lastEventId":"{after}"}}"#));
                            listeners[l].at = at;
                            tree.seat(at, listeners[l].outlet.clone(), after);
                        }
                        Step::Renew(offset) => {
                            let head = tree.root.last_id().0 as i64;
                            let seed = offset.map(|o| EventId((head + o).max(0) as u64));
                            tree.renew(seed);
                            for listener in listeners.iter_mut().filter(|l| l.at == 2) {
                                let after = listener.leave();
                                tree.seat(2, listener.outlet.clone(), after);
                            }
                        }
                    }
                }
                tree.pump(0);
                tree.pump(1);
                let last = tree.root.last_id().0;
                for (i, listener) in listeners.iter().enumerate() {
                    prop_assert_eq!(listener.all(), (1..=last).collect::<Vec<_>>(), "listener {}", i);
                    prop_assert_eq!(&listener.all_gaps(), &gaps[i], "listener {}", i);
                }
            }
        }
    }
}
