//! The one Durable Object implementation under both faces: an object of a stream (a
//! channel's, or the Mercure hub's) that is its root (its seats' streams, its history in
//! SQLite) or a node of its fan-out tree (seats, recent events in memory, and its stream
//! from its parent), with a keep-alive alarm while anyone is seated. The tree's calls
//! (placement, relay, replay, report, stats) are served here for both; each face
//! ([`channel`], [`hub`]) is a thin Durable Object class that adds its own calls and
//! rules. The Worker has validated every request before it gets here.

mod answer;
mod calls;
pub mod channel;
mod counts;
mod feed;
pub mod hub;
mod lifetime;
mod sockets;
mod stream_publish;
mod timing;

pub(crate) use answer::Body;
use answer::{ended, refused};
use sockets::Unseated;
mod uplink;

use std::cell::Cell;
use std::rc::Rc;

use worker::{Env, Headers, Response, State};

use super::contract::POSITION_HEADER;
use super::contract::{StreamRequest, Target, NODE_HEADER, PLACED_STATUS};
use super::error::{Audience, Error};
use super::host::{now_ms, Host};
use super::object_counts;
use super::open_streams::OpenStreams;
use super::outlet::{SeatOutlet, SocketOutlet, StreamOutlet};
use super::sql_log::SqlLog;
use crate::domain::{
    self, Config, EventId, EventLog, Filter, MemoryLog, NodePath, Place, Region, SeatKind,
    StreamSettings, StreamStats, SubscribeError,
};
use calls::{ask_node, position_of};
use uplink::{LinkState, Uplink};

/// Times a node asks up again for a resume that moved on while the answer travelled.
const REPLAY_ATTEMPTS: usize = 3;
/// How far before the first resume it is asked for a fresh node starts its stream from
/// its parent, in events: seats coming back with ids up to this much older are then
/// answered by the node itself.
const SEED_MARGIN: u64 = 100;

type Log = Box<dyn EventLog>;
/// The engine an object runs, with its face's filter.
pub(crate) type Engine<F> = domain::Stream<SeatOutlet, Log, <F as Face>::Filter>;

/// How a listener's seat is sent its stream: as the response's body, or over a socket
/// (whose note keeps the face's spec of the seat, for a later instance to seat it again).
#[derive(Clone)]
pub(crate) enum Via<S> {
    Stream,
    Socket(S),
    /// A child's seat on the socket this object opened to feed it (`u64`: its seat id).
    Feed(worker::web_sys::WebSocket, u64),
}

/// What a face (channels, the Mercure hub) adds to the one object: which seats it has,
/// the engine's settings, and what follows a write.
pub(crate) trait Face: Sized + 'static {
    /// What a seat of this face admits.
    type Filter: Filter + Clone + 'static;

    /// Whose seats these are, for the answer a full stream gives.
    const AUDIENCE: Audience;

    /// What the face keeps beside the engine.
    type State: Default + 'static;

    /// What a seat on a socket notes for a later instance to make its filter again.
    type Spec: serde::Serialize + serde::de::DeserializeOwned + Clone + 'static;

    /// A seat's filter, made again from its note in a fresh instance.
    fn restore(h: &mut Hosted<Self>, spec: Self::Spec) -> Result<Self::Filter, Error>;

    fn settings(config: &Config) -> StreamSettings;

    /// The headers every stream of this face carries.
    fn stream_headers() -> Result<Headers, Error>;

    /// Writes what is pending, and what that leads to (the hub announces the departures
    /// that writing revealed).
    fn settle(h: &mut Hosted<Self>) {
        h.stream.flush();
    }

    /// The stream's stats as its root answers the Worker (between objects they travel as
    /// [`StreamStats::to_json`] writes them).
    fn stats_json(stats: &StreamStats, target: &Target) -> serde_json::Value {
        stats.to_json(target.name())
    }

    /// Whether `filter` may take a seat here now, checked in the same step as the seat is
    /// made (the hub: its matchers fit beside those seated).
    fn admit(_h: &mut Hosted<Self>, _filter: &Self::Filter) -> Result<(), Error> {
        Ok(())
    }

    /// Runs before each keep-alive, and at each deadline (the hub ends streams whose
    /// token expired).
    fn before_keep_alive(_h: &mut Hosted<Self>, _now_ms: u64) {}

    /// When the alarm must fire next for the face, keep-alives aside (the hub: the
    /// earliest token expiry among its seats).
    fn next_deadline(_h: &mut Hosted<Self>) -> Option<u64> {
        None
    }
}

/// The object this is, once opened: its configuration and its state.
pub(crate) struct Hosted<F: Face> {
    pub config: Config,
    pub target: Target,
    pub stream: Engine<F>,
    /// The subtree's seats as last reported to the parent.
    pub(super) reported: u64,
    /// The face's own state.
    pub face: F::State,
    /// For calls that work started between requests makes (a node's to its root).
    pub env: Env,
    /// How many times this object has started to do work (seat, publish, wake for its
    /// seats), this time included once it has.
    starts: u64,
    /// Whether this start is counted in storage yet.
    start_counted: bool,
    /// What [`Hosted::keep_counts`] last kept.
    kept: Option<domain::Counters>,
    /// Below the root, once the stream ended: nothing is stored any more.
    storage_dropped: bool,
    /// The object's storage, where its counts are kept.
    sql: worker::SqlStorage,
}

impl<F: Face> Hosted<F> {
    /// Logs a storage failure met after a publish was answered (under
    /// `PUBLISH_ACK=accepted` the events were sent but could not be kept).
    pub fn report_store_error(&mut self) {
        if let Some(e) = self.stream.take_store_error() {
            worker::console_error!("storage failed after answering: {e}");
        }
    }

    fn seated(&self) -> bool {
        self.stream.listeners() + self.stream.relays() > 0
    }
}

/// Where a newcomer goes: here (it counts as held until its seat is made), or further
/// down the tree (the answer that says where).
pub(crate) enum Placed<'a> {
    Here(Arrival<'a>),
    Below(Response),
}

/// A newcomer placed here whose seat is being made: held from its placement on, so that
/// newcomers placed meanwhile count it; let go when dropped.
pub(crate) struct Arrival<'a>(&'a Cell<usize>);

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

pub(crate) struct StreamObject<F: Face> {
    pub state: State,
    pub env: Env,
    pub host: Host<Hosted<F>>,
    uplink: Rc<Uplink>,
    /// Seats placed here that are being made.
    arriving: Cell<usize>,
    /// Seats on sockets this instance made (for their ids).
    seats_made: Cell<u64>,
    streams: Rc<OpenStreams>,
}

impl<F: Face> StreamObject<F> {
    pub fn new(state: State, env: Env) -> Self {
        StreamObject {
            env,
            host: Host::new(),
            uplink: Rc::new(Uplink::default()),
            arriving: Cell::new(0),
            seats_made: Cell::new(0),
            streams: Rc::new(OpenStreams::claim(&state)),
            state,
        }
    }

    /// Opens the object on first use: configuration and, on the root, stored history
    /// (read only; the tables appear with the first write).
    pub fn ensure_open(&self, target: &Target, node: &NodePath) -> Result<(), Error> {
        let opened = self.host.ensure_open(|| {
            let config = super::read_config(&self.env)?;
            let settings = F::settings(&config);
            let mut stream = if node.is_root() {
                let log: Log = Box::new(SqlLog::open(self.state.storage().sql())?);
                domain::Stream::new(settings, log)
            } else {
                let log: Log = Box::<MemoryLog>::default();
                domain::Stream::relayed(settings, node.clone(), log)
            };
            let sql = self.state.storage().sql();
            let counted = object_counts::read(&sql);
            if config.hibernate {
                // What an instance that slept counted goes on here (see `keep_counts`).
                stream.go_on_counting(counted.counters);
            }
            Ok(Hosted {
                config,
                target: target.clone(),
                stream,
                reported: 0,
                face: F::State::default(),
                env: self.env.clone(),
                starts: counted.starts,
                start_counted: false,
                kept: None,
                storage_dropped: false,
                sql,
            })
        })?;
        if opened {
            self.restore_sockets();
        }
        Ok(())
    }

    /// Lets the object's state go, as a restart of the object alone would: its seats'
    /// sockets close, and the next call opens it afresh. Answers what the call that asked
    /// gets (503).
    pub fn forget(&self) -> Error {
        for socket in self.state.get_websockets() {
            super::outlet::restart(socket.as_ref());
        }
        // The children fed from here ask again.
        self.streams.close_sockets();
        self.host.forget();
        Error::Runtime(worker::Error::RustError("the object restarted".into()))
    }

    /// Deletes everything this object stores, its alarm included: nothing of it is kept,
    /// or billed.
    pub async fn delete_storage(&self) -> Result<(), Error> {
        let storage = self.state.storage();
        storage.delete_alarm().await?;
        storage.delete_all().await?;
        self.host.alarm_fired();
        Ok(())
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Hosted<F>) -> T) -> T {
        self.host.with(f)
    }

    pub fn path(&self) -> NodePath {
        self.with(|h| h.stream.path().clone())
    }

    pub fn target(&self) -> Target {
        self.with(|h| h.target.clone())
    }

    /// The tree's calls, the same for both faces; a face's own calls are its to serve.
    pub async fn serve_tree(&self, request: StreamRequest) -> Result<Response, Error> {
        match request {
            StreamRequest::Relay { child, last_seen } => self.relay(child, last_seen).await,
            StreamRequest::FeedMe { child, last_seen } => self.feed(child, last_seen).await,
            StreamRequest::Feed => self.accept_feed(),
            StreamRequest::Replay { after, through } => self.replay(after, through).await,
            StreamRequest::Report {
                child,
                listeners,
                handed,
            } => {
                self.with(|h| h.stream.report(&child, listeners, handed.as_ref()));
                // Its own audience changed with it: reported up at the next alarm. The
                // report is taken either way (asked again, it would count twice).
                if let Err(e) = self.arm_keep_alive().await {
                    worker::console_error!("an alarm after a report: {e}");
                }
                Ok(Response::empty()?.with_status(204))
            }
            StreamRequest::Stats => self.stats().await,
            other => Err(Error::Contract(format!("{other:?} is not for this object"))),
        }
    }

    /// Where a newcomer from `region` goes. The root, when full, first writes to its
    /// seats for the gone ones to show (see [`Host::probe_while_full`]).
    pub async fn placed(&self, region: Region) -> Result<Placed<'_>, Error> {
        if self.with(|h| h.stream.path().is_root()) {
            let host = &self.host;
            host.probe_while_full(|h| h.stream.has_room(), probe::<F>)
                .await;
            // The root counts the whole tree: a full stream places no one below either.
            if !self.with(|h| h.stream.has_room()) {
                let max = self.with(|h| h.stream.settings().max_listeners);
                return Err(refused::<F>(SubscribeError::TooManyListeners { max }));
            }
        }
        let arriving = self.arriving.get();
        if let Place::Child(node) = self.with(|h| h.stream.place(region, arriving)) {
            let headers = Headers::new();
            headers.set(NODE_HEADER, &node.to_string())?;
            return Ok(Placed::Below(
                Response::empty()?
                    .with_status(PLACED_STATUS)
                    .with_headers(headers),
            ));
        }
        self.arriving.set(arriving + 1);
        Ok(Placed::Here(Arrival(&self.arriving)))
    }

    /// A child node takes its stream from this one.
    async fn relay(&self, child: NodePath, last_seen: Option<EventId>) -> Result<Response, Error> {
        let seat = SeatKind::Relay(child);
        let (body, position) = self.seat(seat, last_seen, Via::Stream).await?;
        let headers = F::stream_headers()?;
        headers.set(POSITION_HEADER, &position.to_string())?;
        self.stream_response(body, position, headers)
    }

    /// The outlet and body of a new seat's stream, and for a socket the guard that closes
    /// it unless the seat is made.
    fn open_outlet(
        &self,
        via: Via<F::Spec>,
    ) -> Result<(SeatOutlet, Body, Option<Unseated>), Error> {
        Ok(match via {
            Via::Stream => {
                let capacity = self.with(|h| h.config.queue_capacity);
                let (outlet, body) = StreamOutlet::open(capacity, Some(&self.streams))?;
                (SeatOutlet::Stream(outlet), Body::Stream(body), None)
            }
            Via::Socket(spec) => {
                let (outlet, socket, unseated) = self.open_socket(spec)?;
                (outlet, Body::Socket(socket), Some(unseated))
            }
            // The caller closes it when no seat is made (it may be tried more than once).
            Via::Feed(socket, seat) => {
                let outlet = SocketOutlet::opened_here(socket, seat, &self.streams);
                (SeatOutlet::Socket(outlet), Body::Fed, None)
            }
        })
    }

    /// Opens a stream for a seat, resuming after `last_seen`: from what this object
    /// holds, or with a replay asked of the parent.
    pub async fn seat(
        &self,
        seat: SeatKind<F::Filter>,
        last_seen: Option<EventId>,
        via: Via<F::Spec>,
    ) -> Result<(Body, EventId), Error> {
        self.count_start();
        let below_root = !self.with(|h| h.stream.path().is_root());
        if let (Some(after), true) = (last_seen, below_root) {
            // A node that starts for a resume takes its stream from a little before it:
            // the seats coming back with it (after a restart, they all do) are then
            // answered here, not each by a replay from above.
            let fresh = self.with(|h| h.stream.resume_after().is_none());
            if fresh && self.uplink.state.get() == LinkState::Down {
                let seed = EventId(after.0.saturating_sub(SEED_MARGIN));
                self.uplink.seed.set(Some(seed));
            }
        }
        self.ensure_uplink().await?;
        // A stream that ended is answered without opening a stream or a socket.
        let refused = self.with(|h| h.stream.refuse_ended(&seat, last_seen, now_ms()));
        if let Err(e) = refused {
            return ended::<F>(e, &seat).map(|body| (body, EventId(0)));
        }
        let (outlet, body, unseated) = self.open_outlet(via.clone())?;
        let joined = self.with(|h| {
            admit(h, &seat)?;
            Ok::<_, Error>(h.stream.join(seat.clone(), outlet, last_seen, now_ms()))
        })?;
        let position = match (joined, last_seen) {
            (Err(SubscribeError::NotCovered), Some(after)) => {
                return self.seat_replayed(seat, after, via).await;
            }
            (Err(e), _) => return ended::<F>(e, &seat).map(|body| (body, EventId(0))),
            (Ok(position), _) => position,
        };
        unseated.into_iter().for_each(Unseated::seated);
        self.arm_keep_alive().await?;
        Ok((body, position))
    }

    async fn seat_replayed(
        &self,
        seat: SeatKind<F::Filter>,
        after: EventId,
        via: Via<F::Spec>,
    ) -> Result<(Body, EventId), Error> {
        for _ in 0..REPLAY_ATTEMPTS {
            let through = self.with(|h| h.stream.holds_through());
            // Routes travel with the events: the engine gives each seat what is its (a
            // listener what its filter admits, a child everything).
            let (replay, upstream) = match self.ask_parent_replay(after, through).await {
                Err(Error::Ended(_)) => {
                    // The stream ended above: this node ends too; the root answers.
                    self.with(|h| {
                        h.stream.ended_elsewhere();
                        h.drop_storage_if_ended();
                    });
                    return ended::<F>(SubscribeError::Ended, &seat).map(|b| (b, EventId(0)));
                }
                asked => asked?,
            };
            let (outlet, body, unseated) = self.open_outlet(via.clone())?;
            let joined = self.with(|h| {
                admit(h, &seat)?;
                Ok::<_, Error>(h.stream.join_replayed(
                    seat.clone(),
                    outlet,
                    &replay,
                    upstream,
                    through,
                    now_ms(),
                ))
            })?;
            match joined {
                Ok(position) => {
                    unseated.into_iter().for_each(Unseated::seated);
                    self.arm_keep_alive().await?;
                    return Ok((body, position));
                }
                Err(SubscribeError::NotCovered) => continue,
                Err(e) => return ended::<F>(e, &seat).map(|body| (body, EventId(0))),
            }
        }
        Err(SubscribeError::NotCovered.into())
    }
}

/// A seat's admission by its face (a child object is always admitted).
fn admit<F: Face>(h: &mut Hosted<F>, seat: &SeatKind<F::Filter>) -> Result<(), Error> {
    match seat {
        SeatKind::Listener(filter) => F::admit(h, filter),
        SeatKind::Relay(_) => Ok(()),
    }
}

fn probe<F: Face>(h: &mut Hosted<F>) {
    h.stream.probe();
    F::settle(h);
}
