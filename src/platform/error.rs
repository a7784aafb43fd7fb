//! The one error type of the platform edge, and the one place that turns an error into
//! an HTTP response: its status, its one-line reason, and `Allow` or `Retry-After` where
//! they belong. Handlers return `Result<Response, Error>` and use `?`; the domain's
//! errors know nothing of HTTP.

use std::fmt;

use worker::{Headers, Response};

use super::routes::RouteError;
use crate::domain::auth::AuthError;
use crate::domain::form::NotUtf8;
use crate::domain::hub::HubError;
use crate::domain::mercure::{QueryError, UpdateError};
use crate::domain::{
    BadEventId, ChannelGone, ChannelNameError, ConfigError, EndError, LineError, LogError,
    PublishError, StreamEnded, SubscribeError,
};

/// How long a client refused for a full channel is asked to wait, in seconds.
pub const FULL_RETRY_AFTER_SECONDS: u32 = 5;

/// Why a streaming publish stopped.
#[derive(Debug)]
pub enum StreamStop {
    Line(LineError),
    /// Nothing came for this long (`STREAM_STALL_SECONDS`).
    Stalled {
        ms: u64,
    },
    /// The body failed (its sender went away).
    Unreadable,
}

impl fmt::Display for StreamStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamStop::Line(e) => write!(f, "{e}"),
            StreamStop::Stalled { ms } => write!(
                f,
                "the body sent nothing for {ms} ms (STREAM_STALL_SECONDS): the publish is ended"
            ),
            StreamStop::Unreadable => f.write_str("the body could not be read to its end"),
        }
    }
}

#[derive(Debug)]
pub enum Error {
    /// No such path (404).
    NotFound,
    /// A known path with a method it does not take (405, with `Allow`).
    MethodNotAllowed {
        allow: &'static str,
    },
    /// A channel name that is not valid (400).
    BadChannel(ChannelNameError),
    /// A `Last-Event-ID` or `lastEventId` that is not an id of ours (400).
    BadEventId(BadEventId),
    /// A query parameter of the channel API that is not UTF-8 once decoded (400).
    QueryNotUtf8(NotUtf8),
    /// A publish body that cannot be read (400, or 415 for its content type).
    Publish(PublishError),
    /// A streaming publish stopped before its body's end (400 for a bad line or a body
    /// that cannot be read, 413 for a line or a stream past its limit, 408 for a body
    /// that stalled); `published` says what it published before.
    StreamStopped {
        why: StreamStop,
        published: String,
    },
    /// A body over `MAX_BODY_BYTES` (413).
    TooLarge {
        max: usize,
    },
    /// Credentials missing (401) or wrong (403).
    Auth(AuthError),
    /// A preflight from an origin that is not allowed (403).
    OriginNotAllowed,
    /// The stream (a channel, or the hub) has its maximum of seats, `MAX_LISTENERS`,
    /// over its whole tree (503, with `Retry-After`).
    Full {
        max: usize,
        stream: Audience,
    },
    /// A publish or an end on a channel that has ended; between objects, a stream asked
    /// of an object whose stream has ended (409).
    Ended(StreamEnded),
    /// Any call on a channel whose storage was deleted after it ended, while its grave
    /// stands (410).
    Gone(ChannelGone),
    /// A setting is unusable (500, naming it).
    Config(ConfigError),
    /// A stream's storage failed (500).
    Storage(LogError),
    /// An object got a request it does not understand: the Worker and the object (or
    /// two objects) disagree, which is a bug (500).
    Contract(String),
    /// The runtime failed: a stub, a stream, a body (503: try again).
    Runtime(worker::Error),
    /// A node of the channel's tree could not seat a listener now: its stream from its
    /// parent is not up, or the resume it needs kept moving (503, with `Retry-After`).
    TreeBusy(&'static str),
    /// The hub's bearer challenges (§3.8); each carries the hub's metadata URL.
    Hub(HubRefusal),
    /// A hub publish's body is not a form (415).
    NotAForm,
    /// A hub publish or subscribe that breaks a field rule (400).
    Update(UpdateError),
    Query(QueryError),
    /// A subscriptions API path that does not decode (400).
    BadPath(String),
    /// The hub's subscribers' matchers hold all the memory it gives them (503, with
    /// `Retry-After`).
    HubMatchersFull {
        max: usize,
    },
}

/// Whose seats a full stream has, for its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A channel's listeners.
    Channel,
    /// The hub's subscribers.
    Hub,
}

/// How the hub refuses a request's credentials: the status, and the `WWW-Authenticate`
/// challenge that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRefusal {
    pub kind: Challenge,
    /// The protected-resource metadata URL, named in the challenge.
    pub metadata_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// No token where one is required (401, no `error`).
    Missing,
    /// The credentials could not be read (400 `invalid_request`).
    InvalidRequest(&'static str),
    /// A token that fails any check (401 `invalid_token`, the same whatever the reason).
    InvalidToken,
    /// A valid token without the needed grant (403 `insufficient_scope`).
    InsufficientScope,
}

impl HubRefusal {
    fn challenge(&self) -> String {
        let error = match self.kind {
            Challenge::Missing => None,
            Challenge::InvalidRequest(_) => Some("invalid_request"),
            Challenge::InvalidToken => Some("invalid_token"),
            Challenge::InsufficientScope => Some("insufficient_scope"),
        };
        let metadata = format!("resource_metadata=\"{}\"", self.metadata_url);
        match error {
            Some(error) => format!("Bearer error=\"{error}\", {metadata}"),
            None => format!("Bearer {metadata}"),
        }
    }
}

impl Error {
    pub fn status(&self) -> u16 {
        match self {
            Error::NotFound => 404,
            Error::MethodNotAllowed { .. } => 405,
            Error::BadChannel(_) | Error::BadEventId(_) | Error::QueryNotUtf8(_) => 400,
            Error::Publish(e) if e.is_unsupported_kind() => 415,
            Error::Publish(e) if e.is_too_large() => 413,
            Error::Publish(_) => 400,
            Error::TooLarge { .. } => 413,
            Error::StreamStopped { why, .. } => match why {
                StreamStop::Line(e) if e.is_too_large() => 413,
                StreamStop::Stalled { .. } => 408,
                StreamStop::Line(_) | StreamStop::Unreadable => 400,
            },
            Error::Auth(AuthError::Missing) => 401,
            Error::Auth(AuthError::Wrong) | Error::OriginNotAllowed => 403,
            Error::Ended(_) => 409,
            Error::Gone(_) => 410,
            Error::Full { .. } | Error::Runtime(_) | Error::TreeBusy(_) => 503,
            Error::Config(_) | Error::Storage(_) | Error::Contract(_) => 500,
            Error::Hub(refusal) => match refusal.kind {
                Challenge::InvalidRequest(_) => 400,
                Challenge::Missing | Challenge::InvalidToken => 401,
                Challenge::InsufficientScope => 403,
            },
            Error::NotAForm => 415,
            Error::Update(_) | Error::Query(_) | Error::BadPath(_) => 400,
            Error::HubMatchersFull { .. } => 503,
        }
    }

    /// The response for this error: a short `text/plain` line with its status. Failures
    /// that are ours, not the client's, are logged (the client only gets the line).
    pub fn to_response(&self) -> worker::Result<Response> {
        let status = self.status();
        let full = matches!(self, Error::Full { .. } | Error::HubMatchersFull { .. });
        match self {
            // The answer says only "try again"; the log says what failed.
            Error::Runtime(e) => worker::console_error!("{status}: {self}: {e:?}"),
            _ if status >= 500 && !full => worker::console_error!("{status}: {self}"),
            _ => {}
        }
        let headers = Headers::new();
        headers.set("Content-Type", "text/plain; charset=utf-8")?;
        headers.set("Cache-Control", "no-store")?;
        match self {
            Error::MethodNotAllowed { allow } => headers.set("Allow", allow)?,
            _ if full => headers.set("Retry-After", &FULL_RETRY_AFTER_SECONDS.to_string())?,
            Error::TreeBusy(_) => headers.set("Retry-After", "1")?,
            Error::Hub(refusal) => headers.set("WWW-Authenticate", &refusal.challenge())?,
            _ => {}
        }
        Ok(Response::ok(format!("{self}\n"))?
            .with_status(status)
            .with_headers(headers))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound => f.write_str("not found"),
            Error::MethodNotAllowed { allow } => write!(f, "method not allowed; use {allow}"),
            Error::BadChannel(e) => write!(f, "{e}"),
            Error::BadEventId(e) => write!(f, "{e}"),
            Error::QueryNotUtf8(e) => write!(f, "query parameter {e}"),
            Error::Publish(e) => write!(f, "{e}"),
            Error::TooLarge { max } => write!(f, "body is larger than {max} bytes"),
            Error::StreamStopped { why, published } => write!(f, "{why}; {published}"),
            Error::Auth(e) => write!(f, "{e}"),
            Error::OriginNotAllowed => f.write_str("origin not allowed"),
            Error::Full {
                max,
                stream: Audience::Channel,
            } => write!(f, "channel has its maximum of {max} listeners"),
            Error::Full {
                max,
                stream: Audience::Hub,
            } => write!(f, "the hub has its maximum of {max} subscribers"),
            Error::Ended(e) => write!(f, "{e}"),
            Error::Gone(e) => write!(f, "{e}"),
            Error::Config(e) => write!(f, "{e}"),
            Error::Storage(e) => write!(f, "{e}"),
            Error::Contract(what) => write!(f, "internal request not understood: {what}"),
            Error::Runtime(_) => f.write_str("unavailable, try again"),
            Error::TreeBusy(why) => write!(f, "busy ({why}), try again"),
            Error::Hub(refusal) => match refusal.kind {
                Challenge::Missing => f.write_str("Unauthorized: a token is required"),
                Challenge::InvalidRequest(why) => write!(f, "Invalid request: {why}"),
                Challenge::InvalidToken => f.write_str("Unauthorized: invalid token"),
                Challenge::InsufficientScope => {
                    f.write_str("Forbidden: the token does not grant this topic")
                }
            },
            Error::NotAForm => {
                f.write_str("Unsupported Media Type: send application/x-www-form-urlencoded")
            }
            Error::Update(e) => write!(f, "{e}"),
            Error::Query(e) => write!(f, "{e}"),
            Error::BadPath(why) => f.write_str(why),
            Error::HubMatchersFull { max } => write!(
                f,
                "the hub's subscribers' matchers hold their maximum of {max} bytes"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// The errors that become one kind as they are.
macro_rules! wrap {
    ($($from:ty => $kind:ident),* $(,)?) => {
        $(impl From<$from> for Error {
            fn from(e: $from) -> Self {
                Error::$kind(e)
            }
        })*
    };
}

wrap! {
    ChannelNameError => BadChannel,
    BadEventId => BadEventId,
    NotUtf8 => QueryNotUtf8,
    PublishError => Publish,
    AuthError => Auth,
    ConfigError => Config,
    LogError => Storage,
    StreamEnded => Ended,
    ChannelGone => Gone,
    UpdateError => Update,
    QueryError => Query,
    worker::Error => Runtime,
}

impl From<RouteError> for Error {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::NotFound => Error::NotFound,
            RouteError::MethodNotAllowed { allow } => Error::MethodNotAllowed { allow },
            RouteError::BadChannel(e) => Error::BadChannel(e),
        }
    }
}

impl From<SubscribeError> for Error {
    fn from(e: SubscribeError) -> Self {
        match e {
            SubscribeError::TooManyListeners { max } => Error::Full {
                max,
                stream: Audience::Channel,
            },
            SubscribeError::Log(e) => Error::Storage(e),
            SubscribeError::NotCovered => Error::TreeBusy("the resume moved on"),
            SubscribeError::Ended | SubscribeError::Finished(_) => Error::Ended(StreamEnded),
        }
    }
}

impl From<EndError> for Error {
    fn from(e: EndError) -> Self {
        match e {
            EndError::Ended(e) => Error::Ended(e),
            EndError::Log(e) => Error::Storage(e),
        }
    }
}

impl From<HubError> for Error {
    fn from(e: HubError) -> Self {
        match e {
            HubError::MatchersFull { max } => Error::HubMatchersFull { max },
            HubError::Field(e) => Error::Contract(e.to_string()),
            HubError::Log(e) => Error::Storage(e),
        }
    }
}

impl From<wasm_bindgen::JsValue> for Error {
    fn from(e: wasm_bindgen::JsValue) -> Self {
        Error::Runtime(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::FieldError;

    #[test]
    fn every_error_has_the_status_its_kind_deserves() {
        let cases: Vec<(Error, u16)> = vec![
            (Error::NotFound, 404),
            (Error::MethodNotAllowed { allow: "GET" }, 405),
            (Error::BadChannel(ChannelNameError::Empty), 400),
            (Error::BadEventId(BadEventId), 400),
            (
                Error::QueryNotUtf8(NotUtf8 {
                    field: "token".into(),
                }),
                400,
            ),
            (Error::Publish(PublishError::MissingData), 400),
            (
                Error::Publish(PublishError::UnsupportedContentType("image/png".into())),
                415,
            ),
            (
                Error::Publish(PublishError::ReservedEventType("gap".into())),
                400,
            ),
            (
                Error::Publish(PublishError::EventType(FieldError::EventTypeEmpty)),
                400,
            ),
            (Error::TooLarge { max: 1 }, 413),
            (Error::Publish(PublishError::TooManyEvents { max: 1 }), 413),
            (Error::Auth(AuthError::Missing), 401),
            (Error::Auth(AuthError::Wrong), 403),
            (Error::OriginNotAllowed, 403),
            (
                Error::Full {
                    max: 1,
                    stream: Audience::Channel,
                },
                503,
            ),
            (Error::TreeBusy("x"), 503),
            (Error::Storage(LogError("x".into())), 500),
            (Error::Contract("x".into()), 500),
            (hub(Challenge::Missing), 401),
            (hub(Challenge::InvalidRequest("x")), 400),
            (hub(Challenge::InvalidToken), 401),
            (hub(Challenge::InsufficientScope), 403),
            (Error::NotAForm, 415),
            (Error::Update(UpdateError::MissingTopic), 400),
            (Error::Query(QueryError::NoMatcher), 400),
            (
                Error::Full {
                    max: 1,
                    stream: Audience::Hub,
                },
                503,
            ),
            (Error::HubMatchersFull { max: 1 }, 503),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error}");
        }
    }

    fn hub(kind: Challenge) -> Error {
        Error::Hub(HubRefusal {
            kind,
            metadata_url: "http://h.test/m".into(),
        })
    }

    #[test]
    fn the_hub_challenges_say_why_a_token_was_refused() {
        let challenge = |kind| match hub(kind) {
            Error::Hub(r) => r.challenge(),
            _ => unreachable!(),
        };
        assert_eq!(
            challenge(Challenge::Missing),
            r#"Bearer resource_metadata="http://h.test/m""#
        );
        assert_eq!(
            challenge(Challenge::InvalidToken),
            r#"Bearer error="invalid_token", resource_metadata="http://h.test/m""#
        );
        assert_eq!(
            challenge(Challenge::InsufficientScope),
            r#"Bearer error="insufficient_scope", resource_metadata="http://h.test/m""#
        );
        assert_eq!(
            challenge(Challenge::InvalidRequest("x")),
            r#"Bearer error="invalid_request", resource_metadata="http://h.test/m""#
        );
    }

    #[test]
    fn domain_errors_convert_to_the_matching_kind() {
        assert!(matches!(
            Error::from(SubscribeError::TooManyListeners { max: 3 }),
            Error::Full {
                max: 3,
                stream: Audience::Channel
            }
        ));
        assert!(matches!(
            Error::from(RouteError::MethodNotAllowed { allow: "GET" }),
            Error::MethodNotAllowed { allow: "GET" }
        ));
        assert_eq!(
            Error::from(SubscribeError::Log(LogError("disk".into()))).status(),
            500
        );
    }
}
