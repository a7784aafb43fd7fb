//! A channel's calls: what a channel's object (its root, or a node of its tree) is asked
//! to do, as an internal request whose query and body carry it.

use worker::{Env, Method, Request, RequestInit, Response, Url};

use super::CHANNEL_BINDING;
use crate::domain::form;
use crate::domain::{ChannelName, Counters, EventId, Message, NodePath, Region};
use crate::platform::error::Error;

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
}
