//! The per-process registry: the one place where the lifecycle rules live.
//!
//! - A [`View`] owns a share of one [`Mapping`] (an `Arc`): the mapping is unmapped when the last
//!   view of it drops, never before, so no safe call can leave a pointer to unmapped memory.
//! - A process maps a segment once per mode; the registry keeps only weak references, so it
//!   never keeps a mapping alive by itself.
//! - The owner (creating process) releases a segment when its last view drops, unless the
//!   segment's handle was handed out (then it stays until `free` or the owner's exit) or it is
//!   persistent (then it stays until `free`). Releasing removes a named segment's name, or closes
//!   the owner's descriptor of a memfd segment (the kernel frees it with its last mapping).
//! - A receiver's `free` marks the segment (its header's freed flag, and the control word) and,
//!   for a named one, removes its name; the owner sees the mark when it next looks ([`reap`]) and
//!   lets go of what it holds for the segment. With `opens: n` the owner lets go the same way once
//!   `n` other processes have opened it (they count in the control word); views keep working.
//! - `close` retires a mapping: its pages are given back at once, replaced by private zero pages
//!   at the same addresses, and the range itself is unmapped when the last view drops. A mapping
//!   is live, then retired, then released (unmapped): [`View::is_live`] and [`View::retire`] are
//!   the state machine's two questions, asked of the mapping itself, never of a name.
//! - Every mapping this process holds, live or retired, counts against one budget (half of
//!   `vm.max_map_count`), so the kernel's map count never runs out under the engine.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Code, Error, Result};
use crate::header::{self, Header};
use crate::kind::Kind;
use crate::name::{self, Place};
use crate::sys;

/// How a process maps a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Writes are seen by every process at once.
    Shared,
    /// A write copies the touched page for this process alone.
    CopyOnWrite,
}

impl Mode {
    fn access(self) -> sys::Access {
        match self {
            Mode::Shared => sys::Access::Shared,
            Mode::CopyOnWrite => sys::Access::CopyOnWrite,
        }
    }
    fn of_header(h: &Header) -> Mode {
        if h.copy_on_write() {
            Mode::CopyOnWrite
        } else {
            Mode::Shared
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Mode::Shared => "shared",
            Mode::CopyOnWrite => "cow",
        }
    }
}

/// What a new segment holds.
#[derive(Debug, Clone, Default)]
pub struct CreateSpec<'a> {
    /// A user-chosen id; a random one when `None`. A named segment is a file in `/dev/shm`.
    pub id: Option<&'a str>,
    pub kind: Option<Kind>,
    /// Elements.
    pub length: u64,
    /// Data bytes; must be `length` × element size for fixed-width kinds.
    pub byte_length: u64,
    /// JSON text stored with the segment.
    pub attributes: &'a str,
    pub copy_on_write: bool,
    pub persist: bool,
    /// Make a named segment (a file in `/dev/shm`) even without an id.
    pub named: bool,
    /// Allocate every page now (see `sys::create_named`).
    pub reserve: bool,
    pub developer: bool,
    pub aux: [u64; header::AUX_WORDS],
}

/// Identifies one segment: its id and generation (ids can be reused; generations are random).
pub type SegKey = (String, u64);

/// One mapping of a segment in this process, shared by all its views in every thread.
pub struct Mapping {
    /// Unmapped on drop, except after `retire` replaced it in place (see Drop).
    map: std::mem::ManuallyDrop<sys::Map>,
    header: Header,
    attributes: String,
    key: SegKey,
    mode: Mode,
    handle: String,
    owner: bool,
    /// Live → retired, once (Acquire/Release: a thread that sees `true` also sees the pages
    /// replaced by `retire`).
    retired: AtomicBool,
    /// Retired by `retire` (not by losing a race to map): its bytes are in `RETIRED_BYTES`.
    counted_retired: AtomicBool,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        crate::guard::unwatch(self.map.ptr());
        if !self.retired.swap(true, Ordering::AcqRel) {
            LIVE.fetch_sub(1, Ordering::Relaxed);
            if self.owner {
                mapping_gone(&self.key);
            }
        } else if self.counted_retired.load(Ordering::Acquire) {
            RETIRED_BYTES.fetch_sub(self.map.len(), Ordering::Relaxed);
        }
        // The last view is gone, and a view is what every buffer over the range holds (the
        // binding keeps one for a detached buffer until the engine collects that buffer, so a
        // thread-pool job writing through it has ended): nothing can reach the range any more.
        // SAFETY: dropped exactly once, here; nothing uses `map` after the Mapping's drop.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.map) };
        MAPPED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A view that does not keep its mapping alive: asks whether it still exists.
#[derive(Clone, Default)]
pub struct WeakView {
    mapping: Weak<Mapping>,
}

impl WeakView {
    pub fn upgrade(&self) -> Option<View> {
        self.mapping.upgrade().map(|mapping| View { mapping })
    }
}

/// One view handed out: keeps its mapping alive until dropped. The pointer stays valid (the
/// segment's bytes, or zero pages once the mapping is retired) for the view's whole life.
pub struct View {
    mapping: Arc<Mapping>,
}

// SAFETY: a view is process memory plus plain data; the registry it touches on drop is behind
// a mutex, so views may move to and drop on any thread (finalizers run on any thread).
unsafe impl Send for View {}
unsafe impl Sync for View {}
// SAFETY: as for View: the map is process memory, valid from any thread until unmapped on drop.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl View {
    /// A reference that does not keep the mapping mapped.
    pub fn downgrade(&self) -> WeakView {
        WeakView {
            mapping: Arc::downgrade(&self.mapping),
        }
    }
    /// Whether the mapping is live: not closed in this process (by any thread).
    pub fn is_live(&self) -> bool {
        !self.mapping.retired.load(Ordering::Acquire)
    }
    /// Closes this mapping in this process (every thread sees it): its pages are given back
    /// now and read as zeros, and the next `open` maps the segment afresh. The range itself is
    /// unmapped when the last view drops. Returns whether it was live.
    pub fn retire(&self) -> bool {
        retire_mapping(&self.mapping)
    }
    /// The first data byte.
    pub fn ptr(&self) -> *mut u8 {
        Self::data_ptr(&self.mapping)
    }
    fn data_ptr(m: &Mapping) -> *mut u8 {
        // SAFETY: data_offset + byte_length <= map.len() was checked by Header::decode against
        // the mapped size, so the pointer stays inside the mapping.
        unsafe { m.map.ptr().add(m.header.data_offset as usize) }
    }
    pub fn byte_length(&self) -> usize {
        self.mapping.header.byte_length as usize
    }
    pub fn header(&self) -> &Header {
        &self.mapping.header
    }
    pub fn attributes(&self) -> &str {
        &self.mapping.attributes
    }
    pub fn id(&self) -> &str {
        &self.mapping.key.0
    }
    pub fn handle(&self) -> &str {
        &self.mapping.handle
    }
    pub fn mode(&self) -> Mode {
        self.mapping.mode
    }
    pub fn owner(&self) -> bool {
        self.mapping.owner
    }
    /// `id:generation:mode`: the same for every view of this mapping.
    pub fn key(&self) -> String {
        view_key(&self.mapping.key, self.mapping.mode)
    }
    /// A file path another process of this user can open to read the segment, if there is one.
    pub fn path(&self) -> Option<String> {
        path_of(&self.mapping.handle)
    }
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("handle", &self.handle())
            .field("mode", &self.mode())
            .finish()
    }
}

fn view_key(k: &SegKey, mode: Mode) -> String {
    format!("{}:{:016x}:{}", k.0, k.1, mode.name())
}

/// What `locate` finds: the segment a handle names, without mapping it.
#[derive(Debug, Clone)]
pub struct Located {
    pub key: String,
    pub header: Header,
    pub mode: Mode,
}

/// A segment as `list` reports it.
#[derive(Debug, Clone)]
pub struct Listing {
    pub id: String,
    pub header: Header,
    /// Bytes the segment occupies.
    pub size: u64,
    /// `None` when this process cannot tell (another pid namespace, or Windows).
    pub owner_alive: Option<bool>,
    /// Whether it is a named segment (a file) rather than an unnamed one held by its owner.
    pub named: bool,
}

/// A segment this process created, and what keeps it nameable.
struct Owned {
    named: bool,
    persistent: bool,
    handed_out: bool,
    /// With `opens: n`: the count of other processes' opens at which the owner may let it go.
    opens_target: Option<u64>,
    /// In `Registry::watch`: the owner looks at its control word from time to time.
    watched: bool,
    /// Live (not retired) mappings of it in this process.
    live: usize,
    /// Bytes the segment occupies.
    size: u64,
    /// Where its control word lies; 0 for none.
    control: u64,
    /// The memfd of an unnamed segment: other processes open it through /proc while it is open.
    #[cfg(target_os = "linux")]
    file: Option<sys::File>,
    /// Windows ends a mapping with its last handle: the owner keeps one while the segment must
    /// stay nameable.
    #[cfg(windows)]
    keeper: Option<sys::Map>,
}

#[derive(Default)]
struct Registry {
    mappings: HashMap<(SegKey, Mode), Weak<Mapping>>,
    owned: HashMap<SegKey, Owned>,
    /// Handed-out segments whose control word the owner looks at, oldest look first.
    watch: VecDeque<SegKey>,
    last_created: Option<String>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);
static EXIT_HOOK: Once = Once::new();
/// Mappings made and not yet retired or dropped, across threads.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Mappings made and not yet unmapped, live or retired: every range the process holds.
static MAPPED: AtomicUsize = AtomicUsize::new(0);
/// Bytes of mappings retired and not yet unmapped: address space held for buffers that may
/// still be reached.
static RETIRED_BYTES: AtomicUsize = AtomicUsize::new(0);
/// How many mappings were ever retired: a thread that saw one value knows no mapping was closed
/// since, without asking each one.
static CLOSES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The counter of closes (see `CLOSES`), for readers that poll it cheaply; it lives as long as
/// the process.
pub fn closes_counter() -> &'static std::sync::atomic::AtomicU32 {
    &CLOSES
}

fn registry() -> MutexGuard<'static, Option<Registry>> {
    // A panic while holding the lock leaves plain data behind; it is still consistent enough to use.
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut guard = registry();
    f(guard.get_or_insert_with(Registry::default))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn gone(id: &str) -> Error {
    Error::new(
        Code::NotFound,
        format!(
            "no segment with id {id:?}: it was freed, its owner released it, or it never existed"
        ),
    )
}

/// Decodes the header and attributes read from a segment of `size` bytes.
fn decode_head(head: &[u8], size: u64) -> Result<(Header, String)> {
    let h = Header::decode(head, size)?;
    let end = header::FIXED_SIZE + h.attributes_len as usize;
    let attrs = head.get(header::FIXED_SIZE..end).ok_or_else(|| {
        Error::new(
            Code::BadHeader,
            "segment attributes run past the header read",
        )
    })?;
    let attrs = String::from_utf8(attrs.to_vec())
        .map_err(|_| Error::new(Code::BadHeader, "segment attributes are not UTF-8"))?;
    Ok((h, attrs))
}

/// Opens the file of the segment at `place`, for writing when `write`.
fn open_place(id: &str, place: &Place, write: bool) -> Result<sys::File> {
    match *place {
        Place::Named => sys::open_named(id, write),
        #[cfg(target_os = "linux")]
        Place::Memfd { pid, fd, pidns } => sys::open_memfd(id, pid, fd, pidns, write),
        #[cfg(not(target_os = "linux"))]
        Place::Memfd { .. } => Err(Error::new(
            Code::NotFound,
            "unnamed segments of Linux processes open only on Linux",
        )),
    }
}

/// Opens and checks the segment a handle names: the header must decode against the real size,
/// carry the handle's generation, not be freed, and (for a memfd) name the owner that holds it.
fn open_checked(
    id: &str,
    generation: Option<u64>,
    place: &Place,
    write: bool,
) -> Result<(sys::File, Header, String)> {
    let file = match open_place(id, place, write) {
        Err(e) if write && e.code == Code::Permission && matches!(place, Place::Named) => {
            // Read-only access still serves copy-on-write and inspection.
            return Err(e);
        }
        r => r?,
    };
    let head = sys::read_head(&file)?;
    let (h, attributes) = decode_head(&head, file.size())?;
    if generation.is_some_and(|g| g != h.generation) {
        return Err(Error::new(
            Code::NotFound,
            format!("the segment this handle named was freed; id {id:?} now names another one"),
        ));
    }
    if h.flags & header::FLAG_FREED != 0 {
        return Err(gone(id));
    }
    if let Place::Memfd { pid, .. } = *place {
        if h.owner_pid != pid || sys::owner_alive(pid, h.owner_start, h.owner_pidns) == Some(false)
        {
            return Err(gone(id));
        }
    }
    Ok((file, h, attributes))
}

/// Creates a segment, fills it with `init` (or zeros), and returns the owner's first view.
pub fn create(spec: &CreateSpec<'_>, init: Option<&[u8]>) -> Result<View> {
    let kind = spec
        .kind
        .ok_or_else(|| Error::new(Code::InvalidArgument, "no kind given"))?;
    if let Some(size) = kind.element_size() {
        if spec.length.checked_mul(size) != Some(spec.byte_length) {
            return Err(Error::new(
                Code::OutOfRange,
                format!(
                    "{} elements of {} need {} bytes",
                    spec.length,
                    kind.name(),
                    spec.length.saturating_mul(size)
                ),
            ));
        }
    }
    if spec.byte_length > isize::MAX as u64 / 2 {
        return Err(Error::new(
            Code::OutOfRange,
            format!(
                "{} bytes is more than one segment can hold",
                spec.byte_length
            ),
        ));
    }
    if let Some(limit) = sys::memory_limit().filter(|&l| spec.byte_length > l) {
        return Err(Error::new(
            Code::OutOfRange,
            format!(
                "{} bytes is more than this machine's memory ({limit} bytes of RAM and swap) can hold",
                spec.byte_length
            ),
        ));
    }
    if spec.attributes.len() > header::MAX_ATTRIBUTES {
        return Err(Error::new(
            Code::OutOfRange,
            format!(
                "attributes take {} bytes; at most {} are allowed",
                spec.attributes.len(),
                header::MAX_ATTRIBUTES
            ),
        ));
    }
    if init.is_some_and(|i| i.len() as u64 > spec.byte_length) {
        return Err(Error::new(
            Code::OutOfRange,
            "initial data larger than the segment",
        ));
    }
    if let Some(id) = spec.id {
        name::validate_id(id)?;
    }
    check_mapping_budget()?;
    let (pid, start, pidns) = sys::current_process();
    let mut flags = 0;
    if spec.copy_on_write {
        flags |= header::FLAG_COPY_ON_WRITE;
    }
    if spec.persist {
        flags |= header::FLAG_PERSIST;
    }
    if spec.developer {
        flags |= header::FLAG_DEVELOPER;
    }
    if !spec.reserve {
        flags |= header::FLAG_UNRESERVED;
    }
    let h = Header {
        kind,
        flags,
        length: spec.length,
        byte_length: spec.byte_length,
        data_offset: Header::data_offset_for(spec.attributes.len()),
        generation: name::generate_generation(),
        owner_pid: pid,
        attributes_len: spec.attributes.len() as u32,
        owner_start: start,
        owner_pidns: pidns,
        created_ms: now_ms(),
        aux: spec.aux,
    };
    let mut head = h.encode().to_vec();
    head.extend_from_slice(spec.attributes.as_bytes());
    let named = spec.id.is_some() || spec.persist || spec.named || !cfg!(target_os = "linux");
    crate::limits::check_create(
        &spec.id.map_or_else(
            || "a new segment".to_string(),
            |id| format!("segment {id:?}"),
        ),
        h.total_size(),
        named,
    )?;
    let make = |id: &str| -> Result<(sys::File, sys::Map)> {
        #[cfg(target_os = "linux")]
        if !named {
            return sys::create_memfd(
                id,
                &head,
                h.data_offset,
                h.segment_size(),
                init,
                spec.reserve,
            );
        }
        sys::create_named(
            id,
            &head,
            h.data_offset,
            h.segment_size(),
            init,
            spec.reserve,
        )
    };
    let (id, file, map) = match spec.id {
        Some(id) => {
            let (f, m) = make(id)?;
            (id.to_string(), f, m)
        }
        None => {
            // 80 random bits make a clash all but impossible; retry the odd one anyway.
            let mut tries = 0;
            loop {
                let id = name::generate_id();
                match make(&id) {
                    Err(e) if e.code == Code::Exists && tries < 8 => tries += 1,
                    r => {
                        let (f, m) = r?;
                        break (id, f, m);
                    }
                }
            }
        }
    };
    install_exit_hook();
    let key: SegKey = (id.clone(), h.generation);
    let mode = Mode::of_header(&h);
    // The copy-on-write view is made before the shared one goes, so the segment never has no
    // holder (on Windows that would end it).
    let map = match mode {
        Mode::Shared => map,
        Mode::CopyOnWrite => match sys::map_file(&file, sys::Access::CopyOnWrite, false) {
            Ok(m) => m,
            Err(e) => {
                if named {
                    let _ = sys::unlink(&id);
                }
                return Err(e);
            }
        },
    };
    #[cfg(target_os = "linux")]
    let handle = if named {
        name::format_handle(&id, h.generation, &Place::Named)
    } else {
        let place = Place::Memfd {
            pid,
            fd: file.raw_fd(),
            pidns,
        };
        name::format_handle(&id, h.generation, &place)
    };
    #[cfg(not(target_os = "linux"))]
    let handle = name::format_handle(&id, h.generation, &Place::Named);
    crate::guard::watch(map.ptr(), map.len());
    let mapping = Arc::new(Mapping {
        map: std::mem::ManuallyDrop::new(map),
        header: h.clone(),
        attributes: spec.attributes.to_string(),
        key: key.clone(),
        mode,
        handle,
        owner: true,
        retired: AtomicBool::new(false),
        counted_retired: AtomicBool::new(false),
    });
    LIVE.fetch_add(1, Ordering::Relaxed);
    MAPPED.fetch_add(1, Ordering::Relaxed);
    #[cfg(windows)]
    let keeper = if spec.persist || spec.developer {
        sys::map_file(&file, sys::Access::Peek, false).ok()
    } else {
        None
    };
    let owned = Owned {
        named,
        persistent: spec.persist || spec.developer,
        handed_out: false,
        opens_target: None,
        watched: false,
        live: 1,
        size: h.segment_size(),
        control: h.control_offset(),
        #[cfg(target_os = "linux")]
        file: (!named).then_some(file),
        #[cfg(windows)]
        keeper,
    };
    #[cfg(not(target_os = "linux"))]
    drop(file);
    with(|r| {
        r.last_created = Some(id);
        r.owned.insert(key.clone(), owned);
        r.mappings.insert((key, mode), Arc::downgrade(&mapping));
    });
    Ok(View { mapping })
}

/// Refuses a new mapping when this process holds so many that the next could fail in the engine
/// itself (an abort, not an error): half of `vm.max_map_count` is ours to use.
fn check_mapping_budget() -> Result<()> {
    if over_mapping_budget() {
        let budget = mapping_budget();
        return Err(Error::new(
            Code::NoSpace,
            format!(
                "this process holds {budget} mappings, half of what the OS allows (vm.max_map_count): close() vectors \
                 you no longer use, drop closed ones, or let the event loop turn so that dropped ones are released"
            ),
        ));
    }
    Ok(())
}

/// Finds the segment a handle names and checks it can still be opened, without mapping it.
/// `mode: None` takes the sharer's default.
pub fn locate(handle: &str, mode: Option<Mode>) -> Result<Located> {
    let (id, generation, place) = name::parse_handle(handle)?;
    let (_, h, _) = open_checked(&id, Some(generation), &place, false)?;
    let mode = mode.unwrap_or_else(|| Mode::of_header(&h));
    Ok(Located {
        key: view_key(&(id, generation), mode),
        header: h,
        mode,
    })
}

/// Whether the segment a handle names can still be opened by it (not freed, not replaced).
pub fn handle_is_current(handle: &str) -> Result<bool> {
    match locate(handle, None) {
        Ok(_) => Ok(true),
        Err(e) if e.code == Code::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Opens the segment a handle names. `mode: None` takes the sharer's default. With `populate`,
/// every page is mapped into this process now (MAP_POPULATE, or read-faulted in for a mapping
/// that exists already or is copy-on-write), so that a first pass over the data takes no page
/// faults; it costs the same time up front. Opening has no side effect on the segment, whatever
/// happens.
pub fn open_handle(handle: &str, mode: Option<Mode>, populate: bool) -> Result<View> {
    open_handle_with(handle, mode, populate, false)
}

/// `open_handle`, and with `unreserved`, a segment made with `reserve: false` maps even when
/// some of its pages have no memory behind them (the caller accepts that touching one may be a
/// SIGBUS where the filesystem is full).
pub fn open_handle_with(
    handle: &str,
    mode: Option<Mode>,
    populate: bool,
    unreserved: bool,
) -> Result<View> {
    let (id, generation, place) = name::parse_handle(handle)?;
    open_at(&id, Some(generation), &place, mode, populate, unreserved)
}

/// Refuses to map a segment with pages that have no memory behind them: reading one where the
/// filesystem is full is a SIGBUS, which no reader can catch. Our segments are made whole
/// (`fallocate`), unless their creator chose `reserve: false`, which the header records and the
/// reader must accept; anything else with holes was punched or truncated by another writer.
fn check_allocated(id: &str, file: &sys::File, h: &Header, unreserved: bool) -> Result<()> {
    let Some(allocated) = file.allocated() else {
        return Ok(());
    };
    let total = h.total_size();
    if allocated >= total || file.size() < total {
        // A file shorter than its header says is refused by `decode` before this.
        return Ok(());
    }
    if h.flags & header::FLAG_UNRESERVED != 0 {
        if unreserved {
            return Ok(());
        }
        return Err(Error::new(
            Code::BadHeader,
            format!(
                "segment {id:?} was made with reserve: false and {} of its {} bytes have no memory behind them yet; \
                 reading one where /dev/shm is full would kill this process (SIGBUS). open(handle, {{ reserve: false }}) \
                 maps it anyway, accepting that risk",
                total - allocated,
                total
            ),
        ));
    }
    Err(Error::new(
        Code::BadHeader,
        format!(
            "segment {id:?} has {} of its {} bytes without memory behind them (holes punched or the file cut and regrown by \
             another writer): it is not mapped, since reading a hole where /dev/shm is full kills the reader (SIGBUS)",
            total - allocated,
            total
        ),
    ))
}

/// Opens named segment `id`, whatever its generation (the developer API's `mapSharedMemory`).
pub fn open_id(id: &str, mode: Option<Mode>) -> Result<View> {
    name::validate_id(id)?;
    open_at(id, None, &Place::Named, mode, false, false)
}

fn open_at(
    id: &str,
    generation: Option<u64>,
    place: &Place,
    mode: Option<Mode>,
    populate: bool,
    unreserved: bool,
) -> Result<View> {
    // Opened writable where allowed (copy-on-write too), so that this open can be counted.
    let (file, h, attributes) = match open_checked(id, generation, place, true) {
        // A segment this user may only read still opens copy-on-write.
        Err(e) if mode != Some(Mode::Shared) && e.code == Code::Permission => {
            open_checked(id, generation, place, false)?
        }
        r => r?,
    };
    let mode = mode.unwrap_or_else(|| Mode::of_header(&h));
    let key: SegKey = (id.to_string(), h.generation);
    if let Some(m) = with(|r| r.mappings.get(&(key.clone(), mode)).and_then(Weak::upgrade)) {
        if !m.retired.load(Ordering::Acquire) {
            if populate {
                sys::prefault(&m.map);
            }
            return Ok(View { mapping: m });
        }
    }
    check_mapping_budget()?;
    check_allocated(id, &file, &h, unreserved)?;
    crate::limits::check_map(id, file.size())?;
    let map = sys::map_file(&file, mode.access(), populate)?;
    // The handle a view gives is the one it was opened by, or the named one for an id.
    let handle = match place {
        Place::Named => name::format_handle(id, h.generation, place),
        p => name::format_handle(id, h.generation, p),
    };
    let (pid, _, _) = sys::current_process();
    let owner = h.owner_pid == pid && with(|r| r.owned.contains_key(&key));
    crate::guard::watch(map.ptr(), map.len());
    let mapping = Arc::new(Mapping {
        map: std::mem::ManuallyDrop::new(map),
        header: h,
        attributes,
        key: key.clone(),
        mode,
        handle,
        owner,
        retired: AtomicBool::new(false),
        counted_retired: AtomicBool::new(false),
    });
    LIVE.fetch_add(1, Ordering::Relaxed);
    MAPPED.fetch_add(1, Ordering::Relaxed);
    // Two threads may race to map the same segment: the first mapping registered wins, and the
    // other is dropped (unmapped) right away.
    let winner = with(|r| {
        if let Some(existing) = r.mappings.get(&(key.clone(), mode)).and_then(Weak::upgrade) {
            if !existing.retired.load(Ordering::Acquire) {
                return Some(existing);
            }
        }
        r.mappings
            .insert((key.clone(), mode), Arc::downgrade(&mapping));
        if owner {
            if let Some(o) = r.owned.get_mut(&key) {
                o.live += 1;
            }
        }
        None
    });
    match winner {
        Some(existing) => {
            mapping.retired.store(true, Ordering::Release);
            LIVE.fetch_sub(1, Ordering::Relaxed);
            drop(mapping);
            Ok(View { mapping: existing })
        }
        None => {
            if !owner {
                count_open(&file, &mapping.header);
            }
            Ok(View { mapping })
        }
    }
}

/// Counts an open by a process other than the owner in the segment's control word (a segment
/// made by an older version has none: nothing is counted). Best effort: a segment this process
/// may only read is not counted.
fn count_open(file: &sys::File, h: &Header) {
    if h.segment_size() > file.size() {
        return;
    }
    if let Ok(c) = sys::control(file, h.control_offset()) {
        c.word().fetch_add(1, Ordering::AcqRel);
    }
}

/// A private copy of the segment a handle names: header, attributes and data bytes. For runtimes
/// that cannot view external memory; nothing stays mapped. The data's size is checked against
/// the file and allocated fallibly, so a lying header is an error, not an abort.
pub fn read_copy(handle: &str, max_bytes: u64) -> Result<(Header, String, Vec<u8>)> {
    let (id, generation, place) = name::parse_handle(handle)?;
    let (file, h, attributes) = match open_checked(&id, Some(generation), &place, true) {
        Err(e) if e.code == Code::Permission => open_checked(&id, Some(generation), &place, false)?,
        r => r?,
    };
    let (pid, _, _) = sys::current_process();
    if !(h.owner_pid == pid && with(|r| r.owned.contains_key(&(id.clone(), generation)))) {
        count_open(&file, &h);
    }
    if h.byte_length > max_bytes {
        return Err(Error::new(
            Code::OutOfRange,
            format!("segment {id:?} holds {} bytes, more than this runtime can hold in one buffer ({max_bytes})", h.byte_length),
        ));
    }
    let mut data = Vec::new();
    data.try_reserve_exact(h.byte_length as usize)
        .map_err(|_| {
            Error::new(
                Code::NoSpace,
                format!(
                    "not enough memory for a private copy of segment {id:?} ({} bytes)",
                    h.byte_length
                ),
            )
        })?;
    // Read, not mapped: a hole reads as zeros and a file cut short under us is an error, where a
    // mapping would be a SIGBUS.
    #[cfg(target_os = "linux")]
    {
        data.resize(h.byte_length as usize, 0);
        file.read_at(&mut data, h.data_offset)?;
    }
    #[cfg(not(target_os = "linux"))]
    let map = sys::map_file(&file, sys::Access::CopyOnWrite, false)?;
    // SAFETY: decode checked data_offset + byte_length <= the file's size, which the map covers;
    // the bytes are copied out while `map` keeps them mapped, into capacity reserved above.
    #[cfg(not(target_os = "linux"))]
    unsafe {
        std::ptr::copy_nonoverlapping(
            map.ptr().add(h.data_offset as usize),
            data.as_mut_ptr(),
            h.byte_length as usize,
        );
        data.set_len(h.byte_length as usize);
    }
    Ok((h, attributes, data))
}

/// Lets an owner's record go (a function, so that what dropping it closes is said once).
fn drop_owned(o: Owned) {
    let _closed = o;
}

/// The owner's bookkeeping when one of its mappings of `key` goes (dropped or retired).
fn mapping_gone(key: &SegKey) {
    let release = with(|r| {
        let o = r.owned.get_mut(key)?;
        o.live = o.live.saturating_sub(1);
        if o.live > 0 || o.handed_out || o.persistent {
            return None;
        }
        r.owned.remove(key)
    });
    if let Some(o) = release {
        release_owned_segment(key, o);
    }
}

/// Lets go of a segment this process owns: a named one loses its name, a memfd its descriptor.
fn release_owned_segment(key: &SegKey, o: Owned) {
    if o.named {
        unlink_generation(&key.0, key.1);
    }
    // `o` drops here: that closes the memfd (Linux) or the keeper (Windows).
}

/// Records that a segment's handle was handed out: the owner keeps it nameable until `free` (by
/// any process) or its exit, whatever its garbage collector does; with `opens: Some(n)`, until
/// `n` more opens by other processes (see `reap`). Returns whether this process owns it.
pub fn hand_out(handle: &str, opens: Option<u64>) -> Result<bool> {
    let (id, generation, _) = name::parse_handle(handle)?;
    let key = (id, generation);
    #[cfg(windows)]
    let keeper = if with(|r| r.owned.get(&key).is_some_and(|o| o.keeper.is_none())) {
        sys::open_named(&key.0, false)
            .and_then(|f| sys::map_file(&f, sys::Access::Peek, false))
            .ok()
    } else {
        None
    };
    let owned = with(|r| {
        let Some(o) = r.owned.get_mut(&key) else {
            return false;
        };
        #[cfg(windows)]
        if o.keeper.is_none() {
            o.keeper = keeper;
        }
        if let Some(n) = opens {
            let base = match o.opens_target {
                Some(t) => Some(t),
                None => control_word(&key, o).map(|w| w & header::CONTROL_OPENS),
            };
            // A segment freed or gone already has nothing to wait for.
            if let Some(base) = base {
                o.opens_target = Some(base.saturating_add(n));
            }
        }
        o.handed_out = true;
        // A persistent segment stays until freed: it is watched only when it waits for opens.
        if !o.watched && (!o.persistent || o.opens_target.is_some()) {
            o.watched = true;
            r.watch.push_back(key.clone());
        }
        true
    });
    Ok(owned)
}

/// The control word of a segment this process owns, as the owner reads it; `None` when the
/// segment is gone (its name removed or taken by another segment).
fn control_word(key: &SegKey, o: &Owned) -> Option<u64> {
    if o.control == 0 {
        return Some(0);
    }
    #[cfg(target_os = "linux")]
    if let Some(f) = &o.file {
        return Some(sys::read_control(f, o.control).unwrap_or(0));
    }
    #[cfg(windows)]
    if let Some(k) = &o.keeper {
        if o.control as usize + 8 <= k.len() {
            // SAFETY: the keeper maps the whole segment; the word lies inside it (checked just
            // above) and is 8-byte aligned; other processes change it only atomically.
            let w = unsafe {
                &*(k.ptr().add(o.control as usize) as *const std::sync::atomic::AtomicU64)
            };
            return Some(w.load(Ordering::Acquire));
        }
    }
    if !o.named {
        return Some(0);
    }
    let f = match sys::open_named(&key.0, false) {
        Ok(f) => f,
        Err(e) if e.code == Code::NotFound => return None,
        Err(_) => return Some(0),
    };
    match sys::read_head(&f).and_then(|head| Header::decode(&head, f.size())) {
        Ok(h) if h.generation == key.1 => Some(sys::read_control(&f, o.control).unwrap_or(0)),
        Ok(_) => None,
        Err(_) => Some(0),
    }
}

/// The owner looks at up to `limit` of the segments it handed out (the ones it looked at longest
/// ago first) and lets go of those another process freed or that have had their `opens`.
/// Returns how many segments it released and how many it still watches.
pub fn reap(limit: usize) -> (usize, usize) {
    let mut released = Vec::new();
    let left = with(|r| {
        let n = limit.min(r.watch.len());
        for _ in 0..n {
            let Some(key) = r.watch.pop_front() else {
                break;
            };
            let Some(o) = r.owned.get_mut(&key) else {
                continue;
            };
            let word = control_word(&key, o);
            let freed = word.is_none_or(|w| w & header::CONTROL_FREED != 0);
            let opened = match (word, o.opens_target) {
                (Some(w), Some(t)) => w & header::CONTROL_OPENS >= t,
                _ => false,
            };
            // Once its opens have happened nobody else is meant to open it: the owner lets go
            // of its descriptor, name or keeper now (its own views keep working), so that
            // nothing waits for its garbage collector.
            if freed || opened {
                if let Some(o) = r.owned.remove(&key) {
                    released.push((key, o));
                }
                continue;
            }
            r.watch.push_back(key);
        }
        r.watch.len()
    });
    let count = released.len();
    for (key, o) in released {
        let _ = let_go(&key, o);
    }
    (count, left)
}

/// The owner lets go of a segment it no longer keeps openable: marked freed (so that nobody
/// opens it again, on every platform), its memfd or keeper closed, its name removed. Returns
/// whether it is gone for others.
fn let_go(key: &SegKey, o: Owned) -> Result<bool> {
    let named = o.named;
    #[cfg(target_os = "linux")]
    if let Some(f) = &o.file {
        // Processes that hold its /proc path already must not open it again either.
        if let Ok(head) = sys::read_head(f) {
            if let Ok(h) = Header::decode(&head, f.size()) {
                let _ = mark_freed(f, &h);
            }
        }
    }
    // Dropping it closes the memfd (Linux) or the keeper (Windows).
    drop_owned(o);
    if named {
        // Windows keeps a section while any process holds it: the mark is what makes it
        // unopenable there, so it counts as freed.
        #[cfg(windows)]
        return Ok(sys::unlink_checked(&key.0, |f| ours_marked(f, Some(key.1))).is_ok());
        #[cfg(not(windows))]
        return sys::unlink_checked(&key.0, |f| ours_marked(f, Some(key.1)));
    }
    Ok(true)
}

/// Retires `m` (see [`View::retire`]): unregisters it so the next `open` maps afresh, and gives
/// its pages back now.
fn retire_mapping(m: &Arc<Mapping>) -> bool {
    if m.retired.swap(true, Ordering::AcqRel) {
        return false;
    }
    with(|r| {
        let k = (m.key.clone(), m.mode);
        if r.mappings
            .get(&k)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(m)))
        {
            r.mappings.remove(&k);
        }
    });
    // Where the pages cannot be replaced (no memory for the new mapping, or Windows), the
    // segment's pages stay mapped until the last view drops: reads then see the data, not zeros.
    sys::retire(&m.map);
    RETIRED_BYTES.fetch_add(m.map.len(), Ordering::Relaxed);
    m.counted_retired.store(true, Ordering::Release);
    // Release: a thread that reads the new count also sees `retired`.
    CLOSES.fetch_add(1, Ordering::Release);
    LIVE.fetch_sub(1, Ordering::Relaxed);
    if m.owner {
        mapping_gone(&m.key);
    }
    true
}

/// A new view of the live mapping whose data starts at `ptr` and holds `len` bytes: for a buffer
/// over it that reached this thread from another (a SharedArrayBuffer posted to a worker).
pub fn find(ptr: *const u8, len: usize) -> Option<View> {
    // Upgraded under the lock, compared and dropped outside it: dropping the last reference to
    // a mapping takes the lock again.
    let all: Vec<Arc<Mapping>> = with(|r| r.mappings.values().filter_map(Weak::upgrade).collect());
    all.into_iter()
        .find(|m| {
            !m.retired.load(Ordering::Acquire)
                && m.header.byte_length as usize == len
                && std::ptr::eq(View::data_ptr(m), ptr)
        })
        .map(|mapping| View { mapping })
}

/// Maps every page of the live mapping a view key names into this process now (see
/// `open_handle`). Returns whether there was one.
pub fn populate(view_key_text: &str) -> bool {
    let found = with(|r| {
        r.mappings
            .iter()
            .find(|((k, m), _)| view_key(k, *m) == view_key_text)
            .and_then(|(_, w)| w.upgrade())
    });
    match found {
        Some(m) if !m.retired.load(Ordering::Acquire) => {
            sys::prefault(&m.map);
            true
        }
        _ => false,
    }
}

/// Removes `id`'s name only while it still names generation `generation`: a name freed and
/// created again by someone else is never removed on the old owner's behalf.
fn unlink_generation(id: &str, generation: u64) -> bool {
    sys::unlink_checked(id, |f| {
        let head = sys::read_head(f)?;
        Ok(Header::decode(&head, f.size())?.generation == generation)
    })
    .unwrap_or(false)
}

/// Removes the segment a handle names, now: no process can open it any more, while views already
/// mapped anywhere keep working. Only that very segment (its generation) is removed.
pub fn free_handle(handle: &str) -> Result<bool> {
    let (id, generation, place) = name::parse_handle(handle)?;
    free_at(&id, Some(generation), &place)
}

/// Removes named segment `id` now, whatever its generation, if it is a segment of this package.
pub fn free(id: &str) -> Result<bool> {
    name::validate_id(id)?;
    // An unnamed segment this process owns can be freed by id too.
    let owned = with(|r| r.owned.keys().find(|k| k.0 == id).cloned());
    if let Some(key) = owned {
        if let Some(o) = with(|r| r.owned.get(&key).map(|o| !o.named)) {
            if o {
                return free_at(id, Some(key.1), &Place::Named);
            }
        }
    }
    free_at(id, None, &Place::Named)
}

fn free_at(id: &str, generation: Option<u64>, place: &Place) -> Result<bool> {
    // This process's own segment: forget it as owner (closing a memfd ends its nameability).
    let mine = with(|r| {
        let key = r
            .owned
            .keys()
            .find(|k| k.0 == id && generation.is_none_or(|g| g == k.1))
            .cloned()?;
        let o = r.owned.remove(&key)?;
        Some((key, o))
    });
    if let Some((key, o)) = mine {
        return let_go(&key, o);
    }
    match place {
        Place::Named => {
            // Only a segment of ours, of the right generation, is marked and removed.
            let mut marked = false;
            let removed = sys::unlink_checked(id, |f| {
                let ours = ours_marked(f, generation)?;
                marked = ours;
                Ok(ours)
            })?;
            Ok(removed || (cfg!(windows) && marked))
        }
        Place::Memfd { .. } => {
            // Another process holds it: mark it freed, so nobody opens it again and its owner
            // lets go of it.
            match open_checked(id, generation, place, true) {
                Ok((f, h, _)) => mark_freed(&f, &h).map(|()| true),
                Err(e) if e.code == Code::NotFound => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Marks a segment freed: its header's flag (every `open` honours it) and its control word's
/// bit (its owner looks at that).
fn mark_freed(f: &sys::File, h: &Header) -> Result<()> {
    sys::set_flags(f, header::FLAG_FREED)?;
    if h.segment_size() <= f.size() {
        if let Ok(c) = sys::control(f, h.control_offset()) {
            c.word().fetch_or(header::CONTROL_FREED, Ordering::AcqRel);
        }
    }
    Ok(())
}

/// Whether the open named segment `f` is a segment of ours of `generation` (any, if `None`);
/// if so it is marked freed (best effort: a read-only one is removed all the same).
fn ours_marked(f: &sys::File, generation: Option<u64>) -> Result<bool> {
    let head = sys::read_head(f)?;
    let h = Header::decode(&head, f.size())?;
    if generation.is_some_and(|g| g != h.generation) {
        return Ok(false);
    }
    let _ = mark_freed(f, &h);
    Ok(true)
}

/// Whether named segment `id` exists (as a segment of this user's).
pub fn exists(id: &str) -> Result<bool> {
    name::validate_id(id)?;
    #[cfg(unix)]
    return sys::exists(id);
    #[cfg(windows)]
    return Ok(sys::exists(id));
}

/// Header, attributes and size of named segment `id`, read without mapping it.
pub fn peek(id: &str) -> Result<(Header, String, u64)> {
    name::validate_id(id)?;
    let f = sys::open_named(id, false)?;
    let head = sys::read_head(&f)?;
    let (h, a) = decode_head(&head, f.size())?;
    Ok((h, a, f.size()))
}

/// The developer API's allocation: an untyped, persistent segment of `size` bytes that nobody
/// maps yet. An existing developer segment of that name and at least that size is accepted.
/// Returns the id it made or accepted (never another thread's).
pub fn allocate(size: u64, id: Option<&str>) -> Result<String> {
    if let Some(id) = id {
        name::validate_id(id)?;
        match peek(id) {
            Ok((h, _, _)) if h.developer() && h.byte_length >= size => return Ok(id.to_string()),
            Ok(_) => {
                return Err(Error::new(
                    Code::Exists,
                    format!("segment {id:?} exists and is smaller than your request or not a developer segment"),
                ))
            }
            Err(e) if e.code == Code::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let spec = CreateSpec {
        id,
        kind: Some(Kind::Bytes),
        length: size,
        byte_length: size,
        persist: true,
        developer: true,
        reserve: true,
        ..Default::default()
    };
    let view = create(&spec, None)?;
    let made = view.id().to_string();
    drop(view); // persistent: it stays until freed
    Ok(made)
}

/// The id of the last segment this process created.
pub fn last_created() -> Option<String> {
    with(|r| r.last_created.clone())
}

/// Every segment of this package on the machine that this user can see: named segments, and
/// on Linux the unnamed ones this user's processes hold.
///
/// Running out of descriptors is an error (`NoSpace`), never a shorter list.
pub fn list() -> Result<Vec<Listing>> {
    let mut out = Vec::new();
    #[cfg(unix)]
    let ids = sys::list_ids()?;
    #[cfg(windows)]
    let ids = sys::list_ids();
    for id in ids {
        let f = match sys::open_named(&id, false) {
            Ok(f) => f,
            Err(e) if e.code == Code::NoSpace => return Err(e),
            Err(_) => continue,
        };
        let Ok(head) = sys::read_head(&f) else {
            continue;
        };
        let Ok(header) = Header::decode(&head, f.size()) else {
            continue;
        };
        let owner_alive =
            sys::owner_alive(header.owner_pid, header.owner_start, header.owner_pidns);
        out.push(Listing {
            id,
            header,
            size: f.size(),
            owner_alive,
            named: true,
        });
    }
    #[cfg(target_os = "linux")]
    for (id, pid, fd) in sys::list_memfds()? {
        let f = match sys::open_memfd(&id, pid, fd, 0, false) {
            Ok(f) => f,
            Err(e) if e.code == Code::NoSpace => return Err(e),
            Err(_) => continue,
        };
        let Ok(head) = sys::read_head(&f) else {
            continue;
        };
        let Ok(header) = Header::decode(&head, f.size()) else {
            continue;
        };
        // Only the owner's own descriptor counts; a freed one is not listed.
        if header.owner_pid != pid || header.flags & header::FLAG_FREED != 0 {
            continue;
        }
        if out
            .iter()
            .any(|l: &Listing| l.id == id && l.header.generation == header.generation)
        {
            continue;
        }
        out.push(Listing {
            id,
            header,
            size: f.size(),
            owner_alive: Some(true),
            named: false,
        });
    }
    #[cfg(windows)]
    {
        let known: Vec<SegKey> = with(|r| r.owned.keys().cloned().collect());
        for (id, _) in known {
            if out.iter().any(|l| l.id == id) {
                continue;
            }
            if let Ok((header, _, size)) = peek(&id) {
                out.push(Listing {
                    id,
                    header,
                    size,
                    owner_alive: None,
                    named: true,
                });
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Frees every named segment whose owner died, unless it is persistent or a developer segment.
/// A live owner's segment, or one whose owner this process cannot judge, is never touched.
pub fn sweep(dry_run: bool) -> Result<Vec<Listing>> {
    Ok(list()?
        .into_iter()
        .filter(|l| {
            l.named
                && l.owner_alive == Some(false)
                && !l.header.persistent()
                && !l.header.developer()
        })
        .filter(|l| dry_run || unlink_generation(&l.id, l.header.generation))
        .collect())
}

/// Removes the names of the segments this process owns, as its exit would (on a signal, or
/// `releaseSharedObjectPackageData`). Views keep working. Returns how many names were removed.
pub fn release_owned() -> usize {
    let owned: Vec<SegKey> = with(|r| {
        let keys: Vec<SegKey> = r
            .owned
            .iter()
            .filter(|(_, o)| o.named && !o.persistent)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &keys {
            r.owned.remove(k);
        }
        keys
    });
    owned
        .iter()
        .filter(|(id, g)| unlink_generation(id, *g))
        .count()
}

/// Mappings this process holds (registered and alive) and live mappings overall.
/// How many mappings this process may hold: half of `vm.max_map_count`.
pub fn mapping_budget() -> usize {
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| sys::max_map_count() / 2)
}

/// Whether a new mapping would pass the budget: a caller that can make its engine collect (and
/// so release buffers nobody holds) may do so and try again.
pub fn over_mapping_budget() -> bool {
    MAPPED.load(Ordering::Relaxed) >= mapping_budget()
}

/// Bytes of address space held by mappings that were closed and are not yet unmapped.
pub fn retired_bytes() -> usize {
    RETIRED_BYTES.load(Ordering::Relaxed)
}

/// Every mapping this process holds now, live or retired (what the mapping budget counts).
pub fn mapped() -> usize {
    MAPPED.load(Ordering::Relaxed)
}

pub fn stats() -> (usize, usize) {
    let alive = with(|r| r.mappings.values().filter(|w| w.strong_count() > 0).count());
    (alive, LIVE.load(Ordering::Relaxed))
}

/// Segments and bytes in one state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub segments: usize,
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.segments += 1;
        self.bytes += bytes;
    }
}

/// What this process holds now, by state.
#[derive(Debug, Clone, Default)]
pub struct Holdings {
    /// Every segment held, owned or opened.
    pub all: Tally,
    /// Descriptors held to keep segments openable (Linux memfds, Windows keepers).
    pub descriptors: usize,
    /// Owned, not handed out (or no longer openable by others), and mapped here.
    pub live: Tally,
    /// Handed out, and a view of it here is still referenced.
    pub handed_out: Tally,
    /// Handed out (with no `opens` pending) and no view of it here is referenced any more: kept
    /// until some process frees it, or this one exits.
    pub dropped: Tally,
    /// Handed out with `opens`, not all of which have happened yet.
    pub waiting: Tally,
    /// Opened here, owned by another process.
    pub opened: Tally,
}

/// What this process holds now: segments, bytes, descriptors, by state.
pub fn holdings() -> Holdings {
    let held = with(|r| {
        let mut out = Holdings::default();
        for o in r.owned.values() {
            out.all.add(o.size);
            #[cfg(target_os = "linux")]
            if o.file.is_some() {
                out.descriptors += 1;
            }
            #[cfg(windows)]
            if o.keeper.is_some() {
                out.descriptors += 1;
            }
            if o.opens_target.is_some() {
                out.waiting.add(o.size);
            } else if o.handed_out && o.live > 0 {
                out.handed_out.add(o.size);
            } else if o.handed_out {
                out.dropped.add(o.size);
            } else {
                out.live.add(o.size);
            }
        }
        // Upgraded under the lock, read and dropped outside it: dropping the last reference to
        // a mapping takes the lock again.
        let opened: Vec<Arc<Mapping>> = r
            .mappings
            .iter()
            .filter(|((key, _), _)| !r.owned.contains_key(key))
            .filter_map(|(_, w)| w.upgrade())
            .collect();
        (out, opened)
    });
    let (mut out, opened) = held;
    let mut seen = std::collections::HashSet::new();
    for m in &opened {
        if m.retired.load(Ordering::Acquire) || !seen.insert(m.key.clone()) {
            continue;
        }
        out.all.add(m.map.len() as u64);
        // An owner's vector over a segment it let go of (freed, or its opens done) is live here.
        if m.owner {
            out.live.add(m.map.len() as u64);
        } else {
            out.opened.add(m.map.len() as u64);
        }
    }
    drop(opened);
    out
}

/// The path of the segment a handle names, for readers in other languages.
pub fn path_of(handle: &str) -> Option<String> {
    let (_id, _, place) = name::parse_handle(handle).ok()?;
    match place {
        #[cfg(target_os = "linux")]
        Place::Named => Some(format!("/dev/shm/{}{_id}", name::PREFIX)),
        #[cfg(not(target_os = "linux"))]
        Place::Named => None,
        Place::Memfd { pid, fd, .. } => Some(format!("/proc/{pid}/fd/{fd}")),
    }
}

fn install_exit_hook() {
    #[cfg(unix)]
    EXIT_HOOK.call_once(|| {
        extern "C" fn at_exit() {
            // Called by exit(): remove what this process owns. A lock held by a thread that is
            // being torn down must not hang the exit, so only try it.
            let guard = match REGISTRY.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return,
            };
            if let Some(r) = guard.as_ref() {
                for (k, o) in &r.owned {
                    if o.named && !o.persistent {
                        unlink_generation(&k.0, k.1);
                    }
                }
            }
        }
        // SAFETY: at_exit is a plain extern "C" fn that neither unwinds nor calls exit.
        unsafe { libc::atexit(at_exit) };
    });
    #[cfg(windows)]
    EXIT_HOOK.call_once(|| {});
}
