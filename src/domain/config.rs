//! The one config reader. Every limit the service has is here, with its default; the
//! platform hands in a lookup over the Worker's environment (`[vars]` and secrets).

use std::fmt;

use super::auth::is_bearer_token;
use super::lifetime::Lifetimes;
use super::mercure::MatcherLimits;
use super::origins::AllowedOrigins;
use super::tree::TreeSettings;

/// The Mercure hub's settings (`MERCURE_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MercureConfig {
    /// Verifies publisher tokens (HS256); unset: every publish is refused.
    pub publisher_key: Option<String>,
    /// Verifies subscriber tokens (HS256); unset: every presented subscriber token is invalid.
    pub subscriber_key: Option<String>,
    /// Subscribing without a token is allowed (public updates only).
    pub anonymous: bool,
    /// Subscription events and the subscriptions API are on.
    pub subscriptions: bool,
    /// `iss` values accepted in 1.0 access tokens (none: every 1.0 token is invalid).
    pub issuers: Vec<String>,
    /// CORS for the hub's routes; `None`: the hub sends no CORS headers.
    pub cors_origins: Option<AllowedOrigins>,
    /// What one matcher, and one subscriber's (or token's) matchers together, may hold
    /// compiled (`MERCURE_MATCHER_BYTES`, `MERCURE_SUBSCRIBER_MATCHER_BYTES`).
    pub matcher_limits: MatcherLimits,
    /// What all the subscribers' matchers of one hub object may hold compiled.
    pub hub_matcher_bytes: usize,
    /// Longest update id a publisher may give, in bytes.
    pub max_id_bytes: usize,
    /// Longest topic of an update, in bytes.
    pub max_topic_bytes: usize,
}

impl Default for MercureConfig {
    fn default() -> Self {
        MercureConfig {
            publisher_key: None,
            subscriber_key: None,
            anonymous: false,
            subscriptions: false,
            issuers: Vec::new(),
            cors_origins: None,
            matcher_limits: MatcherLimits::default(),
            hub_matcher_bytes: 32 * 1024 * 1024,
            max_id_bytes: 1024,
            max_topic_bytes: 4096,
        }
    }
}

impl MercureConfig {
    /// With no key and no anonymous access there is no hub: its paths answer 404.
    pub fn enabled(&self) -> bool {
        self.publisher_key.is_some() || self.subscriber_key.is_some() || self.anonymous
    }
}

/// When a publish is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishAck {
    /// Once the event is stored in the channel's history (it survives a restart).
    Stored,
    /// At once; the event is stored with the next flush, before any listener sees it.
    /// Faster for a publisher that waits for each answer; an event accepted just before a
    /// crash can be lost.
    Accepted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Writes a listener may have waiting (events published together share one) before it
    /// counts as slow and is cut.
    pub queue_capacity: usize,
    /// Listeners one channel accepts at once, over all the objects of its tree.
    pub max_listeners: usize,
    /// How a channel spreads over objects (`LISTENERS_PER_OBJECT`, `FANOUT`).
    pub tree: TreeSettings,
    /// Events kept per channel for resuming.
    pub history_size: u64,
    /// How long an event is kept for resuming, in milliseconds.
    pub history_max_age_ms: u64,
    /// The heartbeat interval: within this time a listener whose client has gone is
    /// removed, in milliseconds. It holds several keep-alives ([`Config::keep_alive_ms`]).
    pub heartbeat_ms: u64,
    /// The `retry:` sent at the start of every stream, in milliseconds.
    pub retry_ms: u64,
    /// How long published events are collected before they go out to the listeners
    /// together, one write per listener; 0: as soon as the object is idle.
    pub batch_window_ms: u64,
    pub publish_ack: PublishAck,
    /// Whether the entry Worker holds each listener's stream, fed over a WebSocket its
    /// object accepts with the hibernation API, so that objects sleep between events
    /// (`HIBERNATE=1`); otherwise each object holds its listeners' streams itself.
    pub hibernate: bool,
    /// Largest publish body, in bytes.
    pub max_body_bytes: usize,
    /// Longest event type, in bytes.
    pub max_event_type_bytes: usize,
    /// Most events one batch publish may carry.
    pub max_batch_events: usize,
    /// Most bytes one streaming publish may carry, in all (each line is within
    /// `max_body_bytes`).
    pub max_stream_bytes: u64,
    /// How long a streaming publish may send nothing before it is ended, in milliseconds.
    pub stream_stall_ms: u64,
    /// How long channels live once ended or left idle, and their names after.
    pub lifetimes: Lifetimes,
    pub allowed_origins: AllowedOrigins,
    /// When set, publishing needs `Authorization: Bearer <secret>`.
    pub publish_secret: Option<String>,
    /// When set, listening needs `?token=<secret>`.
    pub listen_secret: Option<String>,
    pub mercure: MercureConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            queue_capacity: 5,
            max_listeners: 1_000_000,
            tree: TreeSettings {
                listeners_per_object: 1000,
                fanout: 32,
            },
            history_size: 1000,
            history_max_age_ms: 3_600_000,
            heartbeat_ms: 15_000,
            retry_ms: 1000,
            batch_window_ms: 0,
            publish_ack: PublishAck::Stored,
            hibernate: false,
            max_body_bytes: 64 * 1024,
            max_event_type_bytes: 128,
            max_batch_events: 1000,
            max_stream_bytes: 16 * 1024 * 1024,
            stream_stall_ms: 30_000,
            lifetimes: Lifetimes::default(),
            allowed_origins: AllowedOrigins::Any,
            publish_secret: None,
            listen_secret: None,
            mercure: MercureConfig::default(),
        }
    }
}

/// A setting that is present but unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "setting {} = {:?} is invalid: expected {}",
            self.name, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// Keep-alive comments written per heartbeat interval.
///
/// A vanished client is found when a write stays in its queue; the runtime's pipes take a
/// write or two off the queue before anything sticks, so finding it takes up to four
/// keep-alives after it left (measured: 3.9 s at a 3 s interval with three per interval,
/// 2.9 s with four). Five per interval remove it within four fifths of the interval.
pub const KEEP_ALIVES_PER_HEARTBEAT: u64 = 5;

impl Config {
    /// How often a keep-alive comment is written (and stalled listeners are checked for).
    pub fn keep_alive_ms(&self) -> u64 {
        self.heartbeat_ms / KEEP_ALIVES_PER_HEARTBEAT
    }

    /// Reads every setting through `lookup` (name -> value); a missing or empty value keeps
    /// its default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let number =
            |name: &'static str, min: u64, max: u64, default: u64| -> Result<u64, ConfigError> {
                match get(name) {
                    None => Ok(default),
                    Some(v) => v
                        .parse::<u64>()
                        .ok()
                        .filter(|n| (min..=max).contains(n))
                        .ok_or(ConfigError {
                            name,
                            value: v,
                            expected: format!("a whole number from {min} to {max}"),
                        }),
                }
            };
        let switch = |name: &'static str| -> Result<bool, ConfigError> {
            match get(name).as_deref() {
                None | Some("0") | Some("false") => Ok(false),
                Some("1") | Some("true") => Ok(true),
                Some(other) => Err(ConfigError {
                    name,
                    value: other.into(),
                    expected: "1 or 0".into(),
                }),
            }
        };
        let d = Config::default();
        let dm = &d.mercure;
        const MIB: u64 = 1024 * 1024;
        Ok(Config {
            queue_capacity: number("QUEUE_CAPACITY", 1, 10_000, d.queue_capacity as u64)? as usize,
            max_listeners: number("MAX_LISTENERS", 1, 100_000_000, d.max_listeners as u64)?
                as usize,
            tree: TreeSettings {
                listeners_per_object: number(
                    "LISTENERS_PER_OBJECT",
                    0,
                    1_000_000,
                    d.tree.listeners_per_object as u64,
                )? as usize,
                fanout: number("FANOUT", 2, 1000, d.tree.fanout as u64)? as usize,
            },
            history_size: number("HISTORY_SIZE", 0, 1_000_000, d.history_size)?,
            history_max_age_ms: number(
                "HISTORY_MAX_AGE_SECONDS",
                0,
                365 * 86_400,
                d.history_max_age_ms / 1000,
            )? * 1000,
            heartbeat_ms: number("HEARTBEAT_SECONDS", 1, 3600, d.heartbeat_ms / 1000)? * 1000,
            retry_ms: number("RETRY_MS", 0, 86_400_000, d.retry_ms)?,
            batch_window_ms: number("BATCH_WINDOW_MS", 0, 1000, d.batch_window_ms)?,
            publish_ack: match get("PUBLISH_ACK").as_deref() {
                None | Some("stored") => PublishAck::Stored,
                Some("accepted") => PublishAck::Accepted,
                Some(other) => {
                    return Err(ConfigError {
                        name: "PUBLISH_ACK",
                        value: other.into(),
                        expected: "stored or accepted".into(),
                    })
                }
            },
            hibernate: switch("HIBERNATE")?,
            max_body_bytes: number(
                "MAX_BODY_BYTES",
                1,
                100 * 1024 * 1024,
                d.max_body_bytes as u64,
            )? as usize,
            max_event_type_bytes: number(
                "MAX_EVENT_TYPE_BYTES",
                1,
                65_536,
                d.max_event_type_bytes as u64,
            )? as usize,
            max_batch_events: number("MAX_BATCH_EVENTS", 1, 100_000, d.max_batch_events as u64)?
                as usize,
            max_stream_bytes: number("MAX_STREAM_BYTES", 1, 1 << 40, d.max_stream_bytes)?,
            stream_stall_ms: number("STREAM_STALL_SECONDS", 1, 3600, d.stream_stall_ms / 1000)?
                * 1000,
            lifetimes: Lifetimes {
                ended_ttl_ms: number(
                    "ENDED_TTL_SECONDS",
                    0,
                    365 * 86_400,
                    d.lifetimes.ended_ttl_ms / 1000,
                )? * 1000,
                // 0: never.
                idle_end_ms: Some(
                    number(
                        "IDLE_END_SECONDS",
                        0,
                        365 * 86_400,
                        d.lifetimes.idle_end_ms.unwrap_or(0) / 1000,
                    )? * 1000,
                )
                .filter(|ms| *ms > 0),
                grave_ms: number(
                    "GRAVE_SECONDS",
                    0,
                    3650 * 86_400,
                    d.lifetimes.grave_ms / 1000,
                )? * 1000,
            },
            allowed_origins: get("ALLOWED_ORIGINS")
                .map(|v| origins(&v))
                .unwrap_or(d.allowed_origins),
            publish_secret: match get("PUBLISH_SECRET") {
                // Refused rather than left unusable: no bearer header could carry it.
                Some(secret) if !is_bearer_token(&secret) => {
                    return Err(ConfigError {
                        name: "PUBLISH_SECRET",
                        value: "(not shown)".into(),
                        expected: "a bearer token: no spaces, tabs or commas".into(),
                    })
                }
                secret => secret,
            },
            listen_secret: get("LISTEN_SECRET"),
            mercure: MercureConfig {
                publisher_key: get("MERCURE_PUBLISHER_JWT_KEY"),
                subscriber_key: get("MERCURE_SUBSCRIBER_JWT_KEY"),
                anonymous: switch("MERCURE_ANONYMOUS")?,
                subscriptions: switch("MERCURE_SUBSCRIPTIONS")?,
                issuers: get("MERCURE_ISSUERS")
                    .map(|v| list(&v).map(str::to_string).collect())
                    .unwrap_or_default(),
                cors_origins: get("MERCURE_CORS_ORIGINS").map(|v| origins(&v)),
                matcher_limits: MatcherLimits {
                    matcher_bytes: number(
                        "MERCURE_MATCHER_BYTES",
                        1024,
                        64 * MIB,
                        dm.matcher_limits.matcher_bytes as u64,
                    )? as usize,
                    subscriber_bytes: number(
                        "MERCURE_SUBSCRIBER_MATCHER_BYTES",
                        1024,
                        256 * MIB,
                        dm.matcher_limits.subscriber_bytes as u64,
                    )? as usize,
                },
                hub_matcher_bytes: number(
                    "MERCURE_HUB_MATCHER_BYTES",
                    1024,
                    // Within 32 bits: the Worker's usize.
                    2048 * MIB,
                    dm.hub_matcher_bytes as u64,
                )? as usize,
                max_id_bytes: number("MERCURE_MAX_ID_BYTES", 1, 65_536, dm.max_id_bytes as u64)?
                    as usize,
                max_topic_bytes: number(
                    "MERCURE_MAX_TOPIC_BYTES",
                    1,
                    65_536,
                    dm.max_topic_bytes as u64,
                )? as usize,
            },
        })
    }
}

/// The entries of a comma-separated setting, trimmed, empty ones dropped.
fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|v| !v.is_empty())
}

/// `*`, or a comma-separated list of origins (a trailing `/` is dropped).
fn origins(value: &str) -> AllowedOrigins {
    if value == "*" {
        AllowedOrigins::Any
    } else {
        AllowedOrigins::List(
            list(value)
                .map(|o| o.trim_end_matches('/').to_string())
                .filter(|o| !o.is_empty())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests;
