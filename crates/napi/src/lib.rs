//! The Node-API binding: JavaScript types in, core calls, JavaScript types out. Lifecycle rules
//! live in `sharedobject-core`. This crate hands each core `View` to the engine together with the
//! buffer made over it, so the view (and with it the mapping) lives exactly as long as the engine
//! keeps the buffer's memory: through transfers, thread-pool jobs and worker threads. Each
//! buffer comes with a [`Segment`], the external value JavaScript asks about the mapping and
//! closes it by.
//!
//! Two engine behaviours shape this file:
//! - Detaching an ArrayBuffer (`close`) lets the engine finalize it at once, though a thread-pool
//!   job that holds the buffer object may still write through its old pointer. So `close` moves
//!   the buffer's view into this thread's quarantine, with a weak reference to the buffer
//!   object: the view is dropped (and the range unmapped, if it was the last) once the engine
//!   has collected that object, which it does only after every job holding it has ended.
//! - An environment's teardown (a worker thread's exit) finalizes its ArrayBuffers even when
//!   their memory was transferred to another thread. A finalizer that runs during teardown keeps
//!   its view for the life of the process instead of unmapping memory someone may still read.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use napi::bindgen_prelude::{
    External, FromNapiValue, ToNapiValue, TypeName, Uint8ArraySlice, ValidateNapiValue,
};
use napi::{sys, Env, Error, Result, Status, ValueType};
use napi_derive::napi;
use sharedobject_core::{registry, Code, CreateSpec, ErrorClass, Kind, Mode};

mod pool;
pub mod raw;
pub mod sync;
pub mod weak;

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

/// `node_api_create_external_sharedarraybuffer` (Node 22.23+, 24.16+, 26.1+), found at run time
/// so that the addon still loads, with ArrayBuffer views, on Node releases without it.
type CreateSab = unsafe extern "C" fn(
    sys::napi_env,
    *mut c_void,
    usize,
    Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>,
    *mut c_void,
    *mut sys::napi_value,
) -> sys::napi_status;

pub(crate) fn create_sab_fn() -> Option<CreateSab> {
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

/// Bytes of creators' views that were reported to this thread's engine and
/// whose buffers have since been released. A SharedArrayBuffer's finalizer runs on whatever
/// thread frees it, where no engine may be called, so it only counts here; the creating thread
/// gives the bytes back on its next call (one engine per thread, so one ledger per thread).
pub(crate) type Ledger = Arc<AtomicI64>;

/// A detached ArrayBuffer's view, kept until the engine has collected the buffer object.
struct Quarantined {
    /// Weak: empty once the engine collected the buffer.
    buffer: sys::napi_ref,
    view: registry::View,
    /// Reported to the engine as external memory while held, so that it collects sooner.
    bytes: i64,
}

thread_local! {
    static LEDGER: Ledger = Arc::new(AtomicI64::new(0));
    /// This thread's environment is being torn down (see the module's documentation).
    static TEARDOWN: Cell<bool> = const { Cell::new(false) };
    static QUARANTINE: RefCell<Vec<Quarantined>> = const { RefCell::new(Vec::new()) };
    /// The quarantine's size and bytes past which the engine is next made to collect: a
    /// collection that freed nothing (the buffers are still referenced) is not repeated until
    /// as much again has piled up.
    static COLLECT_AT: Cell<(usize, i64)> = const { Cell::new((QUARANTINE_MAX, QUARANTINE_MAX_BYTES)) };
    /// Likewise for closed ranges (`registry::retired_bytes`).
    static COLLECT_CLOSED_AT: Cell<usize> = Cell::new(closed_max_bytes());
}

thread_local! {
    static QUARANTINE_BYTES: Cell<i64> = const { Cell::new(0) };
    /// Calls left before the quarantine is looked through again: each look costs one call per
    /// entry, so it is spread over as many calls as half the entries (at least 16).
    static SWEEP_IN: Cell<usize> = const { Cell::new(0) };
    /// Whether `on_teardown` is registered in this thread's environment: Deno panics on the
    /// removal of a hook that was never added, where Node ignores it.
    static TEARDOWN_HOOKED: Cell<bool> = const { Cell::new(false) };
}

fn quarantine_size() -> (usize, i64) {
    (
        QUARANTINE.with(|q| q.borrow().len()),
        QUARANTINE_BYTES.with(Cell::get),
    )
}

/// Quarantined views past which the engine is made to collect now: a synchronous loop of
/// (share, close) never gives it a moment of its own, and each view holds an address range.
const QUARANTINE_MAX: usize = 1024;
const QUARANTINE_MAX_BYTES: i64 = 1 << 28;
/// Closed ranges, in bytes, past which `close` makes the engine collect now (a full collection:
/// tens of milliseconds in a process with a big heap). Where a closed range is replaced in place
/// by pages that hold nothing (Linux, macOS) it costs address space only, so that a worker that
/// opens and closes a big vector per job is not stopped for a collection every few closes: the
/// bound is a 512th of the address space, at least 16 GiB and at most 256 GiB (256 GiB on
/// x86-64 Linux: 687 closes of a 400 MB vector; 16 GiB where it cannot be told), and no more than
/// an eighth of `RLIMIT_AS` where the process has one, or of the commit limit where the kernel
/// enforces one (there the zero pages are charged). Where the range keeps the segment's pages
/// until the engine lets the buffer go (Windows), and where address space is scarce (32 bits),
/// 256 MiB.
fn closed_max_bytes() -> usize {
    const LEAST: u64 = 1 << 28;
    static BOUND: OnceLock<usize> = OnceLock::new();
    *BOUND.get_or_init(|| {
        if cfg!(windows) || usize::BITS < 64 {
            return LEAST as usize;
        }
        use sharedobject_core::limits;
        let space =
            limits::address_space_size().map_or(1 << 34, |s| (s / 512).clamp(1 << 34, 1 << 38));
        let bound = [limits::address_space_limit(), limits::strict_commit_limit()]
            .into_iter()
            .flatten()
            .map(|l| l / 8)
            .fold(space, u64::min)
            .max(LEAST);
        usize::try_from(bound).unwrap_or(usize::MAX)
    })
}

/// Makes the engine run a full collection now, through the one Node-API lever there is:
/// external memory far past its limit collects at once (and is given back right after), then
/// drops the quarantined views whose buffers went with it: a bound that is moved up when a
/// collection frees too little must see what it freed.
fn collect_now(env: sys::napi_env) {
    const PRESSURE: i64 = 1 << 40;
    // The two adjustments cancel.
    adjust_external_memory(env, PRESSURE);
    adjust_external_memory(env, -PRESSURE);
    let back = sweep_quarantine(env);
    if back > 0 {
        adjust_external_memory(env, -back);
    }
}

/// Runs `f`, and when it fails only because this process holds its whole mapping budget, all
/// its descriptors or (with closed ranges or quarantined views still held) its address space,
/// makes the engine collect (releasing the buffers nobody holds any more, and with them their
/// mappings, descriptors and ranges) and runs it once more.
fn within_budget<T>(
    env: sys::napi_env,
    f: impl Fn() -> sharedobject_core::Result<T>,
) -> sharedobject_core::Result<T> {
    match f() {
        Err(e)
            if e.code == Code::NoSpace
                && (registry::over_mapping_budget()
                    || registry::retired_bytes() > 0
                    || quarantine_size().0 > 0
                    || sharedobject_core::limits::descriptors_exhausted()) =>
        {
            collect_now(env);
            settle_external_memory(env);
            f()
        }
        r => r,
    }
}

/// Runs on every call that makes or closes buffers, on the environment's own thread: gives back
/// the bytes released creators' buffers reported, and drops the quarantined views whose buffers
/// the engine has collected.
pub(crate) fn settle_external_memory(env: sys::napi_env) {
    let (at_len, at_bytes) = COLLECT_AT.with(Cell::get);
    let over = || {
        let (held, bytes) = quarantine_size();
        held > at_len || bytes > at_bytes
    };
    let mut back = LEDGER.with(|l| l.swap(0, Ordering::AcqRel));
    let due = SWEEP_IN.with(|n| {
        let left = n.get();
        n.set(left.saturating_sub(1));
        left == 0
    });
    let held = quarantine_size().0;
    // Past a bound, the buffers the engine has collected already (in a collection of its own)
    // go first: a full collection is made only for those still held. A worker that closes a
    // 150 MB vector per job (where views are ArrayBuffers) was otherwise stopped for one at
    // every second job, though its engine had collected the buffers meanwhile.
    let mut collected = false;
    if held > 0 && (due || over()) {
        back += sweep_quarantine(env);
        if over() {
            collect_now(env);
            collected = true;
        }
        let held = QUARANTINE.with(|q| q.borrow().len());
        SWEEP_IN.with(|n| n.set((held / 2).max(16)));
    }
    if collected {
        // Below the bounds again: the next collection comes at the bounds. Still above (the
        // buffers are referenced): only once as much again has piled up.
        let (held, bytes) = quarantine_size();
        let next = |now: i64, max: i64| if now < max { max } else { now + max };
        COLLECT_AT.with(|c| {
            c.set((
                next(held as i64, QUARANTINE_MAX as i64) as usize,
                next(bytes, QUARANTINE_MAX_BYTES),
            ))
        });
    }
    if back > 0 {
        adjust_external_memory(env, -back);
    }
}

/// Tells the engine of `env` (called on its own thread) of `n` more bytes of external memory,
/// or of fewer where `n` is negative.
pub(crate) fn adjust_external_memory(env: sys::napi_env, n: i64) {
    let mut total = 0i64;
    // SAFETY: a plain Node-API call on the environment's own thread (the caller's contract).
    unsafe { sys::napi_adjust_external_memory(env, n, &mut total) };
}

/// The entry of this thread's ledger through which a buffer's finalizer gives back the `n`
/// bytes this thread reported for it (see `settle_external_memory`).
pub(crate) fn ledger_entry(n: i64) -> (Ledger, i64) {
    (LEDGER.with(Arc::clone), n)
}

/// A finalizer's give-back of its buffer's reported bytes: counted on the ledger, handed back to
/// the engine by its thread's next call (finalizers may run where no engine may be called).
pub(crate) fn give_back((ledger, n): &(Ledger, i64)) {
    ledger.fetch_add(*n, Ordering::AcqRel);
}

/// Drops the quarantined views whose buffers the engine has collected; returns their bytes.
fn sweep_quarantine(env: sys::napi_env) -> i64 {
    let mut back = 0;
    let released: Vec<registry::View> = QUARANTINE.with(|q| {
        let mut q = q.borrow_mut();
        let mut out = Vec::new();
        let mut i = 0;
        while i < q.len() {
            let mut value = ptr::null_mut();
            // SAFETY: a reference this thread made in this environment and has not deleted.
            let status = unsafe { sys::napi_get_reference_value(env, q[i].buffer, &mut value) };
            if status == sys::Status::napi_ok && value.is_null() {
                let e = q.swap_remove(i);
                // SAFETY: as above; deleted once, here, after which it is never used.
                unsafe { sys::napi_delete_reference(env, e.buffer) };
                back += e.bytes;
                out.push(e.view);
            } else {
                i += 1;
            }
        }
        out
    });
    // Dropped outside the quarantine's borrow: the last view of a mapping unmaps it.
    drop(released);
    QUARANTINE_BYTES.with(|b| b.set(b.get() - back));
    back
}

static TEARDOWN_HOOK_ARG: u8 = 0;

unsafe extern "C" fn on_teardown(_arg: *mut c_void) {
    TEARDOWN.with(|t| t.set(true));
    // The engine removes a hook when it runs it.
    TEARDOWN_HOOKED.with(|h| h.set(false));
    // A job may still run past the environment: quarantined views stay for the process's life.
    QUARANTINE.with(|q| {
        q.borrow_mut()
            .drain(..)
            .for_each(|e| std::mem::forget(e.view))
    });
}

/// Makes this thread's teardown hook the newest, so that it runs before the cleanup the engine
/// registered for the ArrayBuffer just made (hooks run newest first).
fn renew_teardown_hook(env: sys::napi_env) {
    let arg = ptr::addr_of!(TEARDOWN_HOOK_ARG).cast_mut().cast::<c_void>();
    // SAFETY: plain Node-API calls on the environment's thread; the pair (on_teardown, arg) is
    // removed only while registered, so it is registered exactly once.
    unsafe {
        if TEARDOWN_HOOKED.with(Cell::get) {
            sys::napi_remove_env_cleanup_hook(env, Some(on_teardown), arg);
        }
        sys::napi_add_env_cleanup_hook(env, Some(on_teardown), arg);
    }
    TEARDOWN_HOOKED.with(|h| h.set(true));
}

/// The view one buffer keeps alive, shared by the engine's finalizer and the buffer's
/// [`Segment`]: `close` takes it out of a detached buffer into the quarantine.
struct Slot(Mutex<Option<registry::View>>);

impl Slot {
    fn take(&self) -> Option<registry::View> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// What a finalizer releases: the buffer's view, and the bytes to give back to a creator's engine.
struct Held {
    slot: Arc<Slot>,
    reported: Option<(Ledger, i64)>,
}

/// # Safety
/// `data` is the Box<Held> leaked in `to_napi_value`, handed to the engine exactly once; the
/// engine calls the finalizer exactly once.
unsafe fn release_held(data: *mut c_void, array_buffer: bool) {
    // SAFETY: forwarded from the caller.
    let held = unsafe { Box::from_raw(data.cast::<Held>()) };
    if let Some(entry) = &held.reported {
        give_back(entry);
    }
    let view = held.slot.take();
    if array_buffer && TEARDOWN.with(Cell::get) {
        // Teardown is no proof that nothing reaches the memory: a transferred buffer may.
        std::mem::forget(view);
    }
    // Otherwise the view drops here: the mapping is unmapped with its last view.
}

unsafe extern "C" fn finalize_sab(_data: *mut c_void, hint: *mut c_void) {
    // SAFETY: forwarded: `hint` is the Box<Held>. A SharedArrayBuffer's finalizer runs when its
    // memory is released by every thread, never early.
    unsafe { release_held(hint, false) }
}

/// Whether the engine calls an ArrayBuffer's finalizer from the engine's own release of its
/// memory (Deno does, from V8's backing-store deleter: on any thread, with no handle scope), where
/// no Node-API call may be made. Such a finalizer always means the memory is released: the view
/// can go. Set on the environment's thread when the first ArrayBuffer is made.
static FINALIZES_ON_RELEASE: OnceLock<bool> = OnceLock::new();

fn note_engine(env: sys::napi_env) {
    FINALIZES_ON_RELEASE.get_or_init(|| {
        let mut v: *const sys::napi_node_version = ptr::null();
        // SAFETY: a plain Node-API call on the environment's thread; on success `v` points to a
        // struct the engine keeps for the process's life, whose `release` is a C string.
        unsafe {
            sys::napi_get_node_version(env, &mut v) == sys::Status::napi_ok
                && !v.is_null()
                && !(*v).release.is_null()
                && std::ffi::CStr::from_ptr((*v).release).to_bytes() == b"Deno"
        }
    });
}

unsafe extern "C" fn finalize_ab(env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // Once the teardown hook has run, or where finalizers run inside the engine's release of
    // the memory, JavaScript is not asked: making a value there aborts the process.
    let in_release = FINALIZES_ON_RELEASE.get().copied().unwrap_or(false);
    if !in_release && !TEARDOWN.with(Cell::get) && !can_run_js(env) {
        TEARDOWN.with(|t| t.set(true));
    }
    // SAFETY: forwarded: `hint` is the Box<Held>.
    unsafe { release_held(hint, true) }
}

unsafe extern "C" fn do_nothing(
    _env: sys::napi_env,
    _info: sys::napi_callback_info,
) -> sys::napi_value {
    ptr::null_mut()
}

/// Whether the environment still runs JavaScript: an ArrayBuffer finalized when it no longer
/// does is finalized by the environment's teardown, not because its memory was released.
fn can_run_js(env: sys::napi_env) -> bool {
    let (mut f, mut global, mut result) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    // SAFETY: plain Node-API calls in a finalizer, which may create values; the function takes
    // no arguments and returns undefined.
    unsafe {
        sys::napi_create_function(
            env,
            ptr::null(),
            0,
            Some(do_nothing),
            ptr::null_mut(),
            &mut f,
        ) == sys::Status::napi_ok
            && sys::napi_get_global(env, &mut global) == sys::Status::napi_ok
            && sys::napi_call_function(env, global, f, 0, ptr::null(), &mut result)
                == sys::Status::napi_ok
    }
}

/// What the engine is told a creator's mapping costs at least (see `to_napi_value`): with the
/// engine collecting after some 64 MiB of external memory, a few thousand dropped mappings at
/// most wait for it, far below the mapping budget (half of `vm.max_map_count`).
const MAPPING_COST: i64 = 16 * 1024;

/// A view's bytes as a JavaScript buffer over the mapping itself: a SharedArrayBuffer where
/// the runtime can make one, else an external ArrayBuffer.
pub struct ViewBuffer {
    slot: Arc<Slot>,
    ptr: *mut u8,
    len: usize,
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
        let len = v.len;
        // An empty view still gets a valid, non-null address so the engine never sees null data.
        let data: *mut c_void = if len == 0 {
            ptr::NonNull::<u64>::dangling().as_ptr().cast()
        } else {
            v.ptr.cast()
        };
        let sab = create_sab_fn().filter(|_| v.shared);
        // The engine counts an external ArrayBuffer's bytes by itself, but not a
        // SharedArrayBuffer's: the creator reports those, so that a loop that shares and drops
        // big vectors still makes the engine collect. A mapping costs more than its bytes,
        // though (a page at least, one of the process's limited mappings, an owner's
        // descriptor): the creator reports at least MAPPING_COST for each, so that a loop of
        // small vectors makes it collect long before those run out. Openers report nothing, so
        // opening never starts a collection.
        let counted = if sab.is_some() { 0 } else { len as i64 };
        let cost = (len as i64).max(MAPPING_COST) - counted;
        let reported = (v.report && cost > 0).then(|| ledger_entry(cost));
        let reported_bytes = reported.as_ref().map(|(_, n)| *n);
        let held = Box::into_raw(Box::new(Held {
            slot: v.slot,
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
            if sab.is_none() {
                note_engine(env);
                renew_teardown_hook(env);
            }
            if let Some(n) = reported_bytes {
                adjust_external_memory(env, n);
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

/// One segment as this process maps it, seen through one buffer: whether it is live, and how it
/// is closed. Every thread's buffers over one mapping agree: a close by any thread is seen by all.
/// JavaScript holds it as an external value (`segmentIsLive`, `segmentClose`): making an
/// instance of a class for each view cost a tenth of an open where nothing was warm.
pub struct Segment {
    slot: Arc<Slot>,
    mapping: registry::WeakView,
    ptr: usize,
    len: usize,
}

/// Whether the mapping of a view's segment is still open in this process (no thread closed it).
#[napi]
pub fn segment_is_live(#[napi(ts_arg_type = "unknown")] segment: &External<Segment>) -> bool {
    segment.is_live()
}

/// Closes the mapping of a view's segment in this process (see `Segment::close`).
#[napi]
pub fn segment_close(
    env: Env,
    #[napi(ts_arg_type = "unknown")] segment: &External<Segment>,
    #[napi(ts_arg_type = "ArrayBuffer | SharedArrayBuffer")] buffer: Raw,
) -> Result<bool> {
    segment.close(&env, buffer)
}

impl Segment {
    /// Whether the mapping is still open in this process (no thread has closed it).
    fn is_live(&self) -> bool {
        self.mapping.upgrade().is_some_and(|v| v.is_live())
    }

    /// Closes the mapping in this process, for every thread: its pages are given back now and
    /// later reads see zeros, or length 0 where `buffer` (this segment's own buffer) is an
    /// ArrayBuffer, which is detached. Memory something still references is never unmapped
    /// here. Returns whether a live mapping was closed.
    fn close(&self, env: &Env, buffer: Raw) -> Result<bool> {
        settle_external_memory(env.raw());
        let raw = env.raw();
        // Held across the detach: an engine that releases the memory at the detach itself
        // (Deno) drops the buffer's view there, and the mapping must still be there to retire.
        let mapping = self.mapping.upgrade();
        // No longer this thread's buffer for the mapping: the next open maps it afresh.
        if let Some(v) = mapping.as_ref() {
            weak::uncache(raw, &v.key(), buffer.0);
        }
        let mut is_ab = false;
        // SAFETY: plain Node-API queries on a value of this call.
        unsafe { sys::napi_is_arraybuffer(raw, buffer.0, &mut is_ab) };
        if is_ab {
            let mut detached = false;
            // SAFETY: as above.
            unsafe { sys::napi_is_detached_arraybuffer(raw, buffer.0, &mut detached) };
            if !detached {
                let (mut data, mut len) = (ptr::null_mut(), 0usize);
                // SAFETY: as above.
                unsafe { sys::napi_get_arraybuffer_info(raw, buffer.0, &mut data, &mut len) };
                if len != self.len || (len > 0 && data as usize != self.ptr) {
                    return Err(throw(
                        env,
                        core_err(
                            Code::InvalidArgument,
                            "close: the buffer is not this segment's",
                        ),
                    ));
                }
                self.quarantine_and_detach(env, buffer)?;
            }
        }
        // Where the pages cannot be replaced in place (Windows), the view is unmapped when the
        // engine releases the detached buffer (see the README's platform notes).
        let retired = mapping.as_ref().is_some_and(|v| v.retire());
        drop(mapping);
        // A closed SharedArrayBuffer's range goes when the engine collects the buffer: past a
        // bound, make it collect now rather than let a loop pile ranges up.
        if retired && registry::retired_bytes() > COLLECT_CLOSED_AT.with(Cell::get) {
            collect_now(raw);
            settle_external_memory(raw);
            let left = registry::retired_bytes();
            let max = closed_max_bytes();
            let next = if left < max { max } else { left + max };
            COLLECT_CLOSED_AT.with(|c| c.set(next));
        }
        Ok(retired)
    }
}

impl Segment {
    /// Detaches this segment's ArrayBuffer, first moving its view into the quarantine, held by
    /// a weak reference to the buffer object (see the module's documentation).
    fn quarantine_and_detach(&self, env: &Env, buffer: Raw) -> Result<()> {
        let raw = env.raw();
        let mut weak = ptr::null_mut();
        // SAFETY: a weak reference (count 0) to a value of this call, deleted by the quarantine.
        if unsafe { sys::napi_create_reference(raw, buffer.0, 0, &mut weak) }
            != sys::Status::napi_ok
        {
            return Err(throw(
                env,
                core_err(Code::Os, "close: cannot reference the buffer"),
            ));
        }
        // SAFETY: detaching an external ArrayBuffer is allowed (it is detachable).
        if unsafe { sys::napi_detach_arraybuffer(raw, buffer.0) } != sys::Status::napi_ok {
            // SAFETY: made above, never shared.
            unsafe { sys::napi_delete_reference(raw, weak) };
            return Ok(());
        }
        match self.slot.take() {
            Some(view) => {
                let bytes = view.byte_length() as i64;
                QUARANTINE.with(|q| {
                    q.borrow_mut().push(Quarantined {
                        buffer: weak,
                        view,
                        bytes,
                    })
                });
                QUARANTINE_BYTES.with(|b| b.set(b.get() + bytes));
                adjust_external_memory(raw, bytes);
            }
            // SAFETY: made above, never shared.
            None => unsafe {
                sys::napi_delete_reference(raw, weak);
            },
        }
        Ok(())
    }
}

/// One view, with what the header says of its segment.
#[napi(object, object_from_js = false)]
pub struct ViewInfo {
    #[napi(ts_type = "ArrayBuffer | SharedArrayBuffer")]
    pub buffer: ViewBuffer,
    /// The buffer's segment: asked whether it is live, and closed by.
    #[napi(ts_type = "unknown")]
    pub segment: External<Segment>,
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
    let (ptr, len) = (v.ptr(), v.byte_length());
    let segment = Segment {
        slot: Arc::new(Slot(Mutex::new(None))),
        mapping: v.downgrade(),
        ptr: ptr as usize,
        len,
    };
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
            slot: {
                *segment.slot.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
                Arc::clone(&segment.slot)
            },
            ptr,
            len,
            report,
            shared,
        },
        segment: External::new(segment),
    }
}

thread_local! {
    /// The function `setInfoFactory` gave this thread's environment, with that environment: it
    /// makes a view's description from its fields in order.
    static INFO_FACTORY: Cell<(sys::napi_env, sys::napi_ref)> = const { Cell::new((ptr::null_mut(), ptr::null_mut())) };
}

/// Gives the function that makes a view's description (a `ViewInfo`) from its fields, in the
/// order they are declared. Made from native code, the object gets its sixteen properties one
/// call at a time, each name looked up in the engine's string table first; a JavaScript
/// function makes it with none of that (an open that finds nothing warm: 58 µs instead of 70
/// for the description and its buffer).
#[napi]
pub fn set_info_factory(
    env: Env,
    #[napi(ts_arg_type = "(...fields: unknown[]) => ViewInfo")] f: Raw,
) -> Result<()> {
    let raw = env.raw();
    let mut r = ptr::null_mut();
    // SAFETY: a strong reference to a value of this call, held for the environment's life (it
    // frees its references itself at teardown).
    let status = unsafe { sys::napi_create_reference(raw, f.0, 1, &mut r) };
    if status == sys::Status::napi_ok {
        let (old_env, old) = INFO_FACTORY.with(|c| c.replace((raw, r)));
        if old_env == raw && !old.is_null() {
            // SAFETY: a reference this function made in this environment, replaced above.
            unsafe { sys::napi_delete_reference(raw, old) };
        }
    }
    Ok(())
}

/// A view's description as a JavaScript value, and its buffer: made by the factory where this
/// environment gave one (see `set_info_factory`), else property by property.
fn info_value(raw: sys::napi_env, v: ViewInfo) -> Result<(sys::napi_value, sys::napi_value)> {
    let (env, f) = INFO_FACTORY.with(Cell::get);
    let mut func = ptr::null_mut();
    // SAFETY: `f` was made in `raw` (checked) and is only ever deleted when replaced.
    if env != raw
        || f.is_null()
        || unsafe { sys::napi_get_reference_value(raw, f, &mut func) } != sys::Status::napi_ok
        || func.is_null()
    {
        // SAFETY: converting a value of ours on this call's environment, as napi-rs does; the
        // object it made has the property.
        unsafe {
            let value = ViewInfo::to_napi_value(raw, v)?;
            let mut buffer = ptr::null_mut();
            sys::napi_get_named_property(raw, value, c"buffer".as_ptr(), &mut buffer);
            return Ok((value, buffer));
        }
    }
    // SAFETY (every conversion): values of ours made on this call's environment, as napi-rs
    // makes them for a returned ViewInfo; the call passes them to a function of this
    // environment, in the order of ViewInfo's fields.
    unsafe {
        let args = [
            ViewBuffer::to_napi_value(raw, v.buffer)?,
            External::<Segment>::to_napi_value(raw, v.segment)?,
            String::to_napi_value(raw, v.key)?,
            String::to_napi_value(raw, v.id)?,
            String::to_napi_value(raw, v.handle)?,
            String::to_napi_value(raw, v.kind)?,
            f64::to_napi_value(raw, v.length)?,
            f64::to_napi_value(raw, v.byte_length)?,
            bool::to_napi_value(raw, v.copy_on_write)?,
            bool::to_napi_value(raw, v.persistent)?,
            bool::to_napi_value(raw, v.owner)?,
            u32::to_napi_value(raw, v.owner_pid)?,
            f64::to_napi_value(raw, v.created)?,
            String::to_napi_value(raw, v.attributes)?,
            Vec::<f64>::to_napi_value(raw, v.aux)?,
            Option::<String>::to_napi_value(raw, v.path)?,
        ];
        let mut recv = ptr::null_mut();
        sys::napi_get_undefined(raw, &mut recv);
        let mut out = ptr::null_mut();
        let status = sys::napi_call_function(raw, recv, func, args.len(), args.as_ptr(), &mut out);
        if status != sys::Status::napi_ok {
            return Err(Error::new(
                Status::from(status),
                "the view factory failed".to_string(),
            ));
        }
        Ok((out, args[0]))
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
        within_budget(env.raw(), || registry::create(&spec, init.as_deref()))
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
/// default), after checking the segment can still be opened; nothing is mapped. With
/// `forOpen`, the segment stays open for the `open` of the same handle that must follow (or
/// `forgetLocated`), which then finds and checks nothing again.
#[napi]
pub fn locate(
    env: Env,
    handle: String,
    copy_on_write: Option<bool>,
    for_open: Option<bool>,
) -> Result<LocateInfo> {
    let mode = mode_of(copy_on_write);
    if for_open == Some(true) {
        registry::locate_for_open(&handle, mode)
    } else {
        registry::locate(&handle, mode)
    }
    .map(|l| LocateInfo {
        key: l.key,
        kind: l.header.kind.name().to_string(),
        byte_length: l.header.byte_length as f64,
    })
    .map_err(|e| throw(&env, e))
}

/// Drops the segment `locate(..., forOpen)` kept, when no `open` follows it.
#[napi]
pub fn forget_located() {
    registry::forget_located();
}

/// Opens the segment a handle names; `copyOnWrite` undefined takes the sharer's default.
/// `populate` maps every page now instead of at first touch; `background` instead starts
/// mapping them on a thread of the package, front first, and returns at once.
#[napi]
pub fn open(
    env: Env,
    handle: String,
    copy_on_write: Option<bool>,
    populate: Option<bool>,
    unreserved: Option<bool>,
    background: Option<bool>,
) -> Result<ViewInfo> {
    settle_external_memory(env.raw());
    within_budget(env.raw(), || {
        registry::open_handle_with(
            &handle,
            mode_of(copy_on_write),
            populate.unwrap_or(false),
            unreserved.unwrap_or(false),
        )
    })
    .map(|v| {
        if background == Some(true) {
            registry::prefault_in_background(&v);
        }
        to_info(v, false)
    })
    .map_err(|e| throw(&env, e))
}

/// All that opening a plain handle with no options takes, in one call (a call into the engine
/// costs about as much as the system calls of an open, where a process opens a handle once in
/// a while and finds nothing warm): finds and checks the segment as `locate` does, then answers
/// this thread's buffer over its live mapping if there is one, or maps it as `open` does and
/// makes the new buffer this thread's. Answers null, having mapped nothing, for a segment of
/// more than `bytesLeft` bytes or more than the engine's buffers hold (`maxLength`): the caller
/// then takes the long way (`locate`, its budget, `open`), which says why. Exported as the plain
/// Node-API call `openPlain(handle, bytesLeft, maxLength)` (see `raw.rs`).
pub(crate) fn open_plain(
    env: &Env,
    handle: &str,
    bytes_left: f64,
    max_length: f64,
) -> Result<sys::napi_value> {
    let raw = env.raw();
    settle_external_memory(raw);
    let located = registry::locate_for_open(handle, None).map_err(|e| throw(env, e))?;
    let len = located.header.byte_length as f64;
    // Written so that a bound that is not a number refuses too.
    if !(len <= bytes_left && len <= max_length) {
        registry::forget_located();
        let mut null = ptr::null_mut();
        // SAFETY: a plain Node-API call on this call's environment.
        unsafe { sys::napi_get_null(raw, &mut null) };
        return Ok(null);
    }
    if let Some(buffer) = weak::cached(raw, &located.key) {
        registry::forget_located();
        return Ok(buffer);
    }
    let opened = within_budget(raw, || {
        registry::open_handle_with(handle, None, false, false)
    });
    // Dropped here if the open failed before taking it.
    registry::forget_located();
    let info = to_info(opened.map_err(|e| throw(env, e))?, false);
    let key = info.key.clone();
    let (value, buffer) = info_value(raw, info)?;
    if !buffer.is_null() {
        weak::cache(raw, key, buffer);
    }
    Ok(value)
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

/// Maps every page of the mapping named by `key` into this process now, or with `background`
/// starts doing so on a thread of the package.
#[napi]
pub fn populate(key: String, background: Option<bool>) -> bool {
    registry::populate_as(&key, background == Some(true))
}

/// What background prefault has done in this process (for tests and diagnostics).
#[napi(object)]
pub struct PrefaultInfo {
    /// Threads populating now.
    pub threads: u32,
    /// Jobs started, ever.
    pub started: f64,
    /// Jobs ended (finished, stopped by a close, or refused), ever.
    pub ended: f64,
    /// Chunks populated, ever.
    pub chunks: f64,
    /// Bytes per chunk.
    pub chunk_bytes: f64,
}

/// What background prefault has done in this process.
#[napi]
pub fn prefault_stats() -> PrefaultInfo {
    let s = registry::prefault_stats();
    PrefaultInfo {
        threads: s.threads as u32,
        started: s.started as f64,
        ended: s.ended as f64,
        chunks: s.chunks as f64,
        chunk_bytes: registry::PREFAULT_CHUNK as f64,
    }
}

/// Opens a named segment by id (the developer API's `mapSharedMemory`), as an ArrayBuffer.
#[napi]
pub fn open_id(env: Env, id: String, copy_on_write: Option<bool>) -> Result<ViewInfo> {
    settle_external_memory(env.raw());
    within_budget(env.raw(), || registry::open_id(&id, mode_of(copy_on_write)))
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
/// or exit, or (with `opens`) until that many more opens by other processes. Returns whether
/// this process owns it.
#[napi]
pub fn hand_out(env: Env, handle: String, opens: Option<f64>) -> Result<bool> {
    let opens = opens.map(|n| whole(n, "opens")).transpose();
    opens
        .and_then(|n| registry::hand_out(&handle, n))
        .map_err(|e| throw(&env, e))
}

/// What the owner's look at its handed-out segments found.
#[napi(object, object_from_js = false)]
pub struct Reaped {
    /// Segments let go of now.
    pub released: u32,
    /// Handed-out segments still watched.
    pub watched: u32,
}

/// Looks at up to `limit` handed-out segments and lets go of those another process freed or
/// that have had their opens (see `registry::reap`).
#[napi]
pub fn reap(limit: u32) -> Reaped {
    let (released, watched) = registry::reap(limit as usize);
    Reaped {
        released: released as u32,
        watched: watched as u32,
    }
}

/// Segments and bytes in one state.
#[napi(object, object_from_js = false)]
pub struct TallyInfo {
    pub segments: u32,
    pub bytes: f64,
}

fn tally(t: registry::Tally) -> TallyInfo {
    TallyInfo {
        segments: t.segments as u32,
        bytes: t.bytes as f64,
    }
}

/// What this process holds now, by state (see `registry::Holdings`).
#[napi(object, object_from_js = false)]
pub struct HoldingsInfo {
    pub segments: u32,
    pub bytes: f64,
    pub descriptors: u32,
    pub live: TallyInfo,
    pub handed_out: TallyInfo,
    pub dropped: TallyInfo,
    pub waiting: TallyInfo,
    pub opened: TallyInfo,
}

#[napi]
pub fn holdings() -> HoldingsInfo {
    let h = registry::holdings();
    HoldingsInfo {
        segments: h.all.segments as u32,
        bytes: h.all.bytes as f64,
        descriptors: h.descriptors as u32,
        live: tally(h.live),
        handed_out: tally(h.handed_out),
        dropped: tally(h.dropped),
        waiting: tally(h.waiting),
        opened: tally(h.opened),
    }
}

/// A 4-byte counter of closes in this process (any thread, any mapping) over memory that lives
/// as long as the process: a thread reads it with `Atomics.load` to learn, without a call, that
/// no mapping was closed since it last asked its segments. Null where the runtime forbids
/// external buffers.
#[napi(ts_return_type = "ArrayBuffer | null")]
pub fn closes_counter(env: Env) -> Result<Raw> {
    let counter = registry::closes_counter();
    let mut out = ptr::null_mut();
    // SAFETY: the counter is a static: the 4 bytes stay valid for the process's life, so no
    // finalizer is needed, and any number of buffers may view them.
    let status = unsafe {
        sys::napi_create_external_arraybuffer(
            env.raw(),
            counter.as_ptr().cast(),
            4,
            None,
            ptr::null_mut(),
            &mut out,
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: a plain Node-API call.
        unsafe { sys::napi_get_null(env.raw(), &mut out) };
    }
    Ok(Raw(out))
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
pub fn list(env: Env) -> Result<Vec<SegmentInfo>> {
    registry::list()
        .map(|l| l.into_iter().map(to_segment).collect())
        .map_err(|e| throw(&env, e))
}

#[napi]
pub fn sweep(env: Env, dry_run: bool) -> Result<Vec<SegmentInfo>> {
    registry::sweep(dry_run)
        .map(|l| l.into_iter().map(to_segment).collect())
        .map_err(|e| throw(&env, e))
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
