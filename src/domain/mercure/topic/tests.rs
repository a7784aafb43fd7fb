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
