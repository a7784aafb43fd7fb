//! The channels face: the `Channel` Durable Object class, one per object of a channel's
//! tree. Its seats take every event; it adds publishing (one message, or a batch) and
//! answers with the CORS header the Worker asked for.

use worker::{durable_object, ByteStream, DurableObject, Env, Headers, Request, Response, State};

use worker::{WebSocket, WebSocketIncomingMessage};

use super::{Face, Hosted, StreamObject, Via};
use crate::domain::{Config, EventId, Everyone, Grave, Region, SeatKind, StreamSettings};
use crate::platform::contract::{Delivery, StreamCall, StreamRequest, Target, SOCKET_GONE};
use crate::platform::cors;
use crate::platform::error::{Audience, Error};
use crate::platform::host::now_ms;
use crate::platform::http;
use crate::platform::Fault;

/// A channel's seats and rules: everyone takes everything, holes are told with `gap`.
pub(crate) struct Channels;

/// What a channel's object keeps beside the engine.
#[derive(Default)]
pub(crate) struct ChannelState {
    /// Whether this instance has asked the graves about its channel (a root with nothing
    /// stored asks once: it may have been deleted after it ended).
    pub(super) looked_up: bool,
    /// Its storage was deleted after it ended: every call is answered so (410), by this
    /// instance as by the graves.
    pub(super) gone: Option<Grave>,
    /// No lifetime step (an idle end, the deletion) before this time: one failed.
    pub(super) retry_at: u64,
    /// Streaming publishes under way: a channel is not idle while one is open, however
    /// quiet its body.
    pub(super) streaming: usize,
}

impl Face for Channels {
    type Filter = Everyone;
    const AUDIENCE: Audience = Audience::Channel;
    type State = ChannelState;
    type Spec = ();

    fn restore(_h: &mut Hosted<Self>, _spec: ()) -> Result<Everyone, Error> {
        Ok(Everyone)
    }

    fn settings(config: &Config) -> StreamSettings {
        config.into()
    }

    fn stream_headers() -> Result<Headers, Error> {
        http::event_stream_headers()
    }

    /// The root's next step of its lifetime: its end when left idle, or its deletion.
    fn next_deadline(h: &mut Hosted<Self>) -> Option<u64> {
        super::lifetime::due(h).map(|due| due.at_ms())
    }
}

#[durable_object]
pub struct Channel {
    object: StreamObject<Channels>,
}

impl Channel {
    /// `body`: a streaming publish's body, as it arrives.
    async fn serve(
        &self,
        call: StreamCall,
        body: Option<&mut ByteStream>,
    ) -> Result<Response, Error> {
        if !matches!(call.target, Target::Channel(_)) {
            return Err(Error::Contract("a hub call sent to a channel".into()));
        }
        self.object.ensure_open(&call.target, &call.node)?;
        let publishing = matches!(
            call.request,
            StreamRequest::Publish(_)
                | StreamRequest::PublishBatch(_)
                | StreamRequest::PublishStream { .. }
                | StreamRequest::End(_)
        );
        if call.node.is_root() {
            self.object.check_grave(publishing).await?;
        }
        if publishing && !call.node.is_root() {
            return Err(Error::Contract(
                "a publish sent to a node below the root".into(),
            ));
        }
        match call.request {
            StreamRequest::Listen {
                last_seen,
                region,
                delivery,
            } => self.listen(last_seen, region, delivery).await,
            StreamRequest::Publish(message) => {
                if crate::platform::injected_fault(&message.data) == Fault::Restart {
                    return Err(self.object.forget());
                }
                self.publish(|h| {
                    h.stream.check_publishable()?;
                    Ok(h.stream.publish(&message, now_ms())?.to_json())
                })
                .await
            }
            StreamRequest::PublishBatch(messages) => {
                self.publish(|h| {
                    h.stream.check_publishable()?;
                    Ok(h.stream.publish_batch(&messages, now_ms())?.to_json())
                })
                .await
            }
            StreamRequest::PublishStream { end } => {
                let answered = self.object.publish_stream(body, end).await;
                // Closed now: an idle end it held back is due again.
                if let Err(e) = self.object.arm_keep_alive().await {
                    worker::console_error!("an alarm after a streaming publish: {e}");
                }
                answered
            }
            StreamRequest::End(messages) => {
                http::json(&self.object.end(&messages).await?.to_end_json())
            }
            other => self.object.serve_tree(other).await,
        }
    }

    async fn listen(
        &self,
        last_seen: Option<EventId>,
        region: Region,
        delivery: Delivery,
    ) -> Result<Response, Error> {
        let _arrival = match self.object.placed(region).await? {
            super::Placed::Below(response) => return Ok(response),
            super::Placed::Here(arrival) => arrival,
        };
        let seat = SeatKind::Listener(Everyone);
        let via = match delivery {
            Delivery::Stream => Via::Stream,
            Delivery::Socket => Via::Socket(()),
        };
        let (body, position) = self.object.seat(seat, last_seen, via).await?;
        self.object
            .stream_response(body, position, Channels::stream_headers()?)
    }

    /// Publishes with `publish`, which answers what was published; it goes out once
    /// the batch window has passed.
    async fn publish(
        &self,
        publish: impl FnOnce(&mut Hosted<Channels>) -> Result<serde_json::Value, Error>,
    ) -> Result<Response, Error> {
        let answer = self.object.with(publish)?;
        self.object.published().await?;
        http::json(&answer)
    }
}

impl DurableObject for Channel {
    fn new(state: State, env: Env) -> Self {
        Channel {
            object: StreamObject::new(state, env),
        }
    }

    /// Every answer, errors too, carries the CORS header the Worker asked for, so that
    /// the Worker passes it on untouched.
    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let call = match StreamCall::read(&mut req).await {
            Ok(call) => call,
            Err(e) => return e.to_response(),
        };
        let allow_origin = call.allow_origin.clone();
        let streamed = matches!(call.request, StreamRequest::PublishStream { .. });
        let mut body = streamed
            .then(|| req.inner().body())
            .flatten()
            .map(ByteStream::from);
        let served = self.serve(call, body.as_mut()).await;
        if let Some(body) = body {
            // A streaming publish stopped early has the rest of its body read and dropped:
            // a body left unread keeps its sender's connection from the next request.
            self.object.drain(body).await;
        }
        let mut response = match served {
            Ok(response) => response,
            Err(e) => e.to_response()?,
        };
        for (name, value) in cors::CHANNELS.headers(allow_origin) {
            response.headers_mut().set(name, &value)?;
        }
        Ok(response)
    }

    async fn alarm(&self) -> worker::Result<Response> {
        match self.object.live_out().await {
            Ok(true) => return Response::empty(),
            Ok(false) => {}
            // Tried again a little later, at an alarm armed as usual below.
            Err(e) => self.object.live_out_failed(&e),
        }
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
