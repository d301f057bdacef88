//! Ids (the names of segments) and handles (what travels between processes).

use crate::error::{Code, Error, Result};

/// Every segment's OS name is this prefix followed by its id.
pub const PREFIX: &str = "sobj.";
/// The longest id: macOS allows 31 bytes for a name, counting the slash and the prefix.
pub const MAX_ID_LEN: usize = 31 - 1 - PREFIX.len();
/// Handles start with this tag; the digit is the handle format version.
pub const HANDLE_TAG: &str = "sobj1";
const GENERATED_LEN: usize = 16;
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Checks a user-chosen id: 1 to 25 bytes of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`.
pub fn validate_id(id: &str) -> Result<()> {
    let ok_char = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-');
    let b = id.as_bytes();
    if b.is_empty()
        || b.len() > MAX_ID_LEN
        || !b.iter().all(|&c| ok_char(c))
        || matches!(b[0], b'.' | b'-')
    {
        return Err(Error::new(
      Code::Name,
      format!(
        "invalid id {id:?}: use 1 to {MAX_ID_LEN} characters of A-Z a-z 0-9 . _ - (not starting with . or -)"
      ),
    ));
    }
    Ok(())
}

/// A fresh id of 16 base32 characters: 80 random bits, so ids cannot be guessed.
pub fn generate_id() -> String {
    let mut bytes = [0u8; 10];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    let mut bits: u128 = 0;
    for b in bytes {
        bits = (bits << 8) | b as u128;
    }
    (0..GENERATED_LEN)
        .map(|i| BASE32[((bits >> (5 * i)) & 31) as usize] as char)
        .collect()
}

/// A random non-zero generation number.
pub fn generate_generation() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    u64::from_le_bytes(bytes) | 1
}

/// Where a segment lives, as its handle says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A named segment: `/dev/shm/sobj.<id>` (Linux), a POSIX shm name, or a Windows mapping name.
    Named,
    /// An unnamed Linux segment: a memfd that process `pid` holds as descriptor `fd`; `pidns` is
    /// the inode of that process's pid namespace (0 if unknown).
    Memfd { pid: u32, fd: i32, pidns: u64 },
}

/// The handle of a segment: `sobj1:<id>:<generation, 16 hex>` for a named segment, with
/// `:<pid>.<fd>.<pid namespace>` after it for an unnamed one. At most 91 ASCII bytes (a 25-byte
/// id and the longest numbers); `parse_handle` refuses anything over 100.
pub fn format_handle(id: &str, generation: u64, place: &Place) -> String {
    match place {
        Place::Named => format!("{HANDLE_TAG}:{id}:{generation:016x}"),
        Place::Memfd { pid, fd, pidns } => {
            format!("{HANDLE_TAG}:{id}:{generation:016x}:{pid}.{fd}.{pidns}")
        }
    }
}

/// Parses a handle; anything not of our form is `ERR_SHM_INVALID_HANDLE`.
pub fn parse_handle(handle: &str) -> Result<(String, u64, Place)> {
    let invalid = || {
        let shown: String = handle.chars().take(60).collect();
        Error::new(
            Code::InvalidHandle,
            format!("not a sharedobject handle: {shown:?}"),
        )
    };
    if handle.len() > 100 {
        return Err(invalid());
    }
    let mut parts = handle.split(':');
    let (Some(tag), Some(id), Some(generation), place, None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(invalid());
    };
    if tag != HANDLE_TAG
        || generation.len() != 16
        || !generation.bytes().all(|c| c.is_ascii_hexdigit())
        || validate_id(id).is_err()
    {
        return Err(invalid());
    }
    let generation = u64::from_str_radix(generation, 16).map_err(|_| invalid())?;
    let place = match place {
        None => Place::Named,
        Some(p) => {
            let mut nums = p.split('.');
            let (Some(pid), Some(fd), Some(ns), None) =
                (nums.next(), nums.next(), nums.next(), nums.next())
            else {
                return Err(invalid());
            };
            let digits =
                |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|c| c.is_ascii_digit());
            if !digits(pid) || !digits(fd) || !digits(ns) {
                return Err(invalid());
            }
            Place::Memfd {
                pid: pid.parse().map_err(|_| invalid())?,
                fd: fd.parse().map_err(|_| invalid())?,
                pidns: ns.parse().map_err(|_| invalid())?,
            }
        }
    };
    Ok((id.to_string(), generation, place))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_distinct_and_short() {
        let a = generate_id();
        let b = generate_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        validate_id(&a).unwrap();
        assert!(1 + PREFIX.len() + MAX_ID_LEN <= 31);
    }

    #[test]
    fn bad_ids_are_refused() {
        for id in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "a b",
            "ä",
            "x".repeat(26).as_str(),
            "a\0b",
        ] {
            assert_eq!(validate_id(id).unwrap_err().code, Code::Name, "{id:?}");
        }
        for id in ["a", "my-data_1.v2", &"x".repeat(25)] {
            validate_id(id).unwrap();
        }
    }

    #[test]
    fn handles_round_trip_and_reject_garbage() {
        let h = format_handle("abc", 0xdead_beef, &Place::Named);
        assert!(h.len() < 100);
        assert_eq!(
            parse_handle(&h).unwrap(),
            ("abc".to_string(), 0xdead_beef, Place::Named)
        );
        let long = "a".repeat(MAX_ID_LEN);
        let memfd = Place::Memfd {
            pid: 4_194_304,
            fd: 1_048_576,
            pidns: u32::MAX as u64,
        };
        let h = format_handle(&long, u64::MAX, &memfd);
        assert!(h.len() <= 80, "{h} is {} bytes", h.len());
        assert_eq!(parse_handle(&h).unwrap(), (long, u64::MAX, memfd));
        for bad in [
            "",
            "abc",
            "sobj1:abc",
            "sobj2:abc:00000000deadbeef",
            "sobj1:a/b:00000000deadbeef",
            "sobj1:abc:xyz",
            "sobj1:abc:00000000deadbeef:1",
            "sobj1:abc:00000000deadbeef:1.2",
            "sobj1:abc:00000000deadbeef:1.2.3.4",
            "sobj1:abc:00000000deadbeef:1.-2.3",
            "sobj1:abc:00000000deadbeef:99999999999.2.3",
            "sobj1:abc:+0000000deadbeef",
        ] {
            assert_eq!(
                parse_handle(bad).unwrap_err().code,
                Code::InvalidHandle,
                "{bad:?}"
            );
        }
    }
}
