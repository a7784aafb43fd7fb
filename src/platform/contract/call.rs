//! The calls: what an object of a stream (a channel's root or a node of its tree, the
//! hub's root or a node of its tree) is asked to do, by the Worker or by another object.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use serde::{Deserialize, Serialize};
use worker::{Env, Method, Request, RequestInit, Response};

use super::wire::Wire;
use super::{CHANNEL_BINDING, HUB_BINDING, HUB_NAME, UPGRADE_BODY_HEADER};
use crate::domain::mercure::{GrantsSpec, TopicSpec, Update};
use crate::domain::{ChannelName, Counters, EventId, Message, NodePath, Region};
use crate::platform::error::Error;

/// What a body percent-encodes to travel in a header: controls, `%` itself, and (always)
/// every byte past ASCII; JSON's own punctuation stays as it is.
const HEADER_UNSAFE: &AsciiSet = &CONTROLS.add(b'%');

/// Whose objects a call is for: a channel's, or the Mercure hub's. Each has its own
/// Durable Object class (and so its own storage); both run the one stream engine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Channel(ChannelName),
    Hub,
}

impl Target {
    /// The namespace binding of its objects.
    pub fn binding(&self) -> &'static str {
        match self {
            Target::Channel(_) => CHANNEL_BINDING,
            Target::Hub => HUB_BINDING,
        }
    }

    /// The name its root object has; its nodes' names are made from it
    /// ([`NodePath::object_name`]).
    pub fn name(&self) -> &str {
        match self {
            Target::Channel(channel) => channel.as_str(),
            Target::Hub => HUB_NAME,
        }
    }
}

/// What an object is asked to do. The Worker has validated everything first; between
/// objects, the tree's calls (relay, replay, report, stats) are the same for both faces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamRequest {
    /// Open a channel's stream, resuming after `last_seen` when given.
    Listen {
        last_seen: Option<EventId>,
        /// Where the listener is, for a node to pick a child near it.
        region: Region,
        delivery: Delivery,
    },
    /// Open a hub subscriber's stream (the hub's form of a listen).
    Subscribe {
        subscriber: SubscriberCall,
        region: Region,
        delivery: Delivery,
        /// The stream goes on after this sequence number, whatever the subscriber's
        /// cursor (a stream the Worker holds, attached again before any update passed).
        after_seq: Option<EventId>,
    },
    /// A child node takes its stream (resuming after `last_seen`, as a listener would).
    Relay {
        child: NodePath,
        last_seen: Option<EventId>,
    },
    /// With objects that sleep (`HIBERNATE=1`): a child asks its parent to feed it over a
    /// socket the parent opens to it ([`StreamRequest::Feed`]), resuming after
    /// `last_seen`; answered (204) once the socket carries the stream's start, which ends
    /// with the parent's position. The child accepted the socket with the hibernation API,
    /// so that it may sleep.
    FeedMe {
        child: NodePath,
        last_seen: Option<EventId>,
    },
    /// The socket a parent opens to feed this node (an upgrade).
    Feed,
    /// The replay for a resume after `after`, as a body, for a child that does not hold
    /// it; it must bring the child at least to `through`. Each event comes as objects
    /// write to each other (its publication time, and a routed event's sequence number
    /// and route): the child gives each of its seats what is theirs.
    Replay { after: EventId, through: EventId },
    /// A child's subtree holds `listeners` seats; a child that emptied hands up what it
    /// counted (`handed`), for the stream's stats to keep.
    Report {
        child: NodePath,
        listeners: u64,
        handed: Option<Counters>,
    },
    /// Publish a validated message on a channel.
    Publish(Message),
    /// Publish validated messages together (each with its own id, stored at once, sent
    /// to each listener as one write).
    PublishBatch(Vec<Message>),
    /// Publish each line of the request's body as it arrives (NDJSON, a message per
    /// line), in order; `end`: then end the channel. The body travels as it came, and
    /// the object reads and validates it line by line.
    PublishStream { end: bool },
    /// End a channel's stream: publish these messages (none, one or more) together, then
    /// end it after them.
    End(Vec<Message>),
    /// Publish hub updates, in order (the Worker sends one; a node sends the
    /// subscription events of its subscribers to the root).
    PublishUpdates(Vec<UpdateCall>),
    /// Answer the hub's subscriptions API (§7.3).
    Subscriptions(SubscriptionsCall),
    /// The active subscriptions of the subtree's subscribers, for the root to list.
    Subscribers,
    /// The sequence number of the first kept hub update with this id (a node resolving
    /// a resume it does not hold); not found: 404.
    FindKey(String),
    /// Report the counters of the object's subtree (the whole stream's, at the root).
    Stats,
}

/// How the object that seats a listener sends it its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// As the response's body: the object holds the stream, and stays awake with it.
    #[default]
    Stream,
    /// Over a WebSocket the object accepts with the hibernation API, each message a chunk
    /// of the stream: the entry Worker holds the listener's response (its queue,
    /// keep-alives and vanished-client check), and the object may sleep between events.
    Socket,
}

impl StreamRequest {
    /// A listen or subscribe's delivery; a feed is a socket; others have no stream to
    /// deliver.
    pub fn delivery(&self) -> Delivery {
        match self {
            StreamRequest::Listen { delivery, .. } | StreamRequest::Subscribe { delivery, .. } => {
                *delivery
            }
            StreamRequest::Feed => Delivery::Socket,
            _ => Delivery::Stream,
        }
    }

    /// The listen or subscribe, going on where a stream the Worker holds got to, its
    /// object gone: after `last_id`, the last id it passed on, as its client would name
    /// it; or, when none passed since the stream (re)started, after `position`, where the
    /// object said it started.
    pub fn resuming_after(&mut self, last_id: Option<&str>, position: EventId) {
        match self {
            StreamRequest::Listen { last_seen, .. } => {
                let id = last_id.and_then(|id| EventId::parse(id).ok());
                *last_seen = Some(id.unwrap_or(position));
            }
            StreamRequest::Subscribe {
                subscriber,
                after_seq,
                ..
            } => match last_id {
                Some(id) => {
                    subscriber.cursor = Some(id.into());
                    *after_seq = None;
                }
                None => *after_seq = Some(position),
            },
            _ => {}
        }
    }
}

/// A hub subscriber as the Worker verified it: its matchers and grants as written, for
/// the object that seats it to compile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriberCall {
    /// R, the hub's URL as the client addressed it (relative patterns resolve to it).
    pub base: String,
    pub subscriber_id: String,
    pub specs: Vec<TopicSpec>,
    pub grants: Option<GrantsSpec>,
    /// The resume cursor: an id, or `earliest`.
    pub cursor: Option<String>,
}

impl Eq for SubscriberCall {}

/// One hub update to dispatch; `id` is the publisher's or a generated one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateCall {
    pub update: Update,
    pub id: String,
}

/// A subscriptions API request (§7.3): the path's remainder after
/// `/.well-known/mercure/subscriptions`, raw, and the whole path as received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionsCall {
    pub base: String,
    pub remainder: String,
    pub raw_path: String,
    pub grants: GrantsSpec,
    pub if_none_match: Option<String>,
}

impl Eq for SubscriptionsCall {}

/// A request addressed to one object of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCall {
    pub target: Target,
    pub node: NodePath,
    /// The `Access-Control-Allow-Origin` the answer carries, set by the object on its
    /// response so that the Worker returns it untouched (a Durable Object's response has
    /// immutable headers: adding one would mean copying them).
    pub allow_origin: Option<String>,
    pub request: StreamRequest,
}

impl StreamCall {
    /// A call to the stream's root.
    pub fn new(target: Target, request: StreamRequest) -> Self {
        Self::to_node(target, NodePath::root(), request)
    }

    pub fn to_node(target: Target, node: NodePath, request: StreamRequest) -> Self {
        StreamCall {
            target,
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

    /// Sends the call to its object and returns the object's response untouched, so a
    /// stream's body is piped by the runtime, never by us.
    pub async fn send(&self, env: &Env) -> Result<Response, Error> {
        self.send_with(env, None).await
    }

    /// Sends the call with `body` as its request's body, as it arrives (a streaming
    /// publish).
    pub async fn send_streaming(
        &self,
        env: &Env,
        body: worker::web_sys::ReadableStream,
    ) -> Result<Response, Error> {
        self.send_with(env, Some(body)).await
    }

    async fn send_with(
        &self,
        env: &Env,
        streamed: Option<worker::web_sys::ReadableStream>,
    ) -> Result<Response, Error> {
        let namespace = env.durable_object(self.target.binding())?;
        let name = self.node.object_name(self.target.name());
        // A node is made where its listeners are: the hint counts when it is first made.
        let stub = match self.node.region().and_then(Region::location_hint) {
            Some(hint) => namespace.get_by_name_with_location_hint(&name, hint)?,
            None => namespace.get_by_name(&name)?,
        };
        let wire = self.to_wire();
        let mut init = RequestInit::new();
        if self.request.delivery() == Delivery::Socket {
            // An upgrade is a GET, and the runtime sends it without a body: the body
            // travels in a header instead (percent-encoded: a header holds bytes, not text).
            init.with_method(Method::Get);
            let headers = worker::Headers::new();
            headers.set("Upgrade", "websocket")?;
            if let Some(body) = &wire.body {
                headers.set(UPGRADE_BODY_HEADER, &body_to_header(body))?;
            }
            init.with_headers(headers);
        } else {
            init.with_method(wire.method);
            match (wire.body, streamed) {
                (_, Some(stream)) => {
                    init.with_body(Some(stream.into()));
                }
                (Some(body), None) => {
                    init.with_body(Some(body.into()));
                }
                (None, None) => {}
            }
        }
        let request = Request::new_with_init(wire.url.as_str(), &init)?;
        Ok(stub.fetch_with_request(request).await?)
    }

    /// Reads the call an object received (its body too, so none is left unread). The
    /// body is read as bytes: decoding it as text would drop a leading U+FEFF of the data.
    pub async fn read(req: &mut Request) -> Result<StreamCall, Error> {
        let not_utf8 = || Error::Contract("a body that is not UTF-8".into());
        let mut method = req.method();
        let body = match (&method, req.headers().get(UPGRADE_BODY_HEADER)?) {
            // An upgrade's body, sent in a header (see `send`): the call was a POST.
            (Method::Get, Some(encoded)) => {
                method = Method::Post;
                Some(body_of_header(&encoded).ok_or_else(not_utf8)?)
            }
            // A streaming publish's body is the object's to read, as it arrives.
            (Method::Post, _) if super::wire::carries_stream(&req.url()?) => None,
            (Method::Post, _) => {
                Some(String::from_utf8(req.bytes().await?).map_err(|_| not_utf8())?)
            }
            _ => None,
        };
        StreamCall::from_wire(Wire {
            method,
            url: req.url()?,
            body,
        })
    }
}

/// A call's body as an upgrade's header carries it (see [`StreamCall::send`]).
fn body_to_header(body: &str) -> String {
    utf8_percent_encode(body, HEADER_UNSAFE).to_string()
}

/// The body an upgrade's header carried; none when it is not UTF-8.
fn body_of_header(header: &str) -> Option<String> {
    String::from_utf8(percent_decode_str(header).collect()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_stream_goes_on_after_the_last_id_it_passed_on_or_else_where_it_started() {
        let listen = |last_seen| StreamRequest::Listen {
            last_seen,
            region: Region::Any,
            delivery: Delivery::Socket,
        };
        let mut request = listen(None);
        request.resuming_after(Some("17"), EventId(9));
        assert_eq!(request, listen(Some(EventId(17))));
        request.resuming_after(None, EventId(9));
        assert_eq!(
            request,
            listen(Some(EventId(9))),
            "nothing passed: its position"
        );

        let subscriber = |cursor: Option<&str>| SubscriberCall {
            base: "https://hub.test/.well-known/mercure".into(),
            subscriber_id: "urn:uuid:s".into(),
            specs: vec![],
            grants: None,
            cursor: cursor.map(Into::into),
        };
        let subscribe = |cursor, after_seq| StreamRequest::Subscribe {
            subscriber: subscriber(cursor),
            region: Region::Any,
            delivery: Delivery::Socket,
            after_seq,
        };
        let mut request = subscribe(None, None);
        request.resuming_after(None, EventId(4));
        assert_eq!(
            request,
            subscribe(None, Some(EventId(4))),
            "on after its sequence number"
        );
        request.resuming_after(Some("urn:uuid:u7"), EventId(4));
        assert_eq!(
            request,
            subscribe(Some("urn:uuid:u7"), None),
            "after the update it passed on"
        );
    }

    #[test]
    fn a_body_crosses_a_header_as_it_was_even_with_percent_signs_and_text_past_ascii() {
        let body = "{\"specs\":[\"https://ex.test/é/{id}\"],\"d\":\"\u{feff}100% \\n\"}\r\n";
        let header = body_to_header(body);
        assert!(
            header.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{header}"
        );
        assert!(
            header.contains("\"specs\""),
            "JSON punctuation stays as it is: {header}"
        );
        assert_eq!(body_of_header(&header).as_deref(), Some(body));
        assert_eq!(body_of_header("%FF"), None, "not UTF-8");
    }
}
