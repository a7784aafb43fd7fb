//! CORS for the hub's routes (`MERCURE_CORS_ORIGINS`), which differs from the channel
//! API's: unset sends nothing, a list echoes the origin with credentials, and the hub's
//! own headers are exposed to pages.

use crate::domain::AllowedOrigins;

pub const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
pub const ALLOW_HEADERS: &str = "Authorization, Cache-Control, Last-Event-ID, Content-Type";
pub const EXPOSE_HEADERS: &str = "Link, Last-Event-ID, Mercure-Last-Event-ID";
pub const MAX_AGE_SECONDS: &str = "86400";

/// The CORS headers of any hub response (streams and errors alike) for `origin`.
pub fn headers(
    origins: Option<&AllowedOrigins>,
    origin: Option<&str>,
) -> Vec<(&'static str, String)> {
    match (origins, origin) {
        (Some(AllowedOrigins::Any), _) => vec![
            ("Access-Control-Allow-Origin", "*".into()),
            ("Access-Control-Expose-Headers", EXPOSE_HEADERS.into()),
        ],
        (Some(AllowedOrigins::List(list)), Some(origin))
            if list.iter().any(|o| o.eq_ignore_ascii_case(origin)) =>
        {
            vec![
                ("Access-Control-Allow-Origin", origin.to_string()),
                ("Access-Control-Allow-Credentials", "true".into()),
                ("Access-Control-Expose-Headers", EXPOSE_HEADERS.into()),
                ("Vary", "Origin".into()),
            ]
        }
        _ => Vec::new(),
    }
}

/// The headers of a preflight's 204 (none of them for an origin that is not allowed).
pub fn preflight_headers(
    origins: Option<&AllowedOrigins>,
    origin: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut found = headers(origins, origin);
    if !found.is_empty() {
        found.extend([
            ("Access-Control-Allow-Methods", ALLOW_METHODS.into()),
            ("Access-Control-Allow-Headers", ALLOW_HEADERS.into()),
            ("Access-Control-Max-Age", MAX_AGE_SECONDS.into()),
        ]);
    }
    found
}

/// Whether a page on `origin` may use a cookie-borne token to publish: the hub's own
/// origin, or one `MERCURE_CORS_ORIGINS` allows.
pub fn may_use_cookie(origins: Option<&AllowedOrigins>, origin: &str, hub_origin: &str) -> bool {
    origin.eq_ignore_ascii_case(hub_origin)
        || match origins {
            Some(AllowedOrigins::Any) => true,
            Some(AllowedOrigins::List(list)) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
            None => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(h: &[(&'static str, String)]) -> Vec<&'static str> {
        h.iter().map(|(n, _)| *n).collect()
    }

    #[test]
    fn unset_sends_nothing_any_sends_a_star_without_credentials() {
        assert!(headers(None, Some("http://a.test")).is_empty());
        let any = headers(Some(&AllowedOrigins::Any), Some("http://a.test"));
        assert_eq!(any[0], ("Access-Control-Allow-Origin", "*".into()));
        assert!(!names(&any).contains(&"Access-Control-Allow-Credentials"));
        assert!(names(&any).contains(&"Access-Control-Expose-Headers"));
    }

    #[test]
    fn a_listed_origin_is_echoed_with_credentials_whatever_its_case() {
        let list = AllowedOrigins::List(vec!["http://App.test:8080".into()]);
        let found = headers(Some(&list), Some("http://app.TEST:8080"));
        assert_eq!(
            found[0],
            ("Access-Control-Allow-Origin", "http://app.TEST:8080".into())
        );
        assert!(found.contains(&("Access-Control-Allow-Credentials", "true".into())));
        assert!(found.contains(&("Vary", "Origin".into())));
        assert!(headers(Some(&list), Some("http://evil.test")).is_empty());
        assert!(headers(Some(&list), None).is_empty());
        assert!(preflight_headers(Some(&list), Some("http://evil.test")).is_empty());
        assert!(names(&preflight_headers(
            Some(&list),
            Some("http://app.test:8080")
        ))
        .contains(&"Access-Control-Allow-Headers"));
    }

    #[test]
    fn cookies_publish_only_from_the_hub_or_an_allowed_origin() {
        let hub = "http://127.0.0.1:8787";
        assert!(may_use_cookie(None, "http://127.0.0.1:8787", hub));
        assert!(!may_use_cookie(None, "http://evil.test", hub));
        assert!(may_use_cookie(
            Some(&AllowedOrigins::Any),
            "http://x.test",
            hub
        ));
        let list = AllowedOrigins::List(vec!["http://app.test".into()]);
        assert!(may_use_cookie(Some(&list), "http://APP.test", hub));
        assert!(!may_use_cookie(Some(&list), "http://evil.test", hub));
    }
}
