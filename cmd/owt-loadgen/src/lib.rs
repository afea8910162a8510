//! owt-loadgen: a WebRTC SFU load generator. It opens P publishers and S subscribers per
//! publisher with webrtc-crate client peers against a target SFU, every publisher sending
//! synthetic 720p-like VP8 RTP (payloads carry a send timestamp and sequence), and reports
//! packets sent/received, loss, one-way latency through the SFU (receiver clock minus send
//! time, both on this host's CLOCK_MONOTONIC, nothing subtracted), the latency the server
//! alone adds (kernel wire timestamps of each packet entering and leaving it, capture.rs) and
//! the server's CPU seconds and RSS per subscriber read from /proc.
//!
//! Targets: `owt` drives owt-portal's Socket.IO signaling (spec owt-compat.md §1.4-§1.10)
//! with one token per client, so the media path measured is owt-webrtc scheduled by the
//! portal; `janus` drives Janus videoroom over its HTTP API (Janus must gather on an
//! address the client can bind: --ice-ip, e.g. a veth address in a private netns).

mod capture;
mod janus;
pub mod media;
mod owt;
mod peer;
pub mod procstat;

use clap::{Parser, ValueEnum};
use futures::stream::{self, StreamExt};
use media::{now_us, quantile, Received, Window};
use peer::{Peer, Sender};
use serde::Serialize;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// owt-rs: owt-portal Socket.IO signaling, media through owt-webrtc.
    Owt,
    /// Janus videoroom over the Janus HTTP API.
    Janus,
}

/// WebRTC SFU load generator for owt-rs and Janus videoroom.
///
/// Opens PUBLISHERS publishers and SUBSCRIBERS subscribers per publisher, each a separate
/// webrtc-crate peer connection bound to --ice-ip. Publishers send synthetic VP8 RTP
/// (--fps frames of --packets-per-frame packets of --payload bytes; the defaults make a
/// ~1.2 Mbit/s 720p-like stream). After every subscriber is connected and --settle seconds
/// have passed, the measurement window of --secs seconds starts. With CAP_NET_RAW it also
/// captures packets in its network namespace to time what the server alone adds (best in a
/// namespace of its own, as the benchmark runs it). Prints a summary on stderr and the JSON
/// report on stdout (and to --json FILE). Exits non-zero if setup fails.
#[derive(Parser, Debug, Clone)]
#[command(name = "owt-loadgen", version)]
pub struct Cli {
    /// The SFU under load.
    #[arg(long, value_enum, default_value = "owt")]
    pub target: Target,
    /// Number of publishers.
    #[arg(short = 'p', long, default_value_t = 1)]
    pub publishers: u32,
    /// Subscribers per publisher.
    #[arg(short = 's', long, default_value_t = 3)]
    pub subscribers: u32,
    /// Length of the measurement window, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub secs: f64,
    /// Seconds between the last subscriber being connected and the window.
    #[arg(long, default_value_t = 1.0)]
    pub settle: f64,
    /// Video frames per second of each publisher.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// RTP packets per frame.
    #[arg(long, default_value_t = 4)]
    pub packets_per_frame: u32,
    /// RTP payload bytes per packet.
    #[arg(long, default_value_t = 1200)]
    pub payload: usize,
    /// A keyframe every this many frames (0: only the first).
    #[arg(long, default_value_t = 60)]
    pub keyframe_interval: u32,
    /// Run every publisher's frame clock at exactly --fps. By default publisher i's frames come
    /// every (1 + i/(secs*fps)) of the nominal interval, so that during the window each pair of
    /// publishers passes through every relative phase a whole number of times, as independent
    /// cameras do. With locked clocks the phases stay wherever the publishers happened to start:
    /// frames of two publishers then collide in the server every time or never, for a whole run.
    #[arg(long)]
    pub locked_clocks: bool,
    /// Local address the client peers bind and announce as ICE candidates.
    #[arg(long, default_value = "127.0.0.1")]
    pub ice_ip: String,
    /// Peer connections set up at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// PIDs of the server processes to measure (repeat); default: processes named
    /// owt-portal and owt-webrtc (owt) or janus (janus).
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// owt: owt-portal's Socket.IO URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub portal: String,
    /// owt: the room to join (tokens come from `owtctl token create ROOM`).
    #[arg(long)]
    pub room: Option<String>,
    /// owt: the owtctl program that makes tokens.
    #[arg(long, default_value = "owtctl")]
    pub owtctl: String,
    /// owt: owtctl --config-dir (where portal.toml points at the state).
    #[arg(long)]
    pub owt_config_dir: Option<String>,
    /// janus: base URL of the Janus HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:18088/janus")]
    pub janus: String,
    /// janus: videoroom room id to create for the run.
    #[arg(long, default_value_t = 424242)]
    pub janus_room: u64,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json: Option<String>,
}

/// The result of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub target: Target,
    /// What the signaling went through.
    pub signaling: &'static str,
    pub publishers: u32,
    pub subscribers_per_publisher: u32,
    pub secs: f64,
    pub packets_per_second_per_stream: u32,
    pub kbit_per_stream: f64,
    pub setup_secs: f64,
    /// Subscribers set up and measured (P x S unless some failed).
    pub subscribers_connected: u32,
    /// Why the others failed.
    pub setup_errors: Vec<String>,
    pub packets_sent: u64,
    pub packets_expected: u64,
    pub packets_received: u64,
    pub loss: f64,
    /// Per subscriber, packets of the window received.
    pub received_per_subscriber: Vec<u64>,
    /// Packets of the window that reached their subscriber after a later packet of the same
    /// publisher (`media::out_of_order`), summed over the subscribers.
    pub packets_out_of_order: u64,
    pub latency_us_p50: u32,
    pub latency_us_p99: u32,
    pub latency_us_max: u32,
    /// The same stream between two of this process's peers directly, no server in between,
    /// during the same window: what the client stacks (and loopback) cost alone.
    pub baseline_latency_us_p50: u32,
    pub baseline_latency_us_p99: u32,
    /// Latency minus the baseline, quantile by quantile: an upper bound of what the server adds
    /// (its subscribers also queue behind each other in this one process; the pair does not).
    pub added_latency_us_p50: u32,
    pub added_latency_us_p99: u32,
    /// What the server alone adds, from wire timestamps (see capture.rs): a forwarded packet
    /// leaving the server minus its publisher packet entering it, over every received packet
    /// both stamps were seen for. None when the capture could not run (capture_error).
    pub server_latency_us_p50: Option<f64>,
    pub server_latency_us_p99: Option<f64>,
    pub server_latency_us_max: Option<f64>,
    pub server_latency_samples: u64,
    /// Per publisher frame, from the frame entering the server: its first copy leaving (the
    /// inbound path: receive, decrypt, hand-over to forwarding) and its last (plus the fan-out
    /// to every subscriber), in µs. None without the capture.
    pub server_first_copy_us_p50: Option<f64>,
    pub server_first_copy_us_p99: Option<f64>,
    pub server_last_copy_us_p50: Option<f64>,
    pub server_last_copy_us_p99: Option<f64>,
    /// The capture keeps one forwarded packet in this many (capture.rs), so the samples are
    /// about packets_received / this.
    pub capture_sample_every: u32,
    /// Packets the capture's socket dropped (its reader fell behind): samples missing, not skewed.
    pub capture_dropped: u64,
    pub capture_error: Option<String>,
    pub server_pids: Vec<u32>,
    pub server_cpu_s: f64,
    /// Server CPU-seconds per second of the window (cores busy).
    pub server_cores: f64,
    /// Packets delivered to subscribers per server CPU-second.
    pub forwarded_per_cpu_s: f64,
    /// Subscribed streams one fully busy core would carry at this load.
    pub streams_per_core: f64,
    pub server_rss_kib_before_subscribers: u64,
    pub server_rss_kib_after_subscribers: u64,
    pub rss_kib_per_subscriber: f64,
    pub loadgen_cpu_s: f64,
    /// Percent of the machine's CPU time stolen by the hypervisor during the window (0 on
    /// bare metal): when high, the latency tail says more about the host than the server.
    pub machine_steal_percent: f64,
}

struct Publisher {
    sender: Arc<Sender>,
    /// owt: the publication id; janus: the feed id.
    id: String,
    _peer: Peer,
    _signaling: Option<owt::Signaling>,
}

struct Subscriber {
    received: Arc<Received>,
    peer: Peer,
    signaling: Option<owt::Signaling>,
}

pub fn main(cli: Cli) -> Result<(), String> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| format!("tokio runtime: {e}"))?;
    let report = runtime.block_on(run(&cli))?;
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    if let Some(path) = &cli.json {
        std::fs::write(path, format!("{text}\n")).map_err(|e| format!("{path}: {e}"))?;
    }
    eprintln!("{}", summary(&report));
    println!("{text}");
    // Peer connection drivers may still be winding down: do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(500));
    Ok(())
}

/// One line for humans.
pub fn summary(r: &Report) -> String {
    format!(
        "{:?} {}x{} {:.0}s: sent {} received {}/{} (loss {:.3}%, {} out of order), latency p50 {} µs p99 {} µs (above a direct pair: p50 {} µs p99 {} µs; in the server, on the wire: p50 {} µs p99 {} µs; a frame's first copy p50 {} µs p99 {} µs, last copy p50 {} µs p99 {} µs), server {:.2} CPU-s ({:.2} cores), {:.0} pkt/CPU-s, {:.0} streams/core, {:.0} KiB RSS/subscriber, {:.1}% of the machine's CPU time stolen",
        r.target,
        r.publishers,
        r.subscribers_per_publisher,
        r.secs,
        r.packets_sent,
        r.packets_received,
        r.packets_expected,
        r.loss * 100.0,
        r.packets_out_of_order,
        r.latency_us_p50,
        r.latency_us_p99,
        r.added_latency_us_p50,
        r.added_latency_us_p99,
        r.server_latency_us_p50.map_or("-".to_string(), |v| v.to_string()),
        r.server_latency_us_p99.map_or("-".to_string(), |v| v.to_string()),
        r.server_first_copy_us_p50.map_or("-".to_string(), |v| v.to_string()),
        r.server_first_copy_us_p99.map_or("-".to_string(), |v| v.to_string()),
        r.server_last_copy_us_p50.map_or("-".to_string(), |v| v.to_string()),
        r.server_last_copy_us_p99.map_or("-".to_string(), |v| v.to_string()),
        r.server_cpu_s,
        r.server_cores,
        r.forwarded_per_cpu_s,
        r.streams_per_core,
        r.rss_kib_per_subscriber,
        r.machine_steal_percent
    )
}

fn ssrc_of(publisher: u32) -> u32 {
    capture::SSRC_PREFIX + publisher
}

async fn owt_publisher(cli: &Cli, tokens: &owt::Tokens, i: u32, window: Arc<Window>) -> Result<Publisher, String> {
    let token = tokens.create(&format!("loadgen-pub{i}")).await?;
    let mut sig = owt::Signaling::login(&cli.portal, &token).await?;
    let peer = Peer::new(&cli.ice_ip, None).await?;
    let track = peer.add_video_sender(ssrc_of(i)).await?;
    let offer = peer.offer().await?;
    let mid = peer.first_mid().await?;
    let request = json!({"media": {"tracks": [{"type": "video", "mid": mid, "source": "camera"}]}});
    let id = sig.negotiate(&peer, "publish", request, offer).await?;
    let sender = start_sender(cli, track, window, i);
    sig.ready(&id).await?;
    Ok(Publisher { sender, id, _peer: peer, _signaling: Some(sig) })
}

async fn owt_subscriber(
    cli: &Cli,
    tokens: &owt::Tokens,
    publication: &str,
    name: String,
    window: Arc<Window>,
) -> Result<Subscriber, String> {
    let token = tokens.create(&name).await?;
    let mut sig = owt::Signaling::login(&cli.portal, &token).await?;
    let received = Arc::new(Received::default());
    let peer = Peer::new(&cli.ice_ip, Some((received.clone(), window))).await?;
    peer.add_video_receiver().await?;
    let offer = peer.offer().await?;
    let mid = peer.first_mid().await?;
    let request = json!({"media": {"tracks": [{"type": "video", "mid": mid, "from": publication}]}});
    let id = sig.negotiate(&peer, "subscribe", request, offer).await?;
    sig.ready(&id).await?;
    peer.connected(Duration::from_secs(15)).await?;
    Ok(Subscriber { received, peer, signaling: Some(sig) })
}

/// A publisher and a subscriber of this process connected to each other directly (no
/// server): the baseline of the client stacks' latency under the same load.
async fn direct_pair(cli: &Cli, window: Arc<Window>) -> Result<(Publisher, Subscriber), String> {
    let index = cli.publishers;
    let received = Arc::new(Received::default());
    let receiver = Peer::new(&cli.ice_ip, Some((received.clone(), window.clone()))).await?;
    let sender_peer = Peer::new(&cli.ice_ip, None).await?;
    let track = sender_peer.add_video_sender(ssrc_of(index)).await?;
    let offer = sender_peer.offer().await?;
    let answer = receiver.answer(offer).await?;
    sender_peer.set_answer(answer).await?;
    receiver.connected(Duration::from_secs(15)).await?;
    let sender = start_sender(cli, track, window, index);
    let publisher = Publisher { sender, id: String::new(), _peer: sender_peer, _signaling: None };
    Ok((publisher, Subscriber { received, peer: receiver, signaling: None }))
}

async fn janus_publisher(cli: &Cli, j: &janus::Janus, i: u32, window: Arc<Window>) -> Result<Publisher, String> {
    let mut h = j.attach().await?;
    let peer = Peer::new(&cli.ice_ip, None).await?;
    let track = peer.add_video_sender(ssrc_of(i)).await?;
    let offer = peer.offer().await?;
    h.message(
        json!({"request": "joinandconfigure", "room": cli.janus_room, "ptype": "publisher", "display": format!("pub{i}")}),
        Some(json!({"type": "offer", "sdp": offer})),
    )
    .await?;
    let joined = h
        .event("publisher joined", |e| e["plugindata"]["data"]["videoroom"] == "joined" && e["jsep"].is_object())
        .await?;
    let feed = joined["plugindata"]["data"]["id"].as_u64().ok_or("joined: no publisher id")?;
    let sdp = joined["jsep"]["sdp"].as_str().ok_or("joined: no answer sdp")?.to_string();
    peer.set_answer(sdp).await?;
    let sender = start_sender(cli, track, window, i);
    h.event("publisher webrtcup", |e| e["janus"] == "webrtcup").await?;
    Ok(Publisher { sender, id: feed.to_string(), _peer: peer, _signaling: None })
}

async fn janus_subscriber(cli: &Cli, j: &janus::Janus, feed: &str, window: Arc<Window>) -> Result<Subscriber, String> {
    let feed: u64 = feed.parse().map_err(|_| "bad feed id".to_string())?;
    let mut h = j.attach().await?;
    let received = Arc::new(Received::default());
    let peer = Peer::new(&cli.ice_ip, Some((received.clone(), window))).await?;
    h.message(
        json!({"request": "join", "room": cli.janus_room, "ptype": "subscriber", "streams": [{"feed": feed}]}),
        None,
    )
    .await?;
    let attached = h.event("subscriber offer", |e| e["jsep"]["type"] == "offer").await?;
    let offer = attached["jsep"]["sdp"].as_str().ok_or("attached: no offer sdp")?.to_string();
    let answer = peer.answer(offer).await?;
    h.message(json!({"request": "start"}), Some(json!({"type": "answer", "sdp": answer}))).await?;
    peer.connected(Duration::from_secs(15)).await?;
    Ok(Subscriber { received, peer, signaling: None })
}

fn start_sender(
    cli: &Cli,
    track: Arc<webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP>,
    window: Arc<Window>,
    i: u32,
) -> Arc<Sender> {
    let sender = Arc::new(Sender { sent: Default::default(), stop: Default::default() });
    tokio::spawn(peer::send_loop(
        track,
        sender.clone(),
        window,
        i,
        ssrc_of(i),
        peer::StreamShape {
            frame_interval: frame_interval(cli, i),
            per_frame: cli.packets_per_frame,
            size: cli.payload,
            keyframe_every: cli.keyframe_interval,
        },
    ));
    sender
}

/// How often publisher `i` sends a frame (see `Cli::locked_clocks`).
fn frame_interval(cli: &Cli, i: u32) -> Duration {
    let nominal = 1.0 / f64::from(cli.fps.max(1));
    let frames_in_window = (cli.secs * f64::from(cli.fps)).max(1.0);
    let stretch = if cli.locked_clocks { 1.0 } else { 1.0 + f64::from(i) / frames_in_window };
    Duration::from_secs_f64(nominal * stretch)
}

/// Runs the load once and measures it.
pub async fn run(cli: &Cli) -> Result<Report, String> {
    if cli.publishers == 0 || cli.fps == 0 || cli.packets_per_frame == 0 || cli.secs <= 0.0 {
        return Err("publishers, fps, packets-per-frame and secs must be positive".into());
    }
    let window = Arc::new(Window::new());
    let started = Instant::now();
    let server_pids = if cli.server_pids.is_empty() {
        procstat::pids_named(match cli.target {
            Target::Owt => &["owt-portal", "owt-webrtc"],
            Target::Janus => &["janus"],
        })
    } else {
        cli.server_pids.clone()
    };
    if server_pids.is_empty() {
        return Err("no server process found: pass --server-pid".into());
    }

    let (tokens, janus) = match cli.target {
        Target::Owt => {
            let room = cli.room.clone().ok_or("--room is required for --target owt")?;
            (Some(owt::Tokens { owtctl: cli.owtctl.clone(), config_dir: cli.owt_config_dir.clone(), room }), None)
        }
        Target::Janus => {
            let j = janus::Janus::connect(&cli.janus).await?;
            j.attach().await?.create_room(cli.janus_room, cli.publishers).await?;
            (None, Some(j))
        }
    };

    let mut publishers = Vec::new();
    for i in 0..cli.publishers {
        let p = match (&tokens, &janus) {
            (Some(t), _) => owt_publisher(cli, t, i, window.clone()).await,
            (_, Some(j)) => janus_publisher(cli, j, i, window.clone()).await,
            _ => unreachable!("one target"),
        }
        .map_err(|e| format!("publisher {i}: {e}"))?;
        publishers.push(p);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, rss_before) = procstat::sample(&server_pids);

    let jobs: Vec<(u32, u32, String)> = (0..cli.publishers)
        .flat_map(|p| (0..cli.subscribers).map(move |s| (p, s, String::new())))
        .map(|(p, s, _)| (p, s, publishers[p as usize].id.clone()))
        .collect();
    let results: Vec<(u32, Result<Subscriber, String>)> = stream::iter(jobs)
        .map(|(p, s, id)| {
            let (tokens, janus, window) = (tokens.as_ref(), janus.as_deref(), window.clone());
            async move {
                let result = match (tokens, janus) {
                    (Some(t), _) => owt_subscriber(cli, t, &id, format!("loadgen-sub{p}-{s}"), window).await,
                    (_, Some(j)) => janus_subscriber(cli, j, &id, window).await,
                    _ => unreachable!("one target"),
                }
                .map_err(|e| format!("subscriber {p}.{s}: {e}"));
                (p, result)
            }
        })
        .buffered(cli.concurrency.max(1))
        .collect()
        .await;
    // A subscriber that could not be set up is reported, not measured.
    let mut subscribers: Vec<(u32, Subscriber)> = Vec::new();
    let mut setup_errors = Vec::new();
    for (p, result) in results {
        match result {
            Ok(s) => subscribers.push((p, s)),
            Err(e) => {
                eprintln!("owt-loadgen: {e}");
                setup_errors.push(e);
            }
        }
    }
    if subscribers.is_empty() && cli.subscribers > 0 {
        return Err(format!("no subscriber could be set up: {}", setup_errors.join("; ")));
    }
    let (direct_publisher, direct_subscriber) =
        direct_pair(cli, window.clone()).await.map_err(|e| format!("direct baseline pair: {e}"))?;
    let setup_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(cli.settle.max(0.0))).await;

    // The window.
    let me = std::process::id();
    let (cpu0, _) = procstat::sample(&server_pids);
    let self0 = procstat::cpu_seconds(me).unwrap_or(0.0);
    let machine0 = procstat::machine_ticks();
    let capture = capture::Capture::start();
    let t0 = Instant::now();
    window.open(now_us());
    tokio::time::sleep(Duration::from_secs_f64(cli.secs)).await;
    window.close(now_us());
    let secs = t0.elapsed().as_secs_f64();
    let (cpu1, rss_after) = procstat::sample(&server_pids);
    let self1 = procstat::cpu_seconds(me).unwrap_or(0.0);
    let machine_steal_percent = match (machine0, procstat::machine_ticks()) {
        (Some(before), Some(after)) => after.stolen_percent_since(&before),
        _ => 0.0,
    };
    // Packets of the window still in flight.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let packets_sent: u64 = publishers.iter().map(|p| p.sender.sent.load(Ordering::Relaxed)).sum();
    let packets_expected: u64 =
        subscribers.iter().map(|(p, _)| publishers[*p as usize].sender.sent.load(Ordering::Relaxed)).sum();
    let received_per_subscriber: Vec<u64> =
        subscribers.iter().map(|(_, s)| s.received.packets.load(Ordering::Relaxed)).collect();
    let packets_received: u64 = received_per_subscriber.iter().sum();
    let packets_out_of_order: u64 =
        subscribers.iter().map(|(_, s)| s.received.arrivals.lock().map_or(0, |a| media::out_of_order(&a))).sum();
    let mut latencies: Vec<u32> = Vec::new();
    for (_, s) in &subscribers {
        if let Ok(l) = s.received.latencies_us.lock() {
            latencies.extend_from_slice(&l);
        }
    }
    latencies.sort_unstable();
    let (wire, (first_copy, last_copy), capture_dropped, capture_error) = match capture {
        Ok(capture) => {
            let captured = capture.finish();
            let arrivals: Vec<media::Arrival> = subscribers
                .iter()
                .flat_map(|(_, s)| s.received.arrivals.lock().map(|a| a.clone()).unwrap_or_default())
                .collect();
            let publisher_key = |publisher: u32, seq: u64| {
                let ssrc = ssrc_of(publisher);
                (ssrc, peer::wire_sequence_number(ssrc, seq))
            };
            let wire = capture::server_latencies_ns(&captured.first_seen_ns, &arrivals, publisher_key);
            let frames =
                capture::frame_copies_ns(&captured.first_seen_ns, &arrivals, publisher_key, cli.packets_per_frame);
            (wire, frames, captured.dropped, None)
        }
        Err(err) => {
            eprintln!("owt-loadgen: no wire timestamps, server latency not measured: {err}");
            (Vec::new(), (Vec::new(), Vec::new()), 0, Some(err))
        }
    };
    let us = |ns: &[u64], q: f64| (!ns.is_empty()).then(|| (quantile(ns, q) as f64 / 100.0).round() / 10.0);
    let wire_us = |q: f64| us(&wire, q);
    let mut baseline = direct_subscriber.received.latencies_us.lock().map(|l| l.clone()).unwrap_or_default();
    baseline.sort_unstable();
    direct_publisher.sender.stop.store(true, Ordering::Relaxed);
    let _ = direct_subscriber.peer.pc.close().await;
    let _ = direct_publisher._peer.pc.close().await;

    for p in &publishers {
        p.sender.stop.store(true, Ordering::Relaxed);
    }
    let subscribers_connected = subscribers.len() as u32;
    for (_, s) in subscribers {
        if let Some(sig) = s.signaling {
            sig.close().await;
        }
        let _ = s.peer.pc.close().await;
    }
    for p in publishers {
        if let Some(sig) = p._signaling {
            sig.close().await;
        }
        let _ = p._peer.pc.close().await;
    }
    if let Some(j) = &janus {
        j.destroy().await;
    }

    let streams = f64::from(subscribers_connected);
    let server_cpu_s = (cpu1 - cpu0).max(0.0);
    let server_cores = server_cpu_s / secs;
    let pps = cli.fps * cli.packets_per_frame;
    Ok(Report {
        target: cli.target,
        signaling: match cli.target {
            Target::Owt => "owt-portal Socket.IO (EIO4 WebSocket), media via owt-webrtc",
            Target::Janus => "Janus HTTP API, videoroom plugin",
        },
        publishers: cli.publishers,
        subscribers_per_publisher: cli.subscribers,
        secs,
        packets_per_second_per_stream: pps,
        kbit_per_stream: f64::from(pps) * (cli.payload as f64 + 12.0) * 8.0 / 1000.0,
        setup_secs,
        subscribers_connected,
        setup_errors,
        packets_sent,
        packets_expected,
        packets_received,
        loss: if packets_expected > 0 { 1.0 - packets_received as f64 / packets_expected as f64 } else { 1.0 },
        received_per_subscriber,
        packets_out_of_order,
        latency_us_p50: quantile(&latencies, 0.5),
        latency_us_p99: quantile(&latencies, 0.99),
        latency_us_max: latencies.last().copied().unwrap_or(0),
        baseline_latency_us_p50: quantile(&baseline, 0.5),
        baseline_latency_us_p99: quantile(&baseline, 0.99),
        added_latency_us_p50: quantile(&latencies, 0.5).saturating_sub(quantile(&baseline, 0.5)),
        added_latency_us_p99: quantile(&latencies, 0.99).saturating_sub(quantile(&baseline, 0.99)),
        server_latency_us_p50: wire_us(0.5),
        server_latency_us_p99: wire_us(0.99),
        server_latency_us_max: wire_us(1.0),
        server_latency_samples: wire.len() as u64,
        server_first_copy_us_p50: us(&first_copy, 0.5),
        server_first_copy_us_p99: us(&first_copy, 0.99),
        server_last_copy_us_p50: us(&last_copy, 0.5),
        server_last_copy_us_p99: us(&last_copy, 0.99),
        capture_sample_every: capture::SAMPLE_EVERY,
        capture_dropped,
        capture_error,
        server_pids,
        server_cpu_s,
        server_cores,
        forwarded_per_cpu_s: if server_cpu_s > 0.0 { packets_received as f64 / server_cpu_s } else { 0.0 },
        streams_per_core: if server_cores > 0.0 { streams / server_cores } else { 0.0 },
        server_rss_kib_before_subscribers: rss_before,
        server_rss_kib_after_subscribers: rss_after,
        rss_kib_per_subscriber: if streams > 0.0 { (rss_after as f64 - rss_before as f64) / streams } else { 0.0 },
        loadgen_cpu_s: self1 - self0,
        machine_steal_percent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::parse_from(std::iter::once("owt-loadgen").chain(args.iter().copied()))
    }

    #[test]
    fn over_the_window_each_pair_of_publishers_drifts_through_whole_frame_intervals() {
        let cli = cli(&["--secs", "15", "--fps", "30"]);
        let nominal = Duration::from_secs_f64(1.0 / 30.0);
        let frames_in_window = 15.0 * 30.0;
        assert!((frame_interval(&cli, 0).as_secs_f64() - nominal.as_secs_f64()).abs() < 1e-9);
        for i in 0..4u32 {
            for j in i + 1..4 {
                // How far j's frames fall behind i's over the window's frames, in frame intervals
                // (the intervals are whole nanoseconds, hence the tolerance).
                let drift = (frame_interval(&cli, j).as_secs_f64() - frame_interval(&cli, i).as_secs_f64())
                    * frames_in_window
                    / nominal.as_secs_f64();
                assert!((drift - f64::from(j - i)).abs() < 1e-3, "publishers {i} and {j}: {drift}");
            }
        }
    }

    #[test]
    fn locked_clocks_keep_every_publisher_at_the_nominal_rate() {
        let cli = cli(&["--secs", "15", "--fps", "25", "--locked-clocks"]);
        for i in 0..8 {
            assert_eq!(frame_interval(&cli, i), Duration::from_secs_f64(1.0 / 25.0));
        }
    }
}
