//! Windows: pagefile-backed named file mappings in the session's `Local\` namespace. A mapping
//! lives while any process holds a handle or a view of it and has no name to remove, so `free`
//! only forgets it, `persist` cannot outlive the last process, and there is nothing to sweep.

use std::ffi::c_void;

use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, ERROR_ACCESS_DENIED, ERROR_ALREADY_EXISTS, ERROR_COMMITMENT_LIMIT,
    ERROR_DISK_FULL, ERROR_FILE_NOT_FOUND, ERROR_NOT_ENOUGH_MEMORY, HANDLE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, MapViewOfFile, OpenFileMappingW, UnmapViewOfFile, VirtualQuery,
    FILE_MAP_ALL_ACCESS, FILE_MAP_COPY, FILE_MAP_READ, MEMORY_BASIC_INFORMATION,
    MEMORY_MAPPED_VIEW_ADDRESS, PAGE_READWRITE, SEC_COMMIT,
};
use windows_sys::Win32::System::Threading::GetCurrentProcessId;

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
        ERROR_COMMITMENT_LIMIT | ERROR_NOT_ENOUGH_MEMORY | ERROR_DISK_FULL => Code::NoSpace,
        _ => Code::Os,
    };
    let message = match code {
    Code::NotFound => format!("no segment with id {id:?}: it was freed, every process released it, or it never existed"),
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

/// A view of a whole mapping; unmapped when dropped. No handle is kept: the view alone keeps
/// the mapping alive.
pub(crate) struct Map {
    base: *mut c_void,
    len: usize,
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

/// Maps all of `handle` and closes the handle.
fn map_handle(handle: HANDLE, access: Access, id: &str) -> Result<Map> {
    let want = match access {
        Access::Shared => FILE_MAP_ALL_ACCESS,
        Access::CopyOnWrite => FILE_MAP_COPY,
        Access::Peek => FILE_MAP_READ,
    };
    // SAFETY: handle is a valid mapping handle owned here; a length of 0 maps the whole section.
    let view = unsafe { MapViewOfFile(handle, want, 0, 0, 0) };
    let failed = view.Value.is_null();
    let err = failed.then(|| last_error("map", id));
    // SAFETY: the handle is ours and closed once; a view keeps the mapping alive by itself.
    unsafe { CloseHandle(handle) };
    if let Some(e) = err {
        return Err(e);
    }
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
    })
}

pub(crate) fn create(
    id: &str,
    head: &[u8],
    data_offset: u64,
    total: u64,
    init: Option<&[u8]>,
    _reserve: bool,
) -> Result<Map> {
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
        unsafe { CloseHandle(handle) };
        return Err(Error::new(
            Code::Exists,
            format!("a segment with id {id:?} exists already"),
        ));
    }
    let map = map_handle(handle, Access::Shared, id)?;
    let init = init.unwrap_or(&[]);
    if (map.len() as u64) < total {
        return Err(no_space(id, total));
    }
    // SAFETY: the view holds at least `total` bytes; head ends before data_offset and init fits
    // after it (checked by the caller). Nobody else has this segment's handle yet.
    unsafe { super::fill_map(&map, head, data_offset, init) };
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
    // SAFETY: as in `open`; the handle is closed at once.
    let handle = unsafe { OpenFileMappingW(FILE_MAP_READ, 0, name.as_ptr()) };
    if handle.is_null() {
        return false;
    }
    unsafe { CloseHandle(handle) };
    true
}

/// Windows mappings have no name to remove: they end with their last handle or view.
pub(crate) fn unlink(id: &str) -> Result<bool> {
    Ok(exists(id))
}

/// Windows cannot enumerate named mappings; `list` shows this process's own segments.
pub(crate) fn list_ids() -> Vec<String> {
    Vec::new()
}

pub(crate) fn current_process() -> (u32, u64, u64) {
    // SAFETY: no preconditions.
    (unsafe { GetCurrentProcessId() }, 0, 0)
}

/// Nothing on Windows outlives its processes, so an owner is never looked for.
pub(crate) fn owner_alive(_pid: u32, _start: u64, _pidns: u64) -> Option<bool> {
    None
}

/// Windows bounds a pagefile-backed mapping by the commit limit itself, with an error.
pub(crate) fn memory_limit() -> Option<u64> {
    None
}
