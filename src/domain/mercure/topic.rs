//! Topic matching (§5): what a subscription or a grant selects.
//!
//! A [`TopicSpec`] is the matcher as written (what travels between the Worker and the hub
//! object); a [`TopicMatcher`] is it compiled, ready to test topics. Compiling is charged
//! to a [`MatcherBudget`]; [`check_syntax`] validates without compiling, where a matcher is
//! only passed on.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use url::Url;
use urlpattern::regexp::RegExp;
use urlpattern::{
    RegexSyntax, UrlPattern, UrlPatternInit, UrlPatternMatchInput, UrlPatternOptions,
};

use super::budget::{
    self, Allowance, Bounded, BuildFailure, ChargeError, Lending, MatcherBudget, Overrun,
};
use super::template::{self, TemplateError};
use super::text::has_control;
use super::MAX_MATCHER_BYTES;

/// The value that matches every topic, whatever the matcher's kind.
pub const WILDCARD: &str = "*";

/// How a matcher's text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatcherKind {
    /// 0.x topic selector: `*`, the exact topic, or an RFC 6570 URI template.
    Selector,
    /// 1.0 `exact`: byte-for-byte equality.
    Exact,
    /// 1.0 `urlpattern`: a WHATWG URL Pattern, relative ones resolved against the hub's URL.
    UrlPattern,
}

impl MatcherKind {
    /// The 1.0 `match_type` name; none for a 0.x selector.
    pub fn match_type(self) -> Option<&'static str> {
        match self {
            MatcherKind::Selector => None,
            MatcherKind::Exact => Some("exact"),
            MatcherKind::UrlPattern => Some("urlpattern"),
        }
    }

    /// The kind a 1.0 `match_type` names (case-sensitive), if any.
    pub fn from_match_type(name: &str) -> Option<MatcherKind> {
        match name {
            "exact" => Some(MatcherKind::Exact),
            "urlpattern" => Some(MatcherKind::UrlPattern),
            _ => None,
        }
    }
}

/// A matcher as written: its kind and its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TopicSpec {
    pub kind: MatcherKind,
    pub text: String,
}

impl TopicSpec {
    /// Appends the spec to a filter's class: its kind and its text, length-prefixed, so
    /// that no two lists of specs write the same text.
    pub fn write_class(&self, out: &mut String) {
        out.push_str(&format!(
            "{:?}:{}:{};",
            self.kind,
            self.text.len(),
            self.text
        ));
    }

    pub fn new(kind: MatcherKind, text: impl Into<String>) -> TopicSpec {
        TopicSpec {
            kind,
            text: text.into(),
        }
    }
}

/// Why a matcher cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatcherError {
    /// The URL pattern does not parse (or uses regular-expression syntax the linear-time
    /// engine does not have, such as look-around or back-references).
    InvalidUrlPattern,
    /// The hub URL given as base does not parse as an absolute URL.
    InvalidBase,
    /// Longer than [`MAX_MATCHER_BYTES`].
    TooLong,
    /// Contains a [control character](super::text::is_control).
    ControlCharacter,
    /// Compiled, it would hold more than a bound of [`super::budget`].
    TooComplex(Overrun),
}

impl std::error::Error for MatcherError {}

impl fmt::Display for MatcherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatcherError::InvalidUrlPattern => "invalid URL pattern",
            MatcherError::InvalidBase => "the hub URL is not an absolute URL",
            MatcherError::TooLong => "matcher longer than 4096 bytes",
            MatcherError::ControlCharacter => "matcher contains a control character",
            MatcherError::TooComplex(Overrun::Matcher { max }) => {
                return write!(
                    f,
                    "matcher too complex: compiled it would take more than {max} bytes"
                );
            }
            MatcherError::TooComplex(Overrun::Subscriber { max }) => {
                return write!(
                    f,
                    "matchers too complex together: compiled they would take more than {max} bytes"
                );
            }
        })
    }
}

/// The value rules every matcher from a request or a 1.0 token obeys (§6.2): at most
/// [`MAX_MATCHER_BYTES`] bytes and no control character.
pub fn check_matcher_text(text: &str) -> Result<(), MatcherError> {
    if text.len() > MAX_MATCHER_BYTES {
        Err(MatcherError::TooLong)
    } else if has_control(text) {
        Err(MatcherError::ControlCharacter)
    } else {
        Ok(())
    }
}

/// A compiled matcher. Cloning is cheap (compiled parts are shared).
#[derive(Debug, Clone)]
pub struct TopicMatcher {
    spec: TopicSpec,
    compiled: Compiled,
    /// What its compiled form holds, in bytes, as charged.
    cost: usize,
}

#[derive(Debug, Clone)]
enum Compiled {
    Everything,
    Equal,
    /// Checked, not compiled: matches nothing (see [`TopicMatcher::unbuilt`]).
    Unbuilt,
    /// A selector that is a URI template: equal, or an expansion.
    Template(Arc<Bounded>),
    UrlPattern(Arc<UrlPattern<Bounded>>, Url),
}

impl TopicMatcher {
    /// Compiles `spec`, charging `budget`; `base` is the hub URL R, against which relative
    /// URL patterns and topics are resolved. A selector that is not a template by RFC
    /// 6570's grammar compares exactly. Fails for a URL pattern that does not parse, and
    /// for any matcher whose compiled form exceeds the budget. Value rules
    /// ([`check_matcher_text`]) are the caller's, since 0.x token selectors are exempt.
    pub fn compile(
        spec: &TopicSpec,
        base: &str,
        budget: &mut MatcherBudget,
    ) -> Result<TopicMatcher, MatcherError> {
        if spec.text == WILDCARD || spec.kind == MatcherKind::Exact {
            return Ok(TopicMatcher::cheap(spec, spec.text == WILDCARD));
        }
        if spec.kind == MatcherKind::Selector && !spec.text.contains('{') {
            return Ok(TopicMatcher::cheap(spec, false));
        }
        let base_url = match spec.kind {
            MatcherKind::UrlPattern => {
                Some(Url::parse(base).map_err(|_| MatcherError::InvalidBase)?)
            }
            _ => None,
        };
        let charged = budget.charge(|allowance| match base_url {
            Some(base) => url_pattern(&spec.text, &base, allowance)
                .map(|pattern| Compiled::UrlPattern(Arc::new(pattern), base)),
            None => match template::compile(&spec.text, allowance) {
                Ok(regex) => Ok(Compiled::Template(Arc::new(regex))),
                Err(TemplateError::Syntax) => Ok(Compiled::Equal),
                Err(TemplateError::TooLarge) => Err(BuildFailure::TooLarge),
            },
        });
        match charged {
            Ok((compiled, cost)) => Ok(TopicMatcher {
                spec: spec.clone(),
                compiled,
                cost,
            }),
            Err(ChargeError::Syntax) => Err(MatcherError::InvalidUrlPattern),
            Err(ChargeError::Over(overrun)) => Err(MatcherError::TooComplex(overrun)),
        }
    }

    /// `spec` checked ([`check_syntax`]) but not compiled, for grants that are only passed
    /// on to where they are used: it matches nothing, so a mistaken use denies.
    pub(super) fn unbuilt(spec: &TopicSpec, base: &str) -> Result<TopicMatcher, MatcherError> {
        check_syntax(spec, base)?;
        Ok(TopicMatcher {
            spec: spec.clone(),
            compiled: Compiled::Unbuilt,
            cost: 0,
        })
    }

    /// A matcher that compiles to nothing: everything, or exact equality.
    fn cheap(spec: &TopicSpec, everything: bool) -> TopicMatcher {
        TopicMatcher {
            spec: spec.clone(),
            compiled: if everything {
                Compiled::Everything
            } else {
                Compiled::Equal
            },
            cost: 0,
        }
    }

    /// The bytes its compiled form holds, as charged to its budget.
    pub fn cost(&self) -> usize {
        self.cost
    }

    /// Whether `topic` is selected.
    pub fn matches(&self, topic: &str) -> bool {
        match &self.compiled {
            Compiled::Everything => true,
            Compiled::Equal => self.spec.text == topic,
            Compiled::Unbuilt => false,
            Compiled::Template(regex) => self.spec.text == topic || regex.is_match(topic),
            Compiled::UrlPattern(pattern, base) => {
                match Url::options().base_url(Some(base)).parse(topic) {
                    Ok(url) => pattern
                        .test(UrlPatternMatchInput::Url(url))
                        .unwrap_or(false),
                    Err(_) => false,
                }
            }
        }
    }

    /// Whether any of `topics` is selected.
    pub fn matches_any<S: AsRef<str>>(&self, topics: &[S]) -> bool {
        topics.iter().any(|t| self.matches(t.as_ref()))
    }

    pub fn spec(&self) -> &TopicSpec {
        &self.spec
    }
}

/// Checks `spec` as [`TopicMatcher::compile`] would, without compiling: a URL pattern's
/// syntax and its expressions' syntax (cheap: no program is built). What compiling may
/// still refuse is size ([`MatcherError::TooComplex`]).
pub fn check_syntax(spec: &TopicSpec, base: &str) -> Result<(), MatcherError> {
    if spec.kind != MatcherKind::UrlPattern || spec.text == WILDCARD {
        return Ok(());
    }
    let base = Url::parse(base).map_err(|_| MatcherError::InvalidBase)?;
    let init = UrlPatternInit::parse_constructor_string::<SyntaxOnly>(&spec.text, Some(base))
        .map_err(|_| MatcherError::InvalidUrlPattern)?;
    UrlPattern::<SyntaxOnly>::parse(init, UrlPatternOptions::default())
        .map(|_| ())
        .map_err(|_| MatcherError::InvalidUrlPattern)
}

/// Parses a URL pattern string against `base`, case-sensitively, its expressions built
/// within `allowance` and run on a Pike VM (linear-time).
fn url_pattern(
    text: &str,
    base: &Url,
    allowance: &mut Allowance,
) -> Result<UrlPattern<Bounded>, BuildFailure> {
    let (parsed, lending) = budget::with_lent(allowance, || {
        let init = UrlPatternInit::parse_constructor_string::<Bounded>(text, Some(base.clone()))
            .map_err(|_| ())?;
        UrlPattern::parse(init, UrlPatternOptions::default()).map_err(|_| ())
    });
    // A pattern is used only when every expression in it was built.
    match (parsed, lending) {
        (Ok(pattern), Lending::Built) => Ok(pattern),
        (_, Lending::Overrun) => Err(BuildFailure::TooLarge),
        _ => Err(BuildFailure::Syntax),
    }
}

/// URL patterns' expressions, built within the allowance lent by [`url_pattern`].
impl RegExp for Bounded {
    fn syntax() -> RegexSyntax {
        RegexSyntax::Rust
    }

    fn parse(pattern: &str, _flags: &str, _force_eval: bool) -> Result<Self, ()> {
        budget::build_lent(pattern)
    }

    fn matches<'a>(&self, text: &'a str) -> Option<Vec<Option<&'a str>>> {
        self.captures(text)
    }

    fn pattern_string(&self) -> &str {
        self.pattern()
    }
}

/// An expression only parsed, never compiled: what checking a URL pattern needs.
struct SyntaxOnly(String);

impl RegExp for SyntaxOnly {
    fn syntax() -> RegexSyntax {
        RegexSyntax::Rust
    }

    fn parse(pattern: &str, _flags: &str, _force_eval: bool) -> Result<Self, ()> {
        regex_syntax::parse(pattern).map_err(|_| ())?;
        Ok(SyntaxOnly(pattern.to_string()))
    }

    fn matches<'a>(&self, _text: &'a str) -> Option<Vec<Option<&'a str>>> {
        None
    }

    fn pattern_string(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "http://127.0.0.1:8787/.well-known/mercure";

    fn matcher(kind: MatcherKind, text: &str) -> TopicMatcher {
        compile(&TopicSpec::new(kind, text), R).unwrap()
    }

    fn compile(spec: &TopicSpec, base: &str) -> Result<TopicMatcher, MatcherError> {
        TopicMatcher::compile(spec, base, &mut MatcherBudget::new(Default::default()))
    }

    #[test]
    fn the_wildcard_matches_every_topic_for_every_kind() {
        for kind in [
            MatcherKind::Selector,
            MatcherKind::Exact,
            MatcherKind::UrlPattern,
        ] {
            let m = matcher(kind, "*");
            for topic in ["https://example.com/a", "urn:x", "not a url", "", "*"] {
                assert!(m.matches(topic), "{kind:?} {topic:?}");
            }
        }
    }

    #[test]
    fn a_selector_identical_to_the_topic_matches() {
        let m = matcher(MatcherKind::Selector, "https://example.com/books/1");
        assert!(m.matches("https://example.com/books/1"));
        assert!(!m.matches("https://example.com/books/2"));
        assert!(!m.matches("https://example.com/books/1/"));
    }

    #[test]
    fn a_selector_template_matches_its_expansions_only() {
        let m = matcher(MatcherKind::Selector, "https://example.com/books/{id}");
        assert!(m.matches("https://example.com/books/ab12"));
        assert!(!m.matches("https://example.com/books/a/b"));
        assert!(!m.matches("https://example.com/bar/ab12"));
    }

    #[test]
    fn a_selector_template_also_matches_itself() {
        let m = matcher(MatcherKind::Selector, "https://example.com/books/{id}");
        assert!(m.matches("https://example.com/books/{id}"));
    }

    #[test]
    fn a_selector_with_a_brace_that_is_no_template_compares_exactly() {
        let m = matcher(MatcherKind::Selector, "https://example.com/{a b}");
        assert!(m.matches("https://example.com/{a b}"));
        assert!(!m.matches("https://example.com/x"));
    }

    #[test]
    fn exact_is_byte_equality_without_normalisation() {
        let m = matcher(MatcherKind::Exact, "https://example.com/books/{id}");
        assert!(m.matches("https://example.com/books/{id}"));
        assert!(!m.matches("https://example.com/books/1"));
        let m = matcher(MatcherKind::Exact, "https://example.com/a");
        assert!(!m.matches("https://EXAMPLE.com/a"));
        assert!(!m.matches("https://example.com/%61"));
        let m = matcher(MatcherKind::Exact, "/relative");
        assert!(!m.matches("http://127.0.0.1:8787/relative"));
    }

    #[test]
    fn a_url_pattern_matches_by_the_whatwg_rules() {
        let m = matcher(MatcherKind::UrlPattern, "https://example.com/books/:id");
        assert!(m.matches("https://example.com/books/ab12"));
        assert!(!m.matches("https://example.com/books/a/b"));
        assert!(!m.matches("https://example.com/bar/ab12"));
    }

    #[test]
    fn a_url_pattern_is_case_sensitive_except_in_the_host() {
        let m = matcher(MatcherKind::UrlPattern, "https://example.com/books/:id");
        assert!(!m.matches("https://example.com/BOOKS/1"));
        assert!(m.matches("https://EXAMPLE.com/books/1"));
    }

    #[test]
    fn relative_url_patterns_and_topics_resolve_against_the_hub_url() {
        let m = matcher(
            MatcherKind::UrlPattern,
            "/.well-known/mercure/subscriptions/exact/:topic/:subscriber",
        );
        assert!(m.matches("/.well-known/mercure/subscriptions/exact/a/urn%3Auuid%3A1"));
        assert!(m.matches("http://127.0.0.1:8787/.well-known/mercure/subscriptions/exact/a/b"));
        assert!(!m.matches("https://elsewhere.test/.well-known/mercure/subscriptions/exact/a/b"));
        let absolute = matcher(MatcherKind::UrlPattern, "http://127.0.0.1:8787/books/:id");
        assert!(absolute.matches("/books/1"));
    }

    #[test]
    fn a_topic_that_is_not_a_url_never_matches_a_url_pattern() {
        let m = matcher(MatcherKind::UrlPattern, "https://example.com/*");
        assert!(!m.matches("http://[::1"));
        assert!(!m.matches("https://exa mple.com/x"));
    }

    #[test]
    fn an_unparsable_url_pattern_is_refused() {
        for text in [
            "https://example.com/(",
            "https://example.com/:id(\\d+",
            "https://example.com/(?=a)",
        ] {
            let spec = TopicSpec::new(MatcherKind::UrlPattern, text);
            assert_eq!(
                compile(&spec, R).err(),
                Some(MatcherError::InvalidUrlPattern),
                "{text}"
            );
            assert_eq!(
                check_syntax(&spec, R),
                Err(MatcherError::InvalidUrlPattern),
                "{text}"
            );
        }
    }

    #[test]
    fn a_url_pattern_needs_an_absolute_base() {
        let spec = TopicSpec::new(MatcherKind::UrlPattern, "/x");
        assert_eq!(
            compile(&spec, "not a url").err(),
            Some(MatcherError::InvalidBase)
        );
    }

    #[test]
    fn url_pattern_regexp_groups_run_on_the_linear_time_engine() {
        let m = matcher(MatcherKind::UrlPattern, "https://example.com/:id((?:a+)+b)");
        let evil = format!("https://example.com/{}c", "a".repeat(5000));
        let started = std::time::Instant::now();
        assert!(!m.matches(&evil));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(m.matches("https://example.com/aab"));
    }

    #[test]
    fn matcher_text_rules_refuse_long_values_and_control_characters() {
        assert_eq!(check_matcher_text(&"a".repeat(4096)), Ok(()));
        assert_eq!(
            check_matcher_text(&"a".repeat(4097)),
            Err(MatcherError::TooLong)
        );
        assert_eq!(
            check_matcher_text("a\u{200B}"),
            Err(MatcherError::ControlCharacter)
        );
        assert_eq!(
            check_matcher_text("a\n"),
            Err(MatcherError::ControlCharacter)
        );
    }

    #[test]
    fn kinds_name_their_match_types() {
        assert_eq!(
            MatcherKind::from_match_type("exact"),
            Some(MatcherKind::Exact)
        );
        assert_eq!(
            MatcherKind::from_match_type("urlpattern"),
            Some(MatcherKind::UrlPattern)
        );
        assert_eq!(MatcherKind::from_match_type("Exact"), None);
        assert_eq!(MatcherKind::Selector.match_type(), None);
    }

    #[test]
    fn a_url_pattern_near_its_bound_either_matches_or_is_refused_never_silent() {
        use super::super::budget::MatcherLimits;
        // One class of letters and digits per path segment; tight bounds around its cost.
        let spec = TopicSpec::new(
            MatcherKind::UrlPattern,
            "https://ex.test/:a([\\p{L}\\p{N}])/:b([\\p{L}\\p{N}])",
        );
        let topic = "https://ex.test/x/7";
        let full = matcher(MatcherKind::UrlPattern, &spec.text).cost();
        for bound in (full / 4..=full + 4096).step_by(1024) {
            let limits = MatcherLimits {
                matcher_bytes: bound,
                subscriber_bytes: bound,
            };
            match TopicMatcher::compile(&spec, R, &mut MatcherBudget::new(limits)) {
                Ok(m) => assert!(
                    m.matches(topic),
                    "compiled within {bound} but matches nothing"
                ),
                Err(e) => assert!(matches!(e, MatcherError::TooComplex(_)), "{e:?}"),
            }
        }
    }
}
