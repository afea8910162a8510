//! The reference peer server's protocol (spec/owt-compat.md §5) with npm socket.io clients of
//! every major version: login, relay both ways, offline target, second login, unauthenticated
//! senders, shutdown notice, 405, origins, TLS, metrics, reload.

use crate::support::*;
use serde_json::json;
use std::time::Duration;

/// Two users on one client version exchange owt-message both ways; a third gets '2201'
/// for a user who is not online.
fn relay_with(version: u8, transports: &[&str]) {
    let peer = Peer::start("", "");
    let mut d = Driver::start();
    let url = peer.url();
    for (id, token) in [("alice", "alice"), ("bob", "bob"), ("carol", "carol")] {
        d.connect_with(id, json!({ "url": url, "version": version, "transports": transports }));
        d.expect(|v| v["id"] == id && v["type"] == "connect", "connect");
        let ack = d.call(id, "authentication", json!([{ "token": token }]));
        assert_eq!(ack, json!([{ "uid": token }]), "v{version}");
        assert_eq!(d.event(id, "server-authenticated"), json!([{ "uid": token }]));
    }
    let offer = r#"{"type":"chat-signal","connectionId":"c1","data":{"type":"offer","sdp":"v=0\r\n\"q\""}}"#;
    assert_eq!(d.call("alice", "owt-message", json!([{ "to": "bob", "data": offer }])), json!([]));
    assert_eq!(d.event("bob", "owt-message"), json!([{ "from": "alice", "data": offer }]));
    assert_eq!(d.call("bob", "owt-message", json!([{ "to": "alice", "data": "answer" }])), json!([]));
    assert_eq!(d.event("alice", "owt-message"), json!([{ "from": "bob", "data": "answer" }]));
    assert_eq!(d.call("carol", "owt-message", json!([{ "to": "dave", "data": "x" }])), json!(["2201"]));
    // Order is kept for a burst from one sender.
    for i in 0..20 {
        d.emit("alice", "owt-message", json!([{ "to": "bob", "data": format!("m{i}") }]));
    }
    for i in 0..20 {
        assert_eq!(d.event("bob", "owt-message")[0]["data"], format!("m{i}"));
    }
    // Gone offline: '2201'.
    d.close("bob");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(d.call("alice", "owt-message", json!([{ "to": "bob", "data": "x" }])), json!(["2201"]));
}

#[test]
fn relay_socket_io_client_4() {
    relay_with(4, &["websocket"]);
}

#[test]
fn relay_socket_io_client_3() {
    relay_with(3, &["websocket"]);
}

#[test]
fn relay_socket_io_client_2_eio3() {
    relay_with(2, &["websocket"]);
}

#[test]
fn relay_over_long_polling_eio3_and_eio4() {
    relay_with(2, &["polling"]);
    relay_with(4, &["polling"]);
}

#[test]
fn mixed_versions_talk_to_each_other() {
    let peer = Peer::start("", "");
    let mut d = Driver::start();
    let url = peer.url();
    d.login("v2", &url, 2, "old-client");
    d.login("v3", &url, 3, "mid-client");
    d.login("v4", &url, 4, "new-client");
    assert_eq!(d.call("v2", "owt-message", json!([{ "to": "new-client", "data": "a" }])), json!([]));
    assert_eq!(d.event("v4", "owt-message"), json!([{ "from": "old-client", "data": "a" }]));
    assert_eq!(d.call("v4", "owt-message", json!([{ "to": "mid-client", "data": "b" }])), json!([]));
    assert_eq!(d.event("v3", "owt-message"), json!([{ "from": "new-client", "data": "b" }]));
    assert_eq!(d.call("v3", "owt-message", json!([{ "to": "old-client", "data": "c" }])), json!([]));
    assert_eq!(d.event("v2", "owt-message"), json!([{ "from": "mid-client", "data": "c" }]));
}

#[test]
fn anonymous_login_gets_a_generated_uid() {
    let peer = Peer::start("", "");
    let mut d = Driver::start();
    d.connect("a", &peer.url(), 4);
    let ack = d.call("a", "authentication", json!([{ "token": "" }]));
    let uid = ack[0]["uid"].as_str().expect("uid").to_string();
    let (hex, domain) = uid.split_once('@').expect("@");
    assert_eq!(domain, "anonymous");
    assert!(hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()), "{uid}");
    d.connect("b", &peer.url(), 2);
    let other = d.call("b", "authentication", json!([{}]))[0]["uid"].as_str().expect("uid").to_string();
    assert!(other.ends_with("@anonymous") && other != uid);
    // Anonymous users are reachable like any other.
    assert_eq!(d.call("b", "owt-message", json!([{ "to": uid, "data": "hi" }])), json!([]));
    assert_eq!(d.event("a", "owt-message")[0]["from"], other.as_str());
}

#[test]
fn second_login_disconnects_the_first_with_server_disconnect() {
    let peer = Peer::start("", "");
    let mut d = Driver::start();
    let url = peer.url();
    d.login("first", &url, 2, "alice");
    d.login("carol", &url, 4, "carol");
    d.login("second", &url, 4, "alice");
    assert_eq!(d.event("first", "server-disconnect"), json!([]));
    assert_eq!(d.disconnected("first"), "io server disconnect");
    // Messages to alice now reach the second connection only.
    assert_eq!(d.call("carol", "owt-message", json!([{ "to": "alice", "data": "x" }])), json!([]));
    assert_eq!(d.event("second", "owt-message"), json!([{ "from": "carol", "data": "x" }]));
    d.expect_none(
        Duration::from_millis(300),
        |v| v["id"] == "first" && v["event"] == "owt-message",
        "relay to the old connection",
    );
    // A reconnection after a plain disconnect takes the uid over without any notice.
    d.close("second");
    std::thread::sleep(Duration::from_millis(200));
    d.login("third", &url, 3, "alice");
    assert_eq!(d.call("carol", "owt-message", json!([{ "to": "alice", "data": "y" }])), json!([]));
    assert_eq!(d.event("third", "owt-message")[0]["data"], "y");
    peer.wait_log("user logged in again");
}

#[test]
fn unauthenticated_owt_message_gets_2120_and_is_disconnected() {
    let peer = Peer::start("", "");
    let mut d = Driver::start();
    d.login("bob", &peer.url(), 4, "bob");
    for (id, version) in [("anon4", 4), ("anon2", 2)] {
        d.connect(id, &peer.url(), version);
        // As the reference server: the number 2120, then a server-side disconnect.
        assert_eq!(d.call(id, "owt-message", json!([{ "to": "bob", "data": "x" }])), json!([2120]));
        assert_eq!(d.disconnected(id), "io server disconnect");
    }
    d.expect_none(Duration::from_millis(300), |v| v["id"] == "bob" && v["event"] == "owt-message", "relay to bob");
}

#[test]
fn sigterm_sends_server_disconnect_to_every_client_and_exits_0() {
    let mut peer = Peer::start("", "");
    let mut d = Driver::start();
    let url = peer.url();
    d.login("a", &url, 4, "alice");
    d.login("b", &url, 2, "bob");
    d.connect("c", &url, 3);
    d.connect_with("p", json!({ "url": url, "version": 4, "transports": ["polling"] }));
    d.expect(|v| v["id"] == "p" && v["type"] == "connect", "polling connect");
    let status = peer.terminate();
    assert!(status.success(), "exit status {status}:\n{}", peer.log());
    for id in ["a", "b", "c", "p"] {
        assert_eq!(d.event(id, "server-disconnect"), json!([]), "{id}");
        assert_eq!(d.disconnected(id), "io server disconnect", "{id}");
    }
    assert!(peer.log().contains("sent server-disconnect to 4 clients"), "{}", peer.log());
}

#[test]
fn plain_http_gets_405() {
    let peer = Peer::start("", "");
    for request in [
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ] {
        let (status, headers, body) = http(peer.port, request);
        assert_eq!(status, 405, "{request}");
        assert_eq!(body, "OWT signaling server. Please connect it with Socket.IO.");
        assert_eq!(header(&headers, "strict-transport-security"), Some("max-age=31536000"));
    }
    // A Socket.IO handshake on the same port works.
    let (status, _, body) =
        http(peer.port, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    assert!(body.starts_with("0{\"sid\":"), "{body}");
}

#[test]
fn origins_outside_cors_origins_are_refused() {
    let peer = Peer::start(r#"cors_origins = ["https://app.example"]"#, "");
    let handshake = |origin: &str| {
        let origin = if origin.is_empty() { String::new() } else { format!("Origin: {origin}\r\n") };
        http(
            peer.port,
            &format!(
                "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n{origin}Connection: close\r\n\r\n"
            ),
        )
    };
    let (status, headers, _) = handshake("https://app.example");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("https://app.example"));
    assert_eq!(header(&headers, "access-control-allow-credentials"), Some("true"));
    assert_eq!(handshake("https://evil.example").0, 403);
    // Native clients send no Origin.
    let (status, headers, _) = handshake("");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
    let (status, headers, _) = http(
        peer.port,
        "OPTIONS /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n\
         Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 204);
    assert_eq!(header(&headers, "access-control-allow-headers"), Some("content-type"));
    // WebSocket clients from a foreign origin are refused too.
    let mut d = Driver::start();
    d.connect_with(
        "evil",
        json!({ "url": peer.url(), "version": 4, "extraHeaders": { "Origin": "https://evil.example" } }),
    );
    d.expect(|v| v["id"] == "evil" && v["type"] == "connect_error", "connect_error");
    d.connect_with(
        "good",
        json!({ "url": peer.url(), "version": 4, "extraHeaders": { "Origin": "https://app.example" } }),
    );
    d.expect(|v| v["id"] == "good" && v["type"] == "connect", "connect");
}

#[test]
fn metrics_endpoint_counts_users_and_messages() {
    let metrics = free_port();
    let peer = Peer::start("", &format!("[metrics]\nport = {metrics}\n"));
    let mut d = Driver::start();
    d.login("a", &peer.url(), 4, "alice");
    d.login("b", &peer.url(), 4, "bob");
    d.connect("c", &peer.url(), 4);
    assert_eq!(d.call("a", "owt-message", json!([{ "to": "bob", "data": "1" }])), json!([]));
    assert_eq!(d.call("b", "owt-message", json!([{ "to": "alice", "data": "2" }])), json!([]));
    assert_eq!(d.call("b", "owt-message", json!([{ "to": "nobody", "data": "3" }])), json!(["2201"]));
    assert_eq!(metric(metrics, "owt_peer_users"), 2);
    assert_eq!(metric(metrics, "owt_peer_connections"), 3);
    assert_eq!(metric(metrics, "owt_peer_messages_relayed_total"), 2);
    assert_eq!(metric(metrics, "owt_peer_messages_refused_total{reason=\"unreachable\"}"), 1);
    let (status, _, _) = http(metrics, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 404);
}

#[test]
fn clients_that_never_authenticate_are_disconnected() {
    let peer = Peer::start("login_timeout = 1", "");
    let mut d = Driver::start();
    d.connect("idle", &peer.url(), 4);
    d.login("busy", &peer.url(), 4, "busy");
    let line = d
        .expect_within(Duration::from_secs(5), |v| v["id"] == "idle" && v["type"] == "disconnect")
        .expect("idle client disconnected");
    assert_eq!(line["reason"], "io server disconnect");
    d.expect_none(
        Duration::from_millis(1500),
        |v| v["id"] == "busy" && v["type"] == "disconnect",
        "disconnect of busy",
    );
}

#[test]
fn max_clients_refuses_further_connections_with_2102() {
    let peer = Peer::start("max_clients = 2", "");
    let mut d = Driver::start();
    d.login("a", &peer.url(), 4, "a");
    d.login("b", &peer.url(), 4, "b");
    d.connect_with("c", json!({ "url": peer.url(), "version": 4 }));
    let line = d.expect(|v| v["id"] == "c" && v["type"] == "connect_error", "connect_error");
    assert_eq!(line["message"], "2102");
    d.connect_with("c2", json!({ "url": peer.url(), "version": 2 }));
    let line = d.expect(|v| v["id"] == "c2" && v["type"] == "error", "error (2.x)");
    assert_eq!(line["message"], "2102");
    // Room again once one leaves.
    d.close("a");
    std::thread::sleep(Duration::from_millis(300));
    d.login("d", &peer.url(), 4, "d");
}

/// A self-signed certificate and key in `dir` (certificate.pem, key.pem).
fn self_signed(dir: &std::path::Path) {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509Builder, X509NameBuilder};
    let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "localhost").expect("cn");
    let name = name.build();
    let mut cert = X509Builder::new().expect("x509");
    cert.set_version(2).expect("version");
    cert.set_subject_name(&name).expect("subject");
    cert.set_issuer_name(&name).expect("issuer");
    cert.set_pubkey(&key).expect("pubkey");
    cert.set_not_before(&Asn1Time::days_from_now(0).expect("time")).expect("not before");
    cert.set_not_after(&Asn1Time::days_from_now(1).expect("time")).expect("not after");
    cert.sign(&key, MessageDigest::sha256()).expect("sign");
    std::fs::write(dir.join("certificate.pem"), cert.build().to_pem().expect("pem")).expect("write cert");
    std::fs::write(dir.join("key.pem"), key.private_key_to_pem_pkcs8().expect("pem")).expect("write key");
}

#[test]
fn tls_listener_serves_socket_io_with_the_configured_certificate() {
    let certs = tempfile::tempdir().expect("tempdir");
    self_signed(certs.path());
    let (plain, secure) = (free_port(), free_port());
    let keys = format!(
        "ssl = true\nssl_port = {secure}\nkeystorePath = \"{}\"\nkeyPath = \"{}\"\n",
        certs.path().join("certificate.pem").display(),
        certs.path().join("key.pem").display()
    );
    let peer = Peer::start_on(plain, &keys, "", secure);
    let mut d = Driver::start();
    for (id, version, token) in [("s4", 4, "secure4"), ("s2", 2, "secure2")] {
        d.connect_with(
            id,
            json!({ "url": format!("https://127.0.0.1:{secure}"), "version": version, "insecure": true }),
        );
        d.expect(|v| v["id"] == id && v["type"] == "connect", "TLS connect");
        assert_eq!(d.call(id, "authentication", json!([{ "token": token }])), json!([{ "uid": token }]));
    }
    // Users on the TLS and the plain listener reach each other.
    d.login("p", &format!("http://127.0.0.1:{plain}"), 4, "plain");
    assert_eq!(d.call("s2", "owt-message", json!([{ "to": "plain", "data": "over tls" }])), json!([]));
    assert_eq!(d.event("p", "owt-message"), json!([{ "from": "secure2", "data": "over tls" }]));
    assert_eq!(d.call("p", "owt-message", json!([{ "to": "secure4", "data": "back" }])), json!([]));
    assert_eq!(d.event("s4", "owt-message")[0]["data"], "back");
    // TLS older than 1.2 is refused.
    let mut old = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client()).expect("connector");
    old.set_verify(openssl::ssl::SslVerifyMode::NONE);
    old.set_security_level(0);
    old.set_min_proto_version(Some(openssl::ssl::SslVersion::TLS1)).expect("min");
    old.set_max_proto_version(Some(openssl::ssl::SslVersion::TLS1_1)).expect("max");
    let tcp = std::net::TcpStream::connect(("127.0.0.1", secure)).expect("connect");
    assert!(old.build().connect("localhost", tcp).is_err(), "a TLS 1.1 handshake succeeded");
    drop(peer);
}

#[test]
fn tls_with_a_missing_certificate_fails_to_start_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    Peer::write_config(dir.path(), port, "ssl = true\nssl_port = 1\nkeystorePath = \"/nonexistent/cert.pem\"\n", "");
    let output = std::process::Command::new(program("owt-peer"))
        .arg("--config-dir")
        .arg(dir.path())
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("run owt-peer");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/cert.pem"), "{stderr}");
}

#[test]
fn sighup_reloads_origins_and_refuses_listener_changes() {
    let peer = Peer::start(r#"cors_origins = ["https://old.example"]"#, "");
    let handshake = |origin: &str| {
        http(
            peer.port,
            &format!(
                "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\nConnection: close\r\n\r\n"
            ),
        )
        .0
    };
    assert_eq!(handshake("https://new.example"), 403);
    Peer::write_config(peer.dir.path(), peer.port, r#"cors_origins = ["https://new.example"]"#, "");
    peer.signal("HUP");
    peer.wait_log("configuration reloaded");
    assert_eq!(handshake("https://new.example"), 200);
    assert_eq!(handshake("https://old.example"), 403);
    Peer::write_config(peer.dir.path(), free_port(), "", "");
    peer.signal("HUP");
    peer.wait_log("changing peer.port needs a restart");
    assert_eq!(handshake("https://new.example"), 200);
}
