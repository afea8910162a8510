//! The listeners around the Socket.IO server (plain and TLS, with a connection limit; owt-sio
//! answers 405 for anything that is not Socket.IO and checks origins through the handler)
//! and the loopback metrics endpoint.

use crate::signaling::{Shared, Signaling};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use openssl::ssl::{Ssl, SslAcceptor, SslContext, SslFiletype, SslMethod, SslVersion};
use std::convert::Infallible;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Body of the 405 answer, as the reference server's.
pub const NOT_SOCKET_IO: &str = "OWT signaling server. Please connect it with Socket.IO.";
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

/// The Engine.IO/Socket.IO server of owt-peer.
pub type SioServer = owt_sio::Server<Signaling>;

/// Accepts connections on `listener` until `stop` turns true. `tls` switches to HTTPS. Each
/// connection holds a slot of `limit` until it ends.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsSlot>,
    server: Arc<SioServer>,
    limit: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
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
        let server = server.clone();
        // Plain connections get a task of their own kind: the TLS handshake's state would
        // make every plain connection's task larger.
        let Some(slot) = &tls else {
            tokio::spawn(async move {
                let _permit = permit;
                server.serve(tcp).await;
            });
            continue;
        };
        let context = slot.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        tokio::spawn(async move {
            let _permit = permit;
            let stream = Ssl::new(&context).and_then(|ssl| tokio_openssl::SslStream::new(ssl, tcp));
            let mut stream = match stream {
                Ok(stream) => stream,
                Err(err) => return tracing::warn!("TLS setup failed: {err}"),
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, Pin::new(&mut stream).accept()).await {
                Ok(Ok(())) => server.serve(stream).await,
                Ok(Err(err)) => tracing::debug!(%peer, "TLS handshake failed: {err}"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
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
    fn missing_certificate_names_the_file() {
        let err = tls_context(Path::new("/nonexistent/cert.pem"), Path::new("/nonexistent/key.pem")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    }
}
