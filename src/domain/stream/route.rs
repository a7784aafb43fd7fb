//! Routes and filters: which seats receive which events.

use serde_json::{json, Value};

/// What decides who receives an event: its topics and whether it is private. A channel's
/// events have none (every seat receives them); a Mercure update has one, kept with it in
/// history so that replays filter too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub topics: Vec<String>,
    pub private: bool,
}

impl Route {
    /// The form kept with the update in history.
    pub fn to_stored(&self) -> String {
        json!({ "topics": self.topics, "private": self.private }).to_string()
    }

    pub fn from_stored(text: &str) -> Option<Route> {
        let value: Value = serde_json::from_str(text).ok()?;
        let topics = value["topics"]
            .as_array()?
            .iter()
            .map(|t| t.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()?;
        Some(Route {
            topics,
            private: value["private"].as_bool()?,
        })
    }
}

/// A seat's say on a routed event: a Mercure subscriber's subscriptions and grants.
pub trait Filter {
    /// Whether this seat receives the event (at most once, however many of its
    /// subscriptions match).
    fn admits(&self, route: &Route) -> bool;

    /// The bytes its compiled matchers hold, counted against the hub's bound.
    fn footprint(&self) -> usize;

    /// Filters of one class admit exactly the same routes: a flush asks [`Filter::admits`]
    /// once per class and event, not once per seat. The class is the full text of what
    /// decides admission (never a hash: two seats must never share by accident). None:
    /// this filter shares with no other.
    fn class(&self) -> Option<&str> {
        None
    }

    /// How the face tells a seat about a hole in what it resumes across (events expired,
    /// or never stored): with a `gap` event (channels), or not in the stream at all
    /// (Mercure, whose clients learn where the replay started from the response's
    /// `Last-Event-ID` header).
    const TELLS_GAPS: bool = true;

    /// Whether every event of the face carries a route (the Mercure hub's do): an event
    /// that has lost its route, or a frame between objects that does not say it, is then
    /// no seat's, never everyone's.
    const ROUTED: bool = false;

    /// Whether the face is told of each seat that leaves ([`crate::domain::Stream::take_departed`]):
    /// the Mercure hub announces the end of each subscription.
    const REPORTS_DEPARTURES: bool = false;
}

/// The filter of a channel's listeners: every event is theirs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Everyone;

impl Filter for Everyone {
    fn admits(&self, _route: &Route) -> bool {
        true
    }

    fn footprint(&self) -> usize {
        0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A Mercure-like filter for tests: the topics a seat subscribes to, whether its grants
    /// let it see private events, and what its matchers would hold.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) struct Topics {
        pub(crate) topics: Vec<&'static str>,
        pub(crate) private: bool,
        pub(crate) footprint: usize,
    }

    impl Filter for Topics {
        fn admits(&self, route: &Route) -> bool {
            (self.private || !route.private)
                && route
                    .topics
                    .iter()
                    .any(|t| self.topics.contains(&t.as_str()))
        }

        fn footprint(&self) -> usize {
            self.footprint
        }

        const TELLS_GAPS: bool = false;
        const REPORTS_DEPARTURES: bool = true;
        const ROUTED: bool = true;
    }
}
