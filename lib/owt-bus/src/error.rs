//! Errors of the bus: transport failures, deadlines, and errors the other side answered.

use crate::message::RemoteError;
use std::time::Duration;

/// Everything a bus operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The endpoint string is not `tcp://HOST:PORT` or `ipc:///PATH`.
    #[error("bad bus endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    /// Binding or preparing a socket failed.
    #[error("cannot bind the bus at {endpoint}: {source}")]
    Bind { endpoint: String, source: std::io::Error },
    /// No reply arrived before the deadline.
    #[error("{method}: no reply within {after:?}")]
    Timeout { method: String, after: Duration },
    /// The other side answered with an error.
    #[error("{0}")]
    Remote(RemoteError),
    /// The peer is not (or no longer) connected.
    #[error("bus peer not connected: {0}")]
    NotConnected(String),
    /// The message would exceed the bus's size limit.
    #[error("message of {size} bytes exceeds the bus limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// ZeroMQ failed.
    #[error("zeromq: {0}")]
    Zmq(String),
    /// The bus (server, client or cluster) has been stopped.
    #[error("the bus is stopped")]
    Stopped,
}

impl From<zeromq::ZmqError> for BusError {
    fn from(err: zeromq::ZmqError) -> Self {
        BusError::Zmq(err.to_string())
    }
}
