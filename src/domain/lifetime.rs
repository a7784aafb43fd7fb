//! Finite lifetimes: how long a channel that ended keeps its history before its objects
//! delete their storage, when a channel left without publishes ends on its own, and how
//! long the name of a deleted channel still says what became of it (its *grave*).

use serde::{Deserialize, Serialize};

use super::history::{Ending, EventId};

/// The settings of finite lifetimes (`ENDED_TTL_SECONDS`, `IDLE_END_SECONDS`,
/// `GRAVE_SECONDS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// How long a channel that ended keeps its history (resumes and late listeners get
    /// it), in milliseconds; then its storage is deleted.
    pub ended_ttl_ms: u64,
    /// A channel with no publish for this long ends on its own, in milliseconds; none:
    /// never.
    pub idle_end_ms: Option<u64>,
    /// How long a deleted channel's name answers `410 Gone`, in milliseconds; then the
    /// name is free, as if never used.
    pub grave_ms: u64,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            ended_ttl_ms: 86_400_000,
            idle_end_ms: None,
            grave_ms: 30 * 86_400_000,
        }
    }
}

/// What a channel's root has to do next of its lifetime, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// End the channel, which has had no publish for `IDLE_END_SECONDS`.
    End { at_ms: u64 },
    /// Delete the channel's storage, its history's time after the end being up.
    Delete { at_ms: u64 },
}

impl Due {
    pub fn at_ms(&self) -> u64 {
        match self {
            Due::End { at_ms } | Due::Delete { at_ms } => *at_ms,
        }
    }

    /// The same step, not before `earliest_ms` (one that failed waits a little).
    pub fn not_before(self, earliest_ms: u64) -> Due {
        match self {
            Due::End { at_ms } => Due::End {
                at_ms: at_ms.max(earliest_ms),
            },
            Due::Delete { at_ms } => Due::Delete {
                at_ms: at_ms.max(earliest_ms),
            },
        }
    }
}

impl Lifetimes {
    /// What is due next on a channel that `ended` (or not), whose last publish was at
    /// `last_publish_ms` (none: it never published, and has nothing to end).
    pub fn due(&self, ended: Option<Ending>, last_publish_ms: Option<u64>) -> Option<Due> {
        match ended {
            Some(ending) => Some(Due::Delete {
                at_ms: ending.at_ms.saturating_add(self.ended_ttl_ms),
            }),
            None => Some(Due::End {
                at_ms: last_publish_ms?.saturating_add(self.idle_end_ms?),
            }),
        }
    }

    /// What is due at `now_ms`, if anything is.
    pub fn due_now(
        &self,
        ended: Option<Ending>,
        last_publish_ms: Option<u64>,
        now_ms: u64,
    ) -> Option<Due> {
        self.due(ended, last_publish_ms)
            .filter(|due| due.at_ms() <= now_ms)
    }
}

/// What a deleted channel leaves behind, kept apart from it: how it ended, and when it
/// was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grave {
    pub last_id: u64,
    pub ended_at_ms: u64,
    pub deleted_at_ms: u64,
}

impl Grave {
    pub fn of(ending: Ending, deleted_at_ms: u64) -> Grave {
        Grave {
            last_id: ending.last_id.0,
            ended_at_ms: ending.at_ms,
            deleted_at_ms,
        }
    }

    /// Whether the name still answers for it at `now_ms`.
    pub fn stands(&self, lifetimes: &Lifetimes, now_ms: u64) -> bool {
        now_ms < self.deleted_at_ms.saturating_add(lifetimes.grave_ms)
    }
}

/// A listen, publish or any call on a channel whose storage was deleted after it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelGone(pub Grave);

impl std::fmt::Display for ChannelGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the channel ended (its last id was {}) and its history was deleted",
            EventId(self.0.last_id)
        )
    }
}

impl std::error::Error for ChannelGone {}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1000;

    fn lifetimes(idle: Option<u64>) -> Lifetimes {
        Lifetimes {
            ended_ttl_ms: 60 * SECOND,
            idle_end_ms: idle,
            grave_ms: 600 * SECOND,
        }
    }

    #[test]
    fn an_ended_channel_is_deleted_its_ttl_after_the_end() {
        let ending = Ending {
            last_id: EventId(7),
            at_ms: 1_000 * SECOND,
        };
        let l = lifetimes(Some(5 * SECOND));
        assert_eq!(
            l.due(Some(ending), Some(999 * SECOND)),
            Some(Due::Delete {
                at_ms: 1_060 * SECOND
            }),
            "once ended, only the deletion is due"
        );
        assert_eq!(l.due_now(Some(ending), None, 1_059 * SECOND), None);
        let delete = l.due(Some(ending), None).unwrap();
        assert_eq!(delete.not_before(1_070 * SECOND).at_ms(), 1_070 * SECOND);
        assert_eq!(
            delete.not_before(5).at_ms(),
            1_060 * SECOND,
            "never earlier"
        );
        assert!(l.due_now(Some(ending), None, 1_060 * SECOND).is_some());
    }

    #[test]
    fn a_channel_ends_on_its_own_only_when_set_to_and_after_publishing() {
        assert_eq!(
            lifetimes(None).due(None, Some(5)),
            None,
            "never, by default"
        );
        let l = lifetimes(Some(30 * SECOND));
        assert_eq!(l.due(None, None), None, "nothing published: nothing to end");
        assert_eq!(
            l.due(None, Some(100 * SECOND)),
            Some(Due::End {
                at_ms: 130 * SECOND
            })
        );
        assert_eq!(l.due_now(None, Some(100 * SECOND), 129 * SECOND), None);
    }

    #[test]
    fn a_grave_stands_for_its_time_and_says_how_the_channel_ended() {
        let grave = Grave::of(
            Ending {
                last_id: EventId(42),
                at_ms: 10,
            },
            100 * SECOND,
        );
        let l = lifetimes(None);
        assert!(grave.stands(&l, 699 * SECOND));
        assert!(!grave.stands(&l, 700 * SECOND));
        let text = ChannelGone(grave).to_string();
        assert!(text.contains("42") && text.contains("deleted"), "{text}");
    }
}
