//! HTTP around the Socket.IO service: the listeners (plain and TLS), the origin allow-list
//! and CORS headers, 405 for anything that is not Socket.IO (as the reference server), a
//! connection limit, and the loopback metrics endpoint.

use crate::core::Origins;
use crate::signaling::Shared;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use openssl::ssl::{Ssl, SslAcceptor, SslContext, SslFiletype, SslMethod, SslVersion};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// Body of the 405 answer, as the reference server's.
const NOT_SOCKET_IO: &str = "OWT signaling server. Please connect it with Socket.IO.";
/// A client must send its request headers within this time (also the keep-alive idle limit).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// A TLS handshake must finish within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {source}")]
pub struct TlsError {
    what: &'static str,
    path: String,
    source: openssl::error::ErrorStack,
}

/// Builds a TLS server context (TLS 1.2 or newer, Mozilla intermediate ciphers) from PEM files.
pub fn tls_context(cert: &Path, key: &Path) -> Result<SslContext, TlsError> {
    let err = |what, path: &Path| {
        let path = path.display().to_string();
        move |source| TlsError { what, path, source }
    };
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(err("TLS setup", cert))?;
    builder.set_min_proto_version(Some(SslVersion::TLS1_2)).map_err(err("TLS setup", cert))?;
    builder.set_certificate_chain_file(cert).map_err(err("cannot use certificate", cert))?;
    builder.set_private_key_file(key, SslFiletype::PEM).map_err(err("cannot use private key", key))?;
    builder.check_private_key().map_err(err("private key does not match the certificate", key))?;
    Ok(builder.build().into_context())
}

/// The TLS context in use; a reload replaces it (renewed certificates).
pub type TlsSlot = Arc<RwLock<SslContext>>;

/// What the front service needs besides the Socket.IO service.
pub struct FrontState {
    pub origins: RwLock<Origins>,
}

fn is_socket_io(path: &str) -> bool {
    path == "/socket.io" || path.starts_with("/socket.io/")
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    response
}

/// CORS headers for an allowed origin: the origin is echoed with credentials allowed, as
/// socket.io's `cors: {origin: <check>, credentials: true}` does.
fn add_cors(headers: &mut http::HeaderMap, origin: &HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// Request headers the Socket.IO service reads: the WebSocket handshake key and the type of
/// a long-polling payload.
const KEPT_HEADERS: [header::HeaderName; 2] = [header::SEC_WEBSOCKET_KEY, header::CONTENT_TYPE];

/// The request as the Socket.IO service keeps it for the connection's lifetime, detached
/// from the connection's read buffer: hyper's header values and URI are slices of that 8 KiB
/// buffer, so keeping them (socketioxide stores the request parts of every socket) would
/// keep the whole buffer alive per connection. Only the headers it reads are copied.
fn detach(request: Request<Incoming>) -> Request<Incoming> {
    let (mut parts, body) = request.into_parts();
    let mut headers = http::HeaderMap::with_capacity(KEPT_HEADERS.len());
    for name in KEPT_HEADERS {
        if let Some(value) = parts.headers.get(&name).and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
            headers.insert(name, value);
        }
    }
    parts.headers = headers;
    if let Ok(uri) = parts.uri.to_string().parse() {
        parts.uri = uri;
    }
    Request::from_parts(parts, body)
}

/// The service every connection is served by: routes Socket.IO requests to `sio`, checks
/// origins, answers CORS preflights, and 405 for everything else.
#[derive(Clone)]
pub struct Front<S> {
    pub sio: S,
    pub state: Arc<FrontState>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<Incoming>> for Front<S>
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<Either<Full<Bytes>, B>>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let ready = |response: Response<Full<Bytes>>| -> Self::Future {
            Box::pin(std::future::ready(Ok(response.map(Either::Left))))
        };
        if !is_socket_io(request.uri().path()) {
            return ready(plain(StatusCode::METHOD_NOT_ALLOWED, NOT_SOCKET_IO));
        }
        let origin = request.headers().get(header::ORIGIN).cloned();
        let allowed = {
            let origins = self.state.origins.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            origins.allows(origin.as_ref().map(|o| o.to_str().unwrap_or("\u{0}")))
        };
        if !allowed {
            tracing::debug!(origin = ?origin, "request from an origin not in cors_origins");
            return ready(plain(StatusCode::FORBIDDEN, "Origin not allowed.\n"));
        }
        if request.method() == Method::OPTIONS {
            let mut response = plain(StatusCode::NO_CONTENT, "");
            let headers = response.headers_mut();
            if let Some(origin) = &origin {
                add_cors(headers, origin);
            }
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST"));
            if let Some(asked) = request.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            }
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
            return ready(response);
        }
        let future = self.sio.call(detach(request));
        Box::pin(async move {
            let Ok(mut response) = future.await;
            if let Some(origin) = &origin {
                add_cors(response.headers_mut(), origin);
            }
            Ok(response.map(Either::Right))
        })
    }
}

/// A connection's stream that holds a slot of the connection limit until it is dropped,
/// which for a WebSocket is when the upgraded connection ends.
pub struct Guarded<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts connections on `listener` until `stop` turns true. `tls` switches to HTTPS.
pub async fn accept_loop<S, B>(
    listener: TcpListener,
    tls: Option<TlsSlot>,
    front: Front<S>,
    limit: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection limit reached: closing a new connection");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let front = front.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => http1(Guarded { inner: tcp, _permit: permit }, front).await,
                Some(slot) => {
                    let context = slot.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
                    let stream = Ssl::new(&context).and_then(|ssl| tokio_openssl::SslStream::new(ssl, tcp));
                    let mut stream = match stream {
                        Ok(stream) => stream,
                        Err(err) => return tracing::warn!("TLS setup failed: {err}"),
                    };
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, Pin::new(&mut stream).accept()).await {
                        Ok(Ok(())) => http1(Guarded { inner: stream, _permit: permit }, front).await,
                        Ok(Err(err)) => tracing::debug!(%peer, "TLS handshake failed: {err}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

async fn http1<I, S, B>(stream: I, front: Front<S>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), front)
        .with_upgrades();
    if let Err(err) = connection.await {
        tracing::debug!("connection ended: {err}");
    }
}

/// Serves `GET /metrics` (Prometheus text) on a loopback listener until `stop` turns true.
pub async fn metrics_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let Ok((tcp, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = if request.uri().path() == "/metrics" && request.method() == Method::GET {
                    let mut response = Response::new(Full::new(Bytes::from(shared.stats().prometheus())));
                    response
                        .headers_mut()
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
                    response
                } else {
                    let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")));
                    *response.status_mut() = StatusCode::NOT_FOUND;
                    response
                };
                std::future::ready(Ok::<_, Infallible>(response))
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service);
            let _ = connection.await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_io_paths() {
        assert!(is_socket_io("/socket.io/"));
        assert!(is_socket_io("/socket.io"));
        assert!(!is_socket_io("/"));
        assert!(!is_socket_io("/socket.iox"));
    }

    #[test]
    fn not_socket_io_is_405_like_the_reference() {
        let response = plain(StatusCode::METHOD_NOT_ALLOWED, NOT_SOCKET_IO);
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()[header::STRICT_TRANSPORT_SECURITY], "max-age=31536000");
    }

    #[test]
    fn missing_certificate_names_the_file() {
        let err = tls_context(Path::new("/nonexistent/cert.pem"), Path::new("/nonexistent/key.pem")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    }
}
