//! A call's wire form: an internal request whose method, path, query and body carry it.
//! A publish travels as its data in the body and its type and retry in the query, so that
//! the object parses no JSON on the hot path; the hub's structured calls (a subscriber,
//! updates, a subscriptions request) travel as JSON bodies.

use worker::{Method, Url};

use super::call::{Delivery, StreamCall, StreamRequest, Target};
use crate::domain::form;
use crate::domain::{ChannelName, Counters, EventId, Message, NodePath, Region};
use crate::platform::error::Error;

const ORIGIN: &str = "https://channel.internal";
const LISTEN: &str = "/listen";
const PUBLISH: &str = "/publish";
const PUBLISH_BATCH: &str = "/publish-batch";
const END: &str = "/end";
const PUBLISH_STREAM: &str = "/publish-stream";
const STATS: &str = "/stats";
const RELAY: &str = "/relay";
const FEED_ME: &str = "/feed-me";
const FEED: &str = "/feed";
const REPLAY: &str = "/replay";
const REPORT: &str = "/report";
const SUBSCRIBE: &str = "/subscribe";
const PUBLISH_UPDATES: &str = "/publish-updates";
const SUBSCRIPTIONS: &str = "/subscriptions";
const SUBSCRIBERS: &str = "/subscribers";
const FIND_KEY: &str = "/find-key";
const CHANNEL: &str = "channel";
const HUB: &str = "hub";
const KEY: &str = "key";
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
const VIA: &str = "via";
const VIA_SOCKET: &str = "socket";
const ENDING: &str = "end";

/// A call as it travels: method, URL and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wire {
    pub method: Method,
    pub url: Url,
    pub body: Option<String>,
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("a call's parts are JSON")
}

fn from_json<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, Error> {
    serde_json::from_str(body).map_err(|e| Error::Contract(format!("a call's body: {e}")))
}

impl StreamCall {
    /// The call's wire form.
    pub fn to_wire(&self) -> Wire {
        let (method, path) = match &self.request {
            StreamRequest::Listen { .. } => (Method::Get, LISTEN),
            StreamRequest::Publish(_) => (Method::Post, PUBLISH),
            StreamRequest::PublishBatch(_) => (Method::Post, PUBLISH_BATCH),
            StreamRequest::End(_) => (Method::Post, END),
            StreamRequest::PublishStream { .. } => (Method::Post, PUBLISH_STREAM),
            StreamRequest::Stats => (Method::Get, STATS),
            StreamRequest::Relay { .. } => (Method::Get, RELAY),
            StreamRequest::FeedMe { .. } => (Method::Get, FEED_ME),
            StreamRequest::Feed => (Method::Get, FEED),
            StreamRequest::Replay { .. } => (Method::Get, REPLAY),
            StreamRequest::Report { .. } => (Method::Post, REPORT),
            StreamRequest::Subscribe { .. } => (Method::Post, SUBSCRIBE),
            StreamRequest::PublishUpdates(_) => (Method::Post, PUBLISH_UPDATES),
            StreamRequest::Subscriptions(_) => (Method::Post, SUBSCRIPTIONS),
            StreamRequest::Subscribers => (Method::Get, SUBSCRIBERS),
            StreamRequest::FindKey(_) => (Method::Get, FIND_KEY),
        };
        let mut url = Url::parse(ORIGIN).expect("the internal origin is a URL");
        url.set_path(path);
        let mut body = None;
        {
            let mut query = url.query_pairs_mut();
            match &self.target {
                Target::Channel(channel) => query.append_pair(CHANNEL, channel.as_str()),
                Target::Hub => query.append_pair(HUB, "1"),
            };
            if !self.node.is_root() {
                query.append_pair(NODE, &self.node.to_string());
            }
            if let Some(origin) = &self.allow_origin {
                query.append_pair(ALLOW_ORIGIN, origin);
            }
            if self.request.delivery() == Delivery::Socket {
                query.append_pair(VIA, VIA_SOCKET);
            }
            match &self.request {
                StreamRequest::Listen {
                    last_seen, region, ..
                } => {
                    if let Some(id) = last_seen {
                        query.append_pair(LAST_EVENT_ID, &id.to_string());
                    }
                    query.append_pair(REGION, region.code());
                }
                StreamRequest::Relay { child, last_seen }
                | StreamRequest::FeedMe { child, last_seen } => {
                    query.append_pair(CHILD, &child.to_string());
                    if let Some(id) = last_seen {
                        query.append_pair(LAST_EVENT_ID, &id.to_string());
                    }
                }
                StreamRequest::Replay { after, through } => {
                    query.append_pair(LAST_EVENT_ID, &after.to_string());
                    query.append_pair(THROUGH, &through.to_string());
                }
                StreamRequest::Report {
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
                StreamRequest::Publish(message) => {
                    if let Some(event_type) = &message.event_type {
                        query.append_pair(EVENT, event_type);
                    }
                    if let Some(retry) = message.retry_ms {
                        query.append_pair(RETRY, &retry.to_string());
                    }
                    body = Some(message.data.clone());
                }
                StreamRequest::PublishStream { end } => {
                    if *end {
                        query.append_pair(ENDING, "1");
                    }
                }
                StreamRequest::PublishBatch(messages) | StreamRequest::End(messages) => {
                    body = Some(messages_to_rows(messages));
                }
                StreamRequest::Subscribe {
                    subscriber,
                    region,
                    after_seq,
                    ..
                } => {
                    query.append_pair(REGION, region.code());
                    if let Some(seq) = after_seq {
                        query.append_pair(LAST_EVENT_ID, &seq.to_string());
                    }
                    body = Some(json(subscriber));
                }
                StreamRequest::PublishUpdates(updates) => body = Some(json(updates)),
                StreamRequest::Subscriptions(asked) => body = Some(json(asked)),
                StreamRequest::FindKey(key) => {
                    query.append_pair(KEY, key);
                }
                StreamRequest::Stats | StreamRequest::Subscribers | StreamRequest::Feed => {}
            }
        }
        Wire { method, url, body }
    }

    /// Reads a call back from its wire form.
    pub fn from_wire(wire: Wire) -> Result<StreamCall, Error> {
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
        let target = match (param(HUB), param(CHANNEL)) {
            (Some(_), None) => Target::Hub,
            (None, Some(channel)) => {
                Target::Channel(ChannelName::parse(&channel).map_err(|e| bad(&e.to_string()))?)
            }
            _ => return Err(bad("a call is for one channel or the hub")),
        };
        let body = || {
            wire.body
                .clone()
                .ok_or_else(|| bad("a call without its body"))
        };
        let path_param = |name: &str| {
            param(name)
                .map(|p| NodePath::parse(&p).map_err(|_| bad(&format!("bad {name}"))))
                .transpose()
        };
        let node = path_param(NODE)?.unwrap_or_else(NodePath::root);
        let child = || path_param(CHILD)?.ok_or_else(|| bad("no child"));
        let region = || {
            param(REGION)
                .and_then(|r| Region::parse(&r))
                .ok_or_else(|| bad("bad region"))
        };
        let last_seen = || {
            param(LAST_EVENT_ID)
                .map(|id| EventId::parse(&id))
                .transpose()
                .map_err(|_| bad("bad lastEventId"))
        };
        let delivery = match param(VIA).as_deref() {
            None => Delivery::Stream,
            Some(VIA_SOCKET) => Delivery::Socket,
            Some(_) => return Err(bad("bad via")),
        };
        let request = match (wire.method, wire.url.path()) {
            (Method::Get, LISTEN) => StreamRequest::Listen {
                last_seen: last_seen()?,
                region: region()?,
                delivery,
            },
            (Method::Post, SUBSCRIBE) => StreamRequest::Subscribe {
                subscriber: from_json(&body()?)?,
                region: region()?,
                delivery,
                after_seq: last_seen()?,
            },
            (Method::Post, PUBLISH_UPDATES) => StreamRequest::PublishUpdates(from_json(&body()?)?),
            (Method::Post, SUBSCRIPTIONS) => StreamRequest::Subscriptions(from_json(&body()?)?),
            (Method::Get, SUBSCRIBERS) => StreamRequest::Subscribers,
            (Method::Get, FIND_KEY) => {
                StreamRequest::FindKey(param(KEY).ok_or_else(|| bad("no key"))?)
            }
            (Method::Get, RELAY) => StreamRequest::Relay {
                child: child()?,
                last_seen: last_seen()?,
            },
            (Method::Get, FEED_ME) => StreamRequest::FeedMe {
                child: child()?,
                last_seen: last_seen()?,
            },
            (Method::Get, FEED) if delivery == Delivery::Socket => StreamRequest::Feed,
            (Method::Get, REPLAY) => StreamRequest::Replay {
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
                StreamRequest::Report {
                    child: child()?,
                    listeners: count(LISTENERS)?.ok_or_else(|| bad("bad listeners"))?,
                    handed,
                }
            }
            (Method::Post, PUBLISH) => StreamRequest::Publish(Message {
                data: body()?,
                event_type: param(EVENT),
                retry_ms: param(RETRY)
                    .map(|r| r.parse::<u64>())
                    .transpose()
                    .map_err(|_| bad("bad retry"))?,
            }),
            (Method::Post, PUBLISH_BATCH) => {
                StreamRequest::PublishBatch(messages_of_rows(&body()?)?)
            }
            (Method::Post, END) => StreamRequest::End(messages_of_rows(&body()?)?),
            (Method::Post, PUBLISH_STREAM) => StreamRequest::PublishStream {
                end: param(ENDING).is_some(),
            },
            (Method::Get, STATS) => StreamRequest::Stats,
            (method, path) => return Err(bad(&format!("{method:?} {path}"))),
        };
        Ok(StreamCall {
            target,
            node,
            allow_origin: param(ALLOW_ORIGIN),
            request,
        })
    }
}

/// Whether a call's request body is not part of its wire form, but travels on for the
/// object to read as it arrives (a streaming publish).
pub(super) fn carries_stream(url: &Url) -> bool {
    url.path() == PUBLISH_STREAM
}

/// Validated messages as a call carries them: a compact JSON array of
/// `[data, type, retry]` rows.
fn messages_to_rows(messages: &[Message]) -> String {
    let rows: Vec<(&str, Option<&str>, Option<u64>)> = messages
        .iter()
        .map(|m| (m.data.as_str(), m.event_type.as_deref(), m.retry_ms))
        .collect();
    serde_json::to_string(&rows).expect("rows are JSON")
}

fn messages_of_rows(body: &str) -> Result<Vec<Message>, Error> {
    let rows: Vec<(String, Option<String>, Option<u64>)> = from_json(body)?;
    Ok(rows
        .into_iter()
        .map(|(data, event_type, retry_ms)| Message {
            data,
            event_type,
            retry_ms,
        })
        .collect())
}

#[cfg(test)]
mod tests;
