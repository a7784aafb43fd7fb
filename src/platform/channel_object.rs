//! The Durable Object that hosts one channel: its listeners' streams, its history in
//! SQLite, and a keep-alive alarm while anyone listens. The Worker has validated every
//! request before it gets here; this object only reads the typed [`ChannelCall`]s of
//! the contract.

use std::cell::Cell;
use std::time::Duration;

use worker::{durable_object, Date, Delay, DurableObject, Env, Request, Response, State};

use super::contract::{ChannelCall, ChannelRequest};
use super::error::Error;
use super::host::Host;
use super::http;
use super::outlet::StreamOutlet;
use super::sql_log::SqlLog;
use crate::domain::{self, ChannelName, Config, EventId, Message};

/// How long a full channel keeps writing keep-alives to its listeners (one per
/// `PROBE_POLL`), for the runtime to report clients that went away, before it refuses a
/// newcomer.
const PROBE_WAIT: Duration = Duration::from_millis(1000);
const PROBE_POLL: Duration = Duration::from_millis(50);

/// The channel this object hosts, once opened: its configuration and its state.
struct Hosted {
    config: Config,
    channel: domain::Channel<StreamOutlet, SqlLog>,
}

impl Hosted {
    /// Logs a storage failure met after a publish was answered (under
    /// `PUBLISH_ACK=accepted` the events were sent but could not be kept).
    fn report_store_error(&mut self) {
        if let Some(e) = self.channel.take_store_error() {
            worker::console_error!("channel storage failed after answering: {e}");
        }
    }
}

#[durable_object]
pub struct Channel {
    state: State,
    env: Env,
    host: Host<Hosted>,
    /// When the last probe for gone clients was written.
    last_probe_ms: Cell<u64>,
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

impl Channel {
    /// Opens the channel on first use: configuration and stored history (read only; the
    /// tables appear with the first write).
    fn ensure_open(&self) -> Result<(), Error> {
        self.host.ensure_open(|| {
            let config = super::read_config(&self.env)?;
            let log = SqlLog::open(self.state.storage().sql())?;
            let channel = domain::Channel::new((&config).into(), log);
            Ok(Hosted { config, channel })
        })
    }

    fn with_hosted<T>(&self, f: impl FnOnce(&mut Hosted) -> T) -> T {
        self.host.with(f)
    }

    async fn serve(&self, req: &mut Request) -> Result<Response, Error> {
        let call = ChannelCall::read(req).await?;
        self.ensure_open()?;
        match call.request {
            ChannelRequest::Listen {
                last_seen,
                allow_origin,
            } => self.listen(last_seen, allow_origin).await,
            ChannelRequest::Publish(message) => self.publish(&message),
            ChannelRequest::PublishBatch(messages) => self.publish_batch(&messages),
            ChannelRequest::Stats => self.stats(&call.channel),
        }
    }

    async fn listen(
        &self,
        last_seen: Option<EventId>,
        allow_origin: Option<String>,
    ) -> Result<Response, Error> {
        // A full channel may be full of clients that went away without a word: writing to
        // them makes the runtime notice (locally, by the second write, within ~100 ms).
        let started = now_ms();
        while !self.with_hosted(|h| h.channel.has_room())
            && now_ms() - started < PROBE_WAIT.as_millis() as u64
        {
            // Newcomers waiting together share the probes.
            if now_ms() - self.last_probe_ms.get() >= PROBE_POLL.as_millis() as u64 {
                self.last_probe_ms.set(now_ms());
                self.with_hosted(|h| h.channel.probe());
            }
            Delay::from(PROBE_POLL).await;
        }
        let capacity = self.with_hosted(|h| h.config.queue_capacity);
        let (outlet, body) = StreamOutlet::open(capacity)?;
        self.with_hosted(|h| h.channel.subscribe(outlet, last_seen, now_ms()))?;
        self.arm_keep_alive().await?;
        let headers = http::event_stream_headers()?;
        for (name, value) in http::cors_headers(allow_origin) {
            headers.set(name, &value)?;
        }
        Ok(Response::builder()
            .with_status(200)
            .with_headers(headers)
            .stream(body))
    }

    fn publish(&self, message: &Message) -> Result<Response, Error> {
        let published = self.with_hosted(|h| h.channel.publish(message, now_ms()))?;
        self.schedule_flush();
        http::json(&published.to_json())
    }

    fn publish_batch(&self, messages: &[Message]) -> Result<Response, Error> {
        let published = self.with_hosted(|h| h.channel.publish_batch(messages, now_ms()))?;
        self.schedule_flush();
        http::json(&published.to_json())
    }

    fn stats(&self, channel: &ChannelName) -> Result<Response, Error> {
        let stats = self.with_hosted(|h| {
            let stats = h.channel.stats(now_ms());
            h.report_store_error();
            stats
        });
        http::json(&stats.to_json(channel.as_str()))
    }

    /// Sends what was published to the listeners once the batch window has passed.
    fn schedule_flush(&self) {
        let window = self.with_hosted(|h| h.config.batch_window_ms);
        self.host.schedule_flush(&self.state, window, |h| {
            h.channel.flush();
            h.report_store_error();
        });
    }

    async fn arm_keep_alive(&self) -> Result<(), Error> {
        let interval = self.with_hosted(|h| h.config.keep_alive_ms());
        self.host.arm_keep_alive(&self.state, interval).await
    }
}

impl DurableObject for Channel {
    fn new(state: State, env: Env) -> Self {
        Channel {
            state,
            env,
            host: Host::new(),
            last_probe_ms: Cell::new(0),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        match self.serve(&mut req).await {
            Ok(response) => Ok(response),
            Err(e) => e.to_response(),
        }
    }

    /// The keep-alive tick, several times per heartbeat interval while anyone listens.
    async fn alarm(&self) -> worker::Result<Response> {
        self.host.keep_alive_fired();
        if self.ensure_open().is_ok() {
            let listeners = self.with_hosted(|h| {
                h.channel.keep_alive(now_ms());
                h.report_store_error();
                h.channel.listeners()
            });
            if listeners > 0 {
                if let Err(e) = self.arm_keep_alive().await {
                    return e.to_response();
                }
            }
        }
        Response::empty()
    }
}
