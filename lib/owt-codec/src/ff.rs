//! The thin layer over FFmpeg that the safe wrappers of `ffmpeg-next` do not cover: one-time
//! initialisation, codec lookup by name, libswscale on sub-rectangles of [`Picture`]s and
//! libswresample on caller-owned sample buffers. Every `unsafe` block of the crate that touches
//! pixel or sample memory is here, next to the bounds checks that make it sound.

use std::ptr;
use std::sync::Once;

use ffmpeg::ffi;
use ffmpeg_next as ffmpeg;
use owt_media::layout::Rect;

use crate::picture::Picture;
use crate::{CodecError, Result};

/// Initialises FFmpeg once per process. FFmpeg's own log goes to stderr, unstructured; the
/// daemons log through `tracing`, and every failure FFmpeg would report also comes back as a
/// [`CodecError`], so only fatal messages are let through.
pub(crate) fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // Only error-string registration: cannot fail in the libraries of FFmpeg 5.1.
        let _ = ffmpeg::init();
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    });
}

/// The first decoder among `names` that this FFmpeg build has.
pub(crate) fn find_decoder(names: &[&str]) -> Option<ffmpeg::Codec> {
    init();
    names.iter().find_map(|n| ffmpeg::decoder::find_by_name(n))
}

/// The first encoder among `names` that this FFmpeg build has.
pub(crate) fn find_encoder(names: &[&str]) -> Option<ffmpeg::Codec> {
    init();
    names.iter().find_map(|n| ffmpeg::encoder::find_by_name(n))
}

/// Makes `frame`'s buffers writable (allocating them the first time, copying them if an encoder
/// still holds a reference), so a frame can be reused for every input without racing the codec.
pub(crate) fn make_writable(frame: &mut ffmpeg::Frame) -> std::result::Result<(), ffmpeg::Error> {
    // SAFETY: the pointer is a valid AVFrame owned by `frame`, whose format and size are set.
    let ret = unsafe {
        let f = frame.as_mut_ptr();
        if (*f).buf[0].is_null() {
            ffi::av_frame_get_buffer(f, 0)
        } else {
            ffi::av_frame_make_writable(f)
        }
    };
    if ret < 0 {
        Err(ffmpeg::Error::from(ret))
    } else {
        Ok(())
    }
}

/// A libswscale context for one (source size and format, destination size) that writes I420.
pub(crate) struct Scaler {
    ctx: *mut ffi::SwsContext,
    src: (u32, u32),
    dst: (u32, u32),
}

// SAFETY: a SwsContext is not tied to the thread that created it; `Scaler` is not `Sync`.
unsafe impl Send for Scaler {}

impl Drop for Scaler {
    fn drop(&mut self) {
        // SAFETY: `ctx` came from sws_getContext and is freed once.
        unsafe { ffi::sws_freeContext(self.ctx) }
    }
}

impl Scaler {
    /// A scaler from `src_w`×`src_h` in `src_format` to `dst_w`×`dst_h` I420 (bilinear: with
    /// libswscale it widens its kernel when shrinking, so downscaled inputs do not alias).
    pub(crate) fn new(
        src_w: u32,
        src_h: u32,
        src_format: ffi::AVPixelFormat,
        dst_w: u32,
        dst_h: u32,
    ) -> Result<Scaler> {
        init();
        let dim = |v: u32| i32::try_from(v).map_err(|_| CodecError::invalid("scaler size", v));
        // SAFETY: plain values in; a null result is handled.
        let ctx = unsafe {
            ffi::sws_getContext(
                dim(src_w)?,
                dim(src_h)?,
                src_format,
                dim(dst_w)?,
                dim(dst_h)?,
                ffi::AVPixelFormat::AV_PIX_FMT_YUV420P,
                ffi::SWS_BILINEAR,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null(),
            )
        };
        if ctx.is_null() {
            return Err(CodecError::invalid(
                "scaler",
                format!("libswscale cannot scale {src_w}x{src_h} {src_format:?} to {dst_w}x{dst_h}"),
            ));
        }
        Ok(Scaler { ctx, src: (src_w, src_h), dst: (dst_w, dst_h) })
    }

    pub(crate) fn dst_size(&self) -> (u32, u32) {
        self.dst
    }

    /// Scales the `crop` part of `src` into the `dst_rect` part of `dst`. Both rectangles must
    /// have even corners, lie inside their pictures and match this scaler's sizes; anything else
    /// is refused (returns false) rather than risk memory outside the pictures.
    pub(crate) fn scale_i420(&mut self, src: &Picture, crop: Rect, dst: &mut Picture, dst_rect: Rect) -> bool {
        let inside = |r: Rect, p: &Picture| {
            r.x.is_multiple_of(2)
                && r.y.is_multiple_of(2)
                && r.w.is_multiple_of(2)
                && r.h.is_multiple_of(2)
                && r.x.checked_add(r.w).is_some_and(|e| e <= p.width())
                && r.y.checked_add(r.h).is_some_and(|e| e <= p.height())
        };
        if !inside(crop, src)
            || !inside(dst_rect, dst)
            || (crop.w, crop.h) != self.src
            || (dst_rect.w, dst_rect.h) != self.dst
        {
            return false;
        }
        let (sys, scs) = (src.y_stride(), src.uv_stride());
        let (dys, dcs) = (dst.y_stride(), dst.uv_stride());
        let src_off = [
            crop.y as usize * sys + crop.x as usize,
            (crop.y / 2) as usize * scs + (crop.x / 2) as usize,
            (crop.y / 2) as usize * scs + (crop.x / 2) as usize,
        ];
        let dst_off = [
            dst_rect.y as usize * dys + dst_rect.x as usize,
            (dst_rect.y / 2) as usize * dcs + (dst_rect.x / 2) as usize,
            (dst_rect.y / 2) as usize * dcs + (dst_rect.x / 2) as usize,
        ];
        let (so, doff) = (src.plane_offsets(), dst.plane_offsets());
        let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
        // SAFETY: the offsets are inside the buffers (plane start plus a position inside the plane).
        let (src_ptrs, dst_ptrs): ([*const u8; 4], [*mut u8; 4]) = unsafe {
            (
                [sp.add(so[0] + src_off[0]), sp.add(so[1] + src_off[1]), sp.add(so[2] + src_off[2]), ptr::null()],
                [
                    dp.add(doff[0] + dst_off[0]),
                    dp.add(doff[1] + dst_off[1]),
                    dp.add(doff[2] + dst_off[2]),
                    ptr::null_mut(),
                ],
            )
        };
        let src_strides = [sys as i32, scs as i32, scs as i32, 0];
        let dst_strides = [dys as i32, dcs as i32, dcs as i32, 0];
        // SAFETY: the context was made for exactly crop.w×crop.h -> dst_rect.w×dst_rect.h I420;
        // both rectangles were checked to lie inside their pictures, whose planes are
        // `stride × rows` bytes, so every row libswscale reads or writes is inside the planes.
        let rows = unsafe {
            ffi::sws_scale(
                self.ctx,
                src_ptrs.as_ptr(),
                src_strides.as_ptr(),
                0,
                crop.h as i32,
                dst_ptrs.as_ptr(),
                dst_strides.as_ptr(),
            )
        };
        rows > 0
    }

    /// Converts a whole decoded frame (any format libswscale reads) into `dst`, whose size must
    /// be this scaler's destination size.
    pub(crate) fn convert_frame(&mut self, frame: &ffmpeg::frame::Video, dst: &mut Picture) -> bool {
        if (frame.width(), frame.height()) != self.src || (dst.width(), dst.height()) != self.dst {
            return false;
        }
        let (dys, dcs) = (dst.y_stride() as i32, dst.uv_stride() as i32);
        let (off, dp) = (dst.plane_offsets(), dst.as_mut_ptr());
        // SAFETY: plane starts inside the buffer.
        let dst_ptrs: [*mut u8; 4] = unsafe { [dp.add(off[0]), dp.add(off[1]), dp.add(off[2]), ptr::null_mut()] };
        let dst_strides = [dys, dcs, dcs, 0];
        // SAFETY: the frame is a decoded AVFrame of the size and format this context was made
        // for (its data/linesize arrays describe its own buffers); the destination planes are
        // exactly dst size I420.
        let rows = unsafe {
            let f = frame.as_ptr();
            ffi::sws_scale(
                self.ctx,
                (*f).data.as_ptr() as *const *const u8,
                (*f).linesize.as_ptr(),
                0,
                frame.height() as i32,
                dst_ptrs.as_ptr(),
                dst_strides.as_ptr(),
            )
        };
        rows > 0
    }
}

/// A libswresample context that converts to mono signed 16-bit samples at one rate.
pub(crate) struct Resampler {
    ctx: ffmpeg::software::resampling::Context,
    input: (ffmpeg::format::Sample, ffmpeg::ChannelLayout, u32),
}

impl Resampler {
    pub(crate) fn new(
        in_format: ffmpeg::format::Sample,
        in_layout: ffmpeg::ChannelLayout,
        in_rate: u32,
        out_rate: u32,
    ) -> std::result::Result<Resampler, ffmpeg::Error> {
        init();
        let ctx = ffmpeg::software::resampling::Context::get(
            in_format,
            in_layout,
            in_rate,
            ffmpeg::format::Sample::I16(ffmpeg::format::sample::Type::Packed),
            ffmpeg::ChannelLayout::MONO,
            out_rate,
        )?;
        Ok(Resampler { ctx, input: (in_format, in_layout, in_rate) })
    }

    /// Whether this resampler takes input of this format, layout and rate.
    pub(crate) fn takes(&self, format: ffmpeg::format::Sample, layout: ffmpeg::ChannelLayout, rate: u32) -> bool {
        self.input == (format, layout, rate)
    }

    /// Converts `samples` samples (per channel) of the planes at `input` and appends the result
    /// to `out`.
    ///
    /// # Safety
    /// `input` must hold one pointer per plane of the input format and layout, each valid for
    /// `samples` samples of that format (all channels interleaved for a packed format).
    unsafe fn convert_raw(&mut self, input: &[*const u8], samples: usize, out: &mut Vec<i16>) -> Result<()> {
        let samples = i32::try_from(samples).map_err(|_| CodecError::invalid("sample count", samples))?;
        // SAFETY (of the calls below): `ctx` is an initialised SwrContext; room for `room`
        // samples is reserved in `out` before swr_convert writes there.
        let room = unsafe { ffi::swr_get_out_samples(self.ctx.as_mut_ptr(), samples) };
        if room < 0 {
            return Err(CodecError::invalid("resampler", ffmpeg::Error::from(room)));
        }
        let len = out.len();
        out.resize(len + room as usize, 0);
        let mut out_ptr = out[len..].as_mut_ptr().cast::<u8>();
        let mut in_ptrs = [ptr::null::<u8>(); 8];
        for (slot, p) in in_ptrs.iter_mut().zip(input) {
            *slot = *p;
        }
        let written =
            unsafe { ffi::swr_convert(self.ctx.as_mut_ptr(), &mut out_ptr, room, in_ptrs.as_mut_ptr(), samples) };
        if written < 0 {
            out.truncate(len);
            return Err(CodecError::invalid("resampler", ffmpeg::Error::from(written)));
        }
        out.truncate(len + written as usize);
        Ok(())
    }

    /// Converts mono signed 16-bit samples (this resampler must take those) and appends to `out`.
    pub(crate) fn convert_i16(&mut self, input: &[i16], out: &mut Vec<i16>) -> Result<()> {
        debug_assert!(self.input.0 == ffmpeg::format::Sample::I16(ffmpeg::format::sample::Type::Packed));
        debug_assert!(self.input.1 == ffmpeg::ChannelLayout::MONO);
        // SAFETY: one packed mono s16 plane of `input.len()` samples.
        unsafe { self.convert_raw(&[input.as_ptr().cast()], input.len(), out) }
    }

    /// Converts a decoded frame (this resampler must take its format, layout and rate) and
    /// appends to `out`.
    pub(crate) fn convert_frame(&mut self, frame: &ffmpeg::frame::Audio, out: &mut Vec<i16>) -> Result<()> {
        let planes = if frame.is_planar() { usize::from(frame.channels()) } else { 1 };
        if planes == 0 || planes > 8 {
            return Err(CodecError::invalid("audio frame", format!("{planes} planes")));
        }
        let mut ptrs = [ptr::null::<u8>(); 8];
        // SAFETY: a decoded AVFrame: extended_data has one pointer per plane, each valid for
        // nb_samples samples of its format.
        unsafe {
            let f = frame.as_ptr();
            for (i, p) in ptrs.iter_mut().enumerate().take(planes) {
                *p = *(*f).extended_data.add(i);
            }
            self.convert_raw(&ptrs[..planes], frame.samples(), out)
        }
    }
}
