//! The portal's reactions to workers joining and dying (user guide Table 2-6). Sessions on
//! a dead webrtc, stream or record node fail (clients get `stream-failed`/`progress` errors);
//! work on a dead mixer is rebuilt elsewhere. In this release no worker carries sessions
//! (media is not implemented), so a death only releases the tasks bound to it, which the
//! registry has already done, and is logged with what was lost.

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
