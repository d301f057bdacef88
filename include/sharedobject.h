/*
 * sharedobject.h: the segment format of the `sharedobject` npm package, for native addon
 * authors who want to read (or check) its shared-memory segments from C or C++.
 *
 * Get the include flag from JavaScript with
 *
 *     require('sharedobject').pkgconfig('PKG_CPPFLAGS')   // "-I<package dir>/include"
 *     require('sharedobject').pkgconfig('PKG_LIBS')       // "": this header is all there is
 *
 * This header is self-contained C99 that is also valid C++. It needs only <stdint.h>,
 * <stddef.h> and <string.h>, allocates nothing and touches no OS API: opening and mapping a
 * segment is the caller's business (see "Names and handles" below).
 *
 * It mirrors crates/core/src/header.rs (the header layout, the string layout and their
 * validation), crates/core/src/kind.rs (kind codes and element sizes) and
 * crates/core/src/name.rs (ids and handles) of the package; those files are the reference, and
 * a change to one of them must be made here too.
 *
 * ------------------------------------------------------------------------------------------
 * Names and handles
 * ------------------------------------------------------------------------------------------
 *
 * Every segment has an *id*: 1 to 25 bytes of `A-Z a-z 0-9 . _ -`, not starting with `.` or
 * `-` (generated ids are 16 characters of lower-case base32). The OS name of the segment is
 *
 *     POSIX (Linux, macOS):  "/sobj.<id>"         for shm_open(); on Linux the file
 *                                                 /dev/shm/sobj.<id>
 *     Windows:               "Local\\sobj.<id>"   a named file mapping (OpenFileMappingW)
 *
 * A *handle*, the string `handleOf()` returns and that travels between processes, is
 *
 *     "sobj1:<id>:<generation as exactly 16 hex digits>"       a named segment
 *     "sobj1:<id>:<generation>:<pid>.<fd>.<pidns>"             an unnamed Linux segment
 *
 * An unnamed Linux segment is a memfd held by its owner, process <pid>, as descriptor <fd>
 * (<pidns> is the inode of the owner's pid namespace, 0 if unknown): a process of the same user
 * opens it as "/proc/<pid>/fd/<fd>" while the owner holds it. sobj_handle_path() gives the path
 * to open() for either form on Linux. A handle is at most 100 bytes.
 *
 * The generation is a random non-zero number stored in the header (offset 40). An id can be
 * reused after its segment is freed, so a reader holding a handle should check that the
 * header's generation equals the handle's (SOBJ_E_GENERATION is there for reporting that).
 *
 * ------------------------------------------------------------------------------------------
 * Segment layout
 * ------------------------------------------------------------------------------------------
 *
 * All integers are little-endian. Offsets are from the start of the segment.
 *
 *   offset size field
 *   ------ ---- -----------------------------------------------------------------------------
 *        0    8 magic "SHAREDOB" (no terminating NUL); a table (SOBJ_ARROW) has the Arrow
 *               file magic "ARROW1\0\0" (SOBJ_TABLE_MAGIC) here instead: see "Arrow tables"
 *        8    2 format version, SOBJ_VERSION (2); version 1 (SOBJ_OLDEST_VERSION) is still
 *               read, except for tables
 *       10    2 fixed header size, SOBJ_HEADER_SIZE (128)
 *       12    2 kind code (enum sobj_kind)
 *       14    2 flags: bit 0 copy-on-write default, bit 1 persistent, bit 2 developer segment,
 *                bit 4 space not reserved (reserve: false)
 *       16    8 length in elements
 *       24    8 data byte length
 *       32    8 data offset: align64(128 + attributes byte length)
 *       40    8 generation: random, distinguishes segments that reuse an id
 *       48    4 owner pid
 *       52    4 attributes byte length (UTF-8 JSON at offset 128, at most 1 MiB, no NUL)
 *       56    8 owner start time (OS-specific clock, 0 if unknown)
 *       64    8 owner pid namespace (Linux inode number, 0 if unknown)
 *       72    8 creation time, milliseconds since the Unix epoch
 *       80   48 six kind-specific 64-bit words: the string layout below for SOBJ_STRING,
 *               all zero for every other kind
 *      128    . attributes (attributes byte length bytes), then zero padding
 *  data off   . data (data byte length bytes)
 *  ctrl off   8 control word, at align8(data offset + data byte length), in segments whose size
 *               covers it, or for a table at offset 120 (its last kind-specific word), so that
 *               the table's Arrow file ends the segment (sobj_control_offset()): bits 0-31 count
 *               the opens by processes other than the owner, bit 63 says such a process freed
 *               the segment. Changed only with atomic operations; a reader that opens a segment
 *               may add 1 with __atomic_fetch_add on a shared mapping, and must not change it
 *               otherwise.
 *
 * ------------------------------------------------------------------------------------------
 * Strings (kind 13)
 * ------------------------------------------------------------------------------------------
 *
 * A string segment keeps an Arrow-compatible layout in its data region. The six words at
 * offset 80 are, relative to the start of the data (SOBJ_STRING_* below):
 *
 *   word  field
 *   ----  ------------------------------------------------------------------------------
 *      0  validity bitmap: one bit per element, least significant first, 1 = present
 *      1  int32 offsets into the UTF-8 bytes
 *      2  the UTF-8 bytes
 *      3  their length (at most INT32_MAX)
 *      4  int32 dictionary codes, one per element (0 when there is no dictionary)
 *      5  dictionary size (0 when there is no dictionary)
 *
 * Without a dictionary there are length + 1 offsets and element i is bytes offsets[i] to
 * offsets[i + 1], NA when its validity bit is 0. With one, dictionary size + 1 offsets
 * describe the unique strings and element i is unique string codes[i], NA when the code is
 * negative (-1). sobj_header_check() checks that every section lies inside the data;
 * the offsets and codes themselves are checked on use by sobj_string_get().
 *
 * A list segment (kind 14) is a container's manifest: its shape and its leaves' handles are
 * in the attributes, and it has no data of its own.
 *
 * ------------------------------------------------------------------------------------------
 * Arrow tables (kind 15)
 * ------------------------------------------------------------------------------------------
 *
 * A table's segment *is* one Arrow IPC *file* (the random-access format: "ARROW1", record
 * batches and dictionary batches, a flatbuffer footer, its length, "ARROW1"): it starts with
 * "ARROW1\0\0" in place of "SHAREDOB" and ends with the file's footer, so any Arrow reader opens
 * the segment's path (or the whole mapping) as it is, with no offset: pyarrow.memory_map(path),
 * polars.read_ipc(path, memory_map=True). Arrow readers find everything through the footer,
 * whose block offsets count from the segment's start, and skip the header and attributes after
 * the magic. The data region (h.byte_length bytes at sobj_data(), up to the segment's end)
 * starts with "ARROW1" padded to 64 bytes, then every message and every buffer starts on a
 * 64-byte boundary of the data, so, the data being 64-byte aligned, every column buffer is
 * 64-byte aligned in memory. The length is the number of rows; the first five layout words are
 * zero and the sixth is the control word. Buffers are not compressed; the byte order is
 * little-endian. Bytes 8 to 11 of the data (in the padding after its "ARROW1") hold the
 * little-endian 32-bit FNV-1a hash of the file's metadata: every byte of the data from offset
 * 64 on that is not in a message body, in file order; JavaScript's Arrow reader cannot verify
 * flatbuffers, so the package checks it before parsing. Any Arrow implementation reads the file
 * in place, for instance in C++:
 *
 *     const unsigned char *file; size_t len;
 *     sobj_arrow_file(seg, &h, &file, &len);
 *     auto buf = std::make_shared<arrow::Buffer>(file, len);
 *     auto reader = arrow::ipc::RecordBatchFileReader::Open(
 *         std::make_shared<arrow::io::BufferReader>(buf)).ValueOrDie();
 *
 * Version 1 tables (the file alone in the data region, its offsets counted from there) are
 * refused.
 *
 * sobj_arrow_file() below checks the two magics and gives the file's bytes: the segment. Like any other
 * segment, the file is untrusted input: let the Arrow library validate it.
 *
 * A mutex segment (kind 16) and a barrier segment (kind 17) hold 64 bytes of words in native
 * byte order, changed only with atomic operations (crates/core/src/sync/mutex.rs and
 * barrier.rs describe them). Read them if you must; never write them from C, or the
 * processes that lock and wait on them stop agreeing.
 *
 *   mutex    0 u64 holder (0 free, else pid << 32 | a number unique to the holding thread;
 *            the top bit is set while lockers sleep)
 *            8 u32 waiters   12 u32 seq   32 u32 detection ms; 16 to 63 (but 32) say who the
 *            holder is, valid only while 36 (u32) is even and unchanged
 *   barrier  0 u32 arrived   4 u32 generation   8 u32 parties
 *
 * The header is written once, by the owner, before anyone else can open the segment, and
 * never changes afterwards but for the freed flag and, in a table, the control word at offset
 * 120 (which sobj_header_check() does not read). Everyone else must treat it as untrusted input: decode it with
 * sobj_header_check(), which believes nothing until it is checked against the real size of
 * the segment (fstat() it; never trust the header to say how much to map).
 *
 * Example (POSIX, error handling shortened):
 *
 *     char id[SOBJ_MAX_ID_LEN + 1], name[SOBJ_MAX_OS_NAME_LEN + 1];
 *     uint64_t gen;
 *     if (sobj_parse_handle(handle, id, sizeof id, &gen) != 0) fail("bad handle");
 *     sobj_posix_name(id, name, sizeof name);
 *     int fd = shm_open(name, O_RDONLY, 0);
 *     struct stat st; fstat(fd, &st);
 *     const unsigned char *seg = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
 *     sobj_header h;
 *     if (sobj_header_check(seg, (uint64_t)st.st_size, &h) != 0) fail("bad header");
 *     if (h.generation != gen) fail("the segment was freed and its id reused");
 *     const double *x = (const double *)sobj_data(seg, &h);   // if h.kind == SOBJ_FLOAT64
 *
 *     // if h.kind == SOBJ_STRING:
 *     for (uint64_t i = 0; i < h.length; i++) {
 *       const char *s; size_t n;
 *       int rc = sobj_string_get(seg, &h, i, &s, &n);
 *       if (rc == SOBJ_OK) printf("%.*s\n", (int)n, s);   // not NUL-terminated
 *       else if (rc == SOBJ_NA) printf("NA\n");
 *       else fail(sobj_strerror(rc));                      // a corrupt segment
 *     }
 */

#ifndef SHAREDOBJECT_H
#define SHAREDOBJECT_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Constants                                                                                 */
/* ---------------------------------------------------------------------------------------- */

/** The first 8 bytes of every segment but a table's (not NUL-terminated in the segment). */
#define SOBJ_MAGIC "SHAREDOB"
/** Bytes of SOBJ_MAGIC (and of SOBJ_TABLE_MAGIC). */
#define SOBJ_MAGIC_LEN 8
/** The first 8 bytes of a table's segment (SOBJ_ARROW): the Arrow file magic, padded. */
#define SOBJ_TABLE_MAGIC "ARROW1\0\0"
/** The segment format version this header describes. */
#define SOBJ_VERSION 2
/** The oldest format version still read: version 1 differs only in its tables, refused. */
#define SOBJ_OLDEST_VERSION 1
/** Where a table's control word is: its last kind-specific word. */
#define SOBJ_ARROW_CONTROL_OFFSET 120
/** Size of the fixed header; the attributes start right after it. */
#define SOBJ_HEADER_SIZE 128
/** Where the attributes begin. */
#define SOBJ_ATTRIBUTES_OFFSET 128
/** The data starts on this boundary: enough for any element type, and a cache line. */
#define SOBJ_DATA_ALIGN 64
/** The most attribute bytes a segment may carry (1 MiB). */
#define SOBJ_MAX_ATTRIBUTES (1u << 20)
/** Number of kind-specific 64-bit words at offset 80. */
#define SOBJ_AUX_WORDS 6

/* Byte offsets of the header fields. */
#define SOBJ_OFF_MAGIC 0            /**< 8 bytes, "SHAREDOB" ("ARROW1\0\0" for a table) */
#define SOBJ_OFF_VERSION 8          /**< u16, format version */
#define SOBJ_OFF_HEADER_SIZE 10     /**< u16, fixed header size */
#define SOBJ_OFF_KIND 12            /**< u16, kind code */
#define SOBJ_OFF_FLAGS 14           /**< u16, flag bits */
#define SOBJ_OFF_LENGTH 16          /**< u64, length in elements */
#define SOBJ_OFF_BYTE_LENGTH 24     /**< u64, data byte length */
#define SOBJ_OFF_DATA_OFFSET 32     /**< u64, data offset */
#define SOBJ_OFF_GENERATION 40      /**< u64, generation */
#define SOBJ_OFF_OWNER_PID 48       /**< u32, owner pid */
#define SOBJ_OFF_ATTRIBUTES_LEN 52  /**< u32, attributes byte length */
#define SOBJ_OFF_OWNER_START 56     /**< u64, owner start time */
#define SOBJ_OFF_OWNER_PIDNS 64     /**< u64, owner pid namespace */
#define SOBJ_OFF_CREATED_MS 72      /**< u64, creation time in ms since the Unix epoch */
#define SOBJ_OFF_AUX 80             /**< 6 x u64, kind-specific words */

/* Flag bits (offset 14). Any other bit set makes the header invalid. */
/** The segment's default for new views is copy-on-write (private writable copies). */
#define SOBJ_FLAG_COPY_ON_WRITE 0x0001u
/** Persistent: the name outlives the owner process; only an explicit free removes it. */
#define SOBJ_FLAG_PERSIST 0x0002u
/** Made with the developer API (raw bytes); crash sweeps leave such segments alone. */
#define SOBJ_FLAG_DEVELOPER 0x0004u
/** Freed: nobody may open the segment again (set where a name cannot be removed at once). */
#define SOBJ_FLAG_FREED 0x0008u
/**
 * Made with reserve: false: some pages may have no memory behind them yet, and reading one where
 * /dev/shm is full raises SIGBUS. Check st_blocks * 512 >= the segment's size before mapping.
 */
#define SOBJ_FLAG_UNRESERVED 0x0010u
/** Every flag bit this format version defines. */
#define SOBJ_KNOWN_FLAGS (SOBJ_FLAG_COPY_ON_WRITE | SOBJ_FLAG_PERSIST | SOBJ_FLAG_DEVELOPER | SOBJ_FLAG_FREED | SOBJ_FLAG_UNRESERVED)

/* Ids, OS names and handles. */
/** Every segment's OS name is a prefix followed by its id; this is the common part. */
#define SOBJ_NAME_PREFIX "sobj."
/** The POSIX shm_open() name prefix: "/sobj.<id>". */
#define SOBJ_POSIX_NAME_PREFIX "/sobj."
/** The Windows file-mapping name prefix: "Local\sobj.<id>" (one backslash). */
#define SOBJ_WINDOWS_NAME_PREFIX "Local\\sobj."
/** The longest id: macOS allows 31 bytes for a name, counting the slash and the prefix. */
#define SOBJ_MAX_ID_LEN 25
/** The longest POSIX OS name, without its NUL: 1 + 5 + 25 = 31. */
#define SOBJ_MAX_OS_NAME_LEN 31
/** Handles start with this tag followed by ':'; the digit is the handle format version. */
#define SOBJ_HANDLE_TAG "sobj1"
/** Hex digits of the generation in a handle. */
#define SOBJ_HANDLE_GENERATION_DIGITS 16
/** The longest handle, without its NUL. */
#define SOBJ_MAX_HANDLE_LEN 100

/* ---------------------------------------------------------------------------------------- */
/* Error codes: 0 is success, every failure is negative.                                     */
/* ---------------------------------------------------------------------------------------- */

#define SOBJ_OK 0
/** A NULL pointer argument. */
#define SOBJ_E_ARGUMENT (-1)
/** The segment is smaller than the fixed header. */
#define SOBJ_E_TOO_SMALL (-2)
/** The first 8 bytes are not "SHAREDOB" (nor, for a table, "ARROW1\0\0"): not a sharedobject
 *  segment, or a magic of another kind than its kind code's. */
#define SOBJ_E_MAGIC (-3)
/** A format version outside SOBJ_OLDEST_VERSION to SOBJ_VERSION, or a table of version 1. */
#define SOBJ_E_VERSION (-4)
/** The fixed header size field is not 128. */
#define SOBJ_E_HEADER_SIZE (-5)
/** An unknown kind code. */
#define SOBJ_E_KIND (-6)
/** A flag bit outside SOBJ_KNOWN_FLAGS. */
#define SOBJ_E_FLAGS (-7)
/** More than SOBJ_MAX_ATTRIBUTES bytes of attributes. */
#define SOBJ_E_ATTRIBUTES (-8)
/** The data offset is not align64(128 + attributes byte length). */
#define SOBJ_E_DATA_OFFSET (-9)
/** For a fixed-width kind, length * element size != byte length (or it overflows). */
#define SOBJ_E_LENGTH (-10)
/** The data runs past the end of the segment (or data offset + byte length overflows). */
#define SOBJ_E_BOUNDS (-11)
/** Not a handle of the form "sobj1:<id>:<16 hex digits>", or an invalid id in it. */
#define SOBJ_E_HANDLE (-12)
/** An output buffer too small for the id or name (its capacity must include the NUL). */
#define SOBJ_E_BUFFER (-13)
/** Not an error of this header's functions: for callers to report that a segment's
 *  generation differs from the one its handle names (the id was freed and reused). */
#define SOBJ_E_GENERATION (-14)
/** Bad kind-specific words: a string section out of bounds or misaligned (see
 *  sobj_header_check()), layout words set for a kind that has none, or (from
 *  sobj_string_get()) corrupt string offsets or a dictionary code past the dictionary, or
 *  (from sobj_arrow_file()) data that is not an Arrow IPC file. */
#define SOBJ_E_LAYOUT (-15)
/** An element index >= the segment's length, or a string function used on a segment that is
 *  not a string segment (or sobj_arrow_file() on one that is not an arrow segment). */
#define SOBJ_E_INDEX (-16)

/** A short English description of an error code from this header. */
static inline const char *sobj_strerror(int code) {
  switch (code) {
    case SOBJ_OK: return "ok";
    case SOBJ_E_ARGUMENT: return "a NULL argument";
    case SOBJ_E_TOO_SMALL: return "the segment is smaller than a header";
    case SOBJ_E_MAGIC: return "wrong magic: not a sharedobject segment";
    case SOBJ_E_VERSION: return "unsupported segment format version";
    case SOBJ_E_HEADER_SIZE: return "wrong header size";
    case SOBJ_E_KIND: return "unknown kind";
    case SOBJ_E_FLAGS: return "unknown flags";
    case SOBJ_E_ATTRIBUTES: return "attributes too large";
    case SOBJ_E_DATA_OFFSET: return "data offset does not follow the attributes";
    case SOBJ_E_LENGTH: return "length and byte length disagree";
    case SOBJ_E_BOUNDS: return "data runs past the end of the segment";
    case SOBJ_E_HANDLE: return "not a sharedobject handle";
    case SOBJ_E_BUFFER: return "output buffer too small";
    case SOBJ_E_GENERATION: return "the segment's generation differs from the handle's";
    case SOBJ_E_LAYOUT: return "bad layout: string sections out of bounds or corrupt, or layout words set for a kind that has none";
    case SOBJ_E_INDEX: return "index out of range, or not a segment of the kind asked for";
    default: return "unknown error";
  }
}

/* ---------------------------------------------------------------------------------------- */
/* Kinds                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/** The element type of a segment; the value is the code stored at offset 12. */
typedef enum sobj_kind {
  SOBJ_BYTES = 0,          /**< untyped bytes (developer API segments), 1 byte each */
  SOBJ_FLOAT64 = 1,        /**< IEEE 754 double, 8 bytes */
  SOBJ_FLOAT32 = 2,        /**< IEEE 754 float, 4 bytes */
  SOBJ_INT8 = 3,           /**< int8_t */
  SOBJ_UINT8 = 4,          /**< uint8_t */
  SOBJ_UINT8_CLAMPED = 5,  /**< uint8_t (JavaScript Uint8ClampedArray) */
  SOBJ_INT16 = 6,          /**< int16_t */
  SOBJ_UINT16 = 7,         /**< uint16_t */
  SOBJ_INT32 = 8,          /**< int32_t */
  SOBJ_UINT32 = 9,         /**< uint32_t */
  SOBJ_INT64 = 10,         /**< int64_t */
  SOBJ_UINT64 = 11,        /**< uint64_t */
  SOBJ_LOGICAL = 12,       /**< true / false / NA, one byte each */
  SOBJ_STRING = 13,        /**< variable-width UTF-8 strings; the layout lives in the data */
  SOBJ_LIST = 14,          /**< a container's manifest (shape, leaves' handles) in the
                                attributes; no data */
  SOBJ_ARROW = 15,         /**< a table: an Arrow IPC file, 64-byte aligned buffers */
  SOBJ_MUTEX = 16,         /**< a robust mutex: 64 bytes of atomic words, no elements */
  SOBJ_BARRIER = 17,       /**< a barrier: atomic words and a table of parties, no elements */
  SOBJ_CONDITION = 18,     /**< a condition variable: atomic words, no elements */
  SOBJ_SEMAPHORE = 19,     /**< a counting semaphore: atomic words and a journal, no elements */
  SOBJ_CHANNEL = 20        /**< a bounded queue of byte messages: a ring of stamped slots */
} sobj_kind;

/** One more than the largest kind code; a code below it is valid if sobj_kind_name() knows it. */
#define SOBJ_KIND_COUNT 21

/* Element sizes in bytes of the fixed-width kinds. */
#define SOBJ_SIZEOF_BYTES 1
#define SOBJ_SIZEOF_FLOAT64 8
#define SOBJ_SIZEOF_FLOAT32 4
#define SOBJ_SIZEOF_INT8 1
#define SOBJ_SIZEOF_UINT8 1
#define SOBJ_SIZEOF_UINT8_CLAMPED 1
#define SOBJ_SIZEOF_INT16 2
#define SOBJ_SIZEOF_UINT16 2
#define SOBJ_SIZEOF_INT32 4
#define SOBJ_SIZEOF_UINT32 4
#define SOBJ_SIZEOF_INT64 8
#define SOBJ_SIZEOF_UINT64 8
#define SOBJ_SIZEOF_LOGICAL 1

static inline const char *sobj_kind_name(uint16_t code);

/** Whether `code` is a kind this format version defines. */
static inline int sobj_kind_valid(uint16_t code) {
  return sobj_kind_name(code) != NULL;
}

/** Bytes per element of kind `code`; 0 for SOBJ_STRING, SOBJ_LIST, SOBJ_ARROW and the
 *  synchronisation kinds (not plain arrays of elements) and for unknown codes. */
static inline uint64_t sobj_kind_element_size(uint16_t code) {
  switch (code) {
    case SOBJ_BYTES: case SOBJ_INT8: case SOBJ_UINT8: case SOBJ_UINT8_CLAMPED: case SOBJ_LOGICAL:
      return 1;
    case SOBJ_INT16: case SOBJ_UINT16:
      return 2;
    case SOBJ_FLOAT32: case SOBJ_INT32: case SOBJ_UINT32:
      return 4;
    case SOBJ_FLOAT64: case SOBJ_INT64: case SOBJ_UINT64:
      return 8;
    default:
      return 0;
  }
}

/** The name JavaScript uses for kind `code` ("float64", ...), or NULL for an unknown code. */
static inline const char *sobj_kind_name(uint16_t code) {
  static const char *const names[SOBJ_KIND_COUNT] = {
    "bytes", "float64", "float32", "int8", "uint8", "uint8clamped", "int16",
    "uint16", "int32", "uint32", "int64", "uint64", "logical", "string", "list", "arrow",
    "mutex", "barrier", "condition", "semaphore", "channel",
  };
  return code < SOBJ_KIND_COUNT ? names[code] : NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Little-endian readers: byte by byte, so neither alignment nor host byte order matters.    */
/* ---------------------------------------------------------------------------------------- */

/** The little-endian u16 at `p`. */
static inline uint16_t sobj_read_u16(const unsigned char *p) {
  return (uint16_t)((unsigned)p[0] | ((unsigned)p[1] << 8));
}

/** The little-endian u32 at `p`. */
static inline uint32_t sobj_read_u32(const unsigned char *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/** The little-endian u64 at `p`. */
static inline uint64_t sobj_read_u64(const unsigned char *p) {
  return (uint64_t)sobj_read_u32(p) | ((uint64_t)sobj_read_u32(p + 4) << 32);
}

/* Single raw fields of a segment's header. These check nothing: use them only on a header
 * that sobj_header_check() accepted, or to peek at fields while diagnosing a bad one. */
static inline uint16_t sobj_field_version(const unsigned char *seg) { return sobj_read_u16(seg + SOBJ_OFF_VERSION); }
static inline uint16_t sobj_field_header_size(const unsigned char *seg) { return sobj_read_u16(seg + SOBJ_OFF_HEADER_SIZE); }
static inline uint16_t sobj_field_kind(const unsigned char *seg) { return sobj_read_u16(seg + SOBJ_OFF_KIND); }
static inline uint16_t sobj_field_flags(const unsigned char *seg) { return sobj_read_u16(seg + SOBJ_OFF_FLAGS); }
static inline uint64_t sobj_field_length(const unsigned char *seg) { return sobj_read_u64(seg + SOBJ_OFF_LENGTH); }
static inline uint64_t sobj_field_byte_length(const unsigned char *seg) { return sobj_read_u64(seg + SOBJ_OFF_BYTE_LENGTH); }
static inline uint64_t sobj_field_data_offset(const unsigned char *seg) { return sobj_read_u64(seg + SOBJ_OFF_DATA_OFFSET); }
static inline uint64_t sobj_field_generation(const unsigned char *seg) { return sobj_read_u64(seg + SOBJ_OFF_GENERATION); }
static inline uint32_t sobj_field_owner_pid(const unsigned char *seg) { return sobj_read_u32(seg + SOBJ_OFF_OWNER_PID); }
static inline uint32_t sobj_field_attributes_len(const unsigned char *seg) { return sobj_read_u32(seg + SOBJ_OFF_ATTRIBUTES_LEN); }
static inline uint64_t sobj_field_owner_start(const unsigned char *seg) { return sobj_read_u64(seg + SOBJ_OFF_OWNER_START); }
static inline uint64_t sobj_field_owner_pidns(const unsigned char *seg) { return sobj_read_u64(seg + SOBJ_OFF_OWNER_PIDNS); }
static inline uint64_t sobj_field_created_ms(const unsigned char *seg) { return sobj_read_u64(seg + SOBJ_OFF_CREATED_MS); }
/** Kind-specific word `i` (0 <= i < SOBJ_AUX_WORDS). */
static inline uint64_t sobj_field_aux(const unsigned char *seg, unsigned i) { return sobj_read_u64(seg + SOBJ_OFF_AUX + 8u * i); }

/* ---------------------------------------------------------------------------------------- */
/* The decoded header                                                                        */
/* ---------------------------------------------------------------------------------------- */

/** A decoded, checked header: filled in by sobj_header_check(). Magic, version and header
 *  size are not stored, as a checked header always has the magic of its kind, a version
 *  this header reads and SOBJ_HEADER_SIZE. */
typedef struct sobj_header {
  /** Kind code (offset 12): one of enum sobj_kind. */
  uint16_t kind;
  /** Flag bits (offset 14): only SOBJ_KNOWN_FLAGS. */
  uint16_t flags;
  /** Owner pid (offset 48). */
  uint32_t owner_pid;
  /** Length in elements (offset 16). For a fixed-width kind, length * element size ==
   *  byte_length; for SOBJ_STRING, the number of strings; for SOBJ_ARROW, the number of
   *  rows (not checked against the file); for SOBJ_LIST, SOBJ_MUTEX and SOBJ_BARRIER, not
   *  checked (1 for the last two). */
  uint64_t length;
  /** Data byte length (offset 24). */
  uint64_t byte_length;
  /** Data offset (offset 32): align64(128 + attributes_len); data_offset + byte_length is
   *  within the segment. */
  uint64_t data_offset;
  /** Generation (offset 40): random, non-zero; equals the generation in the segment's handle. */
  uint64_t generation;
  /** Attributes byte length (offset 52), at most SOBJ_MAX_ATTRIBUTES. The attributes are UTF-8
   *  JSON at offset SOBJ_ATTRIBUTES_OFFSET, not NUL-terminated; 0 means none. */
  uint32_t attributes_len;
  /** Owner start time (offset 56): an OS-specific clock, 0 if unknown. With owner_pid it
   *  tells a live owner from a recycled pid. */
  uint64_t owner_start;
  /** Owner pid namespace (offset 64): on Linux the inode of /proc/<pid>/ns/pid, 0 if unknown. */
  uint64_t owner_pidns;
  /** Creation time (offset 72), milliseconds since the Unix epoch. */
  uint64_t created_ms;
  /** Kind-specific words (offsets 80 to 127): the string layout for SOBJ_STRING (index them
   *  with SOBJ_STRING_*, or use the sobj_string_* accessors), all zero for every other kind
   *  (a table's last word, its control word, reads as zero here). */
  uint64_t aux[SOBJ_AUX_WORDS];
} sobj_header;

/* ---------------------------------------------------------------------------------------- */
/* The string layout words: indices into sobj_header.aux (and for sobj_field_aux()).         */
/* All positions are byte offsets from the start of the data.                                */
/* ---------------------------------------------------------------------------------------- */

/** The validity bitmap: ceil(length / 8) bytes, bit i % 8 of byte i / 8 is 1 when present. */
#define SOBJ_STRING_VALIDITY 0
/** The int32 offsets, 4-aligned: entries + 1 of them (see sobj_string_entries()). */
#define SOBJ_STRING_OFFSETS 1
/** The UTF-8 bytes the offsets point into. */
#define SOBJ_STRING_VALUES 2
/** The byte length of the UTF-8 bytes, at most SOBJ_STRING_MAX_VALUES. */
#define SOBJ_STRING_VALUES_LEN 3
/** The int32 dictionary codes, 4-aligned, one per element; 0 when there is no dictionary. */
#define SOBJ_STRING_CODES 4
/** The number of unique strings in the dictionary; 0 when there is no dictionary. */
#define SOBJ_STRING_DICT_LEN 5
/** The most UTF-8 bytes one string segment may hold (INT32_MAX). */
#define SOBJ_STRING_MAX_VALUES 2147483647u

/* Accessors for a header that sobj_header_check() accepted with kind SOBJ_STRING. */
static inline uint64_t sobj_string_validity(const sobj_header *h) { return h->aux[SOBJ_STRING_VALIDITY]; }
static inline uint64_t sobj_string_offsets(const sobj_header *h) { return h->aux[SOBJ_STRING_OFFSETS]; }
static inline uint64_t sobj_string_values(const sobj_header *h) { return h->aux[SOBJ_STRING_VALUES]; }
static inline uint64_t sobj_string_values_len(const sobj_header *h) { return h->aux[SOBJ_STRING_VALUES_LEN]; }
static inline uint64_t sobj_string_codes(const sobj_header *h) { return h->aux[SOBJ_STRING_CODES]; }
static inline uint64_t sobj_string_dict_len(const sobj_header *h) { return h->aux[SOBJ_STRING_DICT_LEN]; }
/** Whether the strings are stored once each in a dictionary, with a code per element. */
static inline int sobj_string_has_dictionary(const sobj_header *h) { return h->aux[SOBJ_STRING_CODES] != 0; }
/** How many strings the offsets describe: the length, or the dictionary size with a
 *  dictionary. There are sobj_string_entries(h) + 1 offsets. */
static inline uint64_t sobj_string_entries(const sobj_header *h) {
  return sobj_string_has_dictionary(h) ? h->aux[SOBJ_STRING_DICT_LEN] : h->length;
}

/** Where the data of a segment with `attributes_len` bytes of attributes begins:
 *  align64(128 + attributes_len). Meaningful for attributes_len <= SOBJ_MAX_ATTRIBUTES. */
static inline uint64_t sobj_data_offset_for(uint64_t attributes_len) {
  return ((uint64_t)SOBJ_HEADER_SIZE + attributes_len + (SOBJ_DATA_ALIGN - 1)) &
         ~(uint64_t)(SOBJ_DATA_ALIGN - 1);
}

/** Whether the section of `len` bytes at `start` lies inside [0, byte_length), without
 *  overflow. `len_ok` == 0 means computing `len` itself overflowed. */
static inline int sobj_section_fits(uint64_t start, uint64_t len, int len_ok, uint64_t byte_length) {
  return len_ok && start <= UINT64_MAX - len && start + len <= byte_length;
}

/**
 * Checks the kind-specific words of a header whose data (`byte_length` bytes) lies inside the
 * segment, as the package does: for SOBJ_STRING every section fits the data and the int32
 * sections are 4-aligned; for every other kind all six words are zero. Returns SOBJ_OK or
 * SOBJ_E_LAYOUT. sobj_header_check() calls it; it is exposed for diagnostics.
 */
static inline int sobj_header_check_layout(const sobj_header *h) {
  unsigned i;
  if (h->kind == SOBJ_STRING) {
    const uint64_t validity = h->aux[SOBJ_STRING_VALIDITY];
    const uint64_t offsets = h->aux[SOBJ_STRING_OFFSETS];
    const uint64_t values = h->aux[SOBJ_STRING_VALUES];
    const uint64_t values_len = h->aux[SOBJ_STRING_VALUES_LEN];
    const uint64_t codes = h->aux[SOBJ_STRING_CODES];
    const uint64_t dict_len = h->aux[SOBJ_STRING_DICT_LEN];
    const uint64_t n = h->length;
    const uint64_t bl = h->byte_length;
    uint64_t entries;
    /* ceil(n / 8) without overflow. */
    if (!sobj_section_fits(validity, n / 8 + (n % 8 != 0), 1, bl)) return SOBJ_E_LAYOUT;
    if (codes == 0) {
      if (dict_len != 0) return SOBJ_E_LAYOUT;
      entries = n;
    } else {
      if (codes % 4 != 0) return SOBJ_E_LAYOUT;
      if (!sobj_section_fits(codes, n * 4, n <= UINT64_MAX / 4, bl)) return SOBJ_E_LAYOUT;
      entries = dict_len;
    }
    if (offsets % 4 != 0) return SOBJ_E_LAYOUT;
    if (!sobj_section_fits(offsets, (entries + 1) * 4, entries < UINT64_MAX / 4, bl)) return SOBJ_E_LAYOUT;
    if (!sobj_section_fits(values, values_len, 1, bl)) return SOBJ_E_LAYOUT;
    if (values_len > SOBJ_STRING_MAX_VALUES) return SOBJ_E_LAYOUT;
    return SOBJ_OK;
  }
  for (i = 0; i < SOBJ_AUX_WORDS; i++)
    if (h->aux[i] != 0) return SOBJ_E_LAYOUT;
  return SOBJ_OK;
}

/**
 * Decodes and checks the header of a segment of `segment_size` bytes mapped at `seg` (at least
 * the first min(segment_size, 128) bytes must be readable), the same checks, in the same order,
 * as the package's own reader:
 *
 *   1. segment_size >= 128                                   else SOBJ_E_TOO_SMALL
 *   2. magic "SHAREDOB" or "ARROW1\0\0"                      else SOBJ_E_MAGIC
 *   3. SOBJ_OLDEST_VERSION <= version <= SOBJ_VERSION        else SOBJ_E_VERSION
 *   4. header size == 128                                    else SOBJ_E_HEADER_SIZE
 *   5. a known kind code                                     else SOBJ_E_KIND
 *      a table of version SOBJ_VERSION                       else SOBJ_E_VERSION
 *      "ARROW1\0\0" for a table, "SHAREDOB" for every other kind
 *                                                            else SOBJ_E_MAGIC
 *   6. no flag bit outside SOBJ_KNOWN_FLAGS                  else SOBJ_E_FLAGS
 *   7. attributes_len <= 1 MiB                               else SOBJ_E_ATTRIBUTES
 *   8. data_offset == align64(128 + attributes_len)          else SOBJ_E_DATA_OFFSET
 *   9. fixed-width kinds: length * element size == byte_length, without overflow
 *                                                            else SOBJ_E_LENGTH
 *  10. data_offset + byte_length <= segment_size, without overflow
 *                                                            else SOBJ_E_BOUNDS
 *  11. the six kind-specific words (sobj_header_check_layout()):
 *      SOBJ_STRING, all without overflow and relative to the data, so inside
 *      [0, byte_length):
 *        validity bitmap: ceil(length / 8) bytes fit
 *        no dictionary (codes word 0): the dictionary size word is 0, entries = length
 *        dictionary: codes word a multiple of 4, 4 * length bytes of codes fit,
 *          entries = dictionary size
 *        offsets word a multiple of 4, (entries + 1) * 4 bytes of offsets fit
 *        values: values length bytes fit, and values length <= INT32_MAX
 *      every other kind: all six words are 0
 *                                                            else SOBJ_E_LAYOUT
 *
 * Returns SOBJ_OK (0) and fills `*out`, or a negative error code and leaves `*out` untouched.
 * On success the attributes (seg + 128, attributes_len bytes) and the data (seg + data_offset,
 * byte_length bytes) both lie inside the segment, and so does every string section. `out` may
 * be NULL to only check.
 */
static inline int sobj_header_check(const unsigned char *seg, uint64_t segment_size, sobj_header *out) {
  sobj_header h;
  uint64_t size;
  unsigned i;
  uint16_t version;
  int table_magic;
  if (seg == NULL) return SOBJ_E_ARGUMENT;
  if (segment_size < SOBJ_HEADER_SIZE) return SOBJ_E_TOO_SMALL;
  table_magic = memcmp(seg + SOBJ_OFF_MAGIC, SOBJ_TABLE_MAGIC, SOBJ_MAGIC_LEN) == 0;
  if (!table_magic && memcmp(seg + SOBJ_OFF_MAGIC, SOBJ_MAGIC, SOBJ_MAGIC_LEN) != 0) return SOBJ_E_MAGIC;
  version = sobj_read_u16(seg + SOBJ_OFF_VERSION);
  if (version < SOBJ_OLDEST_VERSION || version > SOBJ_VERSION) return SOBJ_E_VERSION;
  if (sobj_read_u16(seg + SOBJ_OFF_HEADER_SIZE) != SOBJ_HEADER_SIZE) return SOBJ_E_HEADER_SIZE;
  h.kind = sobj_read_u16(seg + SOBJ_OFF_KIND);
  if (!sobj_kind_valid(h.kind)) return SOBJ_E_KIND;
  if (h.kind == SOBJ_ARROW && version < SOBJ_VERSION) return SOBJ_E_VERSION;
  if (table_magic != (h.kind == SOBJ_ARROW)) return SOBJ_E_MAGIC;
  h.flags = sobj_read_u16(seg + SOBJ_OFF_FLAGS);
  if ((h.flags & ~SOBJ_KNOWN_FLAGS) != 0) return SOBJ_E_FLAGS;
  h.length = sobj_read_u64(seg + SOBJ_OFF_LENGTH);
  h.byte_length = sobj_read_u64(seg + SOBJ_OFF_BYTE_LENGTH);
  h.data_offset = sobj_read_u64(seg + SOBJ_OFF_DATA_OFFSET);
  h.generation = sobj_read_u64(seg + SOBJ_OFF_GENERATION);
  h.owner_pid = sobj_read_u32(seg + SOBJ_OFF_OWNER_PID);
  h.attributes_len = sobj_read_u32(seg + SOBJ_OFF_ATTRIBUTES_LEN);
  h.owner_start = sobj_read_u64(seg + SOBJ_OFF_OWNER_START);
  h.owner_pidns = sobj_read_u64(seg + SOBJ_OFF_OWNER_PIDNS);
  h.created_ms = sobj_read_u64(seg + SOBJ_OFF_CREATED_MS);
  for (i = 0; i < SOBJ_AUX_WORDS; i++) h.aux[i] = sobj_read_u64(seg + SOBJ_OFF_AUX + 8u * i);
  /* A table's last word is its control word, which other processes change: not a layout word. */
  if (h.kind == SOBJ_ARROW) h.aux[SOBJ_AUX_WORDS - 1] = 0;
  if (h.attributes_len > SOBJ_MAX_ATTRIBUTES) return SOBJ_E_ATTRIBUTES;
  /* attributes_len is at most 1 MiB here, so this cannot overflow. */
  if (h.data_offset != sobj_data_offset_for(h.attributes_len)) return SOBJ_E_DATA_OFFSET;
  size = sobj_kind_element_size(h.kind);
  if (size != 0) {
    if (h.length > UINT64_MAX / size || h.length * size != h.byte_length) return SOBJ_E_LENGTH;
  }
  if (h.byte_length > UINT64_MAX - h.data_offset || h.data_offset + h.byte_length > segment_size)
    return SOBJ_E_BOUNDS;
  if (sobj_header_check_layout(&h) != SOBJ_OK) return SOBJ_E_LAYOUT;
  if (out != NULL) *out = h;
  return SOBJ_OK;
}

/** The attributes of a checked segment: `h->attributes_len` bytes of UTF-8 JSON, NOT
 *  NUL-terminated. */
static inline const unsigned char *sobj_attributes(const unsigned char *seg, const sobj_header *h) {
  (void)h;
  return seg + SOBJ_ATTRIBUTES_OFFSET;
}

/** The data of a checked segment: `h->byte_length` bytes, aligned to 64 bytes from the start
 *  of the segment (so as aligned as the mapping itself). */
static inline const unsigned char *sobj_data(const unsigned char *seg, const sobj_header *h) {
  return seg + h->data_offset;
}

/** The total bytes a segment with header `h` needs: header, attributes, data. The segment
 *  itself may be larger (page rounding, reserved capacity). */
static inline uint64_t sobj_total_size(const sobj_header *h) {
  return h->data_offset + h->byte_length;
}

/** Where the control word of a segment with header `h` is (see "Segment layout"): offset 120
 *  for a table, align8(data offset + byte length) for every other kind. Map it shared and
 *  writable, and touch it only with atomic operations. */
static inline uint64_t sobj_control_offset(const sobj_header *h) {
  if (h->kind == SOBJ_ARROW) return SOBJ_ARROW_CONTROL_OFFSET;
  return (sobj_total_size(h) + 7) & ~(uint64_t)7;
}

/** The bytes a segment made by this version occupies: header, attributes, data and control
 *  word; a table's ends with its data, its Arrow file's last byte. */
static inline uint64_t sobj_segment_size(const sobj_header *h) {
  if (h->kind == SOBJ_ARROW) return sobj_total_size(h);
  return sobj_control_offset(h) + 8;
}

/** sobj_string_get() returns this (positive, not an error) for an NA element. */
#define SOBJ_NA 1

/**
 * Element `i` of a string segment whose header `h` sobj_header_check() accepted.
 *
 * Returns SOBJ_OK and points `*str` at the element's UTF-8 bytes inside the segment (NOT
 * NUL-terminated; `*len` bytes, possibly 0), or SOBJ_NA for NA (`*str` = NULL, `*len` = 0).
 * Fails with SOBJ_E_ARGUMENT (a NULL pointer), SOBJ_E_INDEX (not a string segment, or
 * i >= h->length) or SOBJ_E_LAYOUT (a dictionary code >= the dictionary size, or offsets that
 * are negative, decreasing or past the values section: a corrupt segment); on failure the
 * outputs are untouched.
 *
 * The offsets read are checked against the values section on every call, so a corrupt segment
 * can never make this read or point outside the data. With a dictionary the element's code
 * decides NA (negative) and the validity bitmap is not consulted; the owner may change codes
 * (JavaScript's set()) while others read, and each call reads the code once.
 */
static inline int sobj_string_get(const unsigned char *seg, const sobj_header *h, uint64_t i,
                                  const char **str, size_t *len) {
  const unsigned char *data, *off;
  uint64_t entry;
  uint32_t start, end;
  if (seg == NULL || h == NULL || str == NULL || len == NULL) return SOBJ_E_ARGUMENT;
  if (h->kind != SOBJ_STRING || i >= h->length) return SOBJ_E_INDEX;
  data = seg + h->data_offset;
  if (sobj_string_has_dictionary(h)) {
    /* An int32 read as its two's-complement bit pattern: bit 31 set means negative. */
    uint32_t code = sobj_read_u32(data + h->aux[SOBJ_STRING_CODES] + 4u * i);
    if (code & 0x80000000u) {
      *str = NULL;
      *len = 0;
      return SOBJ_NA;
    }
    if (code >= h->aux[SOBJ_STRING_DICT_LEN]) return SOBJ_E_LAYOUT;
    entry = code;
  } else {
    if (!(data[h->aux[SOBJ_STRING_VALIDITY] + i / 8] & (1u << (i % 8)))) {
      *str = NULL;
      *len = 0;
      return SOBJ_NA;
    }
    entry = i;
  }
  /* entry < entries, and the header check made the entries + 1 offsets fit the data. */
  off = data + h->aux[SOBJ_STRING_OFFSETS] + 4u * entry;
  start = sobj_read_u32(off);
  end = sobj_read_u32(off + 4);
  /* As unsigned, a negative offset is >= 2^31 > values length (<= INT32_MAX): caught too. */
  if (start > end || end > h->aux[SOBJ_STRING_VALUES_LEN]) return SOBJ_E_LAYOUT;
  *str = (const char *)(data + h->aux[SOBJ_STRING_VALUES] + start);
  *len = (size_t)(end - start);
  return SOBJ_OK;
}

/** The magic an Arrow IPC file starts and ends with (not NUL-terminated in the segment). */
#define SOBJ_ARROW_MAGIC "ARROW1"
/** Bytes of SOBJ_ARROW_MAGIC. */
#define SOBJ_ARROW_MAGIC_LEN 6
/** Every message and buffer of an arrow segment's IPC file starts on this boundary. */
#define SOBJ_ARROW_ALIGN 64
/** Where in the IPC file the u32 FNV-1a hash of its metadata is (inside the magic's padding). */
#define SOBJ_ARROW_HASH_OFFSET 8

/**
 * The Arrow IPC file of an arrow segment whose header `h` sobj_header_check() accepted: the
 * segment itself, from its first byte to the end of its data. Points `*file` at `seg` and sets
 * `*len` to h.data_offset + h.byte_length. Returns SOBJ_OK, SOBJ_E_ARGUMENT (a NULL pointer),
 * SOBJ_E_INDEX (not an arrow segment) or SOBJ_E_LAYOUT (data too short for a file, or a missing
 * leading or trailing "ARROW1"); on failure the outputs are untouched. The footer and the
 * batches are for an Arrow library to read and check.
 */
static inline int sobj_arrow_file(const unsigned char *seg, const sobj_header *h,
                                  const unsigned char **file, size_t *len) {
  uint64_t total;
  if (seg == NULL || h == NULL || file == NULL || len == NULL) return SOBJ_E_ARGUMENT;
  if (h->kind != SOBJ_ARROW) return SOBJ_E_INDEX;
  total = sobj_total_size(h);
  /* The smallest data: magic and padding (8), footer length (4), magic (6). */
  if (h->byte_length < 8 + 4 + SOBJ_ARROW_MAGIC_LEN || total > (uint64_t)SIZE_MAX) return SOBJ_E_LAYOUT;
  if (memcmp(seg, SOBJ_ARROW_MAGIC, SOBJ_ARROW_MAGIC_LEN) != 0 ||
      memcmp(seg + total - SOBJ_ARROW_MAGIC_LEN, SOBJ_ARROW_MAGIC, SOBJ_ARROW_MAGIC_LEN) != 0)
    return SOBJ_E_LAYOUT;
  *file = seg;
  *len = (size_t)total;
  return SOBJ_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Ids and handles                                                                           */
/* ---------------------------------------------------------------------------------------- */

/** Whether `c` may appear in an id: A-Z a-z 0-9 . _ - (ASCII, independent of the locale). */
static inline int sobj_id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == '-';
}

/** Whether the `len` bytes at `id` are a valid id: 1 to 25 id characters, not starting with
 *  '.' or '-'. */
static inline int sobj_id_valid_n(const char *id, size_t len) {
  size_t i;
  if (id == NULL || len == 0 || len > SOBJ_MAX_ID_LEN) return 0;
  if (id[0] == '.' || id[0] == '-') return 0;
  for (i = 0; i < len; i++)
    if (!sobj_id_char(id[i])) return 0;
  return 1;
}

/** Whether the NUL-terminated string `id` is a valid id. */
static inline int sobj_id_valid(const char *id) {
  size_t len = 0;
  if (id == NULL) return 0;
  while (len <= SOBJ_MAX_ID_LEN && id[len] != '\0') len++;
  return sobj_id_valid_n(id, len);
}

/** The value of hex digit `c` (either case), or -1. */
static inline int sobj_hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/**
 * Splits a handle ("sobj1:<id>:<16 hex digits>", optionally followed by
 * ":<pid>.<fd>.<pidns>" for an unnamed Linux segment) into its id and generation, checking every
 * part as the package does: the tag "sobj1", a valid id, a generation of exactly 16 hex digits
 * (either case), and for the unnamed form three decimal numbers.
 *
 * Writes the id, NUL-terminated, to `id_out` (`id_cap` bytes; SOBJ_MAX_ID_LEN + 1 is always
 * enough), the generation to `*generation_out`, and for the unnamed form the owner's pid and
 * descriptor to `*pid_out` and `*fd_out` (set to -1 for a named segment); each of these may be
 * NULL. Returns SOBJ_OK, SOBJ_E_ARGUMENT (NULL handle or id_out), SOBJ_E_HANDLE (not a handle)
 * or SOBJ_E_BUFFER (id does not fit); on failure the outputs are untouched.
 */
static inline int sobj_parse_handle_place(const char *handle, char *id_out, size_t id_cap, uint64_t *generation_out,
                                          long *pid_out, long *fd_out) {
  static const char tag[] = SOBJ_HANDLE_TAG;
  const size_t tag_len = sizeof tag - 1;
  const char *id, *gen, *end;
  size_t id_len;
  uint64_t generation = 0;
  long nums[3] = {-1, -1, -1};
  int i;
  if (handle == NULL || id_out == NULL) return SOBJ_E_ARGUMENT;
  if (strncmp(handle, tag, tag_len) != 0 || handle[tag_len] != ':') return SOBJ_E_HANDLE;
  id = handle + tag_len + 1;
  /* The id runs to the next ':'; without one there are fewer than three parts. Scanning at
   * most SOBJ_MAX_ID_LEN + 1 bytes is enough to tell. */
  for (id_len = 0; id_len <= SOBJ_MAX_ID_LEN && id[id_len] != ':' && id[id_len] != '\0'; id_len++) {
  }
  if (id[id_len] != ':' || !sobj_id_valid_n(id, id_len)) return SOBJ_E_HANDLE;
  gen = id + id_len + 1;
  for (i = 0; i < SOBJ_HANDLE_GENERATION_DIGITS; i++) {
    int v = sobj_hex_value(gen[i]); /* stops at the NUL, which is not a hex digit */
    if (v < 0) return SOBJ_E_HANDLE;
    generation = (generation << 4) | (uint64_t)v;
  }
  end = gen + SOBJ_HANDLE_GENERATION_DIGITS;
  if (*end == ':') {
    /* The unnamed form: exactly three '.'-separated decimal numbers. */
    const char *p = end + 1;
    for (i = 0; i < 3; i++) {
      long v = 0;
      int digits = 0;
      while (*p >= '0' && *p <= '9' && digits < 12) v = v * 10 + (*p++ - '0'), digits++;
      if (digits == 0 || digits == 12) return SOBJ_E_HANDLE;
      nums[i] = v;
      if (i < 2 && *p++ != '.') return SOBJ_E_HANDLE;
    }
    if (*p != '\0') return SOBJ_E_HANDLE;
  } else if (*end != '\0') {
    return SOBJ_E_HANDLE; /* trailing garbage */
  }
  if (id_cap < id_len + 1) return SOBJ_E_BUFFER;
  memcpy(id_out, id, id_len);
  id_out[id_len] = '\0';
  if (generation_out != NULL) *generation_out = generation;
  if (pid_out != NULL) *pid_out = nums[0];
  if (fd_out != NULL) *fd_out = nums[1];
  return SOBJ_OK;
}

/** sobj_parse_handle_place() without the owner's pid and descriptor. */
static inline int sobj_parse_handle(const char *handle, char *id_out, size_t id_cap, uint64_t *generation_out) {
  return sobj_parse_handle_place(handle, id_out, id_cap, generation_out, NULL, NULL);
}

/**
 * Linux: writes the path a process of the same user open()s to read the segment a handle names,
 * "/dev/shm/sobj.<id>" (named) or "/proc/<pid>/fd/<fd>" (unnamed), NUL-terminated, to `out`
 * (`cap` bytes; 64 is always enough). Returns SOBJ_OK, SOBJ_E_ARGUMENT, SOBJ_E_HANDLE or
 * SOBJ_E_BUFFER. The segment's header generation must still be checked against the handle's.
 */
static inline int sobj_handle_path(const char *handle, char *out, size_t cap) {
  char id[SOBJ_MAX_ID_LEN + 1];
  long pid, fd;
  int rc, n;
  if (out == NULL) return SOBJ_E_ARGUMENT;
  rc = sobj_parse_handle_place(handle, id, sizeof id, NULL, &pid, &fd);
  if (rc != SOBJ_OK) return rc;
  if (pid >= 0) n = snprintf(out, cap, "/proc/%ld/fd/%ld", pid, fd);
  else n = snprintf(out, cap, "/dev/shm/sobj.%s", id);
  return n < 0 || (size_t)n >= cap ? SOBJ_E_BUFFER : SOBJ_OK;
}

/** Writes the POSIX shm_open() name of segment `id`, "/sobj.<id>", NUL-terminated, to `out`
 *  (`cap` bytes; SOBJ_MAX_OS_NAME_LEN + 1 is always enough). Returns SOBJ_OK, SOBJ_E_ARGUMENT,
 *  SOBJ_E_HANDLE (invalid id) or SOBJ_E_BUFFER. */
static inline int sobj_posix_name(const char *id, char *out, size_t cap) {
  static const char prefix[] = SOBJ_POSIX_NAME_PREFIX;
  const size_t prefix_len = sizeof prefix - 1;
  size_t id_len;
  if (id == NULL || out == NULL) return SOBJ_E_ARGUMENT;
  if (!sobj_id_valid(id)) return SOBJ_E_HANDLE;
  id_len = strlen(id);
  if (cap < prefix_len + id_len + 1) return SOBJ_E_BUFFER;
  memcpy(out, prefix, prefix_len);
  memcpy(out + prefix_len, id, id_len + 1);
  return SOBJ_OK;
}

/** Writes the handle "sobj1:<id>:<16 lower-case hex digits>" of segment `id` with generation
 *  `generation`, NUL-terminated, to `out` (`cap` bytes; SOBJ_MAX_HANDLE_LEN + 1 is always
 *  enough). Returns SOBJ_OK, SOBJ_E_ARGUMENT, SOBJ_E_HANDLE (invalid id) or SOBJ_E_BUFFER. */
static inline int sobj_format_handle(const char *id, uint64_t generation, char *out, size_t cap) {
  static const char tag[] = SOBJ_HANDLE_TAG;
  static const char digits[] = "0123456789abcdef";
  const size_t tag_len = sizeof tag - 1;
  size_t id_len, at;
  int i;
  if (id == NULL || out == NULL) return SOBJ_E_ARGUMENT;
  if (!sobj_id_valid(id)) return SOBJ_E_HANDLE;
  id_len = strlen(id);
  if (cap < tag_len + 1 + id_len + 1 + SOBJ_HANDLE_GENERATION_DIGITS + 1) return SOBJ_E_BUFFER;
  memcpy(out, tag, tag_len);
  out[tag_len] = ':';
  memcpy(out + tag_len + 1, id, id_len);
  at = tag_len + 1 + id_len;
  out[at++] = ':';
  for (i = SOBJ_HANDLE_GENERATION_DIGITS - 1; i >= 0; i--) out[at++] = digits[(generation >> (4 * i)) & 15];
  out[at] = '\0';
  return SOBJ_OK;
}

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SHAREDOBJECT_H */
