//! Plain values shared by every owt-rs crate: object ids in OWT's 24-hex form, the OWT room
//! schema (spec/owt-compat.md §3) with its defaults and validation, and the default bitrate
//! table (user guide Table 3-3). No I/O lives here.

pub mod id;
pub mod room;

pub use id::ObjectId;
