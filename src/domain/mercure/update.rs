//! Publishing (§4.2–§4.6): the form a publisher posts, read in the steps the hub runs them
//! (§4.1): [`UpdateForm::parse`] decodes the body, [`UpdateForm::topics`] checks that there
//! are topics, the platform checks the token's grants on them, and
//! [`UpdateForm::validate`] applies the field rules and yields the [`Update`].

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

use super::text::has_control;
use super::token::{Action, Grants};
use super::topic::{TopicMatcher, WILDCARD};
use super::{EARLIEST, HUB_PATH};
use crate::domain::form;

/// At most this many topics in one update (§4.3).
pub const MAX_TOPICS: usize = 100;

/// The event type only the hub's own updates carry (§7.2).
pub const RESERVED_EVENT_TYPE: &str = "mercure";

/// How long an update's fields may be, in bytes (`MERCURE_MAX_ID_BYTES`,
/// `MAX_EVENT_TYPE_BYTES`, `MERCURE_MAX_TOPIC_BYTES`): the hub keeps each in its history
/// and sends the id and type to every subscriber it reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLimits {
    pub id_bytes: usize,
    pub type_bytes: usize,
    pub topic_bytes: usize,
}

impl Default for FieldLimits {
    fn default() -> Self {
        FieldLimits {
            id_bytes: 1024,
            type_bytes: 128,
            topic_bytes: 4096,
        }
    }
}

/// A publish body, decoded but not yet checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateForm {
    topics: Vec<String>,
    data: Option<String>,
    private: bool,
    id: Option<String>,
    event_type: Option<String>,
    retry: Option<String>,
}

/// A checked update, ready to dispatch. `id: None` means the hub generates one
/// (`urn:uuid:<random>`); hub-made updates (subscription events) are built directly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// The canonical topic first, then the alternates.
    pub topics: Vec<String>,
    pub data: String,
    pub private: bool,
    pub id: Option<String>,
    pub event_type: Option<String>,
    pub retry_ms: Option<u64>,
}

/// Whether a connection listening with `matchers`, with these grants (`None`: no token),
/// receives an update with these `topics` (§6.6): one of its matchers selects one of the
/// topics, and, when the update is `private`, the token grants `subscribe` on one of the
/// topics (not necessarily the same one: routing and authorization are independent, §5.3).
/// Replays use it too, with the connection's current grants (§6.9).
pub fn receives<S: AsRef<str>>(
    matchers: &[TopicMatcher],
    grants: Option<&Grants>,
    topics: &[S],
    private: bool,
) -> bool {
    let routed = matchers.iter().any(|m| m.matches_any(topics));
    let readable = !private || grants.is_some_and(|g| g.allows_any(Action::Subscribe, topics));
    routed && readable
}

/// Why a publish body is refused: each text is the one short line the hub's 400 carries
/// (no HTTP status lives here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateError {
    /// A field's name or value does not decode to UTF-8.
    FieldNotUtf8 {
        field: String,
    },
    MissingTopic,
    TooManyTopics,
    TopicControlCharacter,
    TopicWildcard,
    TopicReserved,
    TopicTooLong {
        max: usize,
    },
    IdTooLong {
        max: usize,
    },
    TypeTooLong {
        max: usize,
    },
    IdFragment,
    IdEarliest,
    IdControlCharacter,
    TypeControlCharacter,
    TypeReserved,
    InvalidRetry,
}

impl std::error::Error for UpdateError {}

impl fmt::Display for UpdateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateError::FieldNotUtf8 { field } => {
                write!(f, "form field {field:?} is not valid UTF-8")
            }
            UpdateError::MissingTopic => f.write_str(r#"Missing "topic" parameter"#),
            UpdateError::TooManyTopics => f.write_str("too many topics (at most 100)"),
            UpdateError::TopicControlCharacter => {
                f.write_str("a topic contains a control character")
            }
            UpdateError::TopicWildcard => f.write_str(r#"the topic "*" is reserved"#),
            UpdateError::TopicReserved => {
                f.write_str("a topic is in the hub's reserved namespace /.well-known/mercure")
            }
            UpdateError::IdFragment => f.write_str(r##""id" must not start with "#""##),
            UpdateError::IdEarliest => f.write_str(r#""id" must not be "earliest""#),
            UpdateError::IdControlCharacter => f.write_str(r#""id" contains a control character"#),
            UpdateError::TypeControlCharacter => {
                f.write_str(r#""type" contains a control character"#)
            }
            UpdateError::TypeReserved => f.write_str(r#""type" must not be "mercure""#),
            UpdateError::TopicTooLong { max } => write!(f, "a topic is longer than {max} bytes"),
            UpdateError::IdTooLong { max } => write!(f, r#""id" is longer than {max} bytes"#),
            UpdateError::TypeTooLong { max } => write!(f, r#""type" is longer than {max} bytes"#),
            UpdateError::InvalidRetry => write!(
                f,
                r#""retry" must be ASCII digits, a number of milliseconds up to {}"#,
                u64::MAX
            ),
        }
    }
}

impl UpdateForm {
    /// Decodes an `application/x-www-form-urlencoded` body (§4.2, §4.3): `topic` repeats,
    /// any `private` makes the update private, the first of any other repeated field wins,
    /// unknown fields are ignored.
    pub fn parse(body: &[u8]) -> Result<UpdateForm, UpdateError> {
        let pairs = form::pairs(body).map_err(|e| UpdateError::FieldNotUtf8 { field: e.field })?;
        let mut form = UpdateForm::default();
        for (name, value) in pairs {
            // The hub's rule on top of the one decoder (§4.3): the first of a repeat wins,
            // as the reference hub reads forms.
            let first = |slot: &mut Option<String>| {
                slot.get_or_insert(value.clone());
            };
            match name.as_str() {
                "topic" => form.topics.push(value),
                "private" => form.private = true,
                "data" => first(&mut form.data),
                "id" => first(&mut form.id),
                "type" => first(&mut form.event_type),
                "retry" => first(&mut form.retry),
                _ => {}
            }
        }
        Ok(form)
    }

    /// The topics, canonical first, once there is at least one and at most
    /// [`MAX_TOPICS`]: what the token must grant `publish` on (§4.5). The count is checked
    /// here, before the grants, so a refused publisher cannot make the hub match an
    /// unbounded list.
    pub fn topics(&self) -> Result<&[String], UpdateError> {
        match self.topics.len() {
            0 => Err(UpdateError::MissingTopic),
            n if n > MAX_TOPICS => Err(UpdateError::TooManyTopics),
            _ => Ok(&self.topics),
        }
    }

    pub fn is_private(&self) -> bool {
        self.private
    }

    /// Applies the field rules (§4.4) and yields the update; `resource` is R, against
    /// which topics are resolved to find the reserved namespace. An empty `id` or `type`
    /// counts as absent (the hub generates the id; the event has no type).
    pub fn validate(&self, resource: &str, limits: &FieldLimits) -> Result<Update, UpdateError> {
        for topic in self.topics()? {
            if topic.len() > limits.topic_bytes {
                return Err(UpdateError::TopicTooLong {
                    max: limits.topic_bytes,
                });
            }
            if has_control(topic) {
                return Err(UpdateError::TopicControlCharacter);
            }
            if topic == WILDCARD {
                return Err(UpdateError::TopicWildcard);
            }
            if is_reserved_topic(topic, resource) {
                return Err(UpdateError::TopicReserved);
            }
        }
        let id = non_empty(&self.id);
        if let Some(id) = id {
            if id.len() > limits.id_bytes {
                return Err(UpdateError::IdTooLong {
                    max: limits.id_bytes,
                });
            }
            if id.starts_with('#') {
                return Err(UpdateError::IdFragment);
            }
            if id == EARLIEST {
                return Err(UpdateError::IdEarliest);
            }
            if has_control(id) {
                return Err(UpdateError::IdControlCharacter);
            }
        }
        let event_type = non_empty(&self.event_type);
        if let Some(t) = event_type {
            if t.len() > limits.type_bytes {
                return Err(UpdateError::TypeTooLong {
                    max: limits.type_bytes,
                });
            }
            if has_control(t) {
                return Err(UpdateError::TypeControlCharacter);
            }
            if t == RESERVED_EVENT_TYPE {
                return Err(UpdateError::TypeReserved);
            }
        }
        let retry_ms = self.retry.as_deref().map(parse_retry).transpose()?;
        Ok(Update {
            topics: self.topics.clone(),
            data: self.data.clone().unwrap_or_default(),
            private: self.private,
            id: id.map(str::to_string),
            event_type: event_type.map(str::to_string),
            retry_ms,
        })
    }
}

fn non_empty(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|v| !v.is_empty())
}

/// One or more ASCII digits, a number that fits in 64 bits (as the channel API's `retry`
/// must: a larger one is refused, not sent as some other number).
fn parse_retry(value: &str) -> Result<u64, UpdateError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UpdateError::InvalidRetry);
    }
    value.parse().map_err(|_| UpdateError::InvalidRetry)
}

/// Used when R itself does not parse, so the namespace is still protected: only the path
/// matters, and `.invalid` names no real host.
const FALLBACK_BASE: &str = "https://mercure.invalid/.well-known/mercure";

/// Whether `topic`, resolved against R by the WHATWG URL parser (dot-segments removed),
/// with percent-encoded unreserved characters decoded, has the path
/// `/.well-known/mercure` or one below it, whatever its scheme and host (§4.4). A topic
/// that does not parse as a URL reference is not reserved.
pub fn is_reserved_topic(topic: &str, resource: &str) -> bool {
    let base = Url::parse(resource)
        .or_else(|_| Url::parse(FALLBACK_BASE))
        .ok();
    let Ok(url) = Url::options().base_url(base.as_ref()).parse(topic) else {
        return false;
    };
    let path = decode_unreserved(url.path());
    path == HUB_PATH
        || path
            .strip_prefix(HUB_PATH)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Decodes the `%XX` triplets that stand for unreserved characters (RFC 3986 §6.2.2.2).
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes.get(i..i + 3) {
            Some([b'%', h, l]) => std::str::from_utf8(&[*h, *l])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .filter(|b| b.is_ascii_alphanumeric() || b"-._~".contains(b)),
            _ => None,
        };
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
