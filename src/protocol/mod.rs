//! Layer 1: the `text/event-stream` wire format. Pure Rust, no runtime types.

pub mod encoder;
pub mod frames;
pub mod parser;

pub use encoder::{check_event_type, check_id, comment, retry, Event, FieldError};
pub use frames::{ending, last_id, relayed, FrameReader, RawFrame};
pub use parser::{ParsedEvent, Parser};
