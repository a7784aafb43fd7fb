//! CORS for both faces: the header logic lives here once, and each face's rules are a
//! [`Policy`], data: the channel API's ([`CHANNELS`], `ALLOWED_ORIGINS`) and the hub's
//! ([`HUB`], `MERCURE_CORS_ORIGINS`, docs/mercure.md §8).

use worker::{Headers, Response};

use super::error::Error;
use super::http::with_headers;
use crate::domain::{AllowedOrigins, Config};

/// How long a browser may keep a preflight's answer, in seconds.
const MAX_AGE_SECONDS: &str = "86400";

/// What one face tells pages on other origins.
pub struct Policy {
    /// The face's origins setting; `None`: the face sends no CORS header at all.
    pub setting: for<'c> fn(&'c Config) -> Option<&'c AllowedOrigins>,
    /// Whether an echoed origin may send credentials (the hub's cookie tokens).
    pub credentials: bool,
    /// The response headers pages may read besides the simple ones (empty: none).
    pub expose_headers: &'static str,
    pub allow_methods: &'static str,
    pub allow_headers: &'static str,
    /// Whether a preflight from an origin not allowed is refused (403), rather than
    /// answered 204 without CORS headers like any request served all the same.
    pub refuse_foreign_preflight: bool,
}

/// The channel API: every origin by default, no credentials, a foreign preflight refused.
pub const CHANNELS: Policy = Policy {
    setting: |config| Some(&config.allowed_origins),
    credentials: false,
    expose_headers: "",
    allow_methods: "GET, POST, OPTIONS",
    allow_headers: "Authorization, Content-Type, Last-Event-ID",
    refuse_foreign_preflight: true,
};

/// The hub (§8): nothing unless set, a listed origin echoed with credentials, the hub's
/// headers exposed, a foreign origin served without CORS headers (§8.2).
pub const HUB: Policy = Policy {
    setting: |config| config.mercure.cors_origins.as_ref(),
    credentials: true,
    expose_headers: "Link, Last-Event-ID, Mercure-Last-Event-ID",
    allow_methods: "GET, POST, OPTIONS",
    allow_headers: "Authorization, Cache-Control, Last-Event-ID, Content-Type",
    refuse_foreign_preflight: false,
};

impl Policy {
    /// The face's allowed origins, if it sends CORS headers at all.
    pub fn origins<'c>(&self, config: &'c Config) -> Option<&'c AllowedOrigins> {
        (self.setting)(config)
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it is
    /// allowed: `*`, or the origin itself.
    pub fn allowed(&self, config: &Config, origin: Option<&str>) -> Option<String> {
        self.origins(config)?.allow(origin)
    }

    /// The CORS headers of any response (streams and errors alike), given what
    /// [`Policy::allowed`] said. An echoed origin also needs `Vary: Origin`.
    pub fn headers(&self, allowed: Option<String>) -> Vec<(&'static str, String)> {
        let Some(allowed) = allowed else {
            return Vec::new();
        };
        let echoed = allowed != "*";
        let mut headers = vec![("Access-Control-Allow-Origin", allowed)];
        if echoed && self.credentials {
            headers.push(("Access-Control-Allow-Credentials", "true".into()));
        }
        if !self.expose_headers.is_empty() {
            headers.push(("Access-Control-Expose-Headers", self.expose_headers.into()));
        }
        if echoed {
            headers.push(("Vary", "Origin".into()));
        }
        headers
    }

    /// Answers a preflight; its CORS headers are added by [`apply`], as to any response.
    pub fn preflight(&self, allowed: bool) -> Result<Response, Error> {
        let headers = Headers::new();
        for (name, value) in self.preflight_headers(allowed)? {
            headers.set(name, &value)?;
        }
        Ok(Response::empty()?.with_status(204).with_headers(headers))
    }

    fn preflight_headers(&self, allowed: bool) -> Result<Vec<(&'static str, String)>, Error> {
        match (allowed, self.refuse_foreign_preflight) {
            (false, true) => Err(Error::OriginNotAllowed),
            (false, false) => Ok(Vec::new()),
            (true, _) => Ok(vec![
                ("Access-Control-Allow-Methods", self.allow_methods.into()),
                ("Access-Control-Allow-Headers", self.allow_headers.into()),
                ("Access-Control-Max-Age", MAX_AGE_SECONDS.into()),
            ]),
        }
    }
}

/// Adds a policy's `headers` to a response unless it has `Access-Control-Allow-Origin`
/// already (a channel's object sets them on its own answers). A response made here takes
/// them as is; one from an object (immutable headers) is copied.
pub fn apply(
    mut response: Response,
    headers: Vec<(&'static str, String)>,
) -> worker::Result<Response> {
    if headers.is_empty() || response.headers().has("Access-Control-Allow-Origin")? {
        return Ok(response);
    }
    let mutable = headers
        .iter()
        .all(|(name, value)| response.headers_mut().set(name, value).is_ok());
    if mutable {
        Ok(response)
    } else {
        with_headers(response, headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MercureConfig;

    fn names(h: &[(&'static str, String)]) -> Vec<&'static str> {
        h.iter().map(|(n, _)| *n).collect()
    }

    fn config(channels: AllowedOrigins, hub: Option<AllowedOrigins>) -> Config {
        let defaults = Config::default();
        Config {
            allowed_origins: channels,
            mercure: MercureConfig {
                cors_origins: hub,
                ..defaults.mercure.clone()
            },
            ..defaults
        }
    }

    #[test]
    fn the_channels_allow_any_origin_by_default_and_the_hub_none() {
        let c = Config::default();
        assert_eq!(
            CHANNELS.allowed(&c, Some("http://a.test")),
            Some("*".into())
        );
        assert_eq!(CHANNELS.allowed(&c, None), Some("*".into()));
        assert_eq!(HUB.allowed(&c, Some("http://a.test")), None);
        assert!(HUB.headers(None).is_empty());
    }

    #[test]
    fn a_star_is_sent_without_credentials_and_with_what_the_face_exposes() {
        let hub = HUB.headers(Some("*".into()));
        assert_eq!(hub[0], ("Access-Control-Allow-Origin", "*".into()));
        assert_eq!(
            names(&hub),
            [
                "Access-Control-Allow-Origin",
                "Access-Control-Expose-Headers"
            ]
        );
        assert_eq!(
            CHANNELS.headers(Some("*".into())),
            [("Access-Control-Allow-Origin", "*".to_string())]
        );
    }

    #[test]
    fn a_listed_origin_is_echoed_whatever_its_case_with_credentials_only_on_the_hub() {
        let list = || AllowedOrigins::List(vec!["http://App.test:8080".into()]);
        let c = config(list(), Some(list()));
        let sent = Some("http://app.TEST:8080");
        for policy in [&CHANNELS, &HUB] {
            assert_eq!(
                policy.allowed(&c, sent),
                Some("http://app.TEST:8080".into())
            );
            assert_eq!(policy.allowed(&c, Some("http://evil.test")), None);
            assert_eq!(policy.allowed(&c, None), None);
        }
        let hub = HUB.headers(HUB.allowed(&c, sent));
        assert_eq!(
            hub[0],
            ("Access-Control-Allow-Origin", "http://app.TEST:8080".into())
        );
        assert!(hub.contains(&("Access-Control-Allow-Credentials", "true".into())));
        assert!(hub.contains(&("Vary", "Origin".into())));
        let channels = CHANNELS.headers(CHANNELS.allowed(&c, sent));
        assert_eq!(names(&channels), ["Access-Control-Allow-Origin", "Vary"]);
    }

    #[test]
    fn a_foreign_preflight_is_refused_by_the_channels_and_served_bare_by_the_hub() {
        assert!(matches!(
            CHANNELS.preflight_headers(false),
            Err(Error::OriginNotAllowed)
        ));
        assert!(HUB.preflight_headers(false).unwrap().is_empty());
        for policy in [&CHANNELS, &HUB] {
            let allowed = policy.preflight_headers(true).unwrap();
            assert_eq!(
                names(&allowed),
                [
                    "Access-Control-Allow-Methods",
                    "Access-Control-Allow-Headers",
                    "Access-Control-Max-Age"
                ]
            );
            assert_eq!(allowed[0].1, "GET, POST, OPTIONS");
        }
        assert_eq!(
            HUB.preflight_headers(true).unwrap()[1].1,
            "Authorization, Cache-Control, Last-Event-ID, Content-Type"
        );
    }
}
