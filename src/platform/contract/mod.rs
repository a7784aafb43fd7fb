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

mod channel;
mod hub;
mod walk;

pub use channel::{ChannelCall, ChannelRequest, Wire};
pub use hub::HubCall;

/// The Durable Object namespace bindings (wrangler.toml `[[durable_objects.bindings]]`).
pub const CHANNEL_BINDING: &str = "CHANNEL";
pub const HUB_BINDING: &str = "HUB";
/// The one hub object's name.
const HUB_NAME: &str = "hub";
const HUB_URL: &str = "https://hub.internal/";

/// The status of a listen that a node sends further down its tree: not a stream.
pub const PLACED_STATUS: u16 = 307;
/// The node a listen goes to next ([`PLACED_STATUS`]), or, on a stream, the node that
/// serves it.
pub const NODE_HEADER: &str = "Sse-Node";
/// On a stream or a replay: the id after which it goes on.
pub const POSITION_HEADER: &str = "Sse-Position";
