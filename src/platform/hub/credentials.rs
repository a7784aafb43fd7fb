//! Where a Mercure client's token is read (header, then the `authorization` query
//! parameter, then a cookie; the first present is used, never combined), and when a
//! cookie-borne token may be used. Pure, so it is tested natively.

use crate::domain::auth::bearer;
use crate::domain::{form, AllowedOrigins};

/// The query parameter a 0.x token may come in (§3.1 b).
const QUERY_PARAM: &str = "authorization";

/// The cookies a token may come in, in the order they are looked at.
pub const COOKIES: [&str; 2] = ["__Secure-mercure_access_token", "mercureAuthorization"];

/// How the token arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Header,
    Query,
    Cookie,
}

/// A token as presented, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub token: String,
    pub source: Source,
}

/// The request's credentials could not be read (400 `invalid_request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest(pub &'static str);

impl std::fmt::Display for InvalidRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InvalidRequest {}

/// What of a request bears on its token.
#[derive(Debug, Clone, Copy, Default)]
pub struct Carriers<'a> {
    /// The `Authorization` header (repeated ones arrive joined by `, `).
    pub authorization: Option<&'a str>,
    /// The query string (without its `?`).
    pub query: &'a str,
    /// The `Cookie` header.
    pub cookie: Option<&'a str>,
}

/// Finds the token, or `None` when no mechanism is present.
pub fn find_token(carriers: Carriers) -> Result<Option<Presented>, InvalidRequest> {
    if let Some(header) = carriers.authorization {
        // Whatever is wrong with the header, it is unreadable: 400 (§3.1 a, §3.8).
        return bearer(header)
            .map(|token| {
                Some(Presented {
                    token: token.to_string(),
                    source: Source::Header,
                })
            })
            .map_err(|e| InvalidRequest(e.reason()));
    }
    let mut query = form::values(carriers.query, QUERY_PARAM)
        .map_err(|_| InvalidRequest("the authorization parameter is not valid UTF-8"))?;
    if query.len() > 1 {
        return Err(InvalidRequest("the authorization parameter is repeated"));
    }
    if let Some(token) = query.pop() {
        return Ok(Some(Presented {
            token,
            source: Source::Query,
        }));
    }
    let cookie = carriers
        .cookie
        .and_then(|header| COOKIES.iter().find_map(|name| cookie_value(header, name)));
    Ok(cookie.map(|token| Presented {
        token: token.to_string(),
        source: Source::Cookie,
    }))
}

/// The value of cookie `name` in a `Cookie` header.
fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name)
            .then(|| v.trim_matches('"'))
            .filter(|v| !v.is_empty())
    })
}

/// Whether a page on `origin` may publish with a cookie-borne token (§3.2): the hub's own
/// origin, or one `MERCURE_CORS_ORIGINS` allows (`origins`), by the one CORS origin rule.
pub fn may_use_cookie(origins: Option<&AllowedOrigins>, origin: &str, hub_origin: &str) -> bool {
    origin.eq_ignore_ascii_case(hub_origin)
        || origins.is_some_and(|origins| origins.allow(Some(origin)).is_some())
}

/// The origin a `POST` claims (`Origin`, else the origin of `Referer`), for deciding
/// whether a cookie-borne token may publish.
pub fn claimed_origin(origin: Option<&str>, referer: Option<&str>) -> Option<String> {
    if let Some(origin) = origin.filter(|o| !o.is_empty() && *o != "null") {
        return Some(origin.to_string());
    }
    let url = worker::Url::parse(referer?).ok()?;
    match url.origin() {
        origin @ worker::url::Origin::Tuple(..) => Some(origin.ascii_serialization()),
        worker::url::Origin::Opaque(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carriers<'a>(
        authorization: Option<&'a str>,
        query: &'a str,
        cookie: Option<&'a str>,
    ) -> Carriers<'a> {
        Carriers {
            authorization,
            query,
            cookie,
        }
    }

    #[test]
    fn the_first_mechanism_present_is_used_and_the_others_ignored() {
        let query = "topic=x&authorization=from-query";
        let cookie = Some("mercureAuthorization=from-cookie");
        let found = |c| find_token(c).unwrap().unwrap();
        assert_eq!(
            found(carriers(Some("Bearer from-header"), query, cookie)),
            Presented {
                token: "from-header".into(),
                source: Source::Header
            }
        );
        assert_eq!(
            found(carriers(None, query, cookie)),
            Presented {
                token: "from-query".into(),
                source: Source::Query
            }
        );
        assert_eq!(
            found(carriers(None, "", cookie)),
            Presented {
                token: "from-cookie".into(),
                source: Source::Cookie
            }
        );
        assert_eq!(find_token(carriers(None, "", None)), Ok(None));
        // A bad header is refused even when a good cookie is there: never combined.
        assert!(find_token(carriers(Some("Basic x"), "", cookie)).is_err());
    }

    #[test]
    fn the_secure_cookie_is_preferred_and_other_cookies_are_ignored() {
        let header = "a=1; mercureAuthorization=old; __Secure-mercure_access_token=new";
        assert_eq!(
            find_token(carriers(None, "", Some(header)))
                .unwrap()
                .unwrap()
                .token,
            "new"
        );
        assert_eq!(
            find_token(carriers(None, "", Some("other=1; mercureAuthorizationX=2"))),
            Ok(None)
        );
    }

    #[test]
    fn a_header_that_is_repeated_of_another_scheme_or_empty_is_an_invalid_request() {
        for bad in [
            "Basic abc",
            "Bearer",
            "Bearer ",
            "Bearer a, Bearer b",
            "Bearer  a",
            "abc",
        ] {
            assert!(
                find_token(carriers(Some(bad), "", None)).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(
            find_token(carriers(Some("bEaReR a.b.c"), "", None))
                .unwrap()
                .unwrap()
                .token,
            "a.b.c"
        );
        let twice = "authorization=a&authorization=b";
        assert!(find_token(carriers(None, twice, None)).is_err());
        // Unreadable is refused, not altered into some other token.
        assert!(find_token(carriers(None, "authorization=%FF", None)).is_err());
    }

    #[test]
    fn the_access_token_parameter_is_no_token_source() {
        assert_eq!(
            find_token(carriers(None, "topic=a&access_token=x", None)),
            Ok(None)
        );
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

    #[test]
    fn a_post_claims_its_origin_or_its_referers() {
        assert_eq!(
            claimed_origin(Some("http://app.test"), Some("http://other.test/x")),
            Some("http://app.test".into())
        );
        assert_eq!(
            claimed_origin(None, Some("http://127.0.0.1:8787/page?q=1")),
            Some("http://127.0.0.1:8787".into())
        );
        assert_eq!(claimed_origin(None, Some("not a url")), None);
        assert_eq!(claimed_origin(None, None), None);
    }
}
