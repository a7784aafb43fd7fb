//! The Durable Object that hosts one channel: its listeners' streams, its history in
//! SQLite, and a keep-alive alarm while anyone listens. The Worker has validated every
//! request before it gets here; this object only reads the typed [`ChannelCall`]s of
//! the contract.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use worker::{durable_object, Date, Delay, DurableObject, Env, Request, Response, State};

use super::contract::{ChannelCall, ChannelRequest};
use super::error::Error;
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
    /// Shared with the flush that runs after a publish's request has finished.
    hosted: Rc<RefCell<Option<Hosted>>>,
    keep_alive_armed: Cell<bool>,
    /// When the last probe for gone clients was written.
    last_probe_ms: Cell<u64>,
    flush_scheduled: Rc<Cell<bool>>,
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

impl Channel {
    /// Opens the channel on first use: configuration and stored history (read only; the
    /// tables appear with the first write).
    fn ensure_open(&self) -> Result<(), Error> {
        if self.hosted.borrow().is_some() {
            return Ok(());
        }
        let config = super::read_config(&self.env)?;
        let log = SqlLog::open(self.state.storage().sql())?;
        let channel = domain::Channel::new((&config).into(), log);
        *self.hosted.borrow_mut() = Some(Hosted { config, channel });
        Ok(())
    }

    fn with_hosted<T>(&self, f: impl FnOnce(&mut Hosted) -> T) -> T {
        let mut hosted = self.hosted.borrow_mut();
        f(hosted.as_mut().expect("ensure_open ran first"))
    }

    async fn serve(&self, req: &mut Request) -> Result<Response, Error> {
        let call = ChannelCall::read(req).await?;
        self.ensure_open()?;
        match call.request {
            ChannelRequest::Listen { last_seen } => self.listen(last_seen).await,
            ChannelRequest::Publish(message) => self.publish(&message),
            ChannelRequest::Stats => self.stats(&call.channel),
        }
    }

    async fn listen(&self, last_seen: Option<EventId>) -> Result<Response, Error> {
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
        Ok(Response::builder()
            .with_status(200)
            .with_headers(http::event_stream_headers()?)
            .stream(body))
    }

    fn publish(&self, message: &Message) -> Result<Response, Error> {
        let published = self.with_hosted(|h| h.channel.publish(message, now_ms()))?;
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

    /// Sends what was published to the listeners once the batch window has passed (with a
    /// window of 0, once the object is idle: everything published meanwhile goes together).
    fn schedule_flush(&self) {
        if self.flush_scheduled.replace(true) {
            return;
        }
        let window = self.with_hosted(|h| h.config.batch_window_ms);
        let hosted = Rc::clone(&self.hosted);
        let scheduled = Rc::clone(&self.flush_scheduled);
        self.state.wait_until(async move {
            Delay::from(Duration::from_millis(window)).await;
            scheduled.set(false);
            if let Some(h) = hosted.borrow_mut().as_mut() {
                h.channel.flush();
                h.report_store_error();
            }
        });
    }

    async fn arm_keep_alive(&self) -> Result<(), Error> {
        if self.keep_alive_armed.replace(true) {
            return Ok(());
        }
        let interval = self.with_hosted(|h| h.config.keep_alive_ms());
        let armed = self
            .state
            .storage()
            .set_alarm(Duration::from_millis(interval))
            .await;
        if armed.is_err() {
            self.keep_alive_armed.set(false);
        }
        Ok(armed?)
    }
}

impl DurableObject for Channel {
    fn new(state: State, env: Env) -> Self {
        Channel {
            state,
            env,
            hosted: Rc::new(RefCell::new(None)),
            keep_alive_armed: Cell::new(false),
            last_probe_ms: Cell::new(0),
            flush_scheduled: Rc::new(Cell::new(false)),
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
        self.keep_alive_armed.set(false);
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
