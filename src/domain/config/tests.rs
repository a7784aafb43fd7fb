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
