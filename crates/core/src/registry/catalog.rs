//! The segments of this package on the machine: whether one exists, what its header says,
//! the list of all, and their removal (`free`, and the sweep of those whose owner died).

use super::file::{decode_head, mark_freed, open_checked, ours_marked, unlink_generation};
use super::owner::let_go;
use super::with;
#[cfg(windows)]
use super::SegKey;
use crate::error::{Code, Result};
#[cfg(target_os = "linux")]
use crate::header;
use crate::header::Header;
use crate::name::{self, Place};
use crate::sys;

/// A segment as `list` reports it.
#[derive(Debug, Clone)]
pub struct Listing {
    pub id: String,
    pub header: Header,
    /// Bytes the segment occupies.
    pub size: u64,
    /// `None` when this process cannot tell (another pid namespace, or Windows).
    pub owner_alive: Option<bool>,
    /// Whether it is a named segment (a file) rather than an unnamed one held by its owner.
    pub named: bool,
}

/// Removes the segment a handle names, now: no process can open it any more, while views already
/// mapped anywhere keep working. Only that very segment (its generation) is removed.
pub fn free_handle(handle: &str) -> Result<bool> {
    let (id, generation, place) = name::parse_handle(handle)?;
    free_at(&id, Some(generation), &place)
}

/// Removes named segment `id` now, whatever its generation, if it is a segment of this package.
pub fn free(id: &str) -> Result<bool> {
    name::validate_id(id)?;
    // An unnamed segment this process owns can be freed by id too.
    let owned = with(|r| r.owned.keys().find(|k| k.0 == id).cloned());
    if let Some(key) = owned {
        if let Some(o) = with(|r| r.owned.get(&key).map(|o| !o.named)) {
            if o {
                return free_at(id, Some(key.1), &Place::Named);
            }
        }
    }
    free_at(id, None, &Place::Named)
}

fn free_at(id: &str, generation: Option<u64>, place: &Place) -> Result<bool> {
    // This process's own segment: forget it as owner (closing a memfd ends its nameability).
    let mine = with(|r| {
        let key = r
            .owned
            .keys()
            .find(|k| k.0 == id && generation.is_none_or(|g| g == k.1))
            .cloned()?;
        let o = r.owned.remove(&key)?;
        Some((key, o))
    });
    if let Some((key, o)) = mine {
        return let_go(&key, o);
    }
    match place {
        Place::Named => {
            // Only a segment of ours, of the right generation, is marked and removed.
            let mut marked = false;
            let removed = sys::unlink_checked(id, |f| {
                let ours = ours_marked(f, generation)?;
                marked = ours;
                Ok(ours)
            })?;
            Ok(removed || (cfg!(windows) && marked))
        }
        Place::Memfd { .. } => {
            // Another process holds it: mark it freed, so nobody opens it again and its owner
            // lets go of it.
            match open_checked(id, generation, place, true) {
                Ok((f, h, _)) => mark_freed(&f, &h).map(|()| true),
                Err(e) if e.code == Code::NotFound => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Whether named segment `id` exists (as a segment of this user's).
pub fn exists(id: &str) -> Result<bool> {
    name::validate_id(id)?;
    #[cfg(unix)]
    return sys::exists(id);
    #[cfg(windows)]
    return Ok(sys::exists(id));
}

/// Header, attributes and size of named segment `id`, read without mapping it.
pub fn peek(id: &str) -> Result<(Header, String, u64)> {
    name::validate_id(id)?;
    let f = sys::open_named(id, false)?;
    let head = sys::read_head(&f)?;
    let (h, a) = decode_head(&head, f.size())?;
    Ok((h, a, f.size()))
}

/// Every segment of this package on the machine that this user can see: named segments, and
/// on Linux the unnamed ones this user's processes hold.
///
/// Running out of descriptors is an error (`NoSpace`), never a shorter list.
pub fn list() -> Result<Vec<Listing>> {
    let mut out = Vec::new();
    #[cfg(unix)]
    let ids = sys::list_ids()?;
    #[cfg(windows)]
    let ids = sys::list_ids();
    for id in ids {
        let Some((header, size)) = listed(sys::open_named(&id, false))? else {
            continue;
        };
        let owner_alive =
            sys::owner_alive(header.owner_pid, header.owner_start, header.owner_pidns);
        out.push(Listing {
            id,
            header,
            size,
            owner_alive,
            named: true,
        });
    }
    #[cfg(target_os = "linux")]
    for (id, pid, fd) in sys::list_memfds()? {
        let Some((header, size)) = listed(sys::open_memfd(&id, pid, fd, 0, false))? else {
            continue;
        };
        // Only the owner's own descriptor counts; a freed one is not listed.
        if header.owner_pid != pid || header.flags & header::FLAG_FREED != 0 {
            continue;
        }
        if out
            .iter()
            .any(|l: &Listing| l.id == id && l.header.generation == header.generation)
        {
            continue;
        }
        out.push(Listing {
            id,
            header,
            size,
            owner_alive: Some(true),
            named: false,
        });
    }
    #[cfg(windows)]
    {
        let known: Vec<SegKey> = with(|r| r.owned.keys().cloned().collect());
        for (id, _) in known {
            if out.iter().any(|l| l.id == id) {
                continue;
            }
            if let Ok((header, _, size)) = peek(&id) {
                out.push(Listing {
                    id,
                    header,
                    size,
                    owner_alive: None,
                    named: true,
                });
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The header and size of a segment `list` found, or `None` to pass it over (gone since, another
/// user's, or not a segment). Running out of descriptors is an error, never a shorter list.
fn listed(opened: Result<sys::File>) -> Result<Option<(Header, u64)>> {
    let f = match opened {
        Ok(f) => f,
        Err(e) if e.code == Code::NoSpace => return Err(e),
        Err(_) => return Ok(None),
    };
    let header = sys::read_head(&f).and_then(|head| Header::decode(&head, f.size()));
    Ok(header.ok().map(|h| (h, f.size())))
}

/// Frees every named segment whose owner died, unless it is persistent or a developer segment.
/// A live owner's segment, or one whose owner this process cannot judge, is never touched.
pub fn sweep(dry_run: bool) -> Result<Vec<Listing>> {
    Ok(list()?
        .into_iter()
        .filter(|l| {
            l.named
                && l.owner_alive == Some(false)
                && !l.header.persistent()
                && !l.header.developer()
        })
        .filter(|l| dry_run || unlink_generation(&l.id, l.header.generation))
        .collect())
}
