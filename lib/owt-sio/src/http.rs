//! The little HTTP/1.1 that Engine.IO needs: parsing a request head (only the headers the
//! server reads are kept), the query parameters of `/socket.io/`, and writing responses.

/// Longest request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub http10: bool,
    pub origin: Option<String>,
    pub upgrade_websocket: bool,
    pub connection_close: bool,
    pub websocket_key: Option<String>,
    /// `Sec-WebSocket-Version`; only 13 (RFC 6455) is spoken.
    pub websocket_version: Option<String>,
    pub content_length: Option<usize>,
    pub chunked: bool,
    pub request_headers: Option<String>,
}

impl Request {
    /// A query parameter's raw value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }

    pub fn keep_alive(&self) -> bool {
        !self.http10 && !self.connection_close
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    TooLarge,
    Malformed,
}

/// The request head at the start of `buf` and its length; `Ok(None)` when incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize)>, HeadError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD { Err(HeadError::TooLarge) } else { Ok(None) };
    };
    if end > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| HeadError::Malformed)?;
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed);
    };
    if method.is_empty() || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Err(HeadError::Malformed);
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        http10: version == "HTTP/1.0",
        ..Request::default()
    };
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(HeadError::Malformed)?;
        let value = value.trim();
        let has_token = |token: &str| value.split(',').any(|t| t.trim().eq_ignore_ascii_case(token));
        match name.to_ascii_lowercase().as_str() {
            "origin" => request.origin = Some(value.to_owned()),
            "upgrade" => request.upgrade_websocket = value.eq_ignore_ascii_case("websocket"),
            "connection" => request.connection_close = has_token("close"),
            "sec-websocket-key" => request.websocket_key = Some(value.to_owned()),
            "sec-websocket-version" => request.websocket_version = Some(value.to_owned()),
            "content-length" => {
                let length = value.parse().map_err(|_| HeadError::Malformed)?;
                if request.content_length.is_some_and(|old| old != length) {
                    return Err(HeadError::Malformed);
                }
                request.content_length = Some(length);
            }
            "transfer-encoding" => request.chunked = true,
            "access-control-request-headers" => request.request_headers = Some(value.to_owned()),
            _ => {}
        }
    }
    Ok(Some((request, end + 4)))
}

/// A complete response.
pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8], keep_alive: bool) -> Vec<u8> {
    let reason = match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        _ => "Error",
    };
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    if status != 101 {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        if !keep_alive {
            out.push_str("Connection: close\r\n");
        }
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_upgrade_head() {
        let raw = b"GET /socket.io/?EIO=4&transport=websocket&sid=abc HTTP/1.1\r\nHost: x\r\n\
            Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k==\r\nOrigin: https://a\r\n\r\nrest";
        let (request, used) = parse_head(raw).unwrap().unwrap();
        assert_eq!(&raw[used..], b"rest");
        assert_eq!((request.method.as_str(), request.path.as_str()), ("GET", "/socket.io/"));
        assert_eq!((request.param("EIO"), request.param("sid"), request.param("x")), (Some("4"), Some("abc"), None));
        assert!(request.upgrade_websocket && request.keep_alive());
        assert_eq!((request.websocket_key.as_deref(), request.origin.as_deref()), (Some("k=="), Some("https://a")));
    }

    #[test]
    fn incomplete_oversized_and_malformed_heads() {
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        assert_eq!(parse_head(&vec![b'a'; MAX_HEAD + 1]), Err(HeadError::TooLarge));
        for raw in [
            &b"GET\r\n\r\n"[..],
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET x HTTP/1.1\r\n\r\n",
            b"GET / SPDY/3\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(parse_head(raw), Err(HeadError::Malformed), "{:?}", String::from_utf8_lossy(raw));
        }
        let (request, _) = parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!request.keep_alive());
    }

    #[test]
    fn responses() {
        let text = String::from_utf8(response(405, &[("X-A", "b")], b"no", false)).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 405 Method Not Allowed\r\nX-A: b\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"
        );
    }
}
