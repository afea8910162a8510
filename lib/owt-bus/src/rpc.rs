//! Request bookkeeping shared by both ends: message ids, replies waiting for their request,
//! deadlines.

use crate::error::BusError;
use crate::message::RemoteError;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

type Waiter = oneshot::Sender<Result<Value, RemoteError>>;

/// Outstanding requests of one side, by message id.
#[derive(Default)]
pub(crate) struct Pending {
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, Waiter>>,
}

impl Pending {
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Hands a reply to its waiter; `false` when nobody waits for it (late or unknown).
    pub(crate) fn complete(&self, reply_to: u64, result: Result<Value, RemoteError>) -> bool {
        let waiter = self.waiting.lock().expect("pending lock").remove(&reply_to);
        match waiter {
            Some(waiter) => waiter.send(result).is_ok(),
            None => false,
        }
    }

    /// Registers a request id; the returned guard forgets it when dropped.
    pub(crate) fn wait(self: &Arc<Self>, id: u64) -> (WaitGuard, oneshot::Receiver<Result<Value, RemoteError>>) {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().expect("pending lock").insert(id, tx);
        (WaitGuard { pending: self.clone(), id }, rx)
    }

    pub(crate) fn clear(&self) {
        self.waiting.lock().expect("pending lock").clear();
    }
}

pub(crate) struct WaitGuard {
    pending: Arc<Pending>,
    id: u64,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.pending.waiting.lock().expect("pending lock").remove(&self.id);
    }
}

/// Sends a request with `send` and waits for its reply until `timeout` (sending included).
pub(crate) async fn request<F>(
    pending: &Arc<Pending>,
    method: &str,
    timeout: Duration,
    send: impl FnOnce(u64) -> F,
) -> Result<Value, BusError>
where
    F: std::future::Future<Output = Result<(), BusError>>,
{
    let id = pending.next_id();
    let (_guard, reply) = pending.wait(id);
    let deadline = tokio::time::Instant::now() + timeout;
    let timed_out = || BusError::Timeout { method: method.to_string(), after: timeout };
    tokio::time::timeout_at(deadline, send(id)).await.map_err(|_| timed_out())??;
    match tokio::time::timeout_at(deadline, reply).await {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(remote))) => Err(BusError::Remote(remote)),
        Ok(Err(_)) => Err(BusError::Stopped),
        Err(_) => Err(timed_out()),
    }
}
