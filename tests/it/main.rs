//! Integration tests of owt-rs: the real programs (owt-portal, owtctl and the other daemons)
//! built in the same target directory, run in temporary directories on 127.0.0.1 only and
//! driven by real clients (ureq with MAuth, the owtctl binary, signals, sd_notify).

mod support;

mod cluster;
mod daemons;
mod install;
mod owtctl;
mod rest;
mod rest_matrix;
mod rest_room_schema;
mod restart;
mod signaling;
