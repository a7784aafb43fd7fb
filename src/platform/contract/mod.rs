//! The one contract between the Worker and its Durable Objects, and between the objects
//! of a tree: the requests an object understands ([`StreamRequest`]), addressed to one
//! object of a channel or of the hub ([`StreamCall`], [`Target`]); how a call is sent
//! (`send`) and read back (`read`), and its wire form. Both ends live here and are tested
//! as pairs.
//!
//! On the wire a call is an internal HTTP request (a stub routes by object, not by URL,
//! so the origin is never resolved). The Worker has already validated everything.
//!
//! A stream's objects form a tree (see [`crate::domain::tree`]); a call names the node
//! it is for (the root unless said). Nodes talk to each other over the same contract: a
//! child takes its stream from its parent with [`StreamRequest::Relay`] (or, with objects
//! that sleep, has the parent open a socket to feed it: [`StreamRequest::FeedMe`],
//! [`StreamRequest::Feed`]), asks it for a
//! resume it does not hold with [`StreamRequest::Replay`], and reports its audience
//! with [`StreamRequest::Report`]. Two answers carry more than a body: a node that sends
//! a listener further down answers [`PLACED_STATUS`] with the node in [`NODE_HEADER`],
//! and a stream or replay says the id it goes on after in [`POSITION_HEADER`].

mod call;
mod graves;
mod walk;
mod wire;

pub use call::{
    Delivery, StreamCall, StreamRequest, SubscriberCall, SubscriptionsCall, Target, UpdateCall,
};
pub use graves::{GraveCall, GRAVES_BINDING};
pub use wire::Wire;

use crate::domain::announcer::Departure;

/// The Durable Object namespace bindings (wrangler.toml `[[durable_objects.bindings]]`).
pub const CHANNEL_BINDING: &str = "CHANNEL";
pub const HUB_BINDING: &str = "HUB";
/// The hub's root object's name (its nodes' names are made from it).
const HUB_NAME: &str = "hub";

/// The status of a listen that a node sends further down its tree: not a stream.
pub const PLACED_STATUS: u16 = 307;
/// The node a listen goes to next ([`PLACED_STATUS`]), or, on a stream, the node that
/// serves it.
pub const NODE_HEADER: &str = "Sse-Node";
/// On a call that asks for a socket ([`Delivery::Socket`]): the call's body,
/// percent-encoded, since an upgrade request carries none.
pub const UPGRADE_BODY_HEADER: &str = "Sse-Call-Body";
/// On a stream or a replay: the id after which it goes on.
pub const POSITION_HEADER: &str = "Sse-Position";

/// How a socket that carries a listener's stream ([`Delivery::Socket`]) closes, and what
/// each end does then. The object closes with [`SOCKET_ENDED`] when the stream is over (a
/// token expired): the Worker ends the response after what it has queued. The Worker
/// closes with [`SOCKET_SLOW`] or [`SOCKET_GONE`] when it cut the listener: the object
/// lets the seat go and counts why. Any other close (the object failed or restarted) has
/// the Worker attach again, resuming after the last id it passed on.
pub const SOCKET_ENDED: u16 = 1000;
/// The listener's queue in the Worker was full.
pub const SOCKET_SLOW: u16 = 4000;
/// The listener's client went away or stopped reading.
pub const SOCKET_GONE: u16 = 4001;
/// An object that does not go on with a socket's seat (a fresh instance of a node, or one
/// whose state was lost, which cannot know what it wrote) closes with this: the Worker
/// attaches again.
pub const SOCKET_RESTART: u16 = 1012;

/// The reason a Worker gives when it closes a seat's socket with [`SOCKET_SLOW`] or
/// [`SOCKET_GONE`]: how many events of what the object sent it did not pass on (the chunk
/// that found the listener's queue full or its client gone), which the object then counts
/// as delivered no more.
pub fn cut_reason(undelivered: u64) -> String {
    undelivered.to_string()
}

/// What a socket's close says of its seat: why the Worker cut it and how many events it
/// did not pass on ([`cut_reason`]); any other close is a seat gone with its socket.
pub fn cut_of(code: u16, reason: &str) -> (Departure, u64) {
    let undelivered = || reason.trim().parse().unwrap_or(0);
    match code {
        SOCKET_SLOW => (Departure::Slow, undelivered()),
        SOCKET_GONE => (Departure::Gone, undelivered()),
        _ => (Departure::Gone, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_reads_back_as_the_worker_gave_it_and_other_closes_undelivered_nothing() {
        assert_eq!(cut_of(SOCKET_SLOW, &cut_reason(3)), (Departure::Slow, 3));
        assert_eq!(cut_of(SOCKET_GONE, &cut_reason(0)), (Departure::Gone, 0));
        assert_eq!(cut_of(SOCKET_GONE, "not a number"), (Departure::Gone, 0));
        assert_eq!(cut_of(1006, "7"), (Departure::Gone, 0));
    }
}
