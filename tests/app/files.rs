//! Static files of the page, the socket.io browser client, CORS, and paths that try to
//! leave the share directory.

use crate::support::*;

#[test]
fn static_files_are_served_with_their_content_types() {
    let server = TestServer::start();
    for (path, content_type, file) in [
        ("/", "text/html; charset=utf-8", "index.html"),
        ("/index.html", "text/html; charset=utf-8", "index.html"),
        ("/app.js", "application/javascript; charset=utf-8", "app.js"),
        ("/owt-client.js", "application/javascript; charset=utf-8", "owt-client.js"),
        ("/style.css", "text/css; charset=utf-8", "style.css"),
    ] {
        let reply = server.app("GET", path, None);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert_eq!(reply.header("content-type"), Some(content_type), "{path}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"), "{path}");
        assert_eq!(reply.body, std::fs::read(share_dir().join(file)).expect("read share file"), "{path}");
        assert_eq!(reply.header("content-security-policy").is_some(), file.ends_with(".html"), "{path}");
    }
    let page = server.app("GET", "/", None).text();
    for needed in ["/socket.io.js", "owt-client.js", "app.js", "style.css"] {
        assert!(page.contains(needed), "index.html loads {needed}");
    }

    let client = server.app("GET", "/socket.io.js", None);
    assert_eq!(client.status, 200);
    assert_eq!(client.header("content-type"), Some("application/javascript; charset=utf-8"));
    assert_eq!(client.body, std::fs::read(socketio_client()).expect("read socket.io client"));

    let head = server.app("HEAD", "/app.js", None);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD has no body");

    let missing = server.app("GET", "/nothing-here.js", None);
    assert_eq!(missing.status, 404);
}

#[test]
fn paths_leaving_the_share_directory_get_404() {
    let server = TestServer::start();
    // The repo's Cargo.toml is two levels above share/owt/app; tests/Cargo.toml three.
    for target in [
        "/../Cargo.toml",
        "/../../../Cargo.toml",
        "/%2e%2e/",
        "/%2e%2e/%2e%2e/%2e%2e/Cargo.toml",
        "/%2E%2E%2F%2E%2E%2F%2E%2E%2FCargo.toml",
        "/..%2f..%2f..%2fCargo.toml",
        "/..%5c..%5c..%5cCargo.toml",
        "//etc/passwd",
        "/%2fetc/passwd",
        "/index.html%00",
        "/index.html%00.css",
        "/%00",
        "/./index.html",
        "/vendor/../index.html",
        "/.gitignore",
        "/%zz",
    ] {
        let reply = raw_get(server.app_port, target);
        assert_eq!(reply.status, 404, "{target}: {}", reply.text());
        let body = reply.text();
        assert!(!body.contains("[package]") && !body.contains("root:"), "{target} leaked a file: {body}");
    }
    // A plain request sent the same way is served.
    assert_eq!(raw_get(server.app_port, "/index.html").status, 200);
}

#[test]
fn cors_preflight_and_other_methods() {
    let server = TestServer::start();
    let preflight = server.app("OPTIONS", "/tokens", None);
    assert_eq!(preflight.status, 200);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert_eq!(preflight.header("access-control-allow-methods"), Some("POST, GET, PUT, PATCH, OPTIONS, DELETE"));
    assert_eq!(preflight.header("access-control-allow-headers"), Some("origin, content-type"));
    assert_eq!(server.app("DELETE", "/app.js", None).status, 404);
    assert_eq!(server.app("POST", "/app.js", Some("{}")).status, 404);
    assert_eq!(server.app("GET", "/tokens", None).status, 404, "tokens are POST only");
}

#[test]
fn a_disabled_app_does_not_listen() {
    let server = TestServer::start_with("enabled = false\n");
    assert!(!wait_for_port(server.app_port, std::time::Duration::from_millis(300)));
    assert_eq!(server.rest("GET", "/v1/rooms", None).status, 200, "the REST API still works");
}
