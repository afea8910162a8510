//! A size guard in front of the portal's ZeroMQ ROUTER.
//!
//! The `zeromq` crate has no maximum message size: a peer announcing a frame of many
//! gigabytes makes it reserve that much memory, which can abort the process. So the public
//! endpoint is served by this guard, which reads the ZMTP 3.x stream of each connection
//! (greeting, then frames), forwards it byte for byte to the ROUTER on a private Unix
//! socket, and closes the connection of a peer that sends a malformed greeting or frame, a
//! command over [`MAX_COMMAND_BYTES`], a message over `max_message` bytes or more than
//! [`MAX_FRAMES`] frames, or that does not complete its greeting in time. Other connections
//! are not affected. Bytes from the ROUTER to the peer are copied unchanged.

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest ZMTP command frame (READY with its properties, PING ...).
pub const MAX_COMMAND_BYTES: u64 = 64 * 1024;
/// Most frames in one message.
pub const MAX_FRAMES: usize = 16;
/// Time a peer has to send its greeting and its first message.
pub const FIRST_MESSAGE_DEADLINE: Duration = Duration::from_secs(10);
/// A connection silent this long is closed (workers send a heartbeat every few seconds at
/// most: `heartbeat_ms` is at most 60000).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Connections served at once (each holds three file descriptors); further ones are
/// closed at once.
pub const MAX_CONNECTIONS: usize = 512;

/// Why a peer's stream was cut.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("not a ZMTP 3 greeting")]
    Greeting,
    #[error("frame flags {0:#04x} have reserved bits set")]
    Flags(u8),
    #[error("command frame of {0} bytes is over the limit of {MAX_COMMAND_BYTES}")]
    Command(u64),
    #[error("message of at least {size} bytes is over the limit of {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error("message of more than {MAX_FRAMES} frames")]
    TooManyFrames,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting { got: usize },
    Flags,
    ShortLength { command: bool, more: bool },
    LongLength { command: bool, more: bool, got: usize, value: u64 },
    Body { remaining: u64, more: bool, command: bool },
}

/// Follows one direction of a ZMTP 3.x stream and checks frame sizes, sans-IO.
#[derive(Debug)]
pub struct Limiter {
    state: State,
    max_message: u64,
    message_bytes: u64,
    message_frames: usize,
    messages: u64,
}

impl Limiter {
    pub fn new(max_message: usize) -> Limiter {
        Limiter {
            state: State::Greeting { got: 0 },
            max_message: max_message as u64,
            message_bytes: 0,
            message_frames: 0,
            messages: 0,
        }
    }

    /// True once the 64-byte greeting has gone through.
    pub fn greeted(&self) -> bool {
        !matches!(self.state, State::Greeting { .. })
    }

    /// Complete messages (not commands) seen so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Checks the next bytes of the stream. After an error the stream must be closed.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), Violation> {
        while !data.is_empty() {
            match self.state {
                State::Greeting { got } => {
                    // signature: 0xFF, 8 bytes padding, 0x7F; then version major >= 3.
                    let take = data.len().min(64 - got);
                    for (i, byte) in data[..take].iter().enumerate() {
                        let ok = match got + i {
                            0 => *byte == 0xFF,
                            9 => *byte == 0x7F,
                            10 => *byte >= 3,
                            _ => true,
                        };
                        if !ok {
                            return Err(Violation::Greeting);
                        }
                    }
                    data = &data[take..];
                    self.state = if got + take == 64 { State::Flags } else { State::Greeting { got: got + take } };
                }
                State::Flags => {
                    let flags = data[0];
                    data = &data[1..];
                    if flags & 0xF8 != 0 {
                        return Err(Violation::Flags(flags));
                    }
                    let (more, long, command) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
                    self.state = if long {
                        State::LongLength { command, more, got: 0, value: 0 }
                    } else {
                        State::ShortLength { command, more }
                    };
                }
                State::ShortLength { command, more } => {
                    let length = u64::from(data[0]);
                    data = &data[1..];
                    self.start_body(length, command, more)?;
                }
                State::LongLength { command, more, got, value } => {
                    let value = (value << 8) | u64::from(data[0]);
                    data = &data[1..];
                    if got + 1 == 8 {
                        self.start_body(value, command, more)?;
                    } else {
                        self.state = State::LongLength { command, more, got: got + 1, value };
                    }
                }
                State::Body { remaining, more, command } => {
                    let take = (data.len() as u64).min(remaining);
                    data = &data[take as usize..];
                    let remaining = remaining - take;
                    self.state = if remaining == 0 {
                        self.after_frame(more, command)
                    } else {
                        State::Body { remaining, more, command }
                    };
                }
            }
        }
        Ok(())
    }

    fn start_body(&mut self, length: u64, command: bool, more: bool) -> Result<(), Violation> {
        if command {
            if length > MAX_COMMAND_BYTES {
                return Err(Violation::Command(length));
            }
        } else {
            self.message_frames += 1;
            if self.message_frames > MAX_FRAMES {
                return Err(Violation::TooManyFrames);
            }
            self.message_bytes = self.message_bytes.saturating_add(length);
            if self.message_bytes > self.max_message {
                return Err(Violation::TooLarge { size: self.message_bytes, limit: self.max_message });
            }
        }
        self.state = if length == 0 {
            self.after_frame(more, command)
        } else {
            State::Body { remaining: length, more, command }
        };
        Ok(())
    }

    fn after_frame(&mut self, more: bool, command: bool) -> State {
        if !command && !more {
            self.message_bytes = 0;
            self.message_frames = 0;
            self.messages += 1;
        }
        State::Flags
    }
}

/// Serves one peer connection: forwards it to the ROUTER's private socket through a
/// [`Limiter`]. Returns why it ended (`Ok` for an orderly close by either side).
pub(crate) async fn serve<P>(
    peer: P,
    peer_name: &str,
    router_path: Arc<std::path::PathBuf>,
    max_message: usize,
) -> Result<(), String>
where
    P: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let inner = tokio::net::UnixStream::connect(router_path.as_path())
        .await
        .map_err(|err| format!("cannot reach the bus router: {err}"))?;
    let (mut peer_read, mut peer_write) = tokio::io::split(peer);
    let (mut inner_read, mut inner_write) = inner.into_split();
    let inbound = async {
        let mut limiter = Limiter::new(max_message);
        let first_deadline = tokio::time::Instant::now() + FIRST_MESSAGE_DEADLINE;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let (deadline, why) = if limiter.messages() == 0 {
                (first_deadline, "no ZMTP greeting and first message in time")
            } else {
                (tokio::time::Instant::now() + IDLE_TIMEOUT, "silent for too long")
            };
            let read = match tokio::time::timeout_at(deadline, peer_read.read(&mut buf)).await {
                Ok(read) => read,
                Err(_) => return Err(why.to_string()),
            };
            let n = read.map_err(|err| err.to_string())?;
            if n == 0 {
                return Ok(());
            }
            limiter.feed(&buf[..n]).map_err(|violation| violation.to_string())?;
            inner_write.write_all(&buf[..n]).await.map_err(|err| err.to_string())?;
        }
    };
    let outbound = async {
        tokio::io::copy(&mut inner_read, &mut peer_write).await.map_err(|err| err.to_string())?;
        Ok::<(), String>(())
    };
    let result = tokio::select! {
        result = inbound => result,
        result = outbound => result,
    };
    tracing::trace!(peer = peer_name, "bus connection closed");
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greeting() -> Vec<u8> {
        let mut g = vec![0u8; 64];
        g[0] = 0xFF;
        g[9] = 0x7F;
        g[10] = 3;
        g[11] = 1;
        g[12..16].copy_from_slice(b"NULL");
        g
    }

    fn frame(flags: u8, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if body.len() > 255 {
            out.push(flags | 2);
            out.extend_from_slice(&(body.len() as u64).to_be_bytes());
        } else {
            out.push(flags);
            out.push(body.len() as u8);
        }
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn accepts_a_normal_stream_in_any_split() {
        let mut stream = greeting();
        stream.extend(frame(4, b"\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER"));
        stream.extend(frame(0, &[b'x'; 300]));
        stream.extend(frame(1, b""));
        stream.extend(frame(0, &vec![b'y'; 1000]));
        for chunk in [1, 2, 7, 64, 1000, stream.len()] {
            let mut limiter = Limiter::new(1024);
            for piece in stream.chunks(chunk) {
                limiter.feed(piece).unwrap();
            }
            assert!(limiter.greeted());
            assert_eq!(limiter.messages(), 2);
        }
    }

    #[test]
    fn refuses_garbage_greetings() {
        assert_eq!(Limiter::new(10).feed(b"GET / HTTP/1.1\r\n"), Err(Violation::Greeting));
        let mut g = greeting();
        g[10] = 2;
        assert_eq!(Limiter::new(10).feed(&g), Err(Violation::Greeting));
    }

    #[test]
    fn refuses_oversized_messages_before_their_body_arrives() {
        let mut limiter = Limiter::new(1024 * 1024);
        limiter.feed(&greeting()).unwrap();
        // A long frame announcing 2^60 bytes: refused on its length alone.
        let mut header = vec![2u8];
        header.extend_from_slice(&(1u64 << 60).to_be_bytes());
        assert!(matches!(limiter.feed(&header), Err(Violation::TooLarge { .. })));

        let mut limiter = Limiter::new(1000);
        limiter.feed(&greeting()).unwrap();
        limiter.feed(&frame(1, &[0; 600])).unwrap();
        assert!(matches!(limiter.feed(&frame(0, &[0; 600])), Err(Violation::TooLarge { size: 1200, limit: 1000 })));
    }

    #[test]
    fn message_budget_resets_per_message() {
        let mut limiter = Limiter::new(1000);
        limiter.feed(&greeting()).unwrap();
        for _ in 0..10 {
            limiter.feed(&frame(0, &[0; 900])).unwrap();
        }
    }

    #[test]
    fn refuses_bad_flags_big_commands_and_many_frames() {
        let mut limiter = Limiter::new(1000);
        limiter.feed(&greeting()).unwrap();
        assert_eq!(limiter.feed(&[0x80, 0]), Err(Violation::Flags(0x80)));

        let mut limiter = Limiter::new(1000);
        limiter.feed(&greeting()).unwrap();
        let mut header = vec![6u8];
        header.extend_from_slice(&(MAX_COMMAND_BYTES + 1).to_be_bytes());
        assert!(matches!(limiter.feed(&header), Err(Violation::Command(_))));

        let mut limiter = Limiter::new(100_000);
        limiter.feed(&greeting()).unwrap();
        for _ in 0..MAX_FRAMES {
            limiter.feed(&frame(1, b"a")).unwrap();
        }
        assert_eq!(limiter.feed(&frame(0, b"a")), Err(Violation::TooManyFrames));
    }
}
