//! Building responses: JSON, the event-stream headers and CORS. (Errors become responses
//! in one place: [`super::error::Error::to_response`].)

use worker::{Headers, Response};

use super::error::Error;
use crate::domain::AllowedOrigins;

pub fn json(value: &serde_json::Value) -> Result<Response, Error> {
    // One `Headers`, set once each (`Response::ok` would make one and set a text type
    // on it, only to have it replaced).
    Ok(Response::builder()
        .with_header("Content-Type", "application/json")?
        .with_header("Cache-Control", "no-store")?
        .fixed(value.to_string().into_bytes()))
}

/// Headers for an event stream: no caching and no proxy buffering, so every write
/// reaches the client as it is made.
pub fn event_stream_headers() -> Result<Headers, Error> {
    let headers = Headers::new();
    headers.set("Content-Type", "text/event-stream")?;
    headers.set("Cache-Control", "no-cache")?;
    headers.set("X-Accel-Buffering", "no")?;
    Ok(headers)
}

pub const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";
pub const ALLOWED_HEADERS: &str = "Authorization, Content-Type, Last-Event-ID";

/// The channel API's CORS headers for an allowed origin's `Access-Control-Allow-Origin`
/// value (`*`, or the origin itself, which also needs `Vary: Origin`).
pub fn cors_headers(allowed: Option<String>) -> Vec<(&'static str, String)> {
    match allowed {
        None => Vec::new(),
        Some(any) if any == "*" => vec![("Access-Control-Allow-Origin", any)],
        Some(origin) => vec![
            ("Access-Control-Allow-Origin", origin),
            ("Vary", "Origin".to_string()),
        ],
    }
}

/// Adds `Access-Control-Allow-Origin` (`allowed`: the value for the request's origin, if
/// it is allowed) unless the response has it: a channel's object sets it on its own
/// answers. A response made here takes the header as is; one from an object (immutable
/// headers) is copied.
pub fn with_cors(mut response: Response, allowed: Option<String>) -> worker::Result<Response> {
    let extra = cors_headers(allowed);
    if extra.is_empty() || response.headers().has("Access-Control-Allow-Origin")? {
        return Ok(response);
    }
    let mutable = extra
        .iter()
        .all(|(name, value)| response.headers_mut().set(name, value).is_ok());
    if mutable {
        Ok(response)
    } else {
        with_headers(response, extra)
    }
}

/// Adds headers to a response (a response from a Durable Object has immutable headers,
/// so they are copied, by the runtime in one call; the body is not).
pub fn with_headers(
    response: Response,
    extra: Vec<(&'static str, String)>,
) -> worker::Result<Response> {
    if extra.is_empty() {
        return Ok(response);
    }
    let headers = Headers(worker::web_sys::Headers::new_with_headers(
        &response.headers().0,
    )?);
    for (name, value) in extra {
        headers.set(name, &value)?;
    }
    Ok(response.with_headers(headers))
}

/// Answers a CORS preflight.
pub fn preflight(origins: &AllowedOrigins, origin: Option<&str>) -> Result<Response, Error> {
    if origins.allow(origin).is_none() {
        return Err(Error::OriginNotAllowed);
    }
    let headers = Headers::new();
    headers.set("Access-Control-Allow-Methods", ALLOWED_METHODS)?;
    headers.set("Access-Control-Allow-Headers", ALLOWED_HEADERS)?;
    headers.set("Access-Control-Max-Age", "86400")?;
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}
