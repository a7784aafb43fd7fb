//! What a publisher sends: reading and validating a publish request's body.
//!
//! The Worker validates with this before anything reaches a channel's object, then
//! forwards the message in its canonical JSON form ([`Message::to_json`]), which the
//! object reads back with the same function.

use std::fmt;

use serde_json::{Map, Value};

use crate::protocol::{check_event_type, Event, FieldError};

use super::history::EventId;

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
    BadRetry,
}

impl PublishError {
    /// The HTTP status this error deserves.
    pub fn status(&self) -> u16 {
        match self {
            PublishError::UnsupportedContentType(_) => 415,
            _ => 400,
        }
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::UnsupportedContentType(t) => {
                write!(
                    f,
                    "unsupported content type {t:?}: send application/json, application/x-www-form-urlencoded or text/plain"
                )
            }
            PublishError::NotUtf8 { valid_up_to } => {
                write!(
                    f,
                    "body is not valid UTF-8 (first bad byte at offset {valid_up_to})"
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
            PublishError::BadRetry => write!(f, "\"retry\" must be a whole number of milliseconds"),
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
            "" | "text/plain" => Ok(BodyKind::Text),
            _ => Err(PublishError::UnsupportedContentType(essence)),
        }
    }
}

impl Message {
    /// Reads a publish body. `query_event` is the `?event=` parameter (text bodies only;
    /// a JSON body's own `event` field wins over it).
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
            BodyKind::Json => Self::from_json(text, query_event)?,
            BodyKind::Form => Self::from_form(text, query_event)?,
        };
        if let Some(t) = &message.event_type {
            check_event_type(t).map_err(PublishError::EventType)?;
            if t.len() > limits.max_event_type_bytes {
                return Err(PublishError::EventTypeTooLong {
                    max: limits.max_event_type_bytes,
                });
            }
        }
        Ok(message)
    }

    fn from_json(text: &str, query_event: Option<&str>) -> Result<Message, PublishError> {
        let value: Value = serde_json::from_str(text).map_err(|e| PublishError::Json {
            line: e.line(),
            column: e.column(),
            reason: json_reason(&e),
        })?;
        let Value::Object(object) = value else {
            return Err(PublishError::NotAnObject);
        };
        Self::from_fields(object, query_event)
    }

    fn from_form(text: &str, query_event: Option<&str>) -> Result<Message, PublishError> {
        let mut fields = Map::new();
        for (name, value) in form_urlencoded::parse(text.as_bytes()) {
            // A form's retry is text; as a number it reads like JSON's.
            let value = match (name.as_ref(), value.parse::<u64>()) {
                ("retry", Ok(ms)) => Value::from(ms),
                _ => Value::String(value.into_owned()),
            };
            if fields.insert(name.to_string(), value).is_some() {
                return Err(PublishError::DuplicateField(name.into_owned()));
            }
        }
        Self::from_fields(fields, query_event)
    }

    /// The fields of a JSON object or a form, checked the same way.
    fn from_fields(
        mut object: Map<String, Value>,
        query_event: Option<&str>,
    ) -> Result<Message, PublishError> {
        if let Some(unknown) = object
            .keys()
            .find(|k| !["data", "event", "retry"].contains(&k.as_str()))
        {
            return Err(PublishError::UnknownField(unknown.clone()));
        }
        let data = match object.remove("data") {
            None => return Err(PublishError::MissingData),
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
        };
        let event_type = match object.remove("event") {
            None | Some(Value::Null) => query_event.map(str::to_string),
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(PublishError::EventTypeNotAString),
        };
        let retry_ms = match object.remove("retry") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or(PublishError::BadRetry)?),
        };
        Ok(Message {
            data,
            event_type,
            retry_ms,
        })
    }

    /// The canonical JSON form, as the Worker forwards it to a channel's object.
    pub fn to_json(&self) -> String {
        let mut object = Map::new();
        object.insert("data".into(), Value::String(self.data.clone()));
        if let Some(t) = &self.event_type {
            object.insert("event".into(), Value::String(t.clone()));
        }
        if let Some(r) = self.retry_ms {
            object.insert("retry".into(), Value::from(r));
        }
        Value::Object(object).to_string()
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

    #[test]
    fn json_bodies() {
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
    fn json_errors_say_where() {
        match json("{\"data\": \n tru}") {
            Err(PublishError::Json {
                line: 2, column, ..
            }) => assert!(column > 0),
            other => panic!("{other:?}"),
        }
        assert_eq!(json("[1]"), Err(PublishError::NotAnObject));
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
    }

    #[test]
    fn text_bodies() {
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
    fn form_bodies() {
        let form = |body: &str| Message::parse(BodyKind::Form, body.as_bytes(), Some("q"), LIMITS);
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
        assert_eq!(
            form("hello"),
            Err(PublishError::UnknownField("hello".into()))
        );
        assert_eq!(form(""), Err(PublishError::MissingData));
        assert_eq!(
            form("data=1&data=2"),
            Err(PublishError::DuplicateField("data".into()))
        );
        assert_eq!(form("data=x&retry=soon"), Err(PublishError::BadRetry));
        assert_eq!(
            form("data=x&event=a%0Db"),
            Err(PublishError::EventType(FieldError::EventTypeHasLineBreak))
        );
    }

    #[test]
    fn content_types() {
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
        assert_eq!(e.status(), 415);
    }

    #[test]
    fn canonical_json_round_trips() {
        let m = Message {
            data: "a\r\nb \"q\"".into(),
            event_type: Some("t".into()),
            retry_ms: Some(5),
        };
        assert_eq!(
            Message::parse(BodyKind::Json, m.to_json().as_bytes(), None, LIMITS).unwrap(),
            m
        );
    }
}
