//! A streaming publish's body, read as it arrives: NDJSON, one message per line, each
//! line parsed (and published) as soon as it is whole. Unlike a batch it is not
//! all-or-nothing: a bad line stops the stream there, after the lines before it.

use super::body::ndjson_line;
use super::*;

/// Reads a streaming publish's lines as its chunks arrive.
#[derive(Debug)]
pub struct LineReader {
    limits: MessageLimits,
    /// Longest line, in bytes (`MAX_BODY_BYTES`: each line is a publish of its own).
    max_line_bytes: usize,
    /// Most bytes the whole stream may carry (`MAX_STREAM_BYTES`).
    max_total_bytes: u64,
    pending: Vec<u8>,
    /// Lines read so far (blank ones too: a line's number is its place in the body).
    lines: usize,
    total: u64,
}

/// Why a streaming publish stopped before its body's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// This line is not a valid message.
    Bad { line: usize, error: PublishError },
    /// This line is longer than a publish body may be.
    LineTooLong { line: usize, max: usize },
    /// The stream carried more than it may.
    TooLarge { max: u64 },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Bad {
                line,
                error: PublishError::Json { column, reason, .. },
            } => write!(f, "line {line}, column {column}: malformed JSON: {reason}"),
            LineError::Bad { line, error } => write!(f, "line {line}: {error}"),
            LineError::LineTooLong { line, max } => {
                write!(f, "line {line} is longer than {max} bytes (MAX_BODY_BYTES)")
            }
            LineError::TooLarge { max } => write!(
                f,
                "a streaming publish carries at most {max} bytes (MAX_STREAM_BYTES)"
            ),
        }
    }
}

impl LineError {
    /// Whether it is a size the stream went over (rather than something wrong in it).
    pub fn is_too_large(&self) -> bool {
        !matches!(self, LineError::Bad { .. })
    }
}

impl LineReader {
    pub fn new(limits: MessageLimits, max_line_bytes: usize, max_total_bytes: u64) -> Self {
        LineReader {
            limits,
            max_line_bytes,
            max_total_bytes,
            pending: Vec::new(),
            lines: 0,
            total: 0,
        }
    }

    /// Takes a chunk of the body: the messages of the lines it completed, in order, and
    /// the error that stops the stream, if one of them (or the chunk) is bad; the messages
    /// are those before it.
    pub fn feed(&mut self, chunk: &[u8]) -> (Vec<Message>, Option<LineError>) {
        // The cap is kept to the byte: a chunk that would pass it is not read.
        self.total += chunk.len() as u64;
        if self.total > self.max_total_bytes {
            let max = self.max_total_bytes;
            return (Vec::new(), Some(LineError::TooLarge { max }));
        }
        let mut messages = Vec::new();
        let mut start = 0;
        let mut rest = chunk;
        while let Some(at) = rest.iter().position(|&b| b == b'\n') {
            self.pending.extend_from_slice(&rest[..at]);
            rest = &rest[at + 1..];
            start += at + 1;
            match self.take_line() {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => {}
                Err(e) => return (messages, Some(e)),
            }
        }
        self.pending.extend_from_slice(&chunk[start..]);
        if self.pending.len() > self.max_line_bytes {
            let line = self.lines + 1;
            let max = self.max_line_bytes;
            return (messages, Some(LineError::LineTooLong { line, max }));
        }
        (messages, None)
    }

    /// The body ended: its last line, when it has no line break after it.
    pub fn finish(&mut self) -> Result<Option<Message>, LineError> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        self.take_line()
    }

    /// How many lines were read whole.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// The pending line, read as a message (a blank line is none).
    fn take_line(&mut self) -> Result<Option<Message>, LineError> {
        self.lines += 1;
        let line = self.lines;
        let bytes = std::mem::take(&mut self.pending);
        if bytes.len() > self.max_line_bytes {
            let max = self.max_line_bytes;
            return Err(LineError::LineTooLong { line, max });
        }
        ndjson_line(&bytes, self.limits).map_err(|error| LineError::Bad { line, error })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> LineReader {
        let limits = MessageLimits {
            max_event_type_bytes: 16,
        };
        LineReader::new(limits, 40, 200)
    }

    fn datas(messages: &[Message]) -> Vec<&str> {
        messages.iter().map(|m| m.data.as_str()).collect()
    }

    #[test]
    fn lines_become_messages_as_they_complete_whatever_the_chunks() {
        let body = "{\"data\":\"a\"}\n\n{\"data\":\"b\",\"event\":\"t\"}\r\n{\"data\":\"c\"}";
        for size in [1, 3, 7, body.len()] {
            let mut r = reader();
            let mut got = Vec::new();
            for chunk in body.as_bytes().chunks(size) {
                let (messages, error) = r.feed(chunk);
                assert_eq!(error, None);
                got.extend(messages);
            }
            assert_eq!(datas(&got), ["a", "b"], "the last line waits for the end");
            got.extend(r.finish().unwrap());
            assert_eq!(datas(&got), ["a", "b", "c"]);
            assert_eq!(got[1].event_type.as_deref(), Some("t"));
            assert_eq!(r.lines(), 4);
        }
    }

    #[test]
    fn a_bad_line_stops_the_stream_after_the_lines_before_it_naming_it() {
        let mut r = reader();
        let (messages, error) =
            r.feed(b"{\"data\":\"a\"}\n{\"data\":\"b\"}\n{\"data\": tru}\n{\"data\":\"d\"}\n");
        assert_eq!(datas(&messages), ["a", "b"]);
        let error = error.unwrap();
        assert!(matches!(error, LineError::Bad { line: 3, .. }), "{error:?}");
        assert!(error.to_string().starts_with("line 3, column "), "{error}");
        let mut r = reader();
        let (_, error) = r.feed(b"{\"data\":\"a\",\"event\":\"end\"}\n");
        assert_eq!(
            error.unwrap().to_string(),
            "line 1: event type \"end\" is reserved for the service's own notices"
        );
    }

    #[test]
    fn a_line_longer_than_a_body_or_a_stream_past_its_cap_stops_it() {
        let mut r = reader();
        let long = format!("{{\"data\":\"{}\"}}", "x".repeat(40));
        let (messages, error) = r.feed(format!("{{\"data\":\"a\"}}\n{long}").as_bytes());
        assert_eq!(datas(&messages), ["a"]);
        assert_eq!(error, Some(LineError::LineTooLong { line: 2, max: 40 }));
        let mut r = reader();
        let line = b"{\"data\":\"0123456789\"}\n";
        let mut published = 0;
        let stopped = (0..20).find_map(|_| {
            let (messages, error) = r.feed(line);
            published += messages.len();
            error
        });
        assert_eq!(stopped, Some(LineError::TooLarge { max: 200 }));
        assert_eq!(published, 200 / line.len(), "the lines before it count");
        assert!(stopped.unwrap().is_too_large());
    }
}
