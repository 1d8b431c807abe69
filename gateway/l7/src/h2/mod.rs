//! HTTP/2 (placeholder, filled below).
pub mod conn;
mod error;
pub mod frame;
pub mod hpack;
mod huffman;
pub use conn::{Config, Conn, Event, Head, Rate, Recv, Request, Role, SendError, Stats};
pub use error::{ErrorCode, Reason, StreamReason};
pub use frame::StreamId;
