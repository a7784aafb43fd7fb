//! Access tokens (§3.3–§3.7): an HS256 compact JWS, verified in constant time with the
//! role's key, read as a 0.x or a 1.0 token, and turned into [`Grants`].
//!
//! Only the key given is ever tried: the header's key hints (`jwk`, `jku`, `x5u`, `kid`)
//! are never read, and `alg` must be exactly `HS256`. Every failure is the same
//! [`TokenError`] to the outside; its [`reason`](TokenError::reason) is for logs and tests.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::budget::{MatcherBudget, MatcherLimits};
use super::topic::{
    check_matcher_text, write_class_text, MatcherError, MatcherKind, TopicMatcher, TopicSpec,
};

/// How far in the future `nbf` may be, for clocks that disagree a little (§3.6).
pub const NBF_LEEWAY_S: u64 = 5;

/// The `authorization_details` type of Mercure entries (§3.6).
pub const DETAIL_TYPE: &str = "https://mercure.rocks/authorization-detail";

/// At most this many Mercure entries in a 1.0 token, and this many topic objects in all of
/// them together (§3.6): each may cost a URL pattern compilation.
pub const MAX_DETAILS: usize = 100;
pub const MAX_DETAIL_TOPICS: usize = 100;

/// At most this many entries in a 0.x `publish` or `subscribe` array (§3.5). The draft sets
/// none for 0.x; this is the reference hub's (v0.24.2) bound, so that a token cannot make
/// every request compile an unbounded list.
pub const MAX_V0_SELECTORS: usize = 1000;

/// What a hub needs to judge a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenContext {
    /// The current time, in seconds since the Unix epoch.
    pub now_s: u64,
    /// `MERCURE_ISSUERS`: the `iss` values accepted in 1.0 tokens (none: no 1.0 token).
    pub issuers: Vec<String>,
    /// R: the audience 1.0 tokens must name, and the base of relative URL patterns.
    pub resource: String,
    /// What the token's matchers may cost compiled, all of them together within
    /// `subscriber_bytes` (a token over it is invalid, like any other bad token).
    pub limits: MatcherLimits,
}

/// Which protocol generation a token follows (§3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Generation {
    V0,
    V1,
}

/// What a token may grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Publish,
    Subscribe,
}

/// A presented token that cannot be used. One kind: the hub answers 401 `invalid_token`
/// whatever the reason (§3.8), so that failures disclose nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenError {
    reason: &'static str,
}

impl TokenError {
    /// Why, for logs and tests; never for the client.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

fn invalid(reason: &'static str) -> TokenError {
    TokenError { reason }
}

impl fmt::Debug for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenError({:?})", self.reason)
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid token")
    }
}

impl std::error::Error for TokenError {}

/// What a valid token grants. The Worker verifies the token and hands the grants to the
/// hub object as their [`GrantsSpec`] (matchers as written), which the object compiles
/// within the subscriber's budget.
#[derive(Debug, Clone)]
pub struct Grants {
    generation: Generation,
    exp: Option<u64>,
    /// R, which relative URL patterns were resolved against.
    base: String,
    /// A 0.x token has two: its `publish` and its `subscribe` selectors.
    details: Vec<Detail>,
    /// A 0.x token's `payload`; 1.0 payloads are per entry.
    payload: Option<Value>,
}

#[derive(Debug, Clone)]
struct Detail {
    publish: bool,
    subscribe: bool,
    topics: Vec<TopicMatcher>,
    payload: Option<Value>,
}

impl Detail {
    fn grants(&self, action: Action) -> bool {
        match action {
            Action::Publish => self.publish,
            Action::Subscribe => self.subscribe,
        }
    }
}

impl Grants {
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The token's `exp`, in whole seconds (rounded down, so "no later than" holds).
    pub fn exp(&self) -> Option<u64> {
        self.exp
    }

    /// Whether the token grants `action` on `topic` (§3.7).
    pub fn allows(&self, action: Action, topic: &str) -> bool {
        self.details
            .iter()
            .filter(|d| d.grants(action))
            .any(|d| d.topics.iter().any(|m| m.matches(topic)))
    }

    /// Whether the token grants `action` on every one of `topics`: what publishing needs
    /// (§4.5).
    pub fn allows_all<S: AsRef<str>>(&self, action: Action, topics: &[S]) -> bool {
        topics.iter().all(|t| self.allows(action, t.as_ref()))
    }

    /// Whether the token grants `action` on at least one of `topics`: what receiving a
    /// private update needs (§6.6).
    pub fn allows_any<S: AsRef<str>>(&self, action: Action, topics: &[S]) -> bool {
        topics.iter().any(|t| self.allows(action, t.as_ref()))
    }

    /// The payload attached to `subscription` (§7.2): a 0.x token's `payload`; for a 1.0
    /// token, the `payload` of the first `subscribe` entry one of whose topics matches the
    /// subscription's own matcher text taken as a topic (none if that entry has none).
    pub fn payload_for(&self, subscription: &TopicSpec) -> Option<Value> {
        match self.generation {
            Generation::V0 => self.payload.clone(),
            Generation::V1 => self
                .details
                .iter()
                .filter(|d| d.subscribe)
                .find(|d| d.topics.iter().any(|m| m.matches(&subscription.text)))
                .and_then(|d| d.payload.clone()),
        }
    }

    /// The grants as written, for passing on.
    pub fn spec(&self) -> GrantsSpec {
        GrantsSpec::from(self.clone())
    }

    /// What decides which private updates the grants open (§6.6): the base their
    /// matchers were compiled against and their `subscribe` matchers, in order, each
    /// written unambiguously (see [`TopicSpec::write_class`]).
    pub fn subscribe_class(&self, out: &mut String) {
        write_class_text(out, &self.base);
        for detail in self.details.iter().filter(|d| d.subscribe) {
            out.push('[');
            for topic in &detail.topics {
                topic.spec().write_class(out);
            }
            out.push(']');
        }
    }

    /// The cost of the grants' compiled matchers, in bytes.
    pub fn cost(&self) -> usize {
        self.details
            .iter()
            .flat_map(|d| &d.topics)
            .map(TopicMatcher::cost)
            .sum()
    }
}

pub use wire::Grants as GrantsSpec;

/// Verifies `token` with `key` (the role's HMAC secret) and reads its grants, their
/// matchers compiled within `ctx.limits`: for where they are used (a publish's topics).
pub fn verify(token: &str, key: &[u8], ctx: &TokenContext) -> Result<Grants, TokenError> {
    read(token, key, ctx, true)
}

/// As [`verify`], with the matchers only checked, not compiled: for grants passed on to the
/// hub object, which compiles them where it uses them (a subscriber's, the subscriptions
/// API's). What compiling may still refuse is size, which the object answers as an invalid
/// token.
pub fn verify_spec(token: &str, key: &[u8], ctx: &TokenContext) -> Result<GrantsSpec, TokenError> {
    read(token, key, ctx, false).map(|grants| grants.spec())
}

fn read(token: &str, key: &[u8], ctx: &TokenContext, build: bool) -> Result<Grants, TokenError> {
    if key.is_empty() {
        return Err(invalid("no key"));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("not a compact JWS"));
    };
    let header = json_object(header_b64).ok_or(invalid("header is not a base64url JSON object"))?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(invalid("alg is not HS256"));
    }
    if header.contains_key("crit") {
        // RFC 7515 §4.1.11: extensions the hub does not understand (it understands none).
        return Err(invalid("crit header"));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| invalid("signature is not base64url"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| invalid("no key"))?;
    mac.update(header_b64.as_bytes());
    mac.update(b".");
    mac.update(claims_b64.as_bytes());
    // Constant time: `verify_slice` compares without an early exit.
    mac.verify_slice(&signature)
        .map_err(|_| invalid("bad signature"))?;

    let claims =
        json_object(claims_b64).ok_or(invalid("claims are not a base64url JSON object"))?;
    let generation = if claims.contains_key("authorization_details") {
        Generation::V1
    } else {
        Generation::V0
    };
    let exp = check_times(&claims, ctx.now_s, generation)?;
    let mut compiler = Compiler {
        base: &ctx.resource,
        budget: MatcherBudget::new(ctx.limits),
        build,
    };
    let (details, payload) = match generation {
        Generation::V0 => v0_grants(&claims, &mut compiler)?,
        Generation::V1 => (v1_grants(&header, &claims, ctx, &mut compiler)?, None),
    };
    Ok(Grants {
        generation,
        exp,
        base: ctx.resource.clone(),
        details,
        payload,
    })
}

/// Compiles a token's matchers against R, all within one budget, or (`build` false) only
/// checks them.
struct Compiler<'a> {
    base: &'a str,
    budget: MatcherBudget,
    build: bool,
}

impl Compiler<'_> {
    fn matcher(
        &mut self,
        spec: &TopicSpec,
        reason: &'static str,
    ) -> Result<TopicMatcher, TokenError> {
        let matcher = match self.build {
            true => TopicMatcher::compile(spec, self.base, &mut self.budget),
            false => TopicMatcher::unbuilt(spec, self.base),
        };
        matcher.map_err(|e| match e {
            MatcherError::TooComplex(_) => invalid("matchers too complex"),
            _ => invalid(reason),
        })
    }
}

fn json_object(b64: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(b64).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// `exp` (required for 1.0) must be in the future, `nbf` not more than [`NBF_LEEWAY_S`]
/// ahead; both are NumericDates (any JSON number). Returns `exp` rounded down.
fn check_times(
    claims: &Map<String, Value>,
    now_s: u64,
    generation: Generation,
) -> Result<Option<u64>, TokenError> {
    let now = now_s as f64;
    let exp = numeric_date(claims, "exp").ok_or(invalid("exp is not a number"))?;
    let nbf = numeric_date(claims, "nbf").ok_or(invalid("nbf is not a number"))?;
    match exp {
        None if generation == Generation::V1 => return Err(invalid("1.0 token without exp")),
        Some(exp) if now >= exp => return Err(invalid("expired")),
        _ => {}
    }
    if nbf.is_some_and(|nbf| nbf > now + NBF_LEEWAY_S as f64) {
        return Err(invalid("not yet valid (nbf)"));
    }
    // A float-to-integer `as` saturates: a huge `exp` becomes u64::MAX.
    Ok(exp.map(|exp| exp.floor() as u64))
}

/// `Some(None)` when absent or null, `None` when present but not a number.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Option<Option<f64>> {
    match claims.get(name) {
        None | Some(Value::Null) => Some(None),
        Some(value) => value.as_f64().map(Some),
    }
}

/// The 0.x claim (§3.5): `https://mercure.rocks/` if present, else `mercure`.
fn v0_grants(
    claims: &Map<String, Value>,
    compiler: &mut Compiler,
) -> Result<(Vec<Detail>, Option<Value>), TokenError> {
    let claim = ["https://mercure.rocks/", "mercure"]
        .iter()
        .find_map(|name| claims.get(*name).filter(|v| !v.is_null()));
    let empty = Map::new();
    let claim = match claim {
        None => &empty,
        Some(Value::Object(claim)) => claim,
        Some(_) => return Err(invalid("mercure claim is not an object")),
    };
    let mut selectors = |name: &str, publish: bool| -> Result<Detail, TokenError> {
        let entries = match claim.get(name) {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(entries)) => entries.as_slice(),
            Some(_) => return Err(invalid("publish or subscribe is not an array")),
        };
        if entries.len() > MAX_V0_SELECTORS {
            return Err(invalid("too many selectors"));
        }
        let topics = entries
            .iter()
            .map(|entry| match entry {
                Value::String(selector) => {
                    let spec = TopicSpec::new(MatcherKind::Selector, selector.as_str());
                    compiler.matcher(&spec, "bad selector")
                }
                Value::Object(_) => topic_object(entry, compiler),
                _ => Err(invalid(
                    "a selector is neither a string nor a matcher object",
                )),
            })
            .collect::<Result<_, _>>()?;
        Ok(Detail {
            publish,
            subscribe: !publish,
            topics,
            payload: None,
        })
    };
    let details = vec![selectors("publish", true)?, selectors("subscribe", false)?];
    let payload = claim.get("payload").filter(|v| !v.is_null()).cloned();
    Ok((details, payload))
}

/// The 1.0 claims (§3.6): `typ`, `iss`, `aud`, and the Mercure `authorization_details`,
/// all of which must be valid (no partial acceptance).
fn v1_grants(
    header: &Map<String, Value>,
    claims: &Map<String, Value>,
    ctx: &TokenContext,
    compiler: &mut Compiler,
) -> Result<Vec<Detail>, TokenError> {
    let typ = header
        .get("typ")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let media_type = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    if !media_type.eq_ignore_ascii_case("at+jwt") {
        return Err(invalid("typ is not at+jwt"));
    }
    let iss = claims.get("iss").and_then(Value::as_str);
    if !iss.is_some_and(|iss| ctx.issuers.iter().any(|accepted| accepted == iss)) {
        return Err(invalid("issuer not accepted"));
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == ctx.resource,
        Some(Value::Array(auds)) => {
            if !auds.iter().all(Value::is_string) {
                return Err(invalid("aud holds a non-string"));
            }
            auds.iter()
                .any(|aud| aud.as_str() == Some(ctx.resource.as_str()))
        }
        _ => false,
    };
    if !audience_ok {
        return Err(invalid("audience is not this hub"));
    }
    let Some(Value::Array(entries)) = claims.get("authorization_details") else {
        return Err(invalid("authorization_details is not an array"));
    };
    let mut mercure = Vec::new();
    for entry in entries {
        let Value::Object(entry) = entry else {
            return Err(invalid("an authorization detail is not an object"));
        };
        if entry.get("type").and_then(Value::as_str) == Some(DETAIL_TYPE) {
            mercure.push(entry);
        }
    }
    if mercure.len() > MAX_DETAILS {
        return Err(invalid("too many Mercure authorization details"));
    }
    let topic_count: usize = mercure
        .iter()
        .map(|e| {
            e.get("topics")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        })
        .sum();
    if topic_count > MAX_DETAIL_TOPICS {
        return Err(invalid("too many topics in authorization details"));
    }
    mercure
        .into_iter()
        .map(|entry| mercure_detail(entry, compiler))
        .collect()
}

fn mercure_detail(
    entry: &Map<String, Value>,
    compiler: &mut Compiler,
) -> Result<Detail, TokenError> {
    let actions = match entry.get("actions") {
        Some(Value::Array(actions)) if !actions.is_empty() => actions,
        _ => return Err(invalid("actions is not a non-empty array")),
    };
    let mut detail = Detail {
        publish: false,
        subscribe: false,
        topics: Vec::new(),
        payload: None,
    };
    for action in actions {
        // Unknown actions grant nothing (they may be a later specification's).
        match action.as_str() {
            Some("publish") => detail.publish = true,
            Some("subscribe") => detail.subscribe = true,
            Some(_) => {}
            None => return Err(invalid("an action is not a string")),
        }
    }
    detail.topics = match entry.get("topics") {
        Some(Value::Array(topics)) if !topics.is_empty() => topics
            .iter()
            .map(|topic| topic_object(topic, compiler))
            .collect::<Result<_, _>>()?,
        _ => return Err(invalid("topics is not a non-empty array")),
    };
    detail.payload = match entry.get("payload") {
        None | Some(Value::Null) => None,
        Some(payload @ Value::Object(_)) => Some(payload.clone()),
        Some(_) => return Err(invalid("payload is not an object")),
    };
    Ok(detail)
}

/// `{"match": <non-empty string>, "match_type": "exact" | "urlpattern"}`, `match_type`
/// defaulting to `exact`; the value rules of a subscribe matcher apply to `match`.
fn topic_object(topic: &Value, compiler: &mut Compiler) -> Result<TopicMatcher, TokenError> {
    let Value::Object(topic) = topic else {
        return Err(invalid("a topic is not a matcher object"));
    };
    let text = match topic.get("match") {
        Some(Value::String(text)) if !text.is_empty() => text,
        _ => return Err(invalid("match is not a non-empty string")),
    };
    let kind = match topic.get("match_type") {
        None | Some(Value::Null) => MatcherKind::Exact,
        Some(Value::String(name)) => {
            MatcherKind::from_match_type(name).ok_or(invalid("unknown match_type"))?
        }
        Some(_) => return Err(invalid("match_type is not a string")),
    };
    check_matcher_text(text)
        .map_err(|_| invalid("match is too long or has a control character"))?;
    compiler.matcher(
        &TopicSpec::new(kind, text.as_str()),
        "unparsable URL pattern",
    )
}

/// The form grants travel in between the Worker and the hub object.
mod wire;
