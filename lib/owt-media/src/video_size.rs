//! The picture size of a video stream, read from the first RTP packet of a keyframe, so a
//! forwarder learns each published track's (and each simulcast layer's) real resolution
//! without decoding: VP8 keyframe header (RFC 6386 §9.1), VP9 scalability structure of the
//! payload descriptor (RFC 9628) or else the uncompressed frame header (VP9 bitstream spec
//! §6.2), H.264 sequence parameter set (parsed by the h264-reader crate). The VP8/VP9 bits
//! are read by hand: they are a few fixed fields, not worth a bitstream crate.

use owt_proto::media::Codec;

/// Width and height of the picture that `payload` (the first RTP payload of a keyframe of
/// `codec`) starts; None when the packet does not say (or is malformed).
pub fn keyframe_size(codec: Codec, payload: &[u8]) -> Option<(u32, u32)> {
    let size = match codec {
        Codec::Vp8 => vp8(payload),
        Codec::Vp9 => vp9(payload),
        Codec::H264 => h264(payload),
        _ => None,
    }?;
    (size.0 > 0 && size.1 > 0).then_some(size)
}

/// Offset of the VP8 payload after the payload descriptor (RFC 7741 §4.2).
pub(crate) fn vp8_payload_start(p: &[u8]) -> Option<usize> {
    let first = *p.first()?;
    if first & 0x80 == 0 {
        return Some(1);
    }
    let x = *p.get(1)?;
    let mut at = 2;
    if x & 0x80 != 0 {
        // PictureID: 7 or 15 bits (M bit).
        at += if *p.get(at)? & 0x80 != 0 { 2 } else { 1 };
    }
    if x & 0x40 != 0 {
        at += 1; // TL0PICIDX
    }
    if x & 0x30 != 0 {
        at += 1; // TID/Y/KEYIDX
    }
    Some(at)
}

fn vp8(p: &[u8]) -> Option<(u32, u32)> {
    let at = vp8_payload_start(p)?;
    let frame = p.get(at..)?;
    // 3-byte frame tag (bit 0 clear on keyframes), start code, 14-bit sizes + 2 scale bits.
    if frame.len() < 10 || frame[0] & 0x01 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((u32::from(width), u32::from(height)))
}

fn vp9(p: &[u8]) -> Option<(u32, u32)> {
    let first = *p.first()?;
    let (picture_id, inter_predicted, layer_indices, flexible) =
        (first & 0x80 != 0, first & 0x40 != 0, first & 0x20 != 0, first & 0x10 != 0);
    let scalability_structure = first & 0x02 != 0;
    let mut at = 1;
    if picture_id {
        at += if *p.get(at)? & 0x80 != 0 { 2 } else { 1 };
    }
    if layer_indices {
        at += if flexible { 1 } else { 2 };
    }
    if flexible && inter_predicted {
        // Up to three reference indices, each with a "more follow" bit.
        for _ in 0..3 {
            let diff = *p.get(at)?;
            at += 1;
            if diff & 0x01 == 0 {
                break;
            }
        }
    }
    if scalability_structure {
        let ss = *p.get(at)?;
        let (layers, has_sizes) = (usize::from(ss >> 5) + 1, ss & 0x10 != 0);
        if has_sizes {
            // The largest spatial layer is the last.
            let last = at + 1 + (layers - 1) * 4;
            let size = p.get(last..last + 4)?;
            let width = u16::from_be_bytes([size[0], size[1]]);
            let height = u16::from_be_bytes([size[2], size[3]]);
            return Some((u32::from(width), u32::from(height)));
        }
        return None;
    }
    vp9_frame_header(p.get(at..)?)
}

/// The keyframe's uncompressed header (VP9 bitstream spec §6.2: frame marker, profile,
/// frame type, sync code, color config, frame size).
fn vp9_frame_header(frame: &[u8]) -> Option<(u32, u32)> {
    let mut bits = Bits { data: frame, at: 0 };
    if bits.read(2)? != 2 {
        return None;
    }
    let profile = bits.read(1)? | bits.read(1)? << 1;
    if profile == 3 {
        bits.read(1)?;
    }
    if bits.read(1)? == 1 {
        return None; // show_existing_frame
    }
    if bits.read(1)? != 0 {
        return None; // not a keyframe
    }
    bits.read(2)?; // show_frame, error_resilient_mode
    if bits.read(24)? != 0x49_83_42 {
        return None;
    }
    if profile >= 2 {
        bits.read(1)?; // ten_or_twelve_bit
    }
    let color_space = bits.read(3)?;
    if color_space != 7 {
        bits.read(1)?; // color_range
        if profile == 1 || profile == 3 {
            bits.read(3)?; // subsampling_x, subsampling_y, reserved
        }
    } else if profile == 1 || profile == 3 {
        bits.read(1)?;
    }
    let width = bits.read(16)? + 1;
    let height = bits.read(16)? + 1;
    Some((width, height))
}

fn h264(p: &[u8]) -> Option<(u32, u32)> {
    let first = *p.first()?;
    match first & 0x1f {
        7 => sps_size(p),
        24 => {
            // STAP-A: 16-bit sizes, then NAL units.
            let mut at = 1;
            while at + 2 < p.len() {
                let size = usize::from(u16::from_be_bytes([p[at], p[at + 1]]));
                let nal = p.get(at + 2..at + 2 + size)?;
                if nal.first().is_some_and(|h| h & 0x1f == 7) {
                    return sps_size(nal);
                }
                at += 2 + size;
            }
            None
        }
        _ => None,
    }
}

fn sps_size(nal: &[u8]) -> Option<(u32, u32)> {
    use h264_reader::nal::sps::SeqParameterSet;
    use h264_reader::rbsp::{decode_nal, BitReader};
    let rbsp = decode_nal(nal).ok()?;
    let sps = SeqParameterSet::from_bits(BitReader::new(&*rbsp)).ok()?;
    sps.pixel_dimensions().ok()
}

/// Most significant bit first.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn read(&mut self, count: usize) -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..count {
            let byte = *self.data.get(self.at / 8)?;
            value = value << 1 | u32::from(byte >> (7 - self.at % 8) & 1);
            self.at += 1;
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VP8 keyframe's first packet: descriptor with a 15-bit picture id, frame tag, start
    /// code, 640x480 with scale bits set (they must not leak into the size).
    #[test]
    fn vp8_keyframe_size_comes_from_its_header() {
        let mut p = vec![0x90, 0x80, 0x81, 0x23];
        p.extend_from_slice(&[0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a]);
        p.extend_from_slice(&(640u16 | 0x4000).to_le_bytes());
        p.extend_from_slice(&(480u16 | 0x8000).to_le_bytes());
        p.extend_from_slice(&[0; 20]);
        assert_eq!(keyframe_size(Codec::Vp8, &p), Some((640, 480)));
        // An interframe (tag bit 0 set) and a wrong start code say nothing.
        let mut inter = p.clone();
        inter[4] |= 0x01;
        assert_eq!(keyframe_size(Codec::Vp8, &inter), None);
        let mut bad = p.clone();
        bad[7] = 0;
        assert_eq!(keyframe_size(Codec::Vp8, &bad), None);
    }

    #[test]
    fn vp9_size_from_scalability_structure_or_frame_header() {
        // I and V bits, 7-bit picture id, SS with two spatial layers and their sizes.
        let mut p = vec![0x8a, 0x05, 0b0011_0000];
        p.extend_from_slice(&[0x00, 0xa0, 0x00, 0x78, 0x01, 0x40, 0x00, 0xf0]);
        assert_eq!(keyframe_size(Codec::Vp9, &p), Some((320, 240)));
        // No SS: the uncompressed header of a profile 0 keyframe, 1280x720.
        let mut bits = BitWriter::default();
        bits.put(2, 2);
        bits.put(0, 2); // profile 0
        bits.put(0, 1); // show_existing_frame
        bits.put(0, 1); // keyframe
        bits.put(1, 1);
        bits.put(0, 1);
        bits.put(0x49_83_42, 24);
        bits.put(1, 3); // color space BT.601
        bits.put(0, 1); // color range
        bits.put(1279, 16);
        bits.put(719, 16);
        let mut p = vec![0x08];
        p.extend_from_slice(&bits.bytes());
        assert_eq!(keyframe_size(Codec::Vp9, &p), Some((1280, 720)));
    }

    #[test]
    fn h264_size_from_the_sps_in_a_stap_a() {
        // SPS of a 640x360 constrained-baseline stream: 40x23 macroblocks, 8 lines cropped.
        let mut bits = BitWriter::default();
        bits.put(0x67, 8);
        bits.put(66, 8); // profile_idc
        bits.put(0xc0, 8);
        bits.put(30, 8); // level_idc
        for value in [0, 0, 2, 1] {
            bits.ue(value); // sps id, log2_max_frame_num - 4, poc type, max_num_ref_frames
        }
        bits.put(0, 1); // gaps_in_frame_num_value_allowed_flag
        bits.ue(39);
        bits.ue(22);
        bits.put(1, 1); // frame_mbs_only_flag
        bits.put(1, 1); // direct_8x8_inference_flag
        bits.put(1, 1); // frame_cropping_flag
        for value in [0, 0, 0, 4] {
            bits.ue(value);
        }
        bits.put(0, 1); // vui_parameters_present_flag
        bits.put(1, 1); // rbsp stop bit
        let sps = bits.bytes();
        let pps = [0x68, 0xce, 0x3c, 0x80];
        let mut p = vec![0x18];
        for nal in [&sps[..], &pps[..]] {
            p.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            p.extend_from_slice(nal);
        }
        assert_eq!(keyframe_size(Codec::H264, &p), Some((640, 360)));
        assert_eq!(keyframe_size(Codec::H264, &sps), Some((640, 360)));
        // An IDR slice alone does not say.
        assert_eq!(keyframe_size(Codec::H264, &[0x65, 0x88, 0x80]), None);
    }

    #[test]
    fn hostile_payloads_are_no_size_and_no_panic() {
        let mut seed = 7u64;
        for len in 0..64 {
            for _ in 0..200 {
                let p: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        (seed >> 56) as u8
                    })
                    .collect();
                for codec in [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Opus] {
                    if let Some((w, h)) = keyframe_size(codec, &p) {
                        assert!(w > 0 && h > 0);
                    }
                }
            }
        }
        // A STAP-A whose size runs past the end.
        assert_eq!(keyframe_size(Codec::H264, &[0x18, 0xff, 0xff, 0x67]), None);
    }

    #[derive(Default)]
    struct BitWriter {
        bits: Vec<bool>,
    }

    impl BitWriter {
        fn put(&mut self, value: u32, count: usize) {
            for i in (0..count).rev() {
                self.bits.push(value >> i & 1 == 1);
            }
        }
        /// Exp-Golomb.
        fn ue(&mut self, value: u32) {
            let coded = value + 1;
            let width = 32 - coded.leading_zeros() as usize;
            self.put(0, width - 1);
            self.put(coded, width);
        }
        fn bytes(&self) -> Vec<u8> {
            self.bits
                .chunks(8)
                .map(|c| c.iter().enumerate().fold(0u8, |b, (i, &v)| b | u8::from(v) << (7 - i)))
                .collect()
        }
    }
}
