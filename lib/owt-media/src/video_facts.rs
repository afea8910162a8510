//! What a forwarder learns about a published video track while forwarding it: its picture
//! size (from keyframes, see [`crate::video_size`]), frame rate and bitrate (measured over
//! two-second windows), and when those facts changed enough to tell the portal, which shows
//! the size in the stream's info (OWT's `parameters.resolution`) and picks simulcast layers
//! with all three ([`choose_layer`]).

use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(2);
/// Frame rate or bitrate changes smaller than this share are not worth a report.
const CHANGE: f64 = 0.25;
/// Reports about rate changes alone are at least this far apart.
const RATE_REPORT_GAP: Duration = Duration::from_secs(4);

/// The facts of one video track (or simulcast layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VideoFacts {
    pub width: u32,
    pub height: u32,
    pub framerate: Option<u32>,
    pub bitrate_kbps: Option<u32>,
}

/// Measures a track's facts from the packets forwarded and decides when to report them.
#[derive(Debug, Default)]
pub struct VideoFactsMeter {
    size: Option<(u32, u32)>,
    window_start: Option<Instant>,
    frames: u32,
    bytes: u64,
    last_timestamp: Option<u32>,
    framerate: Option<u32>,
    bitrate_kbps: Option<u32>,
    reported: Option<VideoFacts>,
    reported_at: Option<Instant>,
}

impl VideoFactsMeter {
    pub fn new() -> VideoFactsMeter {
        VideoFactsMeter::default()
    }

    /// One forwarded packet: its RTP timestamp (a new one = a new frame), payload size, and
    /// the picture size when it starts a keyframe that says it.
    pub fn observe(&mut self, now: Instant, rtp_timestamp: u32, payload_len: usize, size: Option<(u32, u32)>) {
        if size.is_some() {
            self.size = size;
        }
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= WINDOW {
            let seconds = elapsed.as_secs_f64();
            self.framerate = Some((f64::from(self.frames) / seconds).round() as u32);
            self.bitrate_kbps = Some((self.bytes as f64 * 8.0 / seconds / 1000.0).round() as u32);
            self.window_start = Some(now);
            self.frames = 0;
            self.bytes = 0;
        }
        if self.last_timestamp != Some(rtp_timestamp) {
            self.last_timestamp = Some(rtp_timestamp);
            self.frames += 1;
        }
        self.bytes += payload_len as u64;
    }

    /// The facts to tell, if they are worth telling: the first ones once the size is known,
    /// a new size at once, frame rate or bitrate changes of a quarter or more now and then.
    pub fn report(&mut self, now: Instant) -> Option<VideoFacts> {
        let (width, height) = self.size?;
        let facts = VideoFacts { width, height, framerate: self.framerate, bitrate_kbps: self.bitrate_kbps };
        let worth = match (&self.reported, self.reported_at) {
            (Some(old), Some(at)) => {
                (old.width, old.height) != (width, height)
                    || (now.saturating_duration_since(at) >= RATE_REPORT_GAP
                        && (changed(old.framerate, facts.framerate) || changed(old.bitrate_kbps, facts.bitrate_kbps)))
            }
            _ => true,
        };
        if !worth {
            return None;
        }
        self.reported = Some(facts);
        self.reported_at = Some(now);
        Some(facts)
    }
}

fn changed(old: Option<u32>, new: Option<u32>) -> bool {
    match (old, new) {
        (None, Some(_)) => true,
        (Some(old), Some(new)) => f64::from(old.abs_diff(new)) > CHANGE * f64::from(old.max(1)),
        _ => false,
    }
}

/// What a subscriber asks of a video stream (OWT subscription `parameters`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WantedVideo {
    pub resolution: Option<(u32, u32)>,
    pub framerate: Option<u32>,
    /// `"x0.5"` in OWT's terms: a share of the best layer's bitrate.
    pub bitrate_multiplier: Option<f64>,
    /// An absolute bitrate in kbps.
    pub bitrate_kbps: Option<u32>,
}

/// The simulcast layer that best serves `wanted`, among `layers` (id, facts when known).
/// Resolution first: the largest layer that fits in the asked size (the smallest layer when
/// none fits); then bitrate: the highest at or under the target (the lowest when none is);
/// then frame rate: the closest. Nothing asked = the largest layer. None when no layer's
/// facts are known yet.
pub fn choose_layer<'a>(layers: &[(&'a str, Option<VideoFacts>)], wanted: &WantedVideo) -> Option<&'a str> {
    let mut candidates: Vec<(&str, VideoFacts)> = layers.iter().filter_map(|(id, f)| Some((*id, (*f)?))).collect();
    if candidates.is_empty() {
        return None;
    }
    let area = |f: &VideoFacts| u64::from(f.width) * u64::from(f.height);
    let areas = || candidates.iter().map(|(_, f)| area(f));
    let nothing_asked =
        wanted.bitrate_multiplier.is_none() && wanted.bitrate_kbps.is_none() && wanted.framerate.is_none();
    let target_area = match wanted.resolution {
        Some((w, h)) => {
            let fitting = candidates.iter().map(|(_, f)| f).filter(|f| f.width <= w && f.height <= h).map(area).max();
            fitting.or_else(|| areas().min())
        }
        None if nothing_asked => areas().max(),
        None => None,
    };
    if let Some(target_area) = target_area {
        candidates.retain(|(_, f)| area(f) == target_area);
    }
    let best_bitrate = layers.iter().filter_map(|(_, f)| f.and_then(|f| f.bitrate_kbps)).max();
    let target_bitrate = match (wanted.bitrate_kbps, wanted.bitrate_multiplier, best_bitrate) {
        (Some(kbps), _, _) => Some(kbps),
        (None, Some(multiplier), Some(best)) => Some((f64::from(best) * multiplier).round() as u32),
        _ => None,
    };
    if let Some(target) = target_bitrate {
        let rates: Vec<u32> = candidates.iter().filter_map(|(_, f)| f.bitrate_kbps).collect();
        let chosen = rates.iter().copied().filter(|r| *r <= target).max().or_else(|| rates.iter().copied().min());
        if let Some(chosen) = chosen {
            candidates.retain(|(_, f)| f.bitrate_kbps == Some(chosen));
        }
    }
    if let Some(framerate) = wanted.framerate {
        if let Some(closest) = candidates.iter().filter_map(|(_, f)| f.framerate).min_by_key(|r| r.abs_diff(framerate))
        {
            candidates.retain(|(_, f)| f.framerate == Some(closest));
        }
    }
    candidates.first().map(|(id, _)| *id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(width: u32, height: u32, framerate: u32, bitrate_kbps: u32) -> Option<VideoFacts> {
        Some(VideoFacts { width, height, framerate: Some(framerate), bitrate_kbps: Some(bitrate_kbps) })
    }

    #[test]
    fn meter_reports_size_at_once_and_rates_after_a_window() {
        let start = Instant::now();
        let mut meter = VideoFactsMeter::new();
        assert_eq!(meter.report(start), None, "nothing known yet");
        // 30 fps, two packets of 1000 bytes per frame: 480 kbps.
        let mut reports = Vec::new();
        for frame in 0..150u32 {
            let now = start + Duration::from_millis(u64::from(frame) * 1000 / 30);
            let size = (frame % 60 == 0).then_some((640, 480));
            meter.observe(now, frame * 3000, 1000, size);
            meter.observe(now, frame * 3000, 1000, None);
            if let Some(report) = meter.report(now) {
                reports.push((frame, report));
            }
        }
        assert_eq!(reports[0], (0, VideoFacts { width: 640, height: 480, framerate: None, bitrate_kbps: None }));
        let (_, measured) = reports[1];
        assert_eq!(measured.framerate, Some(30));
        assert!((470..=490).contains(&measured.bitrate_kbps.unwrap()), "{measured:?}");
        assert_eq!(reports.len(), 2, "steady rates are not told again: {reports:?}");
        // A new size is told at once.
        let later = start + Duration::from_secs(6);
        meter.observe(later, 1, 100, Some((320, 240)));
        assert_eq!(meter.report(later).map(|f| (f.width, f.height)), Some((320, 240)));
        assert_eq!(meter.report(later), None);
    }

    #[test]
    fn layer_choice_by_resolution_bitrate_and_framerate() {
        let layers =
            [("q", facts(160, 120, 30, 100)), ("h", facts(320, 240, 30, 300)), ("f", facts(640, 480, 30, 900))];
        let pick = |wanted: WantedVideo| choose_layer(&layers, &wanted);
        assert_eq!(pick(WantedVideo::default()), Some("f"), "nothing asked: the best");
        let resolution = |w, h| WantedVideo { resolution: Some((w, h)), ..Default::default() };
        assert_eq!(pick(resolution(320, 240)), Some("h"));
        assert_eq!(pick(resolution(400, 300)), Some("h"), "largest that fits");
        assert_eq!(pick(resolution(1920, 1080)), Some("f"));
        assert_eq!(pick(resolution(100, 100)), Some("q"), "none fits: the smallest");
        let multiplier = |m| WantedVideo { bitrate_multiplier: Some(m), ..Default::default() };
        assert_eq!(pick(multiplier(0.4)), Some("h"), "0.4 x 900 = 360 kbps");
        assert_eq!(pick(multiplier(0.05)), Some("q"));
        assert_eq!(pick(WantedVideo { bitrate_kbps: Some(2000), ..Default::default() }), Some("f"));
        // Frame rate decides between layers of one size.
        let temporal = [("a", facts(640, 480, 15, 500)), ("b", facts(640, 480, 30, 800))];
        let framerate = |r| WantedVideo { framerate: Some(r), ..Default::default() };
        assert_eq!(choose_layer(&temporal, &framerate(12)), Some("a"));
        assert_eq!(choose_layer(&temporal, &framerate(25)), Some("b"));
        // Layers not measured yet are skipped; none measured = no choice.
        assert_eq!(choose_layer(&[("q", None), ("f", facts(640, 480, 30, 900))], &resolution(160, 120)), Some("f"));
        assert_eq!(choose_layer(&[("q", None)], &resolution(160, 120)), None);
    }
}
