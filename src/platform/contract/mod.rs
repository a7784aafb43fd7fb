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
//! child takes its stream from its parent with [`StreamRequest::Relay`], asks it for a
//! resume it does not hold with [`StreamRequest::Replay`], and reports its audience
//! with [`StreamRequest::Report`]. Two answers carry more than a body: a node that sends
//! a listener further down answers [`PLACED_STATUS`] with the node in [`NODE_HEADER`],
//! and a stream or replay says the id it goes on after in [`POSITION_HEADER`].

mod call;
mod walk;
mod wire;

pub use call::{StreamCall, StreamRequest, SubscriberCall, SubscriptionsCall, Target, UpdateCall};
pub use wire::Wire;

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
/// On a stream or a replay: the id after which it goes on.
pub const POSITION_HEADER: &str = "Sse-Position";
