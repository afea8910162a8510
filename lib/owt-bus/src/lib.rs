//! owt-bus: the control-plane bus of owt-rs, and the only crate that touches ZeroMQ.
//!
//! The portal binds a ROUTER ([`server::BusServer`], usually through [`cluster::Cluster`]);
//! every worker connects a DEALER ([`client::BusClient`]), registers, and sends a heartbeat
//! with its load every interval. Messages are single-frame JSON envelopes
//! ([`message`]): requests with deadlines and replies matched by id, both ways, and one-way
//! events. [`registry`] is the sans-IO worker registry and scheduler (OWT's cluster
//! manager: strategies, isp/region preferences, task binding, death after missed
//! heartbeats). [`worker::WorkerService`] is the daemon service of worker binaries whose
//! media work is not implemented yet.
//!
//! Hostile input on the portal's endpoint (garbage, oversized or malformed messages) is
//! refused per connection by [`guard`] and per message by the server; other workers keep
//! being served.
//!
//! [`media`] is the media link: encoded frames between daemons on PUB/SUB
//! ([`MediaPublisher`], [`MediaSubscriber`]).

pub mod client;
pub mod cluster;
pub mod endpoint;
pub mod error;
pub mod guard;
pub mod load;
pub mod media;
pub mod message;
pub mod registry;
mod rpc;
pub mod server;
pub mod worker;

pub use client::{BusClient, ClientOptions, ClientState, Handler};
pub use cluster::{Cluster, ClusterError, ClusterEvent, WorkerView};
pub use error::BusError;
pub use media::{
    GapDetector, MediaLinkError, MediaPublisher, MediaSubscriber, ReceivedFrame, SubscriberHandle, SubscriberStats,
};
pub use message::{Capacity, RemoteError, WorkerInfo};
pub use registry::{DeathReason, Preference, Registry, RegistryConfig, Strategy};
pub use server::{BusServer, Inbound, PeerId, ServerHandle};
