//! The kinds of vector a segment can hold, and their codes in the header.

/// The element type of a segment. The discriminant is the code stored in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Kind {
    /// Untyped bytes: segments made by the developer API.
    Bytes = 0,
    Float64 = 1,
    Float32 = 2,
    Int8 = 3,
    Uint8 = 4,
    Uint8Clamped = 5,
    Int16 = 6,
    Uint16 = 7,
    Int32 = 8,
    Uint32 = 9,
    Int64 = 10,
    Uint64 = 11,
    /// true / false / NA, one byte each.
    Logical = 12,
    /// Variable-width UTF-8 strings; the layout lives in the data region.
    String = 13,
    /// A container's manifest: its shape and its leaves' handles, in the attributes; no data.
    List = 14,
    /// A table: an Arrow IPC file in the data region, its buffers 64-byte aligned; the length
    /// is the number of rows.
    Arrow = 15,
    /// A robust mutex: the words `sync::RawMutex` describes; no elements.
    Mutex = 16,
    /// A barrier: the words `sync::RawBarrier` describes; no elements.
    Barrier = 17,
    /// A condition variable: the words `sync::RawCondition` describes; no elements.
    Condition = 18,
    /// A counting semaphore: `sync::RawSemaphore`; no elements.
    Semaphore = 19,
    /// A bounded queue of messages: `sync::RawChannel`; no elements.
    Channel = 20,
}

impl Kind {
    pub const ALL: [Kind; 21] = [
        Kind::Bytes,
        Kind::Float64,
        Kind::Float32,
        Kind::Int8,
        Kind::Uint8,
        Kind::Uint8Clamped,
        Kind::Int16,
        Kind::Uint16,
        Kind::Int32,
        Kind::Uint32,
        Kind::Int64,
        Kind::Uint64,
        Kind::Logical,
        Kind::String,
        Kind::List,
        Kind::Arrow,
        Kind::Mutex,
        Kind::Barrier,
        Kind::Condition,
        Kind::Semaphore,
        Kind::Channel,
    ];

    pub fn from_code(code: u16) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| *k as u16 == code)
    }

    /// The name JavaScript uses for this kind.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Bytes => "bytes",
            Kind::Float64 => "float64",
            Kind::Float32 => "float32",
            Kind::Int8 => "int8",
            Kind::Uint8 => "uint8",
            Kind::Uint8Clamped => "uint8clamped",
            Kind::Int16 => "int16",
            Kind::Uint16 => "uint16",
            Kind::Int32 => "int32",
            Kind::Uint32 => "uint32",
            Kind::Int64 => "int64",
            Kind::Uint64 => "uint64",
            Kind::Logical => "logical",
            Kind::String => "string",
            Kind::List => "list",
            Kind::Arrow => "arrow",
            Kind::Mutex => "mutex",
            Kind::Barrier => "barrier",
            Kind::Condition => "condition",
            Kind::Semaphore => "semaphore",
            Kind::Channel => "channel",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// Bytes per element, or `None` for kinds whose data is not a plain array of elements.
    pub fn element_size(self) -> Option<u64> {
        match self {
            Kind::Bytes | Kind::Int8 | Kind::Uint8 | Kind::Uint8Clamped | Kind::Logical => Some(1),
            Kind::Int16 | Kind::Uint16 => Some(2),
            Kind::Float32 | Kind::Int32 | Kind::Uint32 => Some(4),
            Kind::Float64 | Kind::Int64 | Kind::Uint64 => Some(8),
            Kind::String
            | Kind::List
            | Kind::Arrow
            | Kind::Mutex
            | Kind::Barrier
            | Kind::Condition
            | Kind::Semaphore
            | Kind::Channel => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_code(k as u16), Some(k));
            assert_eq!(Kind::from_name(k.name()), Some(k));
        }
        assert_eq!(Kind::from_code(99), None);
        assert_eq!(Kind::from_name("complex"), None);
    }
}
