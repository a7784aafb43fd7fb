//! A channel's lifetime on its root (see `domain::lifetime`): what follows its end (the
//! alarm armed for its deletion, its name kept for a fresh instance to find), its end when
//! left idle and its deletion at the alarm, and the graves: a deleted channel's name
//! answers 410, from this instance's memory and, once it is gone, from the `Graves`
//! objects.

use super::channel::Channels;
use super::{Hosted, StreamObject};
use crate::domain::{ChannelGone, ChannelName, Due, Grave, Message, NodePath, PublishedBatch};
use crate::platform::contract::{GraveCall, Target};
use crate::platform::error::Error;
use crate::platform::host::now_ms;

/// The key, in the object's key-value storage, of the name of a channel that ended: how
/// the alarm of a fresh instance (which knows nothing else) finds which channel it is,
/// should the runtime not tell it.
const NAME_KEY: &str = "channel";

/// On a channel's root, what of its lifetime comes next (nothing once it is deleted).
pub(super) fn due(h: &Hosted<Channels>) -> Option<Due> {
    if !h.stream.path().is_root() || h.face.gone.is_some() {
        return None;
    }
    let lifetimes = h.config.lifetimes;
    let due = lifetimes.due(h.stream.ending(), h.stream.last_publish_ms())?;
    if matches!(due, Due::End { .. }) && h.face.streaming > 0 {
        return None; // armed again by the publish's next lines, or its end
    }
    // A step that failed is tried again a little later, not at once.
    Some(due.not_before(h.face.retry_at))
}

/// How long a lifetime step that failed (the graves could not be reached, storage
/// failed) waits before it is tried again.
const RETRY_MS: u64 = 10_000;

impl StreamObject<Channels> {
    /// The alarm's lifetime step failed: it is tried again in [`RETRY_MS`].
    pub(super) fn live_out_failed(&self, e: &Error) {
        worker::console_error!("a channel's lifetime step failed: {e}");
        if self.host.is_open() {
            self.with(|h| h.face.retry_at = now_ms() + RETRY_MS);
        }
    }

    /// Ends the stream after `last` (by a call, or at the alarm), then keeps the channel's
    /// name for the alarm, and arms the alarm for the deletion.
    pub(super) async fn end(&self, last: &[Message]) -> Result<PublishedBatch, Error> {
        let ended = self.with(|h| h.stream.end(last, now_ms()))?;
        if let Target::Channel(channel) = self.target() {
            self.state.storage().put(NAME_KEY, channel.as_str()).await?;
        }
        self.published().await?;
        Ok(ended)
    }

    /// On the root: answers 410 when its channel was deleted after it ended. A root with
    /// nothing stored asks the graves once per instance (unless graves are kept for no
    /// time). When they cannot be asked, a call that would write (`writes`) is refused
    /// for now (503), so that a deleted name is not started again by mistake; a read goes
    /// on.
    pub(super) async fn check_grave(&self, writes: bool) -> Result<(), Error> {
        let (gone, fresh, grave_ms, target) = self.with(|h| {
            let fresh =
                !h.face.looked_up && h.stream.last_id().0 == 0 && h.stream.ending().is_none();
            (
                h.face.gone,
                fresh,
                h.config.lifetimes.grave_ms,
                h.target.clone(),
            )
        });
        if let Some(grave) = gone {
            return Err(ChannelGone(grave).into());
        }
        let Target::Channel(channel) = target else {
            return Ok(());
        };
        if !fresh || grave_ms == 0 {
            return Ok(());
        }
        match GraveCall::Find(channel).send(&self.env).await {
            Ok(Some(grave)) => Err(ChannelGone(grave).into()),
            Ok(None) => {
                self.with(|h| h.face.looked_up = true);
                Ok(())
            }
            Err(e) => {
                worker::console_error!("the graves could not be asked: {e}");
                match writes {
                    true => Err(Error::TreeBusy("the graves cannot be asked now")),
                    false => Ok(()),
                }
            }
        }
    }

    /// At the alarm: ends the channel when it was left idle, or deletes its storage once
    /// its history's time after the end is up. A root woken with nothing open opens from
    /// its name. Says whether the channel is gone now.
    pub(super) async fn live_out(&self) -> Result<bool, Error> {
        if !self.host.is_open() && self.state.get_websockets().is_empty() {
            let name = match self.state.id().name() {
                Some(name) => Some(name),
                None => self.state.storage().get::<String>(NAME_KEY).await?,
            };
            let Some(channel) = name.and_then(|n| ChannelName::parse(&n).ok()) else {
                return Ok(false); // a node: it keeps nothing to delete
            };
            self.ensure_open(&Target::Channel(channel), &NodePath::root())?;
        }
        if !self.host.is_open() {
            return Ok(false); // opened from its sockets by the keep-alive, then looked at
        }
        let now = now_ms();
        match self.with(|h| due(h).filter(|due| due.at_ms() <= now)) {
            None => Ok(false),
            Some(Due::End { .. }) => self.end(&[]).await.map(|_| false),
            Some(Due::Delete { .. }) => self.delete().await.map(|()| true),
        }
    }

    /// Buries the channel (unless graves are kept for no time), then deletes everything
    /// its root stores, its alarm included. The instance keeps its state, marked gone:
    /// calls still on their way find it so.
    async fn delete(&self) -> Result<(), Error> {
        let (target, ending, grave_ms) = self.with(|h| {
            (
                h.target.clone(),
                h.stream.ending(),
                h.config.lifetimes.grave_ms,
            )
        });
        let (Target::Channel(channel), Some(ending)) = (target, ending) else {
            return Ok(());
        };
        let grave = Grave::of(ending, now_ms());
        if grave_ms > 0 {
            GraveCall::Bury { channel, grave }.send(&self.env).await?;
        }
        self.delete_storage().await?;
        self.with(|h| h.face.gone = Some(grave));
        Ok(())
    }
}
