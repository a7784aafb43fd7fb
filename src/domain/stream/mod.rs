//! The stream engine: events with ids and history, fanned out to seats. What every face
//! (channels, the Mercure hub) shares lives here.

mod counters;
mod outbox;
pub(crate) mod route;
mod seat;

pub use counters::Counters;
pub(crate) use outbox::Outbox;
pub use route::{Everyone, Filter, Route};
pub use seat::Seat;
