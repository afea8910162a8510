//! The `janus` target: Janus videoroom through its HTTP/JSON API. One Janus session holds
//! every handle; one thread long-polls the session's events and hands each to the handle
//! it names (`sender`). Publisher: attach, `joinandconfigure` with the offer, the `joined`
//! event carries the answer and the feed id. Subscriber: attach, `join` ptype subscriber
//! with the feed, Janus offers, the client answers with `start`.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(15);

pub struct Janus {
    base: String,
    session: u64,
    agent: ureq::Agent,
    handles: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Value>>>>,
    stop: Arc<AtomicBool>,
    tx: AtomicU64,
}

fn post(agent: &ureq::Agent, url: &str, body: Value) -> Result<Value, String> {
    let response = agent.post(url).send_json(body).map_err(|e| format!("POST {url}: {e}"))?;
    let value: Value = response.into_json().map_err(|e| format!("POST {url}: {e}"))?;
    if value["janus"] == "error" {
        return Err(format!("janus: {}", value["error"]));
    }
    Ok(value)
}

impl Janus {
    /// Creates a session at `base` (http://127.0.0.1:18088/janus) and starts its event poller.
    pub async fn connect(base: &str) -> Result<Arc<Janus>, String> {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(40)).build();
        let (b, a) = (base.to_string(), agent.clone());
        let created = tokio::task::spawn_blocking(move || post(&a, &b, json!({"janus": "create", "transaction": "c"})))
            .await
            .map_err(|e| e.to_string())??;
        let session = created["data"]["id"].as_u64().ok_or("create: no session id")?;
        let janus = Arc::new(Janus {
            base: base.to_string(),
            session,
            agent,
            handles: Arc::default(),
            stop: Arc::default(),
            tx: AtomicU64::new(1),
        });
        let (handles, stop, agent) = (janus.handles.clone(), janus.stop.clone(), janus.agent.clone());
        let url = format!("{base}/{session}");
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let events =
                    agent.get(&format!("{url}?maxev=50")).call().ok().and_then(|r| r.into_json::<Value>().ok());
                let events = match events {
                    Some(Value::Array(list)) => list,
                    Some(one) => vec![one],
                    None => {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                };
                for event in events {
                    let Some(sender) = event["sender"].as_u64() else { continue };
                    if let Some(tx) = handles.lock().ok().and_then(|h| h.get(&sender).cloned()) {
                        let _ = tx.send(event);
                    }
                }
            }
        });
        Ok(janus)
    }

    async fn post(&self, path: &str, mut body: Value) -> Result<Value, String> {
        body["transaction"] = json!(format!("t{}", self.tx.fetch_add(1, Ordering::Relaxed)));
        let url = format!("{}/{}{path}", self.base, self.session);
        let agent = self.agent.clone();
        tokio::task::spawn_blocking(move || post(&agent, &url, body)).await.map_err(|e| e.to_string())?
    }

    /// Attaches a videoroom handle; its events arrive on the returned receiver.
    pub async fn attach(&self) -> Result<Handle<'_>, String> {
        let r = self.post("", json!({"janus": "attach", "plugin": "janus.plugin.videoroom"})).await?;
        let id = r["data"]["id"].as_u64().ok_or("attach: no handle id")?;
        let (tx, events) = mpsc::unbounded_channel();
        if let Ok(mut h) = self.handles.lock() {
            h.insert(id, tx);
        }
        Ok(Handle { janus: self, id, events })
    }

    pub async fn destroy(&self) {
        let _ = self.post("", json!({"janus": "destroy"})).await;
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub struct Handle<'a> {
    janus: &'a Janus,
    pub id: u64,
    events: mpsc::UnboundedReceiver<Value>,
}

impl Handle<'_> {
    /// A plugin message; synchronous requests return their plugindata.data.
    pub async fn message(&self, body: Value, jsep: Option<Value>) -> Result<Value, String> {
        let mut msg = json!({"janus": "message", "body": body});
        if let Some(jsep) = jsep {
            msg["jsep"] = jsep;
        }
        let r = self.janus.post(&format!("/{}", self.id), msg).await?;
        let data = &r["plugindata"]["data"];
        if data["error"].is_string() {
            return Err(format!("videoroom: {}", data["error"]));
        }
        Ok(data.clone())
    }

    /// The next event of this handle matching `filter` (plugin errors fail).
    pub async fn event(&mut self, what: &str, filter: impl Fn(&Value) -> bool) -> Result<Value, String> {
        let wait = async {
            while let Some(e) = self.events.recv().await {
                if let Some(error) = e["plugindata"]["data"]["error"].as_str() {
                    return Err(format!("{what}: {error}"));
                }
                if filter(&e) {
                    return Ok(e);
                }
            }
            Err(format!("{what}: events closed"))
        };
        tokio::time::timeout(WAIT, wait).await.map_err(|_| format!("no {what} within {WAIT:?}"))?
    }

    /// Creates a room for `publishers` publishers, no bitrate cap.
    pub async fn create_room(&self, room: u64, publishers: u32) -> Result<(), String> {
        let data = self
            .message(
                json!({"request": "create", "room": room, "publishers": publishers.max(1), "bitrate": 0,
                       "fir_freq": 0, "videocodec": "vp8", "audiocodec": "opus", "notify_joining": false}),
                None,
            )
            .await?;
        if data["videoroom"] == "created" {
            Ok(())
        } else {
            Err(format!("create room: {data}"))
        }
    }
}
