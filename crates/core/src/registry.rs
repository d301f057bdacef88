//! The per-process registry: every mapping this process holds, how many views use each, and
//! which segments this process owns. A process maps a segment once per mode, however many views
//! it hands out; the last view released unmaps it, and the owner's last release removes the name.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Code, Error, Result};
use crate::header::{self, Header};
use crate::kind::Kind;
use crate::name;
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
}

/// What a new segment holds.
#[derive(Debug, Clone, Default)]
pub struct CreateSpec<'a> {
    /// A user-chosen id; a random one when `None`.
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
    /// Allocate every page now (see `sys::create`).
    pub reserve: bool,
    pub developer: bool,
    pub aux: [u64; header::AUX_WORDS],
}

/// One view handed out: a pointer to the data that stays valid until `release(token)`.
#[derive(Debug)]
pub struct View {
    pub token: u64,
    pub ptr: *mut u8,
    pub byte_length: usize,
    pub header: Header,
    pub id: String,
    pub handle: String,
    pub attributes: String,
    pub mode: Mode,
    pub owner: bool,
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
}

type Key = (String, u64, Mode);

struct Entry {
    map: sys::Map,
    header: Header,
    attributes: String,
    views: usize,
    owner: bool,
    freed: bool,
}

#[derive(Default)]
struct Registry {
    entries: HashMap<Key, Entry>,
    views: HashMap<u64, Key>,
    next_token: u64,
    last_created: Option<String>,
    /// Windows ends a mapping with its last view, so this process keeps one of each persistent
    /// or developer segment it created until `free`: they then outlive every unmap, though not
    /// the process (the closest Windows comes to a name that stays).
    #[cfg(windows)]
    keepers: HashMap<String, sys::Map>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);
static EXIT_HOOK: Once = Once::new();

fn registry() -> MutexGuard<'static, Option<Registry>> {
    // A panic while holding the lock leaves plain data behind; it is still consistent enough to use.
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut guard = registry();
    f(guard.get_or_insert_with(Registry::default))
}

impl Registry {
    fn add_view(&mut self, key: &Key) -> u64 {
        self.next_token += 1;
        let token = self.next_token;
        self.entries.get_mut(key).expect("entry exists").views += 1;
        self.views.insert(token, key.clone());
        token
    }

    fn view(&self, token: u64, key: &Key) -> View {
        let e = &self.entries[key];
        // SAFETY: data_offset + byte_length <= map.len() was checked by Header::decode against the
        // mapped size, so the pointer stays inside the mapping.
        let ptr = unsafe { e.map.ptr().add(e.header.data_offset as usize) };
        View {
            token,
            ptr,
            byte_length: e.header.byte_length as usize,
            header: e.header.clone(),
            id: key.0.clone(),
            handle: name::format_handle(&key.0, key.1),
            attributes: e.attributes.clone(),
            mode: key.2,
            owner: e.owner,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Reads and checks the header and attributes at the start of a mapping.
fn read_header(map: &sys::Map) -> Result<(Header, String)> {
    let len = map.len();
    let mut fixed = [0u8; header::FIXED_SIZE];
    if len < fixed.len() {
        return Err(Error::new(
            Code::BadHeader,
            "segment too small to be a sharedobject segment",
        ));
    }
    // SAFETY: the mapping is at least FIXED_SIZE bytes (checked above) and stays mapped while
    // `map` is borrowed; bytes are copied out, so later writes by others cannot change what we check.
    unsafe { std::ptr::copy_nonoverlapping(map.ptr(), fixed.as_mut_ptr(), fixed.len()) };
    let h = Header::decode(&fixed, len as u64)?;
    let mut attrs = vec![0u8; h.attributes_len as usize];
    // SAFETY: decode checked header::FIXED_SIZE + attributes_len <= data_offset <= len.
    unsafe {
        std::ptr::copy_nonoverlapping(
            map.ptr().add(header::FIXED_SIZE),
            attrs.as_mut_ptr(),
            attrs.len(),
        )
    };
    let attrs = String::from_utf8(attrs)
        .map_err(|_| Error::new(Code::BadHeader, "segment attributes are not UTF-8"))?;
    Ok((h, attrs))
}

/// Header, attributes and size of a segment, without keeping it mapped.
pub fn peek(id: &str) -> Result<(Header, String, u64)> {
    name::validate_id(id)?;
    let map = sys::open(id, sys::Access::Peek)?;
    let (h, a) = read_header(&map)?;
    Ok((h, a, map.len() as u64))
}

/// A private copy of the segment a handle names: header, attributes and data bytes. For runtimes
/// that cannot view external memory; nothing stays mapped.
pub fn read_copy(handle: &str) -> Result<(Header, String, Vec<u8>)> {
    let (id, generation) = name::parse_handle(handle)?;
    let map = sys::open(&id, sys::Access::Peek)?;
    let (h, attributes) = read_header(&map)?;
    if h.generation != generation {
        return Err(Error::new(
            Code::NotFound,
            format!("the segment this handle named was freed; id {id:?} now names another one"),
        ));
    }
    let mut data = vec![0u8; h.byte_length as usize];
    // SAFETY: decode checked data_offset + byte_length <= map.len(); the bytes are copied out
    // while `map` keeps them mapped.
    unsafe {
        std::ptr::copy_nonoverlapping(
            map.ptr().add(h.data_offset as usize),
            data.as_mut_ptr(),
            data.len(),
        )
    };
    Ok((h, attributes, data))
}

/// Creates a segment, fills it with `init` (or zeros), and returns the owner's first view.
pub fn create(spec: &CreateSpec<'_>, init: Option<&[u8]>) -> Result<View> {
    create_inner(spec, init, true).map(|(_, v)| v.expect("a view was asked for"))
}

/// Creates a segment; returns its id and, when `keep`, the owner's first view.
fn create_inner(
    spec: &CreateSpec<'_>,
    init: Option<&[u8]>,
    keep: bool,
) -> Result<(String, Option<View>)> {
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
    if let Some(init) = init {
        if init.len() as u64 > spec.byte_length {
            return Err(Error::new(
                Code::OutOfRange,
                "initial data larger than the segment",
            ));
        }
    }
    if let Some(id) = spec.id {
        name::validate_id(id)?;
    }
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
    let (id, map) = match spec.id {
        Some(id) => (
            id.to_string(),
            sys::create(id, &head, h.data_offset, h.total_size(), init, spec.reserve)?,
        ),
        None => {
            // 80 random bits make a clash all but impossible; retry the odd one anyway.
            let mut tries = 0;
            loop {
                let id = name::generate_id();
                match sys::create(
                    &id,
                    &head,
                    h.data_offset,
                    h.total_size(),
                    init,
                    spec.reserve,
                ) {
                    Err(e) if e.code == Code::Exists && tries < 8 => tries += 1,
                    r => break (id, r?),
                }
            }
        }
    };
    install_exit_hook();
    #[cfg(windows)]
    if spec.persist || spec.developer {
        let keeper = sys::open(&id, sys::Access::Peek)?;
        with(|r| r.keepers.insert(id.clone(), keeper));
    }
    if !keep {
        with(|r| r.last_created = Some(id.clone()));
        return Ok((id, None));
    }
    let mode = Mode::of_header(&h);
    let map = match mode {
        Mode::Shared => map,
        // The private mapping is opened before the shared one goes: on Windows the shared
        // one's handle may be the last, and the name would go with it.
        Mode::CopyOnWrite => match sys::open(&id, sys::Access::CopyOnWrite) {
            Ok(m) => {
                drop(map);
                m
            }
            Err(e) => {
                drop(map);
                let _ = sys::unlink(&id);
                return Err(e);
            }
        },
    };
    let key: Key = (id.clone(), h.generation, mode);
    let view = with(|r| {
        r.last_created = Some(id.clone());
        r.entries.insert(
            key.clone(),
            Entry {
                map,
                header: h,
                attributes: spec.attributes.to_string(),
                views: 0,
                owner: true,
                freed: false,
            },
        );
        let token = r.add_view(&key);
        r.view(token, &key)
    });
    Ok((id, Some(view)))
}

/// Opens the segment a handle names. `mode: None` takes the sharer's default.
pub fn open_handle(handle: &str, mode: Option<Mode>) -> Result<View> {
    let (id, generation) = name::parse_handle(handle)?;
    open_id(&id, Some(generation), mode)
}

/// Opens segment `id`; with `generation`, only the very segment that generation names.
/// Opening has no side effect on the segment, whatever happens.
pub fn open_id(id: &str, generation: Option<u64>, mode: Option<Mode>) -> Result<View> {
    name::validate_id(id)?;
    let gone = || {
        Error::new(Code::NotFound, format!("no segment with id {id:?}: it was freed, its owner released it, or it never existed"))
    };
    // Reuse this process's mapping when the name still stands.
    let found = with(|r| {
        let key = r
            .entries
            .iter()
            .find(|(k, e)| {
                k.0 == id
                    && !e.freed
                    && generation.is_none_or(|g| g == k.1)
                    && mode.is_none_or(|m| m == k.2)
            })
            .map(|(k, _)| k.clone())?;
        Some(key)
    });
    if let Some(key) = found {
        // The name must still stand, and still name the segment this process mapped: a name
        // freed and created again elsewhere is another segment.
        if !names_generation(id, key.1) {
            return Err(gone());
        }
        if let Some(view) = with(|r| {
            r.entries.contains_key(&key).then(|| {
                let t = r.add_view(&key);
                r.view(t, &key)
            })
        }) {
            return Ok(view);
        }
    }
    let mode = match mode {
        Some(m) => m,
        None => {
            let peeked = sys::open(id, sys::Access::Peek)?;
            let (h, _) = read_header(&peeked)?;
            Mode::of_header(&h)
        }
    };
    let map = sys::open(id, mode.access())?;
    let (h, attributes) = read_header(&map)?;
    if generation.is_some_and(|g| g != h.generation) {
        return Err(Error::new(
            Code::NotFound,
            format!("the segment this handle named was freed; id {id:?} now names another one"),
        ));
    }
    let key: Key = (id.to_string(), h.generation, mode);
    Ok(with(|r| {
        if !r.entries.contains_key(&key) {
            r.entries.insert(
                key.clone(),
                Entry {
                    map,
                    header: h,
                    attributes,
                    views: 0,
                    owner: false,
                    freed: false,
                },
            );
        }
        let t = r.add_view(&key);
        r.view(t, &key)
    }))
}

/// Whether `id` still names the segment of generation `generation`.
fn names_generation(id: &str, generation: u64) -> bool {
    matches!(peek(id), Ok((h, _, _)) if h.generation == generation)
}

/// Whether the segment a handle names can still be opened by it.
pub fn handle_is_current(handle: &str) -> Result<bool> {
    let (id, generation) = name::parse_handle(handle)?;
    Ok(names_generation(&id, generation))
}

/// Releases one view. The last view of a mapping unmaps it; if this process owns the segment
/// and it is not persistent, its name is removed too. Releasing twice is harmless.
pub fn release(token: u64) -> bool {
    let done = with(|r| {
        let key = r.views.remove(&token)?;
        let e = r.entries.get_mut(&key)?;
        e.views -= 1;
        if e.views > 0 {
            return Some(None);
        }
        let e = r.entries.remove(&key)?;
        let remove = e.owner && !e.header.persistent() && !e.freed;
        Some(Some((key, e, remove)))
    });
    match done {
        None => false,
        Some(None) => true,
        Some(Some((key, entry, remove))) => {
            drop(entry); // unmaps
            if remove {
                unlink_generation(&key.0, key.1);
            }
            true
        }
    }
}

/// Removes `id`'s name only while it still names generation `generation`: a name freed and
/// created again by someone else is never removed on the old owner's behalf.
fn unlink_generation(id: &str, generation: u64) -> bool {
    names_generation(id, generation) && sys::unlink(id).unwrap_or(false)
}

/// Removes segment `id` now. Views already mapped anywhere keep working.
pub fn free(id: &str) -> Result<bool> {
    name::validate_id(id)?;
    with(|r| {
        r.entries
            .iter_mut()
            .filter(|(k, _)| k.0 == id)
            .for_each(|(_, e)| e.freed = true)
    });
    let removed = sys::unlink(id);
    // After unlink, which closes the keeper's handle too and so counts it in what it removed.
    #[cfg(windows)]
    drop(with(|r| r.keepers.remove(id)));
    removed
}

pub fn exists(id: &str) -> Result<bool> {
    name::validate_id(id)?;
    Ok(sys::exists(id))
}

/// The developer API's allocation: an untyped, persistent segment of `size` bytes that nobody
/// maps yet. An existing developer segment of that name and at least that size is accepted.
pub fn allocate(size: u64, id: Option<&str>) -> Result<String> {
    if let Some(id) = id {
        name::validate_id(id)?;
        if sys::exists(id) {
            let (h, _, _) = peek(id)?;
            if h.developer() && h.byte_length >= size {
                return Ok(id.to_string());
            }
            return Err(Error::new(Code::Exists, format!("segment {id:?} exists and is smaller than your request or not a developer segment")));
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
    // The id comes back from the creation itself: last_created may name another thread's by now.
    create_inner(&spec, None, false).map(|(id, _)| id)
}

/// The id of the last segment this process created.
pub fn last_created() -> Option<String> {
    with(|r| r.last_created.clone())
}

/// Every segment of this package on the machine (Windows: this process's own).
pub fn list() -> Vec<Listing> {
    let mut ids = sys::list_ids();
    with(|r| ids.extend(r.entries.keys().map(|k| k.0.clone())));
    ids.sort();
    ids.dedup();
    ids.into_iter()
        .filter_map(|id| {
            let (header, _, size) = peek(&id).ok()?;
            let owner_alive =
                sys::owner_alive(header.owner_pid, header.owner_start, header.owner_pidns);
            Some(Listing {
                id,
                header,
                size,
                owner_alive,
            })
        })
        .collect()
}

/// Frees every segment whose owner died, unless it is persistent or a developer segment.
/// A live owner's segment, or one whose owner this process cannot judge, is never touched.
pub fn sweep() -> Vec<Listing> {
    list()
        .into_iter()
        .filter(|l| l.owner_alive == Some(false) && !l.header.persistent() && !l.header.developer())
        .filter(|l| unlink_generation(&l.id, l.header.generation))
        .collect()
}

/// Removes the names of the segments this process owns, as its exit would. Views keep working.
pub fn release_owned() -> usize {
    let owned: Vec<(String, u64)> = with(|r| {
        r.entries
            .iter_mut()
            .filter(|(_, e)| e.owner && !e.freed && !e.header.persistent())
            .map(|(k, e)| {
                e.freed = true;
                (k.0.clone(), k.1)
            })
            .collect()
    });
    owned
        .iter()
        .filter(|(id, g)| unlink_generation(id, *g))
        .count()
}

/// Mappings and views this process holds: for tests and diagnostics.
pub fn stats() -> (usize, usize) {
    with(|r| (r.entries.len(), r.views.len()))
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
                for (k, e) in &r.entries {
                    if e.owner && !e.freed && !e.header.persistent() {
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
