//! Node-level tests of owt-webrtc, no browser: the test is the portal (an owt_bus::Cluster
//! in-process on a free loopback port) and two WebRTC clients built with the webrtc crate
//! that negotiate like the OWT JS SDK (one peer connection per client, the client always
//! offers, sendonly m-lines to publish, recvonly to subscribe, re-offers add m-lines). The
//! real owt-webrtc binary runs as a process with `loopback_candidates = true`; clients bind
//! 127.0.0.1 only, so ICE pairs on loopback.

use owt_bus::{Cluster, ClusterEvent};
use owt_proto::webrtc as proto;
use rtc::interceptor::{Registry, Slot};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    nack_pairs_from_sequence_numbers, NackPair, TransportLayerNack,
};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCSessionDescription, SettingEngineBuilder,
};

const WAIT: Duration = Duration::from_secs(10);

fn program(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(path.exists(), "{} not built: run `cargo build --workspace --bins` first", path.display());
    path
}

/// The portal side: a cluster and the node process registered with it.
struct Harness {
    cluster: Cluster,
    events: broadcast::Receiver<ClusterEvent>,
    node_id: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Harness {
    /// With `webrtc` added to the `[webrtc]` section of owt-webrtc's configuration.
    async fn start_with(webrtc: &str) -> Harness {
        let mut config = owt_config::PortalConfig::default();
        config.cluster.bus = "tcp://127.0.0.1:0".to_string();
        let cluster = Cluster::start(&config, &tokio::runtime::Handle::current()).expect("cluster starts");
        let mut events = cluster.subscribe_events();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webrtc.toml");
        std::fs::write(
            &path,
            format!(
                "[webrtc]\nloopback_candidates = true\n{webrtc}\n[cluster]\nportal = \"{}\"\nnode_id = \"webrtc-test-{}\"\n",
                cluster.endpoint(),
                std::process::id()
            ),
        )
        .unwrap();
        let child = Command::new(program("owt-webrtc"))
            .arg("--config")
            .arg(&path)
            .env_remove("NOTIFY_SOCKET")
            .env("RUST_LOG", std::env::var("OWT_TEST_LOG").unwrap_or_else(|_| "error".into()))
            .stdin(Stdio::null())
            .spawn()
            .expect("owt-webrtc starts");
        let node_id = tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(ClusterEvent::WorkerJoined { node_id, kind, .. }) = events.recv().await {
                    if kind == "webrtc" {
                        return node_id;
                    }
                }
            }
        })
        .await
        .expect("owt-webrtc registers");
        Harness { cluster, events, node_id, child, _dir: dir }
    }

    async fn request(&self, method: &str, params: Value) -> Result<Value, String> {
        self.cluster.request(&self.node_id, method, params, WAIT).await.map_err(|e| e.to_string())
    }

    /// The next worker event `method` matching `filter`, skipping others.
    async fn event(&mut self, method: &str, filter: impl Fn(&Value) -> bool) -> Value {
        let events = &mut self.events;
        tokio::time::timeout(WAIT, async {
            loop {
                match events.recv().await {
                    Ok(ClusterEvent::WorkerEvent { method: m, params, .. }) if m == method && filter(&params) => {
                        return params
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(err) => panic!("events: {err}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {method} event within {WAIT:?}"))
    }
}

/// What a client peer connection saw.
#[derive(Default)]
struct Seen {
    /// (ssrc, seq, payload) of received RTP, per remote track kind.
    packets: Mutex<Vec<(u32, u16, Vec<u8>)>>,
    plis: AtomicU64,
    remote: Mutex<Vec<Arc<dyn TrackRemote>>>,
}

struct ClientHandler {
    gathered: watch::Sender<bool>,
    seen: Arc<Seen>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ClientHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        self.seen.remote.lock().unwrap().push(track.clone());
        let seen = self.seen.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(p) = event {
                    seen.packets.lock().unwrap().push((p.header.ssrc, p.header.sequence_number, p.payload.to_vec()));
                }
            }
        });
    }
}

struct Client {
    pc: Arc<dyn PeerConnection>,
    gathered: watch::Receiver<bool>,
    seen: Arc<Seen>,
    transport_id: String,
}

impl Client {
    async fn new(transport_id: &str) -> Client {
        let mut media = MediaEngine::default();
        media.register_default_codecs().unwrap();
        let registry = register_default_interceptors(Registry::new(), &mut media).unwrap();
        let registry = registry
            .with(Slot::from(owt_webrtc::interceptor::SLOT), owt_webrtc::interceptor::FeedbackForwarder::default());
        let settings = SettingEngineBuilder::new()
            .with_include_loopback_candidate(true)
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .build();
        let (tx, gathered) = watch::channel(false);
        let seen = Arc::new(Seen::default());
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_setting_engine(settings)
            .with_interceptor_registry(registry)
            .with_handler(
                Arc::new(ClientHandler { gathered: tx, seen: seen.clone() }) as Arc<dyn PeerConnectionEventHandler>
            )
            .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
            .build()
            .await
            .unwrap();
        Client { pc: Arc::new(pc), gathered, seen, transport_id: transport_id.to_string() }
    }

    /// A sendonly VP8 track, as `publish` adds it.
    async fn add_video_sender(&self, ssrc: u32) -> Arc<TrackLocalStaticRTP> {
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            "camera".to_string(),
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
            .unwrap();
        track
    }

    async fn add_recvonly(&self, kind: RtpCodecKind) {
        self.pc
            .add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() }),
            )
            .await
            .unwrap();
    }

    /// createOffer + setLocalDescription; the first offer waits for gathering (candidates in it).
    async fn offer(&self) -> String {
        let offer = self.pc.create_offer(None).await.unwrap();
        self.pc.set_local_description(offer).await.unwrap();
        let mut gathered = self.gathered.clone();
        let _ = tokio::time::timeout(WAIT, gathered.wait_for(|g| *g)).await;
        self.pc.local_description().await.unwrap().sdp
    }

    /// The mids of the transceivers (not necessarily in m-line order).
    async fn mids(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in self.pc.get_transceivers().await {
            out.push(t.mid().await.unwrap().unwrap_or_default());
        }
        out
    }

    async fn negotiate(&self, h: &mut Harness) -> String {
        let sdp = self.offer().await;
        h.request(
            proto::methods::SIGNALING,
            json!({"transportId": self.transport_id, "signaling": {"type": "offer", "sdp": sdp}}),
        )
        .await
        .expect("offer accepted");
        let tid = self.transport_id.clone();
        let progress = h
            .event(proto::events::TRANSPORT_PROGRESS, |p| p["transportId"] == tid.as_str() && p["status"] == "answer")
            .await;
        let answer = progress["sdp"].as_str().expect("answer sdp").to_string();
        self.pc.set_remote_description(RTCSessionDescription::answer(answer.clone()).unwrap()).await.unwrap();
        answer
    }
}

/// The port of the first 127.0.0.1 candidate of an SDP.
fn loopback_port(sdp: &str) -> u16 {
    sdp.lines()
        .find(|l| l.starts_with("a=candidate:") && l.contains(" 127.0.0.1 "))
        .and_then(|l| l.split(' ').nth(5))
        .and_then(|p| p.parse::<u16>().ok())
        .expect("a loopback candidate with a port")
}

/// A received packet: (ssrc, sequence number, payload).
type Received = (u32, u16, Vec<u8>);

/// The packets of one stream ordered by sequence number, when every sequence number from the
/// lowest to the highest came exactly once; `None` while one is missing or came twice.
/// Arrival order may differ: a publisher's packet that the node's socket lost (the kernel drops
/// datagrams when the garbage sent below overflows the socket's queue, as on a flooded host) is
/// repaired by NACK and RTX upstream and forwarded late, after its successors.
fn in_sequence(got: &[Received]) -> Option<Vec<Received>> {
    let first = got.first()?.1;
    let mut sorted = got.to_vec();
    sorted.sort_by_key(|p| p.1.wrapping_sub(first) as i16);
    sorted.windows(2).all(|pair| pair[1].1 == pair[0].1.wrapping_add(1)).then_some(sorted)
}

fn vp8_payload(frame: u32, part: u32) -> Vec<u8> {
    // VP8 payload descriptor (S bit on the first partition) + recognisable bytes.
    let mut payload = vec![if part == 0 { 0x10 } else { 0x00 }];
    payload.extend_from_slice(&frame.to_be_bytes());
    payload.extend_from_slice(&part.to_be_bytes());
    payload.extend(std::iter::repeat_n(0xab, 200));
    payload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_subscribe_forward_and_teardown() {
    forward_and_teardown(None).await;
}

/// The same with `minport = maxport`: both clients' connections share the node's one UDP port
/// (the garbage sent at it below goes to the shared port too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_subscribe_forward_and_teardown_on_one_udp_port() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    forward_and_teardown(Some(port)).await;
}

async fn forward_and_teardown(one_port: Option<u16>) {
    let config = one_port.map(|port| format!("minport = {port}\nmaxport = {port}")).unwrap_or_default();
    let mut h = Harness::start_with(&config).await;

    // --- publisher: transport "tp", video on its first offer.
    let publisher = Client::new("tp").await;
    let video = publisher.add_video_sender(0x1111).await;
    let _ = publisher.offer().await;
    let mids = publisher.mids().await;
    h.request(
        proto::methods::PUBLISH,
        json!({"sessionId": "pub1", "transportId": "tp", "owner": "alice",
               "tracks": [{"type": "video", "mid": mids[0], "source": "camera"}],
               "audioFormats": [{"codec": "opus", "sampleRate": 48000, "channelNum": 2}],
               "videoFormats": [{"codec": "vp8"}, {"codec": "h264", "profile": "CB"}]}),
    )
    .await
    .expect("publish");
    let answer = publisher.negotiate(&mut h).await;
    assert!(
        answer.contains("a=candidate:") && answer.contains("127.0.0.1"),
        "answer has loopback candidates:\n{answer}"
    );
    assert!(answer.contains("a=recvonly"), "publish m-line answered recvonly:\n{answer}");
    let publisher_port = loopback_port(&answer);
    if let Some(port) = one_port {
        assert_eq!(publisher_port, port, "the publisher's connection is on the shared port:\n{answer}");
    }
    h.event(proto::events::TRANSPORT_PROGRESS, |p| p["transportId"] == "tp" && p["status"] == "ready").await;

    // Media flows: the publication becomes ready once its track arrives.
    let sent: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (video, sent, stop) = (video.clone(), sent.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seq: u16 = 60_000;
            for frame in 0u32.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                for part in 0..2u32 {
                    let payload = vp8_payload(frame, part);
                    let packet = rtp::Packet {
                        header: rtp::header::Header {
                            version: 2,
                            marker: part == 1,
                            payload_type: 96,
                            sequence_number: seq,
                            timestamp: frame.wrapping_mul(3000),
                            ssrc: 0x1111,
                            ..Default::default()
                        },
                        payload: bytes::Bytes::from(payload.clone()),
                    };
                    seq = seq.wrapping_add(1);
                    if video.write_rtp(packet).await.is_ok() {
                        sent.lock().unwrap().push(payload);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let ready = h.event(proto::events::SESSION_READY, |p| p["sessionId"] == "pub1").await;
    let source_track = format!("tp-{}", mids[0]);
    assert_eq!(ready["tracks"][0]["trackId"], source_track.as_str());
    assert_eq!(ready["tracks"][0]["format"], json!({"codec": "vp8"}));

    // --- subscriber: transport "ts", first offer has one recvonly video m-line.
    let subscriber = Client::new("ts").await;
    subscriber.add_recvonly(RtpCodecKind::Video).await;
    let _ = subscriber.offer().await;
    let sub_mids = subscriber.mids().await;
    h.request(
        proto::methods::SUBSCRIBE,
        json!({"sessionId": "sub1", "transportId": "ts", "owner": "bob",
               "tracks": [{"type": "video", "mid": sub_mids[0], "sourceTrackId": source_track}]}),
    )
    .await
    .expect("subscribe");
    let answer = subscriber.negotiate(&mut h).await;
    assert!(answer.contains("a=sendonly"), "subscribe m-line answered sendonly:\n{answer}");
    let ready = h.event(proto::events::SESSION_READY, |p| p["sessionId"] == "sub1").await;
    assert_eq!(ready["tracks"][0]["format"], json!({"codec": "vp8"}));

    // Garbage UDP at the node's ports (the subscriber's and the publisher's connection) must not
    // disturb anyone: short junk of every first byte, and, once SRTP is keyed, forged SRTP and
    // SRTCP (the media fast path of the vendored rtc: it must fail authentication and be dropped).
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    if let Some(port) = one_port {
        assert_eq!(loopback_port(&answer), port, "the subscriber's connection is on the shared port too:\n{answer}");
    }
    for port in [loopback_port(&answer), publisher_port] {
        for i in 0..200u8 {
            let _ = junk.send_to(&[i; 64][..(i as usize % 64)], ("127.0.0.1", port));
            let _ = junk.send_to(&[0x80, 0x60, 0, 1, 0, 0, 0, 0], ("127.0.0.1", port));
            // An RTP header of the publisher's SSRC, a sequence number near its own, and
            // bytes where the ciphertext and the authentication tag would be.
            let mut forged = vec![0x80, 0x60, 0xea, i, 0, 0, 0, 0, 0, 0, 0x11, 0x11];
            forged.extend(std::iter::repeat_n(i, 1 + i as usize * 6));
            let _ = junk.send_to(&forged, ("127.0.0.1", port));
            // An SRTCP sender report of the same SSRC with a bogus index and tag.
            let forged_rtcp = [0x80, 200, 0, 6, 0, 0, 0x11, 0x11, i, i, i, i, 0x80, 0, 0, 1, 1, 2, 3, 4];
            let _ = junk.send_to(&forged_rtcp, ("127.0.0.1", port));
        }
    }

    // Packets arrive with the payloads sent, one SSRC of the node's, continuous sequence
    // (once the repairs of what the garbage made the kernel drop are in, see `in_sequence`).
    let deadline = Instant::now() + WAIT;
    loop {
        let got = subscriber.seen.packets.lock().unwrap().clone();
        if (got.len() >= 60 && in_sequence(&got).is_some()) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let got = subscriber.seen.packets.lock().unwrap().clone();
        assert!(got.len() >= 60, "subscriber got {} packets", got.len());
        let ssrc = got[0].0;
        assert_ne!(ssrc, 0x1111, "the subscriber sees the node's SSRC");
        assert!(got.iter().all(|p| p.0 == ssrc));
        let numbers: Vec<u16> = got.iter().map(|p| p.1).collect();
        let got = in_sequence(&got).unwrap_or_else(|| panic!("continuous sequence numbers: {numbers:?}"));
        let sent = sent.lock().unwrap();
        let first = sent.iter().position(|p| *p == got[0].2).expect("first received payload was sent");
        for (i, packet) in got.iter().enumerate() {
            assert_eq!(packet.2, sent[first + i], "payload {i} forwarded unchanged");
        }
    }

    // A PLI of the subscriber reaches the publisher (rate limited upstream, so wait > 500 ms).
    tokio::time::sleep(Duration::from_millis(700)).await;
    let plis_before = {
        let local = video.clone();
        let counter = publisher.seen.clone();
        tokio::spawn(async move {
            while let Some(event) = local.poll().await {
                if let TrackLocalEvent::OnRtcpPacket(packets) = event {
                    if packets.iter().any(|p| owt_webrtc::interceptor::is_keyframe_request(p.as_ref())) {
                        counter.plis.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        publisher.seen.plis.load(Ordering::Relaxed)
    };
    let remote = subscriber.seen.remote.lock().unwrap()[0].clone();
    let media_ssrc = subscriber.seen.packets.lock().unwrap()[0].0;
    remote.write_rtcp(vec![Box::new(PictureLossIndication { sender_ssrc: 1, media_ssrc })]).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while publisher.seen.plis.load(Ordering::Relaxed) <= plis_before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(publisher.seen.plis.load(Ordering::Relaxed) > plis_before, "the PLI reached the publisher");

    // NACKs of the subscriber are answered from the node's packet history: the packets it names
    // come again with the same payload. Hostile ones (every bit of hundreds of pairs set, numbers
    // never sent, another SSRC) cost at most a bounded resend and disturb nobody.
    let (wanted, originals): (Vec<u16>, Vec<Vec<u8>>) = {
        let got = subscriber.seen.packets.lock().unwrap();
        let recent = &got[got.len() - 10..got.len() - 7];
        (recent.iter().map(|p| p.1).collect(), recent.iter().map(|p| p.2.clone()).collect())
    };
    let received_before = subscriber.seen.packets.lock().unwrap().len();
    let nack = |media_ssrc: u32, nacks: Vec<NackPair>| -> Box<dyn rtc::rtcp::Packet> {
        Box::new(TransportLayerNack { sender_ssrc: 1, media_ssrc, nacks })
    };
    let never_sent = wanted[0].wrapping_add(20_000);
    remote
        .write_rtcp(vec![
            nack(media_ssrc, nack_pairs_from_sequence_numbers(&wanted)),
            nack(media_ssrc, vec![NackPair { packet_id: never_sent, lost_packets: 0xffff }]),
            nack(media_ssrc ^ 0xff, nack_pairs_from_sequence_numbers(&wanted)),
        ])
        .await
        .unwrap();
    let flood: Vec<NackPair> =
        (0..300u16).map(|i| NackPair { packet_id: wanted[0].wrapping_sub(i * 17), lost_packets: 0xffff }).collect();
    remote.write_rtcp(vec![nack(media_ssrc, flood)]).await.unwrap();
    let deadline = Instant::now() + WAIT;
    let resent = loop {
        let got = subscriber.seen.packets.lock().unwrap()[received_before..].to_vec();
        let resent: Vec<_> = got.into_iter().filter(|p| p.0 == media_ssrc && wanted.contains(&p.1)).collect();
        if resent.len() >= wanted.len() || Instant::now() > deadline {
            break resent;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (seq, original) in wanted.iter().zip(&originals) {
        let again = resent.iter().find(|p| p.1 == *seq);
        assert_eq!(again.map(|p| &p.2), Some(original), "NACKed packet {seq} sent again unchanged: {resent:?}");
    }
    let stats = h.request(proto::methods::STATS, json!({"sessionId": "sub1"})).await.unwrap();
    let retransmitted = stats["tracks"][0]["retransmitted"].as_u64().unwrap();
    // The flood names 300 x 17 numbers, many still in the history: one NACK resends 256 at most
    // (and a subscriber gets 500 a second at most).
    assert!((3..=3 + 3 + 256).contains(&retransmitted), "retransmissions bounded: {stats}");
    assert!(stats["tracks"][0]["nacks"].as_u64().unwrap() >= 2, "the NACKs are counted: {stats}");

    // A re-offer on the subscriber's transport adds a second recvonly m-line for a second
    // subscription of the same source: answered at once, forwarded with its own SSRC.
    subscriber.add_recvonly(RtpCodecKind::Video).await;
    let _ = subscriber.offer().await;
    let first_mid = sub_mids[0].clone();
    let mut sub_mids = subscriber.mids().await;
    assert_eq!(sub_mids.len(), 2);
    // get_transceivers() is not in m-line order: the new mid is the other one.
    sub_mids.sort_by_key(|m| *m != first_mid);
    h.request(
        proto::methods::SUBSCRIBE,
        json!({"sessionId": "sub2", "transportId": "ts", "owner": "bob",
               "tracks": [{"type": "video", "mid": sub_mids[1], "sourceTrackId": source_track}]}),
    )
    .await
    .expect("second subscribe");
    let answer = subscriber.negotiate(&mut h).await;
    assert_eq!(answer.matches("m=video").count(), 2, "{answer}");
    h.event(proto::events::SESSION_READY, |p| p["sessionId"] == "sub2").await;
    let deadline = Instant::now() + WAIT;
    let second = loop {
        let got = subscriber.seen.packets.lock().unwrap().clone();
        let others: Vec<_> = got.iter().filter(|p| p.0 != media_ssrc).cloned().collect();
        if (others.len() >= 20 && in_sequence(&others).is_some()) || Instant::now() > deadline {
            break others;
        }
        drop(got);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(second.len() >= 20, "second subscription got {} packets", second.len());
    let numbers: Vec<u16> = second.iter().map(|p| p.1).collect();
    assert!(in_sequence(&second).is_some(), "continuous sequence on the second track: {numbers:?}");
    h.request(proto::methods::UNSUBSCRIBE, json!({"sessionId": "sub2"})).await.expect("unsubscribe");

    // Stats of both sessions.
    let stats = h.request(proto::methods::STATS, json!({"sessionId": "sub1"})).await.unwrap();
    assert!(stats["tracks"][0]["packets"].as_u64().unwrap() >= 60, "{stats}");
    assert!(stats["tracks"][0]["plis"].as_u64().unwrap() >= 1, "{stats}");
    let stats = h.request(proto::methods::STATS, json!({"sessionId": "pub1"})).await.unwrap();
    assert!(stats["tracks"][0]["bytes"].as_u64().unwrap() > 10_000, "{stats}");

    // set-active false pauses the subscription, then the publication (stream-control); true
    // resumes each with no sequence gap for the subscriber.
    for session in ["sub1", "pub1"] {
        h.request(proto::methods::SET_ACTIVE, json!({"sessionId": session, "kind": "video", "active": false}))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let paused_at = subscriber.seen.packets.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(subscriber.seen.packets.lock().unwrap().len() <= paused_at + 2, "{session} paused");
        h.request(proto::methods::SET_ACTIVE, json!({"sessionId": session, "kind": "video", "active": true}))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let all = subscriber.seen.packets.lock().unwrap().clone();
        assert!(all.len() > paused_at + 5, "{session} resumed");
        // Without the NACKed packets sent again above (each comes after its successors).
        let mut newest: Option<u16> = None;
        let got: Vec<_> = all
            .into_iter()
            .filter(|p| p.0 == media_ssrc)
            .filter(|p| {
                let later = newest.is_none_or(|n| p.1.wrapping_sub(n).wrapping_sub(1) < 0x8000);
                if later {
                    newest = Some(p.1);
                }
                later
            })
            .collect();
        for pair in got.windows(2) {
            assert_eq!(pair[1].1, pair[0].1.wrapping_add(1), "no gap across the pause of {session}");
        }
    }

    // The client's receiver reports, which come once a second, count nothing lost: neither
    // pause left a gap (the publication's would be about 70 packets).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = h.request(proto::methods::STATS, json!({"sessionId": "sub1"})).await.unwrap();
    assert_eq!(stats["tracks"][0]["packetsLost"], 0, "{stats}");

    // Hostile requests get errors; the node keeps serving.
    let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(60_000));
    for (method, params, expect) in [
        (
            proto::methods::SIGNALING,
            json!({"transportId": "nope", "signaling": {"type": "offer", "sdp": "v=0"}}),
            "does NOT exist",
        ),
        (
            proto::methods::SIGNALING,
            json!({"transportId": "tp", "signaling": {"type": "offer", "sdp": "garbage"}}),
            "v=0",
        ),
        (proto::methods::SIGNALING, json!({"transportId": "tp", "signaling": {"type": "offer", "sdp": huge}}), "limit"),
        (
            proto::methods::SIGNALING,
            json!({"transportId": "tp", "signaling": {"type": "candidate", "candidate": {"candidate": "a=nonsense"}}}),
            "not an ICE candidate",
        ),
        (
            proto::methods::SIGNALING,
            json!({"transportId": "tp", "signaling": {"type": "bogus"}}),
            "unknown signaling type",
        ),
        (proto::methods::PUBLISH, json!({"sessionId": 5}), "publish"),
        (
            proto::methods::PUBLISH,
            json!({"sessionId": "pub1", "transportId": "tp", "owner": "a", "tracks": [], "audioFormats": [], "videoFormats": []}),
            "already exists",
        ),
        (
            proto::methods::SUBSCRIBE,
            json!({"sessionId": "s9", "transportId": "ts", "owner": "b", "tracks": [{"type": "video", "mid": "9", "sourceTrackId": "nope-0"}]}),
            "not published",
        ),
        (proto::methods::UNPUBLISH, json!({"sessionId": "ghost"}), "does not exist"),
        (proto::methods::STATS, json!({"sessionId": "ghost"}), "does not exist"),
        ("frobnicate", json!({}), "unknown method"),
    ] {
        let err = h.request(method, params).await.expect_err(method);
        assert!(err.contains(expect), "{method}: {err} (expected {expect:?})");
    }
    // A bare candidate (no a= prefix) is accepted.
    h.request(
        proto::methods::SIGNALING,
        json!({"transportId": "tp", "signaling": {"type": "candidate", "candidate": {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}}),
    )
    .await
    .expect("bare candidate accepted");
    let status = h.request("status", json!({})).await.unwrap();
    assert_eq!(status["transports"], 2, "{status}");

    // unpublish: the subscriber's stream goes silent.
    h.request(proto::methods::UNPUBLISH, json!({"sessionId": "pub1"})).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = subscriber.seen.packets.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(subscriber.seen.packets.lock().unwrap().len() <= after + 1, "no packets after unpublish");
    stop.store(true, Ordering::Relaxed);
    let _ = sender.await;

    // destroy-transport closes everything of the subscriber.
    h.request(proto::methods::DESTROY_TRANSPORT, json!({"transportId": "ts"})).await.unwrap();
    let err = h.request(proto::methods::STATS, json!({"sessionId": "sub1"})).await.expect_err("gone");
    assert!(err.contains("does not exist"), "{err}");
    let err = h.request(proto::methods::DESTROY_TRANSPORT, json!({"transportId": "ts"})).await.expect_err("gone");
    assert!(err.contains("does NOT exist"), "{err}");
    let status = h.request("status", json!({})).await.unwrap();
    assert_eq!(status["transports"], 1, "{status}");

    let _ = publisher.pc.close().await;
    let _ = subscriber.pc.close().await;
}

/// A port `p` of 127.0.0.1 with `p + 1` free too, at the time of asking.
fn free_port_pair() -> u16 {
    loop {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        if port < u16::MAX && std::net::UdpSocket::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// The 127.0.0.1 UDP sockets of process `pid`: (port, receive buffer as `ss` shows it, which
/// is twice the bytes asked for).
fn loopback_udp_sockets(pid: u32) -> Vec<(u16, usize)> {
    let out = Command::new("ss").args(["-uanmpH"]).output().expect("ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let mut sockets = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.contains(&format!("pid={pid},")) {
            continue;
        }
        let port = line.split_whitespace().nth(3).and_then(|local| local.strip_prefix("127.0.0.1:"));
        let buffer = lines.get(i + 1).and_then(|l| l.split("rb").nth(1)).and_then(|r| r.split(',').next());
        if let (Some(port), Some(buffer)) = (port, buffer) {
            sockets.push((port.parse().unwrap(), buffer.parse().unwrap()));
        }
    }
    sockets.sort();
    sockets
}

/// `webrtc.minport..maxport` and `webrtc.udp_receive_buffer`: each connection's socket is
/// bound on a port of the range, with the receive buffer asked for. A connection for which
/// the range has no port left fails with an error naming the range, the node keeps serving,
/// and the port of a destroyed connection is taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_take_ports_of_the_range_with_the_receive_buffer_asked_for() {
    let first = free_port_pair();
    let range = (first, first + 1);
    let asked = 1 << 20;
    let h = Harness::start_with(&format!("minport = {}\nmaxport = {}\nudp_receive_buffer = {asked}", range.0, range.1))
        .await;
    let publish = |session: &str, transport: &str| {
        json!({"sessionId": session, "transportId": transport, "owner": "alice",
               "tracks": [{"type": "video", "mid": "0", "source": "camera"}],
               "audioFormats": [], "videoFormats": [{"codec": "vp8"}]})
    };
    for (session, transport) in [("pa", "ta"), ("pb", "tb")] {
        h.request(proto::methods::PUBLISH, publish(session, transport)).await.expect("publish");
    }
    let pid = h.child.id();
    let sockets = loopback_udp_sockets(pid);
    assert_eq!(sockets.iter().map(|s| s.0).collect::<Vec<_>>(), [range.0, range.1], "{sockets:?}");
    // SO_RCVBUF gives up to net.core.rmem_max; SO_RCVBUFFORCE (CAP_NET_ADMIN) the rest.
    let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap().trim().parse().unwrap();
    for (port, buffer) in &sockets {
        assert!(*buffer >= 2 * asked.min(rmem_max), "port {port}: receive buffer {buffer}, asked {asked}");
    }

    let err = h.request(proto::methods::PUBLISH, publish("pc", "tc")).await.unwrap_err();
    assert!(
        err.contains("no free UDP port on")
            && err.contains(&format!("webrtc.minport..maxport ({}..{})", range.0, range.1)),
        "{err}"
    );
    // The failed connection left nothing behind: its session id is free, the others serve on.
    assert_eq!(loopback_udp_sockets(pid).len(), 2);
    let stats = h.request(proto::methods::STATS, json!({"sessionId": "pa"})).await;
    assert!(stats.is_ok(), "{stats:?}");

    h.request(proto::methods::DESTROY_TRANSPORT, json!({"transportId": "tb"})).await.expect("destroy");
    let deadline = Instant::now() + WAIT;
    while loopback_udp_sockets(pid).len() > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.request(proto::methods::PUBLISH, publish("pc", "tc")).await.expect("publish once a port is free again");
    let ports: Vec<u16> = loopback_udp_sockets(pid).iter().map(|s| s.0).collect();
    assert_eq!(ports, [range.0, range.1]);
}
