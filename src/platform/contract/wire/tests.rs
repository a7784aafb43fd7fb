use super::super::call::{Delivery, SubscriberCall, SubscriptionsCall, UpdateCall};
use super::*;
use crate::domain::mercure::{TopicSpec, Update};

fn round_trip(call: StreamCall) {
    let wire = call.to_wire();
    assert_eq!(
        StreamCall::from_wire(wire.clone()).unwrap(),
        call,
        "{wire:?}"
    );
}

fn channel(name: &str) -> Target {
    Target::Channel(ChannelName::parse(name).unwrap())
}

#[test]
fn every_request_reads_back_as_it_was_sent() {
    round_trip(StreamCall::new(
        channel("news"),
        StreamRequest::Listen {
            last_seen: None,
            region: Region::Any,
            delivery: Delivery::Stream,
        },
    ));
    round_trip(
        StreamCall::new(
            channel("a.b-c_d"),
            StreamRequest::Listen {
                last_seen: Some(EventId(u64::MAX)),
                region: Region::Oc,
                delivery: Delivery::Socket,
            },
        )
        .allowing(Some("https://app.test:8443".into())),
    );
    round_trip(StreamCall::new(channel("news"), StreamRequest::Stats).allowing(Some("*".into())));
    round_trip(StreamCall::new(channel("news"), StreamRequest::Stats));
    // Between the nodes of a tree.
    let node = |p: &str| NodePath::parse(p).unwrap();
    for request in [
        StreamRequest::Relay {
            child: node("weur.0.3"),
            last_seen: None,
        },
        StreamRequest::Relay {
            child: node("weur"),
            last_seen: Some(EventId(7)),
        },
        StreamRequest::FeedMe {
            child: node("weur.0.3"),
            last_seen: None,
        },
        StreamRequest::FeedMe {
            child: node("weur.0"),
            last_seen: Some(EventId(9)),
        },
        StreamRequest::Feed,
        StreamRequest::Replay {
            after: EventId(0),
            through: EventId(12),
        },
        StreamRequest::Replay {
            after: EventId(3),
            through: EventId(3),
        },
        StreamRequest::Report {
            child: node("apac.1"),
            listeners: 12345,
            handed: None,
        },
        StreamRequest::Report {
            child: node("apac.1.0"),
            listeners: 0,
            handed: Some(Counters {
                published: 0,
                delivered: 7,
                dropped_slow: 1,
                dropped_gone: 2,
            }),
        },
        StreamRequest::Stats,
    ] {
        round_trip(StreamCall::to_node(
            channel("hot"),
            node("weur.0"),
            request.clone(),
        ));
        round_trip(StreamCall::new(channel("hot"), request));
    }
    for message in [
        Message {
            data: String::new(),
            event_type: None,
            retry_ms: None,
        },
        Message {
            data: "a\r\nb &=?# é \u{0}".into(),
            event_type: Some("score & co=1 #2 ü".into()),
            retry_ms: Some(0),
        },
    ] {
        round_trip(StreamCall::new(
            channel("x"),
            StreamRequest::Publish(message.clone()),
        ));
    }
    round_trip(StreamCall::new(
        channel("x"),
        StreamRequest::PublishBatch(vec![
            Message {
                data: "a\u{feff}\r\n\"".into(),
                event_type: Some("t".into()),
                retry_ms: Some(9),
            },
            Message {
                data: String::new(),
                event_type: None,
                retry_ms: None,
            },
        ]),
    ));
    round_trip(StreamCall::new(channel("x"), StreamRequest::End(vec![])));
    for end in [false, true] {
        let call = StreamCall::new(channel("x"), StreamRequest::PublishStream { end });
        assert!(
            carries_stream(&call.to_wire().url),
            "its body is read by the object"
        );
        round_trip(call);
    }
    round_trip(StreamCall::new(
        channel("x"),
        StreamRequest::End(vec![Message {
            data: "the last \"word\"\n".into(),
            event_type: Some("token".into()),
            retry_ms: None,
        }]),
    ));
}

#[test]
fn a_publish_carries_its_data_as_the_body_and_nothing_to_parse() {
    let wire = StreamCall::new(
        channel("news"),
        StreamRequest::Publish(Message {
            data: "{\"a\":1}".into(),
            event_type: Some("t".into()),
            retry_ms: Some(5),
        }),
    )
    .to_wire();
    assert_eq!(wire.method, Method::Post);
    assert_eq!(wire.body.as_deref(), Some("{\"a\":1}"));
    assert_eq!(wire.url.query(), Some("channel=news&event=t&retry=5"));
}

#[test]
fn what_the_worker_never_sends_is_refused_as_a_contract_error() {
    let wire = |method: Method, url: &str, body: Option<&str>| Wire {
        method,
        url: Url::parse(url).unwrap(),
        body: body.map(str::to_string),
    };
    for bad in [
        wire(Method::Get, "https://channel.internal/listen", None),
        wire(
            Method::Get,
            "https://channel.internal/listen?channel=bad!",
            None,
        ),
        wire(
            Method::Get,
            "https://channel.internal/listen?channel=a&lastEventId=x",
            None,
        ),
        wire(
            Method::Post,
            "https://channel.internal/publish?channel=a",
            None,
        ),
        wire(
            Method::Post,
            "https://channel.internal/publish?channel=a&retry=-1",
            Some("x"),
        ),
        wire(
            Method::Put,
            "https://channel.internal/stats?channel=a",
            None,
        ),
        wire(
            Method::Get,
            "https://channel.internal/other?channel=a",
            None,
        ),
        wire(
            Method::Get,
            "https://channel.internal/stats?channel=a&node=mars.1",
            None,
        ),
        wire(
            Method::Get,
            "https://channel.internal/relay?channel=a",
            None,
        ),
        wire(
            Method::Get,
            "https://channel.internal/replay?channel=a",
            None,
        ),
        wire(
            Method::Post,
            "https://channel.internal/report?channel=a&child=oc&listeners=-2",
            Some(""),
        ),
    ] {
        let e = StreamCall::from_wire(bad.clone()).unwrap_err();
        assert!(matches!(e, Error::Contract(_)), "{bad:?}: {e}");
    }
}

#[test]
fn a_hub_call_reads_back_as_it_was_sent_grants_and_all() {
    use crate::domain::mercure::{verify, MatcherBudget, MatcherKind, TokenContext};
    // A 0.x token granting subscribe on a template, signed by hand.
    let grants = {
        use base64::Engine;
        use hmac::{KeyInit, Mac};
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let signing = format!(
            "{}.{}",
            b64(r#"{"alg":"HS256"}"#),
            b64(r#"{"mercure":{"subscribe":["https://a.test/{x}"],"payload":{"u":1}}}"#)
        );
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"k").unwrap();
        mac.update(signing.as_bytes());
        let sig =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let ctx = TokenContext {
            now_s: 0,
            issuers: vec![],
            resource: "http://h.test/.well-known/mercure".into(),
            limits: Default::default(),
        };
        verify(&format!("{signing}.{sig}"), b"k", &ctx).unwrap()
    };
    let spec = grants.spec();
    let subscriber = SubscriberCall {
        base: "http://h.test/.well-known/mercure".into(),
        subscriber_id: "urn:uuid:1".into(),
        specs: vec![TopicSpec::new(MatcherKind::UrlPattern, "/books/:id")],
        grants: Some(spec.clone()),
        cursor: Some("earliest".into()),
    };
    let call = StreamCall::to_node(
        Target::Hub,
        NodePath::parse("weur.1").unwrap(),
        StreamRequest::Subscribe {
            subscriber: subscriber.clone(),
            region: Region::Weur,
            delivery: Delivery::Socket,
            after_seq: Some(EventId(41)),
        },
    );
    round_trip(call);
    let grants = subscriber
        .grants
        .unwrap()
        .compile(&mut MatcherBudget::new(Default::default()))
        .unwrap();
    assert!(grants.allows(
        crate::domain::mercure::Action::Subscribe,
        "https://a.test/y"
    ));
    assert!(!grants.allows(
        crate::domain::mercure::Action::Subscribe,
        "https://b.test/y"
    ));
    let update = UpdateCall {
        update: Update {
            topics: vec!["t".into()],
            data: "a\nb".into(),
            private: true,
            id: None,
            event_type: Some("x".into()),
            retry_ms: Some(3),
        },
        id: "urn:uuid:2".into(),
    };
    for request in [
        StreamRequest::PublishUpdates(vec![update.clone(), update]),
        StreamRequest::Subscriptions(SubscriptionsCall {
            base: "http://h.test/.well-known/mercure".into(),
            remainder: "/a%2Fb".into(),
            raw_path: "/.well-known/mercure/subscriptions/a%2Fb".into(),
            grants: spec,
            if_none_match: Some("\"x\"".into()),
        }),
        StreamRequest::Subscribers,
        StreamRequest::FindKey("urn:uuid:3 & co=?".into()),
        StreamRequest::Stats,
    ] {
        round_trip(StreamCall::new(Target::Hub, request));
    }
    let wire = |url: &str| Wire {
        method: Method::Post,
        url: Url::parse(url).unwrap(),
        body: Some("{}".into()),
    };
    for bad in [
        wire("https://channel.internal/publish-updates?hub=1"),
        wire("https://channel.internal/subscribe?hub=1&region=any"),
        wire("https://channel.internal/publish?hub=1&channel=a"),
    ] {
        assert!(matches!(
            StreamCall::from_wire(bad),
            Err(Error::Contract(_))
        ));
    }
}
