//! gatewayd's FastCGI 1.0 responder.
//!
//! Why our own implementation: the crate `fastcgi-server` is an empty 0.0.0 placeholder, and
//! `tokio-fastcgi` buffers whole bodies without a cap, fails on a name-value pair split across
//! PARAMS records, and mishandles aborts. So this crate implements the protocol itself, on
//! `bytes` and tokio, in three layers:
//!
//! - a sans-IO codec: records ([`RecordDecoder`], [`put_record`]), name-value pairs
//!   ([`ParamsDecoder`], [`put_pair`]) and the web server's side ([`client`]), pure functions
//!   over `BytesMut` that never panic on input and never allocate more than one record ahead;
//! - a sans-IO connection state machine (`connection.rs`): fed records, finished app calls
//!   and the time, it says what to write, which app calls to start, when its next deadline
//!   is and when to close;
//! - a thin tokio driver around it ([`serve_connection`]): requests multiplexed by id, STDIN
//!   streamed with backpressure per request and a process-wide [`BodyBudget`] for what waits
//!   unread, bodies held to CONTENT_LENGTH, STDOUT written as the app yields it, aborts that
//!   cancel the app call, FCGI_KEEP_CONN, GET_VALUES and UNKNOWN_TYPE.
//!
//! PARAMS become the [`Environ`](gateway_core::Environ) through the same normalizer as SCGI
//! and CGI ([`gateway_core::CgiParams`]).

#![warn(missing_docs, unreachable_pub)]

mod budget;
pub mod client;
mod codec;
mod config;
mod conn;
mod connection;
mod join;
mod params;
mod record;
mod respond;
mod stdin;

pub use budget::BodyBudget;
pub use codec::{
    DecodeError, Record, RecordDecoder, RecordEncoder, put_record, put_stream, put_stream_end,
};
pub use config::FastCgiConfig;
pub use conn::serve_connection;
pub use params::{ParamsDecoder, ParamsError, decode_pairs, put_pair};
pub use record::{
    BeginRequest, EndRequest, HEADER_LEN, KEEP_CONN, MAX_CONTENT, ProtocolStatus, RecordType, Role,
    VERSION,
};
