//! Layer 2: channels, the announcer, listener queues, ids and history policy.
//! Pure Rust and runtime-agnostic: the platform supplies an [`Outlet`] per listener and
//! an [`EventLog`] per channel.

pub mod announcer;
pub mod auth;
pub mod channel;
pub mod channel_name;
pub mod config;
pub mod form;
pub mod history;
pub mod hub;
pub mod mercure;
pub mod message;
pub mod origins;
pub mod stream;
pub mod tree;

pub use announcer::{Announcer, Fanout, Outlet};
pub use channel::{
    Channel, ChannelSettings, ChannelStats, Published, PublishedBatch, SeatKind, SubscribeError,
};
pub use channel_name::{ChannelName, ChannelNameError, DEFAULT_CHANNEL};
pub use config::{Config, ConfigError, MercureConfig};
pub use history::{BadEventId, EventId, EventLog, HistoryPolicy, LogError, MemoryLog, StoredEvent};
pub use message::{BodyKind, Message, MessageLimits, Publication, PublishError, GAP_EVENT_TYPE};
pub use origins::AllowedOrigins;
pub use stream::Counters;
pub use stream::{Everyone, Filter, Route, Seat};
pub use tree::{NodePath, Place, Region, TreeSettings};
