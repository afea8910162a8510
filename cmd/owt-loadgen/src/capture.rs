//! Wire timestamps of every RTP packet on this network namespace's interfaces, so the run can
//! tell what the server alone adds: a forwarded packet's time on the wire leaving the server
//! minus its publisher packet's time on the wire entering it, both stamped by the kernel as
//! the packets pass the (loopback) device. The client stacks' own queues are outside both
//! stamps. SRTP leaves the RTP header in the clear, so (SSRC, sequence number) names a packet
//! on the wire; the subscribers map their (SSRC, sequence) to the publisher's from the payload
//! trailer after decryption (media::Arrival).
//!
//! A raw AF_PACKET socket (SOCK_RAW: Ethernet frames, as loopback and veth devices give) with
//! PACKET_IGNORE_OUTGOING (each loopback packet once) and SO_TIMESTAMPNS, read by a thread of
//! its own: libc directly, since no maintained crate offers timestamped packet capture without
//! linking libpcap. Needs CAP_NET_RAW (the benchmark runs as root in its own namespace);
//! without it the run goes on and reports no wire figures.
//!
//! The kernel hands the socket a copy of each packet in the sender's context, so capturing
//! costs the server under test too. A socket filter (classic BPF) keeps that small: every
//! publisher packet (the load generator's SSRCs, `SSRC_PREFIX`) but of the forwarded streams
//! only the frames whose RTP timestamp has bits 12-14 clear, about one in `SAMPLE_EVERY`: a
//! uniform sample, since every subscriber's timestamps start elsewhere, and whole frames, since
//! a sender may put a frame's packets into one UDP GSO buffer (PACKET_VNET_HDR says so; each
//! segment is matched).

use crate::media::Arrival;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Where a packet is on the wire: its SSRC and RTP sequence number.
pub type WireKey = (u32, u16);

/// A running capture.
pub struct Capture {
    fd: i32,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<HashMap<WireKey, u64>>>,
}

/// What the capture saw: first wire time (ns, CLOCK_REALTIME) of each RTP packet, and how
/// many packets the kernel dropped because the reader fell behind.
pub struct Captured {
    pub first_seen_ns: HashMap<WireKey, u64>,
    pub dropped: u64,
}

const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// The SSRCs the load generator's publishers send with (top 24 bits).
pub const SSRC_PREFIX: u32 = 0x0f00_0000;
/// About one forwarded frame in this many is captured (see the filter).
pub const SAMPLE_EVERY: u32 = 8;
/// Captured bytes per packet at most: a whole UDP GSO buffer.
const CAPTURE_LEN: usize = 65_536;
const PACKET_VNET_HDR: libc::c_int = 15;
/// struct virtio_net_hdr, before every packet read with PACKET_VNET_HDR.
const VNET_HDR_LEN: usize = 10;
const VIRTIO_NET_HDR_GSO_UDP_L4: u8 = 5;
/// The link header of loopback and veth devices (Ethernet).
const LINK_HDR_LEN: usize = 14;

/// The socket filter: IPv4/UDP whose RTP SSRC has `SSRC_PREFIX` or whose RTP timestamp has
/// bits 12-14 clear (a frame lasts 3000 ticks at 30 fps, so this picks about one frame in 8
/// of each stream, whatever its start); nothing else.
fn sample_filter() -> [libc::sock_filter; 12] {
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    const LDX_B_MSH: u16 = 0xb1; // X = 4 * (IP[k] & 0xf): the IP header length
    const LD_B_ABS: u16 = 0x30;
    const LD_W_IND: u16 = 0x40;
    const RSH_K: u16 = 0x74;
    const AND_K: u16 = 0x54;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    // Offsets count from the link header; X + LINK + 8 is where the UDP payload starts.
    const LINK: u32 = LINK_HDR_LEN as u32;
    [
        op(LDX_B_MSH, 0, 0, LINK),
        op(LD_B_ABS, 0, 0, LINK + 9),
        op(JEQ_K, 0, 8, libc::IPPROTO_UDP as u32), // not UDP: drop
        op(LD_W_IND, 0, 0, LINK + 8 + 8),          // RTP SSRC
        op(AND_K, 0, 0, 0xffff_ff00),
        op(JEQ_K, 4, 0, SSRC_PREFIX),     // a publisher's: keep
        op(LD_W_IND, 0, 0, LINK + 8 + 4), // RTP timestamp
        op(RSH_K, 0, 0, 12),
        op(AND_K, 0, 0, SAMPLE_EVERY - 1),
        op(JEQ_K, 0, 1, 0),
        op(RET_K, 0, 0, CAPTURE_LEN as u32),
        op(RET_K, 0, 0, 0),
    ]
}

impl Capture {
    pub fn start() -> Result<Capture, String> {
        let protocol = (libc::ETH_P_IP as u16).to_be() as libc::c_int;
        // SAFETY: plain socket(2)/setsockopt(2) calls on a descriptor this struct owns; every
        // option value is a local c_int or timeval that outlives the call.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, protocol);
            if fd < 0 {
                return Err(format!("packet socket: {}", std::io::Error::last_os_error()));
            }
            let one: libc::c_int = 1;
            let buffer: libc::c_int = 32 << 20;
            let timeout = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
            let int_size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            let options = [
                (libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &one as *const _ as *const libc::c_void, int_size),
                (libc::SOL_PACKET, PACKET_VNET_HDR, &one as *const _ as *const libc::c_void, int_size),
                (libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &one as *const _ as *const libc::c_void, int_size),
                (libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &buffer as *const _ as *const libc::c_void, int_size),
                (
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    &timeout as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                ),
            ];
            let filter = sample_filter();
            let program = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut _ };
            let options = options.into_iter().chain([(
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                &program as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )]);
            for (level, name, value, size) in options {
                if libc::setsockopt(fd, level, name, value, size) != 0 {
                    let err = std::io::Error::last_os_error();
                    libc::close(fd);
                    return Err(format!("packet socket option {name}: {err}"));
                }
            }
            let stop = Arc::new(AtomicBool::new(false));
            let thread = {
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name("wire-capture".into())
                    .spawn(move || read_loop(fd, &stop))
                    .map_err(|e| format!("capture thread: {e}"))?
            };
            Ok(Capture { fd, stop, thread: Some(thread) })
        }
    }

    /// Stops reading and returns what was seen.
    pub fn finish(mut self) -> Captured {
        self.stop.store(true, Ordering::Relaxed);
        let first_seen_ns = self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default();
        let mut stats = [0u32; 2];
        let mut size = std::mem::size_of_val(&stats) as libc::socklen_t;
        // SAFETY: PACKET_STATISTICS writes struct tpacket_stats (two u32) into `stats`.
        let ok = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                stats.as_mut_ptr() as *mut libc::c_void,
                &mut size,
            ) == 0
        };
        Captured { first_seen_ns, dropped: if ok { u64::from(stats[1]) } else { 0 } }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // SAFETY: the descriptor is ours and the reader thread has ended.
        unsafe { libc::close(self.fd) };
    }
}

fn read_loop(fd: i32, stop: &AtomicBool) -> HashMap<WireKey, u64> {
    let mut seen = HashMap::with_capacity(1 << 20);
    let mut packet = vec![0u8; VNET_HDR_LEN + LINK_HDR_LEN + CAPTURE_LEN];
    let mut control = [0u64; 16];
    while !stop.load(Ordering::Relaxed) {
        let mut iov = libc::iovec { iov_base: packet.as_mut_ptr() as *mut libc::c_void, iov_len: packet.len() };
        // SAFETY: msghdr points at the iovec and control buffer above, both alive for the call.
        let (n, stamp) = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = std::mem::size_of_val(&control);
            let n = libc::recvmsg(fd, &mut msg, 0);
            if n < 0 {
                continue; // the receive timeout: look at `stop` again
            }
            let mut stamp = None;
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::timespec);
                    stamp = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
            (n as usize, stamp)
        };
        if let Some(stamp) = stamp {
            for_each_rtp_key(&packet[..n.min(packet.len())], |key| {
                seen.entry(key).or_insert(stamp);
            });
        }
    }
    seen
}

/// Each arrival whose two wire stamps were both seen, with them: (arrival, its publisher packet
/// entering the server, its copy leaving for the subscriber), in ns; `publisher_key` names a
/// publisher packet (publisher index, packet number) on the wire.
fn stamped<'a>(
    first_seen_ns: &'a HashMap<WireKey, u64>,
    arrivals: impl IntoIterator<Item = &'a Arrival> + 'a,
    publisher_key: impl Fn(u32, u64) -> WireKey + 'a,
) -> impl Iterator<Item = (&'a Arrival, u64, u64)> + 'a {
    arrivals.into_iter().filter_map(move |a| {
        let entered = *first_seen_ns.get(&publisher_key(a.publisher, a.publisher_seq))?;
        let left = *first_seen_ns.get(&(a.ssrc, a.sequence_number))?;
        (left >= entered).then_some((a, entered, left))
    })
}

/// Time from each publisher packet entering the server to its copy leaving for a subscriber,
/// in ns (sorted), for every arrival whose two wire stamps were both seen.
pub fn server_latencies_ns<'a>(
    first_seen_ns: &'a HashMap<WireKey, u64>,
    arrivals: impl IntoIterator<Item = &'a Arrival> + 'a,
    publisher_key: impl Fn(u32, u64) -> WireKey + 'a,
) -> Vec<u64> {
    let mut latencies: Vec<u64> =
        stamped(first_seen_ns, arrivals, publisher_key).map(|(_, entered, left)| left - entered).collect();
    latencies.sort_unstable();
    latencies
}

/// For each publisher frame (`per_frame` packets, numbered from 0) with stamped copies: the
/// time from the frame entering the server (its first packet) to the first of its copies
/// leaving, and to the last, in ns (each sorted). The first is the inbound path (receive,
/// decrypt, hand-over to the forwarding task); the last minus the first is how long the
/// fan-out of a frame to every subscriber takes.
pub fn frame_copies_ns<'a>(
    first_seen_ns: &'a HashMap<WireKey, u64>,
    arrivals: impl IntoIterator<Item = &'a Arrival> + 'a,
    publisher_key: impl Fn(u32, u64) -> WireKey + 'a,
    per_frame: u32,
) -> (Vec<u64>, Vec<u64>) {
    // (publisher, frame) -> (entered, first copy left, last copy left)
    let mut frames: HashMap<(u32, u64), (u64, u64, u64)> = HashMap::new();
    for (a, entered, left) in stamped(first_seen_ns, arrivals, publisher_key) {
        let frame =
            frames.entry((a.publisher, a.publisher_seq / u64::from(per_frame.max(1)))).or_insert((entered, left, left));
        frame.0 = frame.0.min(entered);
        frame.1 = frame.1.min(left);
        frame.2 = frame.2.max(left);
    }
    let (mut first, mut last): (Vec<u64>, Vec<u64>) =
        frames.values().map(|(entered, first, last)| (first - entered, last - entered)).unzip();
    first.sort_unstable();
    last.sort_unstable();
    (first, last)
}

/// The (SSRC, sequence) of every RTP packet in one captured packet (virtio_net_hdr, Ethernet
/// header, then an IPv4/UDP datagram, or a UDP GSO buffer of several whose payloads are
/// `gso_size` bytes each but the last).
pub fn for_each_rtp_key(captured: &[u8], mut each: impl FnMut(WireKey)) {
    let Some((vnet, frame)) = captured.split_at_checked(VNET_HDR_LEN) else { return };
    let Some(ip) = frame.get(LINK_HDR_LEN..) else { return };
    let Some(&first) = ip.first() else { return };
    if first >> 4 != 4 || ip.get(9) != Some(&(libc::IPPROTO_UDP as u8)) {
        return;
    }
    let Some(payload) = ip.get(usize::from(first & 0x0f) * 4 + 8..) else { return };
    let segment = match (vnet[1], usize::from(u16::from_ne_bytes([vnet[4], vnet[5]]))) {
        (VIRTIO_NET_HDR_GSO_UDP_L4, size) if size > 0 => size,
        _ => payload.len().max(1),
    };
    for datagram in payload.chunks(segment) {
        if let Some(key) = rtp_key(datagram) {
            each(key);
        }
    }
}

/// (SSRC, sequence) of a UDP payload that is RTP with a dynamic payload type (STUN, DTLS and
/// RTCP are not: RTCP's packet types 200-207 fall outside 96-127 under the marker mask).
fn rtp_key(rtp: &[u8]) -> Option<WireKey> {
    if rtp.len() < 12 || rtp[0] >> 6 != 2 || rtp[1] & 0x7f < 96 {
        return None;
    }
    let seq = u16::from_be_bytes([rtp[2], rtp[3]]);
    let ssrc = u32::from_be_bytes([rtp[8], rtp[9], rtp[10], rtp[11]]);
    Some((ssrc, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A captured packet: virtio_net_hdr (with `gso_size` when not 0), IPv4, UDP, payload.
    fn captured(udp_payload: &[u8], gso_size: u16) -> Vec<u8> {
        let gso_type = if gso_size > 0 { VIRTIO_NET_HDR_GSO_UDP_L4 } else { 0 };
        let mut p = vec![0, gso_type, 0, 0];
        p.extend_from_slice(&gso_size.to_ne_bytes());
        p.extend_from_slice(&[0, 0, 0, 0]);
        p.extend_from_slice(&[0; 12]);
        p.extend_from_slice(&[0x08, 0x00]);
        p.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        p.extend_from_slice(&[0x30, 0x39, 0x30, 0x3a, 0, 0, 0, 0]);
        p.extend_from_slice(udp_payload);
        p
    }

    fn keys(captured: &[u8]) -> Vec<WireKey> {
        let mut keys = Vec::new();
        for_each_rtp_key(captured, |key| keys.push(key));
        keys
    }

    fn rtp(seq: u16, size: usize) -> Vec<u8> {
        let mut p = vec![0x80, 0xe0, 0, 0, 0, 0, 0, 1, 0x0f, 0, 0, 2];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.resize(size, 0xab);
        p
    }

    #[test]
    fn rtp_headers_are_keyed_and_the_rest_is_not() {
        assert_eq!(keys(&captured(&rtp(0x1234, 12), 0)), [(0x0f00_0002, 0x1234)]);
        // RTCP sender report, STUN binding request, DTLS record.
        assert!(keys(&captured(&[0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 2], 0)).is_empty());
        assert!(keys(&captured(&[0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0], 0)).is_empty());
        assert!(keys(&captured(&[0x17, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 0, 0], 0)).is_empty());
        // Truncated, TCP, IPv6, nothing.
        assert!(keys(&captured(&rtp(1, 12)[..11], 0)).is_empty());
        let mut tcp = captured(&rtp(1, 12), 0);
        tcp[VNET_HDR_LEN + LINK_HDR_LEN + 9] = 6;
        assert!(keys(&tcp).is_empty());
        assert!(keys(&[0; VNET_HDR_LEN + LINK_HDR_LEN + 3]).is_empty());
        assert!(keys(&[0; 4]).is_empty());
        assert!(keys(&[]).is_empty());
    }

    #[test]
    fn every_segment_of_a_gso_buffer_is_keyed() {
        let mut buffer = Vec::new();
        for seq in [7, 8, 9] {
            buffer.extend_from_slice(&rtp(seq, 1228));
        }
        buffer.extend_from_slice(&rtp(10, 300)); // the last segment may be shorter
        let keyed = keys(&captured(&buffer, 1228));
        assert_eq!(keyed, [(0x0f00_0002, 7), (0x0f00_0002, 8), (0x0f00_0002, 9), (0x0f00_0002, 10)]);
        // Without the GSO header the buffer is one datagram: only its first RTP header counts.
        assert_eq!(keys(&captured(&buffer, 0)), [(0x0f00_0002, 7)]);
    }

    #[test]
    fn arrivals_are_matched_to_their_publisher_packet() {
        let seen: HashMap<WireKey, u64> =
            [((100, 7), 1_000), ((100, 8), 2_000), ((555, 40), 1_300), ((555, 41), 2_900), ((556, 3), 1_100)].into();
        let publisher_key = |publisher: u32, seq: u64| (100 + publisher, 7 + seq as u16);
        let arrivals = [
            Arrival { ssrc: 555, sequence_number: 40, publisher: 0, publisher_seq: 0 },
            Arrival { ssrc: 555, sequence_number: 41, publisher: 0, publisher_seq: 1 },
            Arrival { ssrc: 556, sequence_number: 3, publisher: 0, publisher_seq: 0 },
            // Not seen on the wire (either side), or seen leaving before entering: no sample.
            Arrival { ssrc: 555, sequence_number: 42, publisher: 0, publisher_seq: 2 },
            Arrival { ssrc: 557, sequence_number: 1, publisher: 0, publisher_seq: 1 },
            Arrival { ssrc: 556, sequence_number: 3, publisher: 0, publisher_seq: 1 },
        ];
        assert_eq!(server_latencies_ns(&seen, &arrivals, publisher_key), vec![100, 300, 900]);
    }

    #[test]
    fn a_frame_is_timed_to_its_first_and_last_copy() {
        // Publisher 0's frame 0 (packets 0 and 1) enters at 1000 and 1010; its copies leave at
        // 1300 and 1350 (subscriber 555) and 1900 and 1950 (556). Frame 1 has one copy.
        let seen: HashMap<WireKey, u64> = [
            ((100, 7), 1_000),
            ((100, 8), 1_010),
            ((100, 9), 5_000),
            ((555, 40), 1_300),
            ((555, 41), 1_350),
            ((556, 3), 1_900),
            ((556, 4), 1_950),
            ((555, 42), 5_200),
        ]
        .into();
        let publisher_key = |publisher: u32, seq: u64| (100 + publisher, 7 + seq as u16);
        let arrival =
            |ssrc, sequence_number, publisher_seq| Arrival { ssrc, sequence_number, publisher: 0, publisher_seq };
        let arrivals =
            [arrival(555, 40, 0), arrival(555, 41, 1), arrival(556, 3, 0), arrival(556, 4, 1), arrival(555, 42, 2)];
        let (first, last) = frame_copies_ns(&seen, &arrivals, publisher_key, 2);
        assert_eq!(first, vec![200, 300]);
        assert_eq!(last, vec![200, 950]);
    }
}
