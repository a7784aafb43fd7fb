//! The one `text/event-stream` encoder.
//!
//! Every byte the service writes to a listener is produced here. The rules follow the
//! WHATWG "server-sent events" parsing algorithm, so that whatever an [`Event`] holds
//! reaches a browser's `EventSource` exactly:
//! - data is split on every CRLF, LF and CR and written as one `data:` line per line;
//! - every field is written as `name: value` (one space), so a value that begins with a
//!   space keeps it (the parser removes exactly one);
//! - `event` and `id` cannot carry CR or LF (and `id` no NUL): they are refused when the
//!   event is built, never written.

use std::fmt;

/// Why a field cannot be represented on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldError {
    /// The event type contains CR or LF.
    EventTypeHasLineBreak,
    /// The event type is empty (an empty `event:` means "message"; say so explicitly).
    EventTypeEmpty,
    /// The id contains CR or LF.
    IdHasLineBreak,
    /// The id contains NUL, which makes a browser ignore the whole `id` field.
    IdHasNul,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldError::EventTypeHasLineBreak => "event type must not contain CR or LF",
            FieldError::EventTypeEmpty => "event type must not be empty",
            FieldError::IdHasLineBreak => "event id must not contain CR or LF",
            FieldError::IdHasNul => "event id must not contain NUL",
        })
    }
}

impl std::error::Error for FieldError {}

/// One event, validated so that it always encodes to something a parser reads back as is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    id: Option<String>,
    event_type: Option<String>,
    data: String,
    retry_ms: Option<u64>,
}

impl Event {
    /// An event of the default type (`message`) carrying `data`.
    pub fn new(data: impl Into<String>) -> Self {
        Event {
            data: data.into(),
            ..Event::default()
        }
    }

    /// Sets the `id:` field (what the browser sends back as `Last-Event-ID`).
    pub fn with_id(mut self, id: impl Into<String>) -> Result<Self, FieldError> {
        let id = id.into();
        check_id(&id)?;
        self.id = Some(id);
        Ok(self)
    }

    /// Sets the `event:` field (what `addEventListener(type, ...)` receives).
    pub fn with_type(mut self, event_type: impl Into<String>) -> Result<Self, FieldError> {
        let event_type = event_type.into();
        check_event_type(&event_type)?;
        self.event_type = Some(event_type);
        Ok(self)
    }

    /// Sets the `retry:` field: the client's reconnection delay in milliseconds.
    pub fn with_retry(mut self, retry_ms: u64) -> Self {
        self.retry_ms = Some(retry_ms);
        self
    }

    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    pub fn event_type(&self) -> Option<&str> {
        self.event_type.as_deref()
    }

    pub fn data(&self) -> &str {
        &self.data
    }

    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// Appends the wire form of this event, ending with the blank line that dispatches it.
    /// Fields go in the order `event`, `retry`, `id`, `data` (the order the Mercure hub
    /// commits to; a parser reads any order the same).
    pub fn encode_into(&self, out: &mut String) {
        if let Some(event_type) = &self.event_type {
            push_field(out, "event", event_type);
        }
        if let Some(retry) = self.retry_ms {
            push_field(out, "retry", &retry.to_string());
        }
        if let Some(id) = &self.id {
            push_field(out, "id", id);
        }
        for line in split_lines(&self.data) {
            push_field(out, "data", line);
        }
        out.push('\n');
    }

    /// The wire form of this event.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.data.len() + 32);
        self.encode_into(&mut out);
        out
    }
}

/// Checks a would-be `event:` value.
pub fn check_event_type(event_type: &str) -> Result<(), FieldError> {
    if event_type.is_empty() {
        Err(FieldError::EventTypeEmpty)
    } else if event_type.contains(['\r', '\n']) {
        Err(FieldError::EventTypeHasLineBreak)
    } else {
        Ok(())
    }
}

/// Checks a would-be `id:` value.
pub fn check_id(id: &str) -> Result<(), FieldError> {
    if id.contains(['\r', '\n']) {
        Err(FieldError::IdHasLineBreak)
    } else if id.contains('\0') {
        Err(FieldError::IdHasNul)
    } else {
        Ok(())
    }
}

/// A comment: ignored by parsers, used as a heartbeat. Line breaks in `text` become
/// several comment lines, so a comment can never turn into a field.
pub fn comment(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for line in split_lines(text) {
        out.push(':');
        if !line.is_empty() {
            out.push(' ');
            out.push_str(line);
        }
        out.push('\n');
    }
    out.push('\n');
    out
}

/// A bare `retry:` field: sets the client's reconnection delay without dispatching an event.
pub fn retry(retry_ms: u64) -> String {
    let mut out = String::new();
    push_field(&mut out, "retry", &retry_ms.to_string());
    out.push('\n');
    out
}

fn push_field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push('\n');
}

/// Splits on CRLF, LF and CR, as the parser does. An empty string is one empty line, and
/// a trailing break yields a trailing empty line, so `"a\n"` round-trips.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(s)
            }
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_lines_handles_every_break() {
        let lines: Vec<&str> = split_lines("a\r\nb\nc\rd").collect();
        assert_eq!(lines, ["a", "b", "c", "d"]);
        assert_eq!(split_lines("").collect::<Vec<_>>(), [""]);
        assert_eq!(split_lines("x\n").collect::<Vec<_>>(), ["x", ""]);
        assert_eq!(split_lines("\r\r\n").collect::<Vec<_>>(), ["", "", ""]);
    }

    #[test]
    fn fields_are_written_in_order_with_one_space() {
        let e = Event::new("hi")
            .with_id("7")
            .unwrap()
            .with_type("note")
            .unwrap()
            .with_retry(250);
        assert_eq!(e.encode(), "event: note\nretry: 250\nid: 7\ndata: hi\n\n");
    }

    #[test]
    fn comment_lines_never_become_fields() {
        assert_eq!(comment("keep-alive"), ": keep-alive\n\n");
        assert_eq!(comment("a\ndata: x"), ": a\n: data: x\n\n");
        assert_eq!(comment(""), ":\n\n");
    }

    #[test]
    fn line_breaks_and_nul_are_refused_where_a_field_cannot_hold_them() {
        assert_eq!(
            Event::new("").with_type("a\nb").unwrap_err(),
            FieldError::EventTypeHasLineBreak
        );
        assert_eq!(
            Event::new("").with_type("a\rb").unwrap_err(),
            FieldError::EventTypeHasLineBreak
        );
        assert_eq!(
            Event::new("").with_type("").unwrap_err(),
            FieldError::EventTypeEmpty
        );
        assert_eq!(
            Event::new("").with_id("1\r\n").unwrap_err(),
            FieldError::IdHasLineBreak
        );
        assert_eq!(
            Event::new("").with_id("1\0").unwrap_err(),
            FieldError::IdHasNul
        );
    }
}
