//! The Durable Object that hosts the Mercure hub: its subscribers' streams, its hub-wide
//! history in SQLite, and a keep-alive alarm while anyone subscribes. The Worker has
//! verified every token and validated every request; this object reads [`HubCall`]s.

use std::rc::Rc;
use std::time::Duration;

use worker::{durable_object, DurableObject, Env, Headers, Request, Response, State};

use super::super::contract::HubCall;
use super::super::error::Error;
use super::super::error::{Challenge, HubRefusal};
use super::super::host::{now_ms, Host};
use super::super::open_streams::OpenStreams;
use super::super::outlet::StreamOutlet;
use super::super::sql_log::SqlLog;
use super::random_id;
use crate::domain::hub::{self, Cursor, HubSettings, HubUpdate};
use crate::domain::mercure::listing;
use crate::domain::mercure::subscribe::compile;
use crate::domain::mercure::subscriber::Subscriber;
use crate::domain::mercure::subscriptions::Subscription;
use crate::domain::mercure::{
    metadata_url, ApiPath, Grants, GrantsSpec, MatcherBudget, TopicSpec, Update, EARLIEST,
};
use crate::domain::stream::Route;
use crate::domain::{Config, HistoryPolicy};

struct Hosted {
    config: Config,
    hub: hub::Hub<StreamOutlet, SqlLog, Subscriber>,
}

impl Hosted {
    /// Publishes the private updates that announce subscriptions starting or ending
    /// (§7.2), when they are on; returns whether it published any.
    fn announce(&mut self, subscriptions: Vec<Subscription>) -> bool {
        if !self.config.mercure.subscriptions || subscriptions.is_empty() {
            return false;
        }
        let now = now_ms();
        for subscription in subscriptions {
            let published = random_id().map_err(|e| e.to_string()).and_then(|id| {
                self.hub
                    .publish(&hub_update(subscription.event(), id), now)
                    .map_err(|e| e.to_string())
            });
            if let Err(e) = published {
                worker::console_error!("a subscription event was not published: {e}");
            }
        }
        true
    }

    /// Flushes, and announces the end of the subscriptions of subscribers that left (which
    /// is flushed in turn, and may cut more), until nothing is left to send.
    fn settle(&mut self) {
        loop {
            self.hub.flush();
            if !self.announce_departures() {
                break;
            }
        }
    }

    /// Announces the end of the subscriptions of subscribers that left; returns whether
    /// it published any.
    fn announce_departures(&mut self) -> bool {
        let ended: Vec<Subscription> = self
            .hub
            .take_departed()
            .iter()
            .flat_map(|s| s.subscriptions(false))
            .collect();
        self.announce(ended)
    }
}

fn hub_update(update: Update, id: String) -> HubUpdate {
    HubUpdate {
        id,
        route: Route {
            topics: update.topics,
            private: update.private,
        },
        event_type: update.event_type,
        retry_ms: update.retry_ms,
        data: update.data,
    }
}

#[durable_object]
pub struct Hub {
    state: State,
    env: Env,
    host: Host<Hosted>,
    streams: Rc<OpenStreams>,
}

/// The headers every hub stream carries (§6.4).
pub(super) fn stream_headers() -> Result<Headers, Error> {
    let headers = Headers::new();
    headers.set("Content-Type", "text/event-stream")?;
    headers.set(
        "Cache-Control",
        "private, no-cache, no-store, must-revalidate, max-age=0",
    )?;
    headers.set("X-Accel-Buffering", "no")?;
    Ok(headers)
}

impl Hub {
    fn ensure_open(&self) -> Result<(), Error> {
        self.host.ensure_open(|| {
            let config = super::super::read_config(&self.env)?;
            let log = SqlLog::open(self.state.storage().sql())?;
            let settings = HubSettings {
                queue_capacity: config.queue_capacity,
                max_subscribers: config.max_listeners,
                max_matcher_bytes: config.mercure.hub_matcher_bytes,
                retry_ms: config.retry_ms,
                history: HistoryPolicy {
                    max_events: config.history_size,
                    max_age_ms: config.history_max_age_ms,
                },
            };
            let hub = hub::Hub::new(settings, log);
            Ok(Hosted { config, hub })
        })
    }

    fn with_hosted<T>(&self, f: impl FnOnce(&mut Hosted) -> T) -> T {
        self.host.with(f)
    }

    async fn serve(&self, req: &mut Request) -> Result<Response, Error> {
        let call = HubCall::read(req).await?;
        self.ensure_open()?;
        match call {
            HubCall::Subscribe {
                base,
                subscriber_id,
                specs,
                grants,
                cursor,
            } => {
                let subscriber = self.subscriber(subscriber_id, &specs, grants, &base)?;
                self.subscribe(subscriber, cursor).await
            }
            HubCall::Publish { update, id } => self.publish(update, id),
            HubCall::Subscriptions {
                base,
                remainder,
                raw_path,
                grants,
                if_none_match,
            } => {
                let limits = self.with_hosted(|h| h.config.mercure.matcher_limits);
                let grants = compile_grants(grants, &mut MatcherBudget::new(limits), &base)?;
                self.subscriptions(&base, &remainder, &raw_path, &grants, if_none_match)
            }
        }
    }

    /// Compiles a subscriber's token and query matchers, in that order, within one
    /// budget: the token's fitted it alone when the Worker verified it, so an overrun
    /// names the query's matcher that did not fit.
    fn subscriber(
        &self,
        id: String,
        specs: &[TopicSpec],
        grants: Option<GrantsSpec>,
        base: &str,
    ) -> Result<Subscriber, Error> {
        let limits = self.with_hosted(|h| h.config.mercure.matcher_limits);
        let mut budget = MatcherBudget::new(limits);
        let grants = grants
            .map(|g| compile_grants(g, &mut budget, base))
            .transpose()?;
        Ok(Subscriber {
            id,
            matchers: compile(specs, base, &mut budget)?,
            grants,
        })
    }

    async fn subscribe(
        &self,
        subscriber: Subscriber,
        cursor: Option<String>,
    ) -> Result<Response, Error> {
        let expires_at = subscriber.expires_at_ms();
        let started = subscriber.subscriptions(true);
        let cursor = cursor.map(|c| match c.as_str() {
            EARLIEST => Cursor::Earliest,
            _ => Cursor::After(c),
        });
        // A full hub writes to its subscribers first, for the gone ones to show.
        self.host
            .probe_while_full(
                |h| h.hub.has_room(),
                |h| {
                    h.hub.probe();
                    h.settle();
                },
            )
            .await;
        let capacity = self.with_hosted(|h| h.config.queue_capacity);
        let (outlet, body) = StreamOutlet::open(capacity, &self.streams)?;
        let subscribed = self.with_hosted(|h| {
            h.hub
                .subscribe(outlet, subscriber, cursor.as_ref(), now_ms())
        })?;
        if self.with_hosted(|h| h.announce(started)) {
            self.schedule_flush();
        }
        self.arm_keep_alive().await?;
        if let Some(at) = expires_at {
            self.close_expired_at(at);
        }
        let headers = stream_headers()?;
        if let Some(id) = subscribed.last_event_id {
            headers.set("Last-Event-ID", &id)?;
            headers.set("Mercure-Last-Event-ID", &id)?;
        }
        Ok(Response::builder()
            .with_status(200)
            .with_headers(headers)
            .stream(body))
    }

    fn publish(&self, update: Update, id: String) -> Result<Response, Error> {
        super::super::injected_fault(&update.data);
        let update = hub_update(update, id);
        self.with_hosted(|h| h.hub.publish(&update, now_ms()))?;
        self.schedule_flush();
        let headers = Headers::new();
        headers.set("Content-Type", "text/plain; charset=utf-8")?;
        Ok(Response::ok(update.id)?.with_headers(headers))
    }

    /// The subscriptions API (§7.3 to §7.5).
    fn subscriptions(
        &self,
        base: &str,
        remainder: &str,
        raw_path: &str,
        grants: &Grants,
        if_none_match: Option<String>,
    ) -> Result<Response, Error> {
        self.with_hosted(|h| {
            let path = ApiPath::parse(remainder, |id| h.hub.subscribers().any(|s| s.id == id))
                .map_err(|e| Error::BadPath(e.to_string()))?;
            if !path.is_authorized(grants, raw_path) {
                return Err(Error::Hub(HubRefusal {
                    kind: Challenge::InsufficientScope,
                    metadata_url: metadata_url(base),
                }));
            }
            let last_event_id = h.hub.last_event_id()?.unwrap_or_else(|| EARLIEST.into());
            let active: Vec<Subscription> = h
                .hub
                .subscribers()
                .flat_map(|s| s.subscriptions(true))
                .collect();
            let listing = listing::answer(
                &path,
                path.family(grants.generation()),
                raw_path,
                base,
                &last_event_id,
                &active,
                if_none_match.as_deref(),
            )
            .map_err(|_| Error::NotFound)?;
            let headers = Headers::new();
            for (name, value) in &listing.headers {
                headers.set(name, value)?;
            }
            let response = match listing.body {
                Some(body) => Response::ok(body)?,
                None => Response::empty()?,
            };
            Ok(response.with_status(listing.status).with_headers(headers))
        })
    }

    /// Ends the streams whose token expires at `at_ms`, at that instant (§6.8).
    fn close_expired_at(&self, at_ms: u64) {
        let delay = Duration::from_millis(at_ms.saturating_sub(now_ms()));
        self.host.later(&self.state, delay, |h| {
            let now = now_ms();
            h.hub.close_where(|s| s.expired(now));
            h.settle();
        });
    }

    /// Sends what was published once the batch window has passed.
    fn schedule_flush(&self) {
        let window = self.with_hosted(|h| h.config.batch_window_ms);
        self.host.schedule_flush(window, Hosted::settle);
    }

    async fn arm_keep_alive(&self) -> Result<(), Error> {
        let interval = self.with_hosted(|h| h.config.keep_alive_ms());
        self.host.arm_keep_alive(&self.state, interval).await
    }
}

/// Compiles grants the Worker verified (checking, not compiling, their matchers). Grants
/// whose matchers cannot be compiled within the limits are an invalid token, as the Worker
/// answers any other bad token (§3.8).
fn compile_grants(
    grants: GrantsSpec,
    budget: &mut MatcherBudget,
    base: &str,
) -> Result<Grants, Error> {
    grants.compile(budget).map_err(|e| {
        worker::console_log!("hub token refused: its matchers: {e}");
        Error::Hub(HubRefusal {
            kind: Challenge::InvalidToken,
            metadata_url: metadata_url(base),
        })
    })
}

impl DurableObject for Hub {
    fn new(state: State, env: Env) -> Self {
        Hub {
            env,
            host: Host::new(),
            streams: Rc::new(OpenStreams::claim(&state)),
            state,
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        match self.serve(&mut req).await {
            Ok(response) => Ok(response),
            Err(e) => e.to_response(),
        }
    }

    /// The keep-alive tick: comments, stalled subscribers cut, expired tokens ended.
    async fn alarm(&self) -> worker::Result<Response> {
        self.host.keep_alive_fired();
        if self.ensure_open().is_ok() {
            let subscribers = self.with_hosted(|h| {
                let now = now_ms();
                h.hub.close_where(|s| s.expired(now));
                if let Err(e) = h.hub.keep_alive(now) {
                    worker::console_error!("hub storage failed: {e}");
                }
                h.settle();
                h.hub.len()
            });
            if subscribers > 0 {
                if let Err(e) = self.arm_keep_alive().await {
                    return e.to_response();
                }
            }
        }
        Response::empty()
    }
}
