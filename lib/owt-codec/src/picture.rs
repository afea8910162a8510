//! [`Picture`]: an owned I420 frame (YUV 4:2:0 planar, 8 bits, BT.601 limited range), the
//! currency between decoders, the compositor and encoders.
//!
//! The three planes live in one buffer without row padding: Y is `width × height` bytes with
//! stride `width`, U and V are `width/2 × height/2` with stride `width/2`. Width and height are
//! even and at least 2, so every chroma sample covers exactly 2×2 luma samples and a rectangle
//! with even corners maps to whole chroma samples.

use owt_media::layout::Rect;
use owt_types::room::Rgb;

use crate::{CodecError, Result};

/// The largest width or height accepted (the media link carries sizes as `u16`).
pub const MAX_DIMENSION: u32 = 8192;

/// Spare bytes after the V plane: SIMD code in libswscale may read a few bytes past the last
/// pixel of a row, and the last row of V is the end of the buffer.
const PADDING: usize = 64;

/// An owned I420 frame.
#[derive(Clone, PartialEq, Eq)]
pub struct Picture {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl std::fmt::Debug for Picture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Picture").field("width", &self.width).field("height", &self.height).finish_non_exhaustive()
    }
}

/// BT.601 limited range Y, Cb, Cr of an RGB colour.
pub fn rgb_to_yuv(rgb: Rgb) -> (u8, u8, u8) {
    let (r, g, b) = (f32::from(rgb.r), f32::from(rgb.g), f32::from(rgb.b));
    let y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0;
    let u = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0;
    let v = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0;
    (clamp_u8(y), clamp_u8(u), clamp_u8(v))
}

/// RGB of BT.601 limited range Y, Cb, Cr.
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> (u8, u8, u8) {
    let y = 1.164_383 * (f32::from(y) - 16.0);
    let (u, v) = (f32::from(u) - 128.0, f32::from(v) - 128.0);
    (clamp_u8(y + 1.596_027 * v), clamp_u8(y - 0.391_762 * u - 0.812_968 * v), clamp_u8(y + 2.017_232 * u))
}

fn clamp_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Checks a picture size: even, at least 2, at most [`MAX_DIMENSION`].
pub(crate) fn check_size(width: u32, height: u32) -> Result<()> {
    let ok = |v: u32| (2..=MAX_DIMENSION).contains(&v) && v.is_multiple_of(2);
    if ok(width) && ok(height) {
        Ok(())
    } else {
        Err(CodecError::invalid("picture size", format!("{width}x{height} (must be even, 2 to {MAX_DIMENSION})")))
    }
}

impl Picture {
    /// A black picture (Y 16, U and V 128).
    pub fn new(width: u32, height: u32) -> Result<Picture> {
        Picture::solid(width, height, Rgb { r: 0, g: 0, b: 0 })
    }

    /// A picture of one colour.
    pub fn solid(width: u32, height: u32, rgb: Rgb) -> Result<Picture> {
        check_size(width, height)?;
        let luma = width as usize * height as usize;
        let mut picture = Picture { width, height, data: vec![0; luma + luma / 2 + PADDING] };
        picture.fill_rgb(rgb);
        Ok(picture)
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Bytes per row of Y (equal to the width).
    pub fn y_stride(&self) -> usize {
        self.width as usize
    }

    /// Bytes per row of U and of V (half the width).
    pub fn uv_stride(&self) -> usize {
        self.width as usize / 2
    }

    fn luma_len(&self) -> usize {
        self.width as usize * self.height as usize
    }

    pub fn y(&self) -> &[u8] {
        &self.data[..self.luma_len()]
    }

    pub fn u(&self) -> &[u8] {
        let l = self.luma_len();
        &self.data[l..l + l / 4]
    }

    pub fn v(&self) -> &[u8] {
        let l = self.luma_len();
        &self.data[l + l / 4..l + l / 2]
    }

    /// The three planes, writable.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let l = self.luma_len();
        let (y, uv) = self.data.split_at_mut(l);
        let (u, v) = uv.split_at_mut(l / 4);
        (y, u, &mut v[..l / 4])
    }

    /// Offsets of Y, U and V in the buffer of [`Picture::as_ptr`].
    pub(crate) fn plane_offsets(&self) -> [usize; 3] {
        let l = self.luma_len();
        [0, l, l + l / 4]
    }

    /// The whole buffer (planes and padding), for C code that takes plane pointers.
    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.data.as_ptr()
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.data.as_mut_ptr()
    }

    /// Changes the size, keeping the buffer's capacity (the content is unspecified after).
    pub fn resize(&mut self, width: u32, height: u32) -> Result<()> {
        check_size(width, height)?;
        if (width, height) != (self.width, self.height) {
            let luma = width as usize * height as usize;
            self.data.resize(luma + luma / 2 + PADDING, 0);
            self.width = width;
            self.height = height;
        }
        Ok(())
    }

    /// Paints the whole picture with one colour.
    pub fn fill_rgb(&mut self, rgb: Rgb) {
        let (y, u, v) = rgb_to_yuv(rgb);
        let (py, pu, pv) = self.planes_mut();
        py.fill(y);
        pu.fill(u);
        pv.fill(v);
    }

    /// Paints a rectangle with one colour; the rectangle is clipped to the picture and its corners
    /// are rounded down to even coordinates.
    pub fn fill_rect_rgb(&mut self, rect: Rect, rgb: Rgb) {
        let Some(rect) = self.clip_even(rect) else { return };
        let (y, u, v) = rgb_to_yuv(rgb);
        let (ys, cs) = (self.y_stride(), self.uv_stride());
        let (py, pu, pv) = self.planes_mut();
        let (x, w) = (rect.x as usize, rect.w as usize);
        for row in rect.y as usize..(rect.y + rect.h) as usize {
            py[row * ys + x..row * ys + x + w].fill(y);
        }
        for row in rect.y as usize / 2..(rect.y + rect.h) as usize / 2 {
            pu[row * cs + x / 2..row * cs + (x + w) / 2].fill(u);
            pv[row * cs + x / 2..row * cs + (x + w) / 2].fill(v);
        }
    }

    /// `rect` with even corners, clipped to the picture; `None` when nothing is left.
    pub(crate) fn clip_even(&self, rect: Rect) -> Option<Rect> {
        let x0 = rect.x.min(self.width) & !1;
        let y0 = rect.y.min(self.height) & !1;
        let x1 = rect.x.saturating_add(rect.w).min(self.width) & !1;
        let y1 = rect.y.saturating_add(rect.h).min(self.height) & !1;
        (x1 > x0 && y1 > y0).then_some(Rect { x: x0, y: y0, w: x1 - x0, h: y1 - y0 })
    }

    /// Y, U, V at a pixel (U and V of its 2×2 block). Panics outside the picture.
    pub fn pixel_yuv(&self, x: u32, y: u32) -> (u8, u8, u8) {
        assert!(x < self.width && y < self.height, "pixel ({x}, {y}) outside {}x{}", self.width, self.height);
        let c = (y / 2) as usize * self.uv_stride() + (x / 2) as usize;
        (self.y()[y as usize * self.y_stride() + x as usize], self.u()[c], self.v()[c])
    }

    /// RGB of a pixel (BT.601 limited range). Panics outside the picture.
    pub fn pixel_rgb(&self, x: u32, y: u32) -> (u8, u8, u8) {
        let (y, u, v) = self.pixel_yuv(x, y);
        yuv_to_rgb(y, u, v)
    }

    /// Mean RGB over a rectangle (clipped; black when empty): steadier than one pixel for tests
    /// of lossy codecs.
    pub fn mean_rgb(&self, rect: Rect) -> (u8, u8, u8) {
        let Some(rect) = self.clip_even(rect) else { return (0, 0, 0) };
        let (mut sy, mut su, mut sv) = (0u64, 0u64, 0u64);
        for row in rect.y..rect.y + rect.h {
            let at = row as usize * self.y_stride() + rect.x as usize;
            sy += self.y()[at..at + rect.w as usize].iter().map(|&b| u64::from(b)).sum::<u64>();
        }
        for row in rect.y / 2..(rect.y + rect.h) / 2 {
            let at = row as usize * self.uv_stride() + rect.x as usize / 2;
            let len = rect.w as usize / 2;
            su += self.u()[at..at + len].iter().map(|&b| u64::from(b)).sum::<u64>();
            sv += self.v()[at..at + len].iter().map(|&b| u64::from(b)).sum::<u64>();
        }
        let (n, nc) = (u64::from(rect.w) * u64::from(rect.h), u64::from(rect.w / 2) * u64::from(rect.h / 2));
        yuv_to_rgb((sy / n) as u8, (su / nc) as u8, (sv / nc) as u8)
    }
}

/// Lets openh264 read a picture without a copy.
impl openh264::formats::YUVSource for Picture {
    fn dimensions(&self) -> (usize, usize) {
        (self.width as usize, self.height as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        (self.y_stride(), self.uv_stride(), self.uv_stride())
    }

    fn y(&self) -> &[u8] {
        Picture::y(self)
    }

    fn u(&self) -> &[u8] {
        Picture::u(self)
    }

    fn v(&self) -> &[u8] {
        Picture::v(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb(r: u8, g: u8, b: u8) -> Rgb {
        Rgb { r, g, b }
    }

    #[test]
    fn colours_round_trip() {
        for c in [rgb(0, 0, 0), rgb(255, 255, 255), rgb(255, 0, 0), rgb(0, 255, 0), rgb(0, 0, 255), rgb(30, 120, 200)] {
            let (y, u, v) = rgb_to_yuv(c);
            let (r, g, b) = yuv_to_rgb(y, u, v);
            for (a, b) in [(r, c.r), (g, c.g), (b, c.b)] {
                assert!(a.abs_diff(b) <= 3, "{c:?} came back as {:?}", (r, g, b));
            }
        }
        assert_eq!(rgb_to_yuv(rgb(0, 0, 0)), (16, 128, 128));
        assert_eq!(rgb_to_yuv(rgb(255, 255, 255)), (235, 128, 128));
    }

    #[test]
    fn sizes_and_rects() {
        assert!(Picture::new(3, 2).is_err());
        assert!(Picture::new(0, 2).is_err());
        assert!(Picture::new(2, MAX_DIMENSION + 2).is_err());
        let mut p = Picture::solid(8, 6, rgb(255, 0, 0)).unwrap();
        assert_eq!((p.y().len(), p.u().len(), p.v().len()), (48, 12, 12));
        p.fill_rect_rgb(Rect { x: 3, y: 1, w: 100, h: 3 }, rgb(0, 0, 255));
        // Corners rounded down to even: x 2..8, y 0..4.
        assert!(p.pixel_rgb(2, 0).2 > 200);
        assert!(p.pixel_rgb(7, 3).2 > 200);
        assert!(p.pixel_rgb(1, 0).0 > 200);
        assert!(p.pixel_rgb(2, 4).0 > 200);
        assert_eq!(p.mean_rgb(Rect { x: 0, y: 4, w: 8, h: 2 }), p.pixel_rgb(0, 5));
        p.resize(4, 4).unwrap();
        assert_eq!(p.v().len(), 4);
    }
}
