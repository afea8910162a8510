//! The daemon service of owt-mixer: a tokio runtime, the media link's PUB socket where views
//! are published, the bus connection to the portal (registration, heartbeats with the CPU
//! load) with the views as request handler (lib/owt-proto/src/mixer.rs), and the task that
//! sends the mixer's events to the portal.

use crate::view::{ViewHandle, ViewSpec};
use owt_bus::client::BoxFuture;
use owt_bus::load::CpuLoad;
use owt_bus::media::MediaPublisher;
use owt_bus::message::codes;
use owt_bus::{BusClient, ClientOptions, ClientState, Handler, RemoteError};
use owt_config::{MixerConfig, WorkerConfig};
use owt_proto::mixer::{methods, InitView, SetInputs, ViewRequest};
use owt_proto::webrtc::TrackRequest;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Views one mixer renders at most.
const MAX_VIEWS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Bus(#[from] owt_bus::BusError),
}

fn bad_params(method: &str, err: impl std::fmt::Display) -> RemoteError {
    RemoteError::new(codes::BAD_PARAMS, format!("{method}: {err}"))
}

fn failed(message: impl Into<String>) -> RemoteError {
    RemoteError::new(codes::FAILED, message.into())
}

fn parse<T: DeserializeOwned>(method: &str, params: Value) -> Result<T, RemoteError> {
    serde_json::from_value(params).map_err(|err| bad_params(method, err))
}

/// The views of this mixer, by view id.
struct Views {
    media: MediaPublisher,
    events: mpsc::UnboundedSender<(String, Value)>,
    views: Mutex<HashMap<String, ViewHandle>>,
}

impl Views {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ViewHandle>> {
        self.views.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn request(&self, method: &str, params: Value) -> Result<Value, RemoteError> {
        match method {
            methods::INIT_VIEW => {
                let init: InitView = parse(method, params)?;
                if let Some(view) = self.lock().get(&init.view_id) {
                    return Ok(json!(view.outputs()));
                }
                if self.lock().len() >= MAX_VIEWS {
                    return Err(failed(format!("this mixer renders {MAX_VIEWS} views already")));
                }
                let spec = ViewSpec::from_init(&init).map_err(|err| bad_params(method, err))?;
                let view = ViewHandle::start(spec, self.media.clone(), self.events.clone()).map_err(failed)?;
                let outputs = view.outputs();
                tracing::info!("view {} started ({})", init.view_id, view.describe());
                self.lock().insert(init.view_id, view);
                Ok(json!(outputs))
            }
            methods::SET_INPUTS => {
                let request: SetInputs = parse(method, params)?;
                let views = self.lock();
                let view = views.get(&request.view_id).ok_or_else(|| failed(format!("no view {}", request.view_id)))?;
                view.set_inputs(request).map_err(|err| bad_params(method, err))?;
                Ok(json!({}))
            }
            methods::CLOSE_VIEW => {
                let request: ViewRequest = parse(method, params)?;
                let view = self.lock().remove(&request.view_id);
                match view {
                    Some(view) => {
                        view.stop();
                        tracing::info!("view {} closed", request.view_id);
                        Ok(json!({}))
                    }
                    None => Err(failed(format!("no view {}", request.view_id))),
                }
            }
            "status" => Ok(json!({"kind": "mixer", "implemented": true, "views": self.lock().len()})),
            _ => Err(RemoteError::new(codes::UNKNOWN_METHOD, format!("unknown method {method}"))),
        }
    }
}

struct BusHandler {
    views: Arc<Views>,
    load: Mutex<CpuLoad>,
}

impl Handler for BusHandler {
    fn request(&self, method: &str, params: Value) -> BoxFuture<Result<Value, RemoteError>> {
        let answer = self.views.request(method, params);
        Box::pin(async move { answer })
    }

    fn event(&self, method: &str, params: Value) {
        if method != owt_proto::webrtc::methods::REQUEST_KEYFRAME {
            tracing::debug!("event {method} ignored");
            return;
        }
        let Ok(request) = serde_json::from_value::<TrackRequest>(params) else { return };
        for view in self.views.lock().values() {
            view.request_keyframe(&request.track_id);
        }
    }

    fn load(&self) -> f64 {
        self.load.lock().map(|mut load| load.sample()).unwrap_or(0.0)
    }
}

/// The running mixer.
pub struct MixerService {
    runtime: Option<tokio::runtime::Runtime>,
    client: Option<Arc<BusClient>>,
    views: Arc<Views>,
    endpoint: String,
    events: Option<tokio::task::JoinHandle<()>>,
    applied: MixerConfig,
}

impl MixerService {
    pub fn start(config: &MixerConfig) -> Result<MixerService, StartError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mixer")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let cluster = config.cluster();
        let bind = if cluster.media_endpoint.is_empty() { "tcp://127.0.0.1:0" } else { &cluster.media_endpoint };
        let media = runtime
            .block_on(MediaPublisher::bind(bind))
            .map_err(|err| StartError::Config(format!("cluster.media_endpoint: {err}")))?;
        let mut info = owt_bus::worker::worker_info(MixerConfig::KIND, cluster, config.capacity());
        info.media_endpoint = media.endpoint();
        tracing::info!(
            "joining the cluster at {} as {} (mixer); media link on {}",
            cluster.portal,
            info.node_id,
            info.media_endpoint
        );
        let (events_tx, mut events_rx) = mpsc::unbounded_channel::<(String, Value)>();
        let views = Arc::new(Views { media, events: events_tx, views: Mutex::new(HashMap::new()) });
        let handler = Arc::new(BusHandler { views: views.clone(), load: Mutex::new(CpuLoad::new()) });
        let client =
            Arc::new(BusClient::connect(&cluster.portal, info, handler, ClientOptions::default(), runtime.handle())?);
        let sender = client.clone();
        let events = runtime.spawn(async move {
            while let Some((method, params)) = events_rx.recv().await {
                if let Err(err) = sender.event(&method, params).await {
                    tracing::debug!("event {method} not sent to the portal: {err}");
                }
            }
        });
        let mut state = client.watch();
        let endpoint = cluster.portal.clone();
        let status_endpoint = endpoint.clone();
        let status_views = views.clone();
        runtime.spawn(async move {
            while state.changed().await.is_ok() {
                let current = *state.borrow_and_update();
                let count = status_views.lock().len();
                owt_daemon::notify(&[("STATUS", &status_line(current, &status_endpoint, count))]);
            }
        });
        Ok(MixerService {
            runtime: Some(runtime),
            client: Some(client),
            views,
            endpoint,
            events: Some(events),
            applied: config.clone(),
        })
    }
}

fn status_line(state: ClientState, endpoint: &str, views: usize) -> String {
    match state {
        ClientState::Registered => format!("registered with portal at {endpoint}; {views} views"),
        ClientState::Stopped => "stopped".to_string(),
        ClientState::Connecting | ClientState::Registering => format!("waiting for portal at {endpoint}"),
    }
}

impl owt_daemon::Service<MixerConfig> for MixerService {
    fn runtime(&self) -> Option<tokio::runtime::Handle> {
        self.runtime.as_ref().map(|r| r.handle().clone())
    }

    fn status(&self) -> String {
        let state = self.client.as_ref().map(|c| c.state()).unwrap_or(ClientState::Stopped);
        status_line(state, &self.endpoint, self.views.lock().len())
    }

    fn reload(&mut self, config: &MixerConfig) -> Result<(), String> {
        if (config.cluster(), config.capacity()) != (self.applied.cluster(), self.applied.capacity()) {
            return Err("[cluster] and [capacity] take effect on restart".to_string());
        }
        Ok(())
    }

    fn stop(mut self) {
        for (_, view) in self.views.lock().drain() {
            view.stop();
        }
        if let Some(runtime) = self.runtime.take() {
            if let Some(events) = self.events.take() {
                // Awaited, so the task and its share of the bus client are gone before stop().
                events.abort();
                let _ = runtime.block_on(events);
            }
            if let Some(client) = self.client.take() {
                match Arc::try_unwrap(client) {
                    Ok(client) => runtime.block_on(client.stop()),
                    Err(_) => tracing::warn!("bus client still shared at stop"),
                }
            }
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}
