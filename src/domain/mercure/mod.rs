//! The Mercure hub's rules (`/.well-known/mercure`), pure and runtime-agnostic: topic
//! matching, token verification, the publish form, the subscribe query and the active
//! subscriptions' documents and paths. The platform reads requests, asks these, and answers.
//!
//! Section numbers (§) refer to the requirement list `mercure-hub.md`.

pub mod subscribe;
pub mod subscriptions;
mod template;
pub mod text;
pub mod token;
pub mod topic;
pub mod update;

pub use subscribe::{QueryError, SubscribeQuery};
pub use subscriptions::{enc, ApiPath, Subscription};
pub use token::{verify, Action, Generation, Grants, TokenContext, TokenError};
pub use topic::{MatcherError, MatcherKind, TopicMatcher, TopicSpec};
pub use update::{Update, UpdateError, UpdateForm};

/// The hub's own path; topics under it are the hub's (§4.4, §7).
pub const HUB_PATH: &str = "/.well-known/mercure";

/// At most this many matchers in one subscribe request (§6.2).
pub const MAX_MATCHERS: usize = 100;

/// A matcher is at most this many bytes (§6.2).
pub const MAX_MATCHER_BYTES: usize = 4096;
