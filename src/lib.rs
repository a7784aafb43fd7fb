//! Server-sent events publish/subscribe on Cloudflare Workers.
//!
//! Three layers:
//! - [`protocol`]: the `text/event-stream` encoder (and a parser for tests);
//! - [`domain`]: channels, the announcer, queues, ids and history, runtime-agnostic;
//! - [`platform`]: the Worker's routes and the Durable Object that hosts a channel.

pub mod domain;
pub mod platform;
pub mod protocol;
