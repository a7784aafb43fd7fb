//! A streaming publish on a channel's root: the request's body is read as it arrives,
//! NDJSON, and each chunk's whole lines are published together as soon as they are read
//! (stored, then sent with the next flush), so that a server relaying a model's output
//! pipes it straight in and listeners see each token within the batch window. The answer
//! comes when the body ends. It is not all-or-nothing: a bad line, a line or a stream
//! past its limit, or a body that stalls stops it there, after what came before.

use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use serde_json::json;
use worker::{ByteStream, Delay, Response};

use super::channel::Channels;
use super::StreamObject;
use crate::domain::{EventId, LineReader, MessageLimits, PublishedBatch};
use crate::platform::error::{Error, StreamStop};
use crate::platform::host::now_ms;
use crate::platform::http;

/// What a streaming publish has published so far.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Published {
    pub first: Option<EventId>,
    pub last: Option<EventId>,
    pub count: u64,
}

impl Published {
    fn add(&mut self, batch: &PublishedBatch) {
        if batch.last >= batch.first {
            self.first.get_or_insert(batch.first);
            self.last = Some(batch.last);
            self.count += batch.last.0 + 1 - batch.first.0;
        }
    }
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.first, self.last) {
            (Some(first), Some(last)) => write!(
                f,
                "the {} events before it were published (ids {first} to {last})",
                self.count
            ),
            _ => f.write_str("nothing was published"),
        }
    }
}

impl StreamObject<Channels> {
    /// Publishes `body`'s lines as they arrive; `end`: ends the channel once the body has
    /// ended well.
    pub(super) async fn publish_stream(
        &self,
        body: Option<&mut ByteStream>,
        end: bool,
    ) -> Result<Response, Error> {
        let (mut reader, stall) = self.with(|h| {
            let c = &h.config;
            let limits = MessageLimits {
                max_event_type_bytes: c.max_event_type_bytes,
            };
            let reader = LineReader::new(limits, c.max_body_bytes, c.max_stream_bytes);
            (reader, Duration::from_millis(c.stream_stall_ms))
        });
        self.with(|h| h.stream.check_publishable())?;
        let mut published = Published::default();
        if let Some(body) = body {
            loop {
                let chunk = match select(body.next(), Delay::from(stall)).await {
                    Either::Left((Some(Ok(chunk)), _)) => chunk,
                    Either::Left((None, _)) => break,
                    Either::Left((Some(Err(_)), _)) => {
                        return Err(stopped(StreamStop::Unreadable, published));
                    }
                    Either::Right(_) => {
                        let ms = stall.as_millis() as u64;
                        return Err(stopped(StreamStop::Stalled { ms }, published));
                    }
                };
                let (messages, error) = reader.feed(&chunk);
                self.publish_lines(&messages, &mut published).await?;
                if let Some(error) = error {
                    return Err(stopped(StreamStop::Line(error), published));
                }
            }
        }
        match reader.finish() {
            Ok(last) => {
                let last: Vec<_> = last.into_iter().collect();
                self.publish_lines(&last, &mut published).await?;
            }
            Err(error) => return Err(stopped(StreamStop::Line(error), published)),
        }
        let listeners = self.with(|h| h.stream.subtree_listeners());
        let mut answer = json!({
            "firstId": published.first.map(|id| id.to_string()),
            "lastId": published.last.map(|id| id.to_string()),
            "count": published.count,
            "listeners": listeners,
        });
        if end {
            let ending = self.with(|h| h.stream.end(&[], now_ms()))?;
            answer["ended"] = json!(true);
            answer["lastId"] = json!(ending.last.to_string());
        }
        http::json(&answer)
    }

    /// Reads what is left of a streaming publish's body and drops it, for at most
    /// `MAX_STREAM_BYTES` and while it does not stall.
    pub(super) async fn drain(&self, mut body: ByteStream) {
        let defaults = crate::domain::Config::default();
        let config = |c: &crate::domain::Config| {
            (c.max_stream_bytes, Duration::from_millis(c.stream_stall_ms))
        };
        // Not open when the call failed before it was: the defaults bound it then.
        let (mut left, stall) = match self.host.is_open() {
            true => self.with(|h| config(&h.config)),
            false => config(&defaults),
        };
        while let Either::Left((Some(Ok(chunk)), _)) = select(body.next(), Delay::from(stall)).await
        {
            left = left.saturating_sub(chunk.len() as u64);
            if left == 0 {
                break;
            }
        }
    }

    /// Publishes one chunk's lines together; they go out with the next flush.
    async fn publish_lines(
        &self,
        messages: &[crate::domain::Message],
        published: &mut Published,
    ) -> Result<(), Error> {
        if messages.is_empty() {
            return Ok(());
        }
        let batch = self.with(|h| {
            // Another publisher may have ended the channel meanwhile.
            h.stream.check_publishable()?;
            Ok::<_, Error>(h.stream.publish_batch(messages, now_ms())?)
        })?;
        published.add(&batch);
        self.published().await
    }
}

fn stopped(why: StreamStop, published: Published) -> Error {
    Error::StreamStopped {
        why,
        published: published.to_string(),
    }
}
