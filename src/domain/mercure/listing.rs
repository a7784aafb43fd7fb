//! The subscriptions API's answer (docs/mercure.md §7.5): the document a path names, with
//! the headers every answer carries, or 304 when the client's copy is current. Pure, so
//! the rule is tested natively; the platform only writes it out.

use super::subscriptions::{collection_document, content_type, ApiPath, Subscription};
use super::token::Generation;

/// An answer of the subscriptions API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// 200, or 304 (no body) when `If-None-Match` names the current tag.
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<String>,
}

/// A single-subscription path whose subscription is not (or no longer) active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotListed;

/// The answer to `path` (the request's `raw_path` as received), in `family`, listing the
/// active subscriptions it `selects` from `active`. `base` is R; `last_event_id` the newest
/// kept update's id, or `earliest`. The tag is that id: a subscription event is an update,
/// so any change to what is listed changes it.
pub fn answer(
    path: &ApiPath,
    family: Generation,
    raw_path: &str,
    base: &str,
    last_event_id: &str,
    active: &[Subscription],
    if_none_match: Option<&str>,
) -> Result<Listing, NotListed> {
    let listed: Vec<Subscription> = active.iter().filter(|s| path.selects(s)).cloned().collect();
    let body = match path {
        ApiPath::Single(..) => listed
            .first()
            .ok_or(NotListed)?
            .single_document(last_event_id),
        _ => collection_document(family, raw_path, last_event_id, &listed),
    };
    let quoted = header_quoted(last_event_id);
    let tag = format!("\"{quoted}\"");
    let mut headers = vec![
        (
            "Link",
            format!(
                "<{base}>; rel=\"mercure\"; last-event-id=\"{quoted}\"; type=\"mercure\"; content-type=\"application/json\""
            ),
        ),
        ("ETag", tag.clone()),
        ("Cache-Control", "must-revalidate".to_string()),
    ];
    if if_none_match.is_some_and(|list| names_tag(list, &tag)) {
        return Ok(Listing {
            status: 304,
            headers,
            body: None,
        });
    }
    headers.push(("Content-Type", content_type(family).to_string()));
    Ok(Listing {
        status: 200,
        headers,
        body: Some(body),
    })
}

/// Whether an `If-None-Match` list names `tag` (or is `*`).
fn names_tag(list: &str, tag: &str) -> bool {
    list.split(',').map(str::trim).any(|t| t == tag || t == "*")
}

/// The header-safe form of an id inside a quoted parameter (ids may hold `"` and `\`):
/// those and `%` percent-encoded, so that the form reads back unambiguously.
pub fn header_quoted(id: &str) -> String {
    id.replace('%', "%25")
        .replace('"', "%22")
        .replace('\\', "%5C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mercure::{MatcherKind, TopicSpec};

    const R: &str = "http://h.test/.well-known/mercure";
    const PATH: &str = "/.well-known/mercure/subscriptions";

    fn active() -> Vec<Subscription> {
        ["a", "b"]
            .iter()
            .map(|topic| Subscription {
                spec: TopicSpec::new(MatcherKind::Selector, *topic),
                subscriber: format!("urn:uuid:{topic}"),
                active: true,
                payload: None,
            })
            .collect()
    }

    fn header<'a>(l: &'a Listing, name: &str) -> Option<&'a str> {
        l.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_collection_carries_its_tag_link_and_type() {
        let l = answer(
            &ApiPath::All,
            Generation::V0,
            PATH,
            R,
            "urn:x:1",
            &active(),
            None,
        )
        .unwrap();
        assert_eq!(l.status, 200);
        assert_eq!(header(&l, "ETag"), Some("\"urn:x:1\""));
        assert_eq!(header(&l, "Cache-Control"), Some("must-revalidate"));
        assert_eq!(header(&l, "Content-Type"), Some("application/ld+json"));
        assert_eq!(
            header(&l, "Link"),
            Some("<http://h.test/.well-known/mercure>; rel=\"mercure\"; last-event-id=\"urn:x:1\"; type=\"mercure\"; content-type=\"application/json\"")
        );
        let body: serde_json::Value = serde_json::from_str(l.body.as_deref().unwrap()).unwrap();
        assert_eq!(body["subscriptions"].as_array().unwrap().len(), 2);
        assert_eq!(body["lastEventID"], "urn:x:1");
    }

    #[test]
    fn a_matching_if_none_match_answers_304_with_the_same_tag_and_no_body() {
        for sent in ["\"urn:x:1\"", "W/\"z\", \"urn:x:1\"", "*"] {
            let l = answer(
                &ApiPath::All,
                Generation::V1,
                PATH,
                R,
                "urn:x:1",
                &active(),
                Some(sent),
            )
            .unwrap();
            assert_eq!((l.status, l.body.as_deref()), (304, None), "{sent}");
            assert_eq!(header(&l, "ETag"), Some("\"urn:x:1\""));
            assert_eq!(header(&l, "Content-Type"), None);
        }
        let stale = answer(
            &ApiPath::All,
            Generation::V1,
            PATH,
            R,
            "urn:x:2",
            &active(),
            Some("\"urn:x:1\""),
        )
        .unwrap();
        assert_eq!(stale.status, 200);
        assert_eq!(header(&stale, "Content-Type"), Some("application/json"));
    }

    #[test]
    fn ids_with_quotes_backslashes_and_percents_are_quoted_so_they_read_back() {
        assert_eq!(header_quoted(r#"a"b\c%d"#), "a%22b%5Cc%25d");
        let l = answer(
            &ApiPath::All,
            Generation::V1,
            PATH,
            R,
            r#"x"y"#,
            &active(),
            None,
        )
        .unwrap();
        assert_eq!(header(&l, "ETag"), Some("\"x%22y\""));
        let again = answer(
            &ApiPath::All,
            Generation::V1,
            PATH,
            R,
            r#"x"y"#,
            &active(),
            Some("\"x%22y\""),
        )
        .unwrap();
        assert_eq!(again.status, 304);
    }

    #[test]
    fn a_single_subscription_that_is_not_active_is_not_listed() {
        let gone = ApiPath::Single(
            TopicSpec::new(MatcherKind::Selector, "a"),
            "urn:uuid:gone".into(),
        );
        assert_eq!(
            answer(&gone, Generation::V0, PATH, R, "earliest", &active(), None),
            Err(NotListed)
        );
        let known = ApiPath::parse("/a/urn%3Auuid%3Aa", |id| id == "urn:uuid:a").unwrap();
        let l = answer(&known, Generation::V0, PATH, R, "earliest", &active(), None).unwrap();
        assert!(l.body.unwrap().contains("urn:uuid:a"));
    }
}
