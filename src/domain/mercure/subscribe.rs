//! The subscribe query (§6.1, §6.2, §6.9): which matchers a connection listens with, and
//! where it resumes. (Its `authorization` parameters, a token source, §3.1 b, are the token
//! finder's to read.)

use std::fmt;

use super::budget::MatcherBudget;
use super::topic::{
    check_matcher_text, check_syntax, MatcherError, MatcherKind, TopicMatcher, TopicSpec,
};
use super::MAX_MATCHERS;
use crate::domain::form;

/// A parsed and checked subscribe query. Its matchers are checked, not compiled: the hub's
/// object compiles them ([`compile`]), where they are used.
#[derive(Debug, Clone)]
pub struct SubscribeQuery {
    specs: Vec<TopicSpec>,
    last_event_id: Option<String>,
    last_event_id_v0: Option<String>,
}

/// Why a subscribe query is refused (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// A parameter's name or value does not decode to UTF-8.
    NotUtf8 {
        field: String,
    },
    /// A parameter in the reserved `match` namespace that names no matcher type.
    UnknownMatchParameter {
        name: String,
    },
    NoMatcher,
    TooManyMatchers,
    MatcherTooLong,
    MatcherControlCharacter,
    InvalidUrlPattern,
    /// The matcher at `position` (from 1, in the query's order) compiles to more than a
    /// bound allows.
    MatcherTooComplex {
        position: usize,
        spec: TopicSpec,
        reason: MatcherError,
    },
}

impl std::error::Error for QueryError {}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::NotUtf8 { field } => {
                write!(f, "query parameter {field:?} is not valid UTF-8")
            }
            QueryError::UnknownMatchParameter { name } => {
                write!(f, "unknown topic matcher parameter {name:?}")
            }
            QueryError::NoMatcher => {
                f.write_str(r#"Missing "topic", "match" or "match_urlpattern" parameter"#)
            }
            QueryError::TooManyMatchers => f.write_str("too many matchers (at most 100)"),
            QueryError::MatcherTooLong => f.write_str("a matcher is longer than 4096 bytes"),
            QueryError::MatcherControlCharacter => {
                f.write_str("a matcher contains a control character")
            }
            QueryError::InvalidUrlPattern => f.write_str("invalid URL pattern"),
            QueryError::MatcherTooComplex {
                position,
                spec,
                reason,
            } => write!(
                f,
                "matcher {position} ({}={}) refused: {reason}",
                parameter_name(spec.kind),
                shortened(&spec.text)
            ),
        }
    }
}

/// The kind a matcher parameter's name selects; `None` for names outside the matcher
/// parameters. Names are case-sensitive.
fn matcher_kind(name: &str) -> Option<MatcherKind> {
    match name {
        "topic" => Some(MatcherKind::Selector),
        "match" | "match_exact" => Some(MatcherKind::Exact),
        "match_urlpattern" => Some(MatcherKind::UrlPattern),
        _ => None,
    }
}

/// The query parameter that writes a matcher of `kind`.
fn parameter_name(kind: MatcherKind) -> &'static str {
    match kind {
        MatcherKind::Selector => "topic",
        MatcherKind::Exact => "match",
        MatcherKind::UrlPattern => "match_urlpattern",
    }
}

/// At most 80 characters of `text`, for an error line.
fn shortened(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

/// The reserved `match` namespace: names starting with `match`, ASCII case-insensitively.
fn in_match_namespace(name: &str) -> bool {
    name.as_bytes()
        .get(..5)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"match"))
}

impl SubscribeQuery {
    /// Parses a query string (without or with its leading `?`), decoded like a form;
    /// `base` is R, for URL patterns. Each matcher parameter is one subscription, in
    /// order; unknown parameters outside the `match` namespace are ignored.
    pub fn parse(query: &str, base: &str) -> Result<SubscribeQuery, QueryError> {
        let query = query.strip_prefix('?').unwrap_or(query);
        let pairs =
            form::pairs(query.as_bytes()).map_err(|e| QueryError::NotUtf8 { field: e.field })?;
        let mut parsed = SubscribeQuery {
            specs: Vec::new(),
            last_event_id: None,
            last_event_id_v0: None,
        };
        let mut specs = Vec::new();
        for (name, value) in pairs {
            if let Some(kind) = matcher_kind(&name) {
                specs.push(TopicSpec::new(kind, value));
                continue;
            }
            match name.as_str() {
                _ if in_match_namespace(&name) => {
                    return Err(QueryError::UnknownMatchParameter { name })
                }
                "last_event_id" => {
                    parsed.last_event_id.get_or_insert(value);
                }
                "lastEventID" => {
                    parsed.last_event_id_v0.get_or_insert(value);
                }
                _ => {}
            }
        }
        if specs.is_empty() {
            return Err(QueryError::NoMatcher);
        }
        if specs.len() > MAX_MATCHERS {
            return Err(QueryError::TooManyMatchers);
        }
        for spec in &specs {
            check_matcher_text(&spec.text)
                .and_then(|()| check_syntax(spec, base))
                .map_err(|e| query_error(e, 0, spec))?;
        }
        parsed.specs = specs;
        Ok(parsed)
    }

    /// The subscriptions as written, one per matcher parameter, in the query's order.
    pub fn specs(&self) -> &[TopicSpec] {
        &self.specs
    }

    /// The cursor to resume after (§6.9): the `Last-Event-ID` header if non-empty, else
    /// `last_event_id`, else `lastEventID` (the first occurrence of each; empty values
    /// count as absent). `None`: no replay.
    pub fn cursor<'a>(&'a self, last_event_id_header: Option<&'a str>) -> Option<&'a str> {
        [
            last_event_id_header,
            self.last_event_id.as_deref(),
            self.last_event_id_v0.as_deref(),
        ]
        .into_iter()
        .flatten()
        .find(|id| !id.is_empty())
    }
}

/// Compiles a subscriber's matchers (checked by [`SubscribeQuery::parse`]), in order,
/// charging `budget`; the first that cannot be compiled is named in the error.
pub fn compile(
    specs: &[TopicSpec],
    base: &str,
    budget: &mut MatcherBudget,
) -> Result<Vec<TopicMatcher>, QueryError> {
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            TopicMatcher::compile(spec, base, budget).map_err(|e| query_error(e, i + 1, spec))
        })
        .collect()
}

fn query_error(e: MatcherError, position: usize, spec: &TopicSpec) -> QueryError {
    match e {
        MatcherError::TooLong => QueryError::MatcherTooLong,
        MatcherError::ControlCharacter => QueryError::MatcherControlCharacter,
        MatcherError::InvalidUrlPattern | MatcherError::InvalidBase => {
            QueryError::InvalidUrlPattern
        }
        MatcherError::TooComplex(_) => QueryError::MatcherTooComplex {
            position,
            spec: spec.clone(),
            reason: e,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mercure::budget::MatcherLimits;

    const R: &str = "http://127.0.0.1:8787/.well-known/mercure";

    fn parse(q: &str) -> Result<SubscribeQuery, QueryError> {
        SubscribeQuery::parse(q, R)
    }

    fn specs(q: &str) -> Vec<(MatcherKind, String)> {
        parse(q)
            .unwrap()
            .specs()
            .iter()
            .map(|s| (s.kind, s.text.clone()))
            .collect()
    }

    fn matchers(q: &SubscribeQuery) -> Vec<TopicMatcher> {
        let mut budget = MatcherBudget::new(MatcherLimits::default());
        compile(q.specs(), R, &mut budget).unwrap()
    }

    #[test]
    fn each_matcher_parameter_is_one_subscription_in_order() {
        assert_eq!(
            specs("topic=a&match=b&match_exact=c&match_urlpattern=https%3A%2F%2Fexample.com%2F%3Aid&topic=a"),
            vec![
                (MatcherKind::Selector, "a".into()),
                (MatcherKind::Exact, "b".into()),
                (MatcherKind::Exact, "c".into()),
                (MatcherKind::UrlPattern, "https://example.com/:id".into()),
                (MatcherKind::Selector, "a".into()),
            ]
        );
    }

    #[test]
    fn the_query_is_decoded_like_a_form() {
        assert_eq!(
            specs("?topic=a+b%2Bc"),
            vec![(MatcherKind::Selector, "a b+c".into())]
        );
        assert_eq!(
            specs("topic=https://example.com/books/{id}"),
            vec![(
                MatcherKind::Selector,
                "https://example.com/books/{id}".into()
            )]
        );
    }

    #[test]
    fn compiled_matchers_select_topics() {
        let q = parse("topic=https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D&match_urlpattern=/r/:x")
            .unwrap();
        let matchers = matchers(&q);
        assert!(matchers[0].matches("https://example.com/books/1"));
        assert!(matchers[1].matches("/r/2"));
    }

    #[test]
    fn an_unknown_parameter_in_the_match_namespace_is_refused_even_beside_valid_ones() {
        for name in [
            "match_regex",
            "Match",
            "MATCH_EXACT",
            "matchx",
            "match_",
            "Match_urlpattern",
            "match_Exact",
        ] {
            assert_eq!(
                parse(&format!("match=a&{name}=b")).unwrap_err(),
                QueryError::UnknownMatchParameter { name: name.into() },
                "{name}"
            );
        }
    }

    #[test]
    fn other_unknown_parameters_are_ignored() {
        assert_eq!(
            specs("topic=a&Topic=b&foo=c&matc=d&access_token=x").len(),
            1
        );
    }

    #[test]
    fn a_query_without_a_matcher_is_refused() {
        assert_eq!(parse("").unwrap_err(), QueryError::NoMatcher);
        assert_eq!(
            parse("lastEventID=x&authorization=t").unwrap_err(),
            QueryError::NoMatcher
        );
    }

    #[test]
    fn a_hundred_matchers_are_allowed_and_more_are_refused() {
        let q = |n: usize| {
            (0..n)
                .map(|i| format!("match=t{i}"))
                .collect::<Vec<_>>()
                .join("&")
        };
        assert_eq!(parse(&q(100)).unwrap().specs().len(), 100);
        assert_eq!(parse(&q(101)).unwrap_err(), QueryError::TooManyMatchers);
    }

    #[test]
    fn a_matcher_longer_than_4096_bytes_is_refused() {
        assert!(parse(&format!("topic={}", "a".repeat(4096))).is_ok());
        assert_eq!(
            parse(&format!("topic={}", "a".repeat(4097))).unwrap_err(),
            QueryError::MatcherTooLong
        );
        // Counted in bytes once decoded: 2049 two-byte characters.
        assert_eq!(
            parse(&format!("match={}", "%C3%A9".repeat(2049))).unwrap_err(),
            QueryError::MatcherTooLong
        );
    }

    #[test]
    fn a_matcher_with_a_control_character_is_refused() {
        for value in [
            "a%0Ab",
            "%00",
            "a%7F",
            "a%C2%80",
            "a%E2%80%8B",
            "%EF%BB%BFa",
        ] {
            for name in ["topic", "match", "match_urlpattern"] {
                assert_eq!(
                    parse(&format!("{name}={value}")).unwrap_err(),
                    QueryError::MatcherControlCharacter,
                    "{name}={value}"
                );
            }
        }
    }

    #[test]
    fn an_unparsable_url_pattern_is_refused() {
        assert_eq!(
            parse("match_urlpattern=https%3A%2F%2Fexample.com%2F(").unwrap_err(),
            QueryError::InvalidUrlPattern
        );
        // The same text is a fine exact matcher or selector.
        assert!(
            parse("match=https%3A%2F%2Fexample.com%2F(&topic=https%3A%2F%2Fexample.com%2F(")
                .is_ok()
        );
    }

    #[test]
    fn a_query_that_is_not_utf8_is_refused() {
        assert_eq!(
            parse("topic=%FF").unwrap_err(),
            QueryError::NotUtf8 {
                field: "topic".into()
            }
        );
    }

    #[test]
    fn the_cursor_is_the_header_then_last_event_id_then_last_event_id_0x() {
        let q = parse("topic=a&lastEventID=v0&last_event_id=v1").unwrap();
        assert_eq!(q.cursor(Some("header")), Some("header"));
        assert_eq!(q.cursor(Some("")), Some("v1"));
        assert_eq!(q.cursor(None), Some("v1"));
        let q = parse("topic=a&lastEventID=v0").unwrap();
        assert_eq!(q.cursor(None), Some("v0"));
        assert_eq!(parse("topic=a").unwrap().cursor(None), None);
        assert_eq!(parse("topic=a&last_event_id=").unwrap().cursor(None), None);
        assert_eq!(
            parse("topic=a&lastEventID=earliest").unwrap().cursor(None),
            Some("earliest")
        );
    }

    #[test]
    fn the_first_of_a_repeated_cursor_wins() {
        let q = parse("topic=a&last_event_id=1&last_event_id=2").unwrap();
        assert_eq!(q.cursor(None), Some("1"));
    }

    /// The probe's matcher: a Unicode class repeated 400 times.
    const HEAVY: &str =
        "match_urlpattern=https%3A%2F%2Fex.test%2F%3Aa(%5B%5Cp%7BL%7D%5Cp%7BN%7D%5D%7B400%7D)";

    #[test]
    fn a_heavy_url_pattern_passes_the_cheap_check_and_is_refused_by_name_when_compiled() {
        let q = parse(&[HEAVY; 20].join("&")).unwrap();
        let mut budget = MatcherBudget::new(MatcherLimits::default());
        let err = compile(q.specs(), R, &mut budget).unwrap_err();
        let QueryError::MatcherTooComplex { position, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*position, 1);
        let text = err.to_string();
        assert!(
            text.starts_with("matcher 1 (match_urlpattern=https://ex.test/:a("),
            "{text}"
        );
        assert!(text.contains("more than 262144 bytes"), "{text}");
    }

    #[test]
    fn matchers_that_each_fit_are_refused_together_past_the_subscribers_bound() {
        // A class of letters and digits, twice: tens of KB compiled.
        let one = "match_urlpattern=%2Fa%2F%3Ax(%5B%5Cp%7BL%7D%5Cp%7BN%7D%5D%7B2%7D)";
        let q = parse(&[one; 100].join("&")).unwrap();
        let limits = MatcherLimits {
            matcher_bytes: 256 * 1024,
            subscriber_bytes: 512 * 1024,
        };
        let mut budget = MatcherBudget::new(limits);
        let err = compile(q.specs(), R, &mut budget).unwrap_err();
        let QueryError::MatcherTooComplex { position, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(*position > 1 && *position < 100, "{position}");
        assert!(err.to_string().contains("together"), "{err}");
        assert!(budget.used() <= 512 * 1024);
        // One alone is fine.
        let mut budget = MatcherBudget::new(limits);
        assert!(compile(&q.specs()[..1], R, &mut budget).is_ok());
    }

    #[test]
    fn ordinary_matchers_cost_little() {
        let q = parse("match_urlpattern=https%3A%2F%2Fexample.com%2Fbooks%2F%3Aid&topic=https%3A%2F%2Fexample.com%2F%7Bid%7D&match=x&topic=*").unwrap();
        let mut budget = MatcherBudget::new(MatcherLimits::default());
        let matchers = compile(q.specs(), R, &mut budget).unwrap();
        let costs: Vec<usize> = matchers.iter().map(TopicMatcher::cost).collect();
        assert!(costs[0] > 0 && costs[0] < 64 * 1024, "{costs:?}");
        assert!(costs[1] > 0 && costs[1] < 16 * 1024, "{costs:?}");
        assert_eq!(&costs[2..], [0, 0]);
        assert_eq!(budget.used(), costs.iter().sum::<usize>());
    }
}
