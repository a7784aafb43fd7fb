//! Which web origins a face answers by CORS: the one origin rule of both faces' policies
//! (`ALLOWED_ORIGINS`, `MERCURE_CORS_ORIGINS`; the headers are the platform's).

/// `*`, or a list of origins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    List(Vec<String>),
}

impl AllowedOrigins {
    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it is allowed.
    pub fn allow(&self, origin: Option<&str>) -> Option<String> {
        match (self, origin) {
            (AllowedOrigins::Any, _) => Some("*".to_string()),
            // Both faces: an origin's scheme and host are case-insensitive (RFC 6454 §4).
            (AllowedOrigins::List(list), Some(origin)) => list
                .iter()
                .any(|o| o.eq_ignore_ascii_case(origin))
                .then(|| origin.to_string()),
            (AllowedOrigins::List(_), None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_origins_are_allowed_unless_any_is() {
        assert_eq!(
            AllowedOrigins::Any.allow(Some("http://x")),
            Some("*".into())
        );
        let list = AllowedOrigins::List(vec!["http://a.test".into()]);
        assert_eq!(
            list.allow(Some("http://a.test")),
            Some("http://a.test".into())
        );
        assert_eq!(
            list.allow(Some("HTTP://A.test")),
            Some("HTTP://A.test".into())
        );
        assert_eq!(list.allow(Some("http://evil.test")), None);
        assert_eq!(list.allow(None), None);
    }
}
