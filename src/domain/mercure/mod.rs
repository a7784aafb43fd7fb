//! The Mercure hub's rules (`/.well-known/mercure`), pure and runtime-agnostic: topic
//! matching, token verification, the publish form, the subscribe query and the active
//! subscriptions' documents and paths. The platform reads requests, asks these, and answers.
//!
//! Section numbers (§) refer to the items of `docs/mercure.md`.

pub mod budget;
pub mod listing;
pub mod subscribe;
pub mod subscriber;
pub mod subscriptions;
mod template;
pub mod text;
pub mod token;
pub mod topic;
pub mod update;

pub use budget::{MatcherBudget, MatcherLimits};
pub use subscribe::{QueryError, SubscribeQuery};
pub use subscriptions::{enc, ApiPath, Subscription, SUBSCRIPTIONS_PATH};
pub use token::{
    verify, verify_spec, Action, Generation, Grants, GrantsSpec, TokenContext, TokenError,
    DETAIL_TYPE,
};
pub use topic::{MatcherError, MatcherKind, TopicMatcher, TopicSpec};
pub use update::{receives, FieldLimits, Update, UpdateError, UpdateForm};

/// The hub's own path; topics under it are the hub's (§4.4, §7).
pub const HUB_PATH: &str = "/.well-known/mercure";

/// The hub's counters, for its operators (not a Mercure route): like a channel's stats,
/// behind the publisher credential.
pub const STATS_PATH: &str = "/.well-known/mercure/stats";

/// Where the hub's protected-resource metadata is served (§2.3, §9.2).
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/.well-known/mercure";

/// The cursor that asks for every kept update (§6.9), so no update may take it as its id
/// (§4.4); also the `Last-Event-ID` a subscriber gets when its cursor is not kept.
pub const EARLIEST: &str = "earliest";

/// R, the hub's resource identifier, for a request that arrived at `origin` (its scheme,
/// host and port).
pub fn resource(origin: &str) -> String {
    format!("{origin}{HUB_PATH}")
}

/// The metadata URL (§9.2) of the hub whose R is `resource`, named in every challenge
/// (§3.8).
pub fn metadata_url(resource: &str) -> String {
    let origin = resource.strip_suffix(HUB_PATH).unwrap_or(resource);
    format!("{origin}{METADATA_PATH}")
}

/// At most this many matchers in one subscribe request (§6.2).
pub const MAX_MATCHERS: usize = 100;

/// A matcher is at most this many bytes (§6.2).
pub const MAX_MATCHER_BYTES: usize = 4096;

/// `urn:uuid:` and the version-4 UUID made of `random` (16 bytes from a secure random
/// source, which only the platform has): the ids the hub generates for updates (§4.6) and
/// for subscribers (§7.1).
pub fn urn_uuid(mut random: [u8; 16]) -> String {
    random[6] = (random[6] & 0x0F) | 0x40;
    random[8] = (random[8] & 0x3F) | 0x80;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_id_is_a_version_4_urn_uuid() {
        assert_eq!(
            urn_uuid([0; 16]),
            "urn:uuid:00000000-0000-4000-8000-000000000000"
        );
        assert_eq!(
            urn_uuid([0xFF; 16]),
            "urn:uuid:ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
    }

    #[test]
    fn the_subscriptions_and_metadata_paths_follow_the_hub_path() {
        assert_eq!(SUBSCRIPTIONS_PATH, format!("{HUB_PATH}/subscriptions"));
        assert_eq!(STATS_PATH, format!("{HUB_PATH}/stats"));
        assert_eq!(
            METADATA_PATH,
            format!("/.well-known/oauth-protected-resource{HUB_PATH}")
        );
    }

    #[test]
    fn r_and_the_metadata_url_are_made_from_the_origin() {
        let r = resource("http://127.0.0.1:8787");
        assert_eq!(r, "http://127.0.0.1:8787/.well-known/mercure");
        assert_eq!(
            metadata_url(&r),
            "http://127.0.0.1:8787/.well-known/oauth-protected-resource/.well-known/mercure"
        );
    }
}
