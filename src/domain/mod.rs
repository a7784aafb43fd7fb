//! Layer 2: the stream engine and its two faces' rules (channels, Mercure), the announcer,
//! seats' queues, ids and history policy.
//! Pure Rust and runtime-agnostic: the platform supplies an [`Outlet`] per listener and
//! an [`EventLog`] per channel.

pub mod announcer;
pub mod auth;
pub mod channel_name;
pub mod config;
pub mod form;
pub mod history;
pub mod hub;
pub mod lifetime;
pub mod mercure;
pub mod message;
pub mod origins;
pub mod stream;
pub mod tree;

pub use announcer::{Announcer, Fanout, Outlet};
pub use channel_name::{ChannelName, ChannelNameError, DEFAULT_CHANNEL};
pub use config::{Config, ConfigError, MercureConfig};
pub use history::{
    BadEventId, Ending, EventId, EventLog, HistoryPolicy, LogError, MemoryLog, StoredEvent,
};
pub use lifetime::{ChannelGone, Due, Grave, Lifetimes};
pub use message::{
    BodyKind, LineError, LineReader, Message, MessageLimits, Publication, PublishError,
    END_EVENT_TYPE, GAP_EVENT_TYPE,
};
pub use origins::AllowedOrigins;
pub use stream::{
    Counters, EndError, Everyone, Filter, Finale, Published, PublishedBatch, PublishedStream,
    Route, Seat, SeatKind, Stream, StreamEnded, StreamSettings, StreamStats, SubscribeError,
    KEEP_ALIVE_COMMENT,
};
pub use tree::{NodePath, Place, Region, TreeSettings};
