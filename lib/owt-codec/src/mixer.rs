//! [`AudioMixer`]: the audio half of a mixed view. Inputs push decoded 48 kHz mono samples as
//! they arrive (any chunk size: an Opus frame is 20 ms); every tick the mixer takes one chunk
//! (10 or 20 ms) from each input, sums them with saturation and measures each input's level.
//!
//! - Levels are dBov (RMS relative to a full-scale square wave, RFC 6464's unit): 0 is the
//!   loudest, -127 silence. [`InputLevel::rfc6464`] gives the 0-127 value of the RTP header
//!   extension.
//! - The active speaker (OWT's `activeInput`, the region a `keepActiveInputPrimary` view shows
//!   first) is the input with the highest smoothed level (exponential average over
//!   [`MixerConfig::window_ms`]) above [`MixerConfig::vad_threshold_dbov`]. Another input
//!   takes over only when it stays [`MixerConfig::hysteresis_db`] louder than the current one
//!   for [`MixerConfig::switch_hold_ms`]; a silent speaker stays active until someone speaks.
//! - [`AudioMixer::mix_minus`] gives the last mix without one input (what that participant
//!   should hear), from the same sums, without mixing again.
//!
//! Each input buffers at most [`MixerConfig::max_buffer_ms`]; older samples are dropped
//! (counted in [`InputLevel::dropped`]), and an input short of samples for a tick is padded with
//! silence. A steady set of inputs mixes without allocating.

use std::collections::VecDeque;

use crate::audio::SAMPLE_RATE;

const SAMPLES_PER_MS: usize = SAMPLE_RATE as usize / 1000;
/// Level of silence in dBov.
pub const SILENCE_DBOV: f32 = -127.0;

/// Voice activity and active-speaker tuning.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MixerConfig {
    /// Smoothed level at or above which an input counts as speaking.
    pub vad_threshold_dbov: f32,
    /// How much louder than the active speaker another input must be to take over.
    pub hysteresis_db: f32,
    /// How long it must stay that much louder.
    pub switch_hold_ms: u32,
    /// Time constant of the smoothed level.
    pub window_ms: u32,
    /// Most audio buffered per input.
    pub max_buffer_ms: u32,
}

impl Default for MixerConfig {
    fn default() -> Self {
        MixerConfig {
            vad_threshold_dbov: -50.0,
            hysteresis_db: 6.0,
            switch_hold_ms: 300,
            window_ms: 300,
            max_buffer_ms: 200,
        }
    }
}

/// An input's level at the last tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InputLevel {
    /// Level of the last chunk, dBov (-127 to 0).
    pub dbov: f32,
    /// Exponentially smoothed level, dBov.
    pub smoothed_dbov: f32,
    /// Smoothed level at or above the voice threshold.
    pub speaking: bool,
    /// Ticks that found fewer samples than a chunk.
    pub underruns: u64,
    /// Samples dropped because the input ran more than the buffer limit ahead.
    pub dropped: u64,
}

impl InputLevel {
    /// The RFC 6464 audio level: -dBov rounded, 0 (loudest) to 127 (silence).
    pub fn rfc6464(&self) -> u8 {
        (-self.dbov).round().clamp(0.0, 127.0) as u8
    }
}

struct Input<K> {
    id: K,
    fifo: VecDeque<i16>,
    /// The samples of the last tick (for mix-minus).
    chunk: Vec<i16>,
    /// Smoothed mean square, in full-scale units (1.0 = full-scale square wave).
    smoothed_power: f64,
    level: InputLevel,
}

/// Mixes inputs identified by `K` (a stream id).
pub struct AudioMixer<K> {
    config: MixerConfig,
    inputs: Vec<Input<K>>,
    sum: Vec<i32>,
    out: Vec<i16>,
    active: Option<K>,
    /// An input louder than the active speaker, and for how long (ms).
    challenger: Option<(K, u32)>,
}

impl<K: std::fmt::Debug> std::fmt::Debug for AudioMixer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioMixer")
            .field("inputs", &self.inputs.iter().map(|i| &i.id).collect::<Vec<_>>())
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

fn dbov(power: f64) -> f32 {
    if power <= 0.0 {
        return SILENCE_DBOV;
    }
    ((10.0 * power.log10()) as f32).clamp(SILENCE_DBOV, 0.0)
}

impl<K: Clone + PartialEq> AudioMixer<K> {
    pub fn new(config: MixerConfig) -> AudioMixer<K> {
        AudioMixer { config, inputs: Vec::new(), sum: Vec::new(), out: Vec::new(), active: None, challenger: None }
    }

    pub fn config(&self) -> &MixerConfig {
        &self.config
    }

    fn index(&self, id: &K) -> Option<usize> {
        self.inputs.iter().position(|i| i.id == *id)
    }

    /// Adds an input (silent until samples are pushed); nothing when it is there already.
    pub fn add_input(&mut self, id: K) {
        if self.index(&id).is_none() {
            self.inputs.push(Input {
                id,
                fifo: VecDeque::new(),
                chunk: Vec::new(),
                smoothed_power: 0.0,
                level: InputLevel {
                    dbov: SILENCE_DBOV,
                    smoothed_dbov: SILENCE_DBOV,
                    speaking: false,
                    underruns: 0,
                    dropped: 0,
                },
            });
        }
    }

    /// Removes an input; whether it was there. The active speaker is chosen again at the next
    /// tick if it was this input.
    pub fn remove_input(&mut self, id: &K) -> bool {
        let Some(at) = self.index(id) else { return false };
        self.inputs.remove(at);
        if self.active.as_ref() == Some(id) {
            self.active = None;
        }
        if self.challenger.as_ref().is_some_and(|(c, _)| c == id) {
            self.challenger = None;
        }
        true
    }

    /// The inputs, in the order they were added.
    pub fn inputs(&self) -> impl Iterator<Item = &K> {
        self.inputs.iter().map(|i| &i.id)
    }

    /// Appends decoded samples (48 kHz mono) of an input, adding the input if new.
    pub fn push(&mut self, id: &K, samples: &[i16]) {
        let at = match self.index(id) {
            Some(at) => at,
            None => {
                self.add_input(id.clone());
                self.inputs.len() - 1
            }
        };
        let limit = self.config.max_buffer_ms as usize * SAMPLES_PER_MS;
        let input = &mut self.inputs[at];
        input.fifo.extend(samples.iter().copied());
        if input.fifo.len() > limit {
            let excess = input.fifo.len() - limit;
            input.fifo.drain(..excess);
            input.level.dropped += excess as u64;
        }
    }

    /// Samples buffered for an input.
    pub fn buffered(&self, id: &K) -> Option<usize> {
        self.index(id).map(|at| self.inputs[at].fifo.len())
    }

    /// One tick: takes `samples` samples (480 for 10 ms, 960 for 20 ms) from every input,
    /// returns their saturated sum, updates the levels and the active speaker.
    pub fn mix(&mut self, samples: usize) -> &[i16] {
        let chunk_ms = (samples / SAMPLES_PER_MS).max(1) as u32;
        let alpha = (f64::from(chunk_ms) / f64::from(self.config.window_ms.max(1))).min(1.0);
        self.sum.clear();
        self.sum.resize(samples, 0);
        for input in &mut self.inputs {
            let take = input.fifo.len().min(samples);
            if take < samples {
                input.level.underruns += 1;
            }
            input.chunk.clear();
            input.chunk.extend(input.fifo.drain(..take));
            input.chunk.resize(samples, 0);
            let mut energy = 0f64;
            for (acc, &s) in self.sum.iter_mut().zip(&input.chunk) {
                *acc += i32::from(s);
                energy += f64::from(s) * f64::from(s);
            }
            let power = if samples == 0 { 0.0 } else { energy / samples as f64 / (32768.0 * 32768.0) };
            input.smoothed_power += alpha * (power - input.smoothed_power);
            input.level.dbov = dbov(power);
            input.level.smoothed_dbov = dbov(input.smoothed_power);
            input.level.speaking = input.level.smoothed_dbov >= self.config.vad_threshold_dbov;
        }
        self.out.clear();
        self.out.extend(self.sum.iter().map(|&s| s.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16));
        self.choose_speaker(chunk_ms);
        &self.out
    }

    fn choose_speaker(&mut self, chunk_ms: u32) {
        let loudest = self
            .inputs
            .iter()
            .filter(|i| i.level.speaking)
            .max_by(|a, b| a.level.smoothed_dbov.total_cmp(&b.level.smoothed_dbov));
        let Some(loudest) = loudest else {
            self.challenger = None;
            return;
        };
        let current = self.active.as_ref().and_then(|id| self.inputs.iter().find(|i| i.id == *id));
        let Some(current) = current else {
            self.active = Some(loudest.id.clone());
            self.challenger = None;
            return;
        };
        if loudest.id == current.id
            || loudest.level.smoothed_dbov < current.level.smoothed_dbov + self.config.hysteresis_db
        {
            self.challenger = None;
            return;
        }
        let held = match &self.challenger {
            Some((id, ms)) if *id == loudest.id => ms + chunk_ms,
            _ => chunk_ms,
        };
        if held >= self.config.switch_hold_ms {
            self.active = Some(loudest.id.clone());
            self.challenger = None;
        } else {
            self.challenger = Some((loudest.id.clone(), held));
        }
    }

    /// The last mix.
    pub fn last_mix(&self) -> &[i16] {
        &self.out
    }

    /// The last mix without `id`'s samples (saturated again), into `out`; the whole mix when
    /// `id` is not an input.
    pub fn mix_minus(&self, id: &K, out: &mut Vec<i16>) {
        out.clear();
        match self.index(id) {
            Some(at) => {
                let own = &self.inputs[at].chunk;
                out.extend(
                    self.sum
                        .iter()
                        .zip(own)
                        .map(|(&s, &o)| (s - i32::from(o)).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16),
                );
            }
            None => out.extend_from_slice(&self.out),
        }
    }

    /// An input's level at the last tick.
    pub fn level(&self, id: &K) -> Option<InputLevel> {
        self.index(id).map(|at| self.inputs[at].level)
    }

    /// Every input's level at the last tick.
    pub fn levels(&self) -> impl Iterator<Item = (&K, InputLevel)> {
        self.inputs.iter().map(|i| (&i.id, i.level))
    }

    /// The active speaker, once anyone has spoken.
    pub fn active_speaker(&self) -> Option<&K> {
        self.active.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(amplitude: f64, freq: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(SAMPLE_RATE)).sin()) as i16)
            .collect()
    }

    #[test]
    fn sums_with_saturation_and_mix_minus() {
        let mut m = AudioMixer::new(MixerConfig::default());
        m.push(&"a", &[30000; 480]);
        m.push(&"b", &[10000; 480]);
        m.push(&"c", &[-5000; 480]);
        let out = m.mix(480).to_vec();
        assert_eq!(out.len(), 480);
        assert!(out.iter().all(|&s| s == 32767));
        let mut minus = Vec::new();
        m.mix_minus(&"a", &mut minus);
        assert!(minus.iter().all(|&s| s == 5000));
        m.mix_minus(&"nobody", &mut minus);
        assert_eq!(minus, out);
        // Short input: padded with silence, counted.
        m.push(&"a", &[100; 100]);
        let out = m.mix(480).to_vec();
        assert_eq!(out[0], 100);
        assert_eq!(out[200], 0);
        assert_eq!(m.level(&"a").unwrap().underruns, 1);
        assert_eq!(m.level(&"b").unwrap().underruns, 1);
    }

    #[test]
    fn levels_in_dbov() {
        let mut m = AudioMixer::new(MixerConfig::default());
        // A full-scale square wave is 0 dBov; a full-scale sine -3 dBov.
        m.push(&1, &[i16::MAX; 960]);
        m.push(&2, &tone(32767.0, 1000.0, 960));
        m.push(&3, &tone(327.67, 1000.0, 960));
        m.add_input(4);
        m.mix(960);
        let l = |id| m.level(&id).unwrap();
        assert!(l(1).dbov > -0.1, "{:?}", l(1));
        assert!((l(2).dbov + 3.01).abs() < 0.1, "{:?}", l(2));
        assert!((l(3).dbov + 43.01).abs() < 0.1, "{:?}", l(3));
        assert_eq!(l(4).dbov, SILENCE_DBOV);
        assert_eq!(l(4).rfc6464(), 127);
        assert_eq!(l(2).rfc6464(), 3);
    }

    #[test]
    fn buffer_limit_drops_oldest() {
        let mut m = AudioMixer::new(MixerConfig { max_buffer_ms: 20, ..MixerConfig::default() });
        m.push(&"a", &[1; 960]);
        m.push(&"a", &[2; 480]);
        assert_eq!(m.buffered(&"a"), Some(960));
        assert_eq!(m.level(&"a").unwrap().dropped, 480);
        assert_eq!(m.mix(480)[0], 1);
        assert_eq!(m.mix(480)[0], 2);
    }

    #[test]
    fn active_speaker_with_hysteresis() {
        let mut m = AudioMixer::new(MixerConfig::default());
        let tick = |m: &mut AudioMixer<&str>, a: f64, b: f64| {
            m.push(&"a", &tone(a, 300.0, 480));
            m.push(&"b", &tone(b, 500.0, 480));
            m.mix(480);
        };
        for _ in 0..10 {
            tick(&mut m, 0.0, 0.0);
        }
        assert_eq!(m.active_speaker(), None);
        for _ in 0..20 {
            tick(&mut m, 3000.0, 0.0);
        }
        assert_eq!(m.active_speaker(), Some(&"a"));
        // b slightly louder than a: within the hysteresis, a stays.
        for _ in 0..100 {
            tick(&mut m, 3000.0, 4000.0);
        }
        assert_eq!(m.active_speaker(), Some(&"a"));
        // b much louder, but only for a short burst: a stays.
        for _ in 0..5 {
            tick(&mut m, 3000.0, 20000.0);
        }
        assert_eq!(m.active_speaker(), Some(&"a"));
        // b much louder for long: b takes over; a silent speaker does not lose it to silence.
        for _ in 0..60 {
            tick(&mut m, 3000.0, 20000.0);
        }
        assert_eq!(m.active_speaker(), Some(&"b"));
        for _ in 0..100 {
            tick(&mut m, 0.0, 0.0);
        }
        assert_eq!(m.active_speaker(), Some(&"b"));
        assert!(m.remove_input(&"b"));
        tick(&mut m, 3000.0, 0.0);
        assert_eq!(m.active_speaker(), Some(&"a"));
    }
}
