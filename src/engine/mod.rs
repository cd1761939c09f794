//! The engine: a request's parts in, a [`policy::Decision`] out. Nothing here knows of
//! Pingora, sockets or the command line, so the proxy, `permeable check`/`test`/`scan`/
//! `explain`, the benchmarks and the fuzz targets all drive the very same code.
//!
//! - [`classify`]: which activity of a catalogue site a request is;
//! - [`decode`]: request bodies (encodings, JSON, forms, multipart) with byte spans;
//! - [`detect`]: detectors of sensitive content;
//! - [`redact`]: rewriting findings in place, structure kept;
//! - [`policy`]: rule files → compiled policy → decisions.

pub mod classify;
pub mod decode;
pub mod detect;
pub mod policy;
pub mod redact;
