//! Error codes, defined once for Rust; `errors.ts` mirrors them for JavaScript.

use std::fmt;

/// What went wrong, as a stable code that JavaScript sees in `error.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// No segment has that id (never created, freed, or removed with its owner).
    NotFound,
    /// The shared-memory filesystem cannot hold the segment.
    NoSpace,
    /// A handle that is not of our form.
    InvalidHandle,
    /// A segment that is not ours, is corrupt, or has another format version.
    BadHeader,
    /// A view that was closed.
    Closed,
    /// A segment with that id exists already.
    Exists,
    /// The OS refused access to the segment.
    Permission,
    /// A user-chosen id outside the allowed alphabet or length.
    Name,
    /// The runtime forbids buffers over external memory (Electron and other V8 sandboxes).
    ExternalBuffers,
    /// A size or length out of range.
    OutOfRange,
    /// An argument of the wrong type or value.
    InvalidArgument,
    /// Any other OS failure; the message carries the OS error.
    Os,
    /// A copy-on-write view, where only a shared one can work (waiting, locking).
    CopyOnWrite,
    /// An unlock by a thread or process that does not hold the mutex.
    NotOwner,
    /// A blocking lock by the thread that holds the mutex already: it would wait forever.
    Deadlock,
    /// A barrier broken by a timeout, an abort or a dead party, until it is reset.
    BarrierBroken,
}

impl Code {
    /// The string JavaScript sees in `error.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::NotFound => "ERR_SHM_NOT_FOUND",
            Code::NoSpace => "ERR_SHM_NO_SPACE",
            Code::InvalidHandle => "ERR_SHM_INVALID_HANDLE",
            Code::BadHeader => "ERR_SHM_BAD_HEADER",
            Code::Closed => "ERR_SHM_CLOSED",
            Code::Exists => "ERR_SHM_EXISTS",
            Code::Permission => "ERR_SHM_PERMISSION",
            Code::Name => "ERR_SHM_NAME",
            Code::ExternalBuffers => "ERR_SHM_EXTERNAL_BUFFERS",
            Code::OutOfRange => "ERR_OUT_OF_RANGE",
            Code::InvalidArgument => "ERR_INVALID_ARG_VALUE",
            Code::Os => "ERR_SHM_OS",
            Code::CopyOnWrite => "ERR_SHM_COPY_ON_WRITE",
            Code::NotOwner => "ERR_SHM_NOT_OWNER",
            Code::Deadlock => "ERR_SHM_DEADLOCK",
            Code::BarrierBroken => "ERR_SHM_BARRIER_BROKEN",
        }
    }

    /// Which JavaScript error class carries this code.
    pub fn class(self) -> ErrorClass {
        match self {
            Code::OutOfRange => ErrorClass::RangeError,
            Code::InvalidArgument | Code::InvalidHandle | Code::Name => ErrorClass::TypeError,
            _ => ErrorClass::Error,
        }
    }
}

/// The JavaScript constructor an error is thrown with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Error,
    TypeError,
    RangeError,
}

/// A coded error with a message written for the user who has to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub message: String,
}

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_classed() {
        let all = [
            Code::NotFound,
            Code::NoSpace,
            Code::InvalidHandle,
            Code::BadHeader,
            Code::Closed,
            Code::Exists,
            Code::Permission,
            Code::Name,
            Code::ExternalBuffers,
            Code::OutOfRange,
            Code::InvalidArgument,
            Code::Os,
            Code::CopyOnWrite,
            Code::NotOwner,
            Code::Deadlock,
            Code::BarrierBroken,
        ];
        let names: std::collections::HashSet<_> = all.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), all.len());
        assert!(names.iter().all(|n| n.starts_with("ERR_")));
        assert_eq!(Code::OutOfRange.class(), ErrorClass::RangeError);
        assert_eq!(Code::InvalidHandle.class(), ErrorClass::TypeError);
        assert_eq!(Code::NoSpace.class(), ErrorClass::Error);
        let e = Error::new(Code::Exists, "x");
        assert_eq!(e.to_string(), "ERR_SHM_EXISTS: x");
    }
}
