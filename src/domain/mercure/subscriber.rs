//! A hub subscriber, as the hub's object holds it: its id, what it listens to, what its
//! token grants and when that token ends.

use super::subscriptions::Subscription;
use super::token::Grants;
use super::topic::{write_class_text, TopicMatcher, TopicSpec};
use super::update::receives;
use crate::domain::stream::{Filter, Route};

#[derive(Debug, Clone)]
pub struct Subscriber {
    /// `urn:uuid:<random>`, made by the hub (§7.1).
    pub id: String,
    /// One per matcher parameter, in the order given.
    pub matchers: Vec<TopicMatcher>,
    /// The verified token's grants; `None` for an anonymous subscriber.
    pub grants: Option<Grants>,
    /// Its [`Filter::class`]: subscribers with the same matchers (compiled against the
    /// same base) and the same subscribe grants receive the same updates.
    class: String,
}

impl Subscriber {
    /// A subscriber with matchers compiled against `base` (R).
    pub fn new(
        id: String,
        matchers: Vec<TopicMatcher>,
        grants: Option<Grants>,
        base: &str,
    ) -> Self {
        let mut class = String::new();
        write_class_text(&mut class, base);
        for matcher in &matchers {
            matcher.spec().write_class(&mut class);
        }
        match &grants {
            Some(grants) => {
                class.push_str("grants:");
                grants.subscribe_class(&mut class);
            }
            None => class.push_str("anonymous"),
        }
        Subscriber {
            id,
            matchers,
            grants,
            class,
        }
    }

    pub fn specs(&self) -> impl Iterator<Item = &TopicSpec> {
        self.matchers.iter().map(TopicMatcher::spec)
    }

    /// When its token expires, in milliseconds since the epoch (§6.8).
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.grants
            .as_ref()
            .and_then(Grants::exp)
            .map(|s| s.saturating_mul(1000))
    }

    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms().is_some_and(|exp| now_ms >= exp)
    }

    /// Its subscriptions, one per matcher (§7.1), as active or as ended.
    pub fn subscriptions(&self, active: bool) -> Vec<Subscription> {
        self.specs()
            .map(|spec| Subscription {
                spec: spec.clone(),
                subscriber: self.id.clone(),
                active,
                payload: self.grants.as_ref().and_then(|g| g.payload_for(spec)),
            })
            .collect()
    }
}

impl Filter for Subscriber {
    /// A Mercure client learns where its replay started from the response's
    /// `Last-Event-ID` header (docs/mercure.md §6.9), not from an event.
    const TELLS_GAPS: bool = false;
    /// Each subscription's end is announced (§7.2).
    const REPORTS_DEPARTURES: bool = true;
    /// Every update has topics, and may be private: one without its route is no one's.
    const ROUTED: bool = true;

    fn admits(&self, route: &Route) -> bool {
        receives(
            &self.matchers,
            self.grants.as_ref(),
            &route.topics,
            route.private,
        )
    }

    /// Its query's matchers and its token's, compiled.
    fn footprint(&self) -> usize {
        self.matchers.iter().map(TopicMatcher::cost).sum::<usize>()
            + self.grants.as_ref().map_or(0, Grants::cost)
    }

    fn class(&self) -> Option<&str> {
        Some(&self.class)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mercure::{MatcherBudget, MatcherKind};

    const BASE: &str = "http://h.test/.well-known/mercure";

    fn subscriber(selectors: &[&str]) -> Subscriber {
        let matchers = selectors
            .iter()
            .map(|s| {
                let spec = TopicSpec::new(MatcherKind::Selector, *s);
                TopicMatcher::compile(&spec, BASE, &mut MatcherBudget::new(Default::default()))
                    .unwrap()
            })
            .collect();
        Subscriber::new("urn:uuid:1".into(), matchers, None, BASE)
    }

    #[test]
    fn subscribers_share_a_class_only_when_the_same_updates_are_theirs() {
        let class = |s: &Subscriber| s.class().unwrap().to_string();
        let a = subscriber(&["https://a.test/{x}", "b"]);
        let mut same = subscriber(&["https://a.test/{x}", "b"]);
        same.id = "urn:uuid:2".into();
        assert_eq!(class(&a), class(&same), "the id is no part of it");
        // Matchers that would write the same text if joined naively stay apart.
        assert_ne!(
            class(&subscriber(&["ab", "c"])),
            class(&subscriber(&["a", "bc"]))
        );
        assert_ne!(class(&a), class(&subscriber(&["https://a.test/{x}"])));
        let spec = TopicSpec::new(MatcherKind::Selector, "b");
        let budget = &mut MatcherBudget::new(Default::default());
        let elsewhere = Subscriber::new(
            "urn:uuid:3".into(),
            vec![
                TopicMatcher::compile(&spec, "http://other.test/.well-known/mercure", budget)
                    .unwrap(),
            ],
            None,
            "http://other.test/.well-known/mercure",
        );
        assert_ne!(
            class(&subscriber(&["b"])),
            class(&elsewhere),
            "another base"
        );
    }

    fn route(topics: &[&str], private: bool) -> Route {
        Route {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            private,
        }
    }

    #[test]
    fn an_anonymous_subscriber_gets_the_public_updates_its_selectors_match() {
        let s = subscriber(&["https://a.test/books/{id}"]);
        assert!(s.admits(&route(&["https://a.test/books/1"], false)));
        assert!(s.admits(&route(&["x", "https://a.test/books/2"], false)));
        assert!(!s.admits(&route(&["https://a.test/books/1"], true)));
        assert!(!s.admits(&route(&["https://a.test/films/1"], false)));
        assert!(s.footprint() > 0);
        assert_eq!(s.expires_at_ms(), None);
        assert!(!s.expired(u64::MAX));
    }

    #[test]
    fn each_matcher_is_one_subscription_of_the_subscriber() {
        let s = subscriber(&["a", "b"]);
        let subs = s.subscriptions(false);
        assert_eq!(subs.len(), 2);
        assert_eq!(subs[1].spec.text, "b");
        assert_eq!(subs[1].subscriber, "urn:uuid:1");
        assert!(!subs[1].active);
        assert_eq!(subs[0].payload, None);
    }
}
