//! owt-media: sans-IO media logic of owt-rs (DESIGN.md §3, §5). No sockets, no runtime, no
//! WebRTC types: time and packets come in as arguments, decisions go out as values, so
//! every rule here is tested deterministically.
//!
//! - [`rewrite`]: per-subscriber SSRC / sequence / timestamp rewriting, continuous across
//!   source switches and pauses.
//! - [`cache`]: a ring buffer of forwarded packets by sequence number, for answering NACKs,
//!   and the RTX packet that resends one.
//! - [`keyframe`]: the rate limit of keyframe requests (PLI/FIR) sent upstream.
//! - [`sessions`]: which m-line (mid) of a client transport belongs to which session, and
//!   when a session becomes ready.
//! - [`layout`]: mixed-view layouts: OWT's base and custom templates, the template for a
//!   number of inputs, region assignment, `video.layout` updates, pixel placement with
//!   letterbox/crop, and REST layout validation (groundwork for owt-mixer).
//! - [`meter`]: packet/byte counters with a bitrate over the last second.
//! - [`frames`]: RTP packets <-> whole frames of the media link (reassembly with loss and
//!   keyframe policy, packetization), over the payload formats of `rtc-rtp`.
//! - [`video_size`]: a video track's picture size from the first packet of a keyframe.
//! - [`video_facts`]: a track's measured size, frame rate and bitrate, when to report them,
//!   and the simulcast layer that best fits a subscriber's `parameters`.

pub mod cache;
pub mod frames;
pub mod keyframe;
pub mod layout;
pub mod meter;
pub mod rewrite;
pub mod rtp_keyframe;
pub mod sessions;
pub mod video_facts;
pub mod video_size;

pub use cache::{PacketCache, RetransmitBudget};
pub use frames::{AssembledFrame, AssemblerStats, FrameAssembler, FramePacketizer, PacketizeError, RtpOut};
pub use keyframe::KeyframeLimiter;
pub use meter::RateMeter;
pub use rewrite::{Original, Rewritten, StreamRewriter};
pub use sessions::{Role, SessionError, TransportSessions};
pub use video_facts::{choose_layer, VideoFacts, VideoFactsMeter, WantedVideo};
