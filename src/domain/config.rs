//! The one config reader. Every limit the service has is here, with its default; the
//! platform hands in a lookup over the Worker's environment (`[vars]` and secrets).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    List(Vec<String>),
}

impl AllowedOrigins {
    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it is allowed.
    pub fn allow(&self, origin: Option<&str>) -> Option<String> {
        match (self, origin) {
            (AllowedOrigins::Any, _) => Some("*".to_string()),
            (AllowedOrigins::List(list), Some(origin)) => {
                list.iter().any(|o| o == origin).then(|| origin.to_string())
            }
            (AllowedOrigins::List(_), None) => None,
        }
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
    /// Listeners one channel accepts at once.
    pub max_listeners: usize,
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
    /// Largest publish body, in bytes.
    pub max_body_bytes: usize,
    /// Longest event type, in bytes.
    pub max_event_type_bytes: usize,
    pub allowed_origins: AllowedOrigins,
    /// When set, publishing needs `Authorization: Bearer <secret>`.
    pub publish_secret: Option<String>,
    /// When set, listening needs `?token=<secret>`.
    pub listen_secret: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            queue_capacity: 5,
            max_listeners: 10_000,
            history_size: 1000,
            history_max_age_ms: 3_600_000,
            heartbeat_ms: 15_000,
            retry_ms: 1000,
            batch_window_ms: 0,
            publish_ack: PublishAck::Stored,
            max_body_bytes: 64 * 1024,
            max_event_type_bytes: 128,
            allowed_origins: AllowedOrigins::Any,
            publish_secret: None,
            listen_secret: None,
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
/// A vanished client is found when a write stays in its queue; the runtime's pipes take
/// about one write off the queue before anything sticks, so finding it takes two or three
/// writes. Three per interval remove it within the interval.
pub const KEEP_ALIVES_PER_HEARTBEAT: u64 = 3;

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
        let d = Config::default();
        Ok(Config {
            queue_capacity: number("QUEUE_CAPACITY", 1, 10_000, d.queue_capacity as u64)? as usize,
            max_listeners: number("MAX_LISTENERS", 1, 1_000_000, d.max_listeners as u64)? as usize,
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
            allowed_origins: match get("ALLOWED_ORIGINS") {
                None => d.allowed_origins,
                Some(v) if v == "*" => AllowedOrigins::Any,
                Some(v) => AllowedOrigins::List(
                    v.split(',')
                        .map(|o| o.trim().trim_end_matches('/').to_string())
                        .filter(|o| !o.is_empty())
                        .collect(),
                ),
            },
            publish_secret: get("PUBLISH_SECRET"),
            listen_secret: get("LISTEN_SECRET"),
        })
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
    fn reads_every_setting() {
        let c = read(&[
            ("QUEUE_CAPACITY", "7"),
            ("MAX_LISTENERS", "3"),
            ("HISTORY_SIZE", "10"),
            ("HISTORY_MAX_AGE_SECONDS", "60"),
            ("HEARTBEAT_SECONDS", "2"),
            ("RETRY_MS", "500"),
            ("BATCH_WINDOW_MS", "5"),
            ("PUBLISH_ACK", "accepted"),
            ("MAX_BODY_BYTES", "100"),
            ("MAX_EVENT_TYPE_BYTES", "16"),
            ("ALLOWED_ORIGINS", "http://a.test, http://b.test/"),
            ("PUBLISH_SECRET", "s3cret"),
            ("LISTEN_SECRET", "l1sten"),
        ])
        .unwrap();
        assert_eq!(c.queue_capacity, 7);
        assert_eq!(c.max_listeners, 3);
        assert_eq!(c.history_size, 10);
        assert_eq!(c.history_max_age_ms, 60_000);
        assert_eq!(c.heartbeat_ms, 2000);
        assert_eq!(c.keep_alive_ms(), 666);
        assert_eq!(c.retry_ms, 500);
        assert_eq!(c.batch_window_ms, 5);
        assert_eq!(c.publish_ack, PublishAck::Accepted);
        assert_eq!(c.max_body_bytes, 100);
        assert_eq!(c.max_event_type_bytes, 16);
        assert_eq!(
            c.allowed_origins,
            AllowedOrigins::List(vec!["http://a.test".into(), "http://b.test".into()])
        );
        assert_eq!(c.publish_secret.as_deref(), Some("s3cret"));
        assert_eq!(c.listen_secret.as_deref(), Some("l1sten"));
    }

    #[test]
    fn refuses_bad_numbers_by_name() {
        let e = read(&[("QUEUE_CAPACITY", "0")]).unwrap_err();
        assert_eq!(e.name, "QUEUE_CAPACITY");
        assert!(read(&[("HEARTBEAT_SECONDS", "fast")]).is_err());
        assert!(read(&[("MAX_BODY_BYTES", "-1")]).is_err());
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

    #[test]
    fn only_listed_origins_are_allowed_unless_any_is() {
        assert_eq!(
            AllowedOrigins::Any.allow(Some("http://x")),
            Some("*".into())
        );
        let list = AllowedOrigins::List(vec!["http://a.test".into()]);
        assert_eq!(
            list.allow(Some("http://a.test")),
            Some("http://a.test".into())
        );
        assert_eq!(list.allow(Some("http://evil.test")), None);
        assert_eq!(list.allow(None), None);
    }
}
