//! owt-mixer: owt-rs audio and video processing node (MCU mixing, transcoding).
//!
//! Registers with the portal's bus as a `mixer` worker and renders the views the portal gives
//! it (lib/owt-proto/src/mixer.rs): every input's frames arrive over the media link, video is
//! decoded, composed on the view's layout and encoded, audio is decoded, mixed and encoded,
//! and the view's tracks are published on the mixer's media link for the webrtc nodes.
//! Transcoding is a view of one input on the whole frame in the format a subscriber asked for.
//! `service` is the daemon shell, `view` a view's threads and sockets, `render` the media
//! work of one view (owt-codec).

pub mod render;
pub mod service;
pub mod view;

use owt_config::MixerConfig;

/// Command line of owt-mixer.
#[derive(Debug, clap::Parser)]
#[command(
    name = "owt-mixer",
    version,
    about = "owt-rs audio and video processing node (MCU mixing, transcoding)",
    long_about = "owt-mixer: owt-rs audio and video processing node (MCU). Reads /etc/owt/mixer.toml (see owt.toml(5)); normally started by systemd as owt-mixer.service. It registers with the portal (see [cluster] in mixer.toml) and renders the rooms' views (mixed streams) the portal schedules on it: inputs arrive over the media link ([cluster] media_endpoint of each worker), video is composed on the view's layout, audio is mixed, and the results go back out on this mixer's media link. A stream subscribed in another video format is transcoded the same way, as a view of one input. When a mixer dies, the portal moves its views to another one."
)]
pub struct Cli {
    #[command(flatten)]
    pub daemon: owt_daemon::DaemonArgs,
}

/// Joins the cluster at `[cluster] portal` and binds the media link; returns at once
/// (registration follows in the background, retried while the portal is away).
pub fn start(config: &MixerConfig) -> Result<service::MixerService, service::StartError> {
    service::MixerService::start(config)
}
