//! The stream engine: events with ids and history, fanned out to seats. What every face
//! (channels, the Mercure hub) shares lives here: one object's share of a stream
//! ([`Stream`], in `engine/`: the root's and a node's strategies, replays, answers), its
//! seats and filters, the outbox and the counters.

mod counters;
mod engine;
mod outbox;
pub(crate) mod route;
mod seat;

pub use counters::Counters;
pub use engine::{
    EndError, Finale, Published, PublishedBatch, PublishedStream, SeatKind, Stream, StreamEnded,
    StreamSettings, StreamStats, SubscribeError, KEEP_ALIVE_COMMENT,
};
pub(crate) use outbox::Outbox;
pub use route::{Everyone, Filter, Route};
pub use seat::Seat;
