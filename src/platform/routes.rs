//! The public routes: which request goes where. No runtime types, so it is tested natively.

use crate::domain::{ChannelName, ChannelNameError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The demo page.
    Page,
    /// An event stream.
    Listen(ChannelName),
    /// Publish the request body.
    Publish(ChannelName),
    /// Publish `pong` on the default channel.
    Ping,
    /// A channel's counters.
    Stats(ChannelName),
    /// A CORS preflight for a known path.
    Preflight,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed { allow: &'static str },
    BadChannel(ChannelNameError),
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::NotFound => f.write_str("no such route"),
            RouteError::MethodNotAllowed { allow } => write!(f, "method not allowed; use {allow}"),
            RouteError::BadChannel(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RouteError {}

/// Picks the route for a method on a known path, or `None` when the method is wrong.
type PickRoute = fn(&str, ChannelName) -> Option<Route>;

/// Routes a request by method and path.
pub fn route(method: &str, path: &str) -> Result<Route, RouteError> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (allow, pick): (&'static str, PickRoute) = match segments.as_slice() {
        [""] => ("GET, HEAD", |m, _| {
            matches!(m, "GET" | "HEAD").then_some(Route::Page)
        }),
        ["listen"] => ("GET, OPTIONS", |m, c| {
            (m == "GET").then_some(Route::Listen(c))
        }),
        ["ping"] => ("GET, POST, OPTIONS", |m, _| {
            matches!(m, "GET" | "POST").then_some(Route::Ping)
        }),
        ["channels", name] => {
            let channel = ChannelName::parse(name).map_err(RouteError::BadChannel)?;
            return pick_method(method, "GET, OPTIONS", channel, |m, c| {
                (m == "GET").then_some(Route::Stats(c))
            });
        }
        ["channels", name, "events"] => {
            let channel = ChannelName::parse(name).map_err(RouteError::BadChannel)?;
            return pick_method(method, "GET, POST, OPTIONS", channel, |m, c| match m {
                "GET" => Some(Route::Listen(c)),
                "POST" => Some(Route::Publish(c)),
                _ => None,
            });
        }
        _ => return Err(RouteError::NotFound),
    };
    pick_method(method, allow, ChannelName::default_channel(), pick)
}

fn pick_method(
    method: &str,
    allow: &'static str,
    channel: ChannelName,
    pick: PickRoute,
) -> Result<Route, RouteError> {
    if method == "OPTIONS" && allow.contains("OPTIONS") {
        return Ok(Route::Preflight);
    }
    pick(method, channel).ok_or(RouteError::MethodNotAllowed { allow })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(name: &str) -> ChannelName {
        ChannelName::parse(name).unwrap()
    }

    #[test]
    fn each_path_and_method_goes_to_its_route() {
        assert_eq!(route("GET", "/"), Ok(Route::Page));
        assert_eq!(route("GET", "/listen"), Ok(Route::Listen(ch("default"))));
        assert_eq!(route("GET", "/ping"), Ok(Route::Ping));
        assert_eq!(route("POST", "/ping"), Ok(Route::Ping));
        assert_eq!(route("OPTIONS", "/ping"), Ok(Route::Preflight));
        assert_eq!(
            route("GET", "/channels/news/events"),
            Ok(Route::Listen(ch("news")))
        );
        assert_eq!(
            route("POST", "/channels/news/events"),
            Ok(Route::Publish(ch("news")))
        );
        assert_eq!(route("GET", "/channels/news"), Ok(Route::Stats(ch("news"))));
    }

    #[test]
    fn unknown_paths_wrong_methods_and_bad_names_are_refused() {
        assert_eq!(route("GET", "/nope"), Err(RouteError::NotFound));
        assert_eq!(route("GET", "/channels"), Err(RouteError::NotFound));
        assert_eq!(route("GET", "/channels/a/b/c"), Err(RouteError::NotFound));
        assert_eq!(
            route("DELETE", "/ping"),
            Err(RouteError::MethodNotAllowed {
                allow: "GET, POST, OPTIONS"
            })
        );
        assert_eq!(
            route("PUT", "/listen"),
            Err(RouteError::MethodNotAllowed {
                allow: "GET, OPTIONS"
            })
        );
        assert_eq!(
            route("POST", "/channels/x"),
            Err(RouteError::MethodNotAllowed {
                allow: "GET, OPTIONS"
            })
        );
        assert_eq!(
            route("OPTIONS", "/"),
            Err(RouteError::MethodNotAllowed { allow: "GET, HEAD" })
        );
        assert_eq!(
            route("GET", "/channels/bad!/events"),
            Err(RouteError::BadChannel(ChannelNameError::BadCharacter('!')))
        );
        assert_eq!(
            route("GET", "/channels//events"),
            Err(RouteError::BadChannel(ChannelNameError::Empty))
        );
    }
}
