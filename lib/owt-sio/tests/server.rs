//! The server over loopback with raw HTTP and WebSocket bytes: long-polling handshakes,
//! POST/GET and acks for Engine.IO 3 and 4, direct WebSocket sessions, refused namespaces and
//! connections, and hostile input (broken payloads, unmasked and oversized frames, unknown
//! sessions) that must close only the offending session.

use owt_sio::{Config, DisconnectReason, Handler, Server, Socket};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Acks `echo` events with their arguments; refuses connections while `refuse` is set.
#[derive(Default)]
struct Echo {
    refuse: Mutex<bool>,
    gone: Mutex<Vec<DisconnectReason>>,
}

struct EchoHandler(Arc<Echo>);

impl Handler for EchoHandler {
    fn allow_origin(&self, origin: Option<&str>) -> bool {
        origin != Some("https://evil.example")
    }
    fn connect(&self, _socket: &Socket) -> Result<(), String> {
        if *self.0.refuse.lock().unwrap() {
            Err("full".into())
        } else {
            Ok(())
        }
    }
    fn event(&self, socket: &Socket, name: &str, args: &[&str], ack: Option<u64>) {
        if let (Some(ack), "echo") = (ack, name) {
            socket.ack(ack, args).unwrap();
        }
        if name == "bye" {
            socket.disconnect();
        }
    }
    fn disconnect(&self, _socket: &Socket, reason: DisconnectReason) {
        self.0.gone.lock().unwrap().push(reason);
    }
}

fn start() -> (u16, Arc<Echo>) {
    start_with(Config { max_payload: 4096, ..Config::default() })
}

fn start_with(config: Config) -> (u16, Arc<Echo>) {
    let echo = Arc::new(Echo::default());
    let handler = EchoHandler(echo.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async move {
            let server = Server::new(config, handler);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                tokio::spawn(server.clone().serve(tcp));
            }
        });
    });
    (rx.recv().unwrap(), echo)
}

/// One request on a fresh connection: (status, body).
fn http(port: u16, method: &str, query: &str, body: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "{method} /socket.io/?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = tcp.read_to_string(&mut response);
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn sid_of(open: &str) -> String {
    let start = open.find("\"sid\":\"").unwrap() + 7;
    open[start..start + 20].to_owned()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn eio4_long_polling_handshake_connect_event_and_ack() {
    let (port, echo) = start();
    let (status, open) = http(port, "GET", "EIO=4&transport=polling", "");
    assert_eq!(status, 200);
    assert!(open.starts_with("0{\"sid\":\"") && open.contains("\"upgrades\":[\"websocket\"]"), "{open}");
    assert!(open.contains("\"maxPayload\":4096"), "{open}");
    let q = format!("EIO=4&transport=polling&sid={}", sid_of(&open));
    assert_eq!(http(port, "POST", &q, "40"), (200, "ok".into()));
    assert_eq!(http(port, "GET", &q, ""), (200, format!("40{{\"sid\":\"{}\"}}", sid_of(&open))));
    assert_eq!(http(port, "POST", &q, "427[\"echo\",{\"a\":\"é\"}]\u{1e}3"), (200, "ok".into()));
    assert_eq!(http(port, "GET", &q, ""), (200, "437[{\"a\":\"é\"}]".into()));
    // The client leaves: the handler hears of it.
    assert_eq!(http(port, "POST", &q, "41"), (200, "ok".into()));
    wait_for("disconnect", || echo.gone.lock().unwrap().as_slice() == [DisconnectReason::ClientDisconnect]);
}

#[test]
fn eio3_long_polling_joins_at_once_and_answers_client_pings() {
    let (port, _) = start();
    let (status, body) = http(port, "GET", "EIO=3&transport=polling", "");
    assert_eq!(status, 200);
    let (length, rest) = body.split_once(':').unwrap();
    let open_len: usize = length.parse().unwrap();
    assert!(!rest.contains("maxPayload"));
    assert_eq!(&rest[open_len..], "2:40", "{body}");
    let q = format!("EIO=3&transport=polling&sid={}", sid_of(rest));
    assert_eq!(http(port, "POST", &q, "1:216:422[\"echo\",\"😀\"]"), (200, "ok".into()));
    assert_eq!(http(port, "GET", &q, ""), (200, "1:39:432[\"😀\"]".into()));
    // A payload whose length is wrong closes the session.
    assert_eq!(http(port, "POST", &q, "9:2").0, 400);
    assert_eq!(http(port, "GET", &q, "").0, 400);
}

#[test]
fn hostile_requests_get_errors() {
    let (port, echo) = start();
    assert_eq!(http(port, "GET", "EIO=9&transport=polling", "").0, 400);
    assert_eq!(http(port, "GET", "EIO=4&transport=carrier-pigeon", "").0, 400);
    assert_eq!(http(port, "POST", "EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA", "40").0, 400);
    let (_, open) = http(port, "GET", "EIO=4&transport=polling", "");
    let q = format!("EIO=4&transport=polling&sid={}", sid_of(&open));
    // Over max_payload: refused, the session is closed.
    assert_eq!(http(port, "POST", &q, &"4".repeat(5000)).0, 413);
    assert_eq!(http(port, "GET", &q, "").0, 400);
    // Broken Socket.IO packets close their session only.
    let (_, open) = http(port, "GET", "EIO=4&transport=polling", "");
    let q = format!("EIO=4&transport=polling&sid={}", sid_of(&open));
    http(port, "POST", &q, "40");
    http(port, "GET", &q, "");
    assert_eq!(http(port, "POST", &q, "42[\"echo\"").0, 400);
    wait_for("parse error", || echo.gone.lock().unwrap().as_slice() == [DisconnectReason::ParseError]);
    // Not Socket.IO: 405; a foreign origin: 403.
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 405"), "{text}");
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.write_all(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nOrigin: https://evil.example\r\n\r\n").unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
}

/// A WebSocket client speaking raw frames.
struct Ws(TcpStream);

impl Ws {
    fn connect(port: u16, query: &str) -> Ws {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let request = format!(
            "GET /socket.io/?{query} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        Ws(tcp)
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.0.write_all(bytes);
    }

    fn send(&mut self, text: &str) {
        let mut frame = vec![0x81];
        let len = text.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        frame.extend_from_slice(&[1, 2, 3, 4]);
        frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ [1, 2, 3, 4][i & 3]));
        self.send_raw(&frame);
    }

    /// Fills `bytes`; false at end of stream or reset. Panics when nothing comes for 10 s.
    fn read(&mut self, bytes: &mut [u8]) -> bool {
        match self.0.read_exact(bytes) {
            Ok(()) => true,
            Err(err) if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                panic!("nothing from the server within 10 s")
            }
            Err(_) => false,
        }
    }

    /// The next frame: (opcode, payload); None when the connection closed.
    fn recv(&mut self) -> Option<(u8, String)> {
        let mut head = [0u8; 2];
        if !self.read(&mut head) {
            return None;
        }
        let len = match head[1] & 0x7F {
            126 => {
                let mut ext = [0u8; 2];
                if !self.read(&mut ext) {
                    return None;
                }
                u16::from_be_bytes(ext) as usize
            }
            127 => panic!("unexpected huge frame"),
            len => len as usize,
        };
        let mut payload = vec![0u8; len];
        if !self.read(&mut payload) {
            return None;
        }
        Some((head[0] & 0x0F, String::from_utf8_lossy(&payload).into_owned()))
    }

    fn recv_text(&mut self) -> String {
        let (opcode, text) = self.recv().expect("a frame");
        assert_eq!(opcode, 1, "{text}");
        text
    }

    /// True when the server closed the connection (close frame, then end of stream).
    fn closed(&mut self) -> bool {
        loop {
            match self.recv() {
                None => return true,
                Some((8, _)) => {}
                Some((_, text)) => panic!("unexpected frame {text}"),
            }
        }
    }
}

#[test]
fn eio4_websocket_session_with_events_and_server_disconnect() {
    let (port, echo) = start();
    let mut ws = Ws::connect(port, "EIO=4&transport=websocket");
    let open = ws.recv_text();
    assert!(open.starts_with("0{") && open.contains("\"upgrades\":[]"), "{open}");
    ws.send("40");
    assert_eq!(ws.recv_text(), format!("40{{\"sid\":\"{}\"}}", sid_of(&open)));
    ws.send(&format!("4212[\"echo\",\"{}\"]", "x".repeat(300)));
    assert_eq!(ws.recv_text(), format!("4312[\"{}\"]", "x".repeat(300)));
    // An escaped event name.
    ws.send("4213[\"\\u0065cho\",2]");
    assert_eq!(ws.recv_text(), "4313[2]");
    // Refused namespace, WebSocket ping.
    ws.send("40/admin,");
    assert_eq!(ws.recv_text(), "44/admin,{\"message\":\"Invalid namespace\"}");
    ws.send_raw(&[0x89, 0x82, 0, 0, 0, 0, b'h', b'i']);
    assert_eq!(ws.recv(), Some((0xA, "hi".into())));
    ws.send("42[\"bye\"]");
    assert_eq!(ws.recv_text(), "41");
    assert!(ws.closed());
    wait_for("disconnect", || echo.gone.lock().unwrap().as_slice() == [DisconnectReason::ServerDisconnect]);
}

#[test]
fn refused_connections_get_a_connect_error_in_the_clients_format() {
    let (port, echo) = start();
    *echo.refuse.lock().unwrap() = true;
    let mut ws = Ws::connect(port, "EIO=4&transport=websocket");
    ws.recv_text();
    ws.send("40");
    assert_eq!(ws.recv_text(), "44{\"message\":\"full\"}");
    let mut ws = Ws::connect(port, "EIO=3&transport=websocket");
    ws.recv_text();
    assert_eq!(ws.recv_text(), "44\"full\"");
    // Refused clients were never connected: no disconnect either.
    assert!(echo.gone.lock().unwrap().is_empty());
}

#[test]
fn hostile_websocket_frames_close_only_their_connection() {
    let (port, echo) = start();
    let mut good = Ws::connect(port, "EIO=4&transport=websocket");
    good.recv_text();
    good.send("40");
    good.recv_text();
    let hostile: [&[u8]; 4] = [
        // Unmasked.
        &[0x81, 0x02, b'4', b'0'],
        // Over max_payload (4096).
        &[0x81, 0xFE, 0x20, 0x00, 1, 2, 3, 4],
        // Reserved bit (no compression was negotiated).
        &[0xC1, 0x82, 0, 0, 0, 0, b'4', b'0'],
        // Not UTF-8.
        &[0x81, 0x82, 0, 0, 0, 0, 0xFF, 0xFE],
    ];
    for bytes in hostile {
        let mut bad = Ws::connect(port, "EIO=4&transport=websocket");
        bad.recv_text();
        bad.send_raw(bytes);
        assert!(bad.closed(), "{bytes:?}");
    }
    for text in ["9", "4garbage", "42[1,2]", "42{\"not\":\"an array\"}", "42[\"owt-message\""] {
        let mut bad = Ws::connect(port, "EIO=4&transport=websocket");
        bad.recv_text();
        bad.send("40");
        bad.recv_text();
        bad.send(text);
        assert!(bad.closed(), "{text}");
    }
    wait_for("five parse errors", || echo.gone.lock().unwrap().len() == 5);
    assert!(echo.gone.lock().unwrap().iter().all(|r| *r == DisconnectReason::ParseError));
    good.send("421[\"echo\",1]");
    assert_eq!(good.recv_text(), "431[1]");
}

#[test]
fn clients_that_never_join_are_closed_after_two_heartbeats() {
    let fast =
        Config { ping_interval: Duration::from_millis(50), ping_timeout: Duration::from_secs(5), ..Config::default() };
    let (port, echo) = start_with(fast);
    let mut idle = Ws::connect(port, "EIO=4&transport=websocket");
    idle.recv_text();
    // It answers pings but never sends CONNECT: closed at the second heartbeat.
    let mut pings = 0;
    loop {
        match idle.recv() {
            Some((1, ping)) if ping == "2" => {
                pings += 1;
                idle.send("3");
            }
            Some((8, _)) | None => break,
            Some(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(pings, 1);
    // A joined client answering pings stays.
    let mut joined = Ws::connect(port, "EIO=4&transport=websocket");
    joined.recv_text();
    joined.send("40");
    joined.recv_text();
    for _ in 0..4 {
        assert_eq!(joined.recv_text(), "2");
        joined.send("3");
    }
    joined.send("421[\"echo\",\"still\"]");
    loop {
        match joined.recv_text().as_str() {
            "2" => joined.send("3"),
            ack => break assert_eq!(ack, "431[\"still\"]"),
        }
    }
    assert!(echo.gone.lock().unwrap().is_empty());
}
