//! A streaming publish on a channel's root: the request's body is read as it arrives,
//! NDJSON, and each chunk's whole lines are published together as soon as they are read
//! (stored, then sent with the next flush, which a fast body does not wait for), so that a
//! server relaying a model's output pipes it straight in and listeners see each token
//! within the batch window. The answer comes when the body ends. It is not all-or-nothing:
//! a bad line, a line or a stream past its limit, or a body that stalls stops it there,
//! after what came before.

use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use worker::{ByteStream, Delay, Response};

use super::channel::Channels;
use super::{Hosted, StreamObject};
use crate::domain::{LineReader, MessageLimits, PublishedStream};
use crate::platform::error::{Error, StreamStop};
use crate::platform::host::now_ms;
use crate::platform::host::Shared;
use crate::platform::http;

/// How long a streaming publish that stopped early goes on reading (and dropping) what is
/// left of its body: a body left unread keeps its sender's connection from the next
/// request, and a sender that keeps sending is not waited for past this.
const DRAIN_MS: u64 = 1000;

/// While a streaming publish's body arrives faster than the object turns to its timers,
/// its lines go out at least this often (or every `BATCH_WINDOW_MS`, when longer): the
/// scheduled flush alone would wait for the body to pause.
const FLUSH_EVERY_MS: u64 = 25;

/// A streaming publish counted as open in its channel's state while it lives (the
/// state is reached as work between requests reaches it: it may have been let go).
struct Open(Shared<Hosted<Channels>>);

impl Open {
    fn new(hosted: Shared<Hosted<Channels>>) -> Open {
        hosted.with(|h| h.face.streaming += 1);
        Open(hosted)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0
            .with(|h| h.face.streaming = h.face.streaming.saturating_sub(1));
    }
}

/// A streaming publish under way: what it published, and when its lines last went out.
struct Streaming {
    published: PublishedStream,
    flushed_at: u64,
    flush_every: u64,
}

impl StreamObject<Channels> {
    /// Publishes `body`'s lines as they arrive; `end`: ends the channel once the body has
    /// ended well.
    pub(super) async fn publish_stream(
        &self,
        body: Option<&mut ByteStream>,
        end: bool,
    ) -> Result<Response, Error> {
        let _open = Open::new(self.host.shared());
        let (mut reader, stall, window) = self.with(|h| {
            let c = &h.config;
            let limits = MessageLimits {
                max_event_type_bytes: c.max_event_type_bytes,
            };
            let reader = LineReader::new(limits, c.max_body_bytes, c.max_stream_bytes);
            let stall = Duration::from_millis(c.stream_stall_ms);
            (reader, stall, c.batch_window_ms)
        });
        self.with(|h| h.stream.check_publishable())?;
        let mut streaming = Streaming {
            published: PublishedStream::default(),
            flushed_at: now_ms(),
            flush_every: window.max(FLUSH_EVERY_MS),
        };
        if let Some(body) = body {
            loop {
                let chunk = match select(body.next(), Delay::from(stall)).await {
                    Either::Left((Some(Ok(chunk)), _)) => chunk,
                    Either::Left((None, _)) => break,
                    Either::Left((Some(Err(_)), _)) => {
                        return Err(stopped(StreamStop::Unreadable, streaming.published));
                    }
                    Either::Right(_) => {
                        let ms = stall.as_millis() as u64;
                        return Err(stopped(StreamStop::Stalled { ms }, streaming.published));
                    }
                };
                let (messages, error) = reader.feed(&chunk);
                self.publish_lines(&messages, &mut streaming).await?;
                if let Some(error) = error {
                    return Err(stopped(StreamStop::Line(error), streaming.published));
                }
            }
        }
        match reader.finish() {
            Ok(last) => {
                let last: Vec<_> = last.into_iter().collect();
                self.publish_lines(&last, &mut streaming).await?;
            }
            Err(error) => return Err(stopped(StreamStop::Line(error), streaming.published)),
        }
        // Those it went to: counted before an ending closes their streams.
        let listeners = self.with(|h| h.stream.subtree_listeners());
        let ended = match end {
            true => Some(self.end(&[]).await?.last),
            false => None,
        };
        http::json(&streaming.published.to_json(listeners, ended))
    }

    /// Reads what is left of a streaming publish's body and drops it, for at most
    /// [`DRAIN_MS`] and `MAX_STREAM_BYTES`: the answer waits that long at most.
    pub(super) async fn drain(&self, mut body: ByteStream) {
        let mut left = match self.host.is_open() {
            true => self.with(|h| h.config.max_stream_bytes),
            // Not open when the call failed before it was: the default bounds it then.
            false => crate::domain::Config::default().max_stream_bytes,
        };
        let deadline = now_ms() + DRAIN_MS;
        while left > 0 {
            let wait = Duration::from_millis(deadline.saturating_sub(now_ms()));
            match select(body.next(), Delay::from(wait)).await {
                Either::Left((Some(Ok(chunk)), _)) => {
                    left = left.saturating_sub(chunk.len() as u64);
                }
                _ => break,
            }
        }
    }

    /// Publishes one chunk's lines together; they go out with the next flush.
    async fn publish_lines(
        &self,
        messages: &[crate::domain::Message],
        streaming: &mut Streaming,
    ) -> Result<(), Error> {
        if messages.is_empty() {
            return Ok(());
        }
        let batch = self.with(|h| {
            // Another publisher may have ended the channel meanwhile.
            h.stream.check_publishable()?;
            Ok::<_, Error>(h.stream.publish_batch(messages, now_ms())?)
        })?;
        streaming.published.add(&batch);
        let now = now_ms();
        if now.saturating_sub(streaming.flushed_at) >= streaming.flush_every {
            self.flush_now();
            streaming.flushed_at = now;
        }
        self.published().await
    }
}

fn stopped(why: StreamStop, published: PublishedStream) -> Error {
    Error::StreamStopped {
        why,
        published: published.to_string(),
    }
}
