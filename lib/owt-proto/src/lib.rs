//! What the owt-rs daemons say to each other over the bus (`owt-bus` carries it as JSON).
//! One module per worker kind; each has the request methods the portal calls on a node,
//! the events the node sends back, and typed parameters for both, so the two sides cannot
//! drift apart.

pub mod media;
pub mod mixer;
pub mod webrtc;
