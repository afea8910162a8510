//! WebSocket (RFC 6455) server-side framing by hand: the handshake's accept key, parsing of
//! the client's masked frames straight from the connection's read buffer (unmasked in place,
//! no copy, nothing kept between frames) and encoding of the server's unmasked frames.
//! Extensions (permessage-deflate) are never negotiated, so RSV bits must be clear.

use base64::Engine;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut input = Vec::with_capacity(key.len() + 36);
    input.extend_from_slice(key.trim().as_bytes());
    input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha1(&input))
}

/// SHA-1 (FIPS 180-4), only for the handshake's accept key. Not OpenSSL's: its first use
/// initialises the library (providers, configuration), which costs a plain-HTTP server
/// megabytes of memory.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*word);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (state, value) in h.iter_mut().zip([a, b, c, d, e]) {
            *state = state.wrapping_add(value);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// Why the client's frames are refused (the connection is closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Frame or message longer than the limit.
    TooBig,
    /// Not masked, reserved bits, unknown opcode, bad control frame.
    Protocol,
}

/// A complete frame at the start of a buffer; the payload is `buf[start..end]` (unmasked).
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub start: usize,
    pub end: usize,
}

/// Parses (and unmasks) the frame at the start of `buf`; `Ok(None)` when more bytes are needed.
/// `max` bounds the payload length before any of it is buffered.
pub fn parse_frame(buf: &mut [u8], max: usize) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    if b0 & 0x70 != 0 || b1 & 0x80 == 0 {
        return Err(FrameError::Protocol);
    }
    let control = opcode & 0x08 != 0;
    match opcode {
        OP_CONTINUATION | OP_TEXT | OP_BINARY => {}
        OP_CLOSE | OP_PING | OP_PONG if fin => {}
        _ => return Err(FrameError::Protocol),
    }
    let (len, mut offset) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(bytes), 10)
        }
        short => (u64::from(short), 2),
    };
    if control && len > 125 {
        return Err(FrameError::Protocol);
    }
    if len > max as u64 {
        return Err(FrameError::TooBig);
    }
    let len = len as usize;
    if buf.len() < offset + 4 + len {
        return Ok(None);
    }
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&buf[offset..offset + 4]);
    offset += 4;
    for (i, byte) in buf[offset..offset + len].iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
    Ok(Some(Frame { fin, opcode, start: offset, end: offset + len }))
}

/// Appends an unmasked, final frame to `out`.
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.reserve(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        len if len < 126 => out.push(len as u8),
        len if len <= 0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked with a fixed key.
    fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![b0];
        match payload.len() {
            len if len < 126 => out.push(0x80 | len as u8),
            len if len <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
        out
    }

    #[test]
    fn sha1_matches_openssl() {
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            assert_eq!(sha1(&data), openssl::sha::sha1(&data), "{len}");
        }
    }

    #[test]
    fn accept_key_of_rfc_6455() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn frames_of_every_length_encoding_round_trip() {
        for len in [0, 5, 125, 126, 300, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut buf = masked(0x81, &payload);
            buf.extend_from_slice(b"next");
            let frame = parse_frame(&mut buf, 100_000).unwrap().unwrap();
            assert_eq!((frame.fin, frame.opcode), (true, OP_TEXT));
            assert_eq!(&buf[frame.start..frame.end], &payload[..], "{len}");
            assert_eq!(&buf[frame.end..], b"next");
            let mut out = Vec::new();
            encode_frame(&mut out, OP_TEXT, &payload);
            assert_eq!(&out[out.len() - len..], &payload[..]);
        }
    }

    #[test]
    fn truncated_frames_need_more_bytes() {
        let full = masked(0x81, &[b'x'; 300]);
        for cut in 0..full.len() {
            let mut part = full[..cut].to_vec();
            assert_eq!(parse_frame(&mut part, 1000), Ok(None), "{cut}");
        }
    }

    #[test]
    fn hostile_frames_are_refused() {
        // Declared 2^63 bytes: refused before anything is buffered.
        let mut huge = vec![0x81, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(parse_frame(&mut huge, 1 << 20), Err(FrameError::TooBig));
        assert_eq!(parse_frame(&mut masked(0x81, &[0; 2000]), 1000), Err(FrameError::TooBig));
        // Unmasked.
        assert_eq!(parse_frame(&mut [0x81, 0x01, b'x'], 1000), Err(FrameError::Protocol));
        // Reserved bits (compression was not negotiated).
        assert_eq!(parse_frame(&mut masked(0xC1, b"x"), 1000), Err(FrameError::Protocol));
        // Unknown opcodes.
        for op in [0x3, 0x7, 0xB, 0xF] {
            assert_eq!(parse_frame(&mut masked(0x80 | op, b"x"), 1000), Err(FrameError::Protocol), "{op}");
        }
        // Fragmented or long control frames.
        assert_eq!(parse_frame(&mut masked(0x09, b"x"), 1000), Err(FrameError::Protocol));
        assert_eq!(parse_frame(&mut masked(0x89, &[0; 126]), 1000), Err(FrameError::Protocol));
    }
}
