//! The binding of `sharedobject_core::sync`: wait/notify on words of shared vectors, the mutex
//! and the barrier. Type translation only: it finds the bytes behind a TypedArray or ArrayBuffer,
//! checks the word is inside them and aligned, and calls the core.
//!
//! Blocking calls run on the calling thread, as `Atomics.wait` does. Asynchronous ones park a
//! thread of the core's own pool in the kernel's wait and settle their promise through a
//! threadsafe function: libuv's thread pool never blocks. A parked thread only hands the word's
//! address to the kernel, so a view closed meanwhile cannot make it touch unmapped memory.

use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

use napi::bindgen_prelude::{BigInt, Buffer, Object, Unknown};
use napi::{sys, Env, JsValue, Result};
use napi_derive::napi;
use sharedobject_core::sync::{self, Arrival, RawBarrier, RawMutex, WaitResult};
use sharedobject_core::Code;

use crate::{core_err, throw};

/// Where the bytes of an ArrayBuffer or a TypedArray (from its first element) are, and how
/// many. One Node-API call on the common path: a lock is a handful of these.
fn region(env: &Env, value: &Unknown) -> Result<(*mut u8, usize)> {
    let (env_raw, v) = (env.raw(), value.raw());
    let (mut data, mut len) = (ptr::null_mut(), 0usize);
    // SAFETY: both out-pointers are live locals; a value that is not an ArrayBuffer is answered
    // with a status, not undefined behaviour.
    if unsafe { sys::napi_get_arraybuffer_info(env_raw, v, &mut data, &mut len) }
        == sys::Status::napi_ok
    {
        return Ok((data.cast(), len));
    }
    let (mut kind, mut length, mut buffer, mut offset) = (0, 0usize, ptr::null_mut(), 0usize);
    // SAFETY: as above, for a TypedArray.
    let status = unsafe {
        sys::napi_get_typedarray_info(
            env_raw,
            v,
            &mut kind,
            &mut length,
            &mut data,
            &mut buffer,
            &mut offset,
        )
    };
    if status == sys::Status::napi_ok {
        let size = match kind {
            sys::TypedarrayType::int32_array | sys::TypedarrayType::uint32_array => 4,
            sys::TypedarrayType::bigint64_array | sys::TypedarrayType::biguint64_array => 8,
            _ => 0,
        };
        return Ok((data.cast(), length * size));
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
fn timeout(ms: f64) -> Option<Duration> {
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

fn promise(env: &Env) -> Result<(Settle, Object<'_>)> {
    let (deferred, promise) = env.create_deferred()?;
    let settle: Settle = Box::new(move |r: std::io::Result<WaitResult>| match r {
        Ok(r) => deferred.resolve(move |_| Ok(r.as_str())),
        Err(e) => deferred.reject(napi::Error::from_reason(format!(
            "ERR_SHM_OS: cannot start a thread to wait on: {e}"
        ))),
    });
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
    Ok(
        unsafe { sync::wait32(p.cast::<AtomicU32>(), expected as u32, timeout(timeout_ms)) }
            .as_str(),
    )
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
    Ok(
        unsafe { sync::wait64(p.cast::<AtomicU64>(), expected as u64, timeout(timeout_ms)) }
            .as_str(),
    )
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

fn barrier<'a>(env: &Env, buffer: &'a Unknown) -> Result<&'a RawBarrier> {
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

#[napi]
pub fn mutex_try_lock(env: Env, buffer: Unknown) -> Result<u32> {
    Ok(taken(mutex(&env, &buffer)?.try_lock()))
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

/// The initial data of a barrier segment.
#[napi]
pub fn barrier_init(parties: u32) -> Buffer {
    RawBarrier::init(parties).to_vec().into()
}

#[napi]
pub fn barrier_parties(env: Env, buffer: Unknown) -> Result<u32> {
    Ok(barrier(&env, &buffer)?.parties())
}

/// Arrives: -1 when this party released the round, else the generation to wait out.
#[napi]
pub fn barrier_arrive(env: Env, buffer: Unknown) -> Result<i64> {
    Ok(match barrier(&env, &buffer)?.arrive() {
        Arrival::Leader => -1,
        Arrival::Wait(generation) => i64::from(generation),
    })
}

#[napi]
pub fn barrier_passed(env: Env, buffer: Unknown, generation: u32) -> Result<bool> {
    Ok(barrier(&env, &buffer)?.passed(generation))
}

/// Arrives and blocks until every party has: true for the one that arrived last.
#[napi]
pub fn barrier_wait(env: Env, buffer: Unknown) -> Result<bool> {
    Ok(barrier(&env, &buffer)?.wait())
}

/// Parks until the round of `generation` is over: a promise of the outcome.
#[napi(ts_return_type = "Promise<'ok' | 'not-equal' | 'timed-out'>")]
pub fn barrier_park_async<'env>(
    env: &'env Env,
    buffer: Unknown,
    generation: u32,
) -> Result<Object<'env>> {
    let word = barrier(env, &buffer)?.generation_word();
    let (settle, promise) = promise(env)?;
    sync::park_async32(word, generation, None, settle).map_err(|e| throw(env, e))?;
    Ok(promise)
}
