//! Integration tests of owt-peer, the P2P signaling server: the built binary on loopback ports
//! with a temporary configuration, driven by npm socket.io-client 2.x/3.x/4.x
//! (tests/js/sio-driver.js) and headless Chromium (tests/js/browser-p2p.js).
//! Needs `cargo build --workspace --bins` and `make test-deps`.

mod browser;
mod hostile;
mod protocol;
mod support;
