//! The segment header: the first bytes of every segment, written once by the owner and read
//! as untrusted input by everyone else. `include/sharedobject.h` describes the same layout in C.
//!
//! All integers are little-endian. Offsets are from the start of the segment.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic: `"SHAREDOB"`, or for a table (kind 15) the Arrow file magic `"ARROW1\0\0"` |
//! | 8 | 2 | format version (2; version 1 is still read, except for tables) |
//! | 10 | 2 | fixed header size (128) |
//! | 12 | 2 | kind code |
//! | 14 | 2 | flags (bit 0 copy-on-write default, bit 1 persistent, bit 2 developer segment, bit 3 freed, bit 4 space not reserved) |
//! | 16 | 8 | length in elements |
//! | 24 | 8 | data byte length |
//! | 32 | 8 | data offset (a multiple of 64, after the attributes) |
//! | 40 | 8 | generation: random, distinguishes segments that reuse an id |
//! | 48 | 4 | owner pid |
//! | 52 | 4 | attributes byte length (UTF-8 JSON at offset 128) |
//! | 56 | 8 | owner start time (OS-specific clock, 0 if unknown) |
//! | 64 | 8 | owner pid namespace (Linux inode number, 0 if unknown) |
//! | 72 | 8 | creation time, milliseconds since the Unix epoch |
//! | 80 | 48 | kind-specific words (zero for numeric kinds; the string layout below) |
//!
//! After the data, at `align8(data offset + data byte length)`, segments carry one more 64-bit
//! word, the *control word*, changed only with atomic operations by any process: bits 0 to 31
//! count the opens of the segment by processes other than its owner, and bit 63 says a process
//! other than the owner freed it (so that the owner lets go of what it holds for it). The
//! segment's size covers it; readers that do not know it ignore it. A table keeps it in its last
//! kind-specific word instead (offset 120), so that its segment ends where its Arrow file ends.
//!
//! Strings (kind 13) keep an Arrow-compatible layout in the data region; the six words give,
//! relative to the start of the data: 0 the validity bitmap (one bit per element, least
//! significant first, 1 = present), 1 the int32 offsets, 2 the UTF-8 bytes, 3 their length,
//! 4 the int32 dictionary codes (0 when there is no dictionary) and 5 the dictionary size. Without
//! a dictionary there are `length + 1` offsets into the bytes; with one, `dictionary size + 1`
//! offsets describe the unique strings and each element holds a code (-1 for NA).
//!
//! A table's segment (kind 15, `arrow`, format version 2) *is* an Arrow IPC file: it starts with
//! the Arrow magic `"ARROW1\0\0"` in place of `"SHAREDOB"` and ends with the file's footer, its
//! length and `"ARROW1"`, so that any Arrow reader (pyarrow's `memory_map`, polars' `read_ipc`)
//! opens its path as it is. Arrow readers find everything from the footer, whose block offsets
//! count from the segment's start, and skip the header and attributes between the magic and the
//! first message. The data region, byte length bytes long, holds "ARROW1", padding to 64, the
//! record batches (and dictionaries) with every message and every buffer starting on a 64-byte
//! boundary of the data, then the footer, up to the segment's end. Bytes 8 to 11 of the padding
//! hold the 32-bit FNV-1a hash of the file's metadata (every byte of the data from 64 on outside
//! the message bodies), which the JavaScript reader checks before it parses. The length is the
//! number of rows; the first five layout words are zero and the sixth is the control word.
//! Version 1 tables (the file alone in the data, with offsets from the data's start, and the
//! control word after it) are refused.

use crate::error::{Code, Error, Result};
use crate::kind::Kind;

pub const MAGIC: [u8; 8] = *b"SHAREDOB";
/// The magic of a table's segment: the Arrow file magic, padded to 8 bytes as Arrow pads it.
pub const ARROW_MAGIC: [u8; 8] = *b"ARROW1\0\0";
pub const VERSION: u16 = 2;
/// The oldest format version still read: version 1 differs only in its tables.
pub const OLDEST_VERSION: u16 = 1;
/// Where a table keeps its control word: its last kind-specific word.
pub const ARROW_CONTROL_OFFSET: u64 = 80 + 8 * (AUX_WORDS as u64 - 1);
pub const FIXED_SIZE: usize = 128;
/// Data starts on this boundary, enough for any element type and a cache line.
pub const DATA_ALIGN: u64 = 64;
/// The most attribute bytes a segment may carry.
pub const MAX_ATTRIBUTES: usize = 1 << 20;
pub const AUX_WORDS: usize = 6;

pub const FLAG_COPY_ON_WRITE: u16 = 1;
pub const FLAG_PERSIST: u16 = 2;
pub const FLAG_DEVELOPER: u16 = 4;
/// Set by `free` in a process that does not own an unnamed segment: nobody may open it again.
pub const FLAG_FREED: u16 = 8;
/// Bytes of the control word.
pub const CONTROL_SIZE: u64 = 8;
/// Control word bits counting opens by processes other than the owner.
pub const CONTROL_OPENS: u64 = 0xffff_ffff;
/// Control word bit: a process other than the owner freed the segment.
pub const CONTROL_FREED: u64 = 1 << 63;
/// The creator chose `reserve: false`: some pages may have no memory behind them yet, and a
/// reader must ask to map such a segment (a page `/dev/shm` cannot supply is a SIGBUS).
pub const FLAG_UNRESERVED: u16 = 16;
/// Every flag bit this format version defines (`SOBJ_KNOWN_FLAGS` in the C header).
pub const KNOWN_FLAGS: u16 =
    FLAG_COPY_ON_WRITE | FLAG_PERSIST | FLAG_DEVELOPER | FLAG_FREED | FLAG_UNRESERVED;

/// A decoded header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub flags: u16,
    pub length: u64,
    pub byte_length: u64,
    pub data_offset: u64,
    pub generation: u64,
    pub owner_pid: u32,
    pub attributes_len: u32,
    pub owner_start: u64,
    pub owner_pidns: u64,
    pub created_ms: u64,
    pub aux: [u64; AUX_WORDS],
}

/// Rounds `n` up to the data alignment; `None` on overflow.
fn align_data(n: u64) -> Option<u64> {
    n.checked_add(DATA_ALIGN - 1).map(|v| v & !(DATA_ALIGN - 1))
}

impl Header {
    /// Where the data of a segment with `attributes_len` bytes of attributes begins.
    pub fn data_offset_for(attributes_len: usize) -> u64 {
        align_data((FIXED_SIZE + attributes_len) as u64).expect("attributes are bounded")
    }

    pub fn copy_on_write(&self) -> bool {
        self.flags & FLAG_COPY_ON_WRITE != 0
    }
    pub fn persistent(&self) -> bool {
        self.flags & FLAG_PERSIST != 0
    }
    pub fn developer(&self) -> bool {
        self.flags & FLAG_DEVELOPER != 0
    }

    /// Bytes the whole segment needs: header, attributes, data.
    pub fn total_size(&self) -> u64 {
        self.data_offset + self.byte_length
    }

    /// Where the control word lies (see the module's table): after the data, or in a table's
    /// header, so that nothing follows its Arrow file.
    pub fn control_offset(&self) -> u64 {
        if self.kind == Kind::Arrow {
            return ARROW_CONTROL_OFFSET;
        }
        self.total_size().saturating_add(7) & !7
    }

    /// Bytes a segment made by this version occupies: header, attributes, data, control word.
    pub fn segment_size(&self) -> u64 {
        if self.kind == Kind::Arrow {
            return self.total_size();
        }
        self.control_offset() + CONTROL_SIZE
    }

    /// The first 8 bytes of a segment of this kind.
    pub fn magic(&self) -> [u8; 8] {
        if self.kind == Kind::Arrow {
            ARROW_MAGIC
        } else {
            MAGIC
        }
    }

    /// Every string section lies inside the data region, aligned, and the sections the element
    /// count implies fit. Offsets inside the sections are checked by every reader on use.
    fn check_string_layout(&self) -> std::result::Result<(), ()> {
        let [validity, offsets, values, values_len, codes, dict_len] = self.aux;
        let n = self.length;
        let fits = |start: u64, len: Option<u64>| -> std::result::Result<(), ()> {
            match len.and_then(|l| start.checked_add(l)) {
                Some(end) if end <= self.byte_length => Ok(()),
                _ => Err(()),
            }
        };
        fits(validity, Some(n.div_ceil(8)))?;
        let entries = if codes == 0 {
            if dict_len != 0 {
                return Err(());
            }
            n
        } else {
            if codes % 4 != 0 {
                return Err(());
            }
            fits(codes, n.checked_mul(4))?;
            dict_len
        };
        if offsets % 4 != 0 {
            return Err(());
        }
        fits(
            offsets,
            entries.checked_add(1).and_then(|e| e.checked_mul(4)),
        )?;
        fits(values, Some(values_len))?;
        if values_len > i32::MAX as u64 {
            return Err(());
        }
        Ok(())
    }

    pub fn encode(&self) -> [u8; FIXED_SIZE] {
        let mut b = [0u8; FIXED_SIZE];
        b[0..8].copy_from_slice(&self.magic());
        b[8..10].copy_from_slice(&VERSION.to_le_bytes());
        b[10..12].copy_from_slice(&(FIXED_SIZE as u16).to_le_bytes());
        b[12..14].copy_from_slice(&(self.kind as u16).to_le_bytes());
        b[14..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.length.to_le_bytes());
        b[24..32].copy_from_slice(&self.byte_length.to_le_bytes());
        b[32..40].copy_from_slice(&self.data_offset.to_le_bytes());
        b[40..48].copy_from_slice(&self.generation.to_le_bytes());
        b[48..52].copy_from_slice(&self.owner_pid.to_le_bytes());
        b[52..56].copy_from_slice(&self.attributes_len.to_le_bytes());
        b[56..64].copy_from_slice(&self.owner_start.to_le_bytes());
        b[64..72].copy_from_slice(&self.owner_pidns.to_le_bytes());
        b[72..80].copy_from_slice(&self.created_ms.to_le_bytes());
        for (i, w) in self.aux.iter().enumerate() {
            b[80 + 8 * i..88 + 8 * i].copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    /// Decodes and checks a header read from a segment of `segment_size` bytes. Every field is
    /// untrusted: nothing is believed until it is checked against the real segment size.
    pub fn decode(b: &[u8], segment_size: u64) -> Result<Header> {
        let bad = |what: &str| {
            Error::new(
                Code::BadHeader,
                format!("not a sharedobject segment, or a corrupt one: {what}"),
            )
        };
        if b.len() < FIXED_SIZE || segment_size < FIXED_SIZE as u64 {
            return Err(bad("it is smaller than a header"));
        }
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        if b[0..8] != MAGIC && b[0..8] != ARROW_MAGIC {
            return Err(bad("wrong magic"));
        }
        let version = u16_at(8);
        if !(OLDEST_VERSION..=VERSION).contains(&version) {
            return Err(Error::new(
                Code::BadHeader,
                format!(
                    "segment format version {version}, this package reads versions {OLDEST_VERSION} to {VERSION}"
                ),
            ));
        }
        if u16_at(10) as usize != FIXED_SIZE {
            return Err(bad("wrong header size"));
        }
        let kind = Kind::from_code(u16_at(12)).ok_or_else(|| bad("unknown kind"))?;
        if kind == Kind::Arrow && version < VERSION {
            return Err(Error::new(
                Code::BadHeader,
                format!(
                    "a table segment of format version {version}, whose path is not an Arrow file; this package reads tables of version {VERSION}: share the table again"
                ),
            ));
        }
        if b[0..8]
            != (if kind == Kind::Arrow {
                ARROW_MAGIC
            } else {
                MAGIC
            })
        {
            return Err(bad("its magic does not match its kind"));
        }
        let flags = u16_at(14);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(bad("unknown flags"));
        }
        let mut aux = [0u64; AUX_WORDS];
        for (i, w) in aux.iter_mut().enumerate() {
            *w = u64_at(80 + 8 * i);
        }
        if kind == Kind::Arrow {
            // A table's last word is its control word, which other processes change: read
            // through `control_offset`, never as a layout word.
            aux[AUX_WORDS - 1] = 0;
        }
        let h = Header {
            kind,
            flags,
            length: u64_at(16),
            byte_length: u64_at(24),
            data_offset: u64_at(32),
            generation: u64_at(40),
            owner_pid: u32_at(48),
            attributes_len: u32_at(52),
            owner_start: u64_at(56),
            owner_pidns: u64_at(64),
            created_ms: u64_at(72),
            aux,
        };
        if h.attributes_len as usize > MAX_ATTRIBUTES {
            return Err(bad("attributes too large"));
        }
        if h.data_offset != Header::data_offset_for(h.attributes_len as usize) {
            return Err(bad("data offset does not follow the attributes"));
        }
        if let Some(size) = kind.element_size() {
            if h.length.checked_mul(size) != Some(h.byte_length) {
                return Err(bad("length and byte length disagree"));
            }
        }
        match h.data_offset.checked_add(h.byte_length) {
            Some(end) if end <= segment_size => {}
            _ => return Err(bad("data runs past the end of the segment")),
        }
        if kind == Kind::String {
            h.check_string_layout()
                .map_err(|()| bad("string sections out of bounds"))?;
        } else if h.aux != [0; AUX_WORDS] {
            return Err(bad("layout words set for a kind that has none"));
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            kind: Kind::Float64,
            flags: FLAG_COPY_ON_WRITE,
            length: 10,
            byte_length: 80,
            data_offset: Header::data_offset_for(5),
            generation: 0x1234_5678_9abc_def0,
            owner_pid: 42,
            attributes_len: 5,
            owner_start: 7,
            owner_pidns: 9,
            created_ms: 1_700_000_000_000,
            aux: [0; AUX_WORDS],
        }
    }

    #[test]
    fn encode_then_decode_is_identity() {
        let h = sample();
        let got = Header::decode(&h.encode(), h.total_size()).unwrap();
        assert_eq!(got, h);
        assert_eq!(h.data_offset, 192);
    }

    #[test]
    fn every_corruption_is_a_bad_header() {
        let h = sample();
        let good = h.encode();
        let cases: Vec<(usize, u8)> = vec![
            (0, b'X'),
            (8, 3),
            (8, 0),
            (10, 64),
            (12, 99),
            (14, 0x80),
            (16, 11),
            (32, 0),
        ];
        for (at, v) in cases {
            let mut b = good;
            b[at] = v;
            let err = Header::decode(&b, h.total_size()).unwrap_err();
            assert_eq!(err.code, Code::BadHeader, "byte {at} = {v}");
        }
        assert_eq!(
            Header::decode(&good, h.total_size() - 1).unwrap_err().code,
            Code::BadHeader
        );
        assert_eq!(
            Header::decode(&good[..100], 4096).unwrap_err().code,
            Code::BadHeader
        );
    }

    fn strings(n: u64) -> Header {
        // validity at 0, offsets at 64, values at 128: n = 2, "ab" "c".
        Header {
            kind: Kind::String,
            flags: 0,
            length: n,
            byte_length: 131,
            data_offset: Header::data_offset_for(0),
            attributes_len: 0,
            aux: [0, 64, 128, 3, 0, 0],
            ..sample()
        }
    }

    #[test]
    fn string_sections_must_fit_the_data() {
        let h = strings(2);
        assert_eq!(Header::decode(&h.encode(), h.total_size()).unwrap(), h);
        let broken = [
            Header {
                length: 100,
                ..strings(2)
            },
            Header {
                aux: [0, 66, 128, 3, 0, 0],
                ..strings(2)
            },
            Header {
                aux: [0, 64, 128, 4, 0, 0],
                ..strings(2)
            },
            Header {
                aux: [0, 64, 128, 3, 0, 5],
                ..strings(2)
            },
            Header {
                aux: [0, 64, 128, 3, 130, 1],
                ..strings(2)
            },
            Header {
                aux: [u64::MAX, 64, 128, 3, 0, 0],
                ..strings(2)
            },
            Header {
                aux: [0, 64, u64::MAX - 1, 3, 0, 0],
                ..strings(2)
            },
            Header {
                kind: Kind::Bytes,
                length: 131,
                ..strings(2)
            },
        ];
        for h in broken {
            let err = Header::decode(&h.encode(), h.total_size()).unwrap_err();
            assert_eq!(err.code, Code::BadHeader, "{:?}", h.aux);
        }
    }

    #[test]
    fn a_table_has_rows_of_any_byte_length_and_no_layout_words() {
        let h = Header {
            kind: Kind::Arrow,
            length: 1000,
            byte_length: 4242,
            ..sample()
        };
        assert_eq!(Header::decode(&h.encode(), h.total_size()).unwrap(), h);
        let worded = Header {
            aux: [64, 0, 0, 0, 0, 0],
            ..h
        };
        assert_eq!(
            Header::decode(&worded.encode(), worded.total_size())
                .unwrap_err()
                .code,
            Code::BadHeader
        );
    }

    #[test]
    fn a_table_segment_is_an_arrow_file_with_its_control_word_in_the_header() {
        let h = Header {
            kind: Kind::Arrow,
            length: 1000,
            byte_length: 4242,
            ..sample()
        };
        let b = h.encode();
        assert_eq!(&b[0..8], b"ARROW1\0\0");
        assert_eq!(h.control_offset(), ARROW_CONTROL_OFFSET);
        assert_eq!(ARROW_CONTROL_OFFSET, 120);
        assert_eq!(h.segment_size(), h.total_size(), "nothing follows the file");
        // Opens counted and a foreign free in the control word change nothing decoded.
        let mut counted = b;
        counted[120..128].copy_from_slice(&(CONTROL_FREED | 3).to_le_bytes());
        assert_eq!(Header::decode(&counted, h.total_size()).unwrap(), h);
        // Other kinds keep theirs after the data, and their magic.
        let x = sample();
        assert_eq!(&x.encode()[0..8], b"SHAREDOB");
        assert_eq!(x.control_offset(), 192 + 80);
        assert_eq!(x.segment_size(), 192 + 88);
    }

    #[test]
    fn version_1_is_read_except_tables_and_a_magic_must_match_its_kind() {
        let mut v1 = sample().encode();
        v1[8..10].copy_from_slice(&1u16.to_le_bytes());
        assert_eq!(
            Header::decode(&v1, sample().total_size()).unwrap(),
            sample()
        );
        let table = Header {
            kind: Kind::Arrow,
            byte_length: 4242,
            ..sample()
        };
        // A version 1 table: "SHAREDOB", its file alone in the data.
        let mut old = table.encode();
        old[0..8].copy_from_slice(&MAGIC);
        old[8..10].copy_from_slice(&1u16.to_le_bytes());
        let err = Header::decode(&old, table.total_size() + 8).unwrap_err();
        assert_eq!(err.code, Code::BadHeader);
        assert!(err.message.contains("version 1"), "{}", err.message);
        let mut wrong = table.encode();
        wrong[0..8].copy_from_slice(&MAGIC);
        assert_eq!(
            Header::decode(&wrong, table.total_size()).unwrap_err().code,
            Code::BadHeader
        );
        let mut wrong = sample().encode();
        wrong[0..8].copy_from_slice(&ARROW_MAGIC);
        assert_eq!(
            Header::decode(&wrong, sample().total_size())
                .unwrap_err()
                .code,
            Code::BadHeader
        );
    }

    #[test]
    fn huge_lengths_do_not_overflow() {
        let mut h = sample();
        h.length = u64::MAX / 4;
        h.byte_length = h.length.wrapping_mul(8);
        assert_eq!(
            Header::decode(&h.encode(), 4096).unwrap_err().code,
            Code::BadHeader
        );
        h.kind = Kind::Bytes;
        h.length = u64::MAX;
        h.byte_length = u64::MAX;
        assert_eq!(
            Header::decode(&h.encode(), 4096).unwrap_err().code,
            Code::BadHeader
        );
    }
}
