//! What a publisher sends: reading and validating a publish request's body.
//!
//! The Worker validates with this before anything reaches a channel's object, and hands
//! the object the validated [`Message`] (see the platform's `contract`); a body is parsed
//! once.

use std::fmt;

use crate::protocol::FieldError;

mod body;
mod lines;
#[cfg(test)]
mod tests;

pub use lines::{LineError, LineReader};

/// Event types the service writes itself; a publisher may not use them, so a listener can
/// trust that such an event comes from the service.
pub const RESERVED_EVENT_TYPES: &[&str] = &[GAP_EVENT_TYPE, END_EVENT_TYPE];

/// The event type a resuming listener gets when part of what it missed is no longer kept.
pub const GAP_EVENT_TYPE: &str = "gap";

/// The event type of the last frame of a stream that ended: it carries the last id, and
/// the stream closes after it.
pub const END_EVENT_TYPE: &str = "end";

/// A validated message, ready to become an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub data: String,
    pub event_type: Option<String>,
    pub retry_ms: Option<u64>,
}

/// How the body of a publish request is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `{"data": ..., "event": "...", "retry": ms}`
    Json,
    /// `data=...&event=...&retry=ms` (`application/x-www-form-urlencoded`, as `curl -d` and
    /// HTML forms send, and as Mercure publishers do).
    Form,
    /// The body is the data; the event type comes from the query.
    Text,
    /// `application/x-ndjson`: one JSON object per line, each a message; published together.
    NdJson,
}

/// What one publish request carries: one message, or a batch published together (each
/// event with its own id, all stored at once and sent to each listener as one write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    One(Message),
    Batch(Vec<Message>),
}

/// Where in a batch a message is: a line of an NDJSON body, or an item of a JSON array
/// (both counted from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchPosition {
    Line(usize),
    Item(usize),
}

impl fmt::Display for BatchPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchPosition::Line(n) => write!(f, "line {n}"),
            BatchPosition::Item(n) => write!(f, "event {n} of the array"),
        }
    }
}

/// Limits that apply to a message.
#[derive(Debug, Clone, Copy)]
pub struct MessageLimits {
    pub max_event_type_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    UnsupportedContentType(String),
    /// A streaming publish whose content type is not NDJSON (none given counts as text).
    StreamNotNdJson(String),
    /// `?end=1` on a publish that is not a streaming one.
    EndWithoutStream,
    NotUtf8 {
        valid_up_to: usize,
    },
    /// A form field's name or value is not UTF-8 once percent-decoded.
    FormFieldNotUtf8 {
        field: String,
    },
    Json {
        line: usize,
        column: usize,
        reason: String,
    },
    NotAnObject,
    MissingData,
    DuplicateField(String),
    UnknownField(String),
    EventTypeNotAString,
    EventType(FieldError),
    EventTypeTooLong {
        max: usize,
    },
    ReservedEventType(String),
    BadRetry,
    /// One message of a batch is refused: the whole batch is.
    InBatch {
        position: BatchPosition,
        error: Box<PublishError>,
    },
    EmptyBatch,
    TooManyEvents {
        max: usize,
    },
}

impl PublishError {
    /// Whether the body's kind (its content type) is what was refused, rather than its content.
    pub fn is_unsupported_kind(&self) -> bool {
        matches!(
            self,
            PublishError::UnsupportedContentType(_) | PublishError::StreamNotNdJson(_)
        )
    }

    /// Whether the body holds more than a publish may (rather than something wrong).
    pub fn is_too_large(&self) -> bool {
        matches!(self, PublishError::TooManyEvents { .. })
    }
}

impl std::error::Error for PublishError {}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::UnsupportedContentType(t) => {
                write!(
                    f,
                    "unsupported content type {t:?}: send application/json, application/x-ndjson, application/x-www-form-urlencoded or text/plain"
                )
            }
            PublishError::StreamNotNdJson(t) => write!(
                f,
                "a streaming publish (?stream=1) is application/x-ndjson, one event per line, not {t:?}"
            ),
            PublishError::EndWithoutStream => f.write_str(
                "end=1 goes with stream=1; to end a channel, POST /channels/{name}/end"
            ),
            PublishError::NotUtf8 { valid_up_to } => {
                write!(
                    f,
                    "body is not valid UTF-8 (first bad byte at offset {valid_up_to})"
                )
            }
            PublishError::FormFieldNotUtf8 { field } => {
                write!(
                    f,
                    "form field {field:?} is not valid UTF-8 once percent-decoded"
                )
            }
            PublishError::Json {
                line,
                column,
                reason,
            } => {
                write!(
                    f,
                    "malformed JSON at line {line}, column {column}: {reason}"
                )
            }
            PublishError::NotAnObject => {
                write!(f, "JSON body must be an object like {{\"data\": ...}}")
            }
            PublishError::MissingData => write!(f, "body has no \"data\" field"),
            PublishError::DuplicateField(name) => {
                write!(f, "field {name:?} is given more than once")
            }
            PublishError::UnknownField(name) => {
                write!(
                    f,
                    "unknown field {name:?}: allowed are \"data\", \"event\" and \"retry\""
                )
            }
            PublishError::EventTypeNotAString => write!(f, "\"event\" must be a string"),
            PublishError::EventType(e) => write!(f, "{e}"),
            PublishError::EventTypeTooLong { max } => {
                write!(f, "event type is longer than {max} bytes")
            }
            PublishError::ReservedEventType(t) => {
                write!(
                    f,
                    "event type {t:?} is reserved for the service's own notices"
                )
            }
            PublishError::BadRetry => write!(f, "\"retry\" must be a whole number of milliseconds"),
            // A line of NDJSON is its own JSON text: say where on the body's line.
            PublishError::InBatch {
                position: BatchPosition::Line(n),
                error,
            } => match error.as_ref() {
                PublishError::Json { column, reason, .. } => {
                    write!(f, "line {n}, column {column}: malformed JSON: {reason}; nothing was published")
                }
                other => write!(f, "line {n}: {other}; nothing was published"),
            },
            PublishError::InBatch { position, error } => {
                write!(f, "{position}: {error}; nothing was published")
            }
            PublishError::EmptyBatch => write!(f, "the batch holds no event"),
            PublishError::TooManyEvents { max } => {
                write!(f, "a batch holds at most {max} events (MAX_BATCH_EVENTS)")
            }
        }
    }
}

impl BodyKind {
    /// Chooses by `Content-Type` (parameters such as `charset` are ignored). No content
    /// type is read as text.
    pub fn from_content_type(content_type: Option<&str>) -> Result<BodyKind, PublishError> {
        let Some(raw) = content_type else {
            return Ok(BodyKind::Text);
        };
        let essence = raw
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Ok(BodyKind::Json),
            "application/x-www-form-urlencoded" => Ok(BodyKind::Form),
            "application/x-ndjson" => Ok(BodyKind::NdJson),
            "" | "text/plain" => Ok(BodyKind::Text),
            _ => Err(PublishError::UnsupportedContentType(essence)),
        }
    }
}
