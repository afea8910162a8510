//! owt-webrtc: owt-rs WebRTC access node (ICE, DTLS-SRTP, SFU forwarding).
//!
//! Registers with the portal's bus as a `webrtc` worker (heartbeats with its CPU load) and
//! serves the portal's requests of lib/owt-proto/src/webrtc.rs: one server-side peer
//! connection per client transport, sessions by mid, the answer to every client offer, and
//! packet-level forwarding of published tracks to subscribers on this node.
//!
//! Built on the webrtc crate 0.21 (async layer over the sans-IO `rtc` core). What 0.21 does
//! not offer and what that means here: no UDP mux (`SettingEngine::with_udp_network` is a
//! todo upstream), so every peer connection has its own UDP socket per address, taken from
//! `webrtc.minport..maxport` when set ([`sockets`]: owt-webrtc binds them, with the
//! configured receive buffer, through the vendored webrtc's `UdpSocketSource`), except with
//! `minport` = `maxport`: then every connection shares that one port ([`udp_mux`]);
//! `with_nat_1to1_ips` is not applied by the stack, so
//! `replaced_ip_address` is applied by rewriting the answer's candidates.
//!
//! Modules: [`sdp`] (offer checks, candidate rewriting; pure), [`interceptor`] (keyframe
//! requests to the application), [`node`] (the requests, peer connections, forwarding),
//! [`service`] (bus registration and the daemon's service), [`affinity`] (worker threads on
//! CPUs of their own), [`sockets`] (media sockets: port range, receive buffer), [`udp_mux`]
//! (one UDP port for every connection).

pub mod affinity;
pub mod interceptor;
pub mod link;
pub mod node;
pub mod sdp;
pub mod service;
pub mod sockets;
pub mod udp_mux;

use owt_config::WebrtcConfig;

/// Command line of owt-webrtc.
#[derive(Debug, clap::Parser)]
#[command(
    name = "owt-webrtc",
    version,
    about = "owt-rs WebRTC access node (ICE, DTLS-SRTP, SFU forwarding)",
    long_about = "owt-webrtc: owt-rs WebRTC access node (ICE, DTLS-SRTP, SFU forwarding). Reads /etc/owt/webrtc.toml (see owt.toml(5)); normally started by systemd as owt-webrtc.service. It registers with the portal (see [cluster] in webrtc.toml), answers the WebRTC offers of clients the portal sends it and forwards published streams to subscribers."
)]
pub struct Cli {
    #[command(flatten)]
    pub daemon: owt_daemon::DaemonArgs,
}

/// Joins the cluster at `[cluster] portal`; returns at once (registration follows in the
/// background, retried while the portal is away).
pub fn start(config: &WebrtcConfig) -> Result<service::WebrtcService, service::StartError> {
    service::WebrtcService::start(config)
}
