//! What an object answers a seat with: its stream (a body the object feeds, or a socket),
//! nothing for a child fed over a socket it opened, a finished body or 204 for a listener
//! of a stream that ended, or the root's name for a node that no longer answers for it;
//! and the refusals.

use worker::{Headers, Response};

use super::{Face, StreamObject, NODE_HEADER, PLACED_STATUS, POSITION_HEADER};
use crate::domain::{EventId, NodePath, SeatKind, SubscribeError};
use crate::platform::error::Error;

/// What a seat's stream is answered with.
pub(crate) enum Body {
    Stream(worker::web_sys::ReadableStream),
    Socket(worker::WebSocket),
    /// Nothing: the child's socket is already its.
    Fed,
    /// The stream has ended: what the listener missed and the `end` notice, as a finished
    /// body; none when it has everything (204).
    Finished(Option<String>),
    /// The stream has ended, and this node does not answer for it: the listener goes to
    /// the root.
    ToRoot,
}

impl<F: Face> StreamObject<F> {
    /// A stream's response, saying which node serves it; over a socket, also the id it
    /// goes on after, for the Worker that holds the stream to resume from.
    pub fn stream_response(
        &self,
        body: Body,
        position: EventId,
        headers: Headers,
    ) -> Result<Response, Error> {
        headers.set(NODE_HEADER, &self.path().to_string())?;
        match body {
            Body::Stream(body) => Ok(streaming(body, headers)),
            Body::Socket(socket) => {
                headers.set(POSITION_HEADER, &position.to_string())?;
                Ok(Response::from_websocket(socket)?.with_headers(headers))
            }
            Body::Fed => Err(Error::Contract("a child's feed is answered over".into())),
            Body::Finished(None) => Ok(Response::empty()?.with_status(204).with_headers(headers)),
            Body::Finished(Some(text)) => Ok(Response::ok(text)?.with_headers(headers)),
            Body::ToRoot => {
                let headers = Headers::new();
                headers.set(NODE_HEADER, &NodePath::root().to_string())?;
                Ok(Response::empty()?
                    .with_status(PLACED_STATUS)
                    .with_headers(headers))
            }
        }
    }
}

/// A 200 whose body is `body`, a stream.
fn streaming(body: worker::web_sys::ReadableStream, headers: Headers) -> Response {
    Response::builder()
        .with_status(200)
        .with_headers(headers)
        .stream(body)
}

/// What a seat the engine refused is answered: a listener of a stream that ended gets
/// its finale (on the root) or is sent to the root; any other refusal is an error.
pub(super) fn ended<F: Face>(e: SubscribeError, seat: &SeatKind<F::Filter>) -> Result<Body, Error> {
    match (e, seat) {
        (SubscribeError::Finished(finale), _) => Ok(Body::Finished(finale.body)),
        (SubscribeError::Ended, SeatKind::Listener(_)) => Ok(Body::ToRoot),
        (e, _) => Err(refused::<F>(e)),
    }
}

/// The answer to a seat the engine refused, a full stream naming the face's audience.
pub(super) fn refused<F: Face>(e: SubscribeError) -> Error {
    match e {
        SubscribeError::TooManyListeners { max } => Error::Full {
            max,
            stream: F::AUDIENCE,
        },
        e => e.into(),
    }
}
