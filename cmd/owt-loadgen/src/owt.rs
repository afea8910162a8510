//! The `owt` target: every client logs in to owt-portal over Socket.IO with its own token,
//! then publishes or subscribes exactly as the OWT JS SDK does (spec owt-compat.md §1.4,
//! §1.7-§1.10): one RTCPeerConnection per client, the client offers, `soac` carries the
//! offer, `progress` brings the answer and readiness.
//!
//! The Socket.IO client is a minimal one of our own (Engine.IO 4 over a WebSocket from
//! tokio-tungstenite, Socket.IO protocol v5: `40` connect, `42[event,data]` events, `42<id>`
//! requests answered by `43<id>` acks, pings answered). rust_socketio 0.6 was tried first:
//! against owt-portal its login ack was sometimes never delivered and sometimes delivered
//! without the "ok" argument, so its results could not be trusted.

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

const ACK: Duration = Duration::from_secs(15);

type Acks = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// A logged-in Socket.IO client.
pub struct Signaling {
    out: mpsc::UnboundedSender<Message>,
    acks: Acks,
    next: AtomicU64,
    progress: mpsc::UnboundedReceiver<Value>,
    reader: tokio::task::JoinHandle<()>,
}

/// How to get a token: `owtctl --config-dir DIR token create ROOM --user U --role presenter`.
#[derive(Clone)]
pub struct Tokens {
    pub owtctl: String,
    pub config_dir: Option<String>,
    pub room: String,
}

impl Tokens {
    pub async fn create(&self, user: &str) -> Result<String, String> {
        let this = self.clone();
        let user = user.to_string();
        tokio::task::spawn_blocking(move || {
            let mut cmd = std::process::Command::new(&this.owtctl);
            if let Some(dir) = &this.config_dir {
                cmd.arg("--config-dir").arg(dir);
            }
            let out = cmd
                .args(["token", "create", &this.room, "--user", &user, "--role", "presenter"])
                .output()
                .map_err(|e| format!("{}: {e}", this.owtctl))?;
            if !out.status.success() {
                return Err(format!("owtctl token create: {}", String::from_utf8_lossy(&out.stderr).trim()));
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// An OWT ack's arguments: `("ok", data)` -> data, `("error", msg)` -> Err(msg).
fn ack_result(event: &str, args: Value) -> Result<Value, String> {
    match args[0].as_str() {
        Some("ok") | Some("success") => Ok(args[1].clone()),
        Some("error") => Err(format!("{event}: {}", args[1])),
        _ => Err(format!("{event}: unexpected ack {args}")),
    }
}

impl Signaling {
    /// Connects to `url` (http://host:port), joins the default namespace and logs in.
    pub async fn login(url: &str, token: &str) -> Result<Signaling, String> {
        let ws_url =
            format!("{}/socket.io/?EIO=4&transport=websocket", url.trim_end_matches('/').replacen("http", "ws", 1));
        let (ws, _) = tokio::time::timeout(ACK, tokio_tungstenite::connect_async(ws_url.as_str()))
            .await
            .map_err(|_| format!("{ws_url}: connect timed out"))?
            .map_err(|e| format!("{ws_url}: {e}"))?;
        let (mut sink, mut stream) = ws.split();
        // Engine.IO open, then the Socket.IO connect of the default namespace.
        let mut connected = false;
        let handshake = async {
            while let Some(msg) = stream.next().await {
                let Ok(Message::Text(text)) = msg else { continue };
                let text = text.as_str();
                if text.starts_with('0') {
                    sink.send(Message::text("40")).await.map_err(|e| e.to_string())?;
                } else if text == "2" {
                    sink.send(Message::text("3")).await.map_err(|e| e.to_string())?;
                } else if text.starts_with("40") {
                    connected = true;
                    break;
                } else if text.starts_with("44") {
                    return Err(format!("connect refused: {text}"));
                }
            }
            Ok::<(), String>(())
        };
        tokio::time::timeout(ACK, handshake).await.map_err(|_| "socket.io handshake timed out".to_string())??;
        if !connected {
            return Err("socket.io closed during the handshake".into());
        }
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                if sink.send(msg).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let acks: Acks = Arc::default();
        let (progress_tx, progress) = mpsc::unbounded_channel();
        let reader = {
            let (acks, out) = (acks.clone(), out.clone());
            tokio::spawn(async move {
                while let Some(Ok(msg)) = stream.next().await {
                    let Message::Text(text) = msg else { continue };
                    let text = text.as_str();
                    if text == "2" {
                        let _ = out.send(Message::text("3"));
                    } else if let Some(rest) = text.strip_prefix("43") {
                        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                        let (id, body) = rest.split_at(digits);
                        let (Ok(id), Ok(args)) = (id.parse::<u64>(), serde_json::from_str::<Value>(body)) else {
                            continue;
                        };
                        if let Some(tx) = acks.lock().ok().and_then(|mut a| a.remove(&id)) {
                            let _ = tx.send(args);
                        }
                    } else if let Some(body) = text.strip_prefix("42") {
                        let Ok(Value::Array(args)) = serde_json::from_str::<Value>(body) else { continue };
                        if args.first().and_then(Value::as_str) == Some("progress") {
                            if let Some(data) = args.get(1) {
                                let _ = progress_tx.send(data.clone());
                            }
                        }
                    } else if text.starts_with("41") || text.starts_with('1') {
                        break;
                    }
                }
            })
        };
        let s = Signaling { out, acks, next: AtomicU64::new(1), progress, reader };
        // owt-portal (socketioxide 0.18) sends the namespace CONNECT packet before its connect
        // handler has registered the event handlers, so a login emitted right after `40{sid}`
        // is sometimes dropped unanswered. Repeat it (a late first ack still wins).
        let login =
            json!({"token": token, "userAgent": {"sdk": {"version": "5.1", "type": "JavaScript"}}, "protocol": "1.2"});
        let mut pending = Vec::new();
        for _ in 0..4 {
            pending.push(s.send_request("login", &login)?);
            let any = futures::future::select_ok(pending.iter_mut());
            match tokio::time::timeout(Duration::from_secs(3), any).await {
                Ok(Ok((args, _))) => return ack_result("login", args).map(|_| s),
                Ok(Err(_)) => return Err("login: socket closed".into()),
                Err(_) => {}
            }
        }
        Err("login: no ack after 4 tries".into())
    }

    /// Sends `42<id>[event, data]`; the receiver gets the ack's arguments.
    fn send_request(&self, event: &str, data: &Value) -> Result<oneshot::Receiver<Value>, String> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut acks) = self.acks.lock() {
            acks.insert(id, tx);
        }
        let packet = format!("42{id}{}", json!([event, data]));
        self.out.send(Message::text(packet)).map_err(|_| format!("{event}: socket closed"))?;
        Ok(rx)
    }

    /// emit with ack; `("ok", data)` -> data, `("error", msg)` -> Err(msg).
    pub async fn request(&mut self, event: &str, data: Value) -> Result<Value, String> {
        let rx = self.send_request(event, &data)?;
        let args = tokio::time::timeout(ACK, rx)
            .await
            .map_err(|_| format!("{event}: no ack within {ACK:?}"))?
            .map_err(|_| format!("{event}: socket closed"))?;
        ack_result(event, args)
    }

    /// The next `progress` notification matching `filter`.
    pub async fn progress(&mut self, what: &str, filter: impl Fn(&Value) -> bool) -> Result<Value, String> {
        let wait = async {
            while let Some(p) = self.progress.recv().await {
                if p["status"] == "error" {
                    return Err(format!("{what}: progress error {p}"));
                }
                if filter(&p) {
                    return Ok(p);
                }
            }
            Err(format!("{what}: signaling closed"))
        };
        tokio::time::timeout(ACK, wait).await.map_err(|_| format!("no {what} within {ACK:?}"))?
    }

    /// Sends the offer of a publish or subscribe, applies the answer, waits for the
    /// session's `ready`. `request` is the publish/subscribe request minus `transport`.
    pub async fn negotiate(
        &mut self,
        peer: &crate::peer::Peer,
        event: &str,
        request: Value,
        offer: String,
    ) -> Result<String, String> {
        let ack = self.request(event, request).await?;
        let (Some(id), Some(transport)) = (ack["id"].as_str(), ack["transportId"].as_str()) else {
            return Err(format!("{event}: ack without id/transportId: {ack}"));
        };
        let (id, transport) = (id.to_string(), transport.to_string());
        self.request("soac", json!({"id": transport, "signaling": {"type": "offer", "sdp": offer}})).await?;
        let answer = self
            .progress("answer", |p| {
                p["id"] == transport.as_str() && p["status"] == "soac" && p["data"]["type"] == "answer"
            })
            .await?;
        let sdp = answer["data"]["sdp"].as_str().ok_or("answer without sdp")?.to_string();
        peer.set_answer(sdp).await?;
        Ok(id)
    }

    /// Waits for `progress {sessionId: id, status: ready}`.
    pub async fn ready(&mut self, id: &str) -> Result<(), String> {
        self.progress("session ready", |p| p["sessionId"] == id && p["status"] == "ready").await.map(|_| ())
    }

    /// Logs out and closes the socket.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.request("logout", Value::Null)).await;
        let _ = self.out.send(Message::text("41"));
        self.reader.abort();
    }
}
