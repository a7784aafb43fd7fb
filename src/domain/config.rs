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
                idle_end_ms: Some(number("IDLE_END_SECONDS", 0, 365 * 86_400, 0)? * 1000)
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
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_when_unset_or_empty() {
        assert_eq!(read(&[]).unwrap(), Config::default());
        assert_eq!(
            read(&[("QUEUE_CAPACITY", " "), ("PUBLISH_SECRET", "")]).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn every_setting_is_read_from_its_variable() {
        let c = read(&[
            ("QUEUE_CAPACITY", "7"),
            ("MAX_LISTENERS", "3"),
            ("HISTORY_SIZE", "10"),
            ("HISTORY_MAX_AGE_SECONDS", "60"),
            ("HEARTBEAT_SECONDS", "2"),
            ("RETRY_MS", "500"),
            ("BATCH_WINDOW_MS", "5"),
            ("PUBLISH_ACK", "accepted"),
            ("HIBERNATE", "1"),
            ("MAX_BODY_BYTES", "100"),
            ("MAX_EVENT_TYPE_BYTES", "16"),
            ("MAX_BATCH_EVENTS", "7"),
            ("LISTENERS_PER_OBJECT", "10"),
            ("FANOUT", "3"),
            ("ALLOWED_ORIGINS", "http://a.test, http://b.test/"),
            ("PUBLISH_SECRET", "s3cret"),
            ("LISTEN_SECRET", "l1sten"),
            ("ENDED_TTL_SECONDS", "5"),
            ("IDLE_END_SECONDS", "9"),
            ("GRAVE_SECONDS", "0"),
            ("MAX_STREAM_BYTES", "1000"),
            ("STREAM_STALL_SECONDS", "3"),
        ])
        .unwrap();
        assert_eq!(
            c.lifetimes,
            Lifetimes {
                ended_ttl_ms: 5000,
                idle_end_ms: Some(9000),
                grave_ms: 0
            }
        );
        assert_eq!(
            read(&[("IDLE_END_SECONDS", "0")])
                .unwrap()
                .lifetimes
                .idle_end_ms,
            None,
            "0: never"
        );
        assert_eq!(c.queue_capacity, 7);
        assert_eq!(c.max_listeners, 3);
        assert_eq!(c.history_size, 10);
        assert_eq!(c.history_max_age_ms, 60_000);
        assert_eq!(c.heartbeat_ms, 2000);
        assert_eq!(c.keep_alive_ms(), 400);
        assert_eq!(c.retry_ms, 500);
        assert_eq!(c.batch_window_ms, 5);
        assert_eq!(c.publish_ack, PublishAck::Accepted);
        assert!(c.hibernate);
        assert_eq!(c.max_body_bytes, 100);
        assert_eq!(c.max_event_type_bytes, 16);
        assert_eq!(c.max_batch_events, 7);
        assert_eq!(
            c.tree,
            TreeSettings {
                listeners_per_object: 10,
                fanout: 3
            }
        );
        assert_eq!(
            c.allowed_origins,
            AllowedOrigins::List(vec!["http://a.test".into(), "http://b.test".into()])
        );
        assert_eq!(c.publish_secret.as_deref(), Some("s3cret"));
        assert_eq!(c.listen_secret.as_deref(), Some("l1sten"));
    }

    #[test]
    fn mercure_settings_are_read_and_the_hub_is_off_without_keys_or_anonymity() {
        let off = read(&[]).unwrap().mercure;
        assert_eq!(off, MercureConfig::default());
        assert!(!off.enabled());
        let m = read(&[
            ("MERCURE_PUBLISHER_JWT_KEY", "pub"),
            ("MERCURE_SUBSCRIBER_JWT_KEY", "sub"),
            ("MERCURE_ANONYMOUS", "1"),
            ("MERCURE_SUBSCRIPTIONS", "1"),
            ("MERCURE_ISSUERS", " https://a.test , ,https://b.test"),
            (
                "MERCURE_CORS_ORIGINS",
                "http://app.test/, http://other.test",
            ),
            ("MERCURE_MATCHER_BYTES", "2048"),
            ("MERCURE_SUBSCRIBER_MATCHER_BYTES", "4096"),
            ("MERCURE_HUB_MATCHER_BYTES", "8192"),
            ("MERCURE_MAX_ID_BYTES", "10"),
            ("MERCURE_MAX_TOPIC_BYTES", "20"),
        ])
        .unwrap()
        .mercure;
        assert_eq!(
            m.matcher_limits,
            MatcherLimits {
                matcher_bytes: 2048,
                subscriber_bytes: 4096
            }
        );
        assert_eq!(
            (m.hub_matcher_bytes, m.max_id_bytes, m.max_topic_bytes),
            (8192, 10, 20)
        );
        assert_eq!(m.publisher_key.as_deref(), Some("pub"));
        assert_eq!(m.subscriber_key.as_deref(), Some("sub"));
        assert!(m.anonymous && m.subscriptions && m.enabled());
        assert_eq!(m.issuers, ["https://a.test", "https://b.test"]);
        assert_eq!(
            m.cors_origins,
            Some(AllowedOrigins::List(vec![
                "http://app.test".into(),
                "http://other.test".into()
            ]))
        );
        assert!(read(&[("MERCURE_ANONYMOUS", "1")])
            .unwrap()
            .mercure
            .enabled());
        assert_eq!(
            read(&[("MERCURE_ANONYMOUS", "yes")]).unwrap_err().name,
            "MERCURE_ANONYMOUS"
        );
    }

    #[test]
    fn refuses_bad_numbers_by_name() {
        let e = read(&[("QUEUE_CAPACITY", "0")]).unwrap_err();
        assert_eq!(e.name, "QUEUE_CAPACITY");
        assert!(read(&[("HEARTBEAT_SECONDS", "fast")]).is_err());
        assert!(read(&[("MAX_BODY_BYTES", "-1")]).is_err());
        let spaced = read(&[("PUBLISH_SECRET", "my secret")]).unwrap_err();
        assert_eq!(spaced.name, "PUBLISH_SECRET");
        assert!(!spaced.to_string().contains("my secret"), "{spaced}");
        let too_long = read(&[("BATCH_WINDOW_MS", "1001")]).unwrap_err();
        assert_eq!(
            too_long.to_string(),
            "setting BATCH_WINDOW_MS = \"1001\" is invalid: expected a whole number from 0 to 1000"
        );
        assert_eq!(
            read(&[("PUBLISH_ACK", "soon")]).unwrap_err().name,
            "PUBLISH_ACK"
        );
    }
}
