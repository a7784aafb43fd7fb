//! A seat: one stream the object writes to, with where it has got to and what it takes.

use super::route::Filter;
use crate::domain::history::EventId;

/// A listener's seat: the last event its stream carries (it gets only later ones), and
/// its filter.
#[derive(Debug, Clone)]
pub struct Seat<F: Filter> {
    pub after: EventId,
    pub filter: F,
}
