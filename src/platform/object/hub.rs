//! The Mercure face: the `Hub` Durable Object class, one per object of the hub's tree.
//! Its seats are subscribers that filter by their subscriptions and grants; it adds
//! subscribing (compiling the matchers the Worker verified), publishing updates (at the
//! root), the subscriptions API (at the root, gathered over the tree), subscription
//! events (published at the root for arrivals and departures anywhere) and token expiry.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use worker::{durable_object, DurableObject, Env, Headers, Request, Response, State};
use worker::{WebSocket, WebSocketIncomingMessage};

use super::calls::{ask_node, position_of};
use super::{Face, Hosted, Placed, StreamObject, Via};
use crate::domain::hub::{self, Cursor, HubUpdate, Resolved};
use crate::domain::mercure::listing;
use crate::domain::mercure::subscribe::compile;
use crate::domain::mercure::subscriber::Subscriber;
use crate::domain::mercure::subscriptions::Subscription;
use crate::domain::mercure::{
    metadata_url, ApiPath, Grants, GrantsSpec, MatcherBudget, Update, EARLIEST,
};
use crate::domain::stream::Route;
use crate::domain::{Config, EventId, Region, SeatKind, StreamSettings, StreamStats};
use crate::platform::contract::{
    Delivery, StreamCall, StreamRequest, SubscriberCall, SubscriptionsCall, Target, UpdateCall,
    POSITION_HEADER, SOCKET_GONE,
};
use crate::platform::error::{Audience, Challenge, Error, HubRefusal};
use crate::platform::host::{now_ms, wait_until};
use crate::platform::{injected_fault, Fault};

/// The hub's seats and rules.
pub(crate) struct Mercure;

impl Face for Mercure {
    type Filter = Subscriber;
    const AUDIENCE: Audience = Audience::Hub;
    type State = Announcing;
    type Spec = SubscriberCall;

    /// Compiles the subscriber again, as when it subscribed (its token and matchers were
    /// verified then; an expired token ends its stream at the next deadline).
    fn restore(h: &mut Hosted<Self>, spec: SubscriberCall) -> Result<Subscriber, Error> {
        compile_subscriber(&h.config, spec)
    }

    fn settings(config: &Config) -> StreamSettings {
        hub::settings(config.into())
    }

    /// The headers every hub stream carries (§6.4).
    fn stream_headers() -> Result<Headers, Error> {
        let headers = Headers::new();
        headers.set("Content-Type", "text/event-stream")?;
        headers.set(
            "Cache-Control",
            "private, no-cache, no-store, must-revalidate, max-age=0",
        )?;
        headers.set("X-Accel-Buffering", "no")?;
        Ok(headers)
    }

    /// Flushes, and announces the end of the subscriptions of subscribers that left (which
    /// is flushed in turn, and may cut more), until nothing is left to send; below the
    /// root, the announcements are sent on their way to it.
    fn settle(h: &mut Hosted<Self>) {
        if let Some(updates) = settle_here(h) {
            send_later(updates, h.env.clone(), &h.face);
        }
    }

    fn stats_json(stats: &StreamStats, _target: &Target) -> serde_json::Value {
        stats.to_hub_json()
    }

    /// The subscriber's matchers fit beside those of the subscribers seated here.
    fn admit(h: &mut Hosted<Self>, subscriber: &Subscriber) -> Result<(), Error> {
        let max = h.config.mercure.hub_matcher_bytes;
        Ok(h.stream.admit(subscriber, max)?)
    }

    /// Ends the streams whose token expired (§6.8).
    fn before_keep_alive(h: &mut Hosted<Self>, now_ms: u64) {
        h.stream.close_where(|s| s.expired(now_ms));
    }

    /// The earliest token expiry among the seats here.
    fn next_deadline(h: &mut Hosted<Self>) -> Option<u64> {
        h.stream
            .filters()
            .filter_map(Subscriber::expires_at_ms)
            .min()
    }
}

/// [`Mercure::settle`]'s work on this object; below the root, the departures'
/// announcements, for the caller to send to the root.
fn settle_here(h: &mut Hosted<Mercure>) -> Option<Vec<UpdateCall>> {
    loop {
        h.stream.flush();
        let ended: Vec<Subscription> = h
            .stream
            .take_departed()
            .iter()
            .flat_map(|s| s.subscriptions(false))
            .collect();
        match announce(h, ended) {
            Announced::Published => continue,
            Announced::Nothing => return None,
            Announced::ToRoot(updates) => return Some(updates),
        }
    }
}

/// What [`announce`] did.
enum Announced {
    Nothing,
    /// Published here, on the root: to flush.
    Published,
    /// Below the root: the updates for the root to publish.
    ToRoot(Vec<UpdateCall>),
}

/// A node's announcements on their way to the root, sent from work that runs between
/// requests: a listing waits for them, so that the root has published the end of every
/// subscription the listing leaves out.
#[derive(Default)]
pub(crate) struct Announcing(Rc<Cell<usize>>);

/// How long a listing waits for announcements on their way to the root.
const ANNOUNCING_WAIT: Duration = Duration::from_millis(3000);
const ANNOUNCING_POLL: Duration = Duration::from_millis(5);

/// Sends announcements to the root from work that runs between requests.
fn send_later(updates: Vec<UpdateCall>, env: Env, announcing: &Announcing) {
    let in_flight = Rc::clone(&announcing.0);
    in_flight.set(in_flight.get() + 1);
    worker::wasm_bindgen_futures::spawn_local(async move {
        tell_root(updates, &env).await;
        in_flight.set(in_flight.get() - 1);
    });
}

/// Has the root publish announcements; a failure is logged (the subscribers they are
/// about keep their streams).
async fn tell_root(updates: Vec<UpdateCall>, env: &Env) {
    let call = StreamCall::new(Target::Hub, StreamRequest::PublishUpdates(updates));
    let failure = match call.send(env).await {
        Ok(response) if response.status_code() == 200 => return,
        Ok(response) => format!("the root answered {}", response.status_code()),
        Err(e) => e.to_string(),
    };
    worker::console_error!("subscription events did not reach the root: {failure}");
}

/// The private updates that announce subscriptions starting or ending (§7.2), when they
/// are on: published here on the root; below it, to be published by the root, whose
/// order they take.
fn announce(h: &mut Hosted<Mercure>, subscriptions: Vec<Subscription>) -> Announced {
    if !h.config.mercure.subscriptions || subscriptions.is_empty() {
        return Announced::Nothing;
    }
    let mut updates = Vec::with_capacity(subscriptions.len());
    for subscription in subscriptions {
        match crate::platform::hub::random_id() {
            Ok(id) => updates.push(UpdateCall {
                update: subscription.event(),
                id,
            }),
            Err(e) => worker::console_error!("a subscription event has no id: {e}"),
        }
    }
    if h.stream.path().is_root() {
        let now = now_ms();
        for UpdateCall { update, id } in updates {
            if let Err(e) = h.stream.publish_update(&hub_update(update, id), now) {
                worker::console_error!("a subscription event was not published: {e}");
            }
        }
        return Announced::Published;
    }
    Announced::ToRoot(updates)
}

fn hub_update(update: Update, id: String) -> HubUpdate {
    HubUpdate {
        id,
        route: Route {
            topics: update.topics,
            private: update.private,
        },
        event_type: update.event_type,
        retry_ms: update.retry_ms,
        data: update.data,
    }
}

#[durable_object]
pub struct Hub {
    object: StreamObject<Mercure>,
}

impl Hub {
    async fn serve(&self, req: &mut Request) -> Result<Response, Error> {
        let call = StreamCall::read(req).await?;
        if call.target != Target::Hub {
            return Err(Error::Contract("a channel call sent to the hub".into()));
        }
        self.object.ensure_open(&call.target, &call.node)?;
        let root_only = matches!(
            call.request,
            StreamRequest::PublishUpdates(_)
                | StreamRequest::Subscriptions(_)
                | StreamRequest::FindKey(_)
        );
        if root_only && !call.node.is_root() {
            return Err(Error::Contract(
                "a call for the hub's root sent to a node".into(),
            ));
        }
        match call.request {
            StreamRequest::Subscribe {
                subscriber,
                region,
                delivery,
                after_seq,
            } => {
                self.subscribe(subscriber, region, delivery, after_seq)
                    .await
            }
            StreamRequest::PublishUpdates(updates) => self.publish(updates).await,
            StreamRequest::Subscriptions(asked) => self.subscriptions(asked).await,
            StreamRequest::Subscribers => {
                let active = self.active_subscriptions().await;
                Ok(Response::from_json(&active)?)
            }
            StreamRequest::FindKey(key) => {
                let found = self.object.with(|h| h.stream.find_key(&key, now_ms()))?;
                let seq = found.ok_or(Error::NotFound)?;
                let mut response = Response::empty()?;
                response
                    .headers_mut()
                    .set(POSITION_HEADER, &seq.to_string())?;
                Ok(response)
            }
            other => self.object.serve_tree(other).await,
        }
    }

    /// Seats a subscriber here or sends it further down the tree; on its stream, the
    /// `retry:` field, then the kept updates it admits after its cursor, then live ones.
    async fn subscribe(
        &self,
        call: SubscriberCall,
        region: Region,
        delivery: Delivery,
        after_seq: Option<EventId>,
    ) -> Result<Response, Error> {
        let max_id_bytes = self.object.with(|h| h.config.mercure.max_id_bytes);
        let cursor = call
            .cursor
            .as_deref()
            .map(|c| Cursor::parse(c, max_id_bytes));
        let _arrival = match self.object.placed(region).await? {
            Placed::Below(response) => return Ok(response),
            Placed::Here(arrival) => arrival,
        };
        let via = match delivery {
            Delivery::Stream => Via::Stream,
            Delivery::Socket => Via::Socket(SubscriberCall {
                cursor: None,
                ..call.clone()
            }),
        };
        let subscriber = self.object.with(|h| compile_subscriber(&h.config, call))?;
        // Refused before anything is awaited for it; checked again as its seat is made.
        self.object.with(|h| Mercure::admit(h, &subscriber))?;
        let resolved = match after_seq {
            // Attached again by the Worker that holds the stream: on from where it was.
            Some(seq) => Resolved {
                after: Some(seq),
                last_event_id: None,
            },
            None => self.resolve(cursor.as_ref()).await?,
        };
        let expires_at = subscriber.expires_at_ms();
        let started = subscriber.subscriptions(true);
        let seat = SeatKind::Listener(subscriber);
        let (body, position) = self.object.seat(seat, resolved.after, via.clone()).await?;
        match self.object.with(|h| announce(h, started)) {
            Announced::Published => self.object.schedule_flush(),
            // Taken by the root before this answers: once a subscriber has its stream,
            // its subscriptions are in the hub's history (and in the API's ETag).
            Announced::ToRoot(updates) => tell_root(updates, &self.object.env).await,
            Announced::Nothing => {}
        }
        match (expires_at, via) {
            // A timer would keep the object awake until then; the alarm lets it sleep.
            (Some(at), Via::Socket(_) | Via::Feed(..)) => self.object.arm_deadline(at).await?,
            (Some(at), Via::Stream) => self.close_expired_at(at),
            (None, _) => {}
        }
        let headers = Mercure::stream_headers()?;
        if let Some(id) = resolved.last_event_id {
            headers.set("Last-Event-ID", &id)?;
            headers.set("Mercure-Last-Event-ID", &id)?;
        }
        self.object.stream_response(body, position, headers)
    }

    /// Where a subscriber's cursor starts it: resolved here, or, for an id a node does
    /// not keep, by the root.
    async fn resolve(&self, cursor: Option<&Cursor>) -> Result<Resolved, Error> {
        if let Some(resolved) = self.object.with(|h| h.stream.resolve(cursor, now_ms()))? {
            return Ok(resolved);
        }
        let Some(Cursor::After(key)) = cursor else {
            return Err(Error::Contract("only an id is resolved by the root".into()));
        };
        let call = StreamCall::new(Target::Hub, StreamRequest::FindKey(key.clone()));
        let response = ask_node(&call, &self.object.env, &[200, 404]).await?;
        let seq = match response.status_code() {
            404 => None,
            _ => Some(position_of(&response)?),
        };
        Ok(Resolved::after_key(key, seq))
    }

    async fn publish(&self, updates: Vec<UpdateCall>) -> Result<Response, Error> {
        let faults = updates.iter().map(|u| injected_fault(&u.update.data));
        if faults.collect::<Vec<_>>().contains(&Fault::Restart) {
            return Err(self.object.forget());
        }
        let mut last = None;
        self.object.with(|h| {
            for UpdateCall { update, id } in updates {
                h.stream
                    .publish_update(&hub_update(update, id.clone()), now_ms())?;
                last = Some(id);
            }
            Ok::<_, Error>(())
        })?;
        self.object.published().await?;
        let headers = Headers::new();
        headers.set("Content-Type", "text/plain; charset=utf-8")?;
        Ok(Response::ok(last.unwrap_or_default())?.with_headers(headers))
    }

    /// The active subscriptions of this object's subscribers and of its subtree's. The
    /// subscribers known to be gone are left out, and the end of their subscriptions is
    /// published (at the root) before this answers, so that a listing and the hub's last
    /// event id, which tags it, always go together.
    async fn active_subscriptions(&self) -> Vec<Subscription> {
        let (mut active, to_root) = self.object.with(|h| {
            h.stream.sweep();
            let to_root = settle_here(h);
            let active: Vec<Subscription> = h
                .stream
                .filters()
                .flat_map(|s| s.subscriptions(true))
                .collect();
            (active, to_root)
        });
        if let Some(updates) = to_root {
            tell_root(updates, &self.object.env).await;
        }
        let in_flight = self.object.with(|h| Rc::clone(&h.face.0));
        wait_until(|| in_flight.get() == 0, ANNOUNCING_WAIT, ANNOUNCING_POLL).await;
        for below in self.object.gather(StreamRequest::Subscribers).await {
            match serde_json::from_value::<Vec<Subscription>>(below) {
                Ok(below) => active.extend(below),
                Err(e) => worker::console_error!("a node's subscribers could not be read: {e}"),
            }
        }
        active
    }

    /// The subscriptions API (§7.3 to §7.5), over the whole tree.
    async fn subscriptions(&self, asked: SubscriptionsCall) -> Result<Response, Error> {
        let limits = self.object.with(|h| h.config.mercure.matcher_limits);
        let base = &asked.base;
        let grants = compile_grants(asked.grants, &mut MatcherBudget::new(limits), base)?;
        let active = self.active_subscriptions().await;
        let last_event_id = self
            .object
            .with(|h| h.stream.last_event_id())?
            .unwrap_or_else(|| EARLIEST.into());
        answer_subscriptions(
            &asked.remainder,
            &asked.raw_path,
            base,
            &grants,
            &active,
            &last_event_id,
            asked.if_none_match,
        )
    }

    /// Ends the streams whose token expires at `at_ms`, at that instant (§6.8).
    fn close_expired_at(&self, at_ms: u64) {
        let delay = Duration::from_millis(at_ms.saturating_sub(now_ms()));
        self.object.host.later(&self.object.state, delay, |h| {
            Mercure::before_keep_alive(h, now_ms());
            Mercure::settle(h);
        });
    }
}

/// Compiles a subscriber's token and query matchers, in that order, within one budget:
/// the token's fitted it alone when the Worker verified it, so an overrun names the
/// query's matcher that did not fit.
fn compile_subscriber(config: &Config, call: SubscriberCall) -> Result<Subscriber, Error> {
    let mut budget = MatcherBudget::new(config.mercure.matcher_limits);
    let grants = call
        .grants
        .map(|g| compile_grants(g, &mut budget, &call.base))
        .transpose()?;
    let matchers = compile(&call.specs, &call.base, &mut budget)?;
    Ok(Subscriber::new(
        call.subscriber_id,
        matchers,
        grants,
        &call.base,
    ))
}

fn answer_subscriptions(
    remainder: &str,
    raw_path: &str,
    base: &str,
    grants: &Grants,
    active: &[Subscription],
    last_event_id: &str,
    if_none_match: Option<String>,
) -> Result<Response, Error> {
    let path = ApiPath::parse(remainder, |id| active.iter().any(|s| s.subscriber == id))
        .map_err(|e| Error::BadPath(e.to_string()))?;
    if !path.is_authorized(grants, raw_path) {
        return Err(Error::Hub(HubRefusal {
            kind: Challenge::InsufficientScope,
            metadata_url: metadata_url(base),
        }));
    }
    let listing = listing::answer(
        &path,
        path.family(grants.generation()),
        raw_path,
        base,
        last_event_id,
        active,
        if_none_match.as_deref(),
    )
    .map_err(|_| Error::NotFound)?;
    let headers = Headers::new();
    for (name, value) in &listing.headers {
        headers.set(name, value)?;
    }
    let response = match listing.body {
        Some(body) => Response::ok(body)?,
        None => Response::empty()?,
    };
    Ok(response.with_status(listing.status).with_headers(headers))
}

/// Compiles grants the Worker verified (checking, not compiling, their matchers). Grants
/// whose matchers cannot be compiled within the limits are an invalid token, as the Worker
/// answers any other bad token (§3.8).
fn compile_grants(
    grants: GrantsSpec,
    budget: &mut MatcherBudget,
    base: &str,
) -> Result<Grants, Error> {
    grants.compile(budget).map_err(|e| {
        worker::console_log!("hub token refused: its matchers: {e}");
        Error::Hub(HubRefusal {
            kind: Challenge::InvalidToken,
            metadata_url: metadata_url(base),
        })
    })
}

impl DurableObject for Hub {
    fn new(state: State, env: Env) -> Self {
        Hub {
            object: StreamObject::new(state, env),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        match self.serve(&mut req).await {
            Ok(response) => Ok(response),
            Err(e) => e.to_response(),
        }
    }

    /// The keep-alive tick: comments, stalled subscribers cut, expired tokens ended.
    async fn alarm(&self) -> worker::Result<Response> {
        self.object.alarm().await
    }

    /// A node's feed from its parent; nothing is expected over a seat's socket.
    async fn websocket_message(
        &self,
        socket: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> worker::Result<()> {
        self.object.socket_message(socket, message).await
    }

    async fn websocket_close(
        &self,
        socket: WebSocket,
        code: usize,
        reason: String,
        _was_clean: bool,
    ) -> worker::Result<()> {
        self.object.socket_closed(socket, code, &reason).await
    }

    async fn websocket_error(
        &self,
        socket: WebSocket,
        _error: worker::Error,
    ) -> worker::Result<()> {
        self.object
            .socket_closed(socket, SOCKET_GONE.into(), "")
            .await
    }
}
