//! [`Compositor`]: the canvas of a mixed video view. Each frame it paints the background colour
//! (the view's `bgColor`) and scales every input's crop rectangle into its destination rectangle
//! (both from [`owt_media::layout::pixel_rects`]), in the order given, so later inputs cover
//! earlier ones where regions overlap.
//!
//! Scaling is libswscale (bilinear), called on sub-rectangles by handing it plane pointers that
//! start at the rectangles' corners with the pictures' strides: no copy of the crop, no
//! intermediate picture, and its SIMD code does the filtering. All pictures here are I420 with
//! even rectangle corners (the layout math rounds to even), so chroma rectangles are exact.
//! A hand-written scaler would avoid `unsafe` but not beat libswscale's SIMD; the `unsafe` is
//! confined to one function that checks both rectangles against their pictures first.
//!
//! Efficiency: the canvas is allocated once (and on [`Compositor::resize`]); scaling contexts
//! are kept per (source size, destination size) and reused, and those unused for
//! [`SCALER_IDLE_FRAMES`] frames are dropped. A steady layout composes without allocating.
//! Inputs whose crop already has the destination size are copied row by row.

use std::collections::HashMap;

use owt_media::layout::Rect;
use owt_types::room::Rgb;

use crate::ff::Scaler;
use crate::picture::Picture;
use crate::Result;

/// Frames after which a scaling context nobody used is freed.
pub const SCALER_IDLE_FRAMES: u64 = 150;

/// (crop width, crop height, destination width, destination height).
type ScaleKey = (u32, u32, u32, u32);

struct CachedScaler {
    scaler: Scaler,
    last_used: u64,
}

/// The canvas of a mixed view.
pub struct Compositor {
    canvas: Picture,
    background: Rgb,
    scalers: HashMap<ScaleKey, CachedScaler>,
    frame_no: u64,
}

impl std::fmt::Debug for Compositor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compositor")
            .field("width", &self.canvas.width())
            .field("height", &self.canvas.height())
            .field("background", &self.background)
            .field("scalers", &self.scalers.len())
            .finish()
    }
}

impl Compositor {
    /// A `width`×`height` canvas (even sizes) painted with `background`.
    pub fn new(width: u32, height: u32, background: Rgb) -> Result<Compositor> {
        Ok(Compositor {
            canvas: Picture::solid(width, height, background)?,
            background,
            scalers: HashMap::new(),
            frame_no: 0,
        })
    }

    pub fn width(&self) -> u32 {
        self.canvas.width()
    }

    pub fn height(&self) -> u32 {
        self.canvas.height()
    }

    pub fn background(&self) -> Rgb {
        self.background
    }

    /// Changes the background colour from the next frame on.
    pub fn set_background(&mut self, background: Rgb) {
        self.background = background;
    }

    /// Changes the canvas size (a view's resolution update).
    pub fn resize(&mut self, width: u32, height: u32) -> Result<()> {
        self.canvas.resize(width, height)?;
        self.canvas.fill_rgb(self.background);
        Ok(())
    }

    /// The last composed frame.
    pub fn canvas(&self) -> &Picture {
        &self.canvas
    }

    /// Number of scaling contexts kept (for metrics and tests).
    pub fn cached_scalers(&self) -> usize {
        self.scalers.len()
    }

    /// Composes one frame: the background, then for each `(dst, src_crop, picture)` the
    /// `src_crop` part of `picture` scaled into `dst` on the canvas. Rectangles are clipped to
    /// their pictures and their corners rounded down to even; an input left with nothing to
    /// draw is skipped.
    pub fn compose(&mut self, placements: &[(Rect, Rect, &Picture)]) -> &Picture {
        self.frame_no += 1;
        self.canvas.fill_rgb(self.background);
        for &(dst, crop, picture) in placements {
            let (Some(dst), Some(crop)) = (self.canvas.clip_even(dst), picture.clip_even(crop)) else { continue };
            if (dst.w, dst.h) == (crop.w, crop.h) {
                copy_rect(picture, crop, &mut self.canvas, dst);
                continue;
            }
            let key = (crop.w, crop.h, dst.w, dst.h);
            let cached = match self.scalers.entry(key) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    match Scaler::new(crop.w, crop.h, ffmpeg_next::ffi::AVPixelFormat::AV_PIX_FMT_YUV420P, dst.w, dst.h)
                    {
                        Ok(scaler) => e.insert(CachedScaler { scaler, last_used: 0 }),
                        // libswscale refuses only absurd sizes (it handles 2x2 to 8192x8192).
                        Err(_) => continue,
                    }
                }
            };
            cached.last_used = self.frame_no;
            cached.scaler.scale_i420(picture, crop, &mut self.canvas, dst);
        }
        if self.frame_no.is_multiple_of(SCALER_IDLE_FRAMES) {
            let now = self.frame_no;
            self.scalers.retain(|_, c| now - c.last_used < SCALER_IDLE_FRAMES);
        }
        &self.canvas
    }
}

/// Copies an even rectangle of `src` into an even rectangle of the same size in `dst`.
fn copy_rect(src: &Picture, crop: Rect, dst: &mut Picture, at: Rect) {
    let (sys, scs, dys, dcs) = (src.y_stride(), src.uv_stride(), dst.y_stride(), dst.uv_stride());
    let (w, h) = (crop.w as usize, crop.h as usize);
    let (dy, du, dv) = dst.planes_mut();
    for row in 0..h {
        let s = (crop.y as usize + row) * sys + crop.x as usize;
        let d = (at.y as usize + row) * dys + at.x as usize;
        dy[d..d + w].copy_from_slice(&src.y()[s..s + w]);
    }
    for row in 0..h / 2 {
        let s = (crop.y as usize / 2 + row) * scs + crop.x as usize / 2;
        let d = (at.y as usize / 2 + row) * dcs + at.x as usize / 2;
        du[d..d + w / 2].copy_from_slice(&src.u()[s..s + w / 2]);
        dv[d..d + w / 2].copy_from_slice(&src.v()[s..s + w / 2]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RED: Rgb = Rgb { r: 255, g: 0, b: 0 };
    const BLUE: Rgb = Rgb { r: 0, g: 0, b: 255 };
    const GREY: Rgb = Rgb { r: 128, g: 128, b: 128 };

    fn close(a: (u8, u8, u8), b: Rgb) -> bool {
        a.0.abs_diff(b.r) <= 8 && a.1.abs_diff(b.g) <= 8 && a.2.abs_diff(b.b) <= 8
    }

    #[test]
    fn scales_and_copies_into_regions() {
        let mut c = Compositor::new(64, 32, GREY).unwrap();
        let red = Picture::solid(20, 10, RED).unwrap();
        let blue = Picture::solid(16, 16, BLUE).unwrap();
        let full = |p: &Picture| Rect { x: 0, y: 0, w: p.width(), h: p.height() };
        let placements = [
            (Rect { x: 0, y: 0, w: 32, h: 32 }, full(&red), &red),
            (Rect { x: 40, y: 8, w: 16, h: 16 }, full(&blue), &blue),
        ];
        let out = c.compose(&placements);
        assert!(close(out.pixel_rgb(16, 16), RED));
        assert!(close(out.pixel_rgb(0, 0), RED));
        assert!(close(out.pixel_rgb(31, 31), RED));
        assert!(close(out.pixel_rgb(48, 16), BLUE));
        assert!(close(out.pixel_rgb(34, 2), GREY));
        assert!(close(out.pixel_rgb(63, 31), GREY));
        // One scaler (the red one); the blue input was copied.
        assert_eq!(c.cached_scalers(), 1);
        // Out-of-canvas and empty rectangles are clipped or skipped, never a panic.
        let odd = [
            (Rect { x: 60, y: 30, w: 100, h: 100 }, full(&red), &red),
            (Rect { x: 10, y: 10, w: 0, h: 5 }, full(&red), &red),
            (Rect { x: 0, y: 0, w: 8, h: 8 }, Rect { x: 19, y: 9, w: 50, h: 50 }, &red),
            (Rect { x: u32::MAX - 1, y: 0, w: u32::MAX, h: 4 }, full(&red), &red),
        ];
        let out = c.compose(&odd);
        assert!(close(out.pixel_rgb(62, 31), RED));
        assert!(close(out.pixel_rgb(30, 20), GREY));
    }

    #[test]
    fn idle_scalers_are_dropped() {
        let mut c = Compositor::new(32, 32, GREY).unwrap();
        let red = Picture::solid(20, 10, RED).unwrap();
        let crop = Rect { x: 0, y: 0, w: 20, h: 10 };
        c.compose(&[(Rect { x: 0, y: 0, w: 16, h: 16 }, crop, &red)]);
        assert_eq!(c.cached_scalers(), 1);
        for _ in 0..SCALER_IDLE_FRAMES * 2 {
            c.compose(&[(Rect { x: 0, y: 0, w: 8, h: 8 }, crop, &red)]);
        }
        assert_eq!(c.cached_scalers(), 1);
    }
}
