//! The bench's requests, over `reqwest` (hyper): plain HTTP/1.1 to loopback, no proxy.
//! One client (and so one connection pool) per tokio runtime that uses it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::{Client, Response, StatusCode};

/// A client for one target. A streaming response keeps its connection to itself, so
/// every listener has one of its own, as a browser's `EventSource` would.
#[derive(Clone)]
pub struct Api {
    client: Client,
    base: String,
    timeout: Duration,
    /// Publishes say `Connection: close` (and no connection is kept for the next).
    close: bool,
}

/// A publish body: a channel's JSON or NDJSON batch, or a Mercure hub's form; or a
/// streaming publish's NDJSON, its lines sent as they come from the channel.
pub enum Body {
    Json(String),
    Ndjson(String),
    Form(String),
    NdjsonStream(tokio::sync::mpsc::Receiver<bytes::Bytes>),
}

/// A request body whose chunks come from a channel, each sent as it arrives (chunked).
struct ChannelBody(tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl http_body::Body for ChannelBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(http_body::Frame::data(c))))
    }
}

impl Api {
    pub fn new(addr: SocketAddr, connect_timeout: Duration, timeout: Duration) -> Api {
        Api::build(addr, connect_timeout, timeout, true)
    }

    /// A client that opens a new connection for every request and asks the server to
    /// close it after the answer (`Connection: close`), as a publisher without keep-alive.
    pub fn without_keep_alive(
        addr: SocketAddr,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Api {
        Api::build(addr, connect_timeout, timeout, false)
    }

    fn build(
        addr: SocketAddr,
        connect_timeout: Duration,
        timeout: Duration,
        keep_alive: bool,
    ) -> Api {
        let mut builder = Client::builder()
            .no_proxy()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true);
        if !keep_alive {
            builder = builder.pool_max_idle_per_host(0);
        }
        Api {
            client: builder
                .build()
                .expect("an HTTP client without TLS always builds"),
            base: format!("http://{addr}"),
            timeout,
            close: !keep_alive,
        }
    }

    /// Opens an event stream (`GET path`, resuming after `last_event_id` if not empty)
    /// and returns it once its head is in; any status but 200 is an error.
    pub async fn open_stream(&self, path: &str, last_event_id: &str) -> Result<Response, String> {
        let mut request = self
            .client
            .get(format!("{}{path}", self.base))
            .header("Accept", "text/event-stream")
            .header("Cache-Control", "no-cache");
        if !last_event_id.is_empty() {
            request = request.header("Last-Event-ID", last_event_id);
        }
        let response = tokio::time::timeout(self.timeout, request.send())
            .await
            .map_err(|_| "no response head in time".to_string())?
            .map_err(|e| format!("connect/request failed: {e}"))?;
        if response.status() != StatusCode::OK {
            return Err(error_text(response).await);
        }
        Ok(response)
    }

    /// `POST path` with a body: its round-trip time when answered 2xx (nchan answers 201
    /// or 202).
    pub async fn publish(
        &self,
        path: &str,
        body: Body,
        bearer: Option<&str>,
    ) -> Result<Duration, (Option<StatusCode>, String)> {
        let (content_type, body) = match body {
            Body::Json(b) => ("application/json", b.into()),
            Body::Ndjson(b) => ("application/x-ndjson", b.into()),
            Body::Form(b) => ("application/x-www-form-urlencoded", b.into()),
            Body::NdjsonStream(rx) => {
                ("application/x-ndjson", reqwest::Body::wrap(ChannelBody(rx)))
            }
        };
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("Content-Type", content_type)
            .timeout(self.timeout)
            .body::<reqwest::Body>(body);
        if let Some(secret) = bearer {
            request = request.bearer_auth(secret);
        }
        if self.close {
            request = request.header("Connection", "close");
        }
        let sent = Instant::now();
        let response = request
            .send()
            .await
            .map_err(|e| (None, format!("publish: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err((
                Some(status),
                format!("publish: {}", error_text(response).await),
            ));
        }
        // The whole answer counts: the round trip ends when its body is in.
        response
            .bytes()
            .await
            .map_err(|e| (Some(status), format!("publish: {e}")))?;
        Ok(sent.elapsed())
    }

    /// `GET path` answered 200 with JSON.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, String> {
        self.get_json_as(path, None).await
    }

    /// `GET path` answered 200 with JSON, sent with `Authorization: Bearer <bearer>` if
    /// any (the hub's stats want a publisher's token).
    pub async fn get_json_as(
        &self,
        path: &str,
        bearer: Option<&str>,
    ) -> Result<serde_json::Value, String> {
        let mut request = self
            .client
            .get(format!("{}{path}", self.base))
            .header("Accept", "application/json")
            .timeout(self.timeout);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        if response.status() != StatusCode::OK {
            return Err(format!("GET {path}: {}", error_text(response).await));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("GET {path}: bad JSON: {e}"))
    }
}

/// Asks bench/miniflare.mjs at `addr` for a full garbage collection in the runtime's
/// isolates, and waits until it is done.
/// Asks the runtime at `gc` (none: it cannot) to collect its garbage; says whether it did,
/// and notes in `errors` why not when it failed.
pub async fn collect_garbage_noting(gc: Option<SocketAddr>, errors: &mut Vec<String>) -> bool {
    let Some(addr) = gc else {
        return false;
    };
    match collect_garbage(addr).await {
        Ok(()) => true,
        Err(e) => {
            errors.push(e);
            false
        }
    }
}

pub async fn collect_garbage(addr: SocketAddr) -> Result<(), String> {
    let response = Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?
        .post(format!("http://{addr}/gc"))
        .timeout(Duration::from_secs(90))
        .send()
        .await
        .map_err(|e| format!("garbage collection: {e}"))?;
    if response.status() != StatusCode::OK {
        return Err(format!(
            "garbage collection: {}",
            error_text(response).await
        ));
    }
    Ok(())
}

/// `HTTP <status>: <first line of the body>`, for an error answer.
async fn error_text(response: Response) -> String {
    let status = response.status();
    let body = tokio::time::timeout(Duration::from_secs(2), response.text())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let line: String = body
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    format!("HTTP {status}: {line}")
}
