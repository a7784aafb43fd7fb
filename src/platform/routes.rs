//! The public routes: which request goes where. No runtime types, so it is tested natively.

use crate::domain::mercure::{HUB_PATH, METADATA_PATH, STATS_PATH, SUBSCRIPTIONS_PATH};
use crate::domain::{ChannelName, ChannelNameError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The demo page.
    Page,
    /// An event stream.
    Listen(ChannelName),
    /// Publish the request body.
    Publish(ChannelName),
    /// End the channel's stream, after the request body's events if it has any.
    End(ChannelName),
    /// The playground's demo: stream a fake answer into the channel, then end it.
    DemoAnswer(ChannelName),
    /// The browser module that shows a resumable answer (`examples/`), for pages to import.
    AnswerModule,
    /// Publish `pong` on the default channel.
    Ping,
    /// A channel's counters.
    Stats(ChannelName),
    /// A CORS preflight for a known path of the channel API.
    Preflight,
    /// A path of the Mercure hub.
    Hub(HubRoute),
}

/// The Mercure hub's paths (`/.well-known/mercure` and below).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubRoute {
    Subscribe,
    Publish,
    /// The subscriptions API; the remainder after `/.well-known/mercure/subscriptions`,
    /// raw (not decoded), with its leading `/` when there is one.
    Subscriptions(String),
    /// The protected-resource metadata.
    Metadata,
    /// The hub's counters, summed over its tree.
    Stats,
    /// A CORS preflight on any hub path.
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

/// Routes a request by method and path.
pub fn route(method: &str, path: &str) -> Result<Route, RouteError> {
    if let Some(hub) = hub_route(method, path) {
        return hub.map(Route::Hub);
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let channel = |name: &str| ChannelName::parse(name).map_err(RouteError::BadChannel);
    let (allow, picked) = match (segments.as_slice(), method) {
        ([""], "GET" | "HEAD") => ("", Some(Route::Page)),
        ([""], _) => ("GET, HEAD", None),
        (["listen"], "GET") => ("", Some(Route::Listen(ChannelName::default_channel()))),
        (["listen"], _) => ("GET, OPTIONS", None),
        (["ping"], "GET" | "POST") => ("", Some(Route::Ping)),
        (["ping"], _) => ("GET, POST, OPTIONS", None),
        (["channels", name], "GET") => ("", Some(Route::Stats(channel(name)?))),
        (["channels", name], _) => {
            channel(name)?;
            ("GET, OPTIONS", None)
        }
        (["channels", name, "events"], "GET") => ("", Some(Route::Listen(channel(name)?))),
        (["channels", name, "events"], "POST") => ("", Some(Route::Publish(channel(name)?))),
        (["channels", name, "events"], _) => {
            channel(name)?;
            ("GET, POST, OPTIONS", None)
        }
        (["playground", "answer", name], "POST") => ("", Some(Route::DemoAnswer(channel(name)?))),
        (["playground", "answer", name], _) => {
            channel(name)?;
            ("POST, OPTIONS", None)
        }
        (["examples", "resumable-answer.js"], "GET" | "HEAD") => ("", Some(Route::AnswerModule)),
        (["examples", "resumable-answer.js"], _) => ("GET, HEAD", None),
        (["channels", name, "end"], "POST") => ("", Some(Route::End(channel(name)?))),
        (["channels", name, "end"], _) => {
            channel(name)?;
            ("POST, OPTIONS", None)
        }
        _ => return Err(RouteError::NotFound),
    };
    match picked {
        Some(route) => Ok(route),
        None if method == "OPTIONS" && allow.contains("OPTIONS") => Ok(Route::Preflight),
        None => Err(RouteError::MethodNotAllowed { allow }),
    }
}

/// Whether `path` is one of the hub's (they all answer 404 while the hub is off).
pub fn is_hub_path(path: &str) -> bool {
    path == METADATA_PATH
        || path
            .strip_prefix(HUB_PATH)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The hub's routes, or `None` when the path is not the hub's.
fn hub_route(method: &str, path: &str) -> Option<Result<HubRoute, RouteError>> {
    let under_hub = path
        .strip_prefix(HUB_PATH)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'));
    let (allow, picked) = if path == METADATA_PATH {
        (
            "GET, OPTIONS",
            (method == "GET").then_some(HubRoute::Metadata),
        )
    } else if path == HUB_PATH {
        let picked = match method {
            "GET" | "HEAD" => Some(HubRoute::Subscribe),
            "POST" => Some(HubRoute::Publish),
            _ => None,
        };
        ("GET, HEAD, POST, OPTIONS", picked)
    } else if path == STATS_PATH {
        ("GET, OPTIONS", (method == "GET").then_some(HubRoute::Stats))
    } else if let Some(rest) = path
        .strip_prefix(SUBSCRIPTIONS_PATH)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
    {
        let picked = (method == "GET").then(|| HubRoute::Subscriptions(rest.to_string()));
        ("GET, OPTIONS", picked)
    } else if under_hub.is_some() {
        // Nothing else lives under the hub, but a preflight is answered anywhere in it.
        ("OPTIONS", None)
    } else {
        return None;
    };
    Some(match picked {
        Some(route) => Ok(route),
        None if method == "OPTIONS" => Ok(HubRoute::Preflight),
        None if allow == "OPTIONS" => Err(RouteError::NotFound),
        None => Err(RouteError::MethodNotAllowed { allow }),
    })
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
        assert_eq!(
            route("POST", "/channels/news/end"),
            Ok(Route::End(ch("news")))
        );
        assert_eq!(route("OPTIONS", "/channels/news/end"), Ok(Route::Preflight));
        assert_eq!(
            route("POST", "/playground/answer/a-1"),
            Ok(Route::DemoAnswer(ch("a-1")))
        );
        assert_eq!(
            route("GET", "/examples/resumable-answer.js"),
            Ok(Route::AnswerModule)
        );
        assert_eq!(
            route("GET", "/channels/news/end"),
            Err(RouteError::MethodNotAllowed {
                allow: "POST, OPTIONS"
            })
        );
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

    #[test]
    fn the_hub_lives_at_the_well_known_path() {
        let hub = |m: &str, p: &str| route(m, p);
        assert_eq!(hub("GET", HUB_PATH), Ok(Route::Hub(HubRoute::Subscribe)));
        assert_eq!(hub("HEAD", HUB_PATH), Ok(Route::Hub(HubRoute::Subscribe)));
        assert_eq!(hub("POST", HUB_PATH), Ok(Route::Hub(HubRoute::Publish)));
        assert_eq!(
            hub("OPTIONS", HUB_PATH),
            Ok(Route::Hub(HubRoute::Preflight))
        );
        assert_eq!(
            hub("DELETE", HUB_PATH),
            Err(RouteError::MethodNotAllowed {
                allow: "GET, HEAD, POST, OPTIONS"
            })
        );
        assert_eq!(
            hub("GET", "/.well-known/mercure/subscriptions"),
            Ok(Route::Hub(HubRoute::Subscriptions(String::new())))
        );
        assert_eq!(
            hub(
                "GET",
                "/.well-known/mercure/subscriptions/https%3A//a.test//x/urn%3Auuid%3A1"
            ),
            Ok(Route::Hub(HubRoute::Subscriptions(
                "/https%3A//a.test//x/urn%3Auuid%3A1".into()
            )))
        );
        assert_eq!(
            hub("POST", "/.well-known/mercure/subscriptions/x"),
            Err(RouteError::MethodNotAllowed {
                allow: "GET, OPTIONS"
            })
        );
        assert_eq!(
            hub("GET", "/.well-known/mercure/stats"),
            Ok(Route::Hub(HubRoute::Stats))
        );
        assert_eq!(
            hub("POST", "/.well-known/mercure/stats"),
            Err(RouteError::MethodNotAllowed {
                allow: "GET, OPTIONS"
            })
        );
        assert_eq!(
            hub("OPTIONS", "/.well-known/mercure/anything/else"),
            Ok(Route::Hub(HubRoute::Preflight))
        );
        assert_eq!(
            hub("GET", "/.well-known/mercure/anything"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            hub("GET", "/.well-known/mercurex"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            hub("GET", "/.well-known/mercure/subscriptionsx"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            hub(
                "GET",
                "/.well-known/oauth-protected-resource/.well-known/mercure"
            ),
            Ok(Route::Hub(HubRoute::Metadata))
        );
    }
}
