//! The Node-API binding: JavaScript types in, core calls, JavaScript types out. Lifecycle rules
//! live in `sharedobject-core`; this crate only makes external ArrayBuffers over the core's
//! views and turns core errors into coded JavaScript errors.

use std::ffi::c_void;
use std::ptr;

use napi::bindgen_prelude::{ArrayBuffer, ToNapiValue, TypeName, Uint8ArraySlice};
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

/// A view's bytes as a JavaScript ArrayBuffer over the mapping itself: no copy.
pub struct ExternalView {
    ptr: *mut u8,
    len: usize,
    token: u64,
}

unsafe extern "C" fn finalize_view(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // The ArrayBuffer was collected (or its environment torn down): its view is no longer used.
    registry::release(hint as usize as u64);
}

impl TypeName for ExternalView {
    fn type_name() -> &'static str {
        "ArrayBuffer"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for ExternalView {
    unsafe fn to_napi_value(env: sys::napi_env, v: Self) -> Result<sys::napi_value> {
        let mut out = ptr::null_mut();
        // An empty view still gets a valid, non-null address so the engine never sees null data.
        let data = if v.len == 0 {
            ptr::NonNull::<u64>::dangling().as_ptr().cast()
        } else {
            v.ptr.cast()
        };
        // SAFETY: `data` points to `len` bytes of a mapping the registry keeps alive until
        // `release(token)`, which runs only from the finalizer below or from `close` after the
        // buffer is detached; so no live ArrayBuffer ever points at unmapped memory.
        let status = unsafe {
            sys::napi_create_external_arraybuffer(
                env,
                data,
                v.len,
                Some(finalize_view),
                v.token as usize as *mut c_void,
                &mut out,
            )
        };
        if status == sys::Status::napi_ok {
            return Ok(out);
        }
        registry::release(v.token);
        let e = if status == sys::Status::napi_no_external_buffers_allowed {
            core_err(
        Code::ExternalBuffers,
        "this runtime forbids buffers over external memory (as Electron does), so a shared view cannot be made; \
         open(handle, { copy: true }) gives a private copy instead",
      )
        } else {
            core_err(
                Code::Os,
                format!("cannot create an ArrayBuffer over the segment (napi status {status})"),
            )
        };
        Err(throw(&Env::from_raw(env), e))
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
    pub reserve: bool,
    pub aux: Option<Vec<f64>>,
}

/// One view, with what the header says of its segment.
#[napi(object, object_from_js = false)]
pub struct ViewInfo {
    #[napi(ts_type = "ArrayBuffer")]
    pub buffer: ExternalView,
    pub token: f64,
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
}

fn to_info(v: registry::View) -> ViewInfo {
    ViewInfo {
        buffer: ExternalView {
            ptr: v.ptr,
            len: v.byte_length,
            token: v.token,
        },
        token: v.token as f64,
        kind: v.header.kind.name().to_string(),
        length: v.header.length as f64,
        byte_length: v.header.byte_length as f64,
        copy_on_write: v.mode == Mode::CopyOnWrite,
        persistent: v.header.persistent(),
        owner: v.owner,
        owner_pid: v.header.owner_pid,
        created: v.header.created_ms as f64,
        aux: v.header.aux.iter().map(|&w| w as f64).collect(),
        id: v.id,
        handle: v.handle,
        attributes: v.attributes,
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

/// Creates a segment, copies `init` into it, and returns the owner's view.
#[napi]
pub fn create(env: Env, options: CreateOptions, init: Option<Uint8ArraySlice>) -> Result<ViewInfo> {
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
            reserve: options.reserve,
            developer: false,
            aux,
        };
        registry::create(&spec, init.as_deref())
    };
    run().map(to_info).map_err(|e| throw(&env, e))
}

/// Opens the segment a handle names; `copyOnWrite` undefined takes the sharer's default.
#[napi]
pub fn open(env: Env, handle: String, copy_on_write: Option<bool>) -> Result<ViewInfo> {
    registry::open_handle(&handle, mode_of(copy_on_write))
        .map(to_info)
        .map_err(|e| throw(&env, e))
}

/// Opens a segment by id (the developer API's `mapSharedMemory`).
#[napi]
pub fn open_id(env: Env, id: String, copy_on_write: Option<bool>) -> Result<ViewInfo> {
    registry::open_id(&id, None, mode_of(copy_on_write))
        .map(to_info)
        .map_err(|e| throw(&env, e))
}

/// A segment's header, for a copy read without mapping.
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
/// forbid external buffers.
#[napi]
pub fn read_copy(env: Env, handle: String) -> Result<CopyInfo> {
    let (h, attributes, data) = registry::read_copy(&handle).map_err(|e| throw(&env, e))?;
    Ok(CopyInfo {
        kind: h.kind.name().to_string(),
        length: h.length as f64,
        copy_on_write: h.copy_on_write(),
        attributes,
        aux: h.aux.iter().map(|&w| w as f64).collect(),
        data: data.into(),
    })
}

/// Detaches `buffer` (every TypedArray over it now has length 0) and releases its view. The
/// mapping is unmapped when no other view in this process uses it. Returns false if the view was
/// released already.
#[napi]
pub fn close(buffer: ArrayBuffer, token: f64) -> Result<bool> {
    if !buffer.is_detached()? {
        buffer.detach()?;
    }
    Ok(registry::release(token as u64))
}

#[napi]
pub fn free(env: Env, id: String) -> Result<bool> {
    registry::free(&id).map_err(|e| throw(&env, e))
}

#[napi]
pub fn exists(env: Env, id: String) -> Result<bool> {
    registry::exists(&id).map_err(|e| throw(&env, e))
}

/// Whether the segment a handle names can still be opened by it (not freed, not replaced).
#[napi]
pub fn is_current(env: Env, handle: String) -> Result<bool> {
    registry::handle_is_current(&handle).map_err(|e| throw(&env, e))
}

/// Bytes a segment's data region holds.
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
        created: l.header.created_ms as f64,
        id: l.id,
    }
}

#[napi]
pub fn list() -> Vec<SegmentInfo> {
    registry::list().into_iter().map(to_segment).collect()
}

#[napi]
pub fn sweep() -> Vec<SegmentInfo> {
    registry::sweep().into_iter().map(to_segment).collect()
}

/// Mappings and views this process holds.
#[napi(object, object_from_js = false)]
pub struct Stats {
    pub mappings: u32,
    pub views: u32,
}

#[napi]
pub fn stats() -> Stats {
    let (mappings, views) = registry::stats();
    Stats {
        mappings: mappings as u32,
        views: views as u32,
    }
}
