//! Property tests of 0.x URI-template selectors (§5.1): for random RFC 6570 templates and
//! random variable values, the expansion matches the template; near-misses do not.
//!
//! Run with `cargo test --test mercure_template`. Expansions come from an independent
//! expander written from RFC 6570's Appendix A, not from the matcher.

use proptest::prelude::*;

use sse_edge::domain::mercure::{
    MatcherBudget, MatcherKind, MatcherLimits, TopicMatcher, TopicSpec,
};

const R: &str = "http://127.0.0.1:8787/.well-known/mercure";

// ---------------------------------------------------------------------------------------
// A model: templates, values, and RFC 6570 expansion
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Op {
    Simple,
    Reserved,
    Fragment,
    Label,
    Path,
    PathParam,
    Query,
    QueryCont,
}

impl Op {
    const ALL: [Op; 8] = [
        Op::Simple,
        Op::Reserved,
        Op::Fragment,
        Op::Label,
        Op::Path,
        Op::PathParam,
        Op::Query,
        Op::QueryCont,
    ];

    fn sigil(self) -> &'static str {
        match self {
            Op::Simple => "",
            Op::Reserved => "+",
            Op::Fragment => "#",
            Op::Label => ".",
            Op::Path => "/",
            Op::PathParam => ";",
            Op::Query => "?",
            Op::QueryCont => "&",
        }
    }

    /// (first, sep, named, ifemp, allow reserved), RFC 6570 Appendix A.
    fn table(self) -> (&'static str, &'static str, bool, &'static str, bool) {
        match self {
            Op::Simple => ("", ",", false, "", false),
            Op::Reserved => ("", ",", false, "", true),
            Op::Fragment => ("#", ",", false, "", true),
            Op::Label => (".", ".", false, "", false),
            Op::Path => ("/", "/", false, "", false),
            Op::PathParam => (";", ";", true, "", false),
            Op::Query => ("?", "&", true, "=", false),
            Op::QueryCont => ("&", "&", true, "=", false),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Modifier {
    None,
    Prefix(usize),
    Explode,
}

#[derive(Debug, Clone)]
enum Value {
    Undefined,
    Text(String),
    List(Vec<String>),
    Pairs(Vec<(String, String)>),
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Expression(Op, Vec<(Modifier, Value)>),
}

/// Variables are named by position, so every name is unique within a template.
fn render(template: &[Segment]) -> String {
    let mut out = String::new();
    let mut n = 0;
    for segment in template {
        match segment {
            Segment::Literal(text) => out.push_str(text),
            Segment::Expression(op, vars) => {
                out.push('{');
                out.push_str(op.sigil());
                let specs: Vec<String> = vars
                    .iter()
                    .map(|(modifier, _)| {
                        n += 1;
                        match modifier {
                            Modifier::None => format!("v{n}"),
                            Modifier::Prefix(len) => format!("v{n}:{len}"),
                            Modifier::Explode => format!("v{n}*"),
                        }
                    })
                    .collect();
                out.push_str(&specs.join(","));
                out.push('}');
            }
        }
    }
    out
}

fn is_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~".contains(c)
}

fn is_reserved(c: char) -> bool {
    ":/?#[]@!$&'()*+,;=".contains(c)
}

/// Percent-encodes what the operator does not allow; with reserved allowed, existing
/// `%XX` triplets pass through.
fn encode(value: &str, allow_reserved: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let triplet = c == '%'
            && chars.get(i + 1).is_some_and(char::is_ascii_hexdigit)
            && chars.get(i + 2).is_some_and(char::is_ascii_hexdigit);
        if is_unreserved(c) || (allow_reserved && is_reserved(c)) {
            out.push(c);
        } else if allow_reserved && triplet {
            out.extend(&chars[i..i + 3]);
            i += 3;
            continue;
        } else {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        i += 1;
    }
    out
}

fn expand(template: &[Segment]) -> String {
    let mut out = String::new();
    let mut n = 0;
    for segment in template {
        match segment {
            Segment::Literal(text) => out.push_str(text),
            Segment::Expression(op, vars) => {
                let (first, sep, named, ifemp, reserved) = op.table();
                let enc = |s: &str| encode(s, reserved);
                let mut pieces = Vec::new();
                for (modifier, value) in vars {
                    n += 1;
                    let name = format!("v{n}");
                    let explode = matches!(modifier, Modifier::Explode);
                    let piece = match value {
                        Value::Undefined => continue,
                        Value::List(items) if items.is_empty() => continue,
                        Value::Pairs(pairs) if pairs.is_empty() => continue,
                        Value::Text(s) => {
                            let s: String = match modifier {
                                Modifier::Prefix(len) => s.chars().take(*len).collect(),
                                _ => s.clone(),
                            };
                            match (named, s.is_empty()) {
                                (false, _) => enc(&s),
                                (true, true) => format!("{name}{ifemp}"),
                                (true, false) => format!("{name}={}", enc(&s)),
                            }
                        }
                        Value::List(items) if !explode => {
                            let joined: Vec<String> = items.iter().map(|i| enc(i)).collect();
                            let joined = joined.join(",");
                            if named {
                                format!("{name}={joined}")
                            } else {
                                joined
                            }
                        }
                        Value::List(items) => {
                            let each: Vec<String> = items
                                .iter()
                                .map(|item| match (named, item.is_empty()) {
                                    (false, _) => enc(item),
                                    (true, true) => format!("{name}{ifemp}"),
                                    (true, false) => format!("{name}={}", enc(item)),
                                })
                                .collect();
                            each.join(sep)
                        }
                        Value::Pairs(pairs) if !explode => {
                            let joined: Vec<String> = pairs
                                .iter()
                                .map(|(k, v)| format!("{},{}", enc(k), enc(v)))
                                .collect();
                            let joined = joined.join(",");
                            if named {
                                format!("{name}={joined}")
                            } else {
                                joined
                            }
                        }
                        Value::Pairs(pairs) => {
                            let each: Vec<String> = pairs
                                .iter()
                                .map(|(k, v)| match (named, v.is_empty()) {
                                    (true, true) => format!("{}{ifemp}", enc(k)),
                                    _ => format!("{}={}", enc(k), enc(v)),
                                })
                                .collect();
                            each.join(sep)
                        }
                    };
                    pieces.push(piece);
                }
                if !pieces.is_empty() {
                    out.push_str(first);
                    out.push_str(&pieces.join(sep));
                }
            }
        }
    }
    out
}

/// The compiled selector, within a budget far above any generated template's size: these
/// properties are about what matches, not about what compiling may cost.
fn selector(template: &str) -> TopicMatcher {
    let mut budget = MatcherBudget::new(MatcherLimits {
        matcher_bytes: 256 << 20,
        subscriber_bytes: 256 << 20,
    });
    TopicMatcher::compile(
        &TopicSpec::new(MatcherKind::Selector, template),
        R,
        &mut budget,
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

/// Characters RFC 6570 admits in literals (none of them is ever produced by encoding but
/// what a literal may hold anyway).
fn literal_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => proptest::char::range('a', 'z').prop_map(String::from),
        2 => proptest::sample::select(vec!['-', '.', '_', '~', '0', '9', 'Z']).prop_map(String::from),
        3 => proptest::sample::select(":/?#[]@!$&'()*+,;=".chars().collect::<Vec<_>>())
            .prop_map(String::from),
        1 => Just("é".to_string()),
        1 => Just("%2F".to_string()),
    ];
    proptest::collection::vec(piece, 1..6).prop_map(|p| p.concat())
}

/// Values of every sort: reserved characters, spaces, `%`, triplets, non-ASCII.
fn value_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => proptest::char::range('a', 'z').prop_map(String::from),
        2 => proptest::sample::select(":/?#[]@!$&'()*+,;=".chars().collect::<Vec<_>>())
            .prop_map(String::from),
        1 => Just(" ".to_string()),
        1 => Just("%".to_string()),
        1 => Just("%41".to_string()),
        1 => Just("é".to_string()),
        1 => Just("😀".to_string()),
        1 => Just("\u{200B}".to_string()),
    ];
    proptest::collection::vec(piece, 0..6).prop_map(|p| p.concat())
}

fn variable() -> impl Strategy<Value = (Modifier, Value)> {
    let modifier = prop_oneof![
        3 => Just(Modifier::None),
        1 => (1usize..12).prop_map(Modifier::Prefix),
        2 => Just(Modifier::Explode),
    ];
    modifier.prop_flat_map(|modifier| {
        let text = value_text().prop_map(Value::Text);
        let value = match modifier {
            // A prefix applies to strings only (RFC 6570 §2.4.1).
            Modifier::Prefix(_) => prop_oneof![1 => Just(Value::Undefined), 4 => text].boxed(),
            _ => prop_oneof![
                1 => Just(Value::Undefined),
                3 => text,
                2 => proptest::collection::vec(value_text(), 0..4).prop_map(Value::List),
                2 => proptest::collection::vec((value_text(), value_text()), 0..4)
                    .prop_map(Value::Pairs),
            ]
            .boxed(),
        };
        (Just(modifier), value)
    })
}

fn segment() -> impl Strategy<Value = Segment> {
    prop_oneof![
        literal_text().prop_map(Segment::Literal),
        (
            proptest::sample::select(Op::ALL.to_vec()),
            proptest::collection::vec(variable(), 1..4)
        )
            .prop_map(|(op, vars)| Segment::Expression(op, vars)),
    ]
}

fn template() -> impl Strategy<Value = Vec<Segment>> {
    proptest::collection::vec(segment(), 1..6)
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_expansion_matches_its_template(t in template()) {
        let text = render(&t);
        let topic = expand(&t);
        prop_assert!(selector(&text).matches(&topic), "{} vs {}", text, topic);
    }

    #[test]
    fn a_character_no_expansion_can_hold_is_a_near_miss(
        t in template(),
        at in any::<proptest::sample::Index>(),
        c in proptest::sample::select(vec![' ', '"', '<', '>', '\\', '^', '`', '|']),
    ) {
        let text = render(&t);
        prop_assume!(text != "*");
        let mut topic = expand(&t);
        let boundaries: Vec<usize> = (0..=topic.len()).filter(|&i| topic.is_char_boundary(i)).collect();
        topic.insert(*at.get(&boundaries), c);
        prop_assert!(!selector(&text).matches(&topic), "{} vs {}", text, topic);
    }

    #[test]
    fn a_changed_leading_literal_is_a_near_miss(
        lead in "[a-z]{1,4}",
        rest in template(),
        swap in proptest::char::range('a', 'z'),
    ) {
        let mut t = vec![Segment::Literal(lead.clone())];
        t.extend(rest);
        let text = render(&t);
        let topic = expand(&t);
        let first = topic.chars().next().unwrap();
        let other = if swap == first { 'Z' } else { swap };
        let topic = format!("{other}{}", &topic[first.len_utf8()..]);
        prop_assert!(!selector(&text).matches(&topic), "{} vs {}", text, topic);
    }

    #[test]
    fn a_value_longer_than_its_prefix_is_a_near_miss(
        op in proptest::sample::select(Op::ALL.to_vec()),
        len in 1usize..20,
        letters in "[a-z]{40}",
    ) {
        let fits = vec![Segment::Expression(op, vec![(Modifier::Prefix(len), Value::Text(letters[..len].into()))])];
        let text = render(&fits);
        prop_assert!(selector(&text).matches(&expand(&fits)), "{}", text);
        // The same template, expanded as if the prefix were one longer.
        let over = vec![Segment::Expression(op, vec![(Modifier::Prefix(len + 1), Value::Text(letters.clone()))])];
        let topic = expand(&over);
        prop_assert!(!selector(&text).matches(&topic), "{} vs {}", text, topic);
    }

    #[test]
    fn a_raw_reserved_character_in_a_simple_value_is_a_near_miss(
        before in "[a-zA-Z0-9._~-]{0,6}",
        after in "[a-zA-Z0-9._~-]{0,6}",
        reserved in proptest::sample::select(":/?#[]@!$&'()*+;=".chars().collect::<Vec<_>>()),
    ) {
        let topic = format!("https://example.com/books/{before}{reserved}{after}/x");
        prop_assert!(!selector("https://example.com/books/{id}/x").matches(&topic), "{}", topic);
    }
}
