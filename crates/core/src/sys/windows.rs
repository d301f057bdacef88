//! Windows: pagefile-backed named file mappings in the session's `Local\` namespace.
//!
//! Windows removes a mapping's name when the last *handle* to it closes, whatever views remain,
//! and has no call that removes a name while handles are open. So every [`Map`] keeps its
//! section handle for as long as it lives, and the registry keeps one more for each persistent
//! or developer segment until `free`. What "removing a name" can mean here is closing every
//! handle this process holds: [`unlink`] does that, leaving the views mapped, and the name goes
//! once no other process holds one either. Nothing outlives the last process that holds a
//! segment. Windows cannot enumerate named mappings, so each segment leaves a marker file in a
//! per-session directory under `%TEMP%`, and [`list_ids`] drops markers whose mapping is gone.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::path::PathBuf;
use std::sync::Mutex;

use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, ERROR_ACCESS_DENIED, ERROR_ALREADY_EXISTS, ERROR_COMMITMENT_LIMIT,
    ERROR_DISK_FULL, ERROR_FILE_NOT_FOUND, ERROR_INVALID_PARAMETER, ERROR_NOT_ENOUGH_MEMORY,
    ERROR_NO_SYSTEM_RESOURCES, ERROR_TOO_MANY_OPEN_FILES, FILETIME, HANDLE, INVALID_HANDLE_VALUE,
    STILL_ACTIVE,
};
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, MapViewOfFile, OpenFileMappingW, UnmapViewOfFile, VirtualQuery,
    FILE_MAP_ALL_ACCESS, FILE_MAP_COPY, FILE_MAP_READ, MEMORY_BASIC_INFORMATION,
    MEMORY_MAPPED_VIEW_ADDRESS, PAGE_READWRITE, SEC_COMMIT,
};
use windows_sys::Win32::System::RemoteDesktop::ProcessIdToSessionId;
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetCurrentProcessId, GetExitCodeProcess, GetProcessTimes, OpenProcess,
    PROCESS_QUERY_LIMITED_INFORMATION,
};

use crate::error::{Code, Error, Result};
use crate::name::PREFIX;

fn os_name(id: &str) -> Vec<u16> {
    format!("Local\\{PREFIX}{id}")
        .encode_utf16()
        .chain(std::iter::once(0))
        .collect()
}

fn last_error(what: &str, id: &str) -> Error {
    // SAFETY: GetLastError only reads this thread's last-error value.
    let e = unsafe { GetLastError() };
    let code = match e {
        ERROR_FILE_NOT_FOUND => Code::NotFound,
        ERROR_ALREADY_EXISTS => Code::Exists,
        ERROR_ACCESS_DENIED => Code::Permission,
        ERROR_COMMITMENT_LIMIT
        | ERROR_NOT_ENOUGH_MEMORY
        | ERROR_DISK_FULL
        | ERROR_TOO_MANY_OPEN_FILES
        | ERROR_NO_SYSTEM_RESOURCES => Code::NoSpace,
        _ => Code::Os,
    };
    let message = match code {
        Code::NotFound => format!(
            "no segment with id {id:?}: it was freed, every process released it, or it never existed"
        ),
        Code::Exists => format!("a segment with id {id:?} exists already"),
        Code::NoSpace => format!("not enough memory or pagefile to commit segment {id:?}"),
        _ => format!("cannot {what} segment {id:?}: Windows error {e}"),
    };
    Error::new(code, message)
}

pub(crate) fn no_space(id: &str, needed: u64) -> Error {
    Error::new(
        Code::NoSpace,
        format!("not enough memory or pagefile to commit {needed} bytes for segment {id:?}"),
    )
}

/// The section handles this process holds, by serial number, with the id each names. A handle
/// keeps its segment's name alive; [`unlink`] closes all of an id's at once.
struct Handles {
    next: u64,
    open: BTreeMap<u64, (String, usize)>,
}

static HANDLES: Mutex<Handles> = Mutex::new(Handles {
    next: 0,
    open: BTreeMap::new(),
});

fn handles() -> std::sync::MutexGuard<'static, Handles> {
    // The table is plain data, consistent after any panic.
    HANDLES.lock().unwrap_or_else(|p| p.into_inner())
}

/// One section handle of segment `id`, closed when dropped unless [`unlink`] closed it first.
struct Held(u64);

impl Held {
    /// Closes the handle now (the view it came with stays valid).
    fn close(&self) {
        let Some((id, h)) = handles().open.remove(&self.0) else {
            return;
        };
        // SAFETY: taken out of the table, so this is its only close.
        unsafe { CloseHandle(h as HANDLE) };
        if !exists(&id) {
            unregister_marker(&id);
        }
    }
}

impl Held {
    fn new(id: &str, handle: HANDLE) -> Held {
        let mut t = handles();
        t.next += 1;
        let serial = t.next;
        // Stored as an address: HANDLE is a raw pointer, which a static may not hold.
        t.open.insert(serial, (id.to_string(), handle as usize));
        Held(serial)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some((id, h)) = handles().open.remove(&self.0) else {
            return;
        };
        // SAFETY: the handle came from CreateFileMappingW or OpenFileMappingW and was in the
        // table, so nobody closed it yet; taking it out makes this the only close.
        unsafe { CloseHandle(h as HANDLE) };
        // The last handle anywhere takes the name: its marker goes now rather than at a list().
        if !exists(&id) {
            unregister_marker(&id);
        }
    }
}

/// A view of a whole mapping, and the handle that keeps the mapping's name; unmapped when
/// dropped. The view stays valid after the handle is closed by [`unlink`].
pub(crate) struct Map {
    base: *mut c_void,
    len: usize,
    _held: Held,
}

// SAFETY: a view is process memory, valid from any thread until it is unmapped in Drop.
unsafe impl Send for Map {}

impl Map {
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.base.cast()
    }
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: base came from MapViewOfFile and is unmapped once, here.
        unsafe { UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS { Value: self.base }) };
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Access {
    Shared,
    CopyOnWrite,
    Peek,
}

/// Maps all of the section `handle`, which the returned Map then owns (on failure it is closed).
fn map_handle(handle: HANDLE, access: Access, id: &str) -> Result<Map> {
    let held = Held::new(id, handle);
    let want = match access {
        Access::Shared => FILE_MAP_ALL_ACCESS,
        Access::CopyOnWrite => FILE_MAP_COPY,
        Access::Peek => FILE_MAP_READ,
    };
    // SAFETY: handle is a valid mapping handle, open while `held` lives; a length of 0 maps the
    // whole section.
    let view = unsafe { MapViewOfFile(handle, want, 0, 0, 0) };
    if view.Value.is_null() {
        return Err(last_error("map", id));
    }
    // SAFETY: all-zero bytes are a valid MEMORY_BASIC_INFORMATION.
    let mut info: MEMORY_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: VirtualQuery writes one MEMORY_BASIC_INFORMATION about the region at view.Value.
    let n = unsafe {
        VirtualQuery(
            view.Value,
            &mut info,
            std::mem::size_of::<MEMORY_BASIC_INFORMATION>(),
        )
    };
    let len = if n == 0 { 0 } else { info.RegionSize };
    Ok(Map {
        base: view.Value,
        len,
        _held: held,
    })
}

/// Creates segment `id`, copies its header and data in, and maps it shared. Windows commits every
/// page at creation (`SEC_COMMIT`), whatever `new.reserve` says.
pub(crate) fn create(id: &str, new: &super::NewSegment<'_>) -> Result<Map> {
    let total = new.total;
    let name = os_name(id);
    // SEC_COMMIT charges the whole size against the commit limit now, so running out of memory is
    // an error here, never a fault on a later write.
    // SAFETY: name is NUL-terminated UTF-16; INVALID_HANDLE_VALUE asks for a pagefile-backed section.
    let handle = unsafe {
        CreateFileMappingW(
            INVALID_HANDLE_VALUE,
            std::ptr::null(),
            PAGE_READWRITE | SEC_COMMIT,
            (total >> 32) as u32,
            total as u32,
            name.as_ptr(),
        )
    };
    if handle.is_null() {
        return Err(last_error("create", id));
    }
    // SAFETY: reading the last error right after the call that set it.
    if unsafe { GetLastError() } == ERROR_ALREADY_EXISTS {
        // SAFETY: our handle to the existing section, closed once; the section is left alone.
        unsafe { CloseHandle(handle) };
        return Err(Error::new(
            Code::Exists,
            format!("a segment with id {id:?} exists already"),
        ));
    }
    let map = map_handle(handle, Access::Shared, id)?;
    if (map.len() as u64) < total {
        return Err(no_space(id, total));
    }
    // Nobody else has this segment's handle yet; the view holds `total` bytes (checked above).
    let _ = super::write_map(&map, 0, new.head);
    let _ = super::write_map(&map, new.data_offset, new.init.unwrap_or(&[]));
    register_marker(id);
    Ok(map)
}

pub(crate) fn open(id: &str, access: Access) -> Result<Map> {
    let want = match access {
        Access::Shared => FILE_MAP_ALL_ACCESS,
        Access::CopyOnWrite => FILE_MAP_COPY | FILE_MAP_READ,
        Access::Peek => FILE_MAP_READ,
    };
    let name = os_name(id);
    // SAFETY: name is NUL-terminated UTF-16.
    let handle = unsafe { OpenFileMappingW(want, 0, name.as_ptr()) };
    if handle.is_null() {
        return Err(last_error("open", id));
    }
    map_handle(handle, access, id)
}

pub(crate) fn exists(id: &str) -> bool {
    let name = os_name(id);
    // SAFETY: as in `open`.
    let handle = unsafe { OpenFileMappingW(FILE_MAP_READ, 0, name.as_ptr()) };
    if handle.is_null() {
        return false;
    }
    // SAFETY: the handle was just opened here and is closed once.
    unsafe { CloseHandle(handle) };
    true
}

/// Closes every handle this process holds on `id`'s section; mapped views keep working. True
/// when that closed something and the name is gone: no other process held the segment.
pub(crate) fn unlink(id: &str) -> Result<bool> {
    let closed: Vec<usize> = {
        let mut t = handles();
        let serials: Vec<u64> = t
            .open
            .iter()
            .filter(|(_, (i, _))| i == id)
            .map(|(s, _)| *s)
            .collect();
        serials
            .iter()
            .filter_map(|s| t.open.remove(s).map(|(_, h)| h))
            .collect()
    };
    for h in &closed {
        // SAFETY: each handle was taken out of the table, so it is closed once, here.
        unsafe { CloseHandle(*h as HANDLE) };
    }
    let gone = !exists(id);
    if gone {
        unregister_marker(id);
    }
    Ok(!closed.is_empty() && gone)
}

/// The ids of the segments of this package that this process can open: those whose markers
/// are in this session's directory. A marker whose mapping no longer opens is removed.
pub(crate) fn list_ids() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(listing_dir()) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix(PREFIX).map(str::to_string))
        .filter(|id| crate::name::validate_id(id).is_ok())
        .filter(|id| {
            exists(id) || {
                unregister_marker(id);
                false
            }
        })
        .collect();
    ids.sort();
    ids
}

/// `%TEMP%\sharedobject-<session>`: the temporary directory is the user's, and `Local\` names
/// are the session's, so a marker is only ever judged by processes that can open its mapping.
fn listing_dir() -> PathBuf {
    let mut session = 0u32;
    // SAFETY: ProcessIdToSessionId writes one u32; on failure `session` stays 0.
    unsafe { ProcessIdToSessionId(GetCurrentProcessId(), &mut session) };
    std::env::temp_dir().join(format!("sharedobject-{session}"))
}

fn register_marker(id: &str) {
    let dir = listing_dir();
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::File::create(dir.join(format!("{PREFIX}{id}")));
}

fn unregister_marker(id: &str) {
    let _ = std::fs::remove_file(listing_dir().join(format!("{PREFIX}{id}")));
}

/// A process's creation time in 100 ns units since 1601, or None when it cannot be read.
fn creation_time(process: HANDLE) -> Option<u64> {
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: process is a valid process handle with query rights; four FILETIMEs are written.
    let ok = unsafe { GetProcessTimes(process, &mut created, &mut exited, &mut kernel, &mut user) };
    (ok != 0).then(|| (u64::from(created.dwHighDateTime) << 32) | u64::from(created.dwLowDateTime))
}

/// This process's pid.
pub(crate) fn current_pid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { GetCurrentProcessId() }
}

/// Who this process is: pid, creation time, and 0 (Windows has no pid namespaces).
pub(crate) fn current_process() -> (u32, u64, u64) {
    // SAFETY: no preconditions; the pseudo handle of the current process needs no closing.
    let (pid, me) = unsafe { (GetCurrentProcessId(), GetCurrentProcess()) };
    (pid, creation_time(me).unwrap_or(0), 0)
}

/// Whether the process that created a segment still runs: the pid must name a running process
/// created at the recorded time (a pid reused by a later process is not the owner). `None` when
/// Windows will not say (a process of another user).
pub(crate) fn owner_alive(pid: u32, start: u64, _pidns: u64) -> Option<bool> {
    // SAFETY: OpenProcess has no preconditions; a null handle means failure.
    let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if process.is_null() {
        // SAFETY: reading the last error right after the call that set it.
        return match unsafe { GetLastError() } {
            ERROR_INVALID_PARAMETER => Some(false), // no such process
            _ => None,
        };
    }
    let mut code = 0u32;
    // SAFETY: process is a valid handle with query rights; one u32 is written.
    let read = unsafe { GetExitCodeProcess(process, &mut code) } != 0;
    let created = creation_time(process);
    // SAFETY: the handle was opened above and is closed once.
    unsafe { CloseHandle(process) };
    if !read {
        // Unknown is taken for alive: a lock holder is never robbed, a segment never swept.
        return None;
    }
    // A live pid with another creation time is a reused pid: the owner is gone.
    Some(code == STILL_ACTIVE as u32 && (start == 0 || created.is_none_or(|c| c == start)))
}

/// Windows bounds a pagefile-backed mapping by the commit limit itself, with an error.
pub(crate) fn memory_limit() -> Option<u64> {
    None
}

/// `close()` on Windows: a view cannot be replaced in place, so its pages go when the engine
/// releases the buffer; its section handle goes now, so this process no longer keeps the
/// segment's name (or a handle) for it.
pub(crate) fn retire(map: &Map) {
    map._held.close();
}

/// Windows opens a mapping by name each time it maps one: a `File` is the name, with a read-only
/// view that keeps the section alive while the `File` lives. Without it, the section could go
/// between two reads (its last other handle closed by another thread), and a read or a mark
/// would meet a name that no longer exists halfway through `free`.
pub(crate) struct File {
    id: String,
    size: u64,
    view: Map,
}

impl File {
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
    /// Windows commits a mapping's pages when it is created: there are no holes to count.
    pub(crate) fn allocated(&self) -> Option<u64> {
        None
    }
    /// Reads `buf.len()` bytes at `offset` through a read-only view (the name is all a `File` is).
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        super::read_map(&self.view, offset, buf).ok_or_else(|| short(&self.id))
    }
    /// Writes `data` at `offset` through a shared view (the section exists: `view` holds it).
    pub(crate) fn write_at(&self, data: &[u8], offset: u64) -> Result<()> {
        let map = open(&self.id, Access::Shared)?;
        super::write_map(&map, offset, data).ok_or_else(|| short(&self.id))
    }
}

fn short(id: &str) -> Error {
    Error::new(
        Code::BadHeader,
        format!("segment {id:?} ends inside its header"),
    )
}

pub(crate) fn open_named(id: &str, _write: bool) -> Result<File> {
    let view = open(id, Access::Peek)?;
    Ok(File {
        id: id.to_string(),
        size: view.len() as u64,
        view,
    })
}

pub(crate) fn map_file(file: &File, access: Access, _populate: bool) -> Result<Map> {
    open(&file.id, access)
}

/// Windows maps a view's pages at first touch; there is nothing to ask for ahead of it.
pub(crate) fn prefault(_map: &Map) {}

pub(crate) fn create_named(id: &str, new: &super::NewSegment<'_>) -> Result<(File, Map)> {
    let map = create(id, new)?;
    let view = open(id, Access::Peek)?;
    Ok((
        File {
            id: id.to_string(),
            size: map.len() as u64,
            view,
        },
        map,
    ))
}

pub(crate) fn max_map_count() -> usize {
    65530
}

/// A view onto a segment's control word (see `header`), shared and writable.
pub(crate) struct Control {
    map: Map,
    at: usize,
}

impl Control {
    pub(crate) fn word(&self) -> &std::sync::atomic::AtomicU64 {
        // SAFETY: `at` + 8 lies inside the view (checked in `control`); views start on an
        // allocation-granularity boundary and `at` is a multiple of 8, so the word is aligned.
        // Every process changes it only with atomic operations.
        unsafe { &*(self.map.ptr().add(self.at) as *const std::sync::atomic::AtomicU64) }
    }
}

/// Maps the segment shared to reach its control word at `offset`.
pub(crate) fn control(file: &File, offset: u64) -> Result<Control> {
    if !offset.is_multiple_of(8) || offset.saturating_add(crate::header::CONTROL_SIZE) > file.size {
        return Err(crate::Error::new(
            crate::Code::BadHeader,
            format!("segment {:?} has no control word", file.id),
        ));
    }
    let map = open(&file.id, Access::Shared)?;
    if offset as usize + 8 > map.len() {
        return Err(crate::Error::new(
            crate::Code::BadHeader,
            format!("segment {:?} has no control word", file.id),
        ));
    }
    Ok(Control {
        map,
        at: offset as usize,
    })
}

/// Windows has no names to remove while anyone holds the segment: `ours` marks it, and this
/// process lets go of its own handles on it.
pub(crate) fn unlink_checked(id: &str, ours: impl FnOnce(&File) -> Result<bool>) -> Result<bool> {
    let file = match open_named(id, true) {
        Ok(f) => f,
        Err(e) if e.code == crate::Code::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !ours(&file)? {
        return Ok(false);
    }
    drop(file);
    unlink(id)
}
