//! Whether one RTP packet starts a keyframe, from its payload alone, so a forwarder can switch
//! a subscriber to another source (a simulcast layer) exactly where the new source can be
//! decoded. The payload formats are VP8 (RFC 7741), VP9 (RTP payload format for VP9,
//! RFC 9628), H.264 (RFC 6184) and H.265 (RFC 7798); the few header bits needed are read here by hand
//! because `frames` works on whole frames and this is needed per packet, before any
//! reassembly. Other codecs answer `true` (switch at once).

use owt_proto::media::Codec;

/// True when `payload` (an RTP payload of `codec`) is the first packet of a keyframe.
pub fn starts_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => vp8(payload),
        Codec::Vp9 => vp9(payload),
        Codec::H264 => h264(payload),
        Codec::H265 => h265(payload),
        _ => true,
    }
}

/// H.265: an IRAP picture (NAL types 16-21) or the parameter sets (32-34) sent before one,
/// alone, first in an aggregation packet (type 48), or starting a fragmentation unit (49).
fn h265(p: &[u8]) -> bool {
    let key = |nal_type: u8| (16..=21).contains(&nal_type) || (32..=34).contains(&nal_type);
    let Some(&first) = p.first() else { return false };
    match (first >> 1) & 0x3f {
        48 => p.get(4).is_some_and(|header| key((header >> 1) & 0x3f)),
        49 => p.get(2).is_some_and(|fu| fu & 0x80 != 0 && key(fu & 0x3f)),
        nal_type => p.len() > 2 && key(nal_type),
    }
}

fn vp8(p: &[u8]) -> bool {
    let Some(&first) = p.first() else { return false };
    let (start, partition) = (first & 0x10 != 0, first & 0x07);
    if !start || partition != 0 {
        return false;
    }
    // VP8 payload header: P bit (0 = keyframe).
    crate::video_size::vp8_payload_start(p).and_then(|at| p.get(at)).is_some_and(|header| header & 0x01 == 0)
}

fn vp9(p: &[u8]) -> bool {
    let Some(&first) = p.first() else { return false };
    let (inter_predicted, begins_frame) = (first & 0x40 != 0, first & 0x08 != 0);
    begins_frame && !inter_predicted
}

fn h264(p: &[u8]) -> bool {
    let Some(&first) = p.first() else { return false };
    let key = |nal_type: u8| nal_type == 5 || nal_type == 7;
    match first & 0x1f {
        24 => {
            // STAP-A: 16-bit sizes, then NAL units.
            let mut at = 1;
            while at + 2 < p.len() {
                let size = usize::from(u16::from_be_bytes([p[at], p[at + 1]]));
                if size == 0 || at + 2 + size > p.len() {
                    return false;
                }
                if key(p[at + 2] & 0x1f) {
                    return true;
                }
                at += 2 + size;
            }
            false
        }
        28 => p.get(1).is_some_and(|fu| fu & 0x80 != 0 && key(fu & 0x1f)),
        nal_type => key(nal_type),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h265_keyframes_are_irap_pictures_or_their_parameter_sets() {
        let nal = |nal_type: u8| [nal_type << 1, 0x01];
        assert!(starts_keyframe(Codec::H265, &[&nal(19)[..], &[0xaf, 0x00]].concat()), "IDR_W_RADL");
        assert!(starts_keyframe(Codec::H265, &[&nal(32)[..], &[0x0c, 0x01]].concat()), "VPS");
        assert!(!starts_keyframe(Codec::H265, &[&nal(1)[..], &[0x26, 0x01]].concat()), "TRAIL_R");
        // Aggregation packet whose first unit is a VPS; fragmentation units of an IDR.
        assert!(starts_keyframe(Codec::H265, &[96, 0x01, 0x00, 0x18, 64, 0x01, 0x0c]));
        assert!(starts_keyframe(Codec::H265, &[98, 0x01, 0x80 | 19, 0xaf]));
        assert!(!starts_keyframe(Codec::H265, &[98, 0x01, 19, 0xaf]), "not the first fragment");
        assert!(!starts_keyframe(Codec::H265, &[98, 0x01, 0x80 | 1, 0xaf]));
        for hostile in [&[][..], &[96], &[98, 0x01], &[0x26]] {
            assert!(!starts_keyframe(Codec::H265, hostile));
        }
    }

    #[test]
    fn vp8_keyframes_start_partition_zero_with_p_clear() {
        assert!(starts_keyframe(Codec::Vp8, &[0x10, 0x9c]), "S=1 PID=0, P=0");
        assert!(!starts_keyframe(Codec::Vp8, &[0x10, 0x9d]), "P=1: delta");
        assert!(!starts_keyframe(Codec::Vp8, &[0x00, 0x9c]), "not the start");
        // X with a 15-bit picture id, TL0PICIDX and KEYIDX, then the payload header.
        assert!(starts_keyframe(Codec::Vp8, &[0x90, 0xf0, 0x80, 0x01, 0x05, 0x20, 0x9c]));
        assert!(!starts_keyframe(Codec::Vp8, &[0x90, 0xf0, 0x80, 0x01, 0x05, 0x20, 0x9d]));
        assert!(!starts_keyframe(Codec::Vp8, &[0x90, 0x80]), "truncated");
        assert!(!starts_keyframe(Codec::Vp8, &[]));
    }

    #[test]
    fn vp9_and_h264() {
        assert!(starts_keyframe(Codec::Vp9, &[0x08]));
        assert!(!starts_keyframe(Codec::Vp9, &[0x48]), "inter predicted");
        assert!(!starts_keyframe(Codec::Vp9, &[0x00]), "not the beginning of a frame");
        assert!(starts_keyframe(Codec::H264, &[0x65, 0x88]), "IDR");
        assert!(starts_keyframe(Codec::H264, &[0x67, 0x42]), "SPS");
        assert!(!starts_keyframe(Codec::H264, &[0x41, 0x9a]), "non-IDR slice");
        assert!(starts_keyframe(Codec::H264, &[0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce]), "STAP-A");
        assert!(!starts_keyframe(Codec::H264, &[0x18, 0x00, 0x09, 0x67]), "truncated STAP-A");
        assert!(starts_keyframe(Codec::H264, &[0x7c, 0x85]), "FU-A start of an IDR");
        assert!(!starts_keyframe(Codec::H264, &[0x7c, 0x05]), "FU-A middle");
        assert!(starts_keyframe(Codec::Opus, &[1]), "other codecs switch at once");
    }
}
