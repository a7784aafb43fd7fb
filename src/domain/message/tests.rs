//! Publish bodies: every kind, every refusal.

use super::*;

const LIMITS: MessageLimits = MessageLimits {
    max_event_type_bytes: 16,
};

fn json(body: &str) -> Result<Message, PublishError> {
    Message::parse(BodyKind::Json, body.as_bytes(), None, LIMITS)
}

fn form(body: &str) -> Result<Message, PublishError> {
    Message::parse(BodyKind::Form, body.as_bytes(), Some("q"), LIMITS)
}

#[test]
fn json_data_is_sent_as_is_when_a_string_and_as_compact_json_otherwise() {
    assert_eq!(json(r#"{"data":"hi"}"#).unwrap().data, "hi");
    assert_eq!(
        json(r#"{"data":{"a":[1, 2]}}"#).unwrap().data,
        r#"{"a":[1,2]}"#
    );
    assert_eq!(json(r#"{"data":42}"#).unwrap().data, "42");
    let m = json(r#"{"data":"x","event":"note","retry":300}"#).unwrap();
    assert_eq!(
        (m.event_type.as_deref(), m.retry_ms),
        (Some("note"), Some(300))
    );
}

#[test]
fn json_errors_say_what_and_where() {
    match json("{\"data\": \n tru}") {
        Err(PublishError::Json {
            line: 2, column, ..
        }) => assert!(column > 0),
        other => panic!("{other:?}"),
    }
    for not_an_object in ["[1]", "[]", "3", "\"x\"", "null", "true", "-1.5"] {
        assert_eq!(
            json(not_an_object),
            Err(PublishError::NotAnObject),
            "{not_an_object}"
        );
    }
    assert_eq!(json("{}"), Err(PublishError::MissingData));
    assert_eq!(
        json(r#"{"data":"x","typ":"a"}"#),
        Err(PublishError::UnknownField("typ".into()))
    );
    assert_eq!(
        json(r#"{"data":"x","event":3}"#),
        Err(PublishError::EventTypeNotAString)
    );
    assert_eq!(
        json(r#"{"data":"x","event":"a\nb"}"#),
        Err(PublishError::EventType(FieldError::EventTypeHasLineBreak))
    );
    assert_eq!(
        json(r#"{"data":"x","event":"aaaaaaaaaaaaaaaaa"}"#),
        Err(PublishError::EventTypeTooLong { max: 16 })
    );
    assert_eq!(
        json(r#"{"data":"x","retry":-1}"#),
        Err(PublishError::BadRetry)
    );
    let e = json("{\"data\": \"x\"").unwrap_err().to_string();
    assert!(e.starts_with("malformed JSON at line 1, column"), "{e}");
    assert!(json(r#"{"data":"x"} {}"#).is_err(), "trailing content");
}

#[test]
fn a_repeated_json_field_is_refused_like_a_repeated_form_field() {
    for (body, field) in [
        (r#"{"data":"a","data":"b"}"#, "data"),
        (r#"{"data":"a","event":"x","event":"y"}"#, "event"),
        (r#"{"retry":1,"data":"a","retry":2}"#, "retry"),
        (r#"{"data":"a","event":null,"event":"y"}"#, "event"),
    ] {
        assert_eq!(
            json(body),
            Err(PublishError::DuplicateField(field.into())),
            "{body}"
        );
    }
    assert_eq!(
        form("data=1&data=2"),
        Err(PublishError::DuplicateField("data".into()))
    );
    // Keys repeated inside the data value are the data's own business.
    assert_eq!(
        json(r#"{"data":{"a":1,"b":2}}"#).unwrap().data,
        r#"{"a":1,"b":2}"#
    );
}

#[test]
fn text_bodies_are_the_data_and_take_their_type_from_the_query() {
    let m = Message::parse(BodyKind::Text, "a\nb".as_bytes(), Some("t"), LIMITS).unwrap();
    assert_eq!(
        m,
        Message {
            data: "a\nb".into(),
            event_type: Some("t".into()),
            retry_ms: None
        }
    );
    assert_eq!(
        Message::parse(BodyKind::Text, &[0x66, 0xff], None, LIMITS),
        Err(PublishError::NotUtf8 { valid_up_to: 1 })
    );
    assert!(Message::parse(BodyKind::Text, b"x", Some("a\rb"), LIMITS).is_err());
}

#[test]
fn form_bodies_are_read_as_data_event_and_retry_fields() {
    let m = form("data=a%0Ab+c&event=note&retry=250").unwrap();
    assert_eq!(
        m,
        Message {
            data: "a\nb c".into(),
            event_type: Some("note".into()),
            retry_ms: Some(250)
        }
    );
    assert_eq!(form("data=x").unwrap().event_type.as_deref(), Some("q"));
    assert_eq!(form("data=").unwrap().data, "");
    assert_eq!(form("data").unwrap().data, "");
    assert_eq!(form("&data=%C3%A9&").unwrap().data, "é");
    assert_eq!(form("data=100%25+sure").unwrap().data, "100% sure");
    assert_eq!(
        form("hello"),
        Err(PublishError::UnknownField("hello".into()))
    );
    assert_eq!(form(""), Err(PublishError::MissingData));
    assert_eq!(form("data=x&retry=soon"), Err(PublishError::BadRetry));
    assert_eq!(
        form("data=x&event=a%0Db"),
        Err(PublishError::EventType(FieldError::EventTypeHasLineBreak))
    );
}

#[test]
fn form_fields_that_are_not_utf8_once_decoded_are_refused_not_altered() {
    assert_eq!(
        form("data=%FF%FE"),
        Err(PublishError::FormFieldNotUtf8 {
            field: "data".into()
        })
    );
    assert_eq!(
        form("data=ok&event=%C3"),
        Err(PublishError::FormFieldNotUtf8 {
            field: "event".into()
        })
    );
    assert!(matches!(
        form("d%FFta=x"),
        Err(PublishError::FormFieldNotUtf8 { .. })
    ));
}

#[test]
fn the_services_own_event_types_are_refused_from_publishers() {
    let reserved = Err(PublishError::ReservedEventType("gap".into()));
    assert_eq!(json(r#"{"data":"x","event":"gap"}"#), reserved);
    assert_eq!(form("data=x&event=gap"), reserved);
    assert_eq!(
        Message::parse(BodyKind::Text, b"x", Some("gap"), LIMITS),
        reserved
    );
    // Event types are case-sensitive in EventSource: only the exact name is the service's.
    assert!(json(r#"{"data":"x","event":"Gap"}"#).is_ok());
    assert!(json(r#"{"data":"x","event":"gaps"}"#).is_ok());
}

#[test]
fn the_content_type_chooses_how_a_body_is_read() {
    assert_eq!(
        BodyKind::from_content_type(Some("application/json; charset=utf-8")),
        Ok(BodyKind::Json)
    );
    assert_eq!(
        BodyKind::from_content_type(Some("Text/Plain")),
        Ok(BodyKind::Text)
    );
    assert_eq!(BodyKind::from_content_type(None), Ok(BodyKind::Text));
    assert_eq!(
        BodyKind::from_content_type(Some("application/x-www-form-urlencoded")),
        Ok(BodyKind::Form)
    );
    let e = BodyKind::from_content_type(Some("image/png")).unwrap_err();
    assert!(e.is_unsupported_kind());
}

fn batch(kind: BodyKind, body: &str) -> Result<Publication, PublishError> {
    Publication::parse(kind, body.as_bytes(), None, LIMITS, 3)
}

fn datas(p: Publication) -> Vec<String> {
    match p {
        Publication::Batch(messages) => messages.into_iter().map(|m| m.data).collect(),
        Publication::One(m) => panic!("one message, not a batch: {m:?}"),
    }
}

#[test]
fn ndjson_and_json_arrays_are_batches_of_single_publishes() {
    let nd = batch(
        BodyKind::NdJson,
        "{\"data\":\"a\"}\r\n\n{\"data\":{\"b\":1},\"event\":\"t\"}\n",
    )
    .unwrap();
    assert_eq!(datas(nd), ["a", r#"{"b":1}"#]);
    let array = batch(BodyKind::Json, r#" [{"data":"x"},{"data":"y","retry":5}]"#).unwrap();
    assert_eq!(datas(array), ["x", "y"]);
    // A JSON object is still one publish.
    assert!(matches!(
        batch(BodyKind::Json, r#"{"data":"one"}"#).unwrap(),
        Publication::One(_)
    ));
    assert_eq!(
        BodyKind::from_content_type(Some("application/x-ndjson")),
        Ok(BodyKind::NdJson)
    );
}

#[test]
fn one_bad_message_refuses_the_whole_batch_naming_it() {
    let e = batch(
        BodyKind::NdJson,
        "{\"data\":\"a\"}\n{\"data\":\"b\"}\n{\"data\": tru}\n",
    )
    .unwrap_err();
    assert!(
        matches!(&e, PublishError::InBatch { position: BatchPosition::Line(3), error } if matches!(**error, PublishError::Json { .. })),
        "{e:?}"
    );
    let shown = e.to_string();
    assert!(shown.starts_with("line 3, column"), "{shown}");
    assert!(shown.ends_with("nothing was published"), "{shown}");
    let e = batch(
        BodyKind::Json,
        r#"[{"data":"a"},{"data":"b","event":"gap"}]"#,
    )
    .unwrap_err();
    assert_eq!(
        e,
        PublishError::InBatch {
            position: BatchPosition::Item(2),
            error: Box::new(PublishError::ReservedEventType("gap".into()))
        }
    );
    assert!(e.to_string().starts_with("event 2 of the array: "), "{e}");
    for bad in [r#"[{"data":"a"}, 3]"#, r#"[[{"data":"a"}]]"#] {
        assert!(matches!(
            batch(BodyKind::Json, bad),
            Err(PublishError::InBatch { .. })
        ));
    }
    assert!(matches!(
        batch(BodyKind::NdJson, "{\"data\":\"a\",\"data\":\"b\"}"),
        Err(PublishError::InBatch { error, .. }) if *error == PublishError::DuplicateField("data".into())
    ));
    assert!(matches!(
        batch(BodyKind::Json, r#"[{"data":"a"}"#),
        Err(PublishError::Json { .. })
    ));
}

#[test]
fn a_batch_holds_one_to_max_batch_events_messages() {
    assert_eq!(batch(BodyKind::Json, "[]"), Err(PublishError::EmptyBatch));
    assert_eq!(
        batch(BodyKind::NdJson, "\n \n"),
        Err(PublishError::EmptyBatch)
    );
    let four = "{\"data\":1}\n".repeat(4);
    let e = batch(BodyKind::NdJson, &four).unwrap_err();
    assert_eq!(e, PublishError::TooManyEvents { max: 3 });
    assert!(e.is_too_large());
    assert_eq!(
        datas(batch(BodyKind::NdJson, &"{\"data\":1}\n".repeat(3)).unwrap()).len(),
        3
    );
}
