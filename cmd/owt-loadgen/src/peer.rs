//! One client peer connection built with the webrtc crate, bound to one local address so
//! ICE pairs only there (127.0.0.1 for owt, the netns veth address for Janus). Publishers
//! send synthetic VP8 on a sendonly track; subscribers count and time what arrives.

use crate::media::{now_us, vp8_payload, Received, Window};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};

pub type Error = String;

fn err(context: &str) -> impl Fn(webrtc::error::Error) -> String + '_ {
    move |e| format!("{context}: {e}")
}

struct Handler {
    gathered: watch::Sender<bool>,
    connected: watch::Sender<Option<bool>>,
    received: Option<(Arc<Received>, Arc<Window>)>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        match state {
            RTCPeerConnectionState::Connected => {
                let _ = self.connected.send(Some(true));
            }
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                let _ = self.connected.send(Some(false));
            }
            _ => {}
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let Some((received, window)) = self.received.clone() else { return };
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(p) = event {
                    received.record(&window, p.header.ssrc, p.header.sequence_number, &p.payload, now_us());
                }
            }
        });
    }
}

pub struct Peer {
    pub pc: Arc<dyn PeerConnection>,
    gathered: watch::Receiver<bool>,
    connected: watch::Receiver<Option<bool>>,
}

impl Peer {
    /// A peer bound to `ip` (UDP, one port); `received` makes it count arriving RTP.
    pub async fn new(ip: &str, received: Option<(Arc<Received>, Arc<Window>)>) -> Result<Peer, Error> {
        let mut media = MediaEngine::default();
        media.register_default_codecs().map_err(err("codecs"))?;
        let registry = register_default_interceptors(Registry::new(), &mut media).map_err(err("interceptors"))?;
        let settings = SettingEngineBuilder::new()
            .with_include_loopback_candidate(true)
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .build();
        let (gathered_tx, gathered) = watch::channel(false);
        let (connected_tx, connected) = watch::channel(None);
        let handler = Handler { gathered: gathered_tx, connected: connected_tx, received };
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_setting_engine(settings)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(handler) as Arc<dyn PeerConnectionEventHandler>)
            .with_udp_addrs(vec![format!("{ip}:0")])
            .build()
            .await
            .map_err(err("peer connection"))?;
        Ok(Peer { pc: Arc::new(pc), gathered, connected })
    }

    /// A sendonly VP8 track with this SSRC.
    pub async fn add_video_sender(&self, ssrc: u32) -> Result<Arc<TrackLocalStaticRTP>, Error> {
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            format!("loadgen-{ssrc}"),
            format!("video-{ssrc}"),
            "camera".to_string(),
            RtpCodecKind::Video,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                codec: RTCRtpCodec { mime_type: "video/VP8".into(), clock_rate: 90_000, ..Default::default() },
                ..Default::default()
            }],
        )));
        self.pc
            .add_transceiver_from_track(
                track.clone() as Arc<dyn TrackLocal>,
                Some(RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Sendonly, ..Default::default() }),
            )
            .await
            .map_err(err("add sender"))?;
        Ok(track)
    }

    pub async fn add_video_receiver(&self) -> Result<(), Error> {
        self.pc
            .add_transceiver_from_kind(
                RtpCodecKind::Video,
                Some(RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() }),
            )
            .await
            .map(|_| ())
            .map_err(err("add receiver"))
    }

    async fn gathered_sdp(&self) -> Result<String, Error> {
        let mut gathered = self.gathered.clone();
        let _ = tokio::time::timeout(Duration::from_secs(10), gathered.wait_for(|g| *g)).await;
        self.pc.local_description().await.map(|d| d.sdp).ok_or_else(|| "no local description".to_string())
    }

    /// createOffer + setLocalDescription, candidates gathered into the SDP (no trickle).
    pub async fn offer(&self) -> Result<String, Error> {
        let offer = self.pc.create_offer(None).await.map_err(err("create offer"))?;
        self.pc.set_local_description(offer).await.map_err(err("set local offer"))?;
        self.gathered_sdp().await
    }

    /// setRemoteDescription(offer) + createAnswer + setLocalDescription, gathered.
    pub async fn answer(&self, offer: String) -> Result<String, Error> {
        let offer = RTCSessionDescription::offer(offer).map_err(|e| format!("remote offer: {e}"))?;
        self.pc.set_remote_description(offer).await.map_err(err("set remote offer"))?;
        let answer = self.pc.create_answer(None).await.map_err(err("create answer"))?;
        self.pc.set_local_description(answer).await.map_err(err("set local answer"))?;
        self.gathered_sdp().await
    }

    pub async fn set_answer(&self, sdp: String) -> Result<(), Error> {
        let answer = RTCSessionDescription::answer(sdp).map_err(|e| format!("remote answer: {e}"))?;
        self.pc.set_remote_description(answer).await.map_err(err("set remote answer"))
    }

    /// The mid of the first transceiver (these peers have exactly one).
    pub async fn first_mid(&self) -> Result<String, Error> {
        for t in self.pc.get_transceivers().await {
            if let Ok(Some(mid)) = t.mid().await {
                return Ok(mid);
            }
        }
        Err("no mid after the offer".into())
    }

    /// Waits for the connection to become connected.
    pub async fn connected(&self, within: Duration) -> Result<(), Error> {
        let mut c = self.connected.clone();
        let state = tokio::time::timeout(within, c.wait_for(|s| s.is_some())).await.map(|r| r.map(|s| *s));
        match state {
            Ok(Ok(Some(true))) => Ok(()),
            Ok(_) => Err("peer connection failed".into()),
            Err(_) => Err(format!("peer connection not connected within {within:?}")),
        }
    }
}

/// The synthetic stream of one publisher.
pub struct Sender {
    pub sent: AtomicU64,
    pub stop: AtomicBool,
}

/// The shape of a synthetic stream.
#[derive(Clone, Copy, Debug)]
pub struct StreamShape {
    pub frame_interval: Duration,
    pub per_frame: u32,
    pub size: usize,
    pub keyframe_every: u32,
}

/// Sends a frame every `shape.frame_interval` of `shape.per_frame` packets until stopped; counts the
/// packets whose send time is inside `window`.
pub async fn send_loop(
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<Sender>,
    window: Arc<Window>,
    publisher: u32,
    ssrc: u32,
    shape: StreamShape,
) {
    let StreamShape { frame_interval, per_frame, size, keyframe_every } = shape;
    let ticks_per_frame = (frame_interval.as_secs_f64() * 90_000.0).round() as u32;
    let mut tick = tokio::time::interval(frame_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: u64 = 0;
    for frame in 0u32.. {
        tick.tick().await;
        if sender.stop.load(Ordering::Relaxed) {
            break;
        }
        let keyframe = keyframe_every > 0 && frame % keyframe_every == 0;
        for part in 0..per_frame {
            let send_us = now_us();
            let payload = vp8_payload(size, part == 0, keyframe, publisher, seq, send_us);
            let packet = rtp::Packet {
                header: rtp::header::Header {
                    version: 2,
                    marker: part + 1 == per_frame,
                    payload_type: 96,
                    sequence_number: wire_sequence_number(ssrc, seq),
                    timestamp: frame.wrapping_mul(ticks_per_frame),
                    ssrc,
                    ..Default::default()
                },
                payload: bytes::Bytes::from(payload),
            };
            seq += 1;
            if track.write_rtp(packet).await.is_ok() && window.contains(send_us) {
                sender.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The RTP sequence number a publisher with `ssrc` gives its packet number `seq` (counted
/// from 0, as in the payload trailer): from a start that differs per SSRC.
pub fn wire_sequence_number(ssrc: u32, seq: u64) -> u16 {
    ((ssrc.wrapping_mul(2_654_435_761) >> 16) as u16).wrapping_add(seq as u16)
}
