//! A channel's per-message calls, a string vector's per-block count and the open of a plain
//! handle, exported as plain Node-API callbacks.
//!
//! napi-rs wraps every function it exports that takes arguments in a scope that records
//! borrowed values for asynchronous work: an `Arc<Mutex<…>>` allocated, thread-local stacks
//! pushed and popped, on every call. For a 64-byte message that wrapper cost as much as the
//! send itself (a CPU profile: the scope, its allocation and its release were about a third of
//! a send and a receive). These calls take only TypedArrays, numbers and a string, so they read
//! their arguments with Node-API directly and skip the wrapper.
//! Everything else goes through napi-rs.
//!
//! Their TypeScript signatures are in `src/native.ts` (napi-rs generates none for them).

use std::ffi::CStr;
use std::ptr;

use napi::bindgen_prelude::{FromNapiValue, Object, Unknown};
use napi::{sys, Env, Error, JsValue, Result, Status};
use napi_derive::napi;
use sharedobject_core::Code;

use crate::sync::{channel, check, copy_into, received_into, scratch_of, timeout, typed_array};
use crate::{core_err, throw};

/// The first `N` arguments of a call (`undefined` for those not given).
///
/// # Safety
/// `env` and `info` must be the ones Node-API passed to the running callback.
unsafe fn args<const N: usize>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Result<[sys::napi_value; N]> {
    let mut argc = N;
    let mut argv = [ptr::null_mut(); N];
    // SAFETY: `argv` has room for `argc` values; Node-API writes at most that many and fills
    // the ones not passed with `undefined`. `this` and the data pointer are not asked for.
    check(unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    })?;
    Ok(argv)
}

/// A number argument (`NaN` for anything else, which the callers read as "none": a timeout).
fn number(env: sys::napi_env, v: sys::napi_value) -> f64 {
    let mut n = f64::NAN;
    // SAFETY: `n` is a live local; a value that is not a number is answered with a status and
    // leaves `n` as it was.
    unsafe { sys::napi_get_value_double(env, v, &mut n) };
    n
}

/// The bytes of a Uint8Array argument.
///
/// # Safety
/// The slice lives as long as the call: JavaScript does not run during it, so nothing detaches
/// or resizes the buffer meanwhile.
unsafe fn bytes<'a>(env: &Env, v: sys::napi_value) -> Result<&'a mut [u8]> {
    let (len, data) = match typed_array(env.raw(), v) {
        Some((
            sys::TypedarrayType::uint8_array | sys::TypedarrayType::uint8_clamped_array,
            len,
            data,
        )) => (len, data),
        _ => {
            return Err(throw(
                env,
                core_err(Code::InvalidArgument, "a message is a Uint8Array"),
            ))
        }
    };
    if len == 0 {
        return Ok(&mut []);
    }
    // SAFETY: Node-API gives the address of the array's `len` bytes, alive and unmoved while
    // the call lasts (see above). A SharedArrayBuffer's bytes may change under another thread
    // meanwhile, as with any copy of shared memory; the channel reads or writes them once.
    Ok(unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), len) })
}

/// The answer of a callback: its value, or null with the error thrown.
///
/// A panic (none is expected) becomes an error: it must not unwind into Node-API's frames.
fn answer(env: sys::napi_env, run: impl FnOnce() -> Result<sys::napi_value>) -> sys::napi_value {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| {
        Err(Error::new(
            Status::GenericFailure,
            "sharedobject: a native call failed unexpectedly",
        ))
    });
    match r {
        Ok(v) => v,
        Err(e) => {
            if e.status != Status::PendingException {
                // SAFETY: `env` is the running callback's.
                unsafe { napi::JsError::from(e).throw_into(env) };
            }
            ptr::null_mut()
        }
    }
}

fn boolean(env: sys::napi_env, b: bool) -> Result<sys::napi_value> {
    let mut v = ptr::null_mut();
    // SAFETY: `v` is a live local.
    check(unsafe { sys::napi_get_boolean(env, b, &mut v) })?;
    Ok(v)
}

fn double(env: sys::napi_env, n: f64) -> Result<sys::napi_value> {
    let mut v = ptr::null_mut();
    // SAFETY: `v` is a live local.
    check(unsafe { sys::napi_create_double(env, n, &mut v) })?;
    Ok(v)
}

/// The channel whose words are `v`, for one call.
///
/// # Safety
/// As [`args`]: `env` is the running callback's and `v` one of its arguments.
unsafe fn words(env: &Env, v: sys::napi_value) -> Result<Unknown<'static>> {
    // SAFETY: wrapping a value of the running call, read only during it.
    unsafe { Unknown::from_napi_value(env.raw(), v) }
}

/// A send: `channelTrySend(words, message, flags)`, or with `wait`, `channelSend(words,
/// message, flags, timeoutMs)`, which waits for room up to the timeout.
///
/// # Safety
/// `env` and `info` must be the ones Node-API passed to the running callback.
unsafe fn send_call(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    wait: bool,
) -> sys::napi_value {
    let e = Env::from_raw(env);
    answer(env, || {
        // SAFETY: the running call's env and info (the caller's contract); its arguments are
        // read during it only.
        let [w, m, f, t] = unsafe { args::<4>(env, info)? };
        let w = unsafe { words(&e, w)? };
        let msg = unsafe { bytes(&e, m)? };
        let c = channel(&e, &w)?;
        let flags = number(env, f) as u32;
        let sent = if wait {
            c.send(msg, flags, timeout(number(env, t)))
        } else {
            c.try_send(msg, flags)
        };
        boolean(env, sent.map_err(|x| throw(&e, x))?)
    })
}

/// A receive into the scratch buffer: `channelTryReceiveInto(words, scratch)`, or with `wait`,
/// `channelReceiveInto(words, scratch, timeoutMs)`, which waits up to the timeout. The answer:
/// the message's length; for a handle, -3 less its length; -1 for none yet (or a wait that
/// timed out), -2 for none ever again.
///
/// # Safety
/// As [`send_call`].
unsafe fn receive_call(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    wait: bool,
) -> sys::napi_value {
    let e = Env::from_raw(env);
    answer(env, || {
        // SAFETY: as in `send_call`; the scratch is the channel object's private buffer.
        let [w, s, t] = unsafe { args::<3>(env, info)? };
        let w = unsafe { words(&e, w)? };
        let scratch = unsafe { bytes(&e, s)? };
        let c = channel(&e, &w)?;
        let dst = scratch_of(&e, &c, scratch)?;
        let got = if wait {
            c.receive(copy_into(dst), timeout(number(env, t)))
        } else {
            c.try_receive(copy_into(dst))
        };
        double(env, got.map(received_into).map_err(|x| throw(&e, x))?)
    })
}

unsafe extern "C" fn try_send(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: Node-API calls this with the running call's env and info.
    unsafe { send_call(env, info, false) }
}

unsafe extern "C" fn send(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: as in `try_send`.
    unsafe { send_call(env, info, true) }
}

unsafe extern "C" fn try_receive_into(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: as in `try_send`.
    unsafe { receive_call(env, info, false) }
}

unsafe extern "C" fn receive_into(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: as in `try_send`.
    unsafe { receive_call(env, info, true) }
}

/// A string argument, or an invalid-handle error for anything else.
fn text(env: &Env, v: sys::napi_value) -> Result<String> {
    // SAFETY: a value of the running call, read during it only.
    unsafe { String::from_napi_value(env.raw(), v) }.map_err(|_| {
        throw(
            env,
            core_err(Code::InvalidHandle, "a handle is a string from handleOf()"),
        )
    })
}

/// `openPlain(handle, bytesLeft, maxLength)`: see `crate::open_plain`. The open a process makes
/// when it is handed a vector; napi-rs's wrapper was a tenth of it there.
unsafe extern "C" fn open_plain(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let e = Env::from_raw(env);
    answer(env, || {
        // SAFETY: the running call's env and info; its arguments are read during it only.
        let [h, left, max] = unsafe { args::<3>(env, info)? };
        let handle = text(&e, h)?;
        crate::open_plain(&e, &handle, number(env, left), number(env, max))
    })
}

/// The elements of a TypedArray argument of kind `want` as atomics (the memory may be shared
/// with other threads and processes, which may write it at any time): its address and length.
///
/// # Safety
/// As [`bytes`].
unsafe fn atomics<'a, T>(
    env: &Env,
    v: sys::napi_value,
    want: sys::napi_typedarray_type,
    what: &str,
) -> Result<&'a [T]> {
    let (len, data) = match typed_array(env.raw(), v) {
        Some((kind, len, data)) if kind == want => (len, data),
        _ => {
            return Err(throw(
                env,
                core_err(Code::InvalidArgument, what.to_string()),
            ))
        }
    };
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: Node-API gives the address of the array's `len` elements, aligned for their
    // kind, alive and unmoved while the call lasts (no JavaScript runs). `T` is the atomic of
    // the element type, of the same size and alignment, so every element is read as an atomic:
    // writes by other threads or processes meanwhile are no data race.
    Ok(unsafe { std::slice::from_raw_parts(data.cast::<T>().cast_const(), len) })
}

/// `utf16Ends(values, offsets, from, end, a, b, out)`: for each string `e` from `from` to
/// `end` of a string vector, the count of UTF-16 units from byte `a` (its first string's start)
/// to the end of `e`, into `out[e - from]`; string `end - 1` ends at byte `b`. What the decoder
/// of a block needs to cut the block's text (decoded once from bytes `a` to `b`) into strings:
/// counting them in JavaScript, byte by byte, took a third of reading non-ASCII strings. Answers
/// -1, or the first string whose offsets are out of order or outside `values` (another process
/// may write them at any time), where nothing past it was written.
unsafe extern "C" fn utf16_ends(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    use std::sync::atomic::{AtomicI32, AtomicU8, Ordering::Relaxed};
    let e = Env::from_raw(env);
    let run = || {
        // SAFETY: the running call's env and info; its arguments are read during it only.
        let [v, o, f, n, a, b, out] = unsafe { args::<7>(env, info)? };
        let values: &[AtomicU8] = unsafe {
            atomics(
                &e,
                v,
                sys::TypedarrayType::uint8_array,
                "utf16Ends: values is a Uint8Array",
            )?
        };
        let offsets: &[AtomicI32] = unsafe {
            atomics(
                &e,
                o,
                sys::TypedarrayType::int32_array,
                "utf16Ends: offsets is an Int32Array",
            )?
        };
        let out: &[AtomicI32] = unsafe {
            atomics(
                &e,
                out,
                sys::TypedarrayType::int32_array,
                "utf16Ends: out is an Int32Array",
            )?
        };
        let index =
            |x: f64| (x >= 0.0 && x.fract() == 0.0 && x <= u32::MAX as f64).then_some(x as usize);
        let (Some(from), Some(end), Some(a), Some(b)) = (
            index(number(env, f)),
            index(number(env, n)),
            index(number(env, a)),
            index(number(env, b)),
        ) else {
            return Err(throw(
                &e,
                core_err(
                    Code::InvalidArgument,
                    "utf16Ends: from, end, a and b are whole numbers",
                ),
            ));
        };
        if from > end || end > offsets.len() || end - from > out.len() || a > b || b > values.len()
        {
            return Err(throw(
                &e,
                core_err(
                    Code::InvalidArgument,
                    "utf16Ends: the block lies outside its arrays",
                ),
            ));
        }
        let (mut s, mut units) = (a, 0i64);
        for i in from..end {
            let t = if i + 1 == end {
                b
            } else {
                let t = offsets[i + 1].load(Relaxed);
                if t < 0 {
                    return double(env, i as f64);
                }
                t as usize
            };
            if t < s || t > b {
                return double(env, i as f64);
            }
            // A unit per byte that starts a character, and a second one for four-byte
            // characters (a surrogate pair). Relaxed: the bytes are only counted.
            for c in &values[s..t] {
                let c = c.load(Relaxed);
                units += i64::from((c & 0xc0) != 0x80) + i64::from(c >= 0xf0);
            }
            out[i - from].store(units.min(i64::from(i32::MAX)) as i32, Relaxed);
            s = t;
        }
        double(env, -1.0)
    };
    answer(env, run)
}

type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

const CALLS: [(&CStr, Callback); 6] = [
    (c"openPlain", open_plain),
    (c"utf16Ends", utf16_ends),
    (c"channelTrySend", try_send),
    (c"channelSend", send),
    (c"channelTryReceiveInto", try_receive_into),
    (c"channelReceiveInto", receive_into),
];

/// Adds the calls above to the module's exports.
#[napi(module_exports)]
pub fn exports(exports: Object, env: Env) -> Result<()> {
    for (name, cb) in CALLS {
        let mut f = ptr::null_mut();
        // SAFETY: a name of its length in bytes, a callback of Node-API's
        // signature, no data; `f` is a live local.
        check(unsafe {
            sys::napi_create_function(
                env.raw(),
                name.as_ptr(),
                name.count_bytes() as isize,
                Some(cb),
                ptr::null_mut(),
                &mut f,
            )
        })?;
        // SAFETY: `exports` is the module's exports object, `f` the function just made.
        check(unsafe { sys::napi_set_named_property(env.raw(), exports.raw(), name.as_ptr(), f) })?;
    }
    Ok(())
}
