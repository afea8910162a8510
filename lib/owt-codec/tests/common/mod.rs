//! Helpers shared by the integration tests: colours, a seeded byte generator, tones and a
//! single-bin DFT.

#![allow(dead_code)]

use owt_types::room::Rgb;

pub const RED: Rgb = Rgb { r: 220, g: 30, b: 30 };
pub const GREEN: Rgb = Rgb { r: 30, g: 200, b: 40 };
pub const BLUE: Rgb = Rgb { r: 20, g: 40, b: 210 };
pub const YELLOW: Rgb = Rgb { r: 230, g: 220, b: 30 };
pub const WHITE: Rgb = Rgb { r: 255, g: 255, b: 255 };
pub const BG: Rgb = Rgb { r: 90, g: 20, b: 120 };

/// Whether `got` is within `tolerance` of `want` on every channel.
pub fn near(got: (u8, u8, u8), want: Rgb, tolerance: u8) -> bool {
    got.0.abs_diff(want.r) <= tolerance && got.1.abs_diff(want.g) <= tolerance && got.2.abs_diff(want.b) <= tolerance
}

/// Deterministic pseudo-random bytes (64-bit LCG).
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

/// `n` samples of a sine at 48 kHz starting at sample `start`.
pub fn tone(freq: f64, amplitude: f64, start: usize, n: usize) -> Vec<i16> {
    (start..start + n)
        .map(|i| (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / 48_000.0).sin()).round() as i16)
        .collect()
}

/// Amplitude of the `freq` component of `samples` (sampled at `rate`), by one DFT bin:
/// a sine of amplitude A gives about A.
pub fn amplitude_at(samples: &[i16], freq: f64, rate: f64) -> f64 {
    let (mut re, mut im) = (0.0, 0.0);
    for (i, &s) in samples.iter().enumerate() {
        let phase = 2.0 * std::f64::consts::PI * freq * i as f64 / rate;
        re += f64::from(s) * phase.cos();
        im -= f64::from(s) * phase.sin();
    }
    2.0 * (re * re + im * im).sqrt() / samples.len() as f64
}
