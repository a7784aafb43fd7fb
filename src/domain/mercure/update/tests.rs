use serde_json::{json, Value};

use super::super::{GrantsSpec, MatcherBudget, MatcherKind, TopicSpec};
use super::*;

const R: &str = "http://127.0.0.1:8787/.well-known/mercure";

fn form(body: &str) -> UpdateForm {
    UpdateForm::parse(body.as_bytes()).unwrap()
}

fn validate(body: &str) -> Result<Update, UpdateError> {
    form(body).validate(R, &FieldLimits::default())
}

#[test]
fn a_typical_client_form_decodes_to_its_update() {
    let body = "topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&data=%7B%22title%22%3A+%22Dune%22%7D&private=on&id=urn%3Aexample%3Adune&type=book&retry=1500";
    assert_eq!(
        validate(body),
        Ok(Update {
            topics: vec!["https://example.com/books/1".into()],
            data: r#"{"title": "Dune"}"#.into(),
            private: true,
            id: Some("urn:example:dune".into()),
            event_type: Some("book".into()),
            retry_ms: Some(1500),
        })
    );
}

#[test]
fn topics_repeat_and_the_first_is_canonical() {
    let f = form("topic=a&data=x&topic=b&topic=c");
    assert_eq!(f.topics().unwrap(), ["a", "b", "c"]);
    assert_eq!(validate("topic=a&topic=b").unwrap().topics, ["a", "b"]);
}

#[test]
fn a_form_without_topic_is_missing_its_topic_parameter() {
    let err = form("data=x").topics().unwrap_err();
    assert_eq!(err, UpdateError::MissingTopic);
    assert_eq!(err.to_string(), r#"Missing "topic" parameter"#);
    assert_eq!(validate(""), Err(UpdateError::MissingTopic));
}

#[test]
fn a_hundred_topics_are_allowed_and_more_are_refused() {
    let body = |n: usize| {
        (0..n)
            .map(|i| format!("topic=t{i}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    assert_eq!(form(&body(100)).topics().unwrap().len(), 100);
    assert_eq!(
        form(&body(101)).topics().unwrap_err(),
        UpdateError::TooManyTopics
    );
    assert_eq!(validate(&body(101)), Err(UpdateError::TooManyTopics));
}

#[test]
fn data_defaults_to_empty_and_keeps_line_breaks() {
    assert_eq!(validate("topic=a").unwrap().data, "");
    assert_eq!(
        validate("topic=a&data=l1%0D%0Al2%0A").unwrap().data,
        "l1\r\nl2\n"
    );
}

#[test]
fn a_private_field_makes_the_update_private_whatever_its_value() {
    for body in [
        "topic=a&private=on",
        "topic=a&private=",
        "topic=a&private",
        "topic=a&private=false",
    ] {
        assert!(form(body).is_private(), "{body}");
        assert!(validate(body).unwrap().private, "{body}");
    }
    assert!(!validate("topic=a").unwrap().private);
}

#[test]
fn the_first_of_a_repeated_field_wins_and_unknown_fields_are_ignored() {
    let u =
        validate("topic=a&data=1&data=2&id=x&id=y&type=t&type=u&retry=5&retry=6&foo=bar").unwrap();
    assert_eq!((u.data.as_str(), u.id.as_deref()), ("1", Some("x")));
    assert_eq!((u.event_type.as_deref(), u.retry_ms), (Some("t"), Some(5)));
}

#[test]
fn a_body_that_is_not_utf8_is_refused_never_altered() {
    assert_eq!(
        UpdateForm::parse(b"topic=a&data=%FF%FE"),
        Err(UpdateError::FieldNotUtf8 {
            field: "data".into()
        })
    );
    assert!(UpdateForm::parse(b"topic=\xE9").is_err());
}

#[test]
fn a_topic_with_a_control_character_is_refused() {
    for t in [
        "a%0Ab",
        "a%00",
        "a%7F",
        "a%C2%85",
        "a%E2%80%8Bb",
        "a%E2%80%AEb",
    ] {
        assert_eq!(
            validate(&format!("topic={t}")),
            Err(UpdateError::TopicControlCharacter),
            "{t}"
        );
    }
    assert_eq!(
        validate("topic=ok&topic=a%0A"),
        Err(UpdateError::TopicControlCharacter)
    );
}

#[test]
fn the_wildcard_topic_is_refused() {
    assert_eq!(validate("topic=*"), Err(UpdateError::TopicWildcard));
    assert_eq!(validate("topic=a&topic=*"), Err(UpdateError::TopicWildcard));
}

#[test]
fn topics_in_the_reserved_namespace_are_refused() {
    for t in [
        "/.well-known/mercure",
        "/.well-known/mercure/subscriptions/a/b",
        "http://127.0.0.1:8787/.well-known/mercure/subscriptions/x",
        "https://elsewhere.test/.well-known/mercure/x",
        "/.well-known/%6Dercure/x",
        "/.well-known/mercure/../mercure/x",
        "/a/../.well-known/mercure",
        "/.well-known/%2e%2E/.well-known/mercure",
        "/.well-known/./mercure/",
        "mercure/x",
        "?q=1",
        "#frag",
        "foo:/.well-known/mercure",
    ] {
        assert!(is_reserved_topic(t, R), "{t}");
        let body = format!(
            "topic={}",
            percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC)
        );
        assert_eq!(validate(&body), Err(UpdateError::TopicReserved), "{t}");
    }
}

#[test]
fn topics_outside_the_reserved_namespace_are_accepted() {
    for t in [
        "/.well-known/mercurex",
        "/.well-known/mercure%2Fx",
        "https://example.com/.well-known/mercury",
        "https://example.com/books/1",
        "urn:uuid:1",
        "urn:x:/.well-known/mercure",
        "foo",
        "http://[::1",
    ] {
        assert!(!is_reserved_topic(t, R), "{t}");
    }
}

#[test]
fn an_unparsable_resource_still_protects_the_namespace() {
    assert!(is_reserved_topic("/.well-known/mercure/x", "not a url"));
    assert!(!is_reserved_topic("/books", "not a url"));
}

#[test]
fn an_id_starting_with_a_hash_is_refused() {
    assert_eq!(validate("topic=a&id=%23frag"), Err(UpdateError::IdFragment));
}

#[test]
fn the_id_earliest_is_refused() {
    assert_eq!(
        validate("topic=a&id=earliest"),
        Err(UpdateError::IdEarliest)
    );
    assert!(validate("topic=a&id=Earliest").is_ok());
}

#[test]
fn an_id_with_a_control_character_is_refused() {
    for id in ["a%0Ab", "a%0D", "a%00", "%E2%80%8E"] {
        assert_eq!(
            validate(&format!("topic=a&id={id}")),
            Err(UpdateError::IdControlCharacter),
            "{id}"
        );
    }
}

#[test]
fn an_id_is_kept_verbatim_and_an_empty_one_is_generated_by_the_hub() {
    let id = r#"a"b[c],d}e f"#;
    let body = format!(
        "topic=a&id={}",
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
    );
    assert_eq!(validate(&body).unwrap().id.as_deref(), Some(id));
    assert_eq!(validate("topic=a&id=").unwrap().id, None);
    assert_eq!(validate("topic=a").unwrap().id, None);
}

#[test]
fn a_type_with_a_control_character_is_refused() {
    assert_eq!(
        validate("topic=a&type=a%0Ab"),
        Err(UpdateError::TypeControlCharacter)
    );
    assert_eq!(
        validate("topic=a&type=%EF%BB%BF"),
        Err(UpdateError::TypeControlCharacter)
    );
}

#[test]
fn the_type_mercure_is_refused() {
    assert_eq!(
        validate("topic=a&type=mercure"),
        Err(UpdateError::TypeReserved)
    );
    assert_eq!(
        validate("topic=a&type=Mercure")
            .unwrap()
            .event_type
            .as_deref(),
        Some("Mercure")
    );
    assert_eq!(validate("topic=a&type=").unwrap().event_type, None);
}

#[test]
fn a_retry_that_is_not_ascii_digits_is_refused() {
    for r in ["", "-1", "1.5", "+1", "1e3", "%EF%BC%91", "12a", "+"] {
        assert_eq!(
            validate(&format!("topic=a&retry={r}")),
            Err(UpdateError::InvalidRetry),
            "{r:?}"
        );
    }
}

#[test]
fn a_retry_of_digits_is_kept_and_one_too_large_for_64_bits_is_refused() {
    assert_eq!(validate("topic=a&retry=0").unwrap().retry_ms, Some(0));
    assert_eq!(validate("topic=a&retry=007").unwrap().retry_ms, Some(7));
    assert_eq!(
        validate("topic=a&retry=18446744073709551615")
            .unwrap()
            .retry_ms,
        Some(u64::MAX)
    );
    for huge in ["18446744073709551616", &"9".repeat(40)] {
        assert_eq!(
            validate(&format!("topic=a&retry={huge}")),
            Err(UpdateError::InvalidRetry),
            "{huge}"
        );
    }
}

#[test]
fn ids_types_and_topics_longer_than_their_limits_are_refused() {
    let limits = FieldLimits {
        id_bytes: 8,
        type_bytes: 4,
        topic_bytes: 12,
    };
    let check = |body: &str| form(body).validate(R, &limits);
    assert!(check("topic=https://a.b/&id=12345678&type=abcd").is_ok());
    assert_eq!(
        check("topic=a&id=123456789"),
        Err(UpdateError::IdTooLong { max: 8 })
    );
    assert_eq!(
        check("topic=a&type=abcde"),
        Err(UpdateError::TypeTooLong { max: 4 })
    );
    assert_eq!(
        check("topic=a&topic=https://a.b/cd"),
        Err(UpdateError::TopicTooLong { max: 12 })
    );
    // Counted in bytes once decoded.
    assert_eq!(
        check("topic=a&type=%C3%A9%C3%A9%C3%A9"),
        Err(UpdateError::TypeTooLong { max: 4 })
    );
    // The defaults.
    let long = |n: usize| "x".repeat(n);
    assert!(validate(&format!("topic=a&id={}", long(1024))).is_ok());
    assert_eq!(
        validate(&format!("topic=a&id={}", long(1025))),
        Err(UpdateError::IdTooLong { max: 1024 })
    );
    assert_eq!(
        validate(&format!("topic=a&type={}", long(129))),
        Err(UpdateError::TypeTooLong { max: 128 })
    );
    assert_eq!(
        validate(&format!("topic={}", long(4097))),
        Err(UpdateError::TopicTooLong { max: 4096 })
    );
}

fn matchers(texts: &[&str]) -> Vec<TopicMatcher> {
    texts
        .iter()
        .map(|t| {
            let spec = TopicSpec::new(MatcherKind::Selector, *t);
            TopicMatcher::compile(&spec, R, &mut MatcherBudget::new(Default::default())).unwrap()
        })
        .collect()
}

/// 0.x grants to subscribe to `selectors`, made the way the Worker hands them over.
fn grants(selectors: &[&str]) -> Grants {
    let specs: Vec<Value> = selectors
        .iter()
        .map(|s| json!({"kind": "selector", "text": s}))
        .collect();
    let wire = json!({
        "generation": "v0",
        "exp": null,
        "base": R,
        "details": [{"publish": false, "subscribe": true, "topics": specs}],
    });
    let spec: GrantsSpec = serde_json::from_value(wire).unwrap();
    spec.compile(&mut MatcherBudget::new(Default::default()))
        .unwrap()
}

#[test]
fn a_public_update_reaches_every_connection_whose_matcher_selects_a_topic() {
    let topics = ["https://example.com/books/1", "https://example.com/alt/1"];
    assert!(receives(
        &matchers(&["https://example.com/alt/{id}"]),
        None,
        &topics,
        false
    ));
    assert!(receives(&matchers(&["x", "*"]), None, &topics, false));
    assert!(!receives(
        &matchers(&["https://example.com/films/{id}"]),
        None,
        &topics,
        false
    ));
    assert!(!receives(&[], Some(&grants(&["*"])), &topics, false));
}

#[test]
fn a_private_update_needs_a_subscribe_grant_on_one_of_its_topics() {
    let topics = [
        "https://example.com/books/1",
        "https://example.com/users/42/books/1",
    ];
    let listening = matchers(&["https://example.com/books/{id}"]);
    let mine = grants(&["https://example.com/users/42/{+rest}"]);
    let theirs = grants(&["https://example.com/users/7/{+rest}"]);
    assert!(receives(&listening, Some(&mine), &topics, true));
    assert!(!receives(&listening, Some(&theirs), &topics, true));
    assert!(!receives(&listening, None, &topics, true));
}

#[test]
fn grants_never_widen_what_a_connection_listens_to() {
    let topics = ["https://example.com/books/1"];
    let listening = matchers(&["https://example.com/films/1"]);
    assert!(!receives(&listening, Some(&grants(&["*"])), &topics, true));
}

#[test]
fn errors_say_what_is_wrong_in_a_short_line() {
    for e in [
        UpdateError::TopicReserved,
        UpdateError::InvalidRetry,
        UpdateError::IdFragment,
    ] {
        let text = e.to_string();
        assert!(!text.is_empty() && !text.contains('\n'), "{text}");
    }
}
