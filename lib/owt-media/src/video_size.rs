//! The picture size of a video stream, read from the first RTP packet of a keyframe, so a
//! forwarder learns each published track's (and each simulcast layer's) real resolution
//! without decoding: VP8 keyframe header (RFC 6386 §9.1), VP9 scalability structure of the
//! payload descriptor (RFC 9628) or else the uncompressed frame header (VP9 bitstream spec
//! §6.2), H.264 sequence parameter set (parsed by the h264-reader crate), H.265 sequence
//! parameter set (H.265 §7.3.2.2) alone or in an aggregation packet (RFC 7798 §4.4.2). The
//! VP8/VP9 bits are read by hand: they are a few fixed fields, not worth a bitstream crate. So
//! is the H.265 SPS: the size is in its first few fields, while scuffle-h265 (maintained, but
//! some 4800 lines with seven dependencies) parses the whole SPS and so fails on anything
//! wrong in the fields after the size (VUI, extensions).

use owt_proto::media::Codec;

/// Width and height of the picture that `payload` (the first RTP payload of a keyframe of
/// `codec`) starts; None when the packet does not say (or is malformed).
pub fn keyframe_size(codec: Codec, payload: &[u8]) -> Option<(u32, u32)> {
    let size = match codec {
        Codec::Vp8 => vp8(payload),
        Codec::Vp9 => vp9(payload),
        Codec::H264 => h264(payload),
        Codec::H265 => h265(payload),
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

const H265_SPS: u8 = 33;
const H265_AGGREGATION_PACKET: u8 = 48;
/// Sizes past this are not a real stream (H.265 level 6.2 allows at most 16888 on a side).
const H265_MAX_SIDE: u32 = 16384;

fn h265_nal_type(header: u8) -> u8 {
    (header >> 1) & 0x3f
}

/// An SPS alone, or the first SPS of an aggregation packet. A fragmented SPS says nothing.
fn h265(p: &[u8]) -> Option<(u32, u32)> {
    match h265_nal_type(*p.first()?) {
        H265_SPS => h265_sps_size(p),
        H265_AGGREGATION_PACKET => {
            // 16-bit sizes, then NAL units; no DONL fields (sprop-max-don-diff is 0).
            let mut units = p.get(2..)?;
            while let [high, low, rest @ ..] = units {
                let size = usize::from(u16::from_be_bytes([*high, *low]));
                let nal = rest.get(..size)?;
                if nal.first().is_some_and(|&header| h265_nal_type(header) == H265_SPS) {
                    return h265_sps_size(nal);
                }
                units = &rest[size..];
            }
            None
        }
        _ => None,
    }
}

/// The conformance-cropped picture size of an SPS NAL unit (header included), from its
/// fields up to the conformance window (H.265 §7.3.2.2.1, §7.3.3).
fn h265_sps_size(nal: &[u8]) -> Option<(u32, u32)> {
    let rbsp = without_emulation_prevention(nal);
    let mut bits = Bits { data: &rbsp, at: 0 };
    bits.skip(16)?; // NAL unit header
    bits.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = bits.read(3)?;
    bits.skip(1)?; // sps_temporal_id_nesting_flag
    bits.skip(88 + 8)?; // general profile, general_level_idc
    if max_sub_layers_minus1 > 0 {
        // A profile and a level present flag per sub-layer, padded to 16 bits.
        let present = bits.read(16)?;
        for sub_layer in 0..max_sub_layers_minus1 {
            let flags = present >> (14 - 2 * sub_layer) & 0b11;
            if flags & 0b10 != 0 {
                bits.skip(88)?;
            }
            if flags & 0b01 != 0 {
                bits.skip(8)?;
            }
        }
    }
    bits.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = bits.ue()?;
    let (sub_width, sub_height) = match chroma_format_idc {
        0 => (1, 1),
        1 => (2, 2),
        2 => (2, 1),
        3 => {
            bits.skip(1)?; // separate_colour_plane_flag
            (1, 1)
        }
        _ => return None,
    };
    let (width, height) = (u64::from(bits.ue()?), u64::from(bits.ue()?));
    let (mut crop_width, mut crop_height) = (0, 0);
    if bits.read(1)? == 1 {
        let [left, right, top, bottom] = [bits.ue()?, bits.ue()?, bits.ue()?, bits.ue()?].map(u64::from);
        crop_width = sub_width * (left + right);
        crop_height = sub_height * (top + bottom);
    }
    let side = |full: u64, crop: u64| {
        full.checked_sub(crop)
            .and_then(|side| u32::try_from(side).ok())
            .filter(|side| (1..=H265_MAX_SIDE).contains(side))
    };
    Some((side(width, crop_width)?, side(height, crop_height)?))
}

/// The RBSP of a NAL unit: each 0x000003 becomes 0x0000 (H.265 §7.4.2).
fn without_emulation_prevention(nal: &[u8]) -> Vec<u8> {
    let mut rbsp = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &byte in nal {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        rbsp.push(byte);
    }
    rbsp
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

    fn skip(&mut self, count: usize) -> Option<()> {
        let end = self.at.checked_add(count).filter(|&end| end <= self.data.len() * 8)?;
        self.at = end;
        Some(())
    }

    /// Exp-Golomb ue(v); longer than 32 bits of value is malformed.
    fn ue(&mut self) -> Option<u32> {
        let mut leading_zeros = 0;
        while self.read(1)? == 0 {
            leading_zeros += 1;
            if leading_zeros > 31 {
                return None;
            }
        }
        Some((1 << leading_zeros) - 1 + self.read(leading_zeros)?)
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

    // Parameter sets made by x265 (GStreamer x265enc over videotestsrc, byte-stream output).
    // 720 and 360 are not multiples of the 64-line CTB: those pictures are coded taller and
    // cropped by the conformance window.
    const VPS_1280X720: [u8; 24] = [
        0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x5d, 0x95, 0x98, 0x09,
    ];
    const SPS_1280X720: [u8; 50] = [
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x5d,
        0xa0, 0x02, 0x80, 0x80, 0x2d, 0x16, 0x59, 0x59, 0xa4, 0x93, 0x2b, 0xff, 0xc0, 0x00, 0x40, 0x00, 0x5a, 0x80,
        0x80, 0x80, 0x82, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x10,
    ];
    const PPS_1280X720: [u8; 7] = [0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40];
    const SPS_320X240: [u8; 49] = [
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x3f,
        0xa0, 0x0a, 0x08, 0x0f, 0x16, 0x59, 0x59, 0xa4, 0x93, 0x2b, 0xff, 0xc0, 0x00, 0x40, 0x00, 0x5a, 0x83, 0x03,
        0x03, 0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x10,
    ];
    /// 4:4:4 (chroma_format_idc 3): the window counts in luma samples, not pairs.
    const SPS_1280X720_444: [u8; 48] = [
        0x42, 0x01, 0x01, 0x04, 0x08, 0x00, 0x00, 0x03, 0x00, 0x9e, 0x08, 0x00, 0x00, 0x03, 0x00, 0x00, 0x5d, 0x90,
        0x00, 0x50, 0x10, 0x05, 0xa2, 0xcb, 0x2b, 0x34, 0x92, 0x65, 0x7f, 0xf8, 0x00, 0x08, 0x00, 0x0b, 0x50, 0x10,
        0x10, 0x10, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x07, 0x82,
    ];
    /// x265 `temporal-layers=1`: sps_max_sub_layers_minus1 = 1, so the sub-layer flags are there.
    const SPS_640X360_TWO_SUB_LAYERS: [u8; 53] = [
        0x42, 0x01, 0x02, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x3f,
        0x00, 0x00, 0xa0, 0x05, 0x02, 0x01, 0x69, 0x65, 0x95, 0x98, 0xac, 0xd2, 0x49, 0x95, 0xff, 0xe0, 0x00, 0x20,
        0x00, 0x2d, 0x41, 0x81, 0x81, 0x81, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x1e, 0x08,
    ];

    fn h265_aggregation_packet(nals: &[&[u8]]) -> Vec<u8> {
        let mut p = vec![48 << 1, 0x01];
        for nal in nals {
            p.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            p.extend_from_slice(nal);
        }
        p
    }

    #[test]
    fn h265_size_from_a_real_sps_packet() {
        assert_eq!(keyframe_size(Codec::H265, &SPS_320X240), Some((320, 240)));
        assert_eq!(keyframe_size(Codec::H265, &SPS_1280X720), Some((1280, 720)));
        assert_eq!(keyframe_size(Codec::H265, &SPS_1280X720_444), Some((1280, 720)));
        assert_eq!(keyframe_size(Codec::H265, &SPS_640X360_TWO_SUB_LAYERS), Some((640, 360)));
        // The VPS, the PPS and an IDR slice do not say.
        assert_eq!(keyframe_size(Codec::H265, &VPS_1280X720), None);
        assert_eq!(keyframe_size(Codec::H265, &PPS_1280X720), None);
        assert_eq!(keyframe_size(Codec::H265, &[19 << 1, 0x01, 0xaf, 0x00]), None);
    }

    #[test]
    fn h265_size_from_the_sps_in_an_aggregation_packet() {
        let p = h265_aggregation_packet(&[&VPS_1280X720, &SPS_1280X720, &PPS_1280X720]);
        assert_eq!(keyframe_size(Codec::H265, &p), Some((1280, 720)));
        let p = h265_aggregation_packet(&[&SPS_320X240]);
        assert_eq!(keyframe_size(Codec::H265, &p), Some((320, 240)));
        assert_eq!(keyframe_size(Codec::H265, &h265_aggregation_packet(&[&VPS_1280X720, &PPS_1280X720])), None);
        // An SPS in fragmentation units is not reassembled.
        let mut first_fragment = vec![49 << 1, 0x01, 0x80 | 33];
        first_fragment.extend_from_slice(&SPS_1280X720[2..]);
        assert_eq!(keyframe_size(Codec::H265, &first_fragment), None);
    }

    /// The first packet of an IDR access unit packetized by webrtc-rs is an aggregation
    /// packet of the parameter sets; the forwarder sizes the packets that start a keyframe.
    #[test]
    fn h265_keyframe_size_as_the_forwarder_sees_it() {
        use rtc_rtp::codec::h265::HevcPayloader;
        use rtc_rtp::packetizer::Payloader;
        let idr_slice = [&[19 << 1, 0x01][..], &[0xaf; 3000]].concat();
        let mut access_unit = Vec::new();
        for nal in [&VPS_1280X720[..], &SPS_1280X720, &PPS_1280X720, &idr_slice] {
            access_unit.extend_from_slice(&[0, 0, 0, 1]);
            access_unit.extend_from_slice(nal);
        }
        let payloads = HevcPayloader.payload(1200, &bytes::Bytes::from(access_unit)).unwrap();
        assert_eq!(h265_nal_type(payloads[0][0]), H265_AGGREGATION_PACKET);
        let sizes: Vec<_> = payloads
            .iter()
            .filter(|p| crate::rtp_keyframe::starts_keyframe(Codec::H265, p))
            .map(|p| keyframe_size(Codec::H265, p))
            .collect();
        // The aggregation packet and the first fragment of the IDR slice start the keyframe.
        assert_eq!(sizes, [Some((1280, 720)), None]);
    }

    /// Sub-layer profile and level fields, 4:2:2 cropping, and sizes that are not real.
    #[test]
    fn h265_synthetic_sps_fields() {
        let sps = |chroma_format_idc: u32, size: (u32, u32), crop: [u32; 4]| {
            let mut bits = BitWriter::default();
            bits.put(u32::from(H265_SPS) << 9 | 1, 16);
            bits.put(0, 4); // sps_video_parameter_set_id
            bits.put(2, 3); // sps_max_sub_layers_minus1
            bits.put(1, 1);
            bits.put(0x0160_0000, 32); // general profile: 88 bits
            bits.put(0, 32);
            bits.put(0, 24);
            bits.put(93, 8); // general_level_idc
            bits.put(0b1101, 4); // sub-layer 0: profile and level; sub-layer 1: level
            bits.put(0, 12); // alignment to 16 bits
            bits.put(0x0160_0000, 32); // sub-layer 0 profile: 88 bits
            bits.put(0, 32);
            bits.put(0, 24);
            bits.put(90, 8); // sub-layer 0 level
            bits.put(60, 8); // sub-layer 1 level
            bits.ue(0); // sps_seq_parameter_set_id
            bits.ue(chroma_format_idc);
            if chroma_format_idc == 3 {
                bits.put(0, 1);
            }
            bits.ue(size.0);
            bits.ue(size.1);
            bits.put(u32::from(crop != [0; 4]), 1);
            if crop != [0; 4] {
                crop.into_iter().for_each(|offset| bits.ue(offset));
            }
            bits.put(0xff, 8); // later fields
            bits.bytes()
        };
        assert_eq!(keyframe_size(Codec::H265, &sps(2, (1920, 1088), [0, 0, 0, 8])), Some((1920, 1080)));
        assert_eq!(keyframe_size(Codec::H265, &sps(2, (1920, 1088), [4, 4, 0, 0])), Some((1904, 1088)));
        assert_eq!(keyframe_size(Codec::H265, &sps(0, (640, 480), [0; 4])), Some((640, 480)));
        assert_eq!(keyframe_size(Codec::H265, &sps(1, (16384, 16384), [0; 4])), Some((16384, 16384)));
        assert_eq!(keyframe_size(Codec::H265, &sps(1, (16400, 480), [0; 4])), None);
        assert_eq!(keyframe_size(Codec::H265, &sps(1, (0, 480), [0; 4])), None);
        assert_eq!(keyframe_size(Codec::H265, &sps(1, (640, 480), [0, 0, 120, 120])), None, "all cropped");
        assert_eq!(keyframe_size(Codec::H265, &sps(1, (640, 480), [0, 0, 0, u32::MAX - 1])), None);
        assert_eq!(keyframe_size(Codec::H265, &sps(4, (640, 480), [0; 4])), None, "no such chroma format");
        // A chroma_format_idc with 32 leading zeros, and bits enough after them.
        let mut long_ue = sps(1, (640, 480), [0; 4]);
        long_ue.truncate(30);
        long_ue.extend_from_slice(&[0x80, 0, 0, 0, 0x40]);
        long_ue.extend_from_slice(&[0xff; 8]);
        assert_eq!(keyframe_size(Codec::H265, &long_ue), None);
    }

    #[test]
    fn h265_truncated_and_garbage_packets_are_no_size_and_no_panic() {
        let aggregation_packet = h265_aggregation_packet(&[&VPS_1280X720, &SPS_1280X720, &PPS_1280X720]);
        for (packet, size) in [
            (&SPS_320X240[..], (320, 240)),
            (&SPS_1280X720, (1280, 720)),
            (&SPS_1280X720_444, (1280, 720)),
            (&SPS_640X360_TWO_SUB_LAYERS, (640, 360)),
            (&aggregation_packet, (1280, 720)),
        ] {
            for len in 0..packet.len() {
                let got = keyframe_size(Codec::H265, &packet[..len]);
                assert!(got.is_none() || got == Some(size), "{len} bytes: {got:?}");
            }
            // Every byte flipped in turn: any size given is a sane one.
            for at in 0..packet.len() {
                let mut flipped = packet.to_vec();
                flipped[at] ^= 0xff;
                if let Some((w, h)) = keyframe_size(Codec::H265, &flipped) {
                    assert!((1..=H265_MAX_SIDE).contains(&w) && (1..=H265_MAX_SIDE).contains(&h));
                }
            }
        }
        // The SPS cut before its picture size.
        assert_eq!(keyframe_size(Codec::H265, &SPS_1280X720[..18]), None);
        // Aggregation packets whose sizes run past the end, or are zero.
        assert_eq!(keyframe_size(Codec::H265, &[96, 0x01, 0xff, 0xff, 0x42, 0x01]), None);
        assert_eq!(keyframe_size(Codec::H265, &[96, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00]), None);
        assert_eq!(keyframe_size(Codec::H265, &[96]), None);
        // Garbage behind an SPS header and an aggregation packet header.
        let mut seed = 11u64;
        for len in 0..96 {
            for header in [[H265_SPS << 1, 0x01], [H265_AGGREGATION_PACKET << 1, 0x01]] {
                let mut p = header.to_vec();
                p.extend((0..len).map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (seed >> 56) as u8
                }));
                if let Some((w, h)) = keyframe_size(Codec::H265, &p) {
                    assert!((1..=H265_MAX_SIDE).contains(&w) && (1..=H265_MAX_SIDE).contains(&h));
                }
            }
        }
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
                for codec in [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::H265, Codec::Opus] {
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
