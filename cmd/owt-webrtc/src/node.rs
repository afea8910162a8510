//! The WebRTC node: the bus requests of lib/owt-proto/src/webrtc.rs on top of the webrtc
//! crate. One server-side peer connection per client transport; sessions own m-lines by mid
//! (owt_media::TransportSessions); published tracks live in a node-wide map by track id
//! `<transportId>-<mid>` and forward every RTP packet to their subscribers' local tracks,
//! rewritten (owt_media::StreamRewriter). Keyframe requests of subscribers go upstream
//! through a per-track rate limit (owt_media::KeyframeLimiter). NACKs from subscribers are
//! answered from one packet cache per published track (owt_media::PacketCache), sent again on
//! the subscriber's RTX stream when it negotiated one.

use crate::interceptor::{self, FeedbackForwarder};
use crate::link;
use crate::sdp;
use crate::sockets::OwnSockets;
use crate::udp_mux::UdpMux;
use futures::FutureExt;
use owt_bus::media::{MediaPublisher, SubscriberHandle};
use owt_bus::message::codes;
use owt_bus::RemoteError;
use owt_media::rewrite::seq_after;
use owt_media::sessions::track_id;
use owt_media::{
    KeyframeLimiter, PacketCache, RateMeter, RetransmitBudget, Rewritten, Role, StreamRewriter, TransportSessions,
    VideoFactsMeter,
};
use owt_proto::webrtc::{
    events, methods, Format, KeyframeRequest, Kind, LinkSource, PublishRequest, ReadyTrack, SessionFailed,
    SessionReady, SessionRequest, SessionStats, SetActiveRequest, SignalingRequest, SubscribeRequest, SwitchSource,
    TrackRequest, TrackStats, TrackUpdate, TransportProgress, TransportRequest, TransportStatus,
};
use rtc::interceptor::{Registry, Slot};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::statistics::report::RTCStatsReportEntry;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
    StatsSelector,
};
use webrtc::runtime::UdpSocketSource;

/// Keyframe requests go upstream at most this often per published track.
const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);
/// The first answer waits this long at most for ICE gathering.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);
/// Transports a node serves at most.
const MAX_TRANSPORTS: usize = 4096;

/// How the node binds and announces its ICE candidates.
#[derive(Debug, Clone, Default)]
pub struct NetSettings {
    /// Addresses to bind per peer connection; port 0 = ephemeral.
    pub bind_ips: Vec<IpAddr>,
    /// Port range (0, 0 = ephemeral).
    pub ports: (u16, u16),
    /// Bound address -> announced address (1:1 NAT).
    pub replace: Vec<(String, String)>,
    pub loopback: bool,
    /// Receive buffer of each media socket, bytes (0: the kernel's default), see sockets.rs.
    pub receive_buffer: usize,
}

impl NetSettings {
    /// From `[webrtc]` of webrtc.toml.
    pub fn from_config(section: &owt_config::WebrtcSection) -> Result<NetSettings, String> {
        let mut settings = NetSettings {
            ports: (section.minport, section.maxport),
            loopback: section.loopback_candidates,
            receive_buffer: section.udp_receive_buffer,
            ..NetSettings::default()
        };
        for interface in &section.network_interfaces {
            let ips = interface_ipv4(&interface.name);
            if ips.is_empty() {
                return Err(format!("webrtc.network_interfaces: interface {} has no IPv4 address", interface.name));
            }
            for ip in ips {
                if !interface.replaced_ip_address.is_empty() {
                    settings.replace.push((ip.to_string(), interface.replaced_ip_address.clone()));
                }
                settings.bind_ips.push(ip);
            }
        }
        if section.network_interfaces.is_empty() {
            settings.bind_ips.push(IpAddr::from([0, 0, 0, 0]));
        }
        if settings.loopback && !settings.bind_ips.iter().any(|ip| ip.is_loopback()) {
            settings.bind_ips.push(IpAddr::from([127, 0, 0, 1]));
        }
        Ok(settings)
    }

    /// Socket addresses for a new peer connection: each IP with port 0, for which the
    /// connection's socket source (`sockets::OwnSockets`) binds a port of the range, or the
    /// shared port on each address (`minport` = `maxport`).
    fn addrs(&self) -> Vec<String> {
        match self.one_port() {
            Some(port) => self.one_port_ips().into_iter().map(|ip| SocketAddr::new(ip, port).to_string()).collect(),
            None => self.bind_ips.iter().map(|ip| SocketAddr::new(*ip, 0).to_string()).collect(),
        }
    }

    /// The port every connection shares (`minport` = `maxport`, not 0), see udp_mux.rs.
    pub fn one_port(&self) -> Option<u16> {
        (self.ports.0 == self.ports.1 && self.ports.0 != 0).then_some(self.ports.0)
    }

    /// The addresses the shared port is bound on: the configured ones, with the wildcard
    /// expanded to the addresses of the interfaces (except loopback and link-local, as the
    /// stack expands it), or kept when there are none. Concrete addresses, so that the stack
    /// asks for each (a socket on the wildcard would hold the port on all of them).
    fn one_port_ips(&self) -> Vec<IpAddr> {
        let mut ips = Vec::new();
        for ip in &self.bind_ips {
            let expanded: Vec<IpAddr> = if ip.is_unspecified() {
                ipv4_addresses(None).into_iter().filter(|a| !a.is_loopback() && !is_link_local(a)).collect()
            } else {
                vec![*ip]
            };
            // No usable interface: only loopback can reach the node, so the wildcard is kept
            // only when loopback candidates are not offered (it would hold the port on
            // 127.0.0.1 too).
            let expanded = match expanded.is_empty() {
                true if self.loopback => Vec::new(),
                true => vec![*ip],
                false => expanded,
            };
            for ip in expanded {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        // The wildcard, kept for want of interfaces, holds the port on every address.
        if ips.iter().any(|ip| ip.is_unspecified()) {
            ips.retain(|ip| ip.is_unspecified());
        }
        ips
    }
}

/// `len` random ICE characters (RFC 8445 §5.3: ALPHA / DIGIT / "+" / "/"), letters and
/// digits here: a username fragment or password.
fn random_ice_chars(len: usize) -> String {
    use rand::Rng;
    rand::thread_rng().sample_iter(&rand::distributions::Alphanumeric).take(len).map(char::from).collect()
}

fn is_link_local(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_link_local())
}

/// The IPv4 addresses of the interface `name`.
fn interface_ipv4(name: &str) -> Vec<IpAddr> {
    ipv4_addresses(Some(name))
}

/// The IPv4 addresses of the interface `name`, or of every interface.
fn ipv4_addresses(name: Option<&str>) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we only read and then free.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return out;
        }
        let mut cur = list;
        while !cur.is_null() {
            let entry = &*cur;
            if !entry.ifa_addr.is_null()
                && i32::from((*entry.ifa_addr).sa_family) == libc::AF_INET
                && name.is_none_or(|name| std::ffi::CStr::from_ptr(entry.ifa_name).to_str() == Ok(name))
            {
                let sin = &*(entry.ifa_addr as *const libc::sockaddr_in);
                out.push(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()));
            }
            cur = entry.ifa_next;
        }
        libc::freeifaddrs(list);
    }
    out
}

fn bad_params(method: &str, err: impl std::fmt::Display) -> RemoteError {
    RemoteError::new(codes::BAD_PARAMS, format!("{method}: {err}"))
}

fn failed(message: impl Into<String>) -> RemoteError {
    RemoteError::new(codes::FAILED, message)
}

fn parse<T: DeserializeOwned>(method: &str, params: Value) -> Result<T, RemoteError> {
    serde_json::from_value(params).map_err(|err| bad_params(method, err))
}

/// Where a published track's packets come from.
enum Upstream {
    /// A client's track on this node.
    Remote(Arc<dyn TrackRemote>),
    /// Frames of a track of another node, over the media link (crate::link). The source
    /// changes when its producer is replaced (a mixer failed over: `relink`).
    Link {
        source: Mutex<LinkSource>,
        /// The link's subscription, once its task runs.
        subscription: Mutex<Option<SubscriberHandle>>,
        events: mpsc::UnboundedSender<(String, Value)>,
    },
}

/// A published track on this node (a client's, or a linked one of another node).
struct Published {
    track_id: String,
    session_id: String,
    kind: Kind,
    codec: RTCRtpCodec,
    format: Format,
    upstream: Upstream,
    /// Set while other nodes consume this track: its frames go out on the media link.
    link_out: Mutex<Option<link::LinkOut>>,
    /// The codec as the media link names it (None: one it does not carry).
    media_codec: Option<owt_proto::media::Codec>,
    /// The simulcast layer this track is (its id is `<transportId>-<mid>:<rid>`), and its
    /// place in the client's list of layers.
    rid: Option<String>,
    layer: usize,
    media_ssrc: AtomicU32,
    subscribers: RwLock<Vec<Arc<Subscriber>>>,
    active: AtomicBool,
    ended: AtomicBool,
    keyframe: Mutex<KeyframeLimiter>,
    meter: Mutex<RateMeter>,
    /// Size, frame rate and bitrate of a client's video track, told to the portal.
    facts: Mutex<VideoFactsMeter>,
    plis: AtomicU64,
    /// The last packets forwarded, as they arrived, for the subscribers' NACKs.
    history: Mutex<PacketCache<rtp::Packet>>,
    /// SSRC and sequence number of the newest packet received, paused or not: a packet older
    /// than it is late (`Intake::Late`).
    newest: Mutex<Option<(u32, u16)>>,
}

impl Published {
    /// A track that starts active, with no subscribers yet.
    fn new(
        track_id: String,
        session_id: String,
        kind: Kind,
        codec: RTCRtpCodec,
        upstream: Upstream,
        layer: (Option<String>, usize),
        media_ssrc: u32,
    ) -> Published {
        Published {
            track_id,
            session_id,
            kind,
            format: codec_format(&codec),
            media_codec: link::link_codec(&codec),
            codec,
            upstream,
            link_out: Mutex::new(None),
            rid: layer.0,
            layer: layer.1,
            media_ssrc: AtomicU32::new(media_ssrc),
            subscribers: RwLock::new(Vec::new()),
            active: AtomicBool::new(true),
            ended: AtomicBool::new(false),
            keyframe: Mutex::new(KeyframeLimiter::new(KEYFRAME_INTERVAL)),
            meter: Mutex::new(RateMeter::new()),
            facts: Mutex::new(VideoFactsMeter::new()),
            plis: AtomicU64::new(0),
            history: Mutex::new(PacketCache::new(PACKET_HISTORY)),
            newest: Mutex::new(None),
        }
    }

    /// Measures a client's video packet (size from keyframes, frame rate, bitrate).
    fn observe_video(&self, packet: &rtp::Packet, now: Instant) {
        let Some(codec) = self.media_codec.filter(|_| self.kind == Kind::Video) else { return };
        let size = if owt_media::rtp_keyframe::starts_keyframe(codec, &packet.payload) {
            owt_media::video_size::keyframe_size(codec, &packet.payload)
        } else {
            None
        };
        lock(&self.facts).observe(now, packet.header.timestamp, packet.payload.len(), size);
    }

    /// Tells the portal the track's facts when they changed enough.
    fn report_facts(&self, events: &mpsc::UnboundedSender<(String, Value)>, now: Instant) {
        let Some(facts) = lock(&self.facts).report(now) else { return };
        let update = TrackUpdate {
            track_id: self.track_id.clone(),
            width: facts.width,
            height: facts.height,
            framerate: facts.framerate,
            bitrate_kbps: facts.bitrate_kbps,
        };
        let _ = events.send((events::TRACK_UPDATE.to_string(), json!(update)));
    }

    /// The forwarding task's periodic work: a keyframe request the limiter held back is
    /// sent when due, and media link frames whose missing packets did not come are given up.
    async fn tick(&self) {
        let due = self.keyframe.lock().map(|mut k| k.due(Instant::now())).unwrap_or(false);
        if due {
            self.send_pli().await;
        }
        if let Some(out) = lock(&self.link_out).as_mut() {
            out.poll(Instant::now());
        }
    }

    /// A keyframe request from a subscriber (or a new subscriber): upstream if the limit allows.
    async fn request_keyframe(&self) {
        let allowed = self.keyframe.lock().map(|mut k| k.request(Instant::now())).unwrap_or(false);
        if allowed {
            self.send_pli().await;
        }
    }

    async fn send_pli(&self) {
        self.plis.fetch_add(1, Ordering::Relaxed);
        match &self.upstream {
            Upstream::Remote(remote) => {
                let media_ssrc = self.media_ssrc.load(Ordering::Relaxed);
                let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc };
                if let Err(err) = remote.write_rtcp(vec![Box::new(pli)]).await {
                    tracing::debug!("{}: PLI not sent: {err}", self.track_id);
                }
            }
            Upstream::Link { source, events, .. } => {
                let request = {
                    let source = lock(source);
                    KeyframeRequest { node: source.node.clone(), track_id: source.topic.clone() }
                };
                let _ = events.send((events::KEYFRAME_REQUEST.to_string(), json!(request)));
            }
        }
    }

    /// A linked track's producer moved (e.g. a mixer failed over): follow it.
    async fn relink(&self, new: LinkSource) {
        let Upstream::Link { source, subscription, .. } = &self.upstream else { return };
        let old = std::mem::replace(&mut *lock(source), new.clone());
        if old.endpoint == new.endpoint {
            return;
        }
        if let Some(subscription) = lock(subscription).as_ref() {
            subscription.disconnect(&old.endpoint);
            if let Err(err) = subscription.connect(&new.endpoint) {
                tracing::warn!("{}: relink to {} failed: {err}", self.track_id, new.endpoint);
                return;
            }
        }
        tracing::info!("track {} now arrives from {} ({})", self.track_id, new.endpoint, new.node);
        self.request_keyframe().await;
    }

    /// A client's packet arrived (SSRC `ssrc`): measured, and put on the media link when
    /// other nodes consume this track. Whether it goes to subscribers (not while paused), and
    /// whether it came late.
    async fn take_in(&self, packet: &rtp::Packet, ssrc: u32) -> Intake {
        let now = Instant::now();
        if let Ok(mut meter) = self.meter.lock() {
            meter.record(metered_size(packet), now);
        }
        self.media_ssrc.store(ssrc, Ordering::Relaxed);
        self.observe_video(packet, now);
        let late = {
            let mut newest = lock(&self.newest);
            let sequence_number = packet.header.sequence_number;
            match *newest {
                Some((newest_ssrc, newest_seq)) if newest_ssrc == ssrc && !seq_after(sequence_number, newest_seq) => {
                    true
                }
                _ => {
                    *newest = Some((ssrc, sequence_number));
                    false
                }
            }
        };
        if !self.active.load(Ordering::Relaxed) {
            return Intake::Held;
        }
        // Paused tracks stay off the media link too (checked above).
        let lost_upstream = lock(&self.link_out).as_mut().is_some_and(|out| {
            out.push(packet, now);
            std::mem::take(&mut out.wants_keyframe)
        });
        if lost_upstream {
            self.request_keyframe().await;
        }
        if late {
            Intake::Late
        } else {
            Intake::Fresh
        }
    }

    /// Sends packets (in order) to every active subscriber, rewritten for each. Each
    /// subscriber gets the batch as one write (`send_to`), its packets rewritten just before
    /// (`deliver` spreads the subscribers over the runtime's workers). A subscriber whose peer
    /// connection cannot take the write right now (its queue to the connection's driver is
    /// full: a stalled or starved connection) loses those packets, counted as dropped, and
    /// recovers by NACK or keyframe like after network loss; nobody else waits for it.
    /// `late[i]`: `packets[i]` came late (`Intake::Late`).
    ///
    /// Returns the parts still running (`deliver`): the caller waits for them before the
    /// next fan-out of the same stream, or a subscriber could get the next batch first.
    #[must_use = "the next fan-out must wait for these parts"]
    fn fan_out(self: &Arc<Self>, packets: &[rtp::Packet], late: &[bool], now: Instant) -> FanOutParts {
        // Clients NACK video only (audio is not worth a round trip).
        if self.kind == Kind::Video {
            if let Ok(mut history) = self.history.lock() {
                for packet in packets {
                    history.insert(packet.header.sequence_number, packet.clone());
                }
            }
        }
        let subscribers: Vec<Arc<Subscriber>> = match self.subscribers.read() {
            Ok(subscribers) if !subscribers.is_empty() => subscribers.clone(),
            _ => return FanOutParts::default(),
        };
        deliver(self, subscribers, packets, late, now)
    }

    /// Rewrites `packets` for each of `subscribers` and sends them (see `fan_out`). Subscribers
    /// whose switch to this track completed on one of these packets are then taken off their
    /// old source.
    fn rewrite_and_send(&self, subscribers: &[Arc<Subscriber>], packets: &[rtp::Packet], late: &[bool], now: Instant) {
        let mut switched: Vec<(Weak<Published>, &Arc<Subscriber>)> = Vec::new();
        for sub in subscribers {
            let mut out = Vec::with_capacity(packets.len());
            for (packet, late) in packets.iter().zip(late) {
                let (rewritten, switched_from) = self.rewrite_for(sub, packet, *late, now);
                out.extend(rewritten);
                if let Some(from) = switched_from {
                    switched.push((from, sub));
                }
            }
            send_to(sub, out, now);
        }
        for (from, sub) in switched {
            if let Some(from) = from.upgrade() {
                if let Ok(mut list) = from.subscribers.write() {
                    list.retain(|s| !Arc::ptr_eq(s, sub));
                }
            }
        }
    }

    /// One packet as one subscriber gets it (see `fan_out`): None when it does not take it;
    /// and the source it left when this packet completed its switch to this track.
    fn rewrite_for(
        &self,
        sub: &Subscriber,
        packet: &rtp::Packet,
        late: bool,
        now: Instant,
    ) -> (Option<rtp::Packet>, Option<Weak<Published>>) {
        if !sub.active.load(Ordering::Relaxed) {
            lock(&sub.rewriter).rebase();
            return (None, None);
        }
        let switched_from = match sub.takes(self, packet) {
            Take::No => return (None, None),
            Take::Yes => None,
            Take::Switched(from) => Some(from),
        };
        let Ok(payload_type) = u8::try_from(sub.payload_type.load(Ordering::Relaxed)) else {
            return (None, switched_from);
        };
        let rewritten = lock(&sub.rewriter).rewrite(
            packet.header.ssrc,
            packet.header.sequence_number,
            packet.header.timestamp,
            late,
            now,
        );
        let Some(rewritten) = rewritten else { return (None, switched_from) };
        (Some(leg_packet(packet, payload_type, rewritten)), switched_from)
    }

    /// Sends `sub` again the packets its NACK names that this track's history still holds
    /// (at most `MAX_RETRANSMISSIONS` a NACK, `RETRANSMISSIONS_PER_SECOND` a second): on its
    /// RTX stream when it has one, else as they were.
    /// Packets of the source it had before a switch are not in this history; the subscriber
    /// then asks for a keyframe.
    fn retransmit(&self, sub: &Subscriber, nack: &TransportLayerNack, now: Instant) {
        let Ok(payload_type) = u8::try_from(sub.payload_type.load(Ordering::Relaxed)) else { return };
        let wanted = nack
            .nacks
            .iter()
            .flat_map(|pair| PacketCache::<()>::nack_sequence_numbers(pair.packet_id, pair.lost_packets))
            .take(MAX_RETRANSMISSIONS);
        let mut packets = Vec::new();
        {
            let rewriter = lock(&sub.rewriter);
            let Ok(mut history) = self.history.lock() else { return };
            for sequence_number in wanted {
                let Some(original) = rewriter.original(sequence_number) else { continue };
                let Some(packet) =
                    history.get(original.sequence_number).filter(|packet| packet.header.ssrc == original.source_ssrc)
                else {
                    continue;
                };
                let rewritten = Rewritten {
                    ssrc: rewriter.ssrc(),
                    sequence_number,
                    timestamp: packet.header.timestamp.wrapping_add(original.timestamp_offset),
                };
                packets.push(leg_packet(packet, payload_type, rewritten));
            }
        }
        let allowed = lock(&sub.retransmit_budget).take(packets.len(), now);
        packets.truncate(allowed);
        if packets.is_empty() {
            return;
        }
        if let Some(rtx) = lock(&sub.rtx).as_mut() {
            for packet in &mut packets {
                *packet = owt_media::cache::rtx_packet(packet, rtx.ssrc, rtx.payload_type, rtx.next_sequence_number);
                rtx.next_sequence_number = rtx.next_sequence_number.wrapping_add(1);
            }
        }
        sub.retransmitted.fetch_add(packets.len() as u64, Ordering::Relaxed);
        send_to(sub, packets, now);
    }
}

/// `packet` as a subscriber leg sends it: its header fields rewritten for the leg, its payload
/// shared. Extension ids are per leg: the sender adds its own.
fn leg_packet(packet: &rtp::Packet, payload_type: u8, rewritten: Rewritten) -> rtp::Packet {
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            padding: packet.header.padding,
            extension: false,
            marker: packet.header.marker,
            payload_type,
            sequence_number: rewritten.sequence_number,
            timestamp: rewritten.timestamp,
            ssrc: rewritten.ssrc,
            csrc: packet.header.csrc.clone(),
            extension_profile: 0,
            extensions: Vec::new(),
            extensions_padding: 0,
        },
        payload: packet.payload.clone(),
    }
}

/// Packets of each published track kept for its subscribers' NACKs: about 2 s of a 720p
/// stream, 1 s of a high-bitrate one. One history per track, shared by all its subscribers.
const PACKET_HISTORY: usize = 512;

/// Packets one NACK may have sent again at most (a NACK can name thousands).
const MAX_RETRANSMISSIONS: usize = 256;

/// Packets a subscriber may be sent again per second at most: twice a 720p stream's packet rate,
/// enough to repair heavy loss.
const RETRANSMISSIONS_PER_SECOND: u32 = 500;

/// A packet's size as the track and subscriber meters count it: the payload and the fixed RTP
/// header.
fn metered_size(packet: &rtp::Packet) -> usize {
    packet.payload.len() + 12
}

/// Adds `count` to `counter`; true for the first and then about every 500th (for logs).
fn now_and_then(counter: &AtomicU64, count: u64) -> bool {
    let before = counter.fetch_add(count, Ordering::Relaxed);
    before == 0 || before / 500 != (before + count) / 500
}

/// The spawned parts of one fan-out (`deliver`) that may still be running.
#[derive(Default)]
struct FanOutParts(Vec<tokio::task::JoinHandle<()>>);

impl FanOutParts {
    /// Waits until every part has sent its subscribers their packets.
    async fn sent(&mut self) {
        for part in self.0.drain(..) {
            let _ = part.await;
        }
    }
}

/// A batch for fewer subscribers than this is sent by the forwarding task alone (`deliver`).
const PARALLEL_FAN_OUT: usize = 8;

/// The most subscribers one spawned part of a split fan-out serves (see `deliver`).
const FAN_OUT_PART: usize = 8;

/// Rewrites and sends each subscriber its packets (`Published::rewrite_and_send`). The sends
/// are most of a forwarded packet's cost (the interceptors, SRTP and the socket, run in the
/// calling task: the vendored webrtc's `write_rtp_direct`), so one task serving a large fan-out
/// alone would make the last subscriber wait for all the others. A fan-out to
/// `PARALLEL_FAN_OUT` subscribers or more is split into tasks instead: one per worker thread,
/// or more of at most `FAN_OUT_PART` subscribers each, so that the workers share the parts as
/// they come free. Fixed halves made the fan-out wait for the slower worker: one woken late, or
/// taken off its core for a few milliseconds (in the benchmark at 4x50, about one subscriber's
/// send in 250 took over a millisecond, its thread off the core; the median p99 of four runs
/// went from 3.0 to 2.5 ms). Each part rewrites its subscribers' packets itself, just before
/// their sends: rewriting for every subscriber before the first send delayed the first copy
/// by the whole rewrite, and touched each subscriber's state twice.
/// None of the parts runs inline: tokio keeps the task spawned last in the spawning worker's
/// LIFO slot, which other workers do not steal, so only the parts spawned before it are taken
/// up by idle workers at once.
/// The parts are returned: the next batch's parts must not start before these end, or a
/// worker could send a subscriber's share of the next batch while another still sends its
/// share of this one (out of order).
fn deliver(
    track: &Arc<Published>,
    subscribers: Vec<Arc<Subscriber>>,
    packets: &[rtp::Packet],
    late: &[bool],
    now: Instant,
) -> FanOutParts {
    let workers = tokio::runtime::Handle::try_current().map_or(1, |runtime| runtime.metrics().num_workers());
    if workers < 2 || subscribers.len() < PARALLEL_FAN_OUT {
        track.rewrite_and_send(&subscribers, packets, late, now);
        return FanOutParts::default();
    }
    let part_len = subscribers.len().div_ceil(workers).min(FAN_OUT_PART);
    let mut parts = FanOutParts(Vec::with_capacity(subscribers.len().div_ceil(part_len)));
    let packets: Arc<[rtp::Packet]> = packets.into();
    let late: Arc<[bool]> = late.into();
    let mut subscribers = subscribers.into_iter();
    loop {
        let part: Vec<_> = subscribers.by_ref().take(part_len).collect();
        if part.is_empty() {
            break;
        }
        let (track, packets, late) = (track.clone(), packets.clone(), late.clone());
        parts.0.push(tokio::spawn(async move { track.rewrite_and_send(&part, &packets, &late, now) }));
    }
    parts
}

/// Hands a subscriber's packets to its connection in one go (one driver event), or counts
/// them as dropped when the connection cannot take them at once (see `Published::fan_out`).
fn send_to(sub: &Subscriber, packets: Vec<rtp::Packet>, now: Instant) {
    if packets.is_empty() {
        return;
    }
    let count = packets.len() as u64;
    let bytes = packets.iter().map(metered_size).sum();
    match sub.local.write_rtp_batch(packets).now_or_never() {
        Some(Ok(())) => {
            if let Ok(mut meter) = sub.meter.lock() {
                meter.record_packets(count, bytes, now);
            }
        }
        Some(Err(err)) => {
            if now_and_then(&sub.errors, count) {
                tracing::debug!("{}: packets not forwarded: {err}", sub.track_id);
            }
        }
        None => {
            if now_and_then(&sub.dropped, count) {
                tracing::debug!("{}: connection busy, {count} packets dropped", sub.track_id);
            }
        }
    }
}

/// What a subscriber does with a packet of one of its sources (see `Subscriber::takes`).
enum Take {
    No,
    Yes,
    /// Yes, and its pending switch to this source completed: leave the old source.
    Switched(Weak<Published>),
}

/// A subscriber's m-line: a local track fed by a published track.
struct Subscriber {
    track_id: String,
    session_id: String,
    kind: Kind,
    /// The track it forwards (changes with `switch-source`).
    source: Mutex<String>,
    /// Set while a switch to another source waits for that source's next keyframe.
    switching: AtomicBool,
    switch: Mutex<Option<PendingSwitch>>,
    local: Arc<TrackLocalStaticRTP>,
    /// Negotiated payload type; above 127 = not negotiated yet.
    payload_type: AtomicU32,
    rewriter: Mutex<StreamRewriter>,
    /// Its RTX stream, when the client negotiated one (set when the leg is bound).
    rtx: Mutex<Option<RtxStream>>,
    active: AtomicBool,
    meter: Mutex<RateMeter>,
    plis: AtomicU64,
    /// Packets sent again on its NACKs, and how many more it may be sent this second.
    retransmitted: AtomicU64,
    retransmit_budget: Mutex<RetransmitBudget>,
    errors: AtomicU64,
    /// Packets its connection could not take at once (back-pressure), see `fan_out`.
    dropped: AtomicU64,
}

/// A subscriber leg's repair stream (RFC 4588).
struct RtxStream {
    ssrc: u32,
    payload_type: u8,
    next_sequence_number: u16,
}

/// A subscriber's switch to another source, done at that source's next keyframe.
struct PendingSwitch {
    from: Weak<Published>,
    to: String,
}

impl Subscriber {
    fn source(&self) -> String {
        lock(&self.source).clone()
    }

    /// Whether `track`'s packet goes to this subscriber: its current source does until a
    /// pending switch completes, the switch target from its first keyframe packet on.
    fn takes(&self, track: &Published, packet: &rtp::Packet) -> Take {
        if !self.switching.load(Ordering::Relaxed) {
            return Take::Yes;
        }
        let mut switch = lock(&self.switch);
        let Some(pending) = switch.as_ref() else { return Take::Yes };
        if pending.to != track.track_id {
            return Take::Yes;
        }
        let keyframe =
            track.media_codec.is_none_or(|codec| owt_media::rtp_keyframe::starts_keyframe(codec, &packet.payload));
        if !keyframe {
            return Take::No;
        }
        let from = pending.from.clone();
        *lock(&self.source) = track.track_id.clone();
        *switch = None;
        self.switching.store(false, Ordering::Relaxed);
        tracing::debug!("{} switched to {} on a keyframe", self.track_id, track.track_id);
        Take::Switched(from)
    }
}

/// What one transport knows outside of its peer connection.
#[derive(Default)]
struct TransportState {
    sessions: TransportSessions,
    publish: HashMap<String, PublishRequest>,
    /// Subscribers by mid, until and after they are bound to a transceiver.
    subscribers: HashMap<String, Arc<Subscriber>>,
    /// Mids whose local track was added to the peer connection.
    added: std::collections::HashSet<String>,
    answered: bool,
    ready: bool,
    closed: bool,
    /// Simulcast layers (RIDs) the client sends, by mid, from its offers.
    rids: HashMap<String, Vec<String>>,
}

struct Transport {
    id: String,
    pc: Arc<dyn PeerConnection>,
    /// Serializes offers of this transport.
    negotiation: tokio::sync::Mutex<()>,
    state: Mutex<TransportState>,
    gathered: watch::Receiver<bool>,
}

struct Inner {
    net: NetSettings,
    /// The shared port of every connection, in one-port mode (`NetSettings::one_port`).
    udp_mux: Option<Arc<UdpMux>>,
    transports: Mutex<HashMap<String, Arc<Transport>>>,
    /// session id -> transport id.
    sessions: Mutex<HashMap<String, String>>,
    tracks: RwLock<HashMap<String, Arc<Published>>>,
    events: mpsc::UnboundedSender<(String, Value)>,
    /// The media link's PUB socket (None: this node cannot feed other nodes).
    media: Option<MediaPublisher>,
}

/// The node; cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn codec_format(codec: &RTCRtpCodec) -> Format {
    let mime = codec.mime_type.to_ascii_lowercase();
    let name = mime.split('/').nth(1).unwrap_or_default().to_string();
    match name.as_str() {
        "opus" => Format { codec: name, sample_rate: Some(48_000), channel_num: Some(2), profile: None },
        "pcmu" | "pcma" => Format { codec: name, sample_rate: Some(8_000), channel_num: Some(1), profile: None },
        "g722" => Format { codec: name, sample_rate: Some(16_000), channel_num: Some(1), profile: None },
        "h264" => {
            let profile =
                codec.sdp_fmtp_line.split(';').find_map(|kv| kv.trim().strip_prefix("profile-level-id=")).map(|id| {
                    match &id.to_ascii_lowercase()[..4.min(id.len())] {
                        "42e0" | "4200" if id.len() >= 4 && &id[2..4] == "e0" => "CB".to_string(),
                        "4200" => "B".to_string(),
                        p if p.starts_with("42") => "CB".to_string(),
                        p if p.starts_with("4d") => "M".to_string(),
                        p if p.starts_with("64") => "H".to_string(),
                        _ => "B".to_string(),
                    }
                });
            Format { codec: name, profile, ..Format::default() }
        }
        _ => Format { codec: name, ..Format::default() },
    }
}

fn kind_of(kind: RtpCodecKind) -> Option<Kind> {
    match kind {
        RtpCodecKind::Audio => Some(Kind::Audio),
        RtpCodecKind::Video => Some(Kind::Video),
        _ => None,
    }
}

impl Node {
    /// A node that sends its events to `events` (forwarded to the portal).
    /// `media` publishes tracks that other nodes consume.
    pub fn new(
        net: NetSettings,
        events: mpsc::UnboundedSender<(String, Value)>,
        media: Option<MediaPublisher>,
    ) -> Node {
        Node {
            inner: Arc::new(Inner {
                udp_mux: net.one_port().map(|_| UdpMux::new(net.receive_buffer)),
                net,
                transports: Mutex::new(HashMap::new()),
                sessions: Mutex::new(HashMap::new()),
                tracks: RwLock::new(HashMap::new()),
                events,
                media,
            }),
        }
    }

    /// In one-port mode, binds the shared port on each address now, so that a port already in
    /// use stops the node at start instead of failing its first client. Call on its runtime.
    pub fn open_shared_ports(&self) -> Result<(), String> {
        let (Some(mux), Some(port)) = (&self.inner.udp_mux, self.inner.net.one_port()) else { return Ok(()) };
        for ip in self.inner.net.one_port_ips() {
            mux.port(SocketAddr::new(ip, port)).map_err(|e| format!("webrtc.minport = webrtc.maxport: {e}"))?;
        }
        Ok(())
    }

    /// Takes a one-way event of the portal.
    pub async fn event(&self, method: &str, params: Value) {
        match method {
            methods::REQUEST_KEYFRAME => {
                let Ok(request) = serde_json::from_value::<TrackRequest>(params) else { return };
                if let Some(track) = self.track(&request.track_id) {
                    track.request_keyframe().await;
                }
            }
            methods::RELINK => {
                let Ok(source) = serde_json::from_value::<LinkSource>(params) else { return };
                if let Some(track) = self.track(&source.topic) {
                    track.relink(source).await;
                }
            }
            _ => tracing::debug!("event {method} ignored"),
        }
    }

    fn track(&self, id: &str) -> Option<Arc<Published>> {
        self.inner.tracks.read().ok().and_then(|t| t.get(id).cloned())
    }

    /// `switch-source`: a subscription's track forwards another track of this node (another
    /// simulcast layer) of the same codec from now on; a keyframe is asked of the new source
    /// (the subscriber's decoder waits for it).
    async fn switch_source(&self, request: SwitchSource) -> Result<Value, RemoteError> {
        let transport = self.session_transport(&request.session_id)?;
        let new = self
            .track(&request.source_track_id)
            .ok_or_else(|| failed(format!("track {} is not published on this node", request.source_track_id)))?;
        let sub = {
            let state = lock(&transport.state);
            let mids = state.sessions.mids(&request.session_id).map(<[String]>::to_vec).unwrap_or_default();
            mids.iter().filter_map(|mid| state.subscribers.get(mid)).find(|s| s.kind == request.kind).cloned()
        }
        .ok_or_else(|| failed(format!("subscription {} has no {:?} track", request.session_id, request.kind)))?;
        let old_id = sub.source();
        if old_id == new.track_id {
            return Ok(json!({}));
        }
        let old = self.track(&old_id);
        if new.kind != request.kind || old.as_ref().is_some_and(|o| o.codec.mime_type != new.codec.mime_type) {
            return Err(failed(format!("track {} is not the same kind and codec", new.track_id)));
        }
        // The switch happens at the new source's next keyframe; meanwhile the old one goes on.
        let previous = lock(&sub.switch).replace(PendingSwitch {
            from: old.as_ref().map(Arc::downgrade).unwrap_or_default(),
            to: new.track_id.clone(),
        });
        if let Some(previous) = previous.filter(|p| p.to != new.track_id) {
            if let Some(abandoned) = self.track(&previous.to) {
                if let Ok(mut list) = abandoned.subscribers.write() {
                    list.retain(|s| !Arc::ptr_eq(s, &sub));
                }
            }
        }
        if let Ok(mut list) = new.subscribers.write() {
            if !list.iter().any(|s| Arc::ptr_eq(s, &sub)) {
                list.push(sub.clone());
            }
        }
        sub.switching.store(true, Ordering::Relaxed);
        tracing::info!(
            "subscription {} switches from {old_id} to {} at its next keyframe",
            request.session_id,
            new.track_id
        );
        new.request_keyframe().await;
        Ok(json!({}))
    }

    /// `link-out`: the track's frames go out on the media link from now on.
    async fn link_out(&self, request: TrackRequest) -> Result<Value, RemoteError> {
        let track = self
            .track(&request.track_id)
            .ok_or_else(|| failed(format!("track {} does not exist", request.track_id)))?;
        let media = self.inner.media.as_ref().ok_or_else(|| failed("this node has no media link"))?;
        if !matches!(track.upstream, Upstream::Remote(_)) {
            return Err(failed(format!("track {} is itself linked from another node", track.track_id)));
        }
        let codec = link::link_codec(&track.codec)
            .ok_or_else(|| failed(format!("{} cannot cross nodes", track.codec.mime_type)))?;
        let started = {
            let mut out = lock(&track.link_out);
            let started = out.is_none();
            if started {
                *out = Some(link::LinkOut::new(&track.track_id, codec, media.clone()));
            }
            started
        };
        if started {
            tracing::info!("track {} goes out on the media link at {}", track.track_id, media.endpoint());
            track.request_keyframe().await;
        }
        Ok(json!(link::source_of(&track.track_id, track.kind, &track.codec, &media.endpoint())))
    }

    /// The local source of a subscribed track: a track of this node, or one received over
    /// the media link (created on first use, shared by its subscribers).
    fn source_for(&self, track_id: &str, link: Option<&LinkSource>) -> Result<Arc<Published>, RemoteError> {
        if let Some(track) = self.track(track_id) {
            return Ok(track);
        }
        let Some(source) = link else {
            return Err(failed(format!("track {track_id} is not published on this node")));
        };
        if link::link_codec(&link::rtp_codec(source)).is_none() {
            return Err(failed(format!("{} cannot cross nodes", source.mime_type)));
        }
        let mut tracks = self.inner.tracks.write().map_err(|_| failed("track table poisoned"))?;
        if let Some(track) = tracks.get(&source.topic) {
            return Ok(track.clone());
        }
        let codec = link::rtp_codec(source);
        let upstream = Upstream::Link {
            source: Mutex::new(source.clone()),
            subscription: Mutex::new(None),
            events: self.inner.events.clone(),
        };
        let published = Arc::new(Published::new(
            source.topic.clone(),
            String::new(),
            source.kind,
            codec,
            upstream,
            (None, 0),
            rand::random::<u32>() | 1,
        ));
        tracks.insert(source.topic.clone(), published.clone());
        drop(tracks);
        tracing::info!("track {} arrives over the media link from {}", source.topic, source.endpoint);
        tokio::spawn(forward_link(published.clone(), source.clone()));
        Ok(published)
    }

    /// Transports open now.
    pub fn transport_count(&self) -> usize {
        lock(&self.inner.transports).len()
    }

    /// Answers one bus request.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, RemoteError> {
        match method {
            methods::PUBLISH => self.publish(parse(method, params)?).await,
            methods::SUBSCRIBE => self.subscribe(parse(method, params)?).await,
            methods::SIGNALING => self.signaling(parse(method, params)?).await,
            methods::UNPUBLISH | methods::UNSUBSCRIBE => {
                let request: SessionRequest = parse(method, params)?;
                self.end_session(&request.session_id, method == methods::UNPUBLISH)
            }
            methods::SET_ACTIVE => self.set_active(parse(method, params)?),
            methods::DESTROY_TRANSPORT => {
                let request: TransportRequest = parse(method, params)?;
                match self.transport(&request.transport_id) {
                    Ok(transport) => {
                        self.inner.destroy(&transport, None).await;
                        Ok(json!({}))
                    }
                    Err(err) => Err(err),
                }
            }
            methods::STATS => self.stats(parse(method, params)?).await,
            methods::LINK_OUT => self.link_out(parse(method, params)?).await,
            methods::SWITCH_SOURCE => self.switch_source(parse(method, params)?).await,
            "status" => Ok(json!({
                "kind": "webrtc",
                "implemented": true,
                "transports": self.transport_count(),
                "tracks": self.inner.tracks.read().map(|t| t.len()).unwrap_or(0),
            })),
            _ => Err(RemoteError::new(codes::UNKNOWN_METHOD, format!("unknown method {method}"))),
        }
    }

    fn transport(&self, id: &str) -> Result<Arc<Transport>, RemoteError> {
        lock(&self.inner.transports).get(id).cloned().ok_or_else(|| failed(format!("Transport {id} does NOT exist")))
    }

    /// The transport carrying a session.
    fn session_transport(&self, session_id: &str) -> Result<Arc<Transport>, RemoteError> {
        let transport_id = lock(&self.inner.sessions)
            .get(session_id)
            .cloned()
            .ok_or_else(|| failed(format!("session {session_id} does not exist")))?;
        self.transport(&transport_id)
    }

    async fn transport_or_create(&self, id: &str) -> Result<Arc<Transport>, RemoteError> {
        if let Ok(transport) = self.transport(id) {
            return Ok(transport);
        }
        if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_graphic()) {
            return Err(bad_params("transportId", format!("invalid transport id {id:?}")));
        }
        if self.transport_count() >= MAX_TRANSPORTS {
            return Err(failed(format!("this node serves {MAX_TRANSPORTS} transports already")));
        }
        let transport = self.inner.create_transport(id).await?;
        let mut transports = lock(&self.inner.transports);
        // Another request may have created it meanwhile: keep that one.
        let kept = transports.entry(id.to_string()).or_insert_with(|| transport.clone()).clone();
        drop(transports);
        if !Arc::ptr_eq(&kept, &transport) {
            let pc = transport.pc.clone();
            tokio::spawn(async move {
                let _ = pc.close().await;
            });
        }
        Ok(kept)
    }

    fn check_session_free(&self, session_id: &str) -> Result<(), RemoteError> {
        if session_id.is_empty() || session_id.len() > 128 {
            return Err(bad_params("sessionId", format!("invalid session id {session_id:?}")));
        }
        if lock(&self.inner.sessions).contains_key(session_id) {
            return Err(failed(format!("session {session_id} already exists")));
        }
        Ok(())
    }

    async fn publish(&self, request: PublishRequest) -> Result<Value, RemoteError> {
        self.check_session_free(&request.session_id)?;
        let transport = self.transport_or_create(&request.transport_id).await?;
        let mids: Vec<String> = request.tracks.iter().map(|t| t.mid.clone()).collect();
        {
            let mut state = lock(&transport.state);
            state.sessions.add(&request.session_id, Role::Publish, &mids).map_err(|e| failed(e.to_string()))?;
            state.publish.insert(request.session_id.clone(), request.clone());
        }
        lock(&self.inner.sessions).insert(request.session_id.clone(), transport.id.clone());
        Ok(json!({}))
    }

    async fn subscribe(&self, request: SubscribeRequest) -> Result<Value, RemoteError> {
        self.check_session_free(&request.session_id)?;
        // Every source must be here first.
        let mut sources = Vec::new();
        for track in &request.tracks {
            let source = self.source_for(&track.source_track_id, track.link.as_ref())?;
            if source.kind != track.kind {
                return Err(failed(format!(
                    "track {} is {:?}, not {:?}",
                    track.source_track_id, source.kind, track.kind
                )));
            }
            sources.push(source);
        }
        let transport = self.transport_or_create(&request.transport_id).await?;
        let mids: Vec<String> = request.tracks.iter().map(|t| t.mid.clone()).collect();
        let mut state = lock(&transport.state);
        state.sessions.add(&request.session_id, Role::Subscribe, &mids).map_err(|e| failed(e.to_string()))?;
        for (track, source) in request.tracks.iter().zip(sources) {
            let ssrc = rand::random::<u32>() | 1;
            let kind = match track.kind {
                Kind::Audio => RtpCodecKind::Audio,
                Kind::Video => RtpCodecKind::Video,
            };
            let media = MediaStreamTrack::new(
                // One msid per subscription: the browser groups its audio and video.
                request.session_id.clone(),
                track_id(&transport.id, &track.mid),
                format!("{}-{}", request.session_id, track.mid),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                    codec: source.codec.clone(),
                    ..Default::default()
                }],
            );
            let subscriber = Arc::new(Subscriber {
                track_id: track_id(&transport.id, &track.mid),
                session_id: request.session_id.clone(),
                kind: track.kind,
                source: Mutex::new(track.source_track_id.clone()),
                switching: AtomicBool::new(false),
                switch: Mutex::new(None),
                local: Arc::new(TrackLocalStaticRTP::new(media)),
                payload_type: AtomicU32::new(u32::MAX),
                rewriter: Mutex::new(StreamRewriter::new(ssrc, source.codec.clock_rate)),
                rtx: Mutex::new(None),
                active: AtomicBool::new(true),
                meter: Mutex::new(RateMeter::new()),
                plis: AtomicU64::new(0),
                retransmitted: AtomicU64::new(0),
                retransmit_budget: Mutex::new(RetransmitBudget::new(RETRANSMISSIONS_PER_SECOND)),
                errors: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            });
            state.subscribers.insert(track.mid.clone(), subscriber);
        }
        drop(state);
        lock(&self.inner.sessions).insert(request.session_id.clone(), transport.id.clone());
        Ok(json!({}))
    }

    async fn signaling(&self, request: SignalingRequest) -> Result<Value, RemoteError> {
        let transport = self.transport(&request.transport_id)?;
        let kind = request.signaling.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "offer" => {
                let sdp = request
                    .signaling
                    .get("sdp")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_params("signaling", "offer without sdp"))?;
                self.inner.offer(&transport, sdp).await
            }
            "candidate" => {
                let candidate = &request.signaling["candidate"];
                let text = match candidate {
                    Value::String(s) => s.as_str(),
                    Value::Object(_) => candidate.get("candidate").and_then(Value::as_str).unwrap_or_default(),
                    _ => return Err(bad_params("signaling", "candidate without candidate")),
                };
                let text = sdp::bare_candidate(text).map_err(|e| bad_params("signaling", e))?;
                let init = RTCIceCandidateInit {
                    candidate: text,
                    sdp_mid: candidate.get("sdpMid").and_then(Value::as_str).map(str::to_string),
                    sdp_mline_index: candidate
                        .get("sdpMLineIndex")
                        .and_then(Value::as_u64)
                        .and_then(|i| u16::try_from(i).ok()),
                    ..Default::default()
                };
                if init.candidate.is_empty() {
                    return Ok(json!({}));
                }
                transport
                    .pc
                    .add_ice_candidate(init)
                    .await
                    .map_err(|err| failed(format!("candidate refused: {err}")))?;
                Ok(json!({}))
            }
            "removed-candidates" => Ok(json!({})),
            other => Err(bad_params("signaling", format!("unknown signaling type {other:?}"))),
        }
    }

    fn end_session(&self, session_id: &str, publish: bool) -> Result<Value, RemoteError> {
        let transport = self.session_transport(session_id)?;
        let role = lock(&transport.state).sessions.role(session_id);
        let expected = if publish { Role::Publish } else { Role::Subscribe };
        if role != Some(expected) {
            return Err(failed(format!("session {session_id} is not a {expected:?} session")));
        }
        self.inner.remove_session(&transport, session_id);
        Ok(json!({}))
    }

    fn set_active(&self, request: SetActiveRequest) -> Result<Value, RemoteError> {
        let transport = self.session_transport(&request.session_id)?;
        let state = lock(&transport.state);
        let role = state.sessions.role(&request.session_id);
        let mids = state.sessions.mids(&request.session_id).map(<[String]>::to_vec).unwrap_or_default();
        let mut touched = 0;
        // Resumed video needs a keyframe before anyone can decode it again.
        let mut want_keyframe: Vec<String> = Vec::new();
        for mid in mids {
            match role {
                Some(Role::Subscribe) => {
                    if let Some(sub) = state.subscribers.get(&mid).filter(|s| s.kind == request.kind) {
                        sub.active.store(request.active, Ordering::Relaxed);
                        if request.active {
                            lock(&sub.rewriter).rebase();
                            want_keyframe.push(sub.source());
                        }
                        touched += 1;
                    }
                }
                _ => {
                    for track in self.inner.tracks_of_mid(&track_id(&transport.id, &mid)) {
                        if track.kind == request.kind {
                            if request.active {
                                // The packets of the pause never went out: the subscribers'
                                // numbering goes on from their last packet, without a gap
                                // they would NACK and count as lost.
                                if let Ok(subscribers) = track.subscribers.read() {
                                    for sub in subscribers.iter() {
                                        lock(&sub.rewriter).rebase();
                                    }
                                }
                                want_keyframe.push(track.track_id.clone());
                            }
                            track.active.store(request.active, Ordering::Relaxed);
                            touched += 1;
                        }
                    }
                }
            }
        }
        drop(state);
        if request.kind == Kind::Video {
            let tracks = self
                .inner
                .tracks
                .read()
                .ok()
                .map(|t| want_keyframe.iter().filter_map(|id| t.get(id).cloned()).collect::<Vec<_>>());
            for track in tracks.unwrap_or_default() {
                tokio::spawn(async move { track.send_pli().await });
            }
        }
        Ok(json!({ "tracks": touched }))
    }

    /// A session's statistics: packets, bytes and bitrate from the node's own meters; packets
    /// lost, NACKs and round-trip time from the peer connection's statistics (RTCP receiver
    /// reports of the client for what the node sends, the node's receive log for what it gets).
    async fn stats(&self, request: SessionRequest) -> Result<Value, RemoteError> {
        let transport = self.session_transport(&request.session_id)?;
        let now = Instant::now();
        let mut stats = SessionStats { session_id: request.session_id.clone(), tracks: vec![] };
        // (index in stats.tracks, mid, ssrc of what the node receives, whether it sends).
        let mut lookups: Vec<(usize, String, Option<u32>, bool)> = Vec::new();
        {
            let state = lock(&transport.state);
            for mid in state.sessions.mids(&request.session_id).unwrap_or_default() {
                let id = track_id(&transport.id, mid);
                if let Some(sub) = state.subscribers.get(mid) {
                    let mut meter = lock(&sub.meter);
                    lookups.push((stats.tracks.len(), mid.to_string(), None, true));
                    stats.tracks.push(TrackStats {
                        track_id: id,
                        kind: Some(sub.kind),
                        packets: meter.packets,
                        bytes: meter.bytes,
                        bitrate_kbps: meter.bitrate_bps(now) / 1000.0,
                        plis: sub.plis.load(Ordering::Relaxed),
                        dropped: sub.dropped.load(Ordering::Relaxed),
                        retransmitted: sub.retransmitted.load(Ordering::Relaxed),
                        ..TrackStats::default()
                    });
                } else {
                    for track in self.inner.tracks_of_mid(&id) {
                        let mut meter = lock(&track.meter);
                        let ssrc = track.media_ssrc.load(Ordering::Relaxed);
                        lookups.push((stats.tracks.len(), mid.to_string(), (ssrc != 0).then_some(ssrc), false));
                        stats.tracks.push(TrackStats {
                            track_id: track.track_id.clone(),
                            kind: Some(track.kind),
                            packets: meter.packets,
                            bytes: meter.bytes,
                            bitrate_kbps: meter.bitrate_bps(now) / 1000.0,
                            plis: track.plis.load(Ordering::Relaxed),
                            ..TrackStats::default()
                        });
                    }
                }
            }
        }
        let report = transport.pc.get_stats(now, StatsSelector::None).await;
        let transport_rtt = report
            .candidate_pairs()
            .filter(|pair| pair.nominated && pair.current_round_trip_time > 0.0)
            .map(|pair| pair.current_round_trip_time * 1000.0)
            .next();
        for (index, mid, ssrc, sends) in lookups {
            let track = &mut stats.tracks[index];
            track.rtt_ms = transport_rtt;
            if sends {
                let Some(outbound) = report.outbound_rtp_streams().find(|o| o.mid == mid) else { continue };
                let ssrc = outbound.sent_rtp_stream_stats.rtp_stream_stats.ssrc;
                track.nacks = u64::from(outbound.nack_count);
                let remote = report.iter().find_map(|entry| match entry {
                    RTCStatsReportEntry::RemoteInboundRtp(r)
                        if r.received_rtp_stream_stats.rtp_stream_stats.ssrc == ssrc =>
                    {
                        Some(r)
                    }
                    _ => None,
                });
                if let Some(remote) = remote {
                    track.packets_lost = remote.received_rtp_stream_stats.packets_lost.max(0) as u64;
                    if remote.round_trip_time_measurements > 0 {
                        track.rtt_ms = Some(remote.round_trip_time * 1000.0);
                    }
                }
            } else {
                let inbound = report.inbound_rtp_streams().find(|i| match ssrc {
                    Some(ssrc) => i.received_rtp_stream_stats.rtp_stream_stats.ssrc == ssrc,
                    None => i.mid == mid,
                });
                if let Some(inbound) = inbound {
                    track.packets_lost = inbound.received_rtp_stream_stats.packets_lost.max(0) as u64;
                    track.nacks = u64::from(inbound.nack_count);
                }
            }
        }
        serde_json::to_value(stats).map_err(|e| failed(e.to_string()))
    }

    /// Closes every transport (daemon stop).
    pub async fn shutdown(&self) {
        let all: Vec<Arc<Transport>> = lock(&self.inner.transports).values().cloned().collect();
        for transport in all {
            self.inner.destroy(&transport, None).await;
        }
    }
}

impl Inner {
    /// The published track `<transportId>-<mid>`, or its simulcast layers
    /// `<transportId>-<mid>:<rid>` in layer order.
    fn tracks_of_mid(&self, id: &str) -> Vec<Arc<Published>> {
        let Ok(tracks) = self.tracks.read() else { return Vec::new() };
        if let Some(track) = tracks.get(id) {
            return vec![track.clone()];
        }
        let prefix = format!("{id}:");
        let mut layers: Vec<Arc<Published>> =
            tracks.iter().filter(|(k, _)| k.starts_with(&prefix)).map(|(_, t)| t.clone()).collect();
        layers.sort_by_key(|t| t.layer);
        layers
    }

    fn emit<T: serde::Serialize>(&self, method: &str, value: &T) {
        match serde_json::to_value(value) {
            Ok(v) => {
                let _ = self.events.send((method.to_string(), v));
            }
            Err(err) => tracing::error!("event {method} not encoded: {err}"),
        }
    }

    async fn create_transport(self: &Arc<Self>, id: &str) -> Result<Arc<Transport>, RemoteError> {
        let mut media = MediaEngine::default();
        media.register_default_codecs().map_err(|e| failed(format!("media engine: {e}")))?;
        let registry = interceptors(&mut media).map_err(|e| failed(format!("interceptors: {e}")))?;
        let registry = registry.with(Slot::from(interceptor::SLOT), FeedbackForwarder::default());
        let mut settings = SettingEngineBuilder::new()
            .with_include_loopback_candidate(self.net.loopback)
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled);
        // The node makes the connection's sockets (sockets.rs). On the shared port the
        // connection is known by its ICE credentials, so they are chosen here, not by the stack.
        let (source, own_sockets): (Arc<dyn UdpSocketSource>, _) = match &self.udp_mux {
            Some(mux) => {
                let (ufrag, password) = (random_ice_chars(16), random_ice_chars(32));
                let source = mux.source(&ufrag, &password);
                settings = settings.with_ice_credentials(ufrag, password);
                (source, None)
            }
            None => {
                let own = OwnSockets::new(self.net.ports, self.net.receive_buffer);
                (own.clone(), Some(own))
            }
        };
        let settings = settings.build();
        let (gathered_tx, gathered) = watch::channel(false);
        let handler =
            Arc::new(PcHandler { node: Arc::downgrade(self), transport_id: id.to_string(), gathered: gathered_tx });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_setting_engine(settings)
            .with_interceptor_registry(registry)
            .with_handler(handler as Arc<dyn PeerConnectionEventHandler>)
            .with_udp_addrs(self.net.addrs())
            .with_udp_socket_source(source);
        let built = pc.build().await;
        // An address whose range has no port left fails the connection, even when another
        // address got one: a client told of fewer addresses might not reach the node at all.
        if let Some(why) = own_sockets.and_then(|own| own.range_exhausted()) {
            if let Ok(pc) = &built {
                let _ = pc.close().await;
            }
            return Err(failed(format!("cannot create the peer connection: {why}")));
        }
        let pc = built.map_err(|e| failed(format!("cannot create the peer connection: {e}")))?;
        tracing::info!("transport {id}: peer connection created");
        Ok(Arc::new(Transport {
            id: id.to_string(),
            pc: Arc::new(pc),
            negotiation: tokio::sync::Mutex::new(()),
            state: Mutex::new(TransportState::default()),
            gathered,
        }))
    }

    async fn offer(self: &Arc<Self>, transport: &Arc<Transport>, offer: &str) -> Result<Value, RemoteError> {
        let lines = sdp::m_lines(offer).map_err(|e| bad_params("offer", e))?;
        let _negotiating = transport.negotiation.lock().await;
        lock(&transport.state).rids.extend(sdp::send_rids(offer));
        // Local tracks of new subscribe m-lines go in before the offer is applied, in m-line
        // order, each on a new sendonly transceiver: the stack pairs each new recvonly m-line
        // with the first unassociated transceiver of its kind.
        let to_add: Vec<(String, Arc<Subscriber>)> = {
            let mut state = lock(&transport.state);
            let mut list = Vec::new();
            for line in &lines {
                let Some(mid) = &line.mid else { continue };
                if line.is_closed() || state.added.contains(mid) {
                    continue;
                }
                if line.direction != "recvonly" {
                    continue;
                }
                if let Some(sub) = state.subscribers.get(mid).cloned() {
                    if line.kind != format!("{:?}", sub.kind).to_ascii_lowercase() {
                        return Err(bad_params(
                            "offer",
                            format!("m-line {mid} is {}, the subscription says {:?}", line.kind, sub.kind),
                        ));
                    }
                    state.added.insert(mid.clone());
                    list.push((mid.clone(), sub));
                }
            }
            list
        };
        for (mid, sub) in &to_add {
            // A transceiver of its own, never one of the publications' receiving transceivers
            // (add_track would reuse those and answer them sendrecv, which the client refuses).
            let init = rtc::rtp_transceiver::RTCRtpTransceiverInit {
                direction: rtc::rtp_transceiver::RTCRtpTransceiverDirection::Sendonly,
                streams: Vec::new(),
                send_encodings: Vec::new(),
            };
            let added =
                transport.pc.add_transceiver_from_track(sub.local.clone() as Arc<dyn TrackLocal>, Some(init)).await;
            if let Err(err) = added {
                lock(&transport.state).added.remove(mid);
                return Err(failed(format!("cannot add the track of mid {mid}: {err}")));
            }
        }
        // Publish m-lines offer only what the room's mediaIn accepts (the answer picks one of them).
        let allowed: HashMap<String, Vec<String>> = {
            let state = lock(&transport.state);
            let mut allowed = HashMap::new();
            for request in state.publish.values() {
                for track in &request.tracks {
                    let formats = match track.kind {
                        Kind::Audio => &request.audio_formats,
                        Kind::Video => &request.video_formats,
                    };
                    allowed.insert(track.mid.clone(), formats.iter().map(|f| f.codec.to_ascii_lowercase()).collect());
                }
            }
            allowed
        };
        let offer = sdp::restrict_offer(offer, &allowed);
        let description = RTCSessionDescription::offer(offer).map_err(|e| bad_params("offer", e))?;
        transport.pc.set_remote_description(description).await.map_err(|e| bad_params("offer", e))?;
        let answer = transport.pc.create_answer(None).await.map_err(|e| failed(format!("create answer: {e}")))?;
        transport.pc.set_local_description(answer).await.map_err(|e| failed(format!("set answer: {e}")))?;
        let first = !lock(&transport.state).answered;
        if first {
            let mut gathered = transport.gathered.clone();
            let _ = tokio::time::timeout(GATHER_TIMEOUT, gathered.wait_for(|done| *done)).await;
        }
        let mut answer_sdp = transport
            .pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or_else(|| failed("no local description after answering"))?;
        for (from, to) in &self.net.replace {
            answer_sdp = sdp::replace_candidate_address(&answer_sdp, from, to);
        }
        answer_sdp = sdp::tidy_answer(&answer_sdp);
        lock(&transport.state).answered = true;
        self.emit(
            events::TRANSPORT_PROGRESS,
            &TransportProgress {
                transport_id: transport.id.clone(),
                status: TransportStatus::Answer,
                sdp: Some(answer_sdp),
                candidate: None,
                reason: None,
            },
        );
        // After the answer, bind the new subscribers (their session-ready follows it):
        // payload type of their codec, forwarding, RTCP.
        if !to_add.is_empty() {
            let senders = transport.pc.get_senders().await;
            for (mid, sub) in &to_add {
                self.bind_subscriber(transport, mid, sub, &senders).await;
            }
        }
        Ok(json!({}))
    }

    async fn bind_subscriber(
        self: &Arc<Self>,
        transport: &Arc<Transport>,
        mid: &str,
        sub: &Arc<Subscriber>,
        senders: &[Arc<dyn webrtc::rtp_transceiver::RtpSender>],
    ) {
        let source = self.tracks.read().ok().and_then(|t| t.get(&sub.source()).cloned());
        let Some(source) = source else {
            self.fail_session(&transport.id, &sub.session_id, format!("track {} is gone", sub.source()));
            return;
        };
        let own_id = sub.track_id.clone();
        let mut payload_type = None;
        let mut rtx = None;
        for sender in senders {
            let track_id = webrtc::media_stream::Track::track_id(sender.track().as_ref()).await;
            if track_id != own_id {
                continue;
            }
            if let Ok(parameters) = sender.get_parameters().await {
                let codecs = parameters.rtp_parameters.codecs;
                let same_mime = |c: &&rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters| {
                    c.rtp_codec.mime_type.eq_ignore_ascii_case(&source.codec.mime_type)
                };
                payload_type = codecs
                    .iter()
                    .filter(same_mime)
                    .find(|c| c.rtp_codec.sdp_fmtp_line == source.codec.sdp_fmtp_line)
                    .or_else(|| codecs.iter().find(same_mime))
                    .map(|c| c.payload_type);
                let rtx_ssrc = parameters.encodings.first().and_then(|e| e.rtp_coding_parameters.rtx.as_ref());
                let rtx_payload_type = payload_type.and_then(|pt| {
                    let repairs = |c: &&rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters| {
                        c.rtp_codec.mime_type.eq_ignore_ascii_case("video/rtx")
                            && sdp::associated_payload_type(&c.rtp_codec.sdp_fmtp_line)
                                .and_then(|apt| apt.trim().parse::<u8>().ok())
                                == Some(pt)
                    };
                    codecs.iter().find(repairs).map(|c| c.payload_type)
                });
                rtx = rtx_ssrc.zip(rtx_payload_type).map(|(rtx, payload_type)| RtxStream {
                    ssrc: rtx.ssrc,
                    payload_type,
                    next_sequence_number: rand::random(),
                });
            }
        }
        let Some(payload_type) = payload_type else {
            self.fail_session(
                &transport.id,
                &sub.session_id,
                format!("the client cannot receive {} on mid {mid}", source.codec.mime_type),
            );
            return;
        };
        sub.payload_type.store(u32::from(payload_type), Ordering::Relaxed);
        *lock(&sub.rtx) = rtx;
        if let Ok(mut list) = source.subscribers.write() {
            list.push(sub.clone());
        }
        // Keyframe requests and NACKs of this subscriber go to its source of the moment.
        let node = Arc::downgrade(self);
        let local = sub.local.clone();
        let subscriber = sub.clone();
        tokio::spawn(async move {
            while let Some(event) = local.poll().await {
                let TrackLocalEvent::OnRtcpPacket(packets) = event else { continue };
                let Some(node) = node.upgrade() else { break };
                let source = node.tracks.read().ok().and_then(|t| t.get(&subscriber.source()).cloned());
                let Some(source) = source else { continue };
                for nack in packets.iter().filter_map(|p| p.as_any().downcast_ref::<TransportLayerNack>()) {
                    source.retransmit(&subscriber, nack, Instant::now());
                }
                if packets.iter().any(|p| interceptor::is_keyframe_request(p.as_ref())) {
                    subscriber.plis.fetch_add(1, Ordering::Relaxed);
                    source.request_keyframe().await;
                }
            }
        });
        source.request_keyframe().await;
        let ready = lock(&transport.state).sessions.satisfy(mid);
        if let Some(session) = ready {
            self.session_ready(transport, &session);
        }
    }

    fn fail_session(&self, transport_id: &str, session_id: &str, reason: String) {
        tracing::warn!("session {session_id} failed: {reason}");
        self.emit(
            events::SESSION_FAILED,
            &SessionFailed { transport_id: transport_id.to_string(), session_id: session_id.to_string(), reason },
        );
    }

    /// Reports a ready session with its tracks' formats.
    fn session_ready(&self, transport: &Transport, session_id: &str) {
        let state = lock(&transport.state);
        let mut tracks = Vec::new();
        for mid in state.sessions.mids(session_id).unwrap_or_default() {
            let id = track_id(&transport.id, mid);
            if let Some(sub) = state.subscribers.get(mid) {
                let format = self.tracks.read().ok().and_then(|t| t.get(&sub.source()).map(|s| s.format.clone()));
                let format = format.unwrap_or_default();
                tracks.push(ReadyTrack { kind: sub.kind, mid: mid.clone(), track_id: id, format, rid: None });
                continue;
            }
            // A publication's track, or its simulcast layers.
            for track in self.tracks_of_mid(&id) {
                tracks.push(ReadyTrack {
                    kind: track.kind,
                    mid: mid.clone(),
                    track_id: track.track_id.clone(),
                    format: track.format.clone(),
                    rid: track.rid.clone(),
                });
            }
        }
        drop(state);
        tracing::info!("session {session_id} ready on transport {}", transport.id);
        self.emit(
            events::SESSION_READY,
            &SessionReady { transport_id: transport.id.clone(), session_id: session_id.to_string(), tracks },
        );
    }

    fn remove_session(&self, transport: &Transport, session_id: &str) {
        let mut state = lock(&transport.state);
        let mids = state.sessions.remove(session_id).unwrap_or_default();
        state.publish.remove(session_id);
        let mut subs = Vec::new();
        for mid in &mids {
            if let Some(sub) = state.subscribers.remove(mid) {
                subs.push(sub);
            }
        }
        drop(state);
        lock(&self.sessions).remove(session_id);
        for sub in subs {
            sub.active.store(false, Ordering::Relaxed);
            // A switch still waiting for its keyframe holds the subscriber in its target too.
            let pending = lock(&sub.switch).take();
            if let Some(target) = pending.and_then(|p| self.tracks.read().ok().and_then(|t| t.get(&p.to).cloned())) {
                if let Ok(mut list) = target.subscribers.write() {
                    list.retain(|s| !Arc::ptr_eq(s, &sub));
                }
            }
            if let Some(source) = self.tracks.read().ok().and_then(|t| t.get(&sub.source()).cloned()) {
                let left = source
                    .subscribers
                    .write()
                    .map(|mut list| {
                        list.retain(|s| !Arc::ptr_eq(s, &sub));
                        list.len()
                    })
                    .unwrap_or(0);
                // A linked track lives as long as somebody here watches it.
                if left == 0 && matches!(source.upstream, Upstream::Link { .. }) {
                    source.ended.store(true, Ordering::Relaxed);
                    if let Ok(mut tracks) = self.tracks.write() {
                        tracks.retain(|_, t| !Arc::ptr_eq(t, &source));
                    }
                }
            }
        }
        for mid in &mids {
            for track in self.tracks_of_mid(&track_id(&transport.id, mid)) {
                if let Ok(mut tracks) = self.tracks.write() {
                    tracks.remove(&track.track_id);
                }
                track.ended.store(true, Ordering::Relaxed);
                if let Ok(mut list) = track.subscribers.write() {
                    list.clear();
                }
            }
        }
        tracing::info!("session {session_id} ended on transport {}", transport.id);
    }

    /// Closes a transport and ends its sessions; `reason` set = report it failed.
    async fn destroy(&self, transport: &Arc<Transport>, reason: Option<String>) {
        let removed = lock(&self.transports).remove(&transport.id).is_some();
        let sessions: Vec<String> = {
            let mut state = lock(&transport.state);
            if state.closed {
                return;
            }
            state.closed = true;
            state.sessions.session_ids().map(str::to_string).collect()
        };
        for session in &sessions {
            self.remove_session(transport, session);
        }
        if let Err(err) = transport.pc.close().await {
            tracing::debug!("transport {}: close: {err}", transport.id);
        }
        if let (true, Some(reason)) = (removed, reason) {
            self.emit(
                events::TRANSPORT_PROGRESS,
                &TransportProgress {
                    transport_id: transport.id.clone(),
                    status: TransportStatus::Failed,
                    sdp: None,
                    candidate: None,
                    reason: Some(reason),
                },
            );
        }
        tracing::info!("transport {} closed", transport.id);
    }

    async fn on_connection(self: Arc<Self>, transport_id: String, state: RTCPeerConnectionState) {
        let Some(transport) = lock(&self.transports).get(&transport_id).cloned() else { return };
        match state {
            RTCPeerConnectionState::Connected => {
                let ready = {
                    let mut s = lock(&transport.state);
                    if s.ready {
                        return;
                    }
                    s.ready = true;
                    s.sessions.set_transport_ready()
                };
                self.emit(
                    events::TRANSPORT_PROGRESS,
                    &TransportProgress {
                        transport_id: transport_id.clone(),
                        status: TransportStatus::Ready,
                        sdp: None,
                        candidate: None,
                        reason: None,
                    },
                );
                for session in ready {
                    self.session_ready(&transport, &session);
                }
            }
            RTCPeerConnectionState::Failed => {
                self.destroy(&transport, Some("ICE/DTLS failed".into())).await;
            }
            RTCPeerConnectionState::Closed => {
                self.destroy(&transport, Some("peer connection closed".into())).await;
            }
            _ => {}
        }
    }

    async fn on_track(self: Arc<Self>, transport_id: String, track: Arc<dyn TrackRemote>) {
        let Some(transport) = lock(&self.transports).get(&transport_id).cloned() else { return };
        let remote_id = webrtc::media_stream::Track::track_id(track.as_ref()).await;
        let mut mid = None;
        for transceiver in transport.pc.get_transceivers().await {
            if let Ok(Some(receiver)) = transceiver.receiver().await {
                if webrtc::media_stream::Track::track_id(receiver.track().as_ref()).await == remote_id {
                    mid = transceiver.mid().await.ok().flatten();
                    break;
                }
            }
        }
        let Some(mid) = mid else {
            tracing::warn!("transport {transport_id}: a track without a mid");
            return;
        };
        let session = lock(&transport.state).sessions.session_of(&mid).map(|(id, role)| (id.to_string(), role));
        let Some((session_id, Role::Publish)) = session else {
            tracing::warn!("transport {transport_id}: track on mid {mid} that no publication owns; ignored");
            return;
        };
        let ssrc = track.ssrcs().await.first().copied().unwrap_or_default();
        let Some(codec) = track.codec(ssrc).await else {
            self.fail_session(&transport_id, &session_id, format!("no codec on mid {mid}"));
            return;
        };
        let Some(kind) = kind_of(track.kind().await) else { return };
        let format = codec_format(&codec);
        let accepted = {
            let state = lock(&transport.state);
            state.publish.get(&session_id).map(|request| {
                let formats = match kind {
                    Kind::Audio => &request.audio_formats,
                    Kind::Video => &request.video_formats,
                };
                formats.is_empty() || formats.iter().any(|f| f.codec.eq_ignore_ascii_case(&format.codec))
            })
        };
        if accepted == Some(false) {
            let what = if kind == Kind::Audio { "Audio" } else { "Video" };
            self.fail_session(&transport_id, &session_id, format!("{what} format unacceptable"));
            return;
        }
        let id = track_id(&transport_id, &mid);
        // A simulcast m-line is one remote track carrying every layer: a published track per
        // layer (RID), `<transportId>-<mid>:<rid>`, fed by the one forwarding task.
        let rids = lock(&transport.state).rids.get(&mid).cloned().unwrap_or_default();
        let layers: Vec<Option<String>> =
            if kind == Kind::Video && !rids.is_empty() { rids.into_iter().map(Some).collect() } else { vec![None] };
        let mut published = Vec::new();
        for (layer, rid) in layers.into_iter().enumerate() {
            let layer_id = match &rid {
                Some(rid) => format!("{id}:{rid}"),
                None => id.clone(),
            };
            published.push(Arc::new(Published::new(
                layer_id,
                session_id.clone(),
                kind,
                codec.clone(),
                Upstream::Remote(track.clone()),
                (rid, layer),
                ssrc,
            )));
        }
        if let Ok(mut tracks) = self.tracks.write() {
            for layer in &published {
                tracks.insert(layer.track_id.clone(), layer.clone());
            }
        }
        let names: Vec<&str> = published.iter().map(|p| p.track_id.as_str()).collect();
        tracing::info!("track {} ({}) published by session {session_id}", names.join(", "), codec.mime_type);
        tokio::spawn(forward(published, track, self.events.clone()));
        let ready = lock(&transport.state).sessions.satisfy(&mid);
        if let Some(session) = ready {
            self.session_ready(&transport, &session);
        }
    }
}

/// The stack's default interceptors (NACK generator, simulcast header extensions,
/// transport-cc feedback to publishers, RTCP reports) without its NACK responder: that keeps a
/// copy of every packet each subscriber leg sends, where the node answers NACKs from one
/// history per published track (`Published::retransmit`).
fn interceptors(media: &mut MediaEngine) -> Result<Registry, rtc::shared::error::Error> {
    use rtc::interceptor::NackGeneratorBuilder;
    use rtc::peer_connection::configuration::interceptor_registry::{
        configure_rtcp_reports, configure_simulcast_extension_headers, configure_twcc_receiver_only,
    };
    use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, TYPE_RTCP_FB_NACK};
    for parameter in ["", "pli"] {
        let feedback = RTCPFeedback { typ: TYPE_RTCP_FB_NACK.to_owned(), parameter: parameter.to_owned() };
        media.register_feedback(feedback, RtpCodecKind::Video);
    }
    let registry = Registry::new().with(Slot::NackGenerator, NackGeneratorBuilder::new().build());
    configure_simulcast_extension_headers(media)?;
    let registry = configure_twcc_receiver_only(registry, media)?;
    Ok(configure_rtcp_reports(registry))
}

/// What became of a packet a published track took in (`Published::take_in`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intake {
    /// Not forwarded: the track is paused.
    Held,
    /// Forwarded, newer than every packet before it.
    Fresh,
    /// Forwarded, older than one received before it (a retransmission the node recovered, or
    /// reordered): no subscriber's numbering starts anew on it, see `StreamRewriter::rewrite`.
    Late,
}

/// Packets taken off a published track at once: a frame's worth and more.
const FORWARD_BATCH: usize = 32;

/// Forwards every packet of a published track to its subscribers until it ends. A simulcast
/// track carries several layers (one SSRC each): packets go to the layer their SSRC's RID
/// names; packets of SSRCs without a known layer yet are dropped. The packets that have
/// arrived together (a frame's, usually) go out as one batch (`Published::fan_out`).
async fn forward(
    layers: Vec<Arc<Published>>,
    remote: Arc<dyn TrackRemote>,
    events: mpsc::UnboundedSender<(String, Value)>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let simulcast = layers.iter().any(|l| l.rid.is_some());
    let mut layer_of_ssrc: HashMap<u32, usize> = HashMap::new();
    // An event taken while gathering a batch that is not a packet: handled next.
    let mut held: Option<Option<TrackRemoteEvent>> = None;
    // The batch: packets in arrival order, the layer of each and whether it came late.
    let mut batch: Vec<rtp::Packet> = Vec::with_capacity(FORWARD_BATCH);
    let mut batch_layers: Vec<usize> = Vec::with_capacity(FORWARD_BATCH);
    let mut batch_late: Vec<bool> = Vec::with_capacity(FORWARD_BATCH);
    let mut in_flight = FanOutParts::default();
    'events: loop {
        let event = match held.take() {
            Some(event) => event,
            None => tokio::select! {
                event = remote.poll() => event,
                _ = tick.tick() => {
                    let now = Instant::now();
                    for track in &layers {
                        track.tick().await;
                        track.report_facts(&events, now);
                    }
                    if layers.iter().all(|t| t.ended.load(Ordering::Relaxed)) {
                        break;
                    }
                    continue;
                }
            },
        };
        let Some(event) = event else { break };
        let TrackRemoteEvent::OnRtpPacket(first) = event else {
            if matches!(event, TrackRemoteEvent::OnEnded) {
                break;
            }
            continue;
        };
        // The last batch's parts end before this batch is gathered: packets that arrive
        // meanwhile join it.
        in_flight.sent().await;
        let mut next = Some(first);
        while let Some(packet) = next.take() {
            let ssrc = packet.header.ssrc;
            let index = match layer_of_ssrc.get(&ssrc) {
                Some(index) => Some(*index),
                None if !simulcast => Some(0),
                None => {
                    let rid = remote.rid(ssrc).await;
                    let index = layers.iter().position(|l| l.rid.is_some() && l.rid.as_deref() == rid.as_deref());
                    if let Some(index) = index {
                        layer_of_ssrc.insert(ssrc, index);
                    }
                    index
                }
            };
            if let Some(index) = index {
                let track = &layers[index];
                if track.ended.load(Ordering::Relaxed) {
                    break 'events;
                }
                let intake = track.take_in(&packet, ssrc).await;
                if intake != Intake::Held {
                    batch.push(packet);
                    batch_layers.push(index);
                    batch_late.push(intake == Intake::Late);
                }
            }
            if batch.len() < FORWARD_BATCH {
                match remote.poll().now_or_never() {
                    Some(Some(TrackRemoteEvent::OnRtpPacket(packet))) => next = Some(packet),
                    Some(other) => held = Some(other),
                    None => {}
                }
            }
        }
        let now = Instant::now();
        group_by_layer(&mut batch, &mut batch_layers, &mut batch_late);
        let mut start = 0;
        while let Some(index) = batch_layers.get(start) {
            let run = batch_layers[start..].iter().take_while(|i| *i == index).count();
            let mut parts = layers[*index].fan_out(&batch[start..start + run], &batch_late[start..start + run], now);
            in_flight.0.append(&mut parts.0);
            start += run;
        }
        batch.clear();
        batch_layers.clear();
        batch_late.clear();
    }
    for track in &layers {
        tracing::debug!("forwarding of {} (session {}) ended", track.track_id, track.session_id);
    }
}

/// Puts a batch's packets of each simulcast layer together, each layer's in arrival order, so
/// that every layer has one fan-out per batch: the parts of two fan-outs of the same layer
/// would run at the same time, and a subscriber could get the later packets first.
fn group_by_layer(packets: &mut Vec<rtp::Packet>, layers: &mut Vec<usize>, late: &mut Vec<bool>) {
    if layers.windows(2).all(|pair| pair[0] <= pair[1]) {
        return;
    }
    let mut order: Vec<usize> = (0..packets.len()).collect();
    order.sort_by_key(|&i| layers[i]);
    *packets = order.iter().map(|&i| std::mem::take(&mut packets[i])).collect();
    *layers = order.iter().map(|&i| layers[i]).collect();
    *late = order.iter().map(|&i| late[i]).collect();
}

/// Forwards the frames of a linked track to its subscribers until it ends.
async fn forward_link(track: Arc<Published>, source: LinkSource) {
    let codec = link::link_codec(&track.codec).expect("checked when the link was made");
    let mut subscriber = match link::subscribe(&source) {
        Ok(subscriber) => subscriber,
        Err(err) => {
            tracing::warn!("{}: {err}", track.track_id);
            track.ended.store(true, Ordering::Relaxed);
            return;
        }
    };
    if let Upstream::Link { subscription, .. } = &track.upstream {
        *lock(subscription) = Some(subscriber.handle());
    }
    let mut packets = link::LinkIn::new(codec, track.media_ssrc.load(Ordering::Relaxed));
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut in_flight = FanOutParts::default();
    loop {
        let received = tokio::select! {
            received = subscriber.recv() => received,
            _ = tick.tick() => {
                track.tick().await;
                if track.ended.load(Ordering::Relaxed) {
                    break;
                }
                continue;
            }
        };
        let Some(received) = received else { break };
        if track.ended.load(Ordering::Relaxed) {
            break;
        }
        if received.gap {
            track.request_keyframe().await;
        }
        let now = Instant::now();
        let frame = packets.packets(&received.frame);
        let bytes = frame.iter().map(metered_size).sum();
        if let Ok(mut meter) = track.meter.lock() {
            meter.record_packets(frame.len() as u64, bytes, now);
        }
        if track.active.load(Ordering::Relaxed) {
            // The link hands over whole frames in order: none late.
            in_flight.sent().await;
            in_flight = track.fan_out(&frame, &vec![false; frame.len()], now);
        }
    }
    tracing::debug!("link of {} from {} ended", track.track_id, source.endpoint);
}

/// Peer connection events of one transport. The stack awaits these callbacks in its driver
/// loop, so anything that talks to the peer connection runs in a task of its own.
struct PcHandler {
    node: Weak<Inner>,
    transport_id: String,
    gathered: watch::Sender<bool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PcHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!("transport {}: {state}", self.transport_id);
        if let Some(node) = self.node.upgrade() {
            tokio::spawn(node.on_connection(self.transport_id.clone(), state));
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(node) = self.node.upgrade() {
            tokio::spawn(node.on_track(self.transport_id.clone(), track));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_of_codecs() {
        let codec = |mime: &str, fmtp: &str| RTCRtpCodec {
            mime_type: mime.into(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: fmtp.into(),
            rtcp_feedback: vec![],
        };
        assert_eq!(codec_format(&codec("audio/opus", "")).sample_rate, Some(48_000));
        assert_eq!(codec_format(&codec("video/VP8", "")).codec, "vp8");
        let h264 = codec_format(&codec(
            "video/H264",
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        ));
        assert_eq!((h264.codec.as_str(), h264.profile.as_deref()), ("h264", Some("CB")));
        let b = codec_format(&codec("video/H264", "profile-level-id=42001f"));
        assert_eq!(b.profile.as_deref(), Some("B"));
        let h = codec_format(&codec("video/H264", "profile-level-id=640032"));
        assert_eq!(h.profile.as_deref(), Some("H"));
    }

    #[test]
    fn a_batch_is_grouped_by_layer_in_arrival_order() {
        let packet = |seq: u16| rtp::Packet {
            header: rtp::header::Header { sequence_number: seq, ..Default::default() },
            ..Default::default()
        };
        let mut packets: Vec<_> = [10, 20, 11, 30, 21, 12].into_iter().map(packet).collect();
        let mut layers = vec![0, 1, 0, 2, 1, 0];
        let mut late = vec![false, false, true, false, false, false];
        group_by_layer(&mut packets, &mut layers, &mut late);
        let seqs: Vec<u16> = packets.iter().map(|p| p.header.sequence_number).collect();
        assert_eq!(seqs, [10, 11, 12, 20, 21, 30]);
        assert_eq!(layers, [0, 0, 0, 1, 1, 2]);
        assert_eq!(late, [false, true, false, false, false, false]);

        let mut one_layer: Vec<_> = [5, 6].into_iter().map(packet).collect();
        group_by_layer(&mut one_layer, &mut vec![1, 1], &mut vec![false, false]);
        assert_eq!(one_layer[0].header.sequence_number, 5);
    }

    #[test]
    fn net_settings() {
        let section = owt_config::WebrtcSection { loopback_candidates: true, ..Default::default() };
        let net = NetSettings::from_config(&section).unwrap();
        assert_eq!(net.bind_ips, vec![IpAddr::from([0, 0, 0, 0]), IpAddr::from([127, 0, 0, 1])]);
        let lo = owt_config::WebrtcSection {
            network_interfaces: vec![owt_config::NetworkInterface {
                name: "lo".into(),
                replaced_ip_address: "203.0.113.9".into(),
            }],
            minport: 40_000,
            maxport: 40_100,
            ..Default::default()
        };
        let net = NetSettings::from_config(&lo).unwrap();
        assert_eq!(net.bind_ips, vec![IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(net.replace, vec![("127.0.0.1".to_string(), "203.0.113.9".to_string())]);
        // The port of the range is taken by the connection's socket source (sockets.rs).
        assert_eq!(net.addrs(), ["127.0.0.1:0"]);
        // minport = maxport: every connection shares that port, on each address.
        let one = NetSettings { ports: (40_000, 40_000), ..net.clone() };
        assert_eq!(one.one_port(), Some(40_000));
        assert_eq!(one.addrs(), ["127.0.0.1:40000"]);
        assert_eq!(net.one_port(), None, "a range of several ports");
        let wildcard =
            NetSettings { ports: (40_000, 40_000), bind_ips: vec![IpAddr::from([0, 0, 0, 0])], ..net.clone() };
        let addrs = wildcard.addrs();
        assert!(
            !addrs.is_empty() && addrs.iter().all(|a| a.ends_with(":40000") && !a.starts_with("127.")),
            "{addrs:?}"
        );
        let missing = owt_config::WebrtcSection {
            network_interfaces: vec![owt_config::NetworkInterface {
                name: "nope0".into(),
                replaced_ip_address: String::new(),
            }],
            ..Default::default()
        };
        assert!(NetSettings::from_config(&missing).is_err());
    }
}
