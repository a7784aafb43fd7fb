//! What a publisher sends: reading and validating a publish request's body.
//!
//! The Worker validates with this before anything reaches a channel's object, and hands
//! the object the validated [`Message`] (see the platform's `contract`); a body is parsed
//! once.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::protocol::{check_event_type, Event, FieldError};

use super::form;
use super::history::EventId;

/// Event types the service writes itself; a publisher may not use them, so a listener can
/// trust that such an event comes from the service.
pub const RESERVED_EVENT_TYPES: &[&str] = &[GAP_EVENT_TYPE];

/// The event type a resuming listener gets when part of what it missed is no longer kept.
pub const GAP_EVENT_TYPE: &str = "gap";

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
        matches!(self, PublishError::UnsupportedContentType(_))
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

/// A body's fields in the order given, repeats kept so that they can be refused.
type Fields = Vec<(String, Value)>;

impl Message {
    /// Reads a publish body. `query_event` is the `?event=` parameter (used when the body
    /// does not set the type itself).
    pub fn parse(
        kind: BodyKind,
        body: &[u8],
        query_event: Option<&str>,
        limits: MessageLimits,
    ) -> Result<Message, PublishError> {
        let text = std::str::from_utf8(body).map_err(|e| PublishError::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        })?;
        let message = match kind {
            BodyKind::Text => Message {
                data: text.to_string(),
                event_type: query_event.map(str::to_string),
                retry_ms: None,
            },
            BodyKind::Json | BodyKind::NdJson => {
                Self::from_fields(json_fields(text)?, query_event)?
            }
            BodyKind::Form => Self::from_fields(form_fields(text)?, query_event)?,
        };
        message.check(limits)?;
        Ok(message)
    }

    /// The rules every message's event type follows, wherever it came from.
    fn check(&self, limits: MessageLimits) -> Result<(), PublishError> {
        if let Some(t) = &self.event_type {
            check_event_type(t).map_err(PublishError::EventType)?;
            if t.len() > limits.max_event_type_bytes {
                return Err(PublishError::EventTypeTooLong {
                    max: limits.max_event_type_bytes,
                });
            }
            if RESERVED_EVENT_TYPES.contains(&t.as_str()) {
                return Err(PublishError::ReservedEventType(t.clone()));
            }
        }
        Ok(())
    }

    /// The fields of a JSON object or a form, checked the same way.
    fn from_fields(fields: Fields, query_event: Option<&str>) -> Result<Message, PublishError> {
        let mut data = None;
        let mut event = None;
        let mut retry = None;
        for (name, value) in fields {
            let slot = match name.as_str() {
                "data" => &mut data,
                "event" => &mut event,
                "retry" => &mut retry,
                _ => return Err(PublishError::UnknownField(name)),
            };
            // The channel's rule, in JSON as in forms: a repeated field is refused, since
            // which of two values was meant cannot be known.
            if slot.replace(value).is_some() {
                return Err(PublishError::DuplicateField(name));
            }
        }
        let data = match data.ok_or(PublishError::MissingData)? {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let event_type = match event {
            None | Some(Value::Null) => query_event.map(str::to_string),
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(PublishError::EventTypeNotAString),
        };
        let retry_ms = match retry {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or(PublishError::BadRetry)?),
        };
        Ok(Message {
            data,
            event_type,
            retry_ms,
        })
    }

    /// The event this message becomes once it has an id.
    pub fn to_event(&self, id: EventId) -> Event {
        let event = Event::new(self.data.clone());
        let event = match &self.event_type {
            // Validated when the message was parsed; re-checked here by the builder.
            Some(t) => event
                .with_type(t.clone())
                .unwrap_or_else(|_| Event::new(self.data.clone())),
            None => event,
        };
        let event = event
            .with_id(id.to_string())
            .expect("a decimal id is always valid");
        match self.retry_ms {
            Some(r) => event.with_retry(r),
            None => event,
        }
    }
}

/// A JSON body's members. Read with a visitor rather than into a map, which would keep
/// only the last of two equal keys.
fn json_fields(text: &str) -> Result<Fields, PublishError> {
    match parse_top_level(text)? {
        TopLevel::Object(members) => Ok(members),
        TopLevel::Array(_) | TopLevel::Other => Err(PublishError::NotAnObject),
    }
}

impl Publication {
    /// Reads a publish body: a JSON array or NDJSON is a batch of at most `max_events`
    /// messages, each the shape of a single JSON publish; one bad message refuses the
    /// whole batch, naming it. Anything else is one message ([`Message::parse`]).
    pub fn parse(
        kind: BodyKind,
        body: &[u8],
        query_event: Option<&str>,
        limits: MessageLimits,
        max_events: usize,
    ) -> Result<Publication, PublishError> {
        let items: Vec<(BatchPosition, Result<Fields, PublishError>)> = match kind {
            BodyKind::NdJson => {
                let text = std::str::from_utf8(body).map_err(|e| PublishError::NotUtf8 {
                    valid_up_to: e.valid_up_to(),
                })?;
                text.lines()
                    .enumerate()
                    .filter(|(_, line)| !line.trim().is_empty())
                    .map(|(i, line)| (BatchPosition::Line(i + 1), json_fields(line)))
                    .collect()
            }
            BodyKind::Json if looks_like_array(body) => {
                let text = std::str::from_utf8(body).map_err(|e| PublishError::NotUtf8 {
                    valid_up_to: e.valid_up_to(),
                })?;
                let TopLevel::Array(items) = parse_top_level(text)? else {
                    return Err(PublishError::NotAnObject);
                };
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let fields = match item {
                            TopLevel::Object(fields) => Ok(fields),
                            _ => Err(PublishError::NotAnObject),
                        };
                        (BatchPosition::Item(i + 1), fields)
                    })
                    .collect()
            }
            _ => return Message::parse(kind, body, query_event, limits).map(Publication::One),
        };
        if items.is_empty() {
            return Err(PublishError::EmptyBatch);
        }
        if items.len() > max_events {
            return Err(PublishError::TooManyEvents { max: max_events });
        }
        let mut batch = Vec::with_capacity(items.len());
        for (position, fields) in items {
            let message = fields
                .and_then(|fields| Message::from_fields(fields, query_event))
                .and_then(|message| message.check(limits).map(|()| message))
                .map_err(|error| PublishError::InBatch {
                    position,
                    error: Box::new(error),
                })?;
            batch.push(message);
        }
        Ok(Publication::Batch(batch))
    }
}

/// Whether a JSON body is an array (its first non-blank byte is `[`).
fn looks_like_array(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

fn parse_top_level(text: &str) -> Result<TopLevel, PublishError> {
    serde_json::from_str(text).map_err(|e| PublishError::Json {
        line: e.line(),
        column: e.column(),
        reason: json_reason(&e),
    })
}

/// A JSON text's top level: an object's members (repeats kept), an array's items, or
/// anything else.
enum TopLevel {
    Object(Fields),
    Array(Vec<TopLevel>),
    Other,
}

impl<'de> serde::Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TopLevelVisitor)
    }
}

struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
        let mut members = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            members.push((name, map.next_value::<Value>()?));
        }
        Ok(TopLevel::Object(members))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TopLevel, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<TopLevel>()? {
            items.push(item);
        }
        Ok(TopLevel::Array(items))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }
}

/// A form body's fields, decoded by the one form decoder (a field that is not UTF-8 is
/// refused, not altered). A form's `retry` is text; as a number it reads like JSON's.
fn form_fields(text: &str) -> Result<Fields, PublishError> {
    let pairs = form::pairs(text.as_bytes())
        .map_err(|e| PublishError::FormFieldNotUtf8 { field: e.field })?;
    Ok(pairs
        .into_iter()
        .map(|(name, value)| {
            let value = match (name.as_str(), value.parse::<u64>()) {
                ("retry", Ok(ms)) => Value::from(ms),
                _ => Value::String(value),
            };
            (name, value)
        })
        .collect())
}

fn json_reason(e: &serde_json::Error) -> String {
    // serde_json's message ends with " at line L column C"; we say where ourselves.
    let full = e.to_string();
    match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: MessageLimits = MessageLimits {
        max_event_type_bytes: 16,
    };

    fn json(body: &str) -> Result<Message, PublishError> {
        Message::parse(BodyKind::Json, body.as_bytes(), None, LIMITS)
    }

    fn form(body: &str) -> Result<Message, PublishError> {
        Message::parse(BodyKind::Form, body.as_bytes(), Some("q"), LIMITS)
    }

    #[test]
    fn json_data_is_sent_as_is_when_a_string_and_as_compact_json_otherwise() {
        assert_eq!(json(r#"{"data":"hi"}"#).unwrap().data, "hi");
        assert_eq!(
            json(r#"{"data":{"a":[1, 2]}}"#).unwrap().data,
            r#"{"a":[1,2]}"#
        );
        assert_eq!(json(r#"{"data":42}"#).unwrap().data, "42");
        let m = json(r#"{"data":"x","event":"note","retry":300}"#).unwrap();
        assert_eq!(
            (m.event_type.as_deref(), m.retry_ms),
            (Some("note"), Some(300))
        );
    }

    #[test]
    fn json_errors_say_what_and_where() {
        match json("{\"data\": \n tru}") {
            Err(PublishError::Json {
                line: 2, column, ..
            }) => assert!(column > 0),
            other => panic!("{other:?}"),
        }
        for not_an_object in ["[1]", "[]", "3", "\"x\"", "null", "true", "-1.5"] {
            assert_eq!(
                json(not_an_object),
                Err(PublishError::NotAnObject),
                "{not_an_object}"
            );
        }
        assert_eq!(json("{}"), Err(PublishError::MissingData));
        assert_eq!(
            json(r#"{"data":"x","typ":"a"}"#),
            Err(PublishError::UnknownField("typ".into()))
        );
        assert_eq!(
            json(r#"{"data":"x","event":3}"#),
            Err(PublishError::EventTypeNotAString)
        );
        assert_eq!(
            json(r#"{"data":"x","event":"a\nb"}"#),
            Err(PublishError::EventType(FieldError::EventTypeHasLineBreak))
        );
        assert_eq!(
            json(r#"{"data":"x","event":"aaaaaaaaaaaaaaaaa"}"#),
            Err(PublishError::EventTypeTooLong { max: 16 })
        );
        assert_eq!(
            json(r#"{"data":"x","retry":-1}"#),
            Err(PublishError::BadRetry)
        );
        let e = json("{\"data\": \"x\"").unwrap_err().to_string();
        assert!(e.starts_with("malformed JSON at line 1, column"), "{e}");
        assert!(json(r#"{"data":"x"} {}"#).is_err(), "trailing content");
    }

    #[test]
    fn a_repeated_json_field_is_refused_like_a_repeated_form_field() {
        for (body, field) in [
            (r#"{"data":"a","data":"b"}"#, "data"),
            (r#"{"data":"a","event":"x","event":"y"}"#, "event"),
            (r#"{"retry":1,"data":"a","retry":2}"#, "retry"),
            (r#"{"data":"a","event":null,"event":"y"}"#, "event"),
        ] {
            assert_eq!(
                json(body),
                Err(PublishError::DuplicateField(field.into())),
                "{body}"
            );
        }
        assert_eq!(
            form("data=1&data=2"),
            Err(PublishError::DuplicateField("data".into()))
        );
        // Keys repeated inside the data value are the data's own business.
        assert_eq!(
            json(r#"{"data":{"a":1,"b":2}}"#).unwrap().data,
            r#"{"a":1,"b":2}"#
        );
    }

    #[test]
    fn text_bodies_are_the_data_and_take_their_type_from_the_query() {
        let m = Message::parse(BodyKind::Text, "a\nb".as_bytes(), Some("t"), LIMITS).unwrap();
        assert_eq!(
            m,
            Message {
                data: "a\nb".into(),
                event_type: Some("t".into()),
                retry_ms: None
            }
        );
        assert_eq!(
            Message::parse(BodyKind::Text, &[0x66, 0xff], None, LIMITS),
            Err(PublishError::NotUtf8 { valid_up_to: 1 })
        );
        assert!(Message::parse(BodyKind::Text, b"x", Some("a\rb"), LIMITS).is_err());
    }

    #[test]
    fn form_bodies_are_read_as_data_event_and_retry_fields() {
        let m = form("data=a%0Ab+c&event=note&retry=250").unwrap();
        assert_eq!(
            m,
            Message {
                data: "a\nb c".into(),
                event_type: Some("note".into()),
                retry_ms: Some(250)
            }
        );
        assert_eq!(form("data=x").unwrap().event_type.as_deref(), Some("q"));
        assert_eq!(form("data=").unwrap().data, "");
        assert_eq!(form("data").unwrap().data, "");
        assert_eq!(form("&data=%C3%A9&").unwrap().data, "é");
        assert_eq!(form("data=100%25+sure").unwrap().data, "100% sure");
        assert_eq!(
            form("hello"),
            Err(PublishError::UnknownField("hello".into()))
        );
        assert_eq!(form(""), Err(PublishError::MissingData));
        assert_eq!(form("data=x&retry=soon"), Err(PublishError::BadRetry));
        assert_eq!(
            form("data=x&event=a%0Db"),
            Err(PublishError::EventType(FieldError::EventTypeHasLineBreak))
        );
    }

    #[test]
    fn form_fields_that_are_not_utf8_once_decoded_are_refused_not_altered() {
        assert_eq!(
            form("data=%FF%FE"),
            Err(PublishError::FormFieldNotUtf8 {
                field: "data".into()
            })
        );
        assert_eq!(
            form("data=ok&event=%C3"),
            Err(PublishError::FormFieldNotUtf8 {
                field: "event".into()
            })
        );
        assert!(matches!(
            form("d%FFta=x"),
            Err(PublishError::FormFieldNotUtf8 { .. })
        ));
    }

    #[test]
    fn the_services_own_event_types_are_refused_from_publishers() {
        let reserved = Err(PublishError::ReservedEventType("gap".into()));
        assert_eq!(json(r#"{"data":"x","event":"gap"}"#), reserved);
        assert_eq!(form("data=x&event=gap"), reserved);
        assert_eq!(
            Message::parse(BodyKind::Text, b"x", Some("gap"), LIMITS),
            reserved
        );
        // Event types are case-sensitive in EventSource: only the exact name is the service's.
        assert!(json(r#"{"data":"x","event":"Gap"}"#).is_ok());
        assert!(json(r#"{"data":"x","event":"gaps"}"#).is_ok());
    }

    #[test]
    fn the_content_type_chooses_how_a_body_is_read() {
        assert_eq!(
            BodyKind::from_content_type(Some("application/json; charset=utf-8")),
            Ok(BodyKind::Json)
        );
        assert_eq!(
            BodyKind::from_content_type(Some("Text/Plain")),
            Ok(BodyKind::Text)
        );
        assert_eq!(BodyKind::from_content_type(None), Ok(BodyKind::Text));
        assert_eq!(
            BodyKind::from_content_type(Some("application/x-www-form-urlencoded")),
            Ok(BodyKind::Form)
        );
        let e = BodyKind::from_content_type(Some("image/png")).unwrap_err();
        assert!(e.is_unsupported_kind());
    }

    fn batch(kind: BodyKind, body: &str) -> Result<Publication, PublishError> {
        Publication::parse(kind, body.as_bytes(), None, LIMITS, 3)
    }

    fn datas(p: Publication) -> Vec<String> {
        match p {
            Publication::Batch(messages) => messages.into_iter().map(|m| m.data).collect(),
            Publication::One(m) => panic!("one message, not a batch: {m:?}"),
        }
    }

    #[test]
    fn ndjson_and_json_arrays_are_batches_of_single_publishes() {
        let nd = batch(
            BodyKind::NdJson,
            "{\"data\":\"a\"}\r\n\n{\"data\":{\"b\":1},\"event\":\"t\"}\n",
        )
        .unwrap();
        assert_eq!(datas(nd), ["a", r#"{"b":1}"#]);
        let array = batch(BodyKind::Json, r#" [{"data":"x"},{"data":"y","retry":5}]"#).unwrap();
        assert_eq!(datas(array), ["x", "y"]);
        // A JSON object is still one publish.
        assert!(matches!(
            batch(BodyKind::Json, r#"{"data":"one"}"#).unwrap(),
            Publication::One(_)
        ));
        assert_eq!(
            BodyKind::from_content_type(Some("application/x-ndjson")),
            Ok(BodyKind::NdJson)
        );
    }

    #[test]
    fn one_bad_message_refuses_the_whole_batch_naming_it() {
        let e = batch(
            BodyKind::NdJson,
            "{\"data\":\"a\"}\n{\"data\":\"b\"}\n{\"data\": tru}\n",
        )
        .unwrap_err();
        assert!(
            matches!(&e, PublishError::InBatch { position: BatchPosition::Line(3), error } if matches!(**error, PublishError::Json { .. })),
            "{e:?}"
        );
        let shown = e.to_string();
        assert!(shown.starts_with("line 3, column"), "{shown}");
        assert!(shown.ends_with("nothing was published"), "{shown}");
        let e = batch(
            BodyKind::Json,
            r#"[{"data":"a"},{"data":"b","event":"gap"}]"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            PublishError::InBatch {
                position: BatchPosition::Item(2),
                error: Box::new(PublishError::ReservedEventType("gap".into()))
            }
        );
        assert!(e.to_string().starts_with("event 2 of the array: "), "{e}");
        for bad in [r#"[{"data":"a"}, 3]"#, r#"[[{"data":"a"}]]"#] {
            assert!(matches!(
                batch(BodyKind::Json, bad),
                Err(PublishError::InBatch { .. })
            ));
        }
        assert!(matches!(
            batch(BodyKind::NdJson, "{\"data\":\"a\",\"data\":\"b\"}"),
            Err(PublishError::InBatch { error, .. }) if *error == PublishError::DuplicateField("data".into())
        ));
        assert!(matches!(
            batch(BodyKind::Json, r#"[{"data":"a"}"#),
            Err(PublishError::Json { .. })
        ));
    }

    #[test]
    fn a_batch_holds_one_to_max_batch_events_messages() {
        assert_eq!(batch(BodyKind::Json, "[]"), Err(PublishError::EmptyBatch));
        assert_eq!(
            batch(BodyKind::NdJson, "\n \n"),
            Err(PublishError::EmptyBatch)
        );
        let four = "{\"data\":1}\n".repeat(4);
        let e = batch(BodyKind::NdJson, &four).unwrap_err();
        assert_eq!(e, PublishError::TooManyEvents { max: 3 });
        assert!(e.is_too_large());
        assert_eq!(
            datas(batch(BodyKind::NdJson, &"{\"data\":1}\n".repeat(3)).unwrap()).len(),
            3
        );
    }
}
