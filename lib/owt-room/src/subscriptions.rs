//! Subscriptions of a room: who receives which stream, per media kind, and where each
//! subscription is in its life (accepted, media flowing, ended). As in OWT's conference
//! agent, a subscription ends with its source: when a stream it takes audio or video from is
//! removed, the subscription ends with the reason "Source stream loss" (the owner is told by
//! a `progress` error, spec/owt-compat.md §1.10); when its owner leaves it ends silently
//! ("Participant terminate").

use crate::{refuse, Conference, ConferenceError, Effect};
use std::collections::BTreeMap;

/// Why a subscription ended, as OWT words the session abort.
pub const SOURCE_STREAM_LOSS: &str = "Source stream loss";
/// The owner ended it (unsubscribe, leave): OWT sends no `progress` error for this reason.
pub const PARTICIPANT_TERMINATE: &str = "Participant terminate";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Accepted; the media node is negotiating it.
    Pending,
    /// The media node reported it ready.
    Active,
    /// Over; only seen on the value handed back when it ends.
    Ended,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub owner: String,
    /// Media kind (`audio`, `video`) -> id of the stream it comes from.
    pub sources: BTreeMap<String, String>,
    pub state: SubscriptionState,
}

impl Conference {
    /// Accepts a subscription before media flows: the owner may subscribe each kind and every
    /// source stream (forward or mixed) exists. `sources` are `(kind, stream id)` pairs.
    pub fn add_subscription(&mut self, id: &str, owner: &str, sources: &[(&str, &str)]) -> Result<(), ConferenceError> {
        let Some(participant) = self.participant(owner) else { return refuse("Participant does NOT exist") };
        if sources.is_empty() {
            return refuse("Invalid request: nothing to subscribe");
        }
        for (kind, stream) in sources {
            let allowed = match *kind {
                "audio" => participant.permission.subscribe.audio,
                "video" => participant.permission.subscribe.video,
                _ => return refuse(format!("Invalid track kind: {kind}")),
            };
            if !allowed {
                return refuse("unauthorized");
            }
            if self.stream(stream).is_none() {
                return refuse(format!("Stream does NOT exist: {stream}"));
            }
        }
        if self.subscriptions.contains_key(id) {
            return refuse("Subscription exists");
        }
        let sources = sources.iter().map(|(kind, stream)| (kind.to_string(), stream.to_string())).collect();
        self.subscriptions.insert(
            id.into(),
            Subscription { id: id.into(), owner: owner.into(), sources, state: SubscriptionState::Pending },
        );
        Ok(())
    }

    /// The media node has the subscription flowing. Returns whether it was pending.
    pub fn subscription_ready(&mut self, id: &str) -> bool {
        match self.subscriptions.get_mut(id) {
            Some(subscription) if subscription.state == SubscriptionState::Pending => {
                subscription.state = SubscriptionState::Active;
                true
            }
            _ => false,
        }
    }

    /// subscription-control `update` moved a kind of the subscription to another stream.
    pub fn switch_subscription_source(&mut self, id: &str, kind: &str, stream: &str) -> Result<(), ConferenceError> {
        if self.stream(stream).is_none() {
            return refuse(format!("Stream does NOT exist: {stream}"));
        }
        let Some(subscription) = self.subscriptions.get_mut(id) else { return refuse("Subscription does NOT exist") };
        let Some(source) = subscription.sources.get_mut(kind) else {
            return refuse(format!("Subscription has no {kind} track"));
        };
        *source = stream.into();
        Ok(())
    }

    /// A subscription ends by its owner's or the media node's doing (unsubscribe, session
    /// failure): the caller already closes it, so there is nothing to tell. Returns it, in
    /// state Ended; unknown or already ended ids give None.
    pub fn remove_subscription(&mut self, id: &str) -> Option<Subscription> {
        let mut subscription = self.subscriptions.remove(id)?;
        subscription.state = SubscriptionState::Ended;
        Some(subscription)
    }

    pub fn subscription(&self, id: &str) -> Option<&Subscription> {
        self.subscriptions.get(id)
    }

    /// Every live subscription, by id.
    pub fn subscriptions(&self) -> impl Iterator<Item = &Subscription> {
        self.subscriptions.values()
    }

    /// Ids of a participant's live subscriptions.
    pub fn subscriptions_of(&self, owner: &str) -> Vec<String> {
        self.subscriptions.values().filter(|s| s.owner == owner).map(|s| s.id.clone()).collect()
    }

    /// Ends the subscriptions matching `ended`, as effects for the shell.
    pub(crate) fn end_subscriptions(
        &mut self,
        ended: impl Fn(&Subscription) -> bool,
        reason: &'static str,
    ) -> Vec<Effect> {
        let ids: Vec<String> = self.subscriptions.values().filter(|s| ended(s)).map(|s| s.id.clone()).collect();
        ids.into_iter()
            .filter_map(|id| self.remove_subscription(&id))
            .map(|s| Effect::EndSubscription { id: s.id, owner: s.owner, reason })
            .collect()
    }
}
