//! Audio end to end: tones through real encoders and decoders (libopus, G.711, G.722), mixed,
//! with the mix's spectrum checked by single-bin DFTs and the louder input chosen as the active
//! speaker.

mod common;

use common::*;
use owt_codec::{g711, AudioDecoder, AudioEncoder, AudioMixer, MixerConfig};
use owt_proto::media::Codec;

/// `ms` of a tone through an encoder of `codec` and a decoder, fed in 10 ms pieces; the decoded
/// 48 kHz samples of each frame, in order.
fn through(codec: Codec, freq: f64, amplitude: f64, ms: usize) -> Vec<Vec<i16>> {
    let mut encoder = AudioEncoder::new(codec, 32).unwrap();
    let mut decoder = AudioDecoder::new(codec).unwrap();
    let mut out = Vec::new();
    let mut expected_ts = 0;
    let step = if codec == Codec::Opus { 960 } else { 160 };
    for piece in 0..ms / 10 {
        for frame in encoder.encode(&tone(freq, amplitude, piece * 480, 480)).unwrap() {
            assert_eq!(frame.codec, codec);
            assert_eq!(frame.timestamp, expected_ts, "{codec}: 20 ms per frame in the RTP clock");
            assert_eq!(frame.sequence as u64, expected_ts / step);
            expected_ts += step;
            out.push(decoder.decode(&frame).unwrap().to_vec());
        }
    }
    // The 48 kHz to 8/16 kHz resampler holds a few samples back: one frame may still be in it.
    let want = if codec == Codec::Opus { ms / 20..=ms / 20 } else { ms / 20 - 1..=ms / 20 };
    assert!(want.contains(&out.len()), "{codec}: one frame per 20 ms, {} frames for {ms} ms", out.len());
    out
}

#[test]
fn two_opus_tones_mixed() {
    // 440 Hz quieter, 1000 Hz louder, one second each.
    let a = through(Codec::Opus, 440.0, 6000.0, 1000);
    let b = through(Codec::Opus, 1000.0, 14000.0, 1000);
    assert!(a.iter().all(|f| f.len() == 960), "20 ms of 48 kHz per Opus frame");
    let mut mixer = AudioMixer::new(MixerConfig::default());
    let mut mix = Vec::new();
    for (fa, fb) in a.iter().zip(&b) {
        mixer.push(&"a", fa);
        mixer.push(&"b", fb);
        // Two 10 ms ticks per 20 ms frame.
        mix.extend_from_slice(mixer.mix(480));
        mix.extend_from_slice(mixer.mix(480));
    }
    assert_eq!(mix.len(), 48_000);
    // Past the codec's start-up, half a second of the mix.
    let window = &mix[12_000..36_000];
    let at_440 = amplitude_at(window, 440.0, 48_000.0);
    let at_1000 = amplitude_at(window, 1000.0, 48_000.0);
    let at_700 = amplitude_at(window, 700.0, 48_000.0);
    assert!((4000.0..8000.0).contains(&at_440), "440 Hz amplitude {at_440}");
    assert!((10000.0..18000.0).contains(&at_1000), "1000 Hz amplitude {at_1000}");
    assert!(at_700 < 300.0, "nothing at 700 Hz: {at_700}");
    assert_eq!(mixer.active_speaker(), Some(&"b"), "the louder input speaks");
    let (la, lb) = (mixer.level(&"a").unwrap(), mixer.level(&"b").unwrap());
    assert!(la.speaking && lb.speaking);
    // Sines of amplitude 6000 and 14000: -3 dB - 20 log10(32768/A).
    assert!((la.dbov + 17.7).abs() < 2.0, "{la:?}");
    assert!((lb.dbov + 10.4).abs() < 2.0, "{lb:?}");
    // What a hears: b only (the last tick took the second half of b's last frame).
    let mut minus = Vec::new();
    mixer.mix_minus(&"a", &mut minus);
    assert_eq!(minus, b.last().unwrap()[480..]);
}

/// G.711 and G.722 at 8/16 kHz come back at 48 kHz with their tone.
#[test]
fn narrowband_codecs_round_trip() {
    for codec in [Codec::Pcmu, Codec::Pcma, Codec::G722] {
        let frames = through(codec, 1000.0, 10000.0, 400);
        let samples: Vec<i16> = frames.concat();
        // The resamplers' filter delays (down in the encoder, up in the decoder) hold back at
        // most a frame and a few ms.
        assert!((48 * 370..=48 * 400).contains(&samples.len()), "{codec}: {} samples", samples.len());
        let window = &samples[4800..4800 + 9600];
        let at_1000 = amplitude_at(window, 1000.0, 48_000.0);
        let at_3000 = amplitude_at(window, 3000.0, 48_000.0);
        assert!((8500.0..11500.0).contains(&at_1000), "{codec}: 1000 Hz amplitude {at_1000}");
        assert!(at_3000 < 400.0, "{codec}: 3000 Hz amplitude {at_3000}");
    }
}

/// The hand-written G.711 tables agree with FFmpeg's pcm_mulaw and pcm_alaw decoders.
#[test]
fn g711_matches_ffmpeg() {
    use ffmpeg_next as ffmpeg;
    ffmpeg::init().unwrap();
    let all: Vec<u8> = (0..=255).collect();
    for (codec, name) in [(Codec::Pcmu, "pcm_mulaw"), (Codec::Pcma, "pcm_alaw")] {
        let found = ffmpeg::decoder::find_by_name(name).unwrap();
        let mut ctx = ffmpeg::codec::Context::new_with_codec(found);
        // SAFETY: plain fields of a context that is not open yet.
        unsafe {
            (*ctx.as_mut_ptr()).sample_rate = 8000;
            (*ctx.as_mut_ptr()).channels = 1;
        }
        let mut dec = ctx.decoder().open_as(found).unwrap().audio().unwrap();
        dec.send_packet(&ffmpeg::Packet::copy(&all)).unwrap();
        let mut frame = ffmpeg::frame::Audio::empty();
        dec.receive_frame(&mut frame).unwrap();
        let theirs = &frame.plane::<i16>(0)[..256];
        for (byte, &linear) in theirs.iter().enumerate() {
            let ours =
                if codec == Codec::Pcma { g711::alaw_to_linear(byte as u8) } else { g711::ulaw_to_linear(byte as u8) };
            assert_eq!(ours, linear, "{name} byte {byte:#x}");
        }
    }
}

#[test]
fn opus_bitrate_is_checked() {
    assert!(AudioEncoder::new(Codec::Opus, 2).is_err());
    assert!(AudioEncoder::new(Codec::Vp8, 32).is_err());
    assert!(AudioDecoder::new(Codec::H264).is_err());
}
