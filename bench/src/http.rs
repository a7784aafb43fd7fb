//! A minimal HTTP/1.1 client over tokio's `TcpStream`: enough for the bench's GET of an
//! event stream (read incrementally, chunked or not) and its keep-alive POSTs and GETs.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The largest non-streamed response body accepted.
const MAX_BODY: usize = 16 * 1024 * 1024;

pub fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether any `name` header has `token` in its comma-separated list.
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .any(|(_, v)| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    pub fn body_kind(&self, request_method: &str) -> Result<BodyKind, io::Error> {
        if request_method == "HEAD"
            || self.status == 204
            || self.status == 304
            || (100..200).contains(&self.status)
        {
            return Ok(BodyKind::Length(0));
        }
        if self.has_token("transfer-encoding", "chunked") {
            return Ok(BodyKind::Chunked);
        }
        if let Some(len) = self.header("content-length") {
            let len = len
                .trim()
                .parse::<u64>()
                .map_err(|_| invalid(format!("bad Content-Length {len:?}")))?;
            return Ok(BodyKind::Length(len));
        }
        Ok(BodyKind::UntilClose)
    }

    pub fn keep_alive(&self) -> bool {
        !self.has_token("connection", "close")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Chunked,
    Length(u64),
    UntilClose,
}

/// Parses a response head at the start of `buf`. `Ok(None)`: not complete yet.
/// On success returns the head and its length in bytes (including the blank line).
pub fn parse_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, io::Error> {
    let end = match find_head_end(buf) {
        Some(end) => end,
        None if buf.len() > MAX_HEAD => return Err(invalid("response head too large")),
        None => return Ok(None),
    };
    let text =
        std::str::from_utf8(&buf[..end]).map_err(|_| invalid("response head is not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("bad status line {status_line:?}")));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let reason = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(Some((
        ResponseHead {
            status,
            reason,
            headers,
        },
        end,
    )))
}

/// The length of the head: up to and including the first empty line (CRLF CRLF or LF LF).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// Incremental decoder of `Transfer-Encoding: chunked`.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// The size line (or trailer line) read so far.
    line: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    /// After a chunk's data: expecting CRLF (the bool: CR already seen).
    DataEnd(bool),
    Trailer,
    Done,
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from `input`, appending body bytes to `out`. Returns how many input bytes
    /// were consumed: all of them unless the body ended (the rest belongs to the next
    /// response).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, io::Error> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                ChunkState::Done => return Ok(i),
                ChunkState::Data(left) => {
                    let take = (left.min((input.len() - i) as u64)) as usize;
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd(false)
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataEnd(seen_cr) => {
                    let b = input[i];
                    i += 1;
                    match (seen_cr, b) {
                        (false, b'\r') => self.state = ChunkState::DataEnd(true),
                        (_, b'\n') => self.state = ChunkState::Size,
                        _ => return Err(invalid("chunk data not followed by CRLF")),
                    }
                }
                ChunkState::Size | ChunkState::Trailer => {
                    let b = input[i];
                    i += 1;
                    if b != b'\n' {
                        if self.line.len() > 4096 {
                            return Err(invalid("chunk size line too long"));
                        }
                        self.line.push(b);
                        continue;
                    }
                    if self.line.last() == Some(&b'\r') {
                        self.line.pop();
                    }
                    if self.state == ChunkState::Trailer {
                        if self.line.is_empty() {
                            self.state = ChunkState::Done;
                        }
                        self.line.clear();
                        continue;
                    }
                    let size_text = std::str::from_utf8(&self.line)
                        .map_err(|_| invalid("chunk size not ASCII"))?;
                    let hex = size_text.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(hex, 16)
                        .map_err(|_| invalid(format!("bad chunk size {hex:?}")))?;
                    self.line.clear();
                    self.state = if size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(size)
                    };
                }
            }
        }
        Ok(i)
    }
}

/// Decodes a response body of any framing incrementally.
#[derive(Debug)]
pub enum BodyDecoder {
    Chunked(ChunkedDecoder),
    Length(u64),
    UntilClose,
}

impl BodyDecoder {
    pub fn new(kind: BodyKind) -> Self {
        match kind {
            BodyKind::Chunked => BodyDecoder::Chunked(ChunkedDecoder::new()),
            BodyKind::Length(n) => BodyDecoder::Length(n),
            BodyKind::UntilClose => BodyDecoder::UntilClose,
        }
    }

    pub fn is_done(&self) -> bool {
        match self {
            BodyDecoder::Chunked(c) => c.is_done(),
            BodyDecoder::Length(n) => *n == 0,
            BodyDecoder::UntilClose => false,
        }
    }

    /// Appends body bytes from `input` to `out`; returns the bytes consumed.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, io::Error> {
        match self {
            BodyDecoder::Chunked(c) => c.feed(input, out),
            BodyDecoder::Length(left) => {
                let take = (*left).min(input.len() as u64) as usize;
                out.extend_from_slice(&input[..take]);
                *left -= take as u64;
                Ok(take)
            }
            BodyDecoder::UntilClose => {
                out.extend_from_slice(input);
                Ok(input.len())
            }
        }
    }
}

/// Builds a request. `headers` are extra headers; `Host` and `Content-Length` (when there
/// is a body) are added.
pub fn build_request(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        req.push_str(name);
        req.push_str(": ");
        req.push_str(value);
        req.push_str("\r\n");
    }
    if let Some(body) = body {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    if let Some(body) = body {
        bytes.extend_from_slice(body);
    }
    bytes
}

pub async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads a response head from `stream`; bytes past the head stay in `buf`.
pub async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<ResponseHead> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some((head, len)) = parse_head(buf)? {
            buf.drain(..len);
            return Ok(head);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                if buf.is_empty() {
                    "connection closed before any response"
                } else {
                    "connection closed inside the response head"
                },
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One keep-alive connection for whole request/response exchanges (not streams).
pub struct Conn {
    addr: SocketAddr,
    host: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    timeout: Duration,
}

pub struct Response {
    pub head: ResponseHead,
    pub body: Vec<u8>,
}

impl Response {
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Conn {
    pub fn new(addr: SocketAddr, timeout: Duration) -> Self {
        Conn {
            addr,
            host: addr.to_string(),
            stream: None,
            buf: Vec::new(),
            timeout,
        }
    }

    /// Sends one request and reads the whole response. A reused connection that the
    /// server had closed before sending anything is retried once on a new connection.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> io::Result<Response> {
        let req = build_request(method, &self.host, path, headers, body);
        let reused = self.stream.is_some();
        match tokio::time::timeout(self.timeout, self.exchange(method, &req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) if reused && is_stale_connection(&e) => {
                self.stream = None;
                match tokio::time::timeout(self.timeout, self.exchange(method, &req)).await {
                    Ok(r) => r,
                    Err(_) => {
                        self.stream = None;
                        Err(io::Error::new(io::ErrorKind::TimedOut, "request timed out"))
                    }
                }
            }
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                self.stream = None;
                Err(io::Error::new(io::ErrorKind::TimedOut, "request timed out"))
            }
        }
    }

    async fn exchange(&mut self, method: &str, req: &[u8]) -> io::Result<Response> {
        if self.stream.is_none() {
            self.stream = Some(connect(self.addr, self.timeout).await?);
            self.buf.clear();
        }
        let stream = self.stream.as_mut().expect("connected above");
        let result = async {
            stream.write_all(req).await?;
            let head = read_head(stream, &mut self.buf).await?;
            let kind = head.body_kind(method)?;
            let mut decoder = BodyDecoder::new(kind);
            let mut body = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let used = decoder.feed(&self.buf, &mut body)?;
                self.buf.drain(..used);
                if decoder.is_done() {
                    break;
                }
                if body.len() > MAX_BODY {
                    return Err(invalid("response body too large"));
                }
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    if kind == BodyKind::UntilClose {
                        break;
                    }
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed inside the response body",
                    ));
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
            let keep = head.keep_alive() && kind != BodyKind::UntilClose;
            Ok((Response { head, body }, keep))
        }
        .await;
        match result {
            Ok((resp, keep)) => {
                if !keep {
                    self.stream = None;
                }
                Ok(resp)
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }
}

fn is_stale_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof
    ) && !e.to_string().contains("inside")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_head() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nrest";
        let (head, len) = parse_head(raw).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-type"), Some("text/event-stream"));
        assert_eq!(head.body_kind("GET").unwrap(), BodyKind::Chunked);
        assert_eq!(&raw[len..], b"rest");
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nA: b\r\n")
            .unwrap()
            .is_none());
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn body_kinds() {
        let (h, _) =
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\nConnection: close\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(h.body_kind("GET").unwrap(), BodyKind::Length(12));
        assert!(!h.keep_alive());
        let (h, _) = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.body_kind("OPTIONS").unwrap(), BodyKind::Length(0));
        let (h, _) = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.body_kind("GET").unwrap(), BodyKind::UntilClose);
    }

    #[test]
    fn chunked_any_split() {
        let raw = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-T: y\r\n\r\nNEXT";
        for cut in 0..raw.len() {
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::new();
            let a = d.feed(&raw[..cut], &mut out).unwrap();
            let end = if d.is_done() {
                a
            } else {
                assert_eq!(a, cut);
                cut + d.feed(&raw[cut..], &mut out).unwrap()
            };
            assert!(d.is_done(), "cut {cut}");
            assert_eq!(out, b"hello, world");
            assert_eq!(&raw[end..], b"NEXT", "cut {cut}");
        }
    }

    #[test]
    fn chunked_rejects_garbage() {
        let mut d = ChunkedDecoder::new();
        assert!(d.feed(b"zz\r\n", &mut Vec::new()).is_err());
        let mut d = ChunkedDecoder::new();
        assert!(d.feed(b"2\r\nabX", &mut Vec::new()).is_err());
    }

    #[test]
    fn request_bytes() {
        let r = build_request("POST", "127.0.0.1:1", "/x", &[("A", "b")], Some(b"{}"));
        assert_eq!(
            r,
            b"POST /x HTTP/1.1\r\nHost: 127.0.0.1:1\r\nA: b\r\nContent-Length: 2\r\n\r\n{}"
        );
    }
}
