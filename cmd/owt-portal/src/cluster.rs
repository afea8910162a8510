//! The cluster log: workers joining and dying, with what a death cost. The reactions of user
//! guide Table 2-6 happen in signaling, which follows the same events: the sessions on a dead
//! webrtc node fail (its clients get `progress` errors and its publications are removed,
//! signaling/media.rs), and the views of a dead mixer start again on another one
//! (signaling/mixing.rs). owt-record, owt-stream and owt-sip carry no work yet. The tasks
//! bound to a dead worker are released by the registry itself.

use owt_bus::{Cluster, ClusterEvent};
use std::sync::Arc;

pub async fn watch(cluster: Arc<Cluster>) {
    let mut events = cluster.subscribe_events();
    loop {
        match events.recv().await {
            Ok(ClusterEvent::WorkerJoined { node_id, kind, .. }) => {
                tracing::info!(node = %node_id, kind = %kind, "worker joined");
            }
            Ok(ClusterEvent::WorkerDied { node_id, kind, tasks, reason }) => {
                tracing::warn!(node = %node_id, kind = %kind, ?reason, tasks = tasks.len(), "worker gone; its tasks are released");
            }
            Ok(ClusterEvent::WorkerEvent { node_id, method, .. }) => {
                tracing::debug!(node = %node_id, method = %method, "worker event");
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!("cluster watcher missed {missed} events");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
}
