//! The one contract between the Worker and its Durable Objects: the requests each object
//! understands, how the Worker sends one (`send`) and how the object reads it back
//! (`read`). Both ends live here and are tested as pairs: [`ChannelCall`] for a channel's
//! object, [`HubCall`] for the Mercure hub's.
//!
//! On the wire a call is an internal HTTP request (a stub routes by object, not by URL,
//! so the origin is never resolved). The Worker has already validated everything, so a
//! publish travels as its data in the body and its type and retry in the query: the
//! object parses no JSON.
//!
//! A channel's objects form a tree (see [`crate::domain::tree`]); a call names the node
//! it is for (the root unless said). Nodes talk to each other over the same contract: a
//! child takes its stream from its parent with [`ChannelRequest::Relay`], asks it for a
//! resume it does not hold with [`ChannelRequest::Replay`], and reports its audience
//! with [`ChannelRequest::Report`]. Two answers carry more than a body: a node that sends
//! a listener further down answers [`PLACED_STATUS`] with the node in [`NODE_HEADER`],
//! and a stream or replay says the id it goes on after in [`POSITION_HEADER`].

use std::cell::RefCell;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use worker::{Env, Method, Request, RequestInit, Response, Url};

use super::error::Error;
use crate::domain::form;
use crate::domain::mercure::{GrantsSpec, TopicSpec, Update};
use crate::domain::{ChannelName, Counters, EventId, Message, NodePath, Region};

/// The Durable Object namespace bindings (wrangler.toml `[[durable_objects.bindings]]`).
pub const CHANNEL_BINDING: &str = "CHANNEL";
pub const HUB_BINDING: &str = "HUB";
/// The one hub object's name.
const HUB_NAME: &str = "hub";
const HUB_URL: &str = "https://hub.internal/";

const ORIGIN: &str = "https://channel.internal";
const LISTEN: &str = "/listen";
const PUBLISH: &str = "/publish";
const PUBLISH_BATCH: &str = "/publish-batch";
const STATS: &str = "/stats";
const RELAY: &str = "/relay";
const REPLAY: &str = "/replay";
const REPORT: &str = "/report";
const CHANNEL: &str = "channel";
const NODE: &str = "node";
const REGION: &str = "region";
const CHILD: &str = "child";
const LISTENERS: &str = "listeners";
const THROUGH: &str = "through";
const DELIVERED: &str = "delivered";
const DROPPED_SLOW: &str = "droppedSlow";
const DROPPED_GONE: &str = "droppedGone";
const LAST_EVENT_ID: &str = "lastEventId";
const EVENT: &str = "event";
const RETRY: &str = "retry";
const ALLOW_ORIGIN: &str = "allowOrigin";

/// The status of a listen that a node sends further down its tree: not a stream.
pub const PLACED_STATUS: u16 = 307;
/// The node a listen goes to next ([`PLACED_STATUS`]), or, on a stream, the node that
/// serves it.
pub const NODE_HEADER: &str = "Sse-Node";
/// On a stream or a replay: the id after which it goes on.
pub const POSITION_HEADER: &str = "Sse-Position";
/// The most nodes a listen walks through before it is seated (a tree is never deeper).
const MAX_HOPS: usize = crate::domain::tree::MAX_DEPTH + 1;

/// How long a Worker goes straight to the region head the root sent it to.
pub const HEAD_MEMORY_MS: f64 = 10_000.0;
/// Most channels and regions whose heads a Worker remembers (the oldest go first).
const HEADS_REMEMBERED: usize = 1024;

type HeadKey = (String, Region);

thread_local! {
    /// Region heads the root named, per channel and region, with when that was.
    static HEADS: RefCell<HashMap<HeadKey, (NodePath, f64)>> = RefCell::new(HashMap::new());
}

fn known_head(channel: &ChannelName, region: Region) -> Option<NodePath> {
    let now = worker::Date::now().as_millis() as f64;
    let key = (channel.as_str().to_string(), region);
    HEADS.with(|heads| {
        let mut heads = heads.borrow_mut();
        match heads.get(&key) {
            Some((head, at)) if now - at < HEAD_MEMORY_MS => Some(head.clone()),
            Some(_) => {
                heads.remove(&key);
                None
            }
            None => None,
        }
    })
}

fn remember_head(channel: &ChannelName, region: Region, head: &NodePath) {
    let now = worker::Date::now().as_millis() as f64;
    HEADS.with(|heads| {
        let mut heads = heads.borrow_mut();
        if heads.len() >= HEADS_REMEMBERED {
            let oldest = heads
                .iter()
                .min_by(|a, b| (a.1).1.total_cmp(&(b.1).1))
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                heads.remove(&oldest);
            }
        }
        let key = (channel.as_str().to_string(), region);
        heads.insert(key, (head.clone(), now));
    });
}

/// What a channel's object is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelRequest {
    /// Open a stream, resuming after `last_seen` when given.
    Listen {
        last_seen: Option<EventId>,
        /// Where the listener is, for a node to pick a child near it.
        region: Region,
    },
    /// A child node takes its stream (resuming after `last_seen`, as a listener would).
    Relay {
        child: NodePath,
        last_seen: Option<EventId>,
    },
    /// The replay for a resume after `after`, as a body, for a child that does not hold
    /// it; it must bring the child at least to `through`. Each event comes as objects
    /// write to each other (its publication time, and a routed event's sequence number
    /// and route): the child gives each of its seats what is theirs.
    Replay { after: EventId, through: EventId },
    /// A child's subtree holds `listeners` listeners; a child that emptied hands up what
    /// it counted (`handed`), for the channel's stats to keep.
    Report {
        child: NodePath,
        listeners: u64,
        handed: Option<Counters>,
    },
    /// Publish a validated message.
    Publish(Message),
    /// Publish validated messages together (each with its own id, stored at once, sent
    /// to each listener as one write).
    PublishBatch(Vec<Message>),
    /// Report the counters of the object's subtree (the whole channel's, at the root).
    Stats,
}

/// A request addressed to one object of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelCall {
    pub channel: ChannelName,
    pub node: NodePath,
    /// The `Access-Control-Allow-Origin` the answer carries, set by the object on its
    /// response so that the Worker returns it untouched (a Durable Object's response has
    /// immutable headers: adding one would mean copying them).
    pub allow_origin: Option<String>,
    pub request: ChannelRequest,
}

/// A call as it travels: method, URL and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wire {
    pub method: Method,
    pub url: Url,
    pub body: Option<String>,
}

impl ChannelCall {
    /// A call to the channel's root.
    pub fn new(channel: ChannelName, request: ChannelRequest) -> Self {
        Self::to_node(channel, NodePath::root(), request)
    }

    pub fn to_node(channel: ChannelName, node: NodePath, request: ChannelRequest) -> Self {
        ChannelCall {
            channel,
            node,
            allow_origin: None,
            request,
        }
    }

    /// The call, its answer allowed to `allow_origin` by CORS.
    pub fn allowing(mut self, allow_origin: Option<String>) -> Self {
        self.allow_origin = allow_origin;
        self
    }

    /// The call's wire form.
    pub fn to_wire(&self) -> Wire {
        let (method, path) = match &self.request {
            ChannelRequest::Listen { .. } => (Method::Get, LISTEN),
            ChannelRequest::Publish(_) => (Method::Post, PUBLISH),
            ChannelRequest::PublishBatch(_) => (Method::Post, PUBLISH_BATCH),
            ChannelRequest::Stats => (Method::Get, STATS),
            ChannelRequest::Relay { .. } => (Method::Get, RELAY),
            ChannelRequest::Replay { .. } => (Method::Get, REPLAY),
            ChannelRequest::Report { .. } => (Method::Post, REPORT),
        };
        let mut url = Url::parse(ORIGIN).expect("the internal origin is a URL");
        url.set_path(path);
        let mut body = None;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair(CHANNEL, self.channel.as_str());
            if !self.node.is_root() {
                query.append_pair(NODE, &self.node.to_string());
            }
            if let Some(origin) = &self.allow_origin {
                query.append_pair(ALLOW_ORIGIN, origin);
            }
            match &self.request {
                ChannelRequest::Listen { last_seen, region } => {
                    if let Some(id) = last_seen {
                        query.append_pair(LAST_EVENT_ID, &id.to_string());
                    }
                    query.append_pair(REGION, region.code());
                }
                ChannelRequest::Relay { child, last_seen } => {
                    query.append_pair(CHILD, &child.to_string());
                    if let Some(id) = last_seen {
                        query.append_pair(LAST_EVENT_ID, &id.to_string());
                    }
                }
                ChannelRequest::Replay { after, through } => {
                    query.append_pair(LAST_EVENT_ID, &after.to_string());
                    query.append_pair(THROUGH, &through.to_string());
                }
                ChannelRequest::Report {
                    child,
                    listeners,
                    handed,
                } => {
                    query.append_pair(CHILD, &child.to_string());
                    query.append_pair(LISTENERS, &listeners.to_string());
                    if let Some(handed) = handed {
                        query.append_pair(DELIVERED, &handed.delivered.to_string());
                        query.append_pair(DROPPED_SLOW, &handed.dropped_slow.to_string());
                        query.append_pair(DROPPED_GONE, &handed.dropped_gone.to_string());
                    }
                    body = Some(String::new());
                }
                ChannelRequest::Publish(message) => {
                    if let Some(event_type) = &message.event_type {
                        query.append_pair(EVENT, event_type);
                    }
                    if let Some(retry) = message.retry_ms {
                        query.append_pair(RETRY, &retry.to_string());
                    }
                    body = Some(message.data.clone());
                }
                ChannelRequest::PublishBatch(messages) => {
                    // Already validated: a compact array of [data, type, retry] to carry them.
                    let rows: Vec<(&str, Option<&str>, Option<u64>)> = messages
                        .iter()
                        .map(|m| (m.data.as_str(), m.event_type.as_deref(), m.retry_ms))
                        .collect();
                    body = Some(serde_json::to_string(&rows).expect("rows are JSON"));
                }
                ChannelRequest::Stats => {}
            }
        }
        Wire { method, url, body }
    }

    /// Reads a call back from its wire form.
    pub fn from_wire(wire: Wire) -> Result<ChannelCall, Error> {
        let bad = |what: &str| Error::Contract(what.to_string());
        // Written by `to_wire`, read back with the one form decoder; every parameter is
        // read, so the query is decoded once.
        let query = form::pairs(wire.url.query().unwrap_or("").as_bytes())
            .map_err(|e| bad(&e.to_string()))?;
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let channel = ChannelName::parse(&param(CHANNEL).ok_or_else(|| bad("no channel"))?)
            .map_err(|e| bad(&e.to_string()))?;
        let path_param = |name: &str| {
            param(name)
                .map(|p| NodePath::parse(&p).map_err(|_| bad(&format!("bad {name}"))))
                .transpose()
        };
        let node = path_param(NODE)?.unwrap_or_else(NodePath::root);
        let child = || path_param(CHILD)?.ok_or_else(|| bad("no child"));
        let last_seen = || {
            param(LAST_EVENT_ID)
                .map(|id| EventId::parse(&id))
                .transpose()
                .map_err(|_| bad("bad lastEventId"))
        };
        let request = match (wire.method, wire.url.path()) {
            (Method::Get, LISTEN) => ChannelRequest::Listen {
                last_seen: last_seen()?,
                region: param(REGION)
                    .and_then(|r| Region::parse(&r))
                    .ok_or_else(|| bad("bad region"))?,
            },
            (Method::Get, RELAY) => ChannelRequest::Relay {
                child: child()?,
                last_seen: last_seen()?,
            },
            (Method::Get, REPLAY) => ChannelRequest::Replay {
                after: last_seen()?.ok_or_else(|| bad("replay without lastEventId"))?,
                through: param(THROUGH)
                    .and_then(|t| EventId::parse(&t).ok())
                    .ok_or_else(|| bad("replay without through"))?,
            },
            (Method::Post, REPORT) => {
                let count = |name: &str| {
                    param(name)
                        .map(|n| n.parse::<u64>().map_err(|_| bad(&format!("bad {name}"))))
                        .transpose()
                };
                let handed = match (
                    count(DELIVERED)?,
                    count(DROPPED_SLOW)?,
                    count(DROPPED_GONE)?,
                ) {
                    (Some(delivered), Some(dropped_slow), Some(dropped_gone)) => Some(Counters {
                        published: 0,
                        delivered,
                        dropped_slow,
                        dropped_gone,
                    }),
                    (None, None, None) => None,
                    _ => return Err(bad("a report's counts come together")),
                };
                ChannelRequest::Report {
                    child: child()?,
                    listeners: count(LISTENERS)?.ok_or_else(|| bad("bad listeners"))?,
                    handed,
                }
            }
            (Method::Post, PUBLISH) => ChannelRequest::Publish(Message {
                data: wire.body.ok_or_else(|| bad("publish without a body"))?,
                event_type: param(EVENT),
                retry_ms: param(RETRY)
                    .map(|r| r.parse::<u64>())
                    .transpose()
                    .map_err(|_| bad("bad retry"))?,
            }),
            (Method::Post, PUBLISH_BATCH) => {
                let body = wire.body.ok_or_else(|| bad("batch without a body"))?;
                let rows: Vec<(String, Option<String>, Option<u64>)> =
                    serde_json::from_str(&body).map_err(|e| bad(&format!("batch: {e}")))?;
                ChannelRequest::PublishBatch(
                    rows.into_iter()
                        .map(|(data, event_type, retry_ms)| Message {
                            data,
                            event_type,
                            retry_ms,
                        })
                        .collect(),
                )
            }
            (Method::Get, STATS) => ChannelRequest::Stats,
            (method, path) => return Err(bad(&format!("{method:?} {path}"))),
        };
        Ok(ChannelCall {
            channel,
            node,
            allow_origin: param(ALLOW_ORIGIN),
            request,
        })
    }

    /// Sends the call to its channel's object and returns the object's response
    /// untouched, so a stream's body is piped by the runtime, never by us.
    pub async fn send(&self, env: &Env) -> Result<Response, Error> {
        let namespace = env.durable_object(CHANNEL_BINDING)?;
        let name = self.node.object_name(self.channel.as_str());
        // A node is made where its listeners are: the hint counts when it is first made.
        let stub = match self.node.region().and_then(Region::location_hint) {
            Some(hint) => namespace.get_by_name_with_location_hint(&name, hint)?,
            None => namespace.get_by_name(&name)?,
        };
        let wire = self.to_wire();
        let mut init = RequestInit::new();
        init.with_method(wire.method);
        if let Some(body) = wire.body {
            init.with_body(Some(body.into()));
        }
        let request = Request::new_with_init(wire.url.as_str(), &init)?;
        Ok(stub.fetch_with_request(request).await?)
    }

    /// Sends a listen to the channel's root and on down the tree, as each node places it,
    /// until one seats it: its stream comes back untouched.
    ///
    /// A Worker that was sent to a region's head remembers it for [`HEAD_MEMORY_MS`] and
    /// starts there, so that the root of a big channel is not in every walk (a deploy's
    /// reconnects would all pass through its one thread).
    pub async fn listen(self, env: &Env) -> Result<Response, Error> {
        let mut call = self;
        let region = match &call.request {
            ChannelRequest::Listen { region, .. } => *region,
            _ => return Err(Error::Contract("a walk is for a listen".into())),
        };
        if let Some(head) = known_head(&call.channel, region) {
            call.node = head;
        }
        for _ in 0..MAX_HOPS {
            let response = call.send(env).await?;
            if response.status_code() != PLACED_STATUS {
                return Ok(response);
            }
            let next = response
                .headers()
                .get(NODE_HEADER)?
                .and_then(|n| NodePath::parse(&n).ok())
                .ok_or_else(|| Error::Contract("a placement without its node".into()))?;
            if call.node.is_root() {
                remember_head(&call.channel, region, &next);
            }
            call.node = next;
        }
        Err(Error::TreeBusy(
            "the tree kept placing the listener further down",
        ))
    }

    /// Reads the call an object received (its body too, so none is left unread). The
    /// body is read as bytes: decoding it as text would drop a leading U+FEFF of the data.
    pub async fn read(req: &mut Request) -> Result<ChannelCall, Error> {
        let method = req.method();
        let body = match method {
            Method::Post => Some(
                String::from_utf8(req.bytes().await?)
                    .map_err(|_| Error::Contract("a body that is not UTF-8".into()))?,
            ),
            _ => None,
        };
        ChannelCall::from_wire(Wire {
            method,
            url: req.url()?,
            body,
        })
    }
}

/// What the Mercure hub's object is asked to do. The Worker has verified the token and
/// validated the request; the object matches and stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HubCall {
    /// Open a stream for a subscriber.
    Subscribe {
        /// R, the hub's URL as the client addressed it (relative patterns resolve to it).
        base: String,
        subscriber_id: String,
        specs: Vec<TopicSpec>,
        grants: Option<GrantsSpec>,
        /// The resume cursor: an id, or `earliest`.
        cursor: Option<String>,
    },
    /// Dispatch an update; `id` is the publisher's or a generated one.
    Publish { update: Update, id: String },
    /// Answer the subscriptions API (§7.3): the path's remainder after
    /// `/.well-known/mercure/subscriptions`, raw, and the whole path as received.
    Subscriptions {
        base: String,
        remainder: String,
        raw_path: String,
        grants: GrantsSpec,
        if_none_match: Option<String>,
    },
}

impl HubCall {
    /// The call's wire form: a JSON body.
    pub fn to_wire(&self) -> String {
        serde_json::to_string(self).expect("a hub call is always JSON")
    }

    pub fn from_wire(body: &str) -> Result<HubCall, Error> {
        serde_json::from_str(body).map_err(|e| Error::Contract(format!("hub call: {e}")))
    }

    /// Sends the call to the hub's object; its response comes back untouched.
    pub async fn send(&self, env: &Env) -> Result<Response, Error> {
        let stub = env.durable_object(HUB_BINDING)?.get_by_name(HUB_NAME)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(self.to_wire().into()));
        let request = Request::new_with_init(HUB_URL, &init)?;
        Ok(stub.fetch_with_request(request).await?)
    }

    pub async fn read(req: &mut Request) -> Result<HubCall, Error> {
        HubCall::from_wire(&req.text().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(call: ChannelCall) {
        let wire = call.to_wire();
        assert_eq!(
            ChannelCall::from_wire(wire.clone()).unwrap(),
            call,
            "{wire:?}"
        );
    }

    fn channel(name: &str) -> ChannelName {
        ChannelName::parse(name).unwrap()
    }

    #[test]
    fn every_request_reads_back_as_it_was_sent() {
        round_trip(ChannelCall::new(
            channel("news"),
            ChannelRequest::Listen {
                last_seen: None,
                region: Region::Any,
            },
        ));
        round_trip(
            ChannelCall::new(
                channel("a.b-c_d"),
                ChannelRequest::Listen {
                    last_seen: Some(EventId(u64::MAX)),
                    region: Region::Oc,
                },
            )
            .allowing(Some("https://app.test:8443".into())),
        );
        round_trip(
            ChannelCall::new(channel("news"), ChannelRequest::Stats).allowing(Some("*".into())),
        );
        round_trip(ChannelCall::new(channel("news"), ChannelRequest::Stats));
        // Between the nodes of a tree.
        let node = |p: &str| NodePath::parse(p).unwrap();
        for request in [
            ChannelRequest::Relay {
                child: node("weur.0.3"),
                last_seen: None,
            },
            ChannelRequest::Relay {
                child: node("weur"),
                last_seen: Some(EventId(7)),
            },
            ChannelRequest::Replay {
                after: EventId(0),
                through: EventId(12),
            },
            ChannelRequest::Replay {
                after: EventId(3),
                through: EventId(3),
            },
            ChannelRequest::Report {
                child: node("apac.1"),
                listeners: 12345,
                handed: None,
            },
            ChannelRequest::Report {
                child: node("apac.1.0"),
                listeners: 0,
                handed: Some(Counters {
                    published: 0,
                    delivered: 7,
                    dropped_slow: 1,
                    dropped_gone: 2,
                }),
            },
            ChannelRequest::Stats,
        ] {
            round_trip(ChannelCall::to_node(
                channel("hot"),
                node("weur.0"),
                request.clone(),
            ));
            round_trip(ChannelCall::new(channel("hot"), request));
        }
        for message in [
            Message {
                data: String::new(),
                event_type: None,
                retry_ms: None,
            },
            Message {
                data: "a\r\nb &=?# é \u{0}".into(),
                event_type: Some("score & co=1 #2 ü".into()),
                retry_ms: Some(0),
            },
        ] {
            round_trip(ChannelCall::new(
                channel("x"),
                ChannelRequest::Publish(message.clone()),
            ));
        }
        round_trip(ChannelCall::new(
            channel("x"),
            ChannelRequest::PublishBatch(vec![
                Message {
                    data: "a\u{feff}\r\n\"".into(),
                    event_type: Some("t".into()),
                    retry_ms: Some(9),
                },
                Message {
                    data: String::new(),
                    event_type: None,
                    retry_ms: None,
                },
            ]),
        ));
    }

    #[test]
    fn a_publish_carries_its_data_as_the_body_and_nothing_to_parse() {
        let wire = ChannelCall::new(
            channel("news"),
            ChannelRequest::Publish(Message {
                data: "{\"a\":1}".into(),
                event_type: Some("t".into()),
                retry_ms: Some(5),
            }),
        )
        .to_wire();
        assert_eq!(wire.method, Method::Post);
        assert_eq!(wire.body.as_deref(), Some("{\"a\":1}"));
        assert_eq!(wire.url.query(), Some("channel=news&event=t&retry=5"));
    }

    #[test]
    fn what_the_worker_never_sends_is_refused_as_a_contract_error() {
        let wire = |method: Method, url: &str, body: Option<&str>| Wire {
            method,
            url: Url::parse(url).unwrap(),
            body: body.map(str::to_string),
        };
        for bad in [
            wire(Method::Get, "https://channel.internal/listen", None),
            wire(
                Method::Get,
                "https://channel.internal/listen?channel=bad!",
                None,
            ),
            wire(
                Method::Get,
                "https://channel.internal/listen?channel=a&lastEventId=x",
                None,
            ),
            wire(
                Method::Post,
                "https://channel.internal/publish?channel=a",
                None,
            ),
            wire(
                Method::Post,
                "https://channel.internal/publish?channel=a&retry=-1",
                Some("x"),
            ),
            wire(
                Method::Put,
                "https://channel.internal/stats?channel=a",
                None,
            ),
            wire(
                Method::Get,
                "https://channel.internal/other?channel=a",
                None,
            ),
            wire(
                Method::Get,
                "https://channel.internal/stats?channel=a&node=mars.1",
                None,
            ),
            wire(
                Method::Get,
                "https://channel.internal/relay?channel=a",
                None,
            ),
            wire(
                Method::Get,
                "https://channel.internal/replay?channel=a",
                None,
            ),
            wire(
                Method::Post,
                "https://channel.internal/report?channel=a&child=oc&listeners=-2",
                Some(""),
            ),
        ] {
            let e = ChannelCall::from_wire(bad.clone()).unwrap_err();
            assert!(matches!(e, Error::Contract(_)), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_hub_call_reads_back_as_it_was_sent_grants_and_all() {
        use crate::domain::mercure::{verify, MatcherBudget, MatcherKind, TokenContext};
        // A 0.x token granting subscribe on a template, signed by hand.
        let grants = {
            use base64::Engine;
            use hmac::{KeyInit, Mac};
            let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
            let signing = format!(
                "{}.{}",
                b64(r#"{"alg":"HS256"}"#),
                b64(r#"{"mercure":{"subscribe":["https://a.test/{x}"],"payload":{"u":1}}}"#)
            );
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"k").unwrap();
            mac.update(signing.as_bytes());
            let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(mac.finalize().into_bytes());
            let ctx = TokenContext {
                now_s: 0,
                issuers: vec![],
                resource: "http://h.test/.well-known/mercure".into(),
                limits: Default::default(),
            };
            verify(&format!("{signing}.{sig}"), b"k", &ctx).unwrap()
        };
        let call = HubCall::Subscribe {
            base: "http://h.test/.well-known/mercure".into(),
            subscriber_id: "urn:uuid:1".into(),
            specs: vec![TopicSpec::new(MatcherKind::UrlPattern, "/books/:id")],
            grants: Some(grants.spec()),
            cursor: Some("earliest".into()),
        };
        let back = HubCall::from_wire(&call.to_wire()).unwrap();
        assert_eq!(back.to_wire(), call.to_wire());
        let HubCall::Subscribe { grants, .. } = back else {
            panic!("not a subscribe")
        };
        let grants = grants
            .unwrap()
            .compile(&mut MatcherBudget::new(Default::default()))
            .unwrap();
        assert!(grants.allows(
            crate::domain::mercure::Action::Subscribe,
            "https://a.test/y"
        ));
        assert!(!grants.allows(
            crate::domain::mercure::Action::Subscribe,
            "https://b.test/y"
        ));
        let publish = HubCall::Publish {
            update: Update {
                topics: vec!["t".into()],
                data: "a\nb".into(),
                private: true,
                id: None,
                event_type: Some("x".into()),
                retry_ms: Some(3),
            },
            id: "urn:uuid:2".into(),
        };
        assert_eq!(
            HubCall::from_wire(&publish.to_wire()).unwrap().to_wire(),
            publish.to_wire()
        );
        assert!(matches!(HubCall::from_wire("{}"), Err(Error::Contract(_))));
    }
}
