//! The binding of `sharedobject_core::sync`: wait/notify on words of shared vectors, the mutex
//! and the barrier. Type translation only: it finds the bytes behind a TypedArray or ArrayBuffer,
//! checks the word is inside them and aligned, and calls the core.
//!
//! Blocking calls run on the calling thread, as `Atomics.wait` does. Asynchronous ones hand the
//! word to the core's waiter threads (a few watchers shared by every pending wait, on Linux) and
//! settle their promise through one threadsafe function per JavaScript thread, in the order the
//! waits ended: libuv's thread pool never blocks. A waiter thread only hands the word's address
//! to the kernel, so a view closed meanwhile cannot make it touch unmapped memory.

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use napi::bindgen_prelude::{BigInt, Buffer, FromNapiValue, Object, Unknown};
use napi::{sys, Env, JsValue, Result};
use napi_derive::napi;
use sharedobject_core::sync::{
    self, Arrival, RawBarrier, RawChannel, RawCondition, RawMutex, RawSemaphore, Received,
    WaitResult,
};
use sharedobject_core::Code;

use crate::{core_err, throw};

/// A Node-API status as a result.
pub(crate) fn check(status: sys::napi_status) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::from_status(napi::Status::from(status)))
    }
}

/// A TypedArray's kind, its length in elements and the address of its first element; `None`
/// for any other value. Its ArrayBuffer and offset are not asked for.
pub(crate) fn typed_array(
    env: sys::napi_env,
    v: sys::napi_value,
) -> Option<(sys::napi_typedarray_type, usize, *mut c_void)> {
    let (mut kind, mut len, mut data) = (0, 0usize, ptr::null_mut());
    // SAFETY: the out-pointers are live locals; a value that is not a TypedArray is answered
    // with a status, not undefined behaviour.
    let status = unsafe {
        sys::napi_get_typedarray_info(
            env,
            v,
            &mut kind,
            &mut len,
            &mut data,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    (status == sys::Status::napi_ok).then_some((kind, len, data))
}

/// Where the bytes of an ArrayBuffer or a TypedArray (from its first element) are, and how
/// many. One Node-API call on the common path: a lock is a handful of these.
fn region(env: &Env, value: &Unknown) -> Result<(*mut u8, usize)> {
    let (env_raw, v) = (env.raw(), value.raw());
    // A TypedArray first: the words of every object of this module are one.
    if let Some((kind, length, data)) = typed_array(env_raw, v) {
        let size = match kind {
            sys::TypedarrayType::int32_array | sys::TypedarrayType::uint32_array => 4,
            sys::TypedarrayType::bigint64_array | sys::TypedarrayType::biguint64_array => 8,
            _ => 0,
        };
        return Ok((data.cast(), length * size));
    }
    let (mut data, mut len) = (ptr::null_mut(), 0usize);
    // SAFETY: both out-pointers are live locals; a value that is not an ArrayBuffer is answered
    // with a status, not undefined behaviour.
    if unsafe { sys::napi_get_arraybuffer_info(env_raw, v, &mut data, &mut len) }
        == sys::Status::napi_ok
    {
        return Ok((data.cast(), len));
    }
    Err(throw(
        env,
        core_err(
            Code::InvalidArgument,
            "expected an int32 or int64 TypedArray or an ArrayBuffer",
        ),
    ))
}

/// The address of the `width`-byte word at `byte_offset` of `target`, checked to lie inside it
/// and to be aligned.
fn word(env: &Env, target: &Unknown, byte_offset: f64, width: usize) -> Result<*mut u8> {
    let (data, len) = region(env, target)?;
    let fits = byte_offset.fract() == 0.0
        && byte_offset >= 0.0
        && byte_offset + width as f64 <= len as f64;
    if data.is_null() || !fits {
        return Err(throw(
            env,
            core_err(
                Code::OutOfRange,
                format!(
                    "a {width}-byte word at byte {byte_offset} is outside the {len} bytes there are"
                ),
            ),
        ));
    }
    let p = data.wrapping_add(byte_offset as usize);
    if !(p as usize).is_multiple_of(width) {
        return Err(throw(
            env,
            core_err(Code::InvalidArgument, "the word is not aligned to its size"),
        ));
    }
    Ok(p)
}

/// Milliseconds as `Atomics.wait` reads them: NaN and +Infinity wait forever, negatives not at all.
pub(crate) fn timeout(ms: f64) -> Option<Duration> {
    if ms.is_nan() || ms >= 1e15 {
        None
    } else {
        Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0))
    }
}

fn count(n: f64) -> u32 {
    if n.is_nan() || n >= u32::MAX as f64 {
        u32::MAX
    } else {
        n.max(0.0) as u32
    }
}

/// A promise that a parked thread settles with the outcome of its wait.
type Settle = Box<dyn FnOnce(std::io::Result<WaitResult>) + Send>;

/// The way settled waits come back to one JavaScript thread: a single threadsafe function per
/// thread, so they settle in the order they were handed over (one word's waiters in the order
/// they waited, words in the order they were notified), where a threadsafe function per promise
/// would let the event loop take them in any order. It keeps the event loop alive only while
/// waits are pending, as a pending timer does.
struct Mailbox {
    /// The `napi_threadsafe_function`, set once just after it is made, before any sender runs.
    tsfn: AtomicUsize,
    /// Set (under the write lock) when Node finalizes the function at the thread's teardown: a
    /// sender holds the read lock across its call, so the call never meets a freed function.
    gone: RwLock<bool>,
    /// Settled waits not yet delivered, in the order they settled. A settle that finds it empty
    /// rings the function; one delivery takes every letter there is.
    letters: Mutex<Vec<Letter>>,
}

impl Mailbox {
    fn raw(&self) -> sys::napi_threadsafe_function {
        // Relaxed: stored before the Arc holding it was shared with any other thread (a settle
        // closure moves to a waiter thread only after, through a synchronising hand-over).
        self.tsfn.load(Relaxed) as sys::napi_threadsafe_function
    }
}

/// One settled wait on its way: the raw deferred (only its own thread may use it) and outcome.
struct Letter {
    deferred: usize,
    result: std::io::Result<WaitResult>,
}

thread_local! {
    /// This JavaScript thread's mailbox and how many of its waits are pending.
    static MAILBOX: std::cell::RefCell<Option<(Arc<Mailbox>, usize)>> =
        const { std::cell::RefCell::new(None) };
}

unsafe extern "C" fn deliver(
    env: sys::napi_env,
    _js: sys::napi_value,
    _context: *mut c_void,
    data: *mut c_void,
) {
    // SAFETY: every item queued is the `Arc<Mailbox>` leaked by a settle that rang, taken once.
    let mailbox = unsafe { Arc::from_raw(data.cast::<Mailbox>()) };
    let letters = std::mem::take(&mut *mailbox.letters.lock().unwrap_or_else(|p| p.into_inner()));
    if env.is_null() {
        // The thread's environment is going away: its promises go with it.
        return;
    }
    uncount(env, letters.len());
    let text = |s: &str| {
        let mut v = ptr::null_mut();
        // SAFETY: a UTF-8 string of the given length, on the env's own thread.
        unsafe { sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut v) };
        v
    };
    for letter in letters {
        let deferred = letter.deferred as sys::napi_deferred;
        match letter.result {
            // SAFETY: the deferred was made on this thread by `promise` and is settled only here.
            Ok(r) => unsafe {
                sys::napi_resolve_deferred(env, deferred, text(r.as_str()));
            },
            Err(e) => {
                let msg = text(&format!(
                    "ERR_SHM_OS: cannot start a thread to wait on: {e}"
                ));
                let mut err = ptr::null_mut();
                // SAFETY: as above.
                unsafe {
                    sys::napi_create_error(env, ptr::null_mut(), msg, &mut err);
                    sys::napi_reject_deferred(env, deferred, err);
                }
            }
        }
    }
}

/// `n` waits of this thread no longer pending: once none is, the loop need not stay alive.
fn uncount(env: sys::napi_env, n: usize) {
    let _ = MAILBOX.try_with(|m| {
        if let Some((mailbox, pending)) = m.borrow_mut().as_mut() {
            *pending = pending.saturating_sub(n);
            if *pending == 0 {
                // SAFETY: on the function's own thread, with its live env.
                unsafe { sys::napi_unref_threadsafe_function(env, mailbox.raw()) };
            }
        }
    });
}

unsafe extern "C" fn finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the `Arc<Mailbox>` leaked for the function in `mailbox`, freed once here.
    let mailbox = unsafe { Arc::from_raw(data.cast::<Mailbox>()) };
    *mailbox.gone.write().unwrap_or_else(|p| p.into_inner()) = true;
    let _ = MAILBOX.try_with(|m| m.borrow_mut().take());
}

/// This thread's mailbox, made on first use, with one more wait counted pending.
fn mailbox(env: &Env) -> Result<Arc<Mailbox>> {
    MAILBOX.with(|m| {
        let mut m = m.borrow_mut();
        if m.is_none() {
            let mut name = ptr::null_mut();
            let label = "sharedobject wait";
            let mut tsfn = ptr::null_mut();
            let shared = Arc::new(Mailbox {
                tsfn: AtomicUsize::new(0),
                gone: RwLock::new(false),
                letters: Mutex::new(Vec::new()),
            });
            let data = Arc::into_raw(shared.clone());
            // SAFETY: Node-API calls on this JavaScript thread with live out-pointers; the
            // finalizer frees the leaked Arc exactly once.
            let status = unsafe {
                sys::napi_create_string_utf8(
                    env.raw(),
                    label.as_ptr().cast(),
                    label.len() as isize,
                    &mut name,
                );
                sys::napi_create_threadsafe_function(
                    env.raw(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    name,
                    0,
                    1,
                    data as *mut c_void,
                    Some(finalize),
                    ptr::null_mut(),
                    Some(deliver),
                    &mut tsfn,
                )
            };
            if status != sys::Status::napi_ok {
                // SAFETY: the Arc leaked above, not handed to Node after all.
                drop(unsafe { Arc::from_raw(data) });
                return Err(napi::Error::from_reason(
                    "cannot make a threadsafe function",
                ));
            }
            shared.tsfn.store(tsfn as usize, Relaxed);
            // SAFETY: on this thread, with its env: not keeping the loop alive while idle.
            unsafe { sys::napi_unref_threadsafe_function(env.raw(), tsfn) };
            *m = Some((shared, 0));
        }
        let (mailbox, pending) = m.as_mut().expect("made above");
        if *pending == 0 {
            // SAFETY: as above.
            unsafe { sys::napi_ref_threadsafe_function(env.raw(), mailbox.raw()) };
        }
        *pending += 1;
        Ok(mailbox.clone())
    })
}

fn promise(env: &Env) -> Result<(Settle, Object<'_>)> {
    let mailbox = mailbox(env)?;
    let (mut deferred, mut promise) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: live out-pointers, on this JavaScript thread.
    let status = unsafe { sys::napi_create_promise(env.raw(), &mut deferred, &mut promise) };
    if status != sys::Status::napi_ok {
        // Nothing will settle: uncount it, or the event loop would be kept alive for it.
        uncount(env.raw(), 1);
        return Err(napi::Error::from_reason("cannot make a promise"));
    }
    let deferred = deferred as usize;
    let settle: Settle = Box::new(move |result| {
        let gone = mailbox.gone.read().unwrap_or_else(|p| p.into_inner());
        if *gone {
            return;
        }
        let ring = {
            let mut letters = mailbox.letters.lock().unwrap_or_else(|p| p.into_inner());
            letters.push(Letter { deferred, result });
            letters.len() == 1
        };
        if ring {
            let data = Arc::into_raw(mailbox.clone());
            // SAFETY: the function is alive: `gone` is false and its finalizer waits for this
            // read lock. `deliver` takes back the Arc, or it is freed below if not queued.
            let status = unsafe {
                sys::napi_call_threadsafe_function(
                    mailbox.raw(),
                    data as *mut c_void,
                    sys::ThreadsafeFunctionCallMode::nonblocking,
                )
            };
            if status != sys::Status::napi_ok {
                // SAFETY: not queued, so still ours.
                drop(unsafe { Arc::from_raw(data) });
            }
        }
    });
    // SAFETY: a promise value just made on this thread.
    let promise = unsafe { Object::from_napi_value(env.raw(), promise) }?;
    Ok((settle, promise))
}

/// Whether waits happen in the kernel here; where not, asynchronous waiters poll from JavaScript.
#[napi]
pub fn sync_kernel_waits() -> bool {
    sync::kernel_waits()
}

/// Blocks this thread while the int32 at `byteOffset` of `target` holds `expected`.
#[napi(ts_return_type = "'ok' | 'not-equal' | 'timed-out'")]
pub fn sync_wait32(
    env: Env,
    target: Unknown,
    byte_offset: f64,
    expected: i32,
    timeout_ms: f64,
) -> Result<&'static str> {
    let p = word(&env, &target, byte_offset, 4)?;
    // SAFETY: an aligned word inside the buffer, which the caller's arguments keep alive for the
    // whole call on this thread; JavaScript touches it only through Atomics.
    Ok(unsafe {
        sync::wait32_spinning(p.cast::<AtomicU32>(), expected as u32, timeout(timeout_ms))
    }
    .as_str())
}

/// Blocks this thread while the int64 at `byteOffset` of `target` holds `expected`.
#[napi(ts_return_type = "'ok' | 'not-equal' | 'timed-out'")]
pub fn sync_wait64(
    env: Env,
    target: Unknown,
    byte_offset: f64,
    expected: BigInt,
    timeout_ms: f64,
) -> Result<&'static str> {
    let p = word(&env, &target, byte_offset, 8)?;
    let (expected, _) = expected.get_i64();
    // SAFETY: as in sync_wait32, for an aligned 8-byte word.
    Ok(unsafe {
        sync::wait64_spinning(p.cast::<AtomicU64>(), expected as u64, timeout(timeout_ms))
    }
    .as_str())
}

/// Wakes up to `count` waiters of the `width`-byte word at `byteOffset` of `target`.
#[napi]
pub fn sync_notify(
    env: Env,
    target: Unknown,
    byte_offset: f64,
    width: u32,
    count_: f64,
) -> Result<u32> {
    let n = count(count_);
    Ok(match width {
        8 => sync::wake64(word(&env, &target, byte_offset, 8)?.cast(), n),
        _ => sync::wake32(word(&env, &target, byte_offset, 4)?.cast(), n),
    } as u32)
}

/// As `sync_wait32`, on a parked thread: a promise of the outcome.
#[napi(ts_return_type = "Promise<'ok' | 'not-equal' | 'timed-out'>")]
pub fn sync_wait_async32<'env>(
    env: &'env Env,
    target: Unknown,
    byte_offset: f64,
    expected: i32,
    timeout_ms: f64,
) -> Result<Object<'env>> {
    let p = word(env, &target, byte_offset, 4)?.cast::<AtomicU32>();
    let (settle, promise) = promise(env)?;
    // SAFETY: an aligned word inside the live buffer, read here on its own thread.
    if unsafe { &*p }.load(std::sync::atomic::Ordering::SeqCst) != expected as u32 {
        settle(Ok(WaitResult::NotEqual));
    } else {
        sync::park_async32(p, expected as u32, timeout(timeout_ms), settle)
            .map_err(|e| throw(env, e))?;
    }
    Ok(promise)
}

/// As `sync_wait64`, on a parked thread: a promise of the outcome.
#[napi(ts_return_type = "Promise<'ok' | 'not-equal' | 'timed-out'>")]
pub fn sync_wait_async64<'env>(
    env: &'env Env,
    target: Unknown,
    byte_offset: f64,
    expected: BigInt,
    timeout_ms: f64,
) -> Result<Object<'env>> {
    let p = word(env, &target, byte_offset, 8)?.cast::<AtomicU64>();
    let expected = expected.get_i64().0 as u64;
    let (settle, promise) = promise(env)?;
    // SAFETY: as in sync_wait_async32, for an aligned 8-byte word.
    if unsafe { &*p }.load(std::sync::atomic::Ordering::SeqCst) != expected {
        settle(Ok(WaitResult::NotEqual));
    } else {
        sync::park_async64(p, expected, timeout(timeout_ms), settle).map_err(|e| throw(env, e))?;
    }
    Ok(promise)
}

/// The mutex over the data of a mutex segment's buffer, for the length of one call.
fn mutex<'a>(env: &Env, buffer: &'a Unknown) -> Result<&'a RawMutex> {
    let (data, len) = region(env, buffer)?;
    // SAFETY: the buffer is a live view of the segment for this whole call (its JavaScript
    // value is an argument), and mutex words are only ever changed atomically.
    unsafe { RawMutex::at(data, len) }.map_err(|e| throw(env, e))
}

fn barrier<'a>(env: &Env, buffer: &'a Unknown) -> Result<RawBarrier<'a>> {
    let (data, len) = region(env, buffer)?;
    // SAFETY: as in `mutex`.
    unsafe { RawBarrier::at(data, len) }.map_err(|e| throw(env, e))
}

/// 0: not taken; 1: taken; 2: taken over from a holder that died.
fn taken(a: Option<sync::Acquired>) -> u32 {
    match a {
        None => 0,
        Some(a) if a.owner_died => 2,
        Some(_) => 1,
    }
}

/// The initial data of a mutex segment.
#[napi]
pub fn mutex_init(detection_ms: u32) -> Buffer {
    RawMutex::init(detection_ms).to_vec().into()
}

/// Takes the mutex if it is free; `slept`: for a locker that slept waiting for it, which takes it
/// with the sleepers' bit while others still wait.
#[napi]
pub fn mutex_try_lock(env: Env, buffer: Unknown, slept: Option<bool>) -> Result<u32> {
    Ok(taken(
        mutex(&env, &buffer)?.try_lock_as(slept == Some(true)),
    ))
}

/// Blocks until the mutex is taken (1, or 2 when its holder had died) or the timeout (0).
#[napi]
pub fn mutex_lock(env: Env, buffer: Unknown, timeout_ms: f64) -> Result<u32> {
    let m = mutex(&env, &buffer)?;
    m.lock(timeout(timeout_ms))
        .map(taken)
        .map_err(|e| throw(&env, e))
}

#[napi]
pub fn mutex_unlock(env: Env, buffer: Unknown) -> Result<()> {
    mutex(&env, &buffer)?.unlock().map_err(|e| throw(&env, e))
}

/// This thread as a mutex holder: the holder word JavaScript's own lock swaps in, and the token
/// it finds in the identity words when they are its own already.
#[napi(object, object_from_js = false)]
pub struct HolderWords {
    pub word: BigInt,
    pub token: BigInt,
}

#[napi]
pub fn mutex_holder() -> HolderWords {
    let (word, token) = sync::holder_words();
    HolderWords {
        word: BigInt::from(word),
        token: BigInt::from(token),
    }
}

/// Writes this thread's identity words into a mutex it has just taken in JavaScript.
#[napi]
pub fn mutex_claim(env: Env, buffer: Unknown) -> Result<()> {
    mutex(&env, &buffer)?.claim().map_err(|e| throw(&env, e))
}

/// Counts this thread as a waiter; the `seq` to park on, or -1 when the mutex is free now.
#[napi]
pub fn mutex_wait_begin(env: Env, buffer: Unknown) -> Result<i64> {
    Ok(mutex(&env, &buffer)?.begin_wait().map_or(-1, i64::from))
}

#[napi]
pub fn mutex_wait_end(env: Env, buffer: Unknown) -> Result<()> {
    mutex(&env, &buffer)?.end_wait();
    Ok(())
}

/// Parks until an unlock changes `seq` or the timeout: a promise of the outcome.
#[napi(ts_return_type = "Promise<'ok' | 'not-equal' | 'timed-out'>")]
pub fn mutex_park_async<'env>(
    env: &'env Env,
    buffer: Unknown,
    seq: u32,
    timeout_ms: f64,
) -> Result<Object<'env>> {
    let word = mutex(env, &buffer)?.seq_word();
    let (settle, promise) = promise(env)?;
    sync::park_async32(word, seq, timeout(timeout_ms), settle).map_err(|e| throw(env, e))?;
    Ok(promise)
}

/// Takes the mutex if it is free or its holder died (as `mutex_lock` answers), without waiting.
#[napi]
pub fn mutex_reclaim(env: Env, buffer: Unknown) -> Result<u32> {
    Ok(taken(mutex(&env, &buffer)?.reclaim()))
}

/// What a mutex's words say now.
#[napi(object, object_from_js = false)]
pub struct MutexState {
    pub holder_pid: Option<u32>,
    pub held_here: bool,
    pub detection_ms: f64,
}

#[napi]
pub fn mutex_state(env: Env, buffer: Unknown) -> Result<MutexState> {
    let m = mutex(&env, &buffer)?;
    Ok(MutexState {
        holder_pid: m.holder_pid(),
        held_here: m.held_here(),
        detection_ms: m.detection().as_millis() as f64,
    })
}

/// The initial data of a barrier segment, and the bytes it needs (its party table follows).
#[napi]
pub fn barrier_init(parties: u32, detection_ms: u32) -> Buffer {
    RawBarrier::init(parties, detection_ms).to_vec().into()
}

#[napi]
pub fn barrier_size(parties: u32) -> u32 {
    RawBarrier::size(parties) as u32
}

#[napi]
pub fn barrier_parties(env: Env, buffer: Unknown) -> Result<u32> {
    Ok(barrier(&env, &buffer)?.parties())
}

#[napi]
pub fn barrier_detection_ms(env: Env, buffer: Unknown) -> Result<f64> {
    Ok(barrier(&env, &buffer)?.detection().as_millis() as f64)
}

#[napi]
pub fn barrier_broken(env: Env, buffer: Unknown) -> Result<bool> {
    Ok(barrier(&env, &buffer)?.is_broken())
}

/// Arrives: -1 when this party released the round, else the generation to wait out.
#[napi]
pub fn barrier_arrive(env: Env, buffer: Unknown) -> Result<i64> {
    match barrier(&env, &buffer)?.arrive() {
        Ok(Arrival::Leader) => Ok(-1),
        Ok(Arrival::Wait(generation)) => Ok(i64::from(generation)),
        Err(e) => Err(throw(&env, e)),
    }
}

#[napi]
pub fn barrier_passed(env: Env, buffer: Unknown, generation: u32) -> Result<bool> {
    barrier(&env, &buffer)?
        .passed(generation)
        .map_err(|e| throw(&env, e))
}

/// Breaks the round of `generation` if a party that waited before is dead and missing from it.
#[napi]
pub fn barrier_check(env: Env, buffer: Unknown, generation: u32) -> Result<bool> {
    Ok(barrier(&env, &buffer)?.check_parties(generation))
}

/// Breaks the round of `generation` (a timed-out wait): false when that round passed already.
#[napi]
pub fn barrier_break(env: Env, buffer: Unknown, generation: u32) -> Result<bool> {
    Ok(barrier(&env, &buffer)?.break_round(generation))
}

#[napi]
pub fn barrier_abort(env: Env, buffer: Unknown) -> Result<()> {
    barrier(&env, &buffer)?.abort();
    Ok(())
}

#[napi]
pub fn barrier_reset(env: Env, buffer: Unknown) -> Result<()> {
    barrier(&env, &buffer)?.reset();
    Ok(())
}

/// Arrives and blocks until every party has: true for the one that arrived last.
#[napi]
pub fn barrier_wait(env: Env, buffer: Unknown, timeout_ms: f64) -> Result<bool> {
    barrier(&env, &buffer)?
        .wait(timeout(timeout_ms))
        .map_err(|e| throw(&env, e))
}

/// Parks until the round of `generation` is over or `timeoutMs`: a promise of the outcome.
#[napi(ts_return_type = "Promise<'ok' | 'not-equal' | 'timed-out'>")]
pub fn barrier_park_async<'env>(
    env: &'env Env,
    buffer: Unknown,
    generation: u32,
    timeout_ms: f64,
) -> Result<Object<'env>> {
    let word = barrier(env, &buffer)?.generation_word();
    let (settle, promise) = promise(env)?;
    sync::park_async32(word, generation, timeout(timeout_ms), settle).map_err(|e| throw(env, e))?;
    Ok(promise)
}

/// Parks on `word` while it holds `value`, for the asynchronous forms of the objects below.
fn park<'env>(
    env: &'env Env,
    word: *const AtomicU32,
    value: u32,
    timeout_ms: f64,
) -> Result<Object<'env>> {
    let (settle, promise) = promise(env)?;
    sync::park_async32(word, value, timeout(timeout_ms), settle).map_err(|e| throw(env, e))?;
    Ok(promise)
}

fn condition<'a>(env: &Env, buffer: &'a Unknown) -> Result<&'a RawCondition> {
    let (data, len) = region(env, buffer)?;
    // SAFETY: as in `mutex`.
    unsafe { RawCondition::at(data, len) }.map_err(|e| throw(env, e))
}

/// Checks the buffer holds a condition variable (`ERR_SHM_BAD_HEADER` if not).
#[napi]
pub fn condition_check(env: Env, buffer: Unknown) -> Result<()> {
    condition(&env, &buffer).map(|_| ())
}

#[napi]
pub fn condition_init() -> Buffer {
    RawCondition::init().to_vec().into()
}

/// Unlocks the mutex, sleeps until a notify or the timeout, and locks it again: 0 timed out,
/// 1 woken, 2 woken and the relock took over from a dead holder.
#[napi]
pub fn condition_wait(
    env: Env,
    buffer: Unknown,
    mutex_buffer: Unknown,
    timeout_ms: f64,
) -> Result<u32> {
    let c = condition(&env, &buffer)?;
    let m = mutex(&env, &mutex_buffer)?;
    let (woken, died) = c.wait(m, timeout(timeout_ms)).map_err(|e| throw(&env, e))?;
    Ok(if died { 2 } else { u32::from(woken) })
}

/// Counts a waiter and returns the value to park on (the caller unlocks the mutex after this).
#[napi]
pub fn condition_wait_begin(env: Env, buffer: Unknown) -> Result<u32> {
    Ok(condition(&env, &buffer)?.begin_wait())
}

#[napi]
pub fn condition_wait_end(env: Env, buffer: Unknown) -> Result<()> {
    condition(&env, &buffer)?.end_wait();
    Ok(())
}

#[napi(ts_return_type = "Promise<'ok' | 'not-equal' | 'timed-out'>")]
pub fn condition_park_async<'env>(
    env: &'env Env,
    buffer: Unknown,
    seq: u32,
    timeout_ms: f64,
) -> Result<Object<'env>> {
    let word = condition(env, &buffer)?.seq_word();
    park(env, word, seq, timeout_ms)
}

#[napi]
pub fn condition_notify(env: Env, buffer: Unknown, all: bool) -> Result<u32> {
    Ok(condition(&env, &buffer)?.notify(all) as u32)
}

fn semaphore<'a>(env: &Env, buffer: &'a Unknown) -> Result<RawSemaphore<'a>> {
    let (data, len) = region(env, buffer)?;
    // SAFETY: as in `mutex`.
    unsafe { RawSemaphore::at(data, len) }.map_err(|e| throw(env, e))
}

#[napi]
pub fn semaphore_init(permits: f64, detection_ms: u32) -> Buffer {
    RawSemaphore::init(permits as u64, detection_ms).into()
}

#[napi]
pub fn semaphore_size() -> u32 {
    sync::SEMAPHORE_SIZE as u32
}

#[napi]
pub fn semaphore_available(env: Env, buffer: Unknown) -> Result<f64> {
    Ok(semaphore(&env, &buffer)?.available() as f64)
}

#[napi]
pub fn semaphore_detection_ms(env: Env, buffer: Unknown) -> Result<f64> {
    Ok(semaphore(&env, &buffer)?.detection().as_millis() as f64)
}

#[napi]
pub fn semaphore_try_acquire(env: Env, buffer: Unknown) -> Result<bool> {
    semaphore(&env, &buffer)?
        .try_acquire()
        .map_err(|e| throw(&env, e))
}

#[napi]
pub fn semaphore_acquire(env: Env, buffer: Unknown, timeout_ms: f64) -> Result<bool> {
    semaphore(&env, &buffer)?
        .acquire(timeout(timeout_ms))
        .map_err(|e| throw(&env, e))
}

#[napi]
pub fn semaphore_release(env: Env, buffer: Unknown) -> Result<()> {
    semaphore(&env, &buffer)?
        .release()
        .map_err(|e| throw(&env, e))
}

/// Puts back the permits of dead holders: true when any came back.
#[napi]
pub fn semaphore_reclaim(env: Env, buffer: Unknown) -> Result<bool> {
    semaphore(&env, &buffer)?
        .reclaim()
        .map_err(|e| throw(&env, e))
}

#[napi]
pub fn semaphore_wait_begin(env: Env, buffer: Unknown) -> Result<u32> {
    Ok(semaphore(&env, &buffer)?.begin_wait())
}

#[napi]
pub fn semaphore_wait_end(env: Env, buffer: Unknown) -> Result<()> {
    semaphore(&env, &buffer)?.end_wait();
    Ok(())
}

#[napi(ts_return_type = "Promise<'ok' | 'not-equal' | 'timed-out'>")]
pub fn semaphore_park_async<'env>(
    env: &'env Env,
    buffer: Unknown,
    seq: u32,
    timeout_ms: f64,
) -> Result<Object<'env>> {
    let word = semaphore(env, &buffer)?.seq_word();
    park(env, word, seq, timeout_ms)
}

pub(crate) fn channel<'a>(env: &Env, buffer: &'a Unknown) -> Result<RawChannel<'a>> {
    let (data, len) = region(env, buffer)?;
    // SAFETY: as in `mutex`; message bytes are only touched under a slot's stamp.
    unsafe { RawChannel::at(data, len) }.map_err(|e| throw(env, e))
}

/// The header of a new channel and the bytes its segment needs.
#[napi(object, object_from_js = false)]
pub struct ChannelInit {
    pub header: Buffer,
    pub byte_length: f64,
}

#[napi]
pub fn channel_init(
    env: Env,
    capacity: u32,
    max_bytes: u32,
    detection_ms: u32,
) -> Result<ChannelInit> {
    let run = || {
        Ok::<_, sharedobject_core::Error>(ChannelInit {
            header: RawChannel::init(capacity, max_bytes, detection_ms)?.into(),
            byte_length: RawChannel::size(capacity, max_bytes)? as f64,
        })
    };
    run().map_err(|e| throw(&env, e))
}

#[napi(object, object_from_js = false)]
pub struct ChannelState {
    pub capacity: u32,
    pub max_message_bytes: u32,
    pub detection_ms: f64,
    pub length: f64,
    pub ended: bool,
}

#[napi]
pub fn channel_state(env: Env, buffer: Unknown) -> Result<ChannelState> {
    let c = channel(&env, &buffer)?;
    Ok(ChannelState {
        capacity: c.capacity(),
        max_message_bytes: c.max_message_bytes(),
        detection_ms: c.detection().as_millis() as f64,
        length: c.len() as f64,
        ended: c.ended(),
    })
}

// `channelTrySend` and `channelSend` are in `raw.rs`.

/// A received message as JavaScript sees it: a Uint8Array of its bytes, a string for a handle
/// (flags 1), 0 for none yet, 1 for none ever again (ended and drained).
fn received<'env>(env: &'env Env, r: Received<Result<Unknown<'env>>>) -> Result<Unknown<'env>> {
    match r {
        Received::Message(m) => m,
        Received::Empty => env.create_uint32(0).map(|v| v.to_unknown()),
        Received::Ended => env.create_uint32(1).map(|v| v.to_unknown()),
    }
}

fn message<'env>(env: &'env Env, bytes: &[u8], flags: u32) -> Result<Unknown<'env>> {
    if flags == 1 {
        env.create_string(String::from_utf8_lossy(bytes))
            .map(|v| v.to_unknown())
    } else {
        bytes_copy(env, bytes)
    }
}

/// A Uint8Array over an ArrayBuffer of its own holding a copy of `src`: what a small message is
/// in JavaScript (`slice` of the scratch buffer), so that every message is the same kind of
/// value. Its memory is a Buffer's, left uninitialised until the copy fills it: an ArrayBuffer
/// made here would be zeroed first, a second pass over a message of megabytes.
fn bytes_copy<'env>(env: &'env Env, src: &[u8]) -> Result<Unknown<'env>> {
    if src.len() >= crate::pool::MIN {
        if let Some(v) = pooled_copy(env, src)? {
            return Ok(v);
        }
    }
    let (mut data, mut buffer) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: live out-pointers; `data` receives the address of the new Buffer's `src.len()`
    // bytes, which nothing else sees until this call returns.
    check(unsafe { sys::napi_create_buffer(env.raw(), src.len(), &mut data, &mut buffer) })?;
    if !src.is_empty() {
        // SAFETY: see above; `src` is the channel slot's bytes, a different memory.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), data.cast::<u8>(), src.len()) };
    }
    let (mut ab, mut offset, mut view) = (ptr::null_mut(), 0usize, ptr::null_mut());
    // SAFETY: live out-pointers; `buffer` is the Buffer just made (a Uint8Array).
    check(unsafe {
        sys::napi_get_typedarray_info(
            env.raw(),
            buffer,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            &mut ab,
            &mut offset,
        )
    })?;
    // SAFETY: live out-pointer; the Buffer's own ArrayBuffer and place in it.
    check(unsafe {
        sys::napi_create_typedarray(
            env.raw(),
            sys::TypedarrayType::uint8_array,
            src.len(),
            ab,
            offset,
            &mut view,
        )
    })?;
    // SAFETY: a value made in this call, of this env.
    unsafe { Unknown::from_napi_value(env.raw(), view) }
}

/// A Uint8Array over a SharedArrayBuffer of its own, in a block of the message pool (see
/// `crate::pool`), holding a copy of `src`; `None` where the runtime cannot make one (Node
/// before 22.23 and 24.16) or the allocator has no block.
fn pooled_copy<'env>(env: &'env Env, src: &[u8]) -> Result<Option<Unknown<'env>>> {
    let Some(create) = crate::create_sab_fn() else {
        return Ok(None);
    };
    let Some(block) = crate::pool::take(src.len()) else {
        return Ok(None);
    };
    // The bytes of released messages go back to the engine before more are reported.
    crate::settle_external_memory(env.raw());
    let data = block.ptr();
    // SAFETY: the block holds at least `src.len()` bytes (see `pool::take`) that nothing else
    // reaches: it came from the allocator or back from a message every thread had released.
    unsafe { ptr::copy_nonoverlapping(src.as_ptr(), data, src.len()) };
    let cap = block.cap() as i64;
    let lent = Box::into_raw(Box::new(crate::pool::Lent {
        block,
        reported: crate::ledger_entry(cap),
    }));
    let (mut sab, mut view) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: `data` is the block's, which stays allocated while `lent` lives; the engine owns
    // `lent` from here and hands it to `pool::finalize` once no thread can reach the memory.
    let status = unsafe {
        create(
            env.raw(),
            data.cast(),
            src.len(),
            Some(crate::pool::finalize),
            lent.cast(),
            &mut sab,
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: the engine did not take `lent`: it is still ours; its block goes back, and
        // nothing was reported for it.
        crate::pool::put(unsafe { Box::from_raw(lent) }.block);
        return Ok(None);
    }
    // Reported once the engine holds it, as a shared vector's creator reports its buffer.
    crate::adjust_external_memory(env.raw(), cap);
    // SAFETY: live out-pointer; `sab` is the SharedArrayBuffer just made, of `src.len()` bytes.
    check(unsafe {
        sys::napi_create_typedarray(
            env.raw(),
            sys::TypedarrayType::uint8_array,
            src.len(),
            sab,
            0,
            &mut view,
        )
    })?;
    // SAFETY: a value made in this call, of this env.
    Ok(Some(unsafe { Unknown::from_napi_value(env.raw(), view) }?))
}

/// Frees the blocks of big messages' memory unused for `idleMs`; returns how many blocks are
/// still kept or lent to messages (while any are, JavaScript asks again later).
#[napi]
pub fn message_pool_trim(idle_ms: f64) -> u32 {
    let secs = if idle_ms.is_nan() {
        0.0
    } else {
        (idle_ms / 1000.0).clamp(0.0, 86_400.0)
    };
    let idle = Duration::from_secs_f64(secs);
    crate::pool::trim(idle).min(u32::MAX as usize) as u32
}

/// The scratch buffer of `channelTryReceiveInto` and `channelReceiveInto` as bytes to write,
/// checked to hold the channel's largest message.
pub(crate) fn scratch_of<'s>(env: &Env, c: &RawChannel, dst: &'s mut [u8]) -> Result<&'s mut [u8]> {
    if dst.len() < c.max_message_bytes() as usize {
        return Err(throw(
            env,
            core_err(
                Code::InvalidArgument,
                "the scratch buffer is smaller than the channel's largest message",
            ),
        ));
    }
    Ok(dst)
}

/// Copies a message into `dst` (which holds the largest, see `scratch_of`) and answers as
/// `channelTryReceiveInto` does.
pub(crate) fn copy_into(dst: &mut [u8]) -> impl FnOnce(&[u8], u32) -> f64 + '_ {
    move |bytes, flags| {
        dst[..bytes.len()].copy_from_slice(bytes);
        let n = bytes.len() as f64;
        if flags == 1 {
            -3.0 - n
        } else {
            n
        }
    }
}

pub(crate) fn received_into(r: Received<f64>) -> f64 {
    match r {
        Received::Message(n) => n,
        Received::Empty => -1.0,
        Received::Ended => -2.0,
    }
}

// `channelTryReceiveInto(words, scratch)` and `channelReceiveInto(words, scratch, timeoutMs)` are
// in `raw.rs`. They receive a message into `scratch` (at least the channel's largest message)
// and answer its length; for a handle (flags 1), -3 less its length; -1 for none yet (or a wait
// that timed out), -2 for none ever again. For channels of small messages: copying the bytes
// out in JavaScript costs a fraction of making a Buffer here.

#[napi(ts_return_type = "Uint8Array | string | 0 | 1")]
pub fn channel_try_receive<'env>(env: &'env Env, buffer: Unknown) -> Result<Unknown<'env>> {
    let r = channel(env, &buffer)?
        .try_receive(|b, f| message(env, b, f))
        .map_err(|e| throw(env, e))?;
    received(env, r)
}

/// Receives, blocking up to the timeout: as `channelTryReceive`, 0 when it timed out.
#[napi(ts_return_type = "Uint8Array | string | 0 | 1")]
pub fn channel_receive<'env>(
    env: &'env Env,
    buffer: Unknown,
    timeout_ms: f64,
) -> Result<Unknown<'env>> {
    let r = channel(env, &buffer)?
        .receive(|b, f| message(env, b, f), timeout(timeout_ms))
        .map_err(|e| throw(env, e))?;
    received(env, r)
}

#[napi]
pub fn channel_end(env: Env, buffer: Unknown) -> Result<()> {
    channel(&env, &buffer)?.end();
    Ok(())
}

/// Undoes what dead parties left half done: true when anything changed.
#[napi]
pub fn channel_repair(env: Env, buffer: Unknown) -> Result<bool> {
    Ok(channel(&env, &buffer)?.repair())
}

/// Counts a waiting receiver (`rx`) or sender and returns the value to park on.
#[napi]
pub fn channel_wait_begin(env: Env, buffer: Unknown, rx: bool) -> Result<u32> {
    Ok(channel(&env, &buffer)?.begin_wait(rx))
}

#[napi]
pub fn channel_wait_end(env: Env, buffer: Unknown, rx: bool) -> Result<()> {
    channel(&env, &buffer)?.end_wait(rx);
    Ok(())
}

#[napi(ts_return_type = "Promise<'ok' | 'not-equal' | 'timed-out'>")]
pub fn channel_park_async<'env>(
    env: &'env Env,
    buffer: Unknown,
    rx: bool,
    seq: u32,
    timeout_ms: f64,
) -> Result<Object<'env>> {
    let word = channel(env, &buffer)?.wait_word(rx);
    park(env, word, seq, timeout_ms)
}
