//! Bus endpoints: `tcp://HOST:PORT` and `ipc:///PATH`, as ZeroMQ spells them.

use crate::error::BusError;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Where the portal binds its bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindAddr {
    Tcp(SocketAddr),
    Ipc(PathBuf),
}

fn bad(endpoint: &str, reason: &str) -> BusError {
    BusError::Endpoint { endpoint: endpoint.to_string(), reason: reason.to_string() }
}

/// Parses an endpoint to bind: `tcp://*:PORT`, `tcp://IP:PORT`, `tcp://[IPv6]:PORT` (port 0:
/// chosen by the system) or `ipc:///PATH`.
pub fn parse_bind(endpoint: &str) -> Result<BindAddr, BusError> {
    if let Some(path) = endpoint.strip_prefix("ipc://") {
        if !path.starts_with('/') {
            return Err(bad(endpoint, "ipc needs an absolute path"));
        }
        return Ok(BindAddr::Ipc(PathBuf::from(path)));
    }
    let rest = endpoint.strip_prefix("tcp://").ok_or_else(|| bad(endpoint, "use tcp:// or ipc://"))?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad(endpoint, "no port"))?;
    let port: u16 = port.parse().map_err(|_| bad(endpoint, "bad port"))?;
    let ip: IpAddr = match host {
        "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        _ => host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .parse()
            .map_err(|_| bad(endpoint, "host must be *, an IP address or [IPv6]"))?,
    };
    Ok(BindAddr::Tcp(SocketAddr::new(ip, port)))
}

/// The endpoint string of a bound address.
pub fn format_bind(addr: &BindAddr) -> String {
    match addr {
        BindAddr::Tcp(SocketAddr::V4(v4)) => format!("tcp://{}:{}", v4.ip(), v4.port()),
        BindAddr::Tcp(SocketAddr::V6(v6)) => format!("tcp://[{}]:{}", v6.ip(), v6.port()),
        BindAddr::Ipc(path) => format!("ipc://{}", path.display()),
    }
}

/// Checks an endpoint a worker connects to (`tcp://HOST:PORT` with a name or address, or
/// `ipc:///PATH`).
pub fn check_connect(endpoint: &str) -> Result<(), BusError> {
    if let Some(path) = endpoint.strip_prefix("ipc://") {
        return if path.starts_with('/') { Ok(()) } else { Err(bad(endpoint, "ipc needs an absolute path")) };
    }
    let rest = endpoint.strip_prefix("tcp://").ok_or_else(|| bad(endpoint, "use tcp:// or ipc://"))?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad(endpoint, "no port"))?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 && !host.is_empty() && host != "*" => Ok(()),
        _ => Err(bad(endpoint, "needs a host and a port from 1 to 65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        for (input, output) in [
            ("tcp://*:5555", "tcp://0.0.0.0:5555"),
            ("tcp://127.0.0.1:0", "tcp://127.0.0.1:0"),
            ("tcp://[::1]:7", "tcp://[::1]:7"),
            ("ipc:///run/owt/bus", "ipc:///run/owt/bus"),
        ] {
            assert_eq!(format_bind(&parse_bind(input).unwrap()), output);
        }
        for bad in ["udp://1.2.3.4:5", "tcp://host:5", "tcp://1.2.3.4", "ipc://rel", "tcp://1.2.3.4:99999"] {
            assert!(parse_bind(bad).is_err(), "{bad}");
        }
        assert!(check_connect("tcp://portal.example:5555").is_ok());
        assert!(check_connect("tcp://*:5555").is_err());
        assert!(check_connect("tcp://127.0.0.1:0").is_err());
    }
}
