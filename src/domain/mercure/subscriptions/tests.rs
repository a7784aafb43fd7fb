use serde_json::json;

use super::*;

const SUB: &str = "urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6";

fn sub(kind: MatcherKind, text: &str, payload: Option<Value>) -> Subscription {
    Subscription {
        spec: TopicSpec::new(kind, text),
        subscriber: SUB.into(),
        active: true,
        payload,
    }
}

fn parse(remainder: &str) -> ApiPath {
    ApiPath::parse(remainder, |id| id == SUB || id == "s").unwrap()
}

fn spec(kind: MatcherKind, text: &str) -> TopicSpec {
    TopicSpec::new(kind, text)
}

#[test]
fn enc_encodes_everything_but_unreserved_characters_exactly_once() {
    assert_eq!(
        enc("https://example.com/{selector}"),
        "https%3A%2F%2Fexample.com%2F%7Bselector%7D"
    );
    assert_eq!(enc("a-b.c_d~e"), "a-b.c_d~e");
    assert_eq!(enc("50% é+ "), "50%25%20%C3%A9%2B%20");
    assert_eq!(enc("%41"), "%2541");
}

#[test]
fn a_0x_subscription_topic_is_its_encoded_selector_and_subscriber() {
    assert_eq!(
        sub(MatcherKind::Selector, "https://example.com/{selector}", None).topic(),
        "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2F%7Bselector%7D/urn%3Auuid%3Abb3de268-05b0-4c65-b44e-8f9acefc29d6"
    );
}

#[test]
fn a_1_0_subscription_topic_carries_its_match_type() {
    assert_eq!(
        sub(MatcherKind::UrlPattern, "https://example.com/:selector", None).topic(),
        "/.well-known/mercure/subscriptions/urlpattern/https%3A%2F%2Fexample.com%2F%3Aselector/urn%3Auuid%3Abb3de268-05b0-4c65-b44e-8f9acefc29d6"
    );
    assert!(sub(MatcherKind::Exact, "a", None)
        .topic()
        .starts_with("/.well-known/mercure/subscriptions/exact/a/"));
}

#[test]
fn a_0x_document_has_its_context_and_always_a_payload() {
    let s = sub(
        MatcherKind::Selector,
        "https://example.com/{selector}",
        None,
    );
    let expected = format!(
        r#"{{"@context":"https://mercure.rocks/","id":"{}","type":"Subscription","topic":"https://example.com/{{selector}}","subscriber":"{SUB}","active":true,"payload":{{}}}}"#,
        s.topic()
    );
    assert_eq!(s.event_data(), expected);
    let with = sub(MatcherKind::Selector, "a", Some(json!({"foo": "bar"})));
    let doc: Value = serde_json::from_str(&with.event_data()).unwrap();
    assert_eq!(doc["payload"], json!({"foo": "bar"}));
}

#[test]
fn a_1_0_document_has_a_payload_only_when_there_is_one() {
    let s = sub(
        MatcherKind::UrlPattern,
        "https://example.com/:selector",
        None,
    );
    let expected = format!(
        r#"{{"id":"{}","type":"subscription","match_type":"urlpattern","match":"https://example.com/:selector","subscriber":"{SUB}","active":true}}"#,
        s.topic()
    );
    assert_eq!(s.event_data(), expected);
    let with = sub(MatcherKind::Exact, "a", Some(json!({"foo": "bar"})));
    assert!(with
        .event_data()
        .ends_with(r#""active":true,"payload":{"foo":"bar"}}"#));
}

#[test]
fn a_subscription_event_is_private_with_a_hub_id_and_mercure_type_for_1_0() {
    let mut v0 = sub(MatcherKind::Selector, "a", None);
    v0.active = false;
    let e = v0.event();
    assert!(e.private && e.id.is_none() && e.event_type.is_none());
    assert_eq!(e.topics, vec![v0.topic()]);
    assert!(e.data.contains(r#""active":false"#));
    let e = sub(MatcherKind::Exact, "a", None).event();
    assert!(e.private && e.id.is_none());
    assert_eq!(e.event_type.as_deref(), Some("mercure"));
}

#[test]
fn a_single_0x_document_adds_the_last_event_id_and_a_1_0_one_is_unchanged() {
    let v0 = sub(MatcherKind::Selector, "a", None);
    assert!(v0
        .single_document("urn:uuid:1")
        .ends_with(r#""payload":{},"lastEventID":"urn:uuid:1"}"#));
    let v1 = sub(MatcherKind::Exact, "a", None);
    assert_eq!(v1.single_document("urn:uuid:1"), v1.event_data());
}

#[test]
fn a_0x_collection_has_its_context_once_and_a_1_0_one_none() {
    let subs = [
        sub(MatcherKind::Selector, "a", None),
        sub(MatcherKind::Exact, "b", None),
    ];
    let v0: Value = serde_json::from_str(&collection_document(
        Generation::V0,
        "/.well-known/mercure/subscriptions",
        "earliest",
        &subs,
    ))
    .unwrap();
    assert_eq!(v0["@context"], "https://mercure.rocks/");
    assert_eq!(v0["type"], "Subscriptions");
    assert_eq!(v0["lastEventID"], "earliest");
    assert_eq!(v0["id"], "/.well-known/mercure/subscriptions");
    assert!(v0["subscriptions"][0].get("@context").is_none());
    assert_eq!(v0["subscriptions"][0]["payload"], json!({}));
    assert_eq!(v0["subscriptions"][1]["match_type"], "exact");

    let v1: Value =
        serde_json::from_str(&collection_document(Generation::V1, "/p", "x", &subs)).unwrap();
    assert!(v1.get("@context").is_none() && v1.get("lastEventID").is_none());
    assert_eq!(v1["type"], "subscriptions");
    // A 0.x document in a 1.0 collection keeps its own shape, context included.
    assert_eq!(v1["subscriptions"][0]["@context"], "https://mercure.rocks/");
}

#[test]
fn an_empty_collection_is_an_empty_array() {
    let doc = collection_document(Generation::V1, "/p", "earliest", &[]);
    assert_eq!(
        doc,
        r#"{"id":"/p","type":"subscriptions","subscriptions":[]}"#
    );
}

#[test]
fn content_types_follow_the_family() {
    assert_eq!(content_type(Generation::V0), "application/ld+json");
    assert_eq!(content_type(Generation::V1), "application/json");
}

#[test]
fn no_remainder_names_every_subscription() {
    assert_eq!(parse(""), ApiPath::All);
    assert_eq!(parse("/"), ApiPath::All);
}

#[test]
fn a_0x_path_names_a_selectors_collection_or_one_subscription() {
    assert_eq!(
        parse("/https%3A%2F%2Fexample.com%2F%7Bid%7D"),
        ApiPath::Collection(spec(MatcherKind::Selector, "https://example.com/{id}"))
    );
    assert_eq!(
        parse("/https%3A%2F%2Fexample.com%2F%7Bid%7D/urn%3Auuid%3Abb3de268-05b0-4c65-b44e-8f9acefc29d6"),
        ApiPath::Single(spec(MatcherKind::Selector, "https://example.com/{id}"), SUB.into())
    );
}

#[test]
fn a_1_0_path_names_a_matchers_collection_or_one_subscription() {
    assert_eq!(
        parse("/exact/https%3A%2F%2Fexample.com%2Fa"),
        ApiPath::Collection(spec(MatcherKind::Exact, "https://example.com/a"))
    );
    assert_eq!(
        parse("/urlpattern/https%3A%2F%2Fexample.com%2F%3Aid/urn%3Auuid%3Abb3de268-05b0-4c65-b44e-8f9acefc29d6"),
        ApiPath::Single(spec(MatcherKind::UrlPattern, "https://example.com/:id"), SUB.into())
    );
}

#[test]
fn a_literal_slash_inside_a_selector_is_allowed() {
    assert_eq!(
        parse("/https%3A//example.com/rooms/42"),
        ApiPath::Collection(spec(MatcherKind::Selector, "https://example.com/rooms/42"))
    );
    assert_eq!(
        parse("/https%3A//example.com/rooms/42/urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6"),
        ApiPath::Single(
            spec(MatcherKind::Selector, "https://example.com/rooms/42"),
            SUB.into()
        )
    );
    assert_eq!(
        parse("/exact/https%3A//a.test//x/s"),
        ApiPath::Single(spec(MatcherKind::Exact, "https://a.test//x"), "s".into())
    );
}

#[test]
fn a_last_segment_that_is_no_current_subscriber_belongs_to_the_selector() {
    assert_eq!(
        parse("/rooms/unknown"),
        ApiPath::Collection(spec(MatcherKind::Selector, "rooms/unknown"))
    );
}

#[test]
fn a_lone_subscriber_segment_is_a_selector() {
    assert_eq!(
        parse("/s"),
        ApiPath::Collection(spec(MatcherKind::Selector, "s"))
    );
    // In the 1.0 family the type does not count as the other segment.
    assert_eq!(
        parse("/exact/s"),
        ApiPath::Collection(spec(MatcherKind::Exact, "s"))
    );
}

#[test]
fn a_lone_family_name_is_a_0x_selector() {
    assert_eq!(
        parse("/exact"),
        ApiPath::Collection(spec(MatcherKind::Selector, "exact"))
    );
    assert_eq!(
        parse("/Exact/a"),
        ApiPath::Collection(spec(MatcherKind::Selector, "Exact/a"))
    );
}

#[test]
fn a_path_that_does_not_decode_to_utf8_is_refused() {
    assert_eq!(ApiPath::parse("/%FF", |_| false), Err(ApiPathNotUtf8));
}

#[test]
fn the_canonical_path_encodes_each_part() {
    assert_eq!(
        parse("").canonical_path(),
        "/.well-known/mercure/subscriptions"
    );
    assert_eq!(
        parse("/https%3A//example.com/rooms/42").canonical_path(),
        "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2Frooms%2F42"
    );
    let single = parse("/exact/a:b/urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6");
    assert_eq!(
        single.canonical_path(),
        sub(MatcherKind::Exact, "a:b", None).topic()
    );
}

#[test]
fn a_single_paths_canonical_form_is_the_subscriptions_topic() {
    let s = sub(MatcherKind::UrlPattern, "https://example.com/:x", None);
    let remainder = s.topic()[SUBSCRIPTIONS_PATH.len()..].to_string();
    assert_eq!(parse(&remainder).canonical_path(), s.topic());
}

#[test]
fn the_family_is_the_paths_or_else_the_tokens() {
    assert_eq!(parse("").family(Generation::V1), Generation::V1);
    assert_eq!(parse("").family(Generation::V0), Generation::V0);
    assert_eq!(parse("/a").family(Generation::V1), Generation::V0);
    assert_eq!(parse("/exact/a").family(Generation::V0), Generation::V1);
}

#[test]
fn collections_select_active_subscriptions_of_their_matcher_only() {
    let a = sub(MatcherKind::Selector, "a", None);
    let exact_a = sub(MatcherKind::Exact, "a", None);
    let mut gone = a.clone();
    gone.active = false;
    let path = parse("/a");
    assert!(path.selects(&a));
    assert!(!path.selects(&exact_a));
    assert!(!path.selects(&gone));
    assert!(parse("").selects(&exact_a) && !parse("").selects(&gone));
    assert!(parse("/exact/a").selects(&exact_a) && !parse("/exact/a").selects(&a));
    let single = parse(&format!("/a/{}", enc(SUB)));
    assert!(single.selects(&a));
    let mut other = a.clone();
    other.subscriber = "s".into();
    assert!(!single.selects(&other));
}
