//! A `text/event-stream` parser that follows the WHATWG algorithm step by step.
//!
//! It is what the tests use to prove that the encoder's output reads back exactly as a
//! browser would read it, and what the benchmark's listeners read with; it accepts input
//! in arbitrary chunks, including a CR at the end of one chunk and its LF at the start of
//! the next, and one parser can read stream after stream as an `EventSource` reconnecting.

/// One dispatched event, as an `EventSource` would deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEvent {
    /// `message` unless an `event:` field said otherwise.
    pub event_type: String,
    pub data: String,
    /// The last event id in force when the event was dispatched (it persists across events).
    pub last_event_id: String,
}

#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of an incomplete line (kept as bytes: a chunk may end inside a UTF-8 sequence).
    line: Vec<u8>,
    started: bool,
    after_cr: bool,
    data: String,
    event_type: String,
    /// The last event id buffer: set by `id:` fields, given to the events dispatched.
    id_buffer: String,
    /// The event source's last event id: the buffer as it was at the last dispatch.
    last_event_id: String,
    /// The reconnection time set by the last valid `retry:` field.
    pub retry_ms: Option<u64>,
    /// How many comment lines were seen.
    pub comments: usize,
}

impl Parser {
    pub fn new() -> Self {
        Parser::default()
    }

    /// Feeds a chunk of the stream and returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<ParsedEvent> {
        let mut out = Vec::new();
        let mut bytes = chunk;
        if !self.started && !bytes.is_empty() {
            self.started = true;
            // One leading BOM is stripped (it may arrive split, but our tests never do that).
            if let Some(rest) = bytes.strip_prefix("\u{feff}".as_bytes()) {
                bytes = rest;
            }
        }
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    let mut line = std::mem::take(&mut self.line);
                    self.process_line(&String::from_utf8_lossy(&line), &mut out);
                    // The buffer is reused for the next line.
                    line.clear();
                    self.line = line;
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                }
            }
        }
        out
    }

    /// The last event id string, set at each dispatch (even of an event without data):
    /// what an `EventSource` sends as `Last-Event-ID` when it reconnects.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// Ends the current stream as the algorithm does at the end of the file: a partial
    /// line and an event not yet dispatched are dropped. What belongs to the event
    /// source (the last event id, the reconnection time, the comment count) is kept, and
    /// the next stream fed may begin with its own BOM.
    pub fn end_of_stream(&mut self) {
        self.line.clear();
        self.started = false;
        self.after_cr = false;
        self.data.clear();
        self.event_type.clear();
        self.id_buffer.clone_from(&self.last_event_id);
    }

    /// Parses a whole stream at once.
    pub fn parse_all(stream: &[u8]) -> Vec<ParsedEvent> {
        Parser::new().feed(stream)
    }

    fn process_line(&mut self, line: &str, out: &mut Vec<ParsedEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            self.comments += 1;
            return;
        }
        let (name, value) = match line.find(':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (line, ""),
        };
        match name {
            "event" => self.event_type = value.to_string(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            // An id with NUL is ignored altogether.
            "id" if !value.contains('\0') => self.id_buffer = value.to_string(),
            // retry only when it is all ASCII digits.
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok();
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<ParsedEvent>) {
        if self.last_event_id != self.id_buffer {
            self.last_event_id.clone_from(&self.id_buffer);
        }
        let event_type = std::mem::take(&mut self.event_type);
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        out.push(ParsedEvent {
            event_type: if event_type.is_empty() {
                "message".to_string()
            } else {
                event_type
            },
            data,
            last_event_id: self.last_event_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datas(stream: &str) -> Vec<String> {
        Parser::parse_all(stream.as_bytes())
            .into_iter()
            .map(|e| e.data)
            .collect()
    }

    #[test]
    fn the_web_platform_tests_format_cases_parse_as_a_browser_does() {
        // format-field-parsing: unknown fields ignored, no-colon line is a name with empty value
        assert_eq!(datas("data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\rdata:\r\n data:32\ndata:4\n\n"), ["\0\n 2\n1\n3\n\n4"]);
        // format-leading-bom, and only one BOM
        assert_eq!(
            datas("\u{feff}data:1\n\n\u{feff}data:2\n\ndata:3\n\n"),
            ["1", "3"]
        );
        // format-newlines: CR, LF, CRLF
        assert_eq!(
            datas("data:test\r\ndata\ndata:test\r\n\r"),
            ["test\n\ntest"]
        );
        // event without final blank line is discarded
        assert_eq!(datas("data:1\n\ndata:2"), ["1"]);
        // empty data buffer dispatches nothing
        assert_eq!(datas("event:x\n\n"), Vec::<String>::new());
    }

    #[test]
    fn id_persists_and_nul_ids_are_ignored() {
        let events =
            Parser::parse_all(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\0\ndata: c\n\nid\ndata: d\n\n");
        let ids: Vec<&str> = events.iter().map(|e| e.last_event_id.as_str()).collect();
        assert_eq!(ids, ["1", "1", "1", ""]);
    }

    #[test]
    fn retry_needs_digits_only() {
        let mut p = Parser::new();
        p.feed(b"retry: 1000\n\nretry: 12a\n\n");
        assert_eq!(p.retry_ms, Some(1000));
    }

    #[test]
    fn last_event_id_is_set_at_dispatch_even_without_data() {
        let mut p = Parser::new();
        p.feed(b"id: 1\ndata: a\n\nid: 2\n");
        assert_eq!(p.last_event_id(), "1", "an id takes effect at the dispatch");
        p.feed(b"\n");
        assert_eq!(p.last_event_id(), "2", "an empty event still sets it");
    }

    #[test]
    fn end_of_stream_drops_the_partial_event_and_keeps_the_source_state() {
        let mut p = Parser::new();
        let events = p.feed(b"retry: 250\n: hi\nid: 1\ndata: a\n\nid: 2\nevent: x\ndata: part");
        assert_eq!(events.len(), 1);
        p.end_of_stream();
        assert_eq!(p.last_event_id(), "1");
        // The next stream (a reconnect): its own BOM is stripped, the half-read id 2, type
        // and data are gone, and events carry the id in force.
        let events = p.feed("\u{feff}data: b\n\n".as_bytes());
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].event_type.as_str(), events[0].data.as_str()),
            ("message", "b")
        );
        assert_eq!(events[0].last_event_id, "1");
        assert_eq!((p.retry_ms, p.comments), (Some(250), 1));
    }

    #[test]
    fn chunks_split_anywhere_including_crlf_and_utf8() {
        let stream = "id: 9\r\nevent: é\r\ndata: ünï\r\n\r\n".as_bytes();
        for cut in 0..stream.len() {
            let mut p = Parser::new();
            let mut events = p.feed(&stream[..cut]);
            events.extend(p.feed(&stream[cut..]));
            assert_eq!(events.len(), 1, "cut at {cut}");
            assert_eq!(events[0].data, "ünï");
            assert_eq!(events[0].event_type, "é");
        }
    }
}
