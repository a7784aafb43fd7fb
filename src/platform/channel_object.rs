//! The Durable Object that hosts one object of a channel: the channel's root (its
//! listeners' streams, its history in SQLite) or a node of its fan-out tree (listeners,
//! recent events in memory, and its stream from its parent), with a keep-alive alarm
//! while anyone listens. The Worker has validated every request before it gets here;
//! this object only reads the typed [`ChannelCall`]s of the contract.

mod uplink;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use worker::{durable_object, Delay, DurableObject, Env, Request, Response, State};

use super::contract::{ChannelCall, ChannelRequest, NODE_HEADER, PLACED_STATUS, POSITION_HEADER};
use super::cors;
use super::error::Error;
use super::host::{now_ms, Host};
use super::http;
use super::open_streams::OpenStreams;
use super::outlet::StreamOutlet;
use super::sql_log::SqlLog;
use crate::domain::{
    self, ChannelName, ChannelStats, Config, EventId, EventLog, Everyone, MemoryLog, Message,
    NodePath, Place, Region, SeatKind, SubscribeError,
};
use uplink::{LinkState, Uplink};

/// How long a node waits for its stream from its parent before it turns a listener away.
const UPLINK_WAIT: Duration = Duration::from_millis(5000);
const UPLINK_POLL: Duration = Duration::from_millis(5);
/// Times a node asks up again for a resume that moved on while the answer travelled.
const REPLAY_ATTEMPTS: usize = 3;
/// How far before the first resume it is asked for a fresh node starts its stream from
/// its parent, in events: listeners coming back with ids up to this much older are then
/// answered by the node itself.
const SEED_MARGIN: u64 = 100;
/// How long a node waits for a child's stats; a child that does not answer by then is
/// left out of them (and its failure logged).
const CHILD_STATS_WAIT: Duration = Duration::from_millis(3000);

type Log = Box<dyn EventLog>;

/// The object this is, once opened: its configuration and its state.
struct Hosted {
    config: Config,
    channel_name: ChannelName,
    channel: domain::Channel<StreamOutlet, Log>,
    /// The subtree's listeners as last reported to the parent.
    reported: u64,
}

impl Hosted {
    /// Logs a storage failure met after a publish was answered (under
    /// `PUBLISH_ACK=accepted` the events were sent but could not be kept).
    fn report_store_error(&mut self) {
        if let Some(e) = self.channel.take_store_error() {
            worker::console_error!("channel storage failed after answering: {e}");
        }
    }

    fn seated(&self) -> bool {
        self.channel.listeners() + self.channel.relays() > 0
    }
}

#[durable_object]
pub struct Channel {
    state: State,
    env: Env,
    host: Host<Hosted>,
    uplink: Rc<Uplink>,
    /// Listeners placed here whose seats are being made.
    arriving: Cell<usize>,
    streams: Rc<OpenStreams>,
}

impl Channel {
    /// Opens the object on first use: configuration and, on the root, stored history
    /// (read only; the tables appear with the first write).
    fn ensure_open(&self, channel_name: &ChannelName, node: &NodePath) -> Result<(), Error> {
        self.host.ensure_open(|| {
            let config = super::read_config(&self.env)?;
            let settings = (&config).into();
            let channel = if node.is_root() {
                let log: Log = Box::new(SqlLog::open(self.state.storage().sql())?);
                domain::Channel::new(settings, log)
            } else {
                let log: Log = Box::<MemoryLog>::default();
                domain::Channel::relayed(settings, node.clone(), log)
            };
            Ok(Hosted {
                config,
                channel_name: channel_name.clone(),
                channel,
                reported: 0,
            })
        })
    }

    fn with_hosted<T>(&self, f: impl FnOnce(&mut Hosted) -> T) -> T {
        self.host.with(f)
    }

    fn path(&self) -> NodePath {
        self.with_hosted(|h| h.channel.path().clone())
    }

    fn channel_name(&self) -> ChannelName {
        self.with_hosted(|h| h.channel_name.clone())
    }

    async fn serve(&self, call: ChannelCall) -> Result<Response, Error> {
        self.ensure_open(&call.channel, &call.node)?;
        match call.request {
            ChannelRequest::Listen { last_seen, region } => self.listen(last_seen, region).await,
            ChannelRequest::Relay { child, last_seen } => self.relay(child, last_seen).await,
            ChannelRequest::Replay { after, through } => self.replay(after, through).await,
            ChannelRequest::Report {
                child,
                listeners,
                handed,
            } => {
                self.with_hosted(|h| h.channel.report(&child, listeners, handed.as_ref()));
                Ok(Response::empty()?.with_status(204))
            }
            ChannelRequest::Publish(message) => self.publish(&message),
            ChannelRequest::PublishBatch(messages) => self.publish_batch(&messages),
            ChannelRequest::Stats => self.stats().await,
        }
    }

    async fn listen(&self, last_seen: Option<EventId>, region: Region) -> Result<Response, Error> {
        let path = self.path();
        if path.is_root() {
            let host = &self.host;
            host.probe_while_full(|h| h.channel.has_room(), |h| h.channel.probe())
                .await;
        }
        let arriving = self.arriving.get();
        if let Place::Child(node) = self.with_hosted(|h| h.channel.place(region, arriving)) {
            let headers = worker::Headers::new();
            headers.set(NODE_HEADER, &node.to_string())?;
            return Ok(Response::empty()?
                .with_status(PLACED_STATUS)
                .with_headers(headers));
        }
        // Held from now on, while its seat is made (which may wait for the uplink).
        self.arriving.set(arriving + 1);
        let seated = self.seat(SeatKind::Listener(Everyone), last_seen).await;
        self.arriving.set(self.arriving.get() - 1);
        let (body, _) = seated?;
        stream_response(body, NODE_HEADER, &path.to_string())
    }

    /// A child node takes its stream from this one.
    async fn relay(&self, child: NodePath, last_seen: Option<EventId>) -> Result<Response, Error> {
        let (body, position) = self.seat(SeatKind::Relay(child), last_seen).await?;
        stream_response(body, POSITION_HEADER, &position.to_string())
    }

    /// Opens a stream for a listener or a child, resuming after `last_seen`: from what
    /// this object holds, or with a replay asked of the parent.
    async fn seat(
        &self,
        seat: SeatKind,
        last_seen: Option<EventId>,
    ) -> Result<(worker::web_sys::ReadableStream, EventId), Error> {
        if let Some(after) = last_seen {
            // A node that starts for a resume takes its stream from a little before it:
            // the listeners coming back with it (after a restart, they all do) are then
            // answered here, not each by a replay from above.
            let fresh = self.with_hosted(|h| h.channel.resume_after().is_none());
            if fresh && self.uplink.state.get() == LinkState::Down {
                let seed = EventId(after.0.saturating_sub(SEED_MARGIN));
                self.uplink.seed.set(Some(seed));
            }
        }
        self.ensure_uplink().await?;
        let capacity = self.with_hosted(|h| h.config.queue_capacity);
        let (outlet, body) = StreamOutlet::open(capacity, &self.streams)?;
        let joined =
            self.with_hosted(|h| h.channel.join(seat.clone(), outlet, last_seen, now_ms()));
        let position = match (joined, last_seen) {
            (Err(SubscribeError::NotCovered), Some(after)) => {
                return self.seat_replayed(seat, after).await;
            }
            (joined, _) => joined?,
        };
        self.arm_keep_alive().await?;
        Ok((body, position))
    }

    async fn seat_replayed(
        &self,
        seat: SeatKind,
        after: EventId,
    ) -> Result<(worker::web_sys::ReadableStream, EventId), Error> {
        let capacity = self.with_hosted(|h| h.config.queue_capacity);
        for _ in 0..REPLAY_ATTEMPTS {
            let through = self.with_hosted(|h| h.channel.holds_through());
            // Routes travel with the events: the engine gives each seat what is its (a
            // listener what its filter admits, a child everything).
            let (replay, upstream) = self.ask_parent_replay(after, through).await?;
            let (outlet, body) = StreamOutlet::open(capacity, &self.streams)?;
            let joined = self.with_hosted(|h| {
                h.channel
                    .join_replayed(seat.clone(), outlet, &replay, upstream, through, now_ms())
            });
            match joined {
                Ok(position) => {
                    self.arm_keep_alive().await?;
                    return Ok((body, position));
                }
                Err(SubscribeError::NotCovered) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(SubscribeError::NotCovered.into())
    }

    /// The replay for a resume after `after`, through at least `through`: from here, or
    /// from above.
    async fn replay(&self, after: EventId, through: EventId) -> Result<Response, Error> {
        let answered = self.with_hosted(|h| h.channel.replay(after, through, now_ms()));
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
    async fn ask_parent_replay(
        &self,
        after: EventId,
        through: EventId,
    ) -> Result<(String, EventId), Error> {
        let parent = self
            .path()
            .parent()
            .ok_or_else(|| Error::Contract("a replay asked above the root".into()))?;
        let request = ChannelRequest::Replay { after, through };
        let call = ChannelCall::to_node(self.channel_name(), parent, request);
        let mut response = ask_node(&call, &self.env, 200).await?;
        let position = position_of(&response)?;
        Ok((response.text().await?, position))
    }

    /// Below the root: makes sure the stream from the parent is up (and has brought the
    /// parent's gap, when the node starts over at the parent's ids), so that a listener
    /// seated now gets every event from now on.
    async fn ensure_uplink(&self) -> Result<(), Error> {
        if self.with_hosted(|h| h.channel.path().is_root()) {
            return Ok(());
        }
        self.uplink.stop.set(false);
        if self.uplink.state.get() == LinkState::Down {
            self.uplink.state.set(LinkState::Connecting);
            let task = uplink::run(
                self.host.shared(),
                self.env.clone(),
                Rc::clone(&self.uplink),
                self.channel_name(),
                self.path(),
            );
            self.state.wait_until(task);
        }
        let started = now_ms();
        let up = || {
            self.uplink.state.get() == LinkState::Up && self.with_hosted(|h| h.channel.is_live())
        };
        while !up() {
            if now_ms() - started > UPLINK_WAIT.as_millis() as u64 {
                return Err(Error::TreeBusy("its stream from the tree is not up yet"));
            }
            Delay::from(UPLINK_POLL).await;
        }
        Ok(())
    }

    fn publish(&self, message: &Message) -> Result<Response, Error> {
        super::injected_fault(&message.data);
        let published = self.with_hosted(|h| h.channel.publish(message, now_ms()))?;
        self.schedule_flush();
        http::json(&published.to_json())
    }

    fn publish_batch(&self, messages: &[Message]) -> Result<Response, Error> {
        let published = self.with_hosted(|h| h.channel.publish_batch(messages, now_ms()))?;
        self.schedule_flush();
        http::json(&published.to_json())
    }

    /// This object's counters plus its children's subtrees (asked all at once).
    async fn stats(&self) -> Result<Response, Error> {
        let (mut stats, children) = self.with_hosted(|h| {
            let stats = h.channel.stats(now_ms());
            h.report_store_error();
            (stats, h.channel.relay_children())
        });
        let channel = self.channel_name();
        let asks = children.into_iter().map(|child| {
            let call = ChannelCall::to_node(channel.clone(), child, ChannelRequest::Stats);
            async move { child_stats(call, &self.env).await }
        });
        for below in futures_util::future::join_all(asks).await {
            match below {
                Ok(below) => stats.absorb(&below),
                Err(e) => worker::console_error!("a node's stats could not be read: {e}"),
            }
        }
        http::json(&stats.to_json(channel.as_str()))
    }

    /// Sends what was published to the listeners once the batch window has passed.
    fn schedule_flush(&self) {
        let window = self.with_hosted(|h| h.config.batch_window_ms);
        self.host.schedule_flush(window, |h| {
            h.channel.flush();
            h.report_store_error();
        });
    }

    async fn arm_keep_alive(&self) -> Result<(), Error> {
        let interval = self.with_hosted(|h| h.config.keep_alive_ms());
        self.host.arm_keep_alive(&self.state, interval).await
    }

    /// Below the root: tells the parent how many listeners this subtree holds, when that
    /// changed since the last report; a node that `emptied` hands up what it counted too,
    /// for the channel's stats to keep once it is gone.
    async fn report_to_parent(&self, emptied: bool) {
        let (path, subtree, reported) = self.with_hosted(|h| {
            (
                h.channel.path().clone(),
                h.channel.subtree_listeners(),
                h.reported,
            )
        });
        let Some(parent) = path.parent() else {
            return;
        };
        if subtree == reported && !emptied {
            return;
        }
        let handed = emptied.then(|| self.with_hosted(|h| h.channel.hand_up()));
        let report = ChannelRequest::Report {
            child: path,
            listeners: subtree,
            handed,
        };
        let call = ChannelCall::to_node(self.channel_name(), parent, report);
        match ask_node(&call, &self.env, 204).await {
            Ok(_) => self.with_hosted(|h| h.reported = subtree),
            Err(e) => {
                // Kept here, to be handed up with the next report.
                if let Some(handed) = handed {
                    self.with_hosted(|h| h.channel.hand_back(&handed));
                }
                worker::console_error!("a node could not report to its parent: {e}");
            }
        }
    }
}

/// An event stream's response, with one header of the tree's contract.
fn stream_response(
    body: worker::web_sys::ReadableStream,
    header: &str,
    value: &str,
) -> Result<Response, Error> {
    let headers = http::event_stream_headers()?;
    headers.set(header, value)?;
    Ok(Response::builder()
        .with_status(200)
        .with_headers(headers)
        .stream(body))
}

/// Sends a call to another node of the tree, and takes its answer when it has the status
/// the call expects (`expected`: 200 for a stream, a replay or stats, 204 for a report).
/// A node that cannot be reached, or is busy, is one to try again soon: whoever this node
/// answers gets a 503 with `Retry-After`.
async fn ask_node(call: &ChannelCall, env: &Env, expected: u16) -> Result<Response, Error> {
    let response = match call.send(env).await {
        Ok(response) => response,
        Err(e) => {
            worker::console_error!("node {} could not be reached: {e}", call.node);
            return Err(Error::TreeBusy("a node above cannot be reached"));
        }
    };
    match response.status_code() {
        status if status == expected => Ok(response),
        503 => Err(Error::TreeBusy("a node above is busy")),
        status => Err(Error::Contract(format!("a node above answered {status}"))),
    }
}

fn position_of(response: &Response) -> Result<EventId, Error> {
    response
        .headers()
        .get(POSITION_HEADER)?
        .and_then(|p| EventId::parse(&p).ok())
        .ok_or_else(|| Error::Contract("a stream without its position".into()))
}

async fn child_stats(call: ChannelCall, env: &Env) -> Result<ChannelStats, Error> {
    let ask = async {
        let mut response = ask_node(&call, env, 200).await?;
        let value: serde_json::Value = response.json().await?;
        ChannelStats::from_json(&value).ok_or_else(|| Error::Contract("a node's stats".into()))
    };
    let wait = Delay::from(CHILD_STATS_WAIT);
    match futures_util::future::select(std::pin::pin!(ask), wait).await {
        futures_util::future::Either::Left((answer, _)) => answer,
        futures_util::future::Either::Right(_) => Err(Error::TreeBusy("a node's stats are late")),
    }
}

impl DurableObject for Channel {
    fn new(state: State, env: Env) -> Self {
        Channel {
            env,
            host: Host::new(),
            uplink: Rc::new(Uplink::default()),
            arriving: Cell::new(0),
            streams: Rc::new(OpenStreams::claim(&state)),
            state,
        }
    }

    /// Every answer, errors too, carries the CORS header the Worker asked for, so that
    /// the Worker passes it on untouched.
    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let call = match ChannelCall::read(&mut req).await {
            Ok(call) => call,
            Err(e) => return e.to_response(),
        };
        let allow_origin = call.allow_origin.clone();
        let mut response = match self.serve(call).await {
            Ok(response) => response,
            Err(e) => e.to_response()?,
        };
        for (name, value) in cors::CHANNELS.headers(allow_origin) {
            response.headers_mut().set(name, &value)?;
        }
        Ok(response)
    }

    /// The keep-alive tick, several times per heartbeat interval while anyone listens.
    /// Below the root it also reports the subtree's audience, and lets the stream from
    /// the parent go once no one is left.
    async fn alarm(&self) -> worker::Result<Response> {
        self.host.keep_alive_fired();
        if !self.host.is_open() {
            return Response::empty();
        }
        let seated = self.with_hosted(|h| {
            h.channel.keep_alive(now_ms());
            h.report_store_error();
            h.seated()
        });
        self.report_to_parent(!seated).await;
        if seated {
            if let Err(e) = self.arm_keep_alive().await {
                return e.to_response();
            }
        } else {
            self.uplink.stop.set(true);
        }
        Response::empty()
    }
}
