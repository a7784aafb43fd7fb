//! Reading a publish body: JSON (repeated keys kept, so they can be refused), a form,
//! text, and batches (NDJSON lines or a JSON array), into validated messages.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::*;
use crate::domain::form;
use crate::domain::history::EventId;
use crate::protocol::{check_event_type, Event};

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

/// One line of a streaming publish (NDJSON): a message, or none when the line is blank.
pub(super) fn ndjson_line(
    line: &[u8],
    limits: MessageLimits,
) -> Result<Option<Message>, PublishError> {
    let text = std::str::from_utf8(line).map_err(|e| PublishError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let message = Message::from_fields(json_fields(text)?, None)?;
    message.check(limits)?;
    Ok(Some(message))
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
