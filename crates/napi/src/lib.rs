//! The Node-API binding: JavaScript types in, core calls, JavaScript types out. Lifecycle rules
//! live in `sharedobject-core`. This crate hands each core `View` to the engine together with the
//! buffer made over it, so the view (and with it the mapping) lives exactly as long as the engine
//! keeps the buffer's memory: through transfers, thread-pool jobs and worker threads.

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::{
    FromNapiValue, ToNapiValue, TypeName, Uint8ArraySlice, ValidateNapiValue,
};
use napi::{sys, Env, Error, Result, Status, ValueType};
use napi_derive::napi;
use sharedobject_core::{registry, Code, CreateSpec, ErrorClass, Kind, Mode};

pub mod sync;

/// Throws `e` as a JavaScript error with `code`, of the class the code calls for.
fn throw(env: &Env, e: sharedobject_core::Error) -> Error {
    let code = Some(e.code.as_str());
    let _ = match e.code.class() {
        ErrorClass::TypeError => env.throw_type_error(&e.message, code),
        ErrorClass::RangeError => env.throw_range_error(&e.message, code),
        ErrorClass::Error => env.throw_error(&e.message, code),
    };
    Error::from_status(Status::PendingException)
}

fn core_err(code: Code, message: impl Into<String>) -> sharedobject_core::Error {
    sharedobject_core::Error::new(code, message)
}

/// `node_api_create_external_sharedarraybuffer` (Node >= 24.16 on the 24 line, >= 26.1), found
/// at run time so that the addon still loads on older Node.
type CreateSab = unsafe extern "C" fn(
    sys::napi_env,
    *mut c_void,
    usize,
    Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>,
    *mut c_void,
    *mut sys::napi_value,
) -> sys::napi_status;

fn create_sab_fn() -> Option<CreateSab> {
    static FOUND: std::sync::OnceLock<Option<CreateSab>> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        if std::env::var_os("SHAREDOBJECT_NO_SAB").is_some() {
            return None;
        }
        lookup_sab()
    })
}

#[cfg(unix)]
fn lookup_sab() -> Option<CreateSab> {
    // SAFETY: dlsym with RTLD_DEFAULT searches the process's global symbols (node exports its
    // Node-API there); a found symbol is this function, whose C signature CreateSab matches
    // js_native_api.h.
    unsafe {
        let p = libc::dlsym(
            libc::RTLD_DEFAULT,
            c"node_api_create_external_sharedarraybuffer".as_ptr(),
        );
        (!p.is_null()).then(|| std::mem::transmute::<*mut c_void, CreateSab>(p))
    }
}

#[cfg(not(unix))]
fn lookup_sab() -> Option<CreateSab> {
    None
}

/// Bytes of creators' SharedArrayBuffer views that were reported to this thread's engine and
/// whose buffers have since been released. A SharedArrayBuffer's finalizer runs on whatever
/// thread frees it, where no engine may be called, so it only counts here; the creating thread
/// gives the bytes back on its next call (one engine per thread, so one ledger per thread).
type Ledger = Arc<AtomicI64>;

thread_local! {
    static LEDGER: Ledger = Arc::new(AtomicI64::new(0));
}

fn settle_external_memory(env: sys::napi_env) {
    let back = LEDGER.with(|l| l.swap(0, Ordering::AcqRel));
    if back > 0 {
        let mut out = 0i64;
        // SAFETY: a plain Node-API call on the environment's own thread.
        unsafe { sys::napi_adjust_external_memory(env, -back, &mut out) };
    }
}

/// What a finalizer releases: the core view, and the bytes to give back to a creator's engine.
struct Held {
    _view: registry::View,
    reported: Option<(Ledger, i64)>,
}

unsafe extern "C" fn release_held(data: *mut c_void) {
    // SAFETY: `data` is the Box<Held> leaked in `to_napi_value`, handed to the engine exactly
    // once; the engine calls the finalizer exactly once.
    let held = unsafe { Box::from_raw(data.cast::<Held>()) };
    if let Some((ledger, n)) = &held.reported {
        ledger.fetch_add(*n, Ordering::AcqRel);
    }
    drop(held); // releases the view: the mapping is unmapped with its last view
}

unsafe extern "C" fn finalize_sab(_data: *mut c_void, hint: *mut c_void) {
    // SAFETY: forwarded: `hint` is the Box<Held>.
    unsafe { release_held(hint) }
}

unsafe extern "C" fn finalize_ab(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: forwarded: `hint` is the Box<Held>.
    unsafe { release_held(hint) }
}

/// A view's bytes as a JavaScript buffer over the mapping itself: a SharedArrayBuffer where
/// the runtime can make one, else an external ArrayBuffer.
pub struct ViewBuffer {
    view: registry::View,
    /// The creator reports the segment's size to its engine (see `settle_external_memory`).
    report: bool,
    /// A SharedArrayBuffer where the runtime can make one; else (the developer API, whose
    /// buffers are ArrayBuffers that unmapping detaches, as in R) always an ArrayBuffer.
    shared: bool,
}

impl TypeName for ViewBuffer {
    fn type_name() -> &'static str {
        "ArrayBuffer"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for ViewBuffer {
    unsafe fn to_napi_value(env: sys::napi_env, v: Self) -> Result<sys::napi_value> {
        let len = v.view.byte_length();
        // An empty view still gets a valid, non-null address so the engine never sees null data.
        let data: *mut c_void = if len == 0 {
            ptr::NonNull::<u64>::dangling().as_ptr().cast()
        } else {
            v.view.ptr().cast()
        };
        let sab = create_sab_fn().filter(|_| v.shared);
        // The engine counts an external ArrayBuffer's bytes by itself, but not a
        // SharedArrayBuffer's: the creator reports those, so that a loop that shares and drops
        // big vectors still makes the engine collect. Openers report nothing, so opening never
        // starts a collection.
        let reported =
            (v.report && sab.is_some() && len > 0).then(|| (LEDGER.with(Arc::clone), len as i64));
        let reported_bytes = reported.as_ref().map(|(_, n)| *n);
        let held = Box::into_raw(Box::new(Held {
            _view: v.view,
            reported,
        }));
        let mut out = ptr::null_mut();
        // SAFETY: `data` points to `len` bytes that stay mapped while `held` lives (the view
        // owns its mapping); the engine owns `held` from here and releases it in the finalizer,
        // only when nothing (object, transferred buffer, job) can reach the memory any more.
        let status = unsafe {
            match sab {
                Some(f) => f(env, data, len, Some(finalize_sab), held.cast(), &mut out),
                None => sys::napi_create_external_arraybuffer(
                    env,
                    data,
                    len,
                    Some(finalize_ab),
                    held.cast(),
                    &mut out,
                ),
            }
        };
        if status == sys::Status::napi_ok {
            if let Some(n) = reported_bytes {
                let mut total = 0i64;
                // SAFETY: a plain Node-API call on this environment's thread.
                unsafe { sys::napi_adjust_external_memory(env, n, &mut total) };
            }
            return Ok(out);
        }
        // SAFETY: the engine did not take `held`: it is still ours to drop.
        drop(unsafe { Box::from_raw(held) });
        let e = if status == sys::Status::napi_no_external_buffers_allowed {
            core_err(
                Code::ExternalBuffers,
                "this runtime forbids buffers over external memory (as Electron does), so a shared view cannot be made; \
                 open(handle, { copy: true }) gives a private copy instead",
            )
        } else {
            core_err(
                Code::Os,
                format!("cannot create a buffer over the segment (napi status {status})"),
            )
        };
        Err(throw(&Env::from_raw(env), e))
    }
}

/// Any JavaScript value, untouched.
pub struct Raw(sys::napi_value);

impl TypeName for Raw {
    fn type_name() -> &'static str {
        "unknown"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}
impl ValidateNapiValue for Raw {}
impl FromNapiValue for Raw {
    unsafe fn from_napi_value(_env: sys::napi_env, v: sys::napi_value) -> Result<Self> {
        Ok(Raw(v))
    }
}

/// Options of `create`, already checked by the façade.
#[napi(object)]
pub struct CreateOptions {
    pub kind: String,
    pub length: f64,
    /// Data bytes, for kinds without a fixed element size.
    pub byte_length: Option<f64>,
    pub id: Option<String>,
    pub attributes: Option<String>,
    pub copy_on_write: bool,
    pub persist: bool,
    pub named: Option<bool>,
    pub reserve: bool,
    pub aux: Option<Vec<f64>>,
}

/// One view, with what the header says of its segment.
#[napi(object, object_from_js = false)]
pub struct ViewInfo {
    #[napi(ts_type = "ArrayBuffer | SharedArrayBuffer")]
    pub buffer: ViewBuffer,
    /// The same for every view of one mapping: `id:generation:mode`.
    pub key: String,
    pub id: String,
    pub handle: String,
    pub kind: String,
    pub length: f64,
    pub byte_length: f64,
    pub copy_on_write: bool,
    pub persistent: bool,
    pub owner: bool,
    pub owner_pid: u32,
    pub created: f64,
    pub attributes: String,
    pub aux: Vec<f64>,
    pub path: Option<String>,
}

fn to_info(v: registry::View, report: bool) -> ViewInfo {
    to_info_as(v, report, true)
}

fn to_info_as(v: registry::View, report: bool, shared: bool) -> ViewInfo {
    let h = v.header().clone();
    ViewInfo {
        key: v.key(),
        id: v.id().to_string(),
        handle: v.handle().to_string(),
        kind: h.kind.name().to_string(),
        length: h.length as f64,
        byte_length: h.byte_length as f64,
        copy_on_write: v.mode() == Mode::CopyOnWrite,
        persistent: h.persistent(),
        owner: v.owner(),
        owner_pid: h.owner_pid,
        created: h.created_ms as f64,
        attributes: v.attributes().to_string(),
        aux: h.aux.iter().map(|&w| w as f64).collect(),
        path: v.path(),
        buffer: ViewBuffer {
            view: v,
            report,
            shared,
        },
    }
}

fn whole(x: f64, what: &str) -> sharedobject_core::Result<u64> {
    if x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x <= 9_007_199_254_740_991.0 {
        Ok(x as u64)
    } else {
        Err(core_err(
            Code::OutOfRange,
            format!("{what} must be a whole number from 0 to 2^53 - 1, got {x}"),
        ))
    }
}

fn mode_of(copy_on_write: Option<bool>) -> Option<Mode> {
    copy_on_write.map(|c| if c { Mode::CopyOnWrite } else { Mode::Shared })
}

/// Whether views are SharedArrayBuffers in this runtime.
#[napi]
pub fn shared_buffers() -> bool {
    create_sab_fn().is_some()
}

/// Creates a segment, copies `init` into it, and returns the owner's view.
#[napi]
pub fn create(env: Env, options: CreateOptions, init: Option<Uint8ArraySlice>) -> Result<ViewInfo> {
    settle_external_memory(env.raw());
    let run = || {
        let kind = Kind::from_name(&options.kind).ok_or_else(|| {
            core_err(
                Code::InvalidArgument,
                format!("unknown kind {:?}", options.kind),
            )
        })?;
        let length = whole(options.length, "length")?;
        let byte_length = match (options.byte_length, kind.element_size()) {
            (Some(b), _) => whole(b, "byteLength")?,
            (None, Some(size)) => length
                .checked_mul(size)
                .ok_or_else(|| core_err(Code::OutOfRange, "length too large"))?,
            (None, None) => {
                return Err(core_err(
                    Code::InvalidArgument,
                    "byteLength is required for this kind",
                ))
            }
        };
        let mut aux = [0u64; sharedobject_core::header::AUX_WORDS];
        for (slot, &w) in aux.iter_mut().zip(options.aux.iter().flatten()) {
            *slot = whole(w, "aux")?;
        }
        let spec = CreateSpec {
            id: options.id.as_deref(),
            kind: Some(kind),
            length,
            byte_length,
            attributes: options.attributes.as_deref().unwrap_or(""),
            copy_on_write: options.copy_on_write,
            persist: options.persist,
            named: options.named.unwrap_or(false),
            reserve: options.reserve,
            developer: false,
            aux,
        };
        registry::create(&spec, init.as_deref())
    };
    run().map(|v| to_info(v, true)).map_err(|e| throw(&env, e))
}

/// What a handle names, found without mapping it.
#[napi(object, object_from_js = false)]
pub struct LocateInfo {
    /// The mapping key it would open under.
    pub key: String,
    pub kind: String,
    pub byte_length: f64,
}

/// The mapping key a handle would open under (`copyOnWrite` undefined takes the sharer's
/// default), after checking the segment can still be opened; nothing is mapped.
#[napi]
pub fn locate(env: Env, handle: String, copy_on_write: Option<bool>) -> Result<LocateInfo> {
    registry::locate(&handle, mode_of(copy_on_write))
        .map(|l| LocateInfo {
            key: l.key,
            kind: l.header.kind.name().to_string(),
            byte_length: l.header.byte_length as f64,
        })
        .map_err(|e| throw(&env, e))
}

/// Opens the segment a handle names; `copyOnWrite` undefined takes the sharer's default.
/// `populate` maps every page now instead of at first touch.
#[napi]
pub fn open(
    env: Env,
    handle: String,
    copy_on_write: Option<bool>,
    populate: Option<bool>,
    unreserved: Option<bool>,
) -> Result<ViewInfo> {
    settle_external_memory(env.raw());
    registry::open_handle_with(
        &handle,
        mode_of(copy_on_write),
        populate.unwrap_or(false),
        unreserved.unwrap_or(false),
    )
    .map(|v| to_info(v, false))
    .map_err(|e| throw(&env, e))
}

/// The view whose data `bytes` (a Uint8Array over a whole SharedArrayBuffer that came from
/// another thread) covers exactly, as a new buffer over the same memory, when it is one of this
/// process's live mappings; null otherwise.
#[napi]
pub fn identify(
    env: Env,
    #[napi(ts_arg_type = "Uint8Array")] bytes: Raw,
) -> Result<Option<ViewInfo>> {
    let (mut kind, mut len, mut data, mut ab, mut offset) =
        (0, 0usize, ptr::null_mut(), ptr::null_mut(), 0usize);
    // SAFETY: a plain Node-API query on a value of this call; on failure nothing is read.
    let status = unsafe {
        sys::napi_get_typedarray_info(
            env.raw(),
            bytes.0,
            &mut kind,
            &mut len,
            &mut data,
            &mut ab,
            &mut offset,
        )
    };
    if status != sys::Status::napi_ok || len == 0 || data.is_null() {
        return Ok(None);
    }
    Ok(registry::find(data.cast::<u8>().cast_const(), len).map(|v| to_info(v, false)))
}

/// Maps every page of the mapping named by `key` into this process now.
#[napi]
pub fn populate(key: String) -> bool {
    registry::populate(&key)
}

/// Opens a named segment by id (the developer API's `mapSharedMemory`), as an ArrayBuffer.
#[napi]
pub fn open_id(env: Env, id: String, copy_on_write: Option<bool>) -> Result<ViewInfo> {
    registry::open_id(&id, mode_of(copy_on_write))
        .map(|v| to_info_as(v, false, false))
        .map_err(|e| throw(&env, e))
}

/// A segment's header, for a copy read without keeping it mapped.
#[napi(object, object_from_js = false)]
pub struct CopyInfo {
    pub kind: String,
    pub length: f64,
    pub copy_on_write: bool,
    pub attributes: String,
    pub aux: Vec<f64>,
    /// A private copy of the data, in memory the engine owns.
    pub data: napi::bindgen_prelude::Buffer,
}

/// Copies the segment a handle names into engine-owned memory: the fallback for runtimes that
/// forbid external buffers. Segments larger than `maxBytes` are refused before any allocation.
#[napi]
pub fn read_copy(env: Env, handle: String, max_bytes: f64) -> Result<CopyInfo> {
    let (h, attributes, data) =
        registry::read_copy(&handle, max_bytes.max(0.0) as u64).map_err(|e| throw(&env, e))?;
    Ok(CopyInfo {
        kind: h.kind.name().to_string(),
        length: h.length as f64,
        copy_on_write: h.copy_on_write(),
        attributes,
        aux: h.aux.iter().map(|&w| w as f64).collect(),
        data: data.into(),
    })
}

/// Records that a handle was handed out, so its owner keeps the segment nameable until `free`
/// or exit. Returns whether this process owns it.
#[napi]
pub fn hand_out(env: Env, handle: String) -> Result<bool> {
    registry::hand_out(&handle).map_err(|e| throw(&env, e))
}

/// Closes a view in this process: detaches `buffer` when it is an ArrayBuffer (every TypedArray
/// over it then has length 0), and gives the mapping named by `key` back to the OS now. Memory
/// that something else still references is never unmapped here: it reads as zeros until the
/// engine releases it. Returns whether a live mapping was retired.
#[napi]
pub fn close(
    env: Env,
    #[napi(ts_arg_type = "ArrayBuffer | SharedArrayBuffer")] buffer: Raw,
    key: String,
) -> Result<bool> {
    settle_external_memory(env.raw());
    let raw = env.raw();
    let mut is_ab = false;
    // SAFETY: plain Node-API queries on a value of this call.
    unsafe { sys::napi_is_arraybuffer(raw, buffer.0, &mut is_ab) };
    // Where the pages cannot be replaced in place (Windows), the view is unmapped when the engine
    // releases the detached buffer: a thread-pool job still writing into a closed vector there is
    // the one case this cannot cover (see the README's platform notes).
    let mut detached = false;
    if is_ab {
        // SAFETY: as above; detaching an external ArrayBuffer is allowed (it is detachable).
        unsafe {
            sys::napi_is_detached_arraybuffer(raw, buffer.0, &mut detached);
            if !detached {
                detached = sys::napi_detach_arraybuffer(raw, buffer.0) == sys::Status::napi_ok;
            }
        }
    }
    Ok(registry::retire(&key, detached))
}

/// Removes the segment named by an id.
#[napi]
pub fn free(env: Env, id: String) -> Result<bool> {
    registry::free(&id).map_err(|e| throw(&env, e))
}

/// Removes the very segment a handle names (and no newer one of the same id).
#[napi]
pub fn free_handle(env: Env, handle: String) -> Result<bool> {
    registry::free_handle(&handle).map_err(|e| throw(&env, e))
}

#[napi]
pub fn exists(env: Env, id: String) -> Result<bool> {
    registry::exists(&id).map_err(|e| throw(&env, e))
}

/// Bytes a named segment's data region holds.
#[napi]
pub fn data_size(env: Env, id: String) -> Result<f64> {
    registry::peek(&id)
        .map(|(h, _, _)| h.byte_length as f64)
        .map_err(|e| throw(&env, e))
}

#[napi]
pub fn allocate(env: Env, size: f64, id: Option<String>) -> Result<String> {
    whole(size, "size")
        .and_then(|s| registry::allocate(s, id.as_deref()))
        .map_err(|e| throw(&env, e))
}

#[napi]
pub fn last_created() -> Option<String> {
    registry::last_created()
}

#[napi]
pub fn release_owned() -> u32 {
    registry::release_owned() as u32
}

/// A segment as `list()` and `sweep()` report it.
#[napi(object, object_from_js = false)]
pub struct SegmentInfo {
    pub id: String,
    pub kind: String,
    pub length: f64,
    pub byte_length: f64,
    pub size: f64,
    pub owner_pid: u32,
    /// null when this process cannot tell.
    pub owner_alive: Option<bool>,
    pub persistent: bool,
    pub developer: bool,
    pub copy_on_write: bool,
    pub named: bool,
    pub created: f64,
}

fn to_segment(l: registry::Listing) -> SegmentInfo {
    SegmentInfo {
        kind: l.header.kind.name().to_string(),
        length: l.header.length as f64,
        byte_length: l.header.byte_length as f64,
        size: l.size as f64,
        owner_pid: l.header.owner_pid,
        owner_alive: l.owner_alive,
        persistent: l.header.persistent(),
        developer: l.header.developer(),
        copy_on_write: l.header.copy_on_write(),
        named: l.named,
        created: l.header.created_ms as f64,
        id: l.id,
    }
}

#[napi]
pub fn list() -> Vec<SegmentInfo> {
    registry::list().into_iter().map(to_segment).collect()
}

#[napi]
pub fn sweep(dry_run: bool) -> Vec<SegmentInfo> {
    registry::sweep(dry_run)
        .into_iter()
        .map(to_segment)
        .collect()
}

/// Mappings this process holds.
#[napi(object, object_from_js = false)]
pub struct Stats {
    /// Mappings registered and alive (one per segment and mode).
    pub mappings: u32,
    /// Mappings not yet retired or released, across threads.
    pub live: u32,
}

#[napi]
pub fn stats() -> Stats {
    let (mappings, live) = registry::stats();
    Stats {
        mappings: mappings as u32,
        live: live as u32,
    }
}
