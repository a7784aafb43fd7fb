//! Who may publish and listen: shared secrets, compared in constant time.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No credentials were given (401).
    Missing,
    /// Credentials were given and are wrong (403).
    Wrong,
}

impl std::error::Error for AuthError {}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthError::Missing => "credentials required",
            AuthError::Wrong => "credentials not accepted",
        })
    }
}

/// Why an `Authorization` header carries no bearer credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// Nothing, or the scheme alone (`Bearer`).
    NoCredentials,
    /// Another scheme (`Basic ...`), or no scheme at all.
    OtherScheme,
    /// Not one token after one space: more spaces, or a comma (two headers arrive joined by
    /// `, `).
    NotOneToken,
}

impl BearerError {
    /// The reason, in the short line a refusal carries.
    pub fn reason(self) -> &'static str {
        match self {
            BearerError::NoCredentials => "the Authorization header has no bearer token",
            BearerError::OtherScheme => "the Authorization scheme must be Bearer",
            BearerError::NotOneToken => {
                "the Authorization header must carry exactly one bearer token"
            }
        }
    }
}

/// Reads `Authorization: Bearer <credentials>`, one way for the channels and the hub
/// (docs/mercure.md §3.1 a). Strictness: the scheme in any case, exactly one space, then
/// one [token](is_bearer_token); whitespace around the whole value is not part of it (RFC
/// 9110 §5.5), and the runtime strips it anyway.
pub fn bearer(header: &str) -> Result<&str, BearerError> {
    let header = header.trim_matches([' ', '\t']);
    let Some((scheme, token)) = header.split_once(' ') else {
        return Err(
            if header.is_empty() || header.eq_ignore_ascii_case("bearer") {
                BearerError::NoCredentials
            } else {
                BearerError::OtherScheme
            },
        );
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::OtherScheme);
    }
    if !is_bearer_token(token) {
        return Err(BearerError::NotOneToken);
    }
    Ok(token)
}

/// Whether `s` can travel as a bearer token: not empty, no space, tab or comma (RFC 6750's
/// `b64token` is narrower still; these are what would make a header ambiguous).
pub fn is_bearer_token(s: &str) -> bool {
    !s.is_empty() && !s.contains([' ', '\t', ','])
}

/// Checks an `Authorization` header against `Bearer <secret>`; no secret means open. No
/// credentials are missing (401); another scheme or an unreadable header is wrong (403).
pub fn check_bearer(authorization: Option<&str>, secret: Option<&str>) -> Result<(), AuthError> {
    let Some(secret) = secret else { return Ok(()) };
    match authorization.map(bearer) {
        None | Some(Err(BearerError::NoCredentials)) => Err(AuthError::Missing),
        Some(Err(_)) => Err(AuthError::Wrong),
        Some(Ok(token)) => check_token(Some(token), Some(secret)),
    }
}

/// Checks a token (such as `?token=`) against a secret; no secret means open.
pub fn check_token(token: Option<&str>, secret: Option<&str>) -> Result<(), AuthError> {
    let Some(secret) = secret else { return Ok(()) };
    let token = token.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?;
    if constant_time_eq(token.as_bytes(), secret.as_bytes()) {
        Ok(())
    } else {
        Err(AuthError::Wrong)
    }
}

/// Checks a reader of a channel's stats, who may show either credential: the listen
/// token (`?token=`) or the publish bearer. Open only when neither secret is set; refused
/// as missing only when no configured credential was given at all.
pub fn check_reader(
    token: Option<&str>,
    authorization: Option<&str>,
    listen_secret: Option<&str>,
    publish_secret: Option<&str>,
) -> Result<(), AuthError> {
    let checks = [
        listen_secret.map(|s| check_token(token, Some(s))),
        publish_secret.map(|s| check_bearer(authorization, Some(s))),
    ];
    let configured: Vec<Result<(), AuthError>> = checks.into_iter().flatten().collect();
    if configured.is_empty() || configured.iter().any(Result::is_ok) {
        Ok(())
    } else if configured.iter().all(|r| *r == Err(AuthError::Missing)) {
        Err(AuthError::Missing)
    } else {
        Err(AuthError::Wrong)
    }
}

/// Compares without an early exit, so the time taken says nothing about where the first
/// difference is (only the secret's length can be learnt, which is not secret here).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_header_must_carry_the_publish_secret_when_one_is_set() {
        assert_eq!(check_bearer(None, None), Ok(()));
        assert_eq!(check_bearer(Some("junk"), None), Ok(()));
        let (missing, wrong) = (Err(AuthError::Missing), Err(AuthError::Wrong));
        for (header, expected) in [
            (None, missing),
            (Some("  "), missing),
            (Some("Bearer "), missing),
            (Some("Bearer s"), Ok(())),
            (Some(" bearer s "), Ok(())),
            (Some("Bearer t"), wrong),
            (Some("Bearer s2"), wrong),
            (Some("Basic s"), wrong),
            // One reading of the header for every face: what the hub cannot read is
            // wrong here.
            (Some("bearer  s"), wrong),
            (Some("Bearer s, Bearer s"), wrong),
            (Some("Bearer\ts"), wrong),
            (Some("s"), wrong),
        ] {
            assert_eq!(check_bearer(header, Some("s")), expected, "{header:?}");
        }
    }

    #[test]
    fn a_bearer_header_is_the_scheme_in_any_case_one_space_and_one_token() {
        use BearerError::*;
        for (header, expected) in [
            ("Bearer a.b.c", Ok("a.b.c")),
            ("bEaReR a.b.c", Ok("a.b.c")),
            ("Bearer a.b.c ", Ok("a.b.c")),
            ("Bearer x!#$%&'*", Ok("x!#$%&'*")),
            ("", Err(NoCredentials)),
            ("  ", Err(NoCredentials)),
            ("Bearer", Err(NoCredentials)),
            ("bearer", Err(NoCredentials)),
            ("Bearer ", Err(NoCredentials)),
            ("Basic abc", Err(OtherScheme)),
            ("Token abc", Err(OtherScheme)),
            ("abc", Err(OtherScheme)),
            ("Bearerx abc", Err(OtherScheme)),
            ("Bearer\tabc", Err(OtherScheme)),
            ("Bearer  a", Err(NotOneToken)),
            ("Bearer a b", Err(NotOneToken)),
            ("Bearer a, Bearer b", Err(NotOneToken)),
            ("Bearer a,b", Err(NotOneToken)),
        ] {
            assert_eq!(bearer(header), expected, "{header:?}");
        }
    }

    #[test]
    fn a_token_must_equal_the_secret_byte_for_byte() {
        assert_eq!(check_token(Some("x"), Some("x")), Ok(()));
        assert_eq!(check_token(Some(""), Some("x")), Err(AuthError::Missing));
        assert_eq!(check_token(Some("xx"), Some("x")), Err(AuthError::Wrong));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"a", b"a\0"));
    }

    #[test]
    fn stats_readers_need_either_credential_whenever_one_is_configured() {
        let (l, p) = (Some("listen"), Some("publish"));
        assert_eq!(check_reader(None, None, None, None), Ok(()));
        // Only a listen secret: the token, and nothing else, opens.
        assert_eq!(check_reader(None, None, l, None), Err(AuthError::Missing));
        assert_eq!(check_reader(Some("listen"), None, l, None), Ok(()));
        assert_eq!(
            check_reader(Some("nope"), None, l, None),
            Err(AuthError::Wrong)
        );
        assert_eq!(
            check_reader(None, Some("Bearer listen"), l, None),
            Err(AuthError::Missing)
        );
        // Only a publish secret: the bearer opens.
        assert_eq!(check_reader(None, None, None, p), Err(AuthError::Missing));
        assert_eq!(check_reader(None, Some("Bearer publish"), None, p), Ok(()));
        assert_eq!(
            check_reader(Some("publish"), None, None, p),
            Err(AuthError::Missing)
        );
        // Both: either opens; a wrong one next to a missing one is wrong.
        assert_eq!(check_reader(Some("listen"), None, l, p), Ok(()));
        assert_eq!(check_reader(None, Some("Bearer publish"), l, p), Ok(()));
        assert_eq!(
            check_reader(Some("x"), Some("Bearer listen"), l, p),
            Err(AuthError::Wrong)
        );
        assert_eq!(check_reader(Some("x"), None, l, p), Err(AuthError::Wrong));
        assert_eq!(check_reader(None, None, l, p), Err(AuthError::Missing));
    }
}
