//! Property tests of the wire format and of the domain's parsers (issue 4).
//!
//! Run with `cargo test --test properties`. Every property is checked against an
//! independent model of the documented rule (README.md, the SSE rules of the WHATWG HTML standard
//! and the doc comments of the public API), not against the implementation itself.

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{json, Map, Value};

use sse_edge::domain::{BodyKind, ChannelName, EventId, Message, MessageLimits, PublishError};
use sse_edge::platform::contract::{StreamCall, StreamRequest, Target};
use sse_edge::platform::error::Error;
use sse_edge::protocol::{
    check_event_type, check_id, comment, retry, Event, FieldError, ParsedEvent, Parser,
};

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

/// Characters that matter to the event-stream format, mixed with arbitrary ones.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => Just('\n'),
        3 => Just('\r'),
        2 => Just(' '),
        2 => Just(':'),
        1 => Just('\0'),
        1 => Just('\u{feff}'),
        1 => Just('\u{2028}'),
        1 => Just('\u{85}'),
        1 => Just('é'),
        1 => Just('😀'),
        4 => proptest::char::range('a', 'z'),
        4 => any::<char>(),
    ]
}

/// Strings that often contain line breaks, colons, spaces, NULs and non-ASCII text.
fn tricky_string(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(tricky_char(), 0..max)
            .prop_map(|cs| cs.into_iter().collect::<String>()),
        any::<String>(),
        // whole words that are field names, so that a wrong encoding would show up
        proptest::collection::vec(
            prop_oneof![
                Just("data: x".to_string()),
                Just("id: 9".to_string()),
                Just("event: e".to_string()),
                Just("retry: 5".to_string()),
                Just("\r\n".to_string()),
                Just("\n\n".to_string()),
                Just("\r\r".to_string()),
                Just(": c".to_string()),
                Just(" ".to_string()),
                "[a-z]{0,3}",
            ],
            0..6
        )
        .prop_map(|parts| parts.concat()),
    ]
}

fn optional<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![1 => Just(None), 3 => s.prop_map(Some)]
}

// ---------------------------------------------------------------------------------------
// Models of the documented rules
// ---------------------------------------------------------------------------------------

/// The field rules for `event:` (references.md: CR/LF cannot be represented; the
/// encoder's doc: an empty type is refused, say `message` explicitly).
fn expected_type_error(t: &str) -> Option<FieldError> {
    if t.is_empty() {
        Some(FieldError::EventTypeEmpty)
    } else if t.contains('\r') || t.contains('\n') {
        Some(FieldError::EventTypeHasLineBreak)
    } else {
        None
    }
}

/// The field rules for `id:`: no CR or LF, no NUL.
fn expected_id_error(id: &str) -> Option<FieldError> {
    if id.contains('\r') || id.contains('\n') {
        Some(FieldError::IdHasLineBreak)
    } else if id.contains('\0') {
        Some(FieldError::IdHasNul)
    } else {
        None
    }
}

/// README "Routes": channel names are: 1 to 64 characters, ASCII letters, digits, `_`, `-`, `.`;
/// the first one a letter or digit.
fn is_valid_channel_name(s: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
    let n = s.chars().count();
    (1..=64).contains(&n)
        && s.chars().all(allowed)
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// `EventId::parse`'s documented set: a decimal id as the service sends it (a u64 in
/// decimal, at most 20 digits), surrounding whitespace ignored.
fn expected_event_id(s: &str) -> Option<u64> {
    let t = s.trim();
    if t.is_empty() || t.len() > 20 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Arbitrary-precision check that the value fits a u64, without using str::parse::<u64>.
    let mut value: u128 = 0;
    for b in t.bytes() {
        value = value * 10 + u128::from(b - b'0');
    }
    u64::try_from(value).ok()
}

/// What a listener reads back for `data`: every line break (CRLF, CR, LF) is a line
/// break of the format and arrives as LF; a CR cannot be carried (references.md).
fn normalized(data: &str) -> String {
    data.replace("\r\n", "\n").replace('\r', "\n")
}

/// Builds an event the way a caller would, or the error it gets.
fn build_event(
    data: &str,
    event_type: Option<&str>,
    id: Option<&str>,
    retry_ms: Option<u64>,
) -> Result<Event, FieldError> {
    let mut event = Event::new(data);
    if let Some(t) = event_type {
        event = event.with_type(t)?;
    }
    if let Some(id) = id {
        event = event.with_id(id)?;
    }
    if let Some(r) = retry_ms {
        event = event.with_retry(r);
    }
    Ok(event)
}

/// Feeds `stream` to a fresh parser in the pieces given by `cuts` (byte offsets, any order,
/// possibly inside a UTF-8 sequence or between CR and LF).
fn parse_in_pieces(stream: &[u8], cuts: &[usize]) -> (Vec<ParsedEvent>, Parser) {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut parser = Parser::new();
    let mut events = Vec::new();
    let mut from = 0;
    for cut in cuts.into_iter().chain(std::iter::once(stream.len())) {
        events.extend(parser.feed(&stream[from..cut]));
        from = cut;
    }
    (events, parser)
}

const LIMITS: MessageLimits = MessageLimits {
    max_event_type_bytes: 16,
};

// ---------------------------------------------------------------------------------------
// Encoder + parser
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// An event is refused exactly when a field rule says so; otherwise its wire form reads
    /// back (whole, or cut anywhere) as exactly one event with the same data, type and id
    /// (the data's CRLF and CR arrive as LF: the format has no way to carry a CR).
    #[test]
    fn event_is_refused_or_round_trips(
        data in tricky_string(40),
        event_type in optional(tricky_string(12)),
        id in optional(tricky_string(12)),
        retry_ms in optional(any::<u64>()),
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let expected_error = event_type.as_deref().and_then(expected_type_error)
            .or_else(|| id.as_deref().and_then(expected_id_error));
        // The checks the encoder exports agree with the model, field by field.
        if let Some(t) = &event_type {
            prop_assert_eq!(check_event_type(t).err(), expected_type_error(t));
        }
        if let Some(i) = &id {
            prop_assert_eq!(check_id(i).err(), expected_id_error(i));
        }
        let built = build_event(&data, event_type.as_deref(), id.as_deref(), retry_ms);
        match (built, expected_error) {
            (Err(got), Some(want)) => prop_assert_eq!(got, want),
            (Err(got), None) => prop_assert!(false, "refused a representable event: {:?}", got),
            (Ok(event), Some(want)) => prop_assert!(false, "accepted {:?} although {:?}", event, want),
            (Ok(event), None) => {
                prop_assert_eq!(event.data(), data.as_str());
                prop_assert_eq!(event.event_type(), event_type.as_deref());
                prop_assert_eq!(event.id(), id.as_deref());
                prop_assert_eq!(event.retry_ms(), retry_ms);
                let wire = event.encode();
                prop_assert!(wire.ends_with("\n\n"), "the frame must end with a blank line: {:?}", wire);
                let mut via_into = String::from("prefix");
                event.encode_into(&mut via_into);
                prop_assert_eq!(&via_into["prefix".len()..], wire.as_str());

                let (events, parser) = parse_in_pieces(wire.as_bytes(), &cuts);
                prop_assert_eq!(events.len(), 1, "wire {:?} gave {:?}", wire, events);
                let got = &events[0];
                prop_assert_eq!(&got.data, &normalized(&data), "wire {:?}", wire);
                prop_assert_eq!(got.event_type.as_str(), event_type.as_deref().unwrap_or("message"), "wire {:?}", wire);
                prop_assert_eq!(got.last_event_id.as_str(), id.as_deref().unwrap_or(""), "wire {:?}", wire);
                prop_assert_eq!(parser.retry_ms, retry_ms, "wire {:?}", wire);
                prop_assert_eq!(parser.comments, 0);
            }
        }
    }

    /// Several events with comments and bare retry fields between them read back in order;
    /// the last event id persists across events without their own id, as the spec says.
    #[test]
    fn streams_of_events_and_comments_read_back_in_order(
        items in proptest::collection::vec(
            (tricky_string(20), optional("[a-z]{1,6}"), optional("[0-9]{1,4}"), optional(tricky_string(10))),
            0..8,
        ),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut stream = String::new();
        let mut want = Vec::new();
        let mut last_id = String::new();
        let mut comment_lines = 0;
        for (data, event_type, id, before) in &items {
            if let Some(text) = before {
                stream.push_str(&comment(text));
                stream.push_str(&retry(7));
                comment_lines += text.split("\r\n").flat_map(|l| l.split(['\r', '\n'])).count();
            }
            let event = build_event(data, event_type.as_deref(), id.as_deref(), None).unwrap();
            stream.push_str(&event.encode());
            if let Some(id) = id {
                last_id = id.clone();
            }
            want.push(ParsedEvent {
                event_type: event_type.clone().unwrap_or_else(|| "message".into()),
                data: normalized(data),
                last_event_id: last_id.clone(),
            });
        }
        let (events, parser) = parse_in_pieces(stream.as_bytes(), &cuts);
        prop_assert_eq!(&events, &want, "stream {:?}", stream);
        prop_assert_eq!(parser.comments, comment_lines, "stream {:?}", stream);
    }

    /// A comment never produces an event, whatever its text (even text that looks like
    /// fields, or line breaks), and does not disturb an event that follows it.
    #[test]
    fn comments_never_produce_events(text in tricky_string(60), data in tricky_string(20)) {
        let c = comment(&text);
        prop_assert!(c.ends_with("\n\n"));
        for line in c[..c.len() - 1].split('\n') {
            if !line.is_empty() {
                prop_assert!(line.starts_with(':'), "comment line {:?} in {:?}", line, c);
            }
        }
        let mut parser = Parser::new();
        prop_assert_eq!(parser.feed(c.as_bytes()), Vec::<ParsedEvent>::new(), "comment {:?}", c);
        prop_assert_eq!(parser.retry_ms, None);
        prop_assert_eq!(parser.last_event_id_is_empty(), true);
        // Followed by an event: exactly that event.
        let event = Event::new(data.clone());
        let events = Parser::parse_all(format!("{c}{}{c}", event.encode()).as_bytes());
        prop_assert_eq!(events.len(), 1);
        prop_assert_eq!(&events[0].data, &normalized(&data));
        prop_assert_eq!(events[0].event_type.as_str(), "message");
    }

    /// A bare `retry:` field sets the reconnection time and dispatches nothing.
    #[test]
    fn retry_field_dispatches_nothing(ms in any::<u64>()) {
        let mut parser = Parser::new();
        prop_assert_eq!(parser.feed(retry(ms).as_bytes()), Vec::<ParsedEvent>::new());
        prop_assert_eq!(parser.retry_ms, Some(ms));
    }
}

/// A tiny extension so the comment property can say "no id was set" without a public field.
trait LastEventIdIsEmpty {
    fn last_event_id_is_empty(&mut self) -> bool;
}

impl LastEventIdIsEmpty for Parser {
    fn last_event_id_is_empty(&mut self) -> bool {
        // An event after the input so far shows the last event id in force.
        let probe = self.feed(b"data: probe\n\n");
        probe.len() == 1 && probe[0].last_event_id.is_empty()
    }
}

// ---------------------------------------------------------------------------------------
// Message::parse
// ---------------------------------------------------------------------------------------

/// Arbitrary JSON values, small.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        tricky_string(16).prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// JSON objects shaped like publish bodies, right and wrong.
fn publish_object() -> impl Strategy<Value = Value> {
    let data =
        optional(prop_oneof![3 => tricky_string(30).prop_map(Value::String), 2 => json_value()]);
    let event = optional(prop_oneof![
        4 => tricky_string(20).prop_map(Value::String),
        2 => "[a-z]{1,20}".prop_map(Value::String),
        1 => Just(Value::Null),
        1 => json_value(),
    ]);
    let retry = optional(prop_oneof![
        3 => any::<u64>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(Value::Null),
        1 => json_value(),
    ]);
    let extra = optional(("[a-z]{1,5}", json_value()));
    (data, event, retry, extra).prop_map(|(data, event, retry, extra)| {
        let mut object = Map::new();
        if let Some(v) = data {
            object.insert("data".into(), v);
        }
        if let Some(v) = event {
            object.insert("event".into(), v);
        }
        if let Some(v) = retry {
            object.insert("retry".into(), v);
        }
        if let Some((k, v)) = extra {
            object.entry(k).or_insert(v);
        }
        Value::Object(object)
    })
}

/// The documented reading of a JSON publish body (README "Publish", the field
/// rules, and `Message`'s errors), applied to an already parsed value.
fn model_json(
    value: &Value,
    query_event: Option<&str>,
    max_type: usize,
) -> Result<Message, PublishError> {
    let Value::Object(object) = value else {
        return Err(PublishError::NotAnObject);
    };
    if let Some(k) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "data" | "event" | "retry"))
    {
        return Err(PublishError::UnknownField(k.clone()));
    }
    let data = match object.get("data") {
        None => return Err(PublishError::MissingData),
        Some(Value::String(s)) => s.clone(),
        Some(other) => serde_json::to_string(other).unwrap(), // compact JSON
    };
    let event_type = match object.get("event") {
        None | Some(Value::Null) => query_event.map(str::to_string),
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(PublishError::EventTypeNotAString),
    };
    let retry_ms = match object.get("retry") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or(PublishError::BadRetry)?),
    };
    check_type(event_type.as_deref(), max_type)?;
    Ok(Message {
        data,
        event_type,
        retry_ms,
    })
}

fn check_type(event_type: Option<&str>, max: usize) -> Result<(), PublishError> {
    if let Some(t) = event_type {
        if let Some(e) = expected_type_error(t) {
            return Err(PublishError::EventType(e));
        }
        if t.len() > max {
            return Err(PublishError::EventTypeTooLong { max });
        }
        // README "Errors": the service's own notice types are refused.
        if t == "gap" {
            return Err(PublishError::ReservedEventType(t.to_string()));
        }
    }
    Ok(())
}

fn valid_message() -> impl Strategy<Value = Message> {
    (
        tricky_string(40),
        optional(tricky_string(16).prop_filter("a valid event type", |t| {
            expected_type_error(t).is_none() && t.len() <= LIMITS.max_event_type_bytes
        })),
        optional(any::<u64>()),
    )
        .prop_map(|(data, event_type, retry_ms)| Message {
            data,
            event_type,
            retry_ms,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Arbitrary bytes, both body kinds: never a panic; a message or an error, as the
    /// rules say. A text body is the data as is; only UTF-8 is accepted.
    #[test]
    fn arbitrary_bodies_never_panic(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            tricky_string(40).prop_map(String::into_bytes),
            publish_object().prop_map(|v| v.to_string().into_bytes()),
        ],
        query_event in optional(tricky_string(20)),
        max_type in 1usize..24,
    ) {
        let limits = MessageLimits { max_event_type_bytes: max_type };
        let utf8 = std::str::from_utf8(&body);

        let text = Message::parse(BodyKind::Text, &body, query_event.as_deref(), limits);
        match &utf8 {
            Err(e) => prop_assert_eq!(&text, &Err(PublishError::NotUtf8 { valid_up_to: e.valid_up_to() })),
            Ok(s) => {
                let want = check_type(query_event.as_deref(), max_type).map(|()| Message {
                    data: s.to_string(),
                    event_type: query_event.clone(),
                    retry_ms: None,
                });
                prop_assert_eq!(&text, &want);
            }
        }
        if let Err(e) = &text {
            prop_assert_eq!(Error::from(e.clone()).status(), 400);
            prop_assert!(!e.to_string().is_empty());
        }

        let parsed = Message::parse(BodyKind::Json, &body, query_event.as_deref(), limits);
        match (&utf8, utf8.as_ref().map(|s| serde_json::from_str::<Value>(s))) {
            (Err(e), _) => prop_assert_eq!(&parsed, &Err(PublishError::NotUtf8 { valid_up_to: e.valid_up_to() })),
            (_, Err(_)) => unreachable!(),
            (Ok(_), Ok(Err(e))) => match &parsed {
                Err(PublishError::Json { line, column, reason }) => {
                    prop_assert_eq!((*line, *column), (e.line(), e.column()));
                    prop_assert!(!reason.is_empty());
                    let shown = parsed.as_ref().unwrap_err().to_string();
                    prop_assert!(shown.contains(&format!("line {line}")) && shown.contains(&format!("column {column}")), "{}", shown);
                }
                other => prop_assert!(false, "malformed JSON {:?} gave {:?}", String::from_utf8_lossy(&body), other),
            },
            (Ok(_), Ok(Ok(value))) => {
                let want = model_json(&value, query_event.as_deref(), max_type);
                match (&parsed, &want) {
                    // which unknown field is named first is the implementation's choice
                    (Err(PublishError::UnknownField(k)), Err(PublishError::UnknownField(_))) => {
                        prop_assert!(!matches!(k.as_str(), "data" | "event" | "retry"));
                        prop_assert!(value.as_object().unwrap().contains_key(k));
                    }
                    _ => prop_assert_eq!(&parsed, &want, "body {}", String::from_utf8_lossy(&body)),
                }
            }
        }
        if let Err(e) = &parsed {
            prop_assert_eq!(Error::from(e.clone()).status(), 400);
        }
        // Whatever was accepted can always be sent.
        for m in [&text, &parsed].into_iter().flatten() {
            prop_assert!(m.event_type.as_deref().is_none_or(|t| check_event_type(t).is_ok() && t.len() <= max_type));
        }
    }

    /// A valid message reaches its channel's object as the same message, and its event
    /// encodes to exactly that message on the wire.
    #[test]
    fn a_message_crosses_to_its_object_unchanged(message in valid_message(), id in any::<u64>()) {
        let call = StreamCall::new(Target::Channel(ChannelName::default_channel()), StreamRequest::Publish(message.clone()));
        let wire = call.to_wire();
        prop_assert_eq!(wire.body.as_deref(), Some(message.data.as_str()));
        prop_assert_eq!(StreamCall::from_wire(wire).ok(), Some(call));
        let events = Parser::parse_all(message.to_event(EventId(id)).encode().as_bytes());
        prop_assert_eq!(events.len(), 1);
        prop_assert_eq!(&events[0].data, &normalized(&message.data));
        prop_assert_eq!(events[0].event_type.as_str(), message.event_type.as_deref().unwrap_or("message"));
        prop_assert_eq!(&events[0].last_event_id, &id.to_string());
    }

    /// Messages that came out of parsing also cross to the object unchanged.
    #[test]
    fn parsed_messages_cross_to_the_object_unchanged(object in publish_object()) {
        let body = object.to_string();
        if let Ok(m) = Message::parse(BodyKind::Json, body.as_bytes(), None, LIMITS) {
            let call = StreamCall::new(Target::Channel(ChannelName::default_channel()), StreamRequest::Publish(m));
            prop_assert_eq!(StreamCall::from_wire(call.to_wire()).ok(), Some(call));
        }
    }
}

// ---------------------------------------------------------------------------------------
// ChannelName and EventId
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn channel_names_accept_exactly_the_documented_set(
        name in prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_.\\-]{0,70}",
            "[A-Za-z0-9][A-Za-z0-9_.\\-]{60,66}",
            proptest::collection::vec(
                prop_oneof![4 => proptest::char::range('a', 'z'), 1 => Just('.'), 1 => Just('-'), 1 => Just('_'),
                            1 => Just('/'), 1 => Just(' '), 1 => Just('é'), 1 => Just('\u{212a}'), 1 => Just('%')],
                0..70,
            ).prop_map(|cs| cs.into_iter().collect::<String>()),
        ],
    ) {
        let parsed = ChannelName::parse(&name);
        prop_assert_eq!(parsed.is_ok(), is_valid_channel_name(&name), "{:?} -> {:?}", name, parsed);
        match parsed {
            Ok(channel) => {
                prop_assert_eq!(channel.as_str(), name.as_str());
                prop_assert_eq!(channel.to_string(), name);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn event_ids_accept_exactly_the_documented_set(
        text in prop_oneof![
            any::<String>(),
            "[0-9]{1,22}",
            "[ \\t]{0,2}[0-9]{0,21}[ \\t]{0,2}",
            "[-+0-9a-f.e ]{0,6}",
            any::<u64>().prop_map(|n| n.to_string()),
            (1u64..1000).prop_map(|k| (u128::from(u64::MAX) + u128::from(k)).to_string()),
        ],
    ) {
        let parsed = EventId::parse(&text);
        prop_assert_eq!(parsed.ok().map(|id| id.0), expected_event_id(&text), "{:?}", text);
        if let Err(e) = parsed {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// Every id the service writes (decimal) is accepted back, as the same id.
    #[test]
    fn event_ids_round_trip(n in any::<u64>()) {
        let id = EventId(n);
        prop_assert_eq!(EventId::parse(&id.to_string()), Ok(id));
    }
}

#[test]
fn documented_examples() {
    // README "Publish": object data is sent as compact JSON.
    let m = Message::parse(
        BodyKind::Json,
        br#"{"data": {"a": [1, 2], "b": "x"}}"#,
        None,
        LIMITS,
    )
    .unwrap();
    assert_eq!(m.data, r#"{"a":[1,2],"b":"x"}"#);
    assert_eq!(
        serde_json::from_str::<Value>(&m.data).unwrap(),
        json!({"a": [1, 2], "b": "x"})
    );
    assert!(ChannelName::parse(&"a".repeat(64)).is_ok());
    assert!(ChannelName::parse(&"a".repeat(65)).is_err());
    assert_eq!(
        EventId::parse("18446744073709551615"),
        Ok(EventId(u64::MAX))
    );
    assert!(EventId::parse("18446744073709551616").is_err());
}
