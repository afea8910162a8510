//! Audio decoding of media-link frames to 48 kHz mono signed 16-bit samples (the mixer's
//! format), and encoding of such samples back to media-link frames.
//!
//! - [`AudioDecoder`]: Opus through FFmpeg (`libopus`, else the native decoder), G.722 through
//!   FFmpeg's `g722`, G.711 μ-law/A-law by table; then libswresample to 48 kHz mono (skipped
//!   when the decoder already gives that).
//! - [`AudioEncoder`]: 20 ms frames. Opus through FFmpeg's `libopus` (VoIP application, in-band
//!   FEC), G.722 through FFmpeg's `g722`, G.711 by hand; libswresample from 48 kHz to 8 or
//!   16 kHz first. Timestamps follow RTP's clocks: 48 kHz for Opus, 8 kHz for G.711 and G.722
//!   (RFC 3551's historical G.722 clock, although it samples at 16 kHz).

use ffmpeg::format::sample::Type as SampleType;
use ffmpeg::format::Sample;
use ffmpeg::ChannelLayout;
use ffmpeg_next as ffmpeg;
use owt_proto::media::{Codec, MediaFrame, MediaKind};

use crate::ff::{self, Resampler};
use crate::{g711, CodecError, Result};

/// Sample rate of decoded audio and of the encoders' input (mono, signed 16-bit).
pub const SAMPLE_RATE: u32 = 48_000;

/// Largest audio payload accepted: one second of G.711, far above any real packet (Opus packets
/// are at most 120 ms, RTP audio packets rarely over 60 ms).
pub const MAX_AUDIO_PAYLOAD: usize = 8_000;

const S16: Sample = Sample::I16(SampleType::Packed);

fn ensure_audio(codec: Codec) -> Result<()> {
    if codec.kind() == MediaKind::Audio {
        Ok(())
    } else {
        Err(CodecError::WrongKind { codec, expected: "audio" })
    }
}

enum Decoder {
    Ffmpeg { decoder: ffmpeg::decoder::Audio, frame: ffmpeg::frame::Audio },
    G711 { alaw: bool, pcm: Vec<i16> },
}

/// Decodes one audio stream to 48 kHz mono.
pub struct AudioDecoder {
    codec: Codec,
    decoder: Decoder,
    resampler: Option<Resampler>,
    out: Vec<i16>,
}

impl std::fmt::Debug for AudioDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioDecoder").field("codec", &self.codec).finish_non_exhaustive()
    }
}

impl AudioDecoder {
    /// A decoder for Opus, PCMU, PCMA or G.722.
    pub fn new(codec: Codec) -> Result<AudioDecoder> {
        ensure_audio(codec)?;
        let unsupported = CodecError::Unsupported { codec, what: "decoder" };
        let (decoder, resampler) = match codec {
            Codec::Pcmu | Codec::Pcma => {
                let resampler = Resampler::new(S16, ChannelLayout::MONO, 8_000, SAMPLE_RATE)
                    .map_err(|e| CodecError::decode(codec, e))?;
                (Decoder::G711 { alaw: codec == Codec::Pcma, pcm: Vec::new() }, Some(resampler))
            }
            Codec::Opus | Codec::G722 => {
                let (names, rate): (&[&str], u32) =
                    if codec == Codec::Opus { (&["libopus", "opus"], 48_000) } else { (&["g722"], 16_000) };
                let found = ff::find_decoder(names).ok_or(unsupported)?;
                let mut ctx = ffmpeg::codec::Context::new_with_codec(found);
                // Mono output (libopus downmixes stereo packets itself); G.722 is 16 kHz mono.
                // SAFETY: plain fields of a codec context that is not open yet.
                unsafe {
                    let ctx = ctx.as_mut_ptr();
                    (*ctx).sample_rate = rate as i32;
                    (*ctx).channels = 1;
                    (*ctx).channel_layout = ChannelLayout::MONO.bits();
                }
                let decoder = ctx.decoder();
                let decoder =
                    decoder.open_as(found).and_then(|d| d.audio()).map_err(|e| CodecError::decode(codec, e))?;
                (Decoder::Ffmpeg { decoder, frame: ffmpeg::frame::Audio::empty() }, None)
            }
            _ => return Err(unsupported),
        };
        Ok(AudioDecoder { codec, decoder, resampler, out: Vec::new() })
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Decodes one frame; the samples (48 kHz mono) stay valid until the next call. The
    /// resampler's filter delay makes the first frames of G.711 and G.722 a little short.
    pub fn decode(&mut self, frame: &MediaFrame) -> Result<&[i16]> {
        let codec = self.codec;
        if frame.codec != codec {
            return Err(CodecError::CodecMismatch { expected: codec, got: frame.codec });
        }
        if frame.payload.is_empty() {
            return Err(CodecError::EmptyPayload(codec));
        }
        if frame.payload.len() > MAX_AUDIO_PAYLOAD {
            return Err(CodecError::PayloadTooLarge { codec, len: frame.payload.len(), max: MAX_AUDIO_PAYLOAD });
        }
        self.out.clear();
        match &mut self.decoder {
            Decoder::G711 { alaw, pcm } => {
                pcm.clear();
                g711::decode(*alaw, &frame.payload, pcm);
                let resampler = self.resampler.as_mut().expect("G.711 has a resampler");
                resampler.convert_i16(pcm, &mut self.out)?;
            }
            Decoder::Ffmpeg { decoder, frame: decoded } => {
                let packet = ffmpeg::Packet::copy(&frame.payload);
                decoder.send_packet(&packet).map_err(|e| CodecError::decode(codec, e))?;
                loop {
                    match decoder.receive_frame(decoded) {
                        Ok(()) => append_frame(codec, decoded, &mut self.resampler, &mut self.out)?,
                        Err(ffmpeg::Error::Other { errno: ffmpeg::util::error::EAGAIN }) | Err(ffmpeg::Error::Eof) => {
                            break
                        }
                        Err(e) => return Err(CodecError::decode(codec, e)),
                    }
                }
            }
        }
        Ok(&self.out)
    }
}

/// Appends a decoded frame to `out` as 48 kHz mono: copied when it already is, else through a
/// resampler made (or remade) for its format.
fn append_frame(
    codec: Codec,
    frame: &ffmpeg::frame::Audio,
    resampler: &mut Option<Resampler>,
    out: &mut Vec<i16>,
) -> Result<()> {
    let (format, rate, channels) = (frame.format(), frame.rate(), frame.channels());
    if channels == 0 || rate == 0 || frame.samples() == 0 {
        return Ok(());
    }
    let mut layout = frame.channel_layout();
    if layout.is_empty() || layout.channels() != i32::from(channels) {
        layout = ChannelLayout::default(i32::from(channels));
    }
    if format == S16 && channels == 1 && rate == SAMPLE_RATE {
        out.extend_from_slice(&frame.plane::<i16>(0)[..frame.samples()]);
        return Ok(());
    }
    if !resampler.as_ref().is_some_and(|r| r.takes(format, layout, rate)) {
        *resampler = Some(Resampler::new(format, layout, rate, SAMPLE_RATE).map_err(|e| CodecError::decode(codec, e))?);
    }
    resampler.as_mut().expect("set above").convert_frame(frame, out)
}

enum Encoder {
    Ffmpeg { encoder: ffmpeg::encoder::Audio, frame: ffmpeg::frame::Audio, packet: ffmpeg::Packet },
    G711 { alaw: bool },
}

/// Encodes 48 kHz mono samples to 20 ms frames of one codec.
pub struct AudioEncoder {
    codec: Codec,
    encoder: Encoder,
    /// 48 kHz to the codec's rate (none for Opus).
    resampler: Option<Resampler>,
    /// Samples at the codec's rate not yet encoded.
    pending: Vec<i16>,
    /// Samples per frame at the codec's rate.
    frame_samples: usize,
    /// Timestamp step per frame in the codec's RTP clock.
    timestamp_step: u64,
    timestamp: u64,
    sequence: u32,
}

impl std::fmt::Debug for AudioEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioEncoder").field("codec", &self.codec).finish_non_exhaustive()
    }
}

impl AudioEncoder {
    /// An encoder of 20 ms frames. `bitrate_kbps` is the Opus target (6 to 510); G.711 (64) and
    /// G.722 (64) have fixed rates and ignore it.
    pub fn new(codec: Codec, bitrate_kbps: u32) -> Result<AudioEncoder> {
        ensure_audio(codec)?;
        let (rate, frame_samples, timestamp_step) = match codec {
            Codec::Opus => (48_000, 960, 960),
            Codec::G722 => (16_000, 320, 160),
            _ => (8_000, 160, 160),
        };
        let encoder = match codec {
            Codec::Pcmu | Codec::Pcma => Encoder::G711 { alaw: codec == Codec::Pcma },
            Codec::Opus => {
                if !(6..=510).contains(&bitrate_kbps) {
                    return Err(CodecError::invalid("opus bitrate", format!("{bitrate_kbps} kbps (must be 6 to 510)")));
                }
                ffmpeg_encoder(codec, "libopus", rate, frame_samples, u64::from(bitrate_kbps) * 1000)?
            }
            Codec::G722 => ffmpeg_encoder(codec, "g722", rate, frame_samples, 64_000)?,
            _ => return Err(CodecError::Unsupported { codec, what: "encoder" }),
        };
        let resampler = if rate == SAMPLE_RATE {
            None
        } else {
            Some(
                Resampler::new(S16, ChannelLayout::MONO, SAMPLE_RATE, rate)
                    .map_err(|e| CodecError::encode(codec, e))?,
            )
        };
        Ok(AudioEncoder {
            codec,
            encoder,
            resampler,
            pending: Vec::new(),
            frame_samples,
            timestamp_step,
            timestamp: 0,
            sequence: 0,
        })
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Samples at 48 kHz per encoded frame (20 ms).
    pub fn frame_len_48k(&self) -> usize {
        960
    }

    /// Sets the timestamp of the next frame (in the codec's RTP clock); it starts at 0.
    pub fn set_next_timestamp(&mut self, timestamp: u64) {
        self.timestamp = timestamp;
    }

    /// Takes any number of 48 kHz mono samples; returns the frames completed (one per 20 ms).
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Vec<MediaFrame>> {
        let codec = self.codec;
        match &mut self.resampler {
            Some(r) => r.convert_i16(pcm, &mut self.pending)?,
            None => self.pending.extend_from_slice(pcm),
        }
        let mut out = Vec::new();
        let mut start = 0;
        while self.pending.len() - start >= self.frame_samples {
            let chunk = &self.pending[start..start + self.frame_samples];
            start += self.frame_samples;
            let payloads = match &mut self.encoder {
                Encoder::G711 { alaw } => {
                    let mut bytes = Vec::with_capacity(chunk.len());
                    g711::encode(*alaw, chunk, &mut bytes);
                    vec![bytes]
                }
                Encoder::Ffmpeg { encoder, frame, packet } => {
                    ff::make_writable(frame).map_err(|e| CodecError::encode(codec, e))?;
                    frame.plane_mut::<i16>(0)[..chunk.len()].copy_from_slice(chunk);
                    frame.set_pts(Some(self.timestamp as i64));
                    encoder.send_frame(frame).map_err(|e| CodecError::encode(codec, e))?;
                    let mut payloads = Vec::with_capacity(1);
                    loop {
                        match encoder.receive_packet(packet) {
                            Ok(()) => payloads.push(packet.data().unwrap_or_default().to_vec()),
                            Err(ffmpeg::Error::Other { errno: ffmpeg::util::error::EAGAIN })
                            | Err(ffmpeg::Error::Eof) => break,
                            Err(e) => return Err(CodecError::encode(codec, e)),
                        }
                    }
                    payloads
                }
            };
            for payload in payloads.into_iter().filter(|p| !p.is_empty()) {
                out.push(MediaFrame {
                    codec,
                    keyframe: true,
                    sequence: self.sequence,
                    timestamp: self.timestamp,
                    width: 0,
                    height: 0,
                    payload,
                });
                self.sequence = self.sequence.wrapping_add(1);
                self.timestamp = self.timestamp.wrapping_add(self.timestamp_step);
            }
        }
        self.pending.drain(..start);
        Ok(out)
    }
}

fn ffmpeg_encoder(codec: Codec, name: &str, rate: u32, frame_samples: usize, bitrate: u64) -> Result<Encoder> {
    let found = ff::find_encoder(&[name]).ok_or(CodecError::Unsupported { codec, what: "encoder" })?;
    let mut encoder =
        ffmpeg::codec::Context::new_with_codec(found).encoder().audio().map_err(|e| CodecError::encode(codec, e))?;
    encoder.set_rate(rate as i32);
    encoder.set_format(S16);
    encoder.set_channel_layout(ChannelLayout::MONO);
    encoder.set_channels(1);
    encoder.set_time_base((1, rate as i32));
    let mut options = ffmpeg::Dictionary::new();
    options.set("b", &bitrate.to_string());
    options.set("frame_size", &frame_samples.to_string());
    if name == "libopus" {
        options.set("application", "voip");
        options.set("frame_duration", "20");
        options.set("fec", "1");
        options.set("packet_loss", "10");
    }
    let encoder = encoder.open_as_with(found, options).map_err(|e| CodecError::encode(codec, e))?;
    if encoder.frame_size() as usize != frame_samples {
        return Err(CodecError::encode(
            codec,
            format!("{name} frame size {} instead of {frame_samples}", encoder.frame_size()),
        ));
    }
    let mut frame = ffmpeg::frame::Audio::new(S16, frame_samples, ChannelLayout::MONO);
    frame.set_rate(rate);
    Ok(Encoder::Ffmpeg { encoder, frame, packet: ffmpeg::Packet::empty() })
}
