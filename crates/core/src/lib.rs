//! Shared-memory segments for sharedobject: the header format, the per-process registry of
//! mappings, and one small OS layer per platform.
//!
//! Words used everywhere in this project: a *segment* is the OS object; its *id* is its name;
//! a *handle* is the short string that travels between processes; a *view* is one use of a
//! mapping handed to a caller; the *owner* is the process that created the segment.
//!
//! ```no_run
//! use sharedobject_core::{registry, Kind};
//! let spec = registry::CreateSpec { kind: Some(Kind::Float64), length: 4, byte_length: 32, reserve: true, ..Default::default() };
//! let view = registry::create(&spec, Some(&[0u8; 32])).unwrap();
//! // send view.handle() to another process; there: registry::open_handle(&handle, None, false)
//! drop(view); // the owner's last view, and no handle handed out: the segment is released
//! ```

pub mod error;
pub mod guard;
pub mod header;
pub mod kind;
pub mod limits;
pub mod name;
pub mod registry;
pub mod sync;
mod sys;

pub use error::{Code, Error, ErrorClass, Result};
pub use header::Header;
pub use kind::Kind;
pub use registry::{CreateSpec, Listing, Mode, View};
