//! What a stream's objects answer: its stats (a channel's, the hub's), and what a
//! channel's publish did.

use serde_json::{json, Map, Value};

use crate::domain::history::EventId;
use crate::domain::stream::Counters;

/// What `GET /channels/{name}` reports: for one object, or summed over the objects of a
/// channel's tree (listeners, deliveries and drops add up; ids and history are the
/// root's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    pub listeners: usize,
    /// Listeners whose seats sleep with their object (the entry Worker holds their
    /// streams), among `listeners`.
    pub sleeping: usize,
    /// How many times the stream's objects started (the platform counts them: an object
    /// that sleeps between events starts again for the next one).
    pub starts: u64,
    pub counters: Counters,
    /// The last id given out (0: none yet).
    pub last_id: EventId,
    pub history_length: u64,
    /// Objects serving the channel.
    pub objects: u64,
}

impl StreamStats {
    pub fn to_json(&self, channel: &str) -> Value {
        let mut stats = self.counts();
        stats.insert("channel".into(), json!(channel));
        stats.insert("listeners".into(), json!(self.listeners));
        let last_id = (self.last_id.0 > 0).then(|| self.last_id.to_string());
        stats.insert("lastId".into(), json!(last_id));
        Value::Object(stats)
    }

    /// The hub's stats (`GET /.well-known/mercure/stats`): the same counters, named for
    /// subscribers; its sequence numbers are not ids anyone sees, so none is shown.
    pub fn to_hub_json(&self) -> Value {
        let mut stats = self.counts();
        stats.insert("subscribers".into(), json!(self.listeners));
        Value::Object(stats)
    }

    /// What both faces report alike.
    fn counts(&self) -> Map<String, Value> {
        [
            ("published", self.counters.published),
            ("delivered", self.counters.delivered),
            ("droppedSlow", self.counters.dropped_slow),
            ("droppedGone", self.counters.dropped_gone),
            ("historyLength", self.history_length),
            ("objects", self.objects),
            ("starts", self.starts),
            ("sleeping", self.sleeping as u64),
        ]
        .into_iter()
        .map(|(name, n)| (name.to_string(), json!(n)))
        .collect()
    }

    /// Reads back what [`StreamStats::to_json`] wrote (a child object's report).
    pub fn from_json(value: &Value) -> Option<StreamStats> {
        let number = |name: &str| value.get(name).and_then(Value::as_u64);
        Some(StreamStats {
            listeners: number("listeners")? as usize,
            sleeping: number("sleeping")? as usize,
            starts: number("starts")?,
            counters: Counters {
                published: number("published")?,
                delivered: number("delivered")?,
                dropped_slow: number("droppedSlow")?,
                dropped_gone: number("droppedGone")?,
            },
            last_id: match value.get("lastId").and_then(Value::as_str) {
                Some(id) => EventId::parse(id).ok()?,
                None => EventId(0),
            },
            history_length: number("historyLength")?,
            objects: number("objects")?,
        })
    }

    /// Adds a subtree's listeners, deliveries, drops and objects to these.
    pub fn absorb(&mut self, below: &StreamStats) {
        self.listeners += below.listeners;
        self.sleeping += below.sleeping;
        self.starts += below.starts;
        self.counters.add_deliveries(&below.counters);
        self.objects += below.objects;
    }
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub id: EventId,
    /// Listeners the event is going to.
    pub listeners: usize,
}

impl Published {
    pub fn to_json(&self) -> Value {
        json!({ "id": self.id.to_string(), "listeners": self.listeners })
    }
}

/// What a batch publish did: its events have the ids `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishedBatch {
    pub first: EventId,
    pub last: EventId,
    pub listeners: usize,
}

impl PublishedBatch {
    /// How many events it published (none: `first` is past `last`).
    pub fn count(&self) -> u64 {
        (self.last.0 + 1).saturating_sub(self.first.0)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "firstId": self.first.to_string(),
            "lastId": self.last.to_string(),
            "count": self.count(),
            "listeners": self.listeners,
        })
    }

    /// What ending the stream did: its last id, and the events published with the ending
    /// (`count`, from `firstId`, when there were any).
    pub fn to_end_json(&self) -> Value {
        let count = self.count();
        let mut answer = json!({
            "ended": true,
            "lastId": self.last.to_string(),
            "count": count,
            "listeners": self.listeners,
        });
        if count > 0 {
            answer["firstId"] = json!(self.first.to_string());
        }
        answer
    }
}

/// What a streaming publish has published so far: one batch per chunk of whole lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishedStream {
    pub first: Option<EventId>,
    pub last: Option<EventId>,
    pub count: u64,
}

impl PublishedStream {
    pub fn add(&mut self, batch: &PublishedBatch) {
        if batch.count() > 0 {
            self.first.get_or_insert(batch.first);
            self.last = Some(batch.last);
            self.count += batch.count();
        }
    }

    /// The answer once its body ended well: what it published, and, when it ended the
    /// stream after, the stream's last id.
    pub fn to_json(&self, listeners: u64, ended: Option<EventId>) -> Value {
        let id = |id: Option<EventId>| id.map(|id| id.to_string());
        let mut answer = json!({
            "firstId": id(self.first),
            "lastId": id(ended.or(self.last)),
            "count": self.count,
            "listeners": listeners,
        });
        if ended.is_some() {
            answer["ended"] = json!(true);
        }
        answer
    }
}

/// What a streaming publish that stopped had published before, for its error.
impl std::fmt::Display for PublishedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.first, self.last) {
            (Some(first), Some(last)) => write!(
                f,
                "the {} events before it were published (ids {first} to {last})",
                self.count
            ),
            _ => f.write_str("nothing was published"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: u64, last: u64) -> PublishedBatch {
        PublishedBatch {
            first: EventId(first),
            last: EventId(last),
            listeners: 2,
        }
    }

    #[test]
    fn a_streaming_publish_adds_up_its_batches_and_says_what_it_published() {
        let mut streamed = PublishedStream::default();
        assert_eq!(streamed.to_string(), "nothing was published");
        streamed.add(&batch(4, 3)); // a chunk with no whole line
        streamed.add(&batch(4, 6));
        streamed.add(&batch(7, 7));
        assert_eq!(streamed.count, 4);
        assert_eq!(
            streamed.to_string(),
            "the 4 events before it were published (ids 4 to 7)"
        );
        assert_eq!(
            streamed.to_json(2, None),
            json!({"firstId": "4", "lastId": "7", "count": 4, "listeners": 2})
        );
        assert_eq!(
            PublishedStream::default().to_json(0, Some(EventId(9))),
            json!({"firstId": null, "lastId": "9", "count": 0, "listeners": 0, "ended": true})
        );
    }
}
