//! The one buffer per mapping a thread hands out, found again by the mapping's key and held
//! weakly through Node-API references. A JavaScript `WeakRef` would keep every buffer it was
//! made for (or dereferenced) alive until the current job ends, so a synchronous loop that
//! shares, hands out and drops vectors could not give any of them back before it returns; a
//! Node-API weak reference keeps nothing alive.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ptr;

use napi::bindgen_prelude::ToNapiValue;
use napi::{sys, Env, Result};
use napi_derive::napi;

use crate::Raw;

/// One engine per thread, so one map per thread. References are never deleted when the thread
/// ends: the environment finalizes its references itself at teardown.
#[derive(Default)]
struct Weak {
    refs: HashMap<String, usize>,
    /// The size at which references to collected buffers are swept out next.
    sweep_at: usize,
}

thread_local! {
    static WEAK: RefCell<Weak> = RefCell::new(Weak::default());
}

/// The value a reference still holds, or `None` once the engine collected it.
fn value_of(env: sys::napi_env, r: usize) -> Option<sys::napi_value> {
    let mut v = ptr::null_mut();
    // SAFETY: `r` is a reference this module made in this thread's environment and has not
    // deleted; reading it is a plain Node-API call on that environment's thread.
    let status = unsafe { sys::napi_get_reference_value(env, r as sys::napi_ref, &mut v) };
    (status == sys::Status::napi_ok && !v.is_null()).then_some(v)
}

fn delete(env: sys::napi_env, r: usize) {
    // SAFETY: as in `value_of`; the reference is removed from the map before or as it is
    // deleted, so it is deleted once.
    unsafe { sys::napi_delete_reference(env, r as sys::napi_ref) };
}

impl ToNapiValue for Raw {
    unsafe fn to_napi_value(_env: sys::napi_env, v: Self) -> Result<sys::napi_value> {
        Ok(v.0)
    }
}

/// Makes `buffer` this thread's buffer for the mapping `key`, held weakly.
#[napi]
pub fn cache_buffer(
    env: Env,
    key: String,
    #[napi(ts_arg_type = "ArrayBuffer | SharedArrayBuffer")] buffer: Raw,
) -> Result<()> {
    cache(env.raw(), key, buffer.0);
    Ok(())
}

/// `cache_buffer` for the native side, which made `buffer` in this call.
pub(crate) fn cache(raw: sys::napi_env, key: String, buffer: sys::napi_value) {
    let mut r = ptr::null_mut();
    // SAFETY: a plain Node-API call on this thread's environment; a count of 0 makes the
    // reference weak.
    let status = unsafe { sys::napi_create_reference(raw, buffer, 0, &mut r) };
    if status != sys::Status::napi_ok {
        return; // nothing cached: a later open maps the segment again
    }
    WEAK.with(|w| {
        let mut w = w.borrow_mut();
        if let Some(old) = w.refs.insert(key, r as usize) {
            delete(raw, old);
        }
        if w.refs.len() >= w.sweep_at {
            let gone: Vec<String> = w
                .refs
                .iter()
                .filter(|(_, &r)| value_of(raw, r).is_none())
                .map(|(k, _)| k.clone())
                .collect();
            for k in gone {
                if let Some(r) = w.refs.remove(&k) {
                    delete(raw, r);
                }
            }
            w.sweep_at = (2 * w.refs.len()).max(256);
        }
    });
}

/// This thread's buffer for the mapping `key`, if the engine has not collected it.
#[napi(ts_return_type = "ArrayBuffer | SharedArrayBuffer | null")]
pub fn cached_buffer(env: Env, key: String) -> Option<Raw> {
    cached(env.raw(), &key).map(Raw)
}

/// `cached_buffer` for the native side.
pub(crate) fn cached(raw: sys::napi_env, key: &str) -> Option<sys::napi_value> {
    WEAK.with(|w| {
        let mut w = w.borrow_mut();
        let r = *w.refs.get(key)?;
        match value_of(raw, r) {
            Some(v) => Some(v),
            None => {
                w.refs.remove(key);
                delete(raw, r);
                None
            }
        }
    })
}

/// Forgets this thread's buffer for the mapping `key` if it is `buffer` (a close).
pub(crate) fn uncache(raw: sys::napi_env, key: &str, buffer: sys::napi_value) {
    WEAK.with(|w| {
        let mut w = w.borrow_mut();
        let Some(&r) = w.refs.get(key) else { return };
        let same = value_of(raw, r).is_none_or(|v| {
            let mut eq = false;
            // SAFETY: a plain Node-API comparison of two values of this call.
            unsafe { sys::napi_strict_equals(raw, v, buffer, &mut eq) };
            eq
        });
        if same {
            w.refs.remove(key);
            delete(raw, r);
        }
    });
}
