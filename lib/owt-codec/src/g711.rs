//! G.711 μ-law (PCMU) and A-law (PCMA) at 8 kHz by hand: the ITU-T G.711 segment coding as in the
//! reference implementation (Sun's public-domain g711.c). Decoding is a table lookup; encoding
//! a segment search. Simpler than an FFmpeg codec context for one byte per sample, and it
//! cannot fail: every byte is a valid sample.

/// The linear sample of a μ-law byte.
pub const fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let t = (((u & 0x0F) as i32) << 3) + 0x84;
    let t = t << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

/// The linear sample of an A-law byte.
pub const fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => t = (t + 0x108) << (seg - 1),
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

const fn table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw { alaw_to_linear(i as u8) } else { ulaw_to_linear(i as u8) };
        i += 1;
    }
    t
}

static ULAW: [i16; 256] = table(false);
static ALAW: [i16; 256] = table(true);

/// Segment of `v` given the segments' upper ends (8 when above them all).
fn segment(v: i32, ends: &[i32; 8]) -> i32 {
    ends.iter().position(|&e| v <= e).unwrap_or(8) as i32
}

/// The μ-law byte of a linear sample.
pub fn linear_to_ulaw(pcm: i16) -> u8 {
    const ENDS: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
    let mut v = i32::from(pcm) >> 2;
    let mask = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    v = v.min(8159) + (0x84 >> 2);
    let seg = segment(v, &ENDS);
    if seg >= 8 {
        (0x7F ^ mask) as u8
    } else {
        (((seg << 4) | ((v >> (seg + 1)) & 0x0F)) ^ mask) as u8
    }
}

/// The A-law byte of a linear sample.
pub fn linear_to_alaw(pcm: i16) -> u8 {
    const ENDS: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut v = i32::from(pcm) >> 3;
    let mask = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &ENDS);
    if seg >= 8 {
        (0x7F ^ mask) as u8
    } else {
        let low = if seg < 2 { (v >> 1) & 0x0F } else { (v >> seg) & 0x0F };
        (((seg << 4) | low) ^ mask) as u8
    }
}

/// Appends the linear samples of G.711 bytes (A-law when `alaw`, else μ-law) to `out`.
pub fn decode(alaw: bool, bytes: &[u8], out: &mut Vec<i16>) {
    let t = if alaw { &ALAW } else { &ULAW };
    out.extend(bytes.iter().map(|&b| t[usize::from(b)]));
}

/// Appends the G.711 bytes (A-law when `alaw`, else μ-law) of linear samples to `out`.
pub fn encode(alaw: bool, pcm: &[i16], out: &mut Vec<u8>) {
    if alaw {
        out.extend(pcm.iter().map(|&s| linear_to_alaw(s)));
    } else {
        out.extend(pcm.iter().map(|&s| linear_to_ulaw(s)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(ULAW[0xFF], 0);
        assert_eq!(ULAW[0x00], -32124);
        assert_eq!(ULAW[0x80], 32124);
        assert_eq!(ALAW[0xD5], 8);
        assert_eq!(ALAW[0x55], -8);
        assert_eq!(ALAW[0xAA], 32256);
    }

    #[test]
    fn every_code_round_trips() {
        for alaw in [false, true] {
            let t = if alaw { &ALAW } else { &ULAW };
            for code in 0..=255u8 {
                let back =
                    if alaw { linear_to_alaw(t[usize::from(code)]) } else { linear_to_ulaw(t[usize::from(code)]) };
                // μ-law has two codes for zero (0x7F and 0xFF).
                assert!(back == code || (t[usize::from(code)] == 0), "{alaw} {code:#x} -> {back:#x}");
            }
        }
    }

    #[test]
    fn quantisation_error_is_small() {
        for v in (-32768i32..32768).step_by(7) {
            let v = v as i16;
            for alaw in [false, true] {
                let back =
                    if alaw { ALAW[usize::from(linear_to_alaw(v))] } else { ULAW[usize::from(linear_to_ulaw(v))] };
                let err = (i32::from(back) - i32::from(v)).abs();
                assert!(err <= (i32::from(v).abs() / 16).max(16) + 1024 / 32 + 8, "{alaw} {v} -> {back}");
            }
        }
    }
}
