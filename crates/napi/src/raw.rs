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

/// `utf8Split(values, offsets, from, end, a, b, latin1, wide, ends)`: decodes the strings `from`
/// to `end` of a string vector (bytes `a` to `b`; string `end - 1` ends at `b`) into two texts:
/// each string whose characters all fit in Latin-1 goes into `latin1`, one byte a character
/// (what the engine keeps as a one-byte string), every other one into `wide` as UTF-16 (little
/// endian, two bytes a unit). `ends[k]` is where string `from + k` ends in its text: at or past 0
/// in `latin1`'s, or the bitwise not of its end in `wide`'s units; `ends[end - from]` is the
/// count of `wide`'s units. The caller cuts each string from one of the two texts, made once
/// each: a block decoded by `utf8Slice` as one text is all two-byte as soon as one string needs
/// it, twice the memory for the engine to make and collect, and reading them took 1.3 times
/// advanced serialization's receive.
///
/// Answers the bytes written to `latin1`; -1 when a string is not well-formed UTF-8 on its own
/// (the caller decodes the block string by string, with replacement characters); -2 less the
/// index of the first string whose offsets are out of order or outside `values` (another process
/// may write them at any time). `latin1` must hold `b - a` bytes, `wide` `2 (b - a)`, `ends`
/// `end - from + 1` numbers.
unsafe extern "C" fn utf8_split(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    use std::sync::atomic::{AtomicI32, Ordering::Relaxed};
    let e = Env::from_raw(env);
    let run = || {
        // SAFETY: the running call's env and info; its arguments are read during it only.
        let [v, o, f, n, a, b, lat, wide, ends] = unsafe { args::<9>(env, info)? };
        let bad = |what: &str| {
            throw(
                &e,
                core_err(Code::InvalidArgument, format!("utf8Split: {what}")),
            )
        };
        let array = |v, kind, what: &str| match typed_array(env, v) {
            Some((k, len, data)) if k == kind => Ok((data.cast::<u8>(), len)),
            _ => Err(bad(what)),
        };
        let (values, values_len) = array(
            v,
            sys::TypedarrayType::uint8_array,
            "values is a Uint8Array",
        )?;
        // SAFETY: as in `atomics`: the offsets are shared memory, each read once as an atomic.
        let offsets: &[AtomicI32] = unsafe {
            atomics(
                &e,
                o,
                sys::TypedarrayType::int32_array,
                "utf8Split: offsets is an Int32Array",
            )?
        };
        let (lat, lat_len) = array(
            lat,
            sys::TypedarrayType::uint8_array,
            "latin1 is a Uint8Array",
        )?;
        let (wide, wide_len) = array(
            wide,
            sys::TypedarrayType::uint8_array,
            "wide is a Uint8Array",
        )?;
        let (ends, ends_len) = array(
            ends,
            sys::TypedarrayType::int32_array,
            "ends is an Int32Array",
        )?;
        let index =
            |x: f64| (x >= 0.0 && x.fract() == 0.0 && x <= u32::MAX as f64).then_some(x as usize);
        let (Some(from), Some(end), Some(a), Some(b)) = (
            index(number(env, f)),
            index(number(env, n)),
            index(number(env, a)),
            index(number(env, b)),
        ) else {
            return Err(bad("from, end, a and b are whole numbers"));
        };
        if from > end
            || end > offsets.len()
            || end - from >= ends_len
            || a > b
            || b > values_len
            || lat_len < b - a
            || wide_len / 2 < b - a
        {
            return Err(bad("the block lies outside its arrays"));
        }
        // The three outputs are written through plain slices, made only once they are known to
        // be apart from each other and from the offsets, which are read (as atomics) while they
        // are written; the values are copied before any output is made.
        let span = |p: *mut u8, n: usize| (p as usize, p as usize + n);
        let apart = |x: (usize, usize), y: (usize, usize)| x.1 <= y.0 || y.1 <= x.0;
        let (l_at, w_at, e_at) = (
            span(lat, lat_len),
            span(wide, wide_len),
            span(ends, 4 * ends_len),
        );
        let o_at = span(offsets.as_ptr().cast_mut().cast(), 4 * offsets.len());
        if !apart(l_at, w_at)
            || !apart(l_at, e_at)
            || !apart(w_at, e_at)
            || [l_at, w_at, e_at].iter().any(|&x| !apart(x, o_at))
        {
            return Err(bad("the outputs overlap each other or the offsets"));
        }
        if !(wide as usize).is_multiple_of(2) {
            return Err(bad("wide is not aligned for UTF-16"));
        }
        BLOCK.with(|block| {
            let mut src = block.borrow_mut();
            src.clear();
            src.reserve(b - a);
            // SAFETY: `values` holds `values_len >= b` bytes, alive while the call lasts (no
            // JavaScript runs); `src` has room for `b - a`. Shared memory that another process
            // may write meanwhile is copied once, as any copy of it (the channel's too): the
            // strings are decoded from this private copy, whatever happens to it afterwards.
            unsafe {
                ptr::copy_nonoverlapping(values.add(a), src.as_mut_ptr(), b - a);
                src.set_len(b - a);
            }
            // SAFETY: each output's address and length come from Node-API for its live array,
            // unmoved during the call; they were checked apart from each other above, and
            // `wide` 2-aligned, so these are the only references to their memory.
            let (lat, wide, ends) = unsafe {
                (
                    std::slice::from_raw_parts_mut(lat, lat_len),
                    std::slice::from_raw_parts_mut(wide.cast::<u16>(), wide_len / 2),
                    std::slice::from_raw_parts_mut(ends.cast::<i32>(), ends_len),
                )
            };
            let (mut s, mut l, mut w) = (a, 0usize, 0usize);
            for i in from..end {
                let t = if i + 1 == end {
                    b
                } else {
                    match usize::try_from(offsets[i + 1].load(Relaxed)) {
                        Ok(t) => t,
                        Err(_) => return double(env, -2.0 - i as f64),
                    }
                };
                if t < s || t > b {
                    return double(env, -2.0 - i as f64);
                }
                let one = &src[s - a..t - a];
                // Either output holds as many characters as the block has bytes: a character
                // takes at least as many bytes in UTF-8 as units in either text.
                ends[i - from] = if let Some(k) = latin1_into(one, &mut lat[l..]) {
                    l += k;
                    l as i32
                } else if let Some(k) = utf16_into(one, &mut wide[w..]) {
                    w += k;
                    !(w as i32)
                } else {
                    return double(env, -1.0);
                };
                s = t;
            }
            ends[end - from] = w as i32;
            double(env, l as f64)
        })
    };
    answer(env, run)
}

thread_local! {
    /// `utf8Split`'s private copy of a block's bytes.
    static BLOCK: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The Latin-1 bytes of `src` (UTF-8) into `dst`: how many, or `None` when a character is past
/// U+00FF or the bytes are not UTF-8.
fn latin1_into(src: &[u8], dst: &mut [u8]) -> Option<usize> {
    let dst = dst.get_mut(..src.len())?;
    let (mut i, mut o) = (0, 0);
    while i < src.len() {
        // Eight bytes at a time: all of them when they are ASCII, else the ASCII ones before the
        // first that is not (read little endian, its byte is the lowest with its top bit set).
        // All eight are copied either way, in one move: `o <= i`, so `dst` has room for them,
        // and the bytes past the ASCII ones are written over next.
        if let Some(w) = src.get(i..i + 8) {
            let high = u64::from_le_bytes(w.try_into().ok()?) & 0x8080_8080_8080_8080;
            let k = if high == 0 {
                8
            } else {
                high.trailing_zeros() as usize / 8
            };
            dst[o..o + 8].copy_from_slice(w);
            i += k;
            o += k;
            if k == 8 {
                continue;
            }
        }
        let c = src[i];
        if c < 0x80 {
            dst[o] = c;
            i += 1;
        } else if c & 0xfe == 0xc2 {
            // C2 and C3 lead U+0080 to U+00FF; all else past ASCII is wider (or not UTF-8).
            let d = *src.get(i + 1)?;
            if d & 0xc0 != 0x80 {
                return None;
            }
            dst[o] = ((c & 0x03) << 6) | (d & 0x3f);
            i += 2;
        } else {
            return None;
        }
        o += 1;
    }
    Some(o)
}

/// The UTF-16 of `src` (UTF-8) into `dst` (little endian in memory): how many units, or `None`
/// when the bytes are not well-formed UTF-8 (overlong forms, surrogates and code points past
/// U+10FFFF included), which the caller decodes with replacement characters instead.
fn utf16_into(src: &[u8], dst: &mut [u16]) -> Option<usize> {
    let dst = dst.get_mut(..src.len())?;
    let cont = |i: usize| {
        src.get(i)
            .filter(|&&d| d & 0xc0 == 0x80)
            .map(|&d| u32::from(d & 0x3f))
    };
    let (mut i, mut o) = (0, 0);
    while i < src.len() {
        let c = u32::from(src[i]);
        let (cp, len) = match c {
            0x00..=0x7f => (c, 1),
            0xc2..=0xdf => ((c & 0x1f) << 6 | cont(i + 1)?, 2),
            0xe0..=0xef => {
                let cp = (c & 0x0f) << 12 | cont(i + 1)? << 6 | cont(i + 2)?;
                if cp < 0x800 || (0xd800..0xe000).contains(&cp) {
                    return None;
                }
                (cp, 3)
            }
            0xf0..=0xf4 => {
                let cp = (c & 0x07) << 18 | cont(i + 1)? << 12 | cont(i + 2)? << 6 | cont(i + 3)?;
                if !(0x10000..=0x10ffff).contains(&cp) {
                    return None;
                }
                (cp, 4)
            }
            _ => return None,
        };
        // A unit per 1 to 3 bytes, two per 4: never more units than bytes, so `dst` has room.
        if cp >= 0x10000 {
            dst[o] = ((0xd800 + ((cp - 0x10000) >> 10)) as u16).to_le();
            dst[o + 1] = ((0xdc00 + ((cp - 0x10000) & 0x3ff)) as u16).to_le();
            o += 2;
        } else {
            dst[o] = (cp as u16).to_le();
            o += 1;
        }
        i += len;
    }
    Some(o)
}

type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

const CALLS: [(&CStr, Callback); 6] = [
    (c"openPlain", open_plain),
    (c"utf8Split", utf8_split),
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
