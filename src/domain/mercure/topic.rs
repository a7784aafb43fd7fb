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

/// Appends `text` to a filter's class, length-prefixed (`{len}:{text};`): a class made of
/// such pieces reads back one way only.
pub fn write_class_text(out: &mut String, text: &str) {
    out.push_str(&format!("{}:{text};", text.len()));
}

impl TopicSpec {
    /// Appends the spec to a filter's class: its kind and its text, length-prefixed, so
    /// that no two lists of specs write the same text.
    pub fn write_class(&self, out: &mut String) {
        out.push_str(&format!("{:?}:", self.kind));
        write_class_text(out, &self.text);
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
mod tests;
