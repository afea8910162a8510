//! The REST API's HTTP(S) listener on tiny_http: a few threads that read each request with a
//! body-size limit, hand it to [`crate::api::Api::handle`], and write the answer with the
//! headers OWT sends on every response (CORS, HSTS, nosniff).

use crate::api::{Api, ApiError, Body, Request};
use crate::PortalError;
use owt_config::PortalConfig;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tiny_http::{Header, Server};

pub struct RestServer {
    server: Arc<Server>,
    stopping: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    addr: SocketAddr,
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}

impl RestServer {
    pub fn start(config: &PortalConfig, api: Arc<Api>) -> Result<RestServer, PortalError> {
        let settings = &config.management_api;
        let ip: std::net::IpAddr = settings.ip_address.parse().map_err(|_| PortalError::Listen {
            addr: settings.ip_address.clone(),
            message: "not an IP address".into(),
        })?;
        let bind = SocketAddr::new(ip, settings.port);
        let server = if settings.ssl {
            let read = |path: std::path::PathBuf| {
                std::fs::read(&path).map_err(|e| PortalError::Certificate {
                    path: path.display().to_string(),
                    message: format!("{e} (create one with `owtctl cert generate`)"),
                })
            };
            let ssl = tiny_http::SslConfig {
                certificate: read(config.certificate_path())?,
                private_key: read(config.key_path())?,
            };
            Server::https(bind, ssl)
        } else {
            Server::http(bind)
        }
        .map_err(|e| PortalError::Listen { addr: bind.to_string(), message: e.to_string() })?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| PortalError::Listen { addr: bind.to_string(), message: "not an IP listener".into() })?;
        let server = Arc::new(server);
        let stopping = Arc::new(AtomicBool::new(false));
        let max_body = settings.max_body_bytes;
        let threads = (0..settings.threads)
            .map(|i| {
                let (server, stopping, api) = (server.clone(), stopping.clone(), api.clone());
                std::thread::Builder::new()
                    .name(format!("rest-{i}"))
                    .spawn(move || serve(&server, &stopping, &api, max_body))
                    .expect("spawn REST thread")
            })
            .collect();
        tracing::info!("REST API listening on {}://{addr}", if settings.ssl { "https" } else { "http" });
        Ok(RestServer { server, stopping, threads, addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Finishes the requests in progress and stops the listener.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        for _ in &self.threads {
            self.server.unblock();
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn serve(server: &Server, stopping: &AtomicBool, api: &Api, max_body: usize) {
    while !stopping.load(Ordering::SeqCst) {
        match server.recv_timeout(Duration::from_millis(500)) {
            Ok(Some(request)) => answer(request, api, max_body),
            Ok(None) => {}
            Err(err) => tracing::debug!("REST accept: {err}"),
        }
    }
}

fn answer(mut request: tiny_http::Request, api: &Api, max_body: usize) {
    let find = |name: &'static str| {
        request.headers().iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str().to_owned())
    };
    let authorization = find("Authorization");
    let content_type = find("Content-Type");
    let declared = find("Content-Length").and_then(|v| v.trim().parse::<u64>().ok());
    let mut body = Vec::new();
    let too_large = if declared.is_some_and(|len| len > max_body as u64) {
        true
    } else {
        let read = request.as_reader().take(max_body as u64 + 1).read_to_end(&mut body);
        match read {
            Ok(_) => body.len() > max_body,
            Err(err) => {
                tracing::debug!("REST body read: {err}");
                let response = ApiError::BadRequest("Failed to read request body".into()).into_response();
                return respond(request, response);
            }
        }
    };
    let url = request.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let method = request.method().as_str().to_owned();
    let response = if too_large {
        ApiError::TooLarge(max_body).into_response()
    } else {
        api.handle(&Request {
            method: &method,
            path,
            query,
            authorization: authorization.as_deref(),
            content_type: content_type.as_deref(),
            body: &body,
        })
    };
    respond(request, response);
}

fn respond(request: tiny_http::Request, response: crate::api::Response) {
    let (content_type, data) = match response.body {
        Body::Json(value) => ("application/json; charset=utf-8", value.to_string().into_bytes()),
        Body::Text(text) => ("text/html; charset=utf-8", text.into_bytes()),
    };
    let mut reply = tiny_http::Response::from_data(data)
        .with_status_code(response.status)
        .with_header(header("Content-Type", content_type))
        .with_header(header("Access-Control-Allow-Origin", "*"))
        .with_header(header("Access-Control-Allow-Methods", "POST, GET, OPTIONS, DELETE, PATCH, PUT"))
        .with_header(header("Access-Control-Allow-Headers", "origin, authorization, content-type"))
        .with_header(header("Strict-Transport-Security", "max-age=1024000; includeSubDomain"))
        .with_header(header("X-Content-Type-Options", "nosniff"));
    if let Some(reason) = response.auth_failure {
        let value = format!("MAuth realm=\"{}\", error=\"{}\"", owt_auth::REALM, reason.replace('"', "'"));
        reply = reply.with_header(header("WWW-Authenticate", &value));
    }
    if let Err(err) = request.respond(reply) {
        tracing::debug!("REST respond: {err}");
    }
}
