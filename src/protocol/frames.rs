//! Reading this service's own event stream frame by frame, keeping each frame's bytes as
//! they were written: what a node of a channel's tree does with the stream from its
//! parent, so that it passes events on without decoding and encoding them again.
//!
//! It reads only what the [`crate::protocol::encoder`] writes: lines end with LF, and a
//! frame ends with an empty line. Comments (keep-alives) and frames without data (the
//! `retry:` a stream starts with) are dropped; the `Parser` is the one that reads any
//! stream as a browser does.
//!
//! Between objects, an event may carry what the frame alone does not say, as comment lines
//! before its fields ([`relayed`]): when it was published (on a replay), and, for a routed
//! event (a Mercure update, whose `id:` is its public key), its sequence number and its
//! route. An `EventSource` would ignore them, and the reader takes them off, so the frame
//! passed on is the one the root wrote. Routes travel only between objects: a listener's
//! stream never carries them.

/// One event as written, with its `id:` when it has one (a `gap` notice has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// The frame, its closing empty line included.
    pub text: String,
    pub id: Option<String>,
    /// When it was published, if the stream said ([`relayed`]).
    pub at_ms: Option<u64>,
    /// A routed event's sequence number (its `id:` is then its public key).
    pub seq: Option<u64>,
    /// A routed event's route, in its stored form.
    pub route: Option<String>,
    /// Whether it is the stream's last frame: it has ended ([`ending`]).
    pub end: bool,
}

/// The comments that say, between objects, what a frame alone does not.
const AT: &str = ": at ";
const SEQ: &str = ": seq ";
const ROUTE: &str = ": route ";
/// The line that marks, between objects, the frame that ends the stream.
const END: &str = ": end\n";

/// `frame`, the notice that ends the stream, for a stream between objects: marked as the
/// last frame, so that the object that takes it ends its own seats' streams.
pub fn ending(frame: &str) -> String {
    format!("{END}{frame}")
}

/// `frame` for a stream between objects: when it was published (when known), and for a
/// routed event its sequence number and stored route (`route`: none for other events).
pub fn relayed(frame: &str, at_ms: Option<u64>, route: Option<(u64, &str)>) -> String {
    let mut out = String::with_capacity(frame.len() + 64);
    if let Some(at) = at_ms {
        out.push_str(&format!("{AT}{at}\n"));
    }
    if let Some((seq, route)) = route {
        out.push_str(&format!("{SEQ}{seq}\n{ROUTE}{route}\n"));
    }
    out.push_str(frame);
    out
}

/// The last `id:` in `chunk`, whole frames as written: where a stream that carried it has
/// got to (a chunk of comments, a `retry:` or a `gap` notice has none). The field's value
/// starts after one optional space, as a browser reads it.
pub fn last_id(chunk: &[u8]) -> Option<&str> {
    let line = chunk
        .split(|&b| b == b'\n')
        .rev()
        .find(|line| line.starts_with(b"id:"))?;
    let value = &line[3..];
    let value = value.strip_prefix(b" ").unwrap_or(value);
    std::str::from_utf8(value).ok()
}

#[derive(Debug, Default)]
pub struct FrameReader {
    pending: Vec<u8>,
}

impl FrameReader {
    pub fn new() -> Self {
        FrameReader::default()
    }

    /// Feeds a chunk of the stream; returns the events it completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<RawFrame> {
        self.pending.extend_from_slice(chunk);
        let mut frames = Vec::new();
        let mut start = 0;
        while let Some(at) = find_blank_line(&self.pending[start..]) {
            let end = start + at + 2;
            if let Some(frame) = read_frame(&self.pending[start..end]) {
                frames.push(frame);
            }
            start = end;
        }
        self.pending.drain(..start);
        frames
    }

    /// Ends the current stream: an unfinished frame is dropped, as a browser drops it.
    pub fn end_of_stream(&mut self) {
        self.pending.clear();
    }
}

fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\n\n")
}

fn read_frame(bytes: &[u8]) -> Option<RawFrame> {
    // A frame ends at an empty line, which never falls inside a UTF-8 sequence.
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    let (mut at_ms, mut seq, mut route, mut end) = (None, None, None, false);
    loop {
        if let Some(rest) = text.strip_prefix(END) {
            end = true;
            text = rest.to_string();
            continue;
        }
        let (kind, rest) = if let Some(rest) = text.strip_prefix(AT) {
            (AT, rest)
        } else if let Some(rest) = text.strip_prefix(SEQ) {
            (SEQ, rest)
        } else if let Some(rest) = text.strip_prefix(ROUTE) {
            (ROUTE, rest)
        } else {
            break;
        };
        let (value, fields) = rest.split_once('\n')?;
        match kind {
            AT => at_ms = value.parse().ok(),
            SEQ => seq = value.parse().ok(),
            _ => route = Some(value.to_string()),
        }
        text = fields.to_string();
    }
    let mut id = None;
    let mut has_data = false;
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("id:") {
            id = Some(value.strip_prefix(' ').unwrap_or(value).to_string());
        } else if line == "data" || line.starts_with("data:") {
            has_data = true;
        }
    }
    has_data.then_some(RawFrame {
        text,
        id,
        at_ms,
        seq,
        route,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{comment, retry, Event, Parser};

    #[test]
    fn the_last_id_of_a_chunk_is_the_last_id_field_a_browser_would_read() {
        let mut chunk = retry(1000);
        Event::new("a\nid: not a field")
            .with_id("7")
            .unwrap()
            .encode_into(&mut chunk);
        Event::new("b")
            .with_id("urn:uuid:x")
            .unwrap()
            .with_type("t")
            .unwrap()
            .encode_into(&mut chunk);
        Event::new("gap, no id").encode_into(&mut chunk);
        chunk.push_str(&comment("keep-alive"));
        assert_eq!(last_id(chunk.as_bytes()), Some("urn:uuid:x"));
        let parsed = Parser::parse_all(chunk.as_bytes());
        assert_eq!(parsed.last().unwrap().last_event_id, "urn:uuid:x");
        assert_eq!(last_id(retry(5).as_bytes()), None);
        assert_eq!(last_id(b"id:9\n\n"), Some("9"), "the space is optional");
    }

    fn stream() -> String {
        let mut s = retry(1000);
        s.push_str(&Event::new("one").with_id("1").unwrap().encode());
        s.push_str(&comment("keep-alive"));
        s.push_str(
            &Event::new("tw\u{e9}\n\nlines")
                .with_id("2")
                .unwrap()
                .with_type("t")
                .unwrap()
                .with_retry(5)
                .encode(),
        );
        s.push_str(
            &Event::new("{\"lastEventId\":\"2\"}")
                .with_type("gap")
                .unwrap()
                .encode(),
        );
        s.push_str(&Event::new("").with_id("3").unwrap().encode());
        s
    }

    #[test]
    fn frames_come_back_as_written_whatever_the_chunks() {
        let whole = stream();
        let expected = FrameReader::new().feed(whole.as_bytes());
        let ids: Vec<Option<&str>> = expected.iter().map(|f| f.id.as_deref()).collect();
        assert_eq!(ids, [Some("1"), Some("2"), None, Some("3")]);
        // Their bytes, concatenated, read as a browser reads the original.
        let relayed: String = expected.iter().map(|f| f.text.as_str()).collect();
        let parsed = |s: &str| Parser::parse_all(s.as_bytes());
        assert_eq!(parsed(&relayed), parsed(&whole));
        for size in 1..8 {
            let mut reader = FrameReader::new();
            let got: Vec<RawFrame> = whole
                .as_bytes()
                .chunks(size)
                .flat_map(|c| reader.feed(c))
                .collect();
            assert_eq!(got, expected, "chunks of {size}");
        }
    }

    #[test]
    fn an_unfinished_frame_is_dropped_at_the_end_of_a_stream() {
        let mut reader = FrameReader::new();
        assert!(reader.feed(b"id: 1\ndata: x\n").is_empty());
        reader.end_of_stream();
        let frames = reader.feed(b"id: 2\ndata: y\n\n");
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].id.as_deref(), Some("2"));
        assert_eq!(frames[0].text, "id: 2\ndata: y\n\n");
    }

    #[test]
    fn a_timed_frame_comes_back_as_the_root_wrote_it_with_its_time() {
        let frame = Event::new("x").with_id("7").unwrap().encode();
        let stream = format!(
            "{}{}",
            relayed(&frame, Some(1_733_000_000_123), None),
            comment("keep-alive")
        );
        let frames = FrameReader::new().feed(stream.as_bytes());
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].text, frame);
        assert_eq!(frames[0].id.as_deref(), Some("7"));
        assert_eq!(frames[0].at_ms, Some(1_733_000_000_123));
        // An EventSource reading it gets the same event.
        let parsed = Parser::parse_all(stream.as_bytes());
        assert_eq!(parsed, Parser::parse_all(frame.as_bytes()));
    }

    #[test]
    fn a_routed_frame_comes_back_as_written_with_its_sequence_and_route() {
        let frame = Event::new("x").with_id("urn:uuid:a b").unwrap().encode();
        let route = r#"{"topics":["https://a.test/1"],"private":true}"#;
        let stream = format!(
            "{}{}{}",
            relayed(&frame, Some(5), Some((42, route))),
            relayed(&frame, None, Some((43, route))),
            comment("keep-alive")
        );
        for size in [1, 3, stream.len()] {
            let mut reader = FrameReader::new();
            let frames: Vec<RawFrame> = stream
                .as_bytes()
                .chunks(size)
                .flat_map(|c| reader.feed(c))
                .collect();
            assert_eq!(frames.len(), 2);
            assert!(frames.iter().all(|f| f.text == frame));
            assert!(frames
                .iter()
                .all(|f| f.id.as_deref() == Some("urn:uuid:a b")));
            assert!(frames.iter().all(|f| f.route.as_deref() == Some(route)));
            assert_eq!((frames[0].seq, frames[0].at_ms), (Some(42), Some(5)));
            assert_eq!((frames[1].seq, frames[1].at_ms), (Some(43), None));
        }
        // An EventSource reading it gets the events as published, and nothing of the route.
        let parsed = Parser::parse_all(stream.as_bytes());
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0], Parser::parse_all(frame.as_bytes())[0]);
    }

    #[test]
    fn the_ending_frame_is_marked_between_objects_and_only_there() {
        let notice = Event::new("{}")
            .with_id("9")
            .unwrap()
            .with_type("end")
            .unwrap()
            .encode();
        let before = Event::new("x").with_id("9").unwrap().encode();
        let stream = format!("{before}{}", ending(&notice));
        let frames = FrameReader::new().feed(stream.as_bytes());
        assert_eq!(frames.len(), 2);
        assert!(!frames[0].end && frames[1].end);
        assert_eq!(frames[1].text, notice, "the mark is taken off");
        // An EventSource would see the notice as it is.
        assert_eq!(
            Parser::parse_all(ending(&notice).as_bytes()),
            Parser::parse_all(notice.as_bytes())
        );
    }
}
