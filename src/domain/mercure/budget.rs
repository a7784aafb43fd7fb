//! What a subscriber's matchers may cost (§5, §6.2): every regular expression behind a
//! URL pattern or a URI template is built within a byte allowance, so that no text a
//! client sends (a query's matchers, a token's selectors) can make the hub spend more than
//! a bounded amount of time and memory on it.
//!
//! Three bounds, all in bytes of compiled form (the regex engine's own count of what it
//! holds, plus the scratch space one search needs):
//! - one matcher ([`MatcherLimits::matcher_bytes`]), past which it is refused by name;
//! - one subscriber ([`MatcherLimits::subscriber_bytes`]): its query's matchers and its
//!   token's together;
//! - the whole hub (the hub's own setting), checked by the hub when it seats a subscriber.
//!
//! Building stops as soon as an allowance is spent, so refusing a pattern costs about as
//! much as building one within the allowance: the compile time is bounded along with the
//! size. Expressions run on a Pike VM only (no lazy DFA, no backtracker), whose scratch
//! space is proportional to the compiled program and is counted here, so what a subscriber
//! holds is what was counted.

use std::cell::Cell;

use regex_automata::meta::{self, Regex};
use regex_automata::util::captures::Captures;
use regex_automata::Input;

/// The per-matcher and per-subscriber bounds (`MERCURE_MATCHER_BYTES`,
/// `MERCURE_SUBSCRIBER_MATCHER_BYTES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatcherLimits {
    pub matcher_bytes: usize,
    pub subscriber_bytes: usize,
}

impl Default for MatcherLimits {
    /// An ordinary URL pattern takes about 40 KiB (an expression per URL component), a
    /// template 6 to 60 KiB; a Unicode class repeated 400 times takes megabytes.
    fn default() -> Self {
        MatcherLimits {
            matcher_bytes: 256 * 1024,
            subscriber_bytes: 1024 * 1024,
        }
    }
}

/// What compiling one subscriber's (or one token's) matchers has spent so far.
#[derive(Debug, Clone)]
pub struct MatcherBudget {
    limits: MatcherLimits,
    used: usize,
}

/// Which bound a matcher ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overrun {
    /// The matcher alone needs more than [`MatcherLimits::matcher_bytes`].
    Matcher { max: usize },
    /// It fits alone, but not beside the subscriber's other matchers.
    Subscriber { max: usize },
}

impl MatcherBudget {
    pub fn new(limits: MatcherLimits) -> MatcherBudget {
        MatcherBudget { limits, used: 0 }
    }

    /// Bytes spent so far.
    pub fn used(&self) -> usize {
        self.used
    }

    pub fn limits(&self) -> MatcherLimits {
        self.limits
    }

    /// Runs `build` (which builds expressions through [`Allowance::regex`]) within what is
    /// left for one matcher, and charges what it spent.
    pub(super) fn charge<T>(
        &mut self,
        build: impl FnOnce(&mut Allowance) -> Result<T, BuildFailure>,
    ) -> Result<(T, usize), ChargeError> {
        let left = self.limits.subscriber_bytes.saturating_sub(self.used);
        let mut allowance = Allowance {
            left: self.limits.matcher_bytes.min(left),
            spent: 0,
        };
        match build(&mut allowance) {
            Ok(value) => {
                self.used += allowance.spent;
                Ok((value, allowance.spent))
            }
            Err(BuildFailure::Syntax) => Err(ChargeError::Syntax),
            Err(BuildFailure::TooLarge) if left < self.limits.matcher_bytes => {
                Err(ChargeError::Over(Overrun::Subscriber {
                    max: self.limits.subscriber_bytes,
                }))
            }
            Err(BuildFailure::TooLarge) => Err(ChargeError::Over(Overrun::Matcher {
                max: self.limits.matcher_bytes,
            })),
        }
    }
}

/// Why a charged build failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChargeError {
    Syntax,
    Over(Overrun),
}

/// Why an expression could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BuildFailure {
    /// Not an expression the engine reads.
    Syntax,
    /// It needs more than the allowance left.
    TooLarge,
}

/// What every compiled expression holds besides its program and scratch space (the
/// regex's shared parts, its pool, the pattern text), counted once per expression.
const REGEX_OVERHEAD: usize = 2048;

/// The bytes one matcher may still spend.
#[derive(Debug)]
pub(super) struct Allowance {
    left: usize,
    spent: usize,
}

impl Allowance {
    /// The bytes still to spend.
    pub(super) fn left(&self) -> usize {
        self.left
    }

    /// Builds `pattern` within what is left, and takes what it holds from it: the
    /// compiled program, and as much again for the Pike VM's scratch space (a few slots
    /// per state of the program, made on the first search and kept for the next).
    pub(super) fn regex(&mut self, pattern: &str) -> Result<Bounded, BuildFailure> {
        let program = self.left / 2;
        let config = meta::Config::new()
            .nfa_size_limit(Some(program))
            .onepass(false)
            .hybrid(false)
            .dfa(false)
            .backtrack(false);
        let regex = Regex::builder()
            .configure(config)
            .build(pattern)
            .map_err(|e| match e.size_limit() {
                Some(_) => BuildFailure::TooLarge,
                None => BuildFailure::Syntax,
            })?;
        let cost = regex
            .memory_usage()
            .saturating_mul(2)
            .saturating_add(REGEX_OVERHEAD);
        if cost > self.left {
            return Err(BuildFailure::TooLarge);
        }
        self.left -= cost;
        self.spent += cost;
        Ok(Bounded {
            pattern: pattern.to_string(),
            regex,
        })
    }
}

/// A compiled expression whose cost was counted.
#[derive(Debug, Clone)]
pub struct Bounded {
    pattern: String,
    regex: Regex,
}

impl Bounded {
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }

    /// The capture groups of the first match (without the whole match), or `None`.
    pub fn captures<'t>(&self, text: &'t str) -> Option<Vec<Option<&'t str>>> {
        let mut caps: Captures = self.regex.create_captures();
        self.regex.search_captures(&Input::new(text), &mut caps);
        if !caps.is_match() {
            return None;
        }
        Some(
            (1..caps.group_len())
                .map(|i| caps.get_group(i).map(|span| &text[span]))
                .collect(),
        )
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

/// An allowance lent to code that builds expressions through a trait with no room for
/// one (the `urlpattern` crate's), and whether a build ran out of it or failed at all.
#[derive(Debug, Clone, Copy)]
struct Lent {
    left: usize,
    spent: usize,
    overrun: bool,
    failed: bool,
}

/// What the builds of one lent call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lending {
    /// Every expression was built.
    Built,
    /// One ran out of allowance.
    Overrun,
    /// One did not parse.
    Failed,
}

thread_local! {
    /// The allowance lent for one [`with_lent`] call (the runtime is single-threaded;
    /// native tests run each on its own thread).
    static LENT: Cell<Option<Lent>> = const { Cell::new(None) };
}

/// Runs `compile` with `allowance` lent to the expressions it builds through
/// [`build_lent`]; what they spend is taken from it. Also says what the builds met: the
/// `urlpattern` crate keeps some failed builds to itself (a matcher it builds beside a
/// component's expression), so a compile that returns a pattern may still hold one that
/// can never match; the caller refuses it.
pub(super) fn with_lent<T>(allowance: &mut Allowance, compile: impl FnOnce() -> T) -> (T, Lending) {
    LENT.set(Some(Lent {
        left: allowance.left,
        spent: 0,
        overrun: false,
        failed: false,
    }));
    let value = compile();
    // The loan is taken back whatever `compile` did; a missing one counts as spent.
    let lent = LENT.take().unwrap_or(Lent {
        left: 0,
        spent: allowance.left,
        overrun: true,
        failed: true,
    });
    allowance.left = lent.left;
    allowance.spent += lent.spent;
    let lending = match (lent.overrun, lent.failed) {
        (true, _) => Lending::Overrun,
        (false, true) => Lending::Failed,
        (false, false) => Lending::Built,
    };
    (value, lending)
}

/// Builds `pattern` within the lent allowance; with none lent, builds nothing.
pub(super) fn build_lent(pattern: &str) -> Result<Bounded, ()> {
    let Some(mut lent) = LENT.get() else {
        return Err(());
    };
    let mut allowance = Allowance {
        left: lent.left,
        spent: 0,
    };
    let built = allowance.regex(pattern);
    lent.left = allowance.left;
    lent.spent += allowance.spent;
    lent.overrun |= built.as_ref().err() == Some(&BuildFailure::TooLarge);
    lent.failed |= built.is_err();
    LENT.set(Some(lent));
    built.map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(matcher: usize, subscriber: usize) -> MatcherLimits {
        MatcherLimits {
            matcher_bytes: matcher,
            subscriber_bytes: subscriber,
        }
    }

    #[test]
    fn an_expression_within_the_allowance_is_built_and_charged() {
        let mut budget = MatcherBudget::new(MatcherLimits::default());
        let (regex, cost) = budget.charge(|a| a.regex(r"^/books/([^/]+?)$")).unwrap();
        assert!(cost > 0 && cost < 16 * 1024, "{cost}");
        assert_eq!(budget.used(), cost);
        assert_eq!(regex.captures("/books/12"), Some(vec![Some("12")]));
        assert_eq!(regex.captures("/films/12"), None);
    }

    #[test]
    fn a_huge_repetition_is_refused_as_too_large_for_one_matcher() {
        let mut budget = MatcherBudget::new(MatcherLimits::default());
        let err = budget
            .charge(|a| a.regex(r"^(?:[\p{L}\p{N}]{400})$"))
            .unwrap_err();
        assert_eq!(err, ChargeError::Over(Overrun::Matcher { max: 256 * 1024 }));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn matchers_that_fit_alone_run_out_of_the_subscribers_allowance_together() {
        let mut budget = MatcherBudget::new(limits(128 * 1024, 200 * 1024));
        // A Unicode class of letters and digits, twice, is about 70 KB compiled.
        let pattern = r"^(?:[\p{L}\p{N}]{2})$";
        budget.charge(|a| a.regex(pattern)).unwrap();
        let err = loop {
            match budget.charge(|a| a.regex(pattern)) {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(
            err,
            ChargeError::Over(Overrun::Subscriber { max: 200 * 1024 })
        );
        assert!(budget.used() <= 200 * 1024);
    }

    #[test]
    fn bad_syntax_is_not_a_size_error() {
        let mut budget = MatcherBudget::new(MatcherLimits::default());
        assert_eq!(
            budget.charge(|a| a.regex(r"(")).unwrap_err(),
            ChargeError::Syntax
        );
    }
}
