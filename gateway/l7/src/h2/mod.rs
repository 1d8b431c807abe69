//! HTTP/2 (placeholder, filled below).
mod error;
pub mod frame;
pub mod hpack;
mod huffman;
pub use error::{ErrorCode, Reason, StreamReason};
