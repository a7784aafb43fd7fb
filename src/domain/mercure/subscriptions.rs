//! Active subscriptions (§7): the topic and the JSON document of each subscription, the
//! private updates that announce them, and the subscriptions API's paths and documents.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::token::{Action, Generation, Grants};
use super::topic::{MatcherKind, TopicSpec};
use super::update::{Update, RESERVED_EVENT_TYPE};

/// The subscriptions API's root, and the prefix of every subscription topic.
pub const SUBSCRIPTIONS_PATH: &str = "/.well-known/mercure/subscriptions";

/// The JSON-LD context of 0.x documents.
const CONTEXT: &str = "https://mercure.rocks/";

/// Everything but `A–Z a–z 0–9 - . _ ~`.
const ENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// *enc(s)*: every byte of `s`'s UTF-8 percent-encoded (upper-case hex) except the
/// unreserved `A–Z a–z 0–9 - . _ ~`. Applied once: a `%` already in `s` becomes `%25`.
pub fn enc(s: &str) -> String {
    utf8_percent_encode(s, ENCODED).to_string()
}

/// A subscription of the 1.0 family or the 0.x one: which matcher kinds it holds.
fn family_of(kind: MatcherKind) -> Generation {
    match kind {
        MatcherKind::Selector => Generation::V0,
        MatcherKind::Exact | MatcherKind::UrlPattern => Generation::V1,
    }
}

/// The path naming a subscription's matcher: `{enc(selector)}` (0.x) or
/// `{match_type}/{enc(match)}` (1.0), after [`SUBSCRIPTIONS_PATH`].
fn matcher_path(spec: &TopicSpec) -> String {
    match spec.kind.match_type() {
        None => format!("{SUBSCRIPTIONS_PATH}/{}", enc(&spec.text)),
        Some(match_type) => format!("{SUBSCRIPTIONS_PATH}/{match_type}/{}", enc(&spec.text)),
    }
}

/// A subscription's topic, which is also its document's `id` (§7.2).
pub fn subscription_topic(spec: &TopicSpec, subscriber: &str) -> String {
    format!("{}/{}", matcher_path(spec), enc(subscriber))
}

/// One matcher of one connection (§7.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub spec: TopicSpec,
    /// The hub-generated `urn:uuid:…` of the connection.
    pub subscriber: String,
    pub active: bool,
    /// From [`Grants::payload_for`], fixed when the subscription starts.
    pub payload: Option<Value>,
}

impl Subscription {
    pub fn topic(&self) -> String {
        subscription_topic(&self.spec, &self.subscriber)
    }

    /// 0.x for a `topic` parameter, 1.0 for the others.
    pub fn family(&self) -> Generation {
        family_of(self.spec.kind)
    }

    /// The §7.2 document, as the update's data.
    pub fn event_data(&self) -> String {
        json(&self.document(true, None))
    }

    /// The private update announcing that this subscription started or ended (§7.2): no
    /// id (the hub generates one), and the `mercure` event type for the 1.0 family only.
    pub fn event(&self) -> Update {
        Update {
            topics: vec![self.topic()],
            data: self.event_data(),
            private: true,
            id: None,
            event_type: (self.family() == Generation::V1).then(|| RESERVED_EVENT_TYPE.to_string()),
            retry_ms: None,
        }
    }

    /// The subscriptions API's answer for this one subscription (§7.5): the 0.x document
    /// with `lastEventID` added, the 1.0 document unchanged.
    pub fn single_document(&self, last_event_id: &str) -> String {
        let cursor = (self.family() == Generation::V0).then_some(last_event_id);
        json(&self.document(true, cursor))
    }

    /// A 0.x document always has a `payload` (`{}` when the token gave none: clients read
    /// it unconditionally), and its `@context` unless a 0.x collection around it has one.
    fn document<'a>(&'a self, with_context: bool, last_event_id: Option<&'a str>) -> Document<'a> {
        match self.spec.kind.match_type() {
            None => Document::V0 {
                context: with_context.then_some(CONTEXT),
                id: self.topic(),
                kind: "Subscription",
                topic: &self.spec.text,
                subscriber: &self.subscriber,
                active: self.active,
                payload: self
                    .payload
                    .clone()
                    .unwrap_or_else(|| Value::Object(Map::new())),
                last_event_id,
            },
            Some(match_type) => Document::V1 {
                id: self.topic(),
                kind: "subscription",
                match_type,
                matcher: &self.spec.text,
                subscriber: &self.subscriber,
                active: self.active,
                payload: self.payload.as_ref(),
            },
        }
    }
}

/// A subscription's document, its members in the documented order.
#[derive(Serialize)]
#[serde(untagged)]
enum Document<'a> {
    V0 {
        #[serde(rename = "@context", skip_serializing_if = "Option::is_none")]
        context: Option<&'static str>,
        id: String,
        #[serde(rename = "type")]
        kind: &'static str,
        topic: &'a str,
        subscriber: &'a str,
        active: bool,
        payload: Value,
        #[serde(rename = "lastEventID", skip_serializing_if = "Option::is_none")]
        last_event_id: Option<&'a str>,
    },
    V1 {
        id: String,
        #[serde(rename = "type")]
        kind: &'static str,
        match_type: &'static str,
        #[serde(rename = "match")]
        matcher: &'a str,
        subscriber: &'a str,
        active: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<&'a Value>,
    },
}

#[derive(Serialize)]
struct Collection<'a> {
    #[serde(rename = "@context", skip_serializing_if = "Option::is_none")]
    context: Option<&'static str>,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "lastEventID", skip_serializing_if = "Option::is_none")]
    last_event_id: Option<&'a str>,
    subscriptions: Vec<Document<'a>>,
}

/// The `Content-Type` of the subscriptions API's answers in a family (§7.5).
pub fn content_type(family: Generation) -> &'static str {
    match family {
        Generation::V0 => "application/ld+json",
        Generation::V1 => "application/json",
    }
}

/// A collection document (§7.5) in `family`'s shape, listing `subscriptions` each in its
/// own shape. `request_path` is the path as received; `last_event_id` the last id in the
/// history, or `earliest`.
pub fn collection_document(
    family: Generation,
    request_path: &str,
    last_event_id: &str,
    subscriptions: &[Subscription],
) -> String {
    let v0 = family == Generation::V0;
    json(&Collection {
        context: v0.then_some(CONTEXT),
        id: request_path,
        kind: if v0 { "Subscriptions" } else { "subscriptions" },
        last_event_id: v0.then_some(last_event_id),
        subscriptions: subscriptions
            .iter()
            .map(|s| s.document(!v0, None))
            .collect(),
    })
}

fn json(doc: &impl Serialize) -> String {
    serde_json::to_string(doc).unwrap_or_default()
}

/// What a subscriptions API path names (§7.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiPath {
    /// Every active subscription.
    All,
    /// The active subscriptions with this matcher (0.x: a selector; 1.0: type and match).
    Collection(TopicSpec),
    /// One subscription: this matcher, of this subscriber.
    Single(TopicSpec, String),
}

/// A path whose selector or matcher is not UTF-8 once percent-decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiPathNotUtf8;

impl std::fmt::Display for ApiPathNotUtf8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the subscriptions path does not decode to UTF-8")
    }
}

impl std::error::Error for ApiPathNotUtf8 {}

impl ApiPath {
    /// Reads the raw (not decoded) remainder after [`SUBSCRIPTIONS_PATH`], with or without
    /// its leading `/`. A first segment `exact` or `urlpattern` followed by more is the
    /// 1.0 family; anything else the 0.x one. Slashes inside a selector or matcher are
    /// allowed: the last segment names a subscriber only when it decodes to one that
    /// `is_subscriber` knows and another segment (two in the 1.0 family, counting the
    /// type) precedes it; otherwise the whole rest, decoded, is the selector or matcher.
    pub fn parse(
        remainder: &str,
        is_subscriber: impl Fn(&str) -> bool,
    ) -> Result<ApiPath, ApiPathNotUtf8> {
        let rest = remainder.strip_prefix('/').unwrap_or(remainder);
        if rest.is_empty() {
            return Ok(ApiPath::All);
        }
        let (kind, rest) = match rest.split_once('/') {
            Some(("exact", rest)) => (MatcherKind::Exact, rest),
            Some(("urlpattern", rest)) => (MatcherKind::UrlPattern, rest),
            _ => (MatcherKind::Selector, rest),
        };
        let decode = |raw: &str| {
            percent_decode_str(raw)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| ApiPathNotUtf8)
        };
        if let Some((matcher, last)) = rest.rsplit_once('/') {
            if let Ok(subscriber) = decode(last) {
                if is_subscriber(&subscriber) {
                    return Ok(ApiPath::Single(
                        TopicSpec::new(kind, decode(matcher)?),
                        subscriber,
                    ));
                }
            }
        }
        Ok(ApiPath::Collection(TopicSpec::new(kind, decode(rest)?)))
    }

    /// The path in canonical form: [`SUBSCRIPTIONS_PATH`] and each part `enc`'d — what a
    /// subscription's topic looks like, and what a token may grant (§7.4).
    pub fn canonical_path(&self) -> String {
        match self {
            ApiPath::All => SUBSCRIPTIONS_PATH.to_string(),
            ApiPath::Collection(spec) => matcher_path(spec),
            ApiPath::Single(spec, subscriber) => subscription_topic(spec, subscriber),
        }
    }

    /// Whether `grants` may read this path (§7.4): `subscribe` on the request path as
    /// received (`raw_path`, without its query) or on its canonical form.
    pub fn is_authorized(&self, grants: &Grants, raw_path: &str) -> bool {
        grants.allows(Action::Subscribe, raw_path)
            || grants.allows(Action::Subscribe, &self.canonical_path())
    }

    /// The family of the answer: the path's, or for [`ApiPath::All`] the token's.
    pub fn family(&self, token: Generation) -> Generation {
        match self {
            ApiPath::All => token,
            ApiPath::Collection(spec) | ApiPath::Single(spec, _) => family_of(spec.kind),
        }
    }

    /// Whether `subscription` is listed (active, and of this matcher and subscriber).
    pub fn selects(&self, subscription: &Subscription) -> bool {
        subscription.active
            && match self {
                ApiPath::All => true,
                ApiPath::Collection(spec) => subscription.spec == *spec,
                ApiPath::Single(spec, subscriber) => {
                    subscription.spec == *spec && subscription.subscriber == *subscriber
                }
            }
    }
}

#[cfg(test)]
mod tests;
