//! The Durable Object that hosts one channel: its listeners' streams, its history in
//! SQLite, and a heartbeat alarm while anyone listens. The Worker has validated every
//! request before it gets here; this object only speaks the small internal protocol below.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use serde_json::Value;
use worker::{durable_object, Date, Delay, DurableObject, Env, Request, Response, Result, State};

use super::http;
use super::outlet::StreamOutlet;
use super::sql_log::SqlLog;
use crate::domain::{self, BodyKind, Config, EventId, Message, MessageLimits, SubscribeError};

/// The internal requests the Worker sends (the origin is never resolved: a stub routes
/// by object, not by URL).
pub const INTERNAL_ORIGIN: &str = "https://channel.internal";
pub const LISTEN_PATH: &str = "/listen";
pub const PUBLISH_PATH: &str = "/publish";
pub const STATS_PATH: &str = "/stats";
/// Carries the channel's name, for the stats.
pub const CHANNEL_NAME_HEADER: &str = "X-Channel-Name";
/// The resume point on an internal listen request (already validated by the Worker).
pub const LAST_EVENT_ID_PARAM: &str = "lastEventId";

type HostedChannel = domain::Channel<StreamOutlet, SqlLog>;

struct Hosted {
    config: Config,
    channel: HostedChannel,
}

impl Hosted {
    /// Logs a storage failure met by a flush (under `PUBLISH_ACK=accepted` the events were
    /// sent but could not be kept).
    fn report_store_error(&mut self) {
        if let Some(e) = self.channel.take_store_error() {
            worker::console_error!("events were sent but not kept: {e}");
        }
    }
}

/// The channel, shared with the flush that runs after a publish's request has finished.
type SharedHosted = Rc<RefCell<Option<Hosted>>>;

#[durable_object]
pub struct Channel {
    state: State,
    env: Env,
    hosted: SharedHosted,
    heartbeat_armed: Cell<bool>,
    flush_scheduled: Rc<Cell<bool>>,
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

impl Channel {
    /// Opens the channel on first use: configuration and stored history.
    fn ensure_open(&self) -> std::result::Result<(), String> {
        if self.hosted.borrow().is_some() {
            return Ok(());
        }
        let config = super::read_config(&self.env).map_err(|e| e.to_string())?;
        let log = SqlLog::open(self.state.storage().sql()).map_err(|e| e.to_string())?;
        let channel = domain::Channel::new((&config).into(), log);
        *self.hosted.borrow_mut() = Some(Hosted { config, channel });
        Ok(())
    }

    fn with_hosted<T>(&self, f: impl FnOnce(&mut Hosted) -> T) -> T {
        let mut hosted = self.hosted.borrow_mut();
        f(hosted.as_mut().expect("ensure_open ran first"))
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

    async fn arm_heartbeat(&self) -> Result<()> {
        if self.heartbeat_armed.replace(true) {
            return Ok(());
        }
        let interval = self.with_hosted(|h| h.config.keep_alive_ms());
        let armed = self
            .state
            .storage()
            .set_alarm(Duration::from_millis(interval))
            .await;
        if armed.is_err() {
            self.heartbeat_armed.set(false);
        }
        armed
    }

    async fn listen(&self, req: &Request) -> Result<Response> {
        let url = req.url()?;
        let last_seen = match url.query_pairs().find(|(k, _)| k == LAST_EVENT_ID_PARAM) {
            None => None,
            Some((_, v)) => match EventId::parse(&v) {
                Ok(id) => Some(id),
                Err(e) => return http::error(400, e),
            },
        };
        let capacity = self.with_hosted(|h| h.config.queue_capacity);
        let (outlet, body) = StreamOutlet::open(capacity)?;
        match self.with_hosted(|h| h.channel.subscribe(outlet, last_seen)) {
            Ok(()) => {}
            Err(SubscribeError::TooManyListeners { max }) => {
                let mut response =
                    http::error(503, format!("channel has its maximum of {max} listeners"))?;
                response.headers_mut().set("Retry-After", "5")?;
                return Ok(response);
            }
            Err(SubscribeError::Log(e)) => return http::error(500, e),
        }
        self.arm_heartbeat().await?;
        Ok(Response::builder()
            .with_status(200)
            .with_headers(http::event_stream_headers()?)
            .stream(body))
    }

    async fn publish(&self, req: &mut Request) -> Result<Response> {
        let body = req.bytes().await?;
        let published = self.with_hosted(|h| {
            let limits = MessageLimits {
                max_event_type_bytes: h.config.max_event_type_bytes,
            };
            let message = Message::parse(BodyKind::Json, &body, None, limits)
                .map_err(|e| (400, e.to_string()))?;
            h.channel
                .publish(&message, now_ms())
                .map_err(|e| (500, e.to_string()))
        });
        match published {
            Ok(published) => {
                self.schedule_flush();
                http::json(200, &published.to_json())
            }
            Err((status, reason)) => http::error(status, reason),
        }
    }

    fn stats(&self, req: &Request) -> Result<Response> {
        let name = req.headers().get(CHANNEL_NAME_HEADER)?;
        let mut stats = self.with_hosted(|h| h.channel.stats());
        if let Value::Object(fields) = &mut stats {
            fields.insert(
                "channel".into(),
                name.map(Value::String).unwrap_or(Value::Null),
            );
        }
        http::json(200, &stats)
    }
}

impl DurableObject for Channel {
    fn new(state: State, env: Env) -> Self {
        Channel {
            state,
            env,
            hosted: Rc::new(RefCell::new(None)),
            heartbeat_armed: Cell::new(false),
            flush_scheduled: Rc::new(Cell::new(false)),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        if let Err(reason) = self.ensure_open() {
            worker::console_error!("channel cannot open: {reason}");
            return http::error(500, reason);
        }
        match req.path().as_str() {
            LISTEN_PATH => self.listen(&req).await,
            PUBLISH_PATH => self.publish(&mut req).await,
            STATS_PATH => self.stats(&req),
            _ => http::error(404, "no such channel operation"),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.heartbeat_armed.set(false);
        if self.ensure_open().is_ok() {
            let listeners = self.with_hosted(|h| {
                h.channel.heartbeat(now_ms());
                h.report_store_error();
                h.channel.listeners()
            });
            if listeners > 0 {
                self.arm_heartbeat().await?;
            }
        }
        Response::empty()
    }
}
