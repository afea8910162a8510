//! Wire timestamps of every RTP packet on this network namespace's interfaces, so the run can
//! tell what the server alone adds: a forwarded packet's time on the wire leaving the server
//! minus its publisher packet's time on the wire entering it, both stamped by the kernel as
//! the packets pass the (loopback) device. The client stacks' own queues are outside both
//! stamps. SRTP leaves the RTP header in the clear, so (SSRC, sequence number) names a packet
//! on the wire; the subscribers map their (SSRC, sequence) to the publisher's from the payload
//! trailer after decryption (media::Arrival).
//!
//! A raw AF_PACKET socket (SOCK_DGRAM: IP packets without the link header) with
//! PACKET_IGNORE_OUTGOING (each loopback packet once) and SO_TIMESTAMPNS, read by a thread of
//! its own: libc directly, since no maintained crate offers timestamped packet capture without
//! linking libpcap. Needs CAP_NET_RAW (the benchmark runs as root in its own namespace);
//! without it the run goes on and reports no wire figures.

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

impl Capture {
    pub fn start() -> Result<Capture, String> {
        let protocol = (libc::ETH_P_IP as u16).to_be() as libc::c_int;
        // SAFETY: plain socket(2)/setsockopt(2) calls on a descriptor this struct owns; every
        // option value is a local c_int or timeval that outlives the call.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, protocol);
            if fd < 0 {
                return Err(format!("packet socket: {}", std::io::Error::last_os_error()));
            }
            let one: libc::c_int = 1;
            let buffer: libc::c_int = 32 << 20;
            let timeout = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
            let int_size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            let options = [
                (libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &one as *const _ as *const libc::c_void, int_size),
                (libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &one as *const _ as *const libc::c_void, int_size),
                (libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &buffer as *const _ as *const libc::c_void, int_size),
                (
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    &timeout as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                ),
            ];
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
    // IPv4 header (up to 60) + UDP (8) + RTP fixed header (12): the rest is not needed.
    let mut packet = [0u8; 96];
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
        if let (Some(key), Some(stamp)) = (rtp_key(&packet[..n.min(packet.len())]), stamp) {
            seen.entry(key).or_insert(stamp);
        }
    }
    seen
}

/// Time from each publisher packet entering the server to its copy leaving for a subscriber,
/// in ns, for every arrival whose two wire stamps were both seen; `publisher_key` names a
/// publisher packet (publisher index, packet number) on the wire.
pub fn server_latencies_ns<'a>(
    first_seen_ns: &HashMap<WireKey, u64>,
    arrivals: impl IntoIterator<Item = &'a Arrival>,
    publisher_key: impl Fn(u32, u64) -> WireKey,
) -> Vec<u64> {
    let mut latencies: Vec<u64> = arrivals
        .into_iter()
        .filter_map(|a| {
            let entered = first_seen_ns.get(&publisher_key(a.publisher, a.publisher_seq))?;
            let left = first_seen_ns.get(&(a.ssrc, a.sequence_number))?;
            left.checked_sub(*entered)
        })
        .collect();
    latencies.sort_unstable();
    latencies
}

/// (SSRC, sequence) of an IPv4/UDP datagram carrying RTP with a dynamic payload type (STUN,
/// DTLS and RTCP are not: RTCP's packet types 200-207 fall outside 96-127 under the marker mask).
pub fn rtp_key(ip: &[u8]) -> Option<WireKey> {
    let first = *ip.first()?;
    if first >> 4 != 4 || *ip.get(9)? != libc::IPPROTO_UDP as u8 {
        return None;
    }
    let rtp = ip.get(usize::from(first & 0x0f) * 4 + 8..)?;
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

    fn datagram(udp_payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1];
        p.extend_from_slice(&[0x30, 0x39, 0x30, 0x3a, 0, 0, 0, 0]);
        p.extend_from_slice(udp_payload);
        p
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
    fn rtp_headers_are_keyed_and_the_rest_is_not() {
        let rtp = [0x80, 0xe0, 0x12, 0x34, 0, 0, 0, 1, 0x0f, 0, 0, 2];
        assert_eq!(rtp_key(&datagram(&rtp)), Some((0x0f00_0002, 0x1234)));
        // RTCP sender report, STUN binding request, DTLS record.
        assert_eq!(rtp_key(&datagram(&[0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 2])), None);
        assert_eq!(rtp_key(&datagram(&[0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0])), None);
        assert_eq!(rtp_key(&datagram(&[0x17, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 0, 0])), None);
        // Truncated, TCP, IPv6.
        assert_eq!(rtp_key(&datagram(&rtp[..11])), None);
        let mut tcp = datagram(&rtp);
        tcp[9] = 6;
        assert_eq!(rtp_key(&tcp), None);
        assert_eq!(rtp_key(&[0x60, 0, 0]), None);
        assert_eq!(rtp_key(&[]), None);
    }
}
