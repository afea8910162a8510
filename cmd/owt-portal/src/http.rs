//! The REST API's HTTP(S) listener, on hyper and the portal's tokio runtime. Every
//! connection is its own task, so a slow or idle client holds only itself: TLS handshakes,
//! request headers and bodies each have a deadline, bodies a size limit. Requests are
//! answered by [`crate::api::Api::handle`] on the blocking pool (it uses SQLite), with a
//! panic turned into a 500 answer rather than a lost worker. Every answer carries the
//! headers OWT sends (CORS, HSTS, nosniff).
//!
//! (tiny_http was the first choice; it reads bodies on its worker threads and does TLS
//! handshakes in its accept thread without deadlines, so one slow client could stall
//! everybody.)

use crate::api::{Api, ApiError, Body, Request, Response};
use crate::PortalError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use owt_config::PortalConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a client may take to complete the TLS handshake, send its headers, or send its body.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
pub(crate) const HEADER_DEADLINE: Duration = Duration::from_secs(10);
const BODY_DEADLINE: Duration = Duration::from_secs(30);

pub struct RestServer {
    addr: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

pub(crate) fn tls_acceptor(config: &PortalConfig) -> Result<openssl::ssl::SslAcceptor, PortalError> {
    use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
    let fail = |path: std::path::PathBuf, e: openssl::error::ErrorStack| PortalError::Certificate {
        path: path.display().to_string(),
        message: format!("{e} (create one with `owtctl cert generate`)"),
    };
    // Mozilla "intermediate": TLS 1.2 and 1.3 only.
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(|e| PortalError::Certificate { path: String::new(), message: e.to_string() })?;
    let cert = config.certificate_path();
    builder.set_certificate_chain_file(&cert).map_err(|e| fail(cert.clone(), e))?;
    let key = config.key_path();
    builder.set_private_key_file(&key, SslFiletype::PEM).map_err(|e| fail(key.clone(), e))?;
    builder.check_private_key().map_err(|e| fail(key, e))?;
    Ok(builder.build())
}

/// Any accepted connection, plain TCP or TLS, for hyper.
pub(crate) trait Connection: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Connection for T {}

/// Binds `ip:port` of a portal listener (REST API, signaling, sample application).
pub(crate) fn bind(
    ip: &str,
    port: u16,
    runtime: &tokio::runtime::Handle,
) -> Result<(TcpListener, SocketAddr), PortalError> {
    let ip: std::net::IpAddr =
        ip.parse().map_err(|_| PortalError::Listen { addr: ip.to_string(), message: "not an IP address".into() })?;
    let bind = SocketAddr::new(ip, port);
    let listen_error = |e: std::io::Error| PortalError::Listen { addr: bind.to_string(), message: e.to_string() };
    let listener = runtime.block_on(TcpListener::bind(bind)).map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    Ok((listener, addr))
}

/// Accepts connections for ever, each in a task of its own: the TLS handshake first when
/// `tls` is set (with its deadline), then `serve`.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    tls: Option<Arc<openssl::ssl::SslAcceptor>>,
    what: &'static str,
    serve: F,
) where
    F: Fn(TokioIo<Box<dyn Connection>>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!("{what} accept: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (serve, tls) = (serve.clone(), tls.clone());
        tokio::spawn(async move {
            let connection: Box<dyn Connection> = match tls {
                None => Box::new(stream),
                Some(acceptor) => match tls_handshake(&acceptor, stream, peer).await {
                    Some(stream) => Box::new(stream),
                    None => return,
                },
            };
            serve(TokioIo::new(connection)).await
        });
    }
}

impl RestServer {
    pub fn start(
        config: &PortalConfig,
        api: Arc<Api>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<RestServer, PortalError> {
        let settings = &config.management_api;
        let tls = if settings.ssl { Some(Arc::new(tls_acceptor(config)?)) } else { None };
        let (listener, addr) = bind(&settings.ip_address, settings.port, runtime)?;
        let max_body = settings.max_body_bytes;
        let accept_task =
            runtime.spawn(accept_loop(listener, tls, "REST", move |io| serve_connection(io, api.clone(), max_body)));
        tracing::info!("REST API listening on {}://{addr}", if settings.ssl { "https" } else { "http" });
        Ok(RestServer { addr, accept_task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting; connections in progress end with the runtime.
    pub fn stop(self) {
        self.accept_task.abort();
    }
}

/// Completes a TLS handshake within [`HANDSHAKE_DEADLINE`]; None (logged) when it fails.
pub(crate) async fn tls_handshake(
    acceptor: &openssl::ssl::SslAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
) -> Option<tokio_openssl::SslStream<tokio::net::TcpStream>> {
    let ssl = openssl::ssl::Ssl::new(acceptor.context()).map_err(|err| tracing::warn!("TLS setup: {err}")).ok()?;
    let mut stream = tokio_openssl::SslStream::new(ssl, stream).ok()?;
    match tokio::time::timeout(HANDSHAKE_DEADLINE, std::pin::Pin::new(&mut stream).accept()).await {
        Ok(Ok(())) => Some(stream),
        Ok(Err(err)) => {
            tracing::debug!(%peer, "TLS handshake failed: {err}");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

async fn serve_connection<I>(io: I, api: Arc<Api>, max_body: usize)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let api = api.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(request, api, max_body).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_DEADLINE)
        .serve_connection(io, service);
    if let Err(err) = connection.await {
        tracing::debug!("REST connection: {err}");
    }
}

async fn answer(request: hyper::Request<Incoming>, api: Arc<Api>, max_body: usize) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let header =
        |name: hyper::header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = match read_body(body, max_body).await {
        Ok(body) => body,
        Err(err) => return respond(err.into_response()),
    };
    let authorization = header(hyper::header::AUTHORIZATION);
    let content_type = header(hyper::header::CONTENT_TYPE);
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let handled = tokio::task::spawn_blocking(move || {
        api.handle(&Request {
            method: &method,
            path: &path,
            query: &query,
            authorization: authorization.as_deref(),
            content_type: content_type.as_deref(),
            body: &body,
        })
    })
    .await;
    match handled {
        Ok(response) => respond(response),
        Err(err) => {
            tracing::error!("REST handler failed: {err}");
            respond(ApiError::Internal("Error internal failure".into()).into_response())
        }
    }
}

/// Bodies past the limit are still read (and dropped) up to this size, so an honest client
/// that sends a too-large body gets its 413 answer instead of a broken pipe.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

enum BodyError {
    TooLarge,
    Read(hyper::Error),
}

/// Reads a request body within [`BODY_DEADLINE`] and `max_body` bytes, as the REST API
/// answers problems with it.
pub(crate) async fn read_body(body: Incoming, max_body: usize) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(BODY_DEADLINE, collect_body(body, max_body)).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(BodyError::TooLarge)) => Err(ApiError::TooLarge(max_body)),
        Ok(Err(BodyError::Read(err))) => {
            tracing::debug!("body read: {err}");
            Err(ApiError::BadRequest("Failed to read request body".into()))
        }
        Err(_) => Err(ApiError::BadRequest("Request body not received in time".into())),
    }
}

async fn collect_body(mut body: Incoming, max_body: usize) -> Result<Bytes, BodyError> {
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        let Ok(data) = frame.into_data() else { continue };
        total += data.len();
        if total <= max_body {
            kept.extend_from_slice(&data);
        } else if total > DRAIN_LIMIT {
            return Err(BodyError::TooLarge);
        }
    }
    if total > max_body {
        Err(BodyError::TooLarge)
    } else {
        Ok(Bytes::from(kept))
    }
}

fn respond(response: Response) -> hyper::Response<Full<Bytes>> {
    let (content_type, data) = match response.body {
        Body::Json(value) => ("application/json; charset=utf-8", value.to_string().into_bytes()),
        Body::Text(text) => ("text/html; charset=utf-8", text.into_bytes()),
    };
    let mut builder = hyper::Response::builder()
        .status(response.status)
        .header("Content-Type", content_type)
        .header("Access-Control-Allow-Origin", "*")
        .header("Access-Control-Allow-Methods", "POST, GET, OPTIONS, DELETE, PATCH, PUT")
        .header("Access-Control-Allow-Headers", "origin, authorization, content-type")
        .header("Strict-Transport-Security", "max-age=1024000; includeSubDomain")
        .header("X-Content-Type-Options", "nosniff");
    if let Some(reason) = response.auth_failure {
        let value =
            format!("MAuth realm=\"{}\", error=\"{}\"", owt_auth::REALM, reason.replace(['"', '\r', '\n'], "'"));
        builder = builder.header("WWW-Authenticate", value);
    }
    builder.body(Full::new(Bytes::from(data))).unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}
