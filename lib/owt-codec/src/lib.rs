//! The media processing core of the MCU (`owt-mixer`): decoding and encoding of the frames that
//! travel on the media link (DESIGN.md §5, [`owt_proto::media::MediaFrame`]), compositing of
//! decoded pictures into a mixed view, and mixing of decoded audio.
//!
//! Synchronous and CPU-bound: no async runtime, no sockets, no threads of its own (libvpx and
//! openh264 may use worker threads inside one encode call). Each value here is owned by one
//! thread at a time; the mixer daemon runs one per view on a thread of its choosing.
//!
//! - [`picture`]: [`Picture`], an owned I420 frame, with BT.601 colour helpers.
//! - [`video`]: [`VideoDecoder`] (VP8, VP9, H.264, and AV1/H.265 when the FFmpeg build has
//!   decoders) and [`VideoEncoder`] (VP8/VP9 through FFmpeg's libvpx wrappers, H.264 through
//!   openh264: Debian's FFmpeg only has the GPL libx264, which must not be linked).
//! - [`compose`]: [`Compositor`], the canvas of a mixed view (background colour plus each input's
//!   crop scaled into its region, with libswscale).
//! - [`audio`]: [`AudioDecoder`] to 48 kHz mono, [`AudioEncoder`] from it (Opus through libopus,
//!   G.711 by hand, G.722 through FFmpeg).
//! - [`g711`]: G.711 sample coding, table-driven (used by the audio codecs, public for the SIP
//!   gateway).
//! - [`mixer`]: [`AudioMixer`], sums inputs with saturation, measures levels and picks the
//!   active speaker.
//!
//! Decoders face the network: malformed payloads are [`CodecError`]s, never panics.
//!
//! FFmpeg's own log (stderr, unstructured) is turned down to fatal messages for the whole
//! process on first use: every failure it would print also comes back as a [`CodecError`].

pub mod audio;
pub mod compose;
mod error;
mod ff;
pub mod g711;
pub mod mixer;
pub mod picture;
pub mod video;

pub use audio::{AudioDecoder, AudioEncoder, SAMPLE_RATE};
pub use compose::Compositor;
pub use error::CodecError;
pub use mixer::{AudioMixer, InputLevel, MixerConfig};
pub use picture::Picture;
pub use video::{EncoderSettings, VideoDecoder, VideoEncoder};

/// Results of this crate.
pub type Result<T, E = CodecError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    /// The mixer daemon moves codecs to its worker threads.
    #[test]
    fn values_are_send() {
        fn send<T: Send>() {}
        send::<crate::VideoDecoder>();
        send::<crate::VideoEncoder>();
        send::<crate::Compositor>();
        send::<crate::AudioDecoder>();
        send::<crate::AudioEncoder>();
        send::<crate::AudioMixer<String>>();
        send::<crate::Picture>();
        send::<crate::CodecError>();
    }
}
