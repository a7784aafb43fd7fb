//! Building responses (JSON, the event-stream headers, headers added to an answer) and
//! reading a publish body within its limit. (Errors
//! become responses in one place, [`super::error::Error::to_response`]; CORS headers are
//! [`super::cors`]'s.)

use worker::{Headers, Request, Response};

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

/// Reads a publish body within `max` bytes (`MAX_BODY_BYTES`), for both faces: a declared
/// `Content-Length` over it is refused before anything is read, and the body read is
/// checked too, since a chunked body declares none. 413 either way.
pub async fn read_body(req: &mut Request, max: usize) -> Result<Vec<u8>, Error> {
    let declared = req
        .headers()
        .get("Content-Length")?
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(Error::TooLarge { max });
    }
    let body = req.bytes().await?;
    if body.len() > max {
        return Err(Error::TooLarge { max });
    }
    Ok(body)
}
