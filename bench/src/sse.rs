//! An incremental `text/event-stream` parser following the WHATWG HTML algorithm
//! ("Server-sent events", parsing an event stream and interpreting it).
//!
//! It is the bench's own copy, written for speed over many connections: input arrives in
//! arbitrary chunks (a line, a CRLF pair or a UTF-8 sequence may be split across chunks),
//! and completed items are appended to a caller-owned `Vec` so nothing is allocated per
//! chunk beyond the events themselves.

/// One dispatched event, as an `EventSource` would deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `message` unless an `event:` field said otherwise.
    pub event_type: String,
    pub data: String,
    /// The last event ID in force when the event was dispatched (it persists across events).
    pub last_event_id: String,
}

/// What the parser reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Event(Event),
    /// A valid `retry:` field (all ASCII digits): the new reconnection time in ms.
    Retry(u64),
    /// A comment line (`:` first), e.g. a heartbeat.
    Comment,
}

#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of the current, incomplete line (bytes, because a chunk may end inside a
    /// UTF-8 sequence).
    line: Vec<u8>,
    /// True once the first line has been processed (the BOM can only precede it).
    past_first_line: bool,
    /// The previous chunk ended with CR: a LF at the start of the next one belongs to it.
    after_cr: bool,
    data: String,
    event_type: String,
    last_event_id_buffer: String,
    /// The event source's last event ID string, set at every dispatch.
    last_event_id: String,
}

impl Parser {
    pub fn new() -> Self {
        Parser::default()
    }

    /// The last event ID string (what an `EventSource` sends back as `Last-Event-ID`).
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// Forgets a partial line and a partial event, as at the end of a stream (the spec
    /// discards an event not ended by a blank line). The last event ID is kept: it belongs
    /// to the event source and is what a reconnect resumes from.
    pub fn end_of_stream(&mut self) {
        self.line.clear();
        self.past_first_line = false;
        self.after_cr = false;
        self.data.clear();
        self.event_type.clear();
        self.last_event_id_buffer = self.last_event_id.clone();
    }

    /// Feeds one chunk; completed items are appended to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Item>) {
        let mut rest = chunk;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let end = rest[pos];
            if self.line.is_empty() {
                self.process_line(&rest[..pos], out);
            } else {
                self.line.extend_from_slice(&rest[..pos]);
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, out);
                self.line = line;
                self.line.clear();
            }
            rest = &rest[pos + 1..];
            if end == b'\r' {
                if rest.is_empty() {
                    self.after_cr = true;
                } else if rest[0] == b'\n' {
                    rest = &rest[1..];
                }
            }
        }
        self.line.extend_from_slice(rest);
    }

    fn process_line(&mut self, mut line: &[u8], out: &mut Vec<Item>) {
        if !self.past_first_line {
            self.past_first_line = true;
            if let Some(stripped) = line.strip_prefix(b"\xEF\xBB\xBF") {
                line = stripped;
            }
        }
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            out.push(Item::Comment);
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let mut value = &line[colon + 1..];
                if value.first() == Some(&b' ') {
                    value = &value[1..];
                }
                (&line[..colon], value)
            }
            None => (line, &b""[..]),
        };
        match name {
            b"event" => {
                self.event_type.clear();
                self.event_type.push_str(&String::from_utf8_lossy(value));
            }
            b"data" => {
                self.data.push_str(&String::from_utf8_lossy(value));
                self.data.push('\n');
            }
            // An id containing NUL is ignored.
            b"id" if !value.contains(&0) => {
                self.last_event_id_buffer.clear();
                self.last_event_id_buffer
                    .push_str(&String::from_utf8_lossy(value));
            }
            // Only all-ASCII-digit values count.
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // Absurdly long digit strings saturate instead of being dropped.
                let ms = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(u64::MAX);
                out.push(Item::Retry(ms));
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Item>) {
        if self.last_event_id != self.last_event_id_buffer {
            self.last_event_id.clone_from(&self.last_event_id_buffer);
        }
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        if self.data.ends_with('\n') {
            self.data.pop();
        }
        let event_type = if self.event_type.is_empty() {
            "message".to_string()
        } else {
            std::mem::take(&mut self.event_type)
        };
        out.push(Item::Event(Event {
            event_type,
            data: std::mem::take(&mut self.data),
            last_event_id: self.last_event_id.clone(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: &str, d: &str, id: &str) -> Item {
        Item::Event(Event {
            event_type: t.into(),
            data: d.into(),
            last_event_id: id.into(),
        })
    }

    fn parse_whole(s: &[u8]) -> Vec<Item> {
        let mut p = Parser::new();
        let mut out = Vec::new();
        p.feed(s, &mut out);
        out
    }

    /// Every split of the input into two and into single bytes gives the same items.
    fn parse_all_splits(s: &[u8]) -> Vec<Item> {
        let whole = parse_whole(s);
        for cut in 0..=s.len() {
            let mut p = Parser::new();
            let mut out = Vec::new();
            p.feed(&s[..cut], &mut out);
            p.feed(&s[cut..], &mut out);
            assert_eq!(out, whole, "split at {cut}");
        }
        let mut p = Parser::new();
        let mut out = Vec::new();
        for b in s {
            p.feed(std::slice::from_ref(b), &mut out);
        }
        assert_eq!(out, whole, "byte by byte");
        whole
    }

    #[test]
    fn simple_events_and_ids() {
        let items =
            parse_all_splits(b"retry: 1000\n\nid: 1\ndata: a\n\nid: 2\nevent: x\ndata: b\n\n");
        assert_eq!(
            items,
            vec![
                Item::Retry(1000),
                ev("message", "a", "1"),
                ev("x", "b", "2")
            ]
        );
    }

    #[test]
    fn all_three_line_endings() {
        let items = parse_all_splits(b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r");
        assert_eq!(
            items,
            vec![ev("message", "a\nb\nc", ""), ev("message", "d", "")]
        );
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_break() {
        let mut p = Parser::new();
        let mut out = Vec::new();
        p.feed(b"data: a\r", &mut out);
        p.feed(b"\n", &mut out);
        p.feed(b"\r", &mut out);
        p.feed(b"\ndata: b\n\n", &mut out);
        assert_eq!(out, vec![ev("message", "a", ""), ev("message", "b", "")]);
    }

    #[test]
    fn one_space_removed_and_no_colon() {
        let items = parse_all_splits(b"data:  two\ndata:none\ndata\n\n");
        assert_eq!(items, vec![ev("message", " two\nnone\n", "")]);
    }

    #[test]
    fn comments_and_unknown_fields() {
        let items = parse_all_splits(b": keep-alive\n\nfoo: bar\nData: x\n:c\ndata: y\n\n");
        assert_eq!(
            items,
            vec![Item::Comment, Item::Comment, ev("message", "y", "")]
        );
    }

    #[test]
    fn empty_data_buffer_dispatches_nothing_but_sets_id() {
        let items = parse_all_splits(b"id: 7\nevent: x\n\ndata: z\n\n");
        assert_eq!(items, vec![ev("message", "z", "7")]);
    }

    #[test]
    fn empty_data_line_is_an_event_with_empty_data() {
        assert_eq!(parse_all_splits(b"data:\n\n"), vec![ev("message", "", "")]);
        assert_eq!(
            parse_all_splits(b"data\ndata\n\n"),
            vec![ev("message", "\n", "")]
        );
    }

    #[test]
    fn id_with_nul_ignored_and_empty_id_resets() {
        let items = parse_all_splits(b"id: 3\ndata: a\n\nid: 4\x005\ndata: b\n\nid\ndata: c\n\n");
        assert_eq!(
            items,
            vec![
                ev("message", "a", "3"),
                ev("message", "b", "3"),
                ev("message", "c", "")
            ]
        );
    }

    #[test]
    fn retry_only_digits() {
        let items = parse_all_splits(b"retry: 10a\nretry: -1\nretry:\nretry: 250\n\n");
        assert_eq!(items, vec![Item::Retry(250)]);
    }

    #[test]
    fn leading_bom_stripped_once() {
        let items = parse_all_splits(b"\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n");
        assert_eq!(items, vec![ev("message", "a", "")]);
    }

    #[test]
    fn unterminated_event_is_discarded_at_end_of_stream() {
        let mut p = Parser::new();
        let mut out = Vec::new();
        p.feed(b"id: 1\ndata: a\n\nid: 2\ndata: partial\n", &mut out);
        assert_eq!(out, vec![ev("message", "a", "1")]);
        p.end_of_stream();
        assert_eq!(p.last_event_id(), "1");
        // A new stream (reconnect) starts clean but keeps the last event id.
        p.feed(b"retry: 5\n\ndata: b\n\n", &mut out);
        assert_eq!(out[1..], [Item::Retry(5), ev("message", "b", "1")]);
    }

    #[test]
    fn utf8_split_across_chunks() {
        let s = "data: h\u{e9}llo \u{1F600}\n\n".as_bytes();
        assert_eq!(
            parse_all_splits(s),
            vec![ev("message", "h\u{e9}llo \u{1F600}", "")]
        );
    }

    #[test]
    fn event_type_resets_after_dispatch() {
        let items = parse_all_splits(b"event: gap\ndata: {}\n\ndata: x\n\n");
        assert_eq!(items, vec![ev("gap", "{}", ""), ev("message", "x", "")]);
    }
}
