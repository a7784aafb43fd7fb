//! Building responses: JSON, the event-stream headers, headers added to an answer. (Errors
//! become responses in one place, [`super::error::Error::to_response`]; CORS headers are
//! [`super::cors`]'s.)

use worker::{Headers, Response};

use super::error::Error;

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
