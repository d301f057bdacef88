//! Threads that sit in the kernel's wait on behalf of asynchronous waiters, so that neither a
//! JavaScript thread nor libuv's thread pool (four threads that fs, crypto and zlib need) ever
//! blocks. Each pending wait holds one thread; a thread that finishes waits up to `IDLE_FOR` for
//! the next wait, then ends. Stacks are small: a parked thread only makes a system call and
//! hands its result back.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::Duration;

/// A wait to run on a parked thread: called with `None` there, or with the error that kept any
/// thread from starting.
pub(super) type Job = Box<dyn FnOnce(Option<std::io::Error>) + Send>;

const IDLE_FOR: Duration = Duration::from_secs(30);
const STACK: usize = 256 * 1024;

struct Idle {
    id: u64,
    jobs: mpsc::Sender<Job>,
}

static IDLE: Mutex<Vec<Idle>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn idle() -> MutexGuard<'static, Vec<Idle>> {
    IDLE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `job` on an idle parked thread, or on a new one.
pub(super) fn run(mut job: Job) {
    loop {
        let Some(thread) = idle().pop() else { break };
        match thread.jobs.send(job) {
            Ok(()) => return,
            Err(mpsc::SendError(j)) => job = j,
        }
    }
    let (jobs, inbox) = mpsc::channel::<Job>();
    let id = NEXT_ID.fetch_add(1, Relaxed);
    let own = jobs.clone();
    let spawned = std::thread::Builder::new()
        .name("sharedobject-waiter".into())
        .stack_size(STACK)
        .spawn(move || serve(id, own, inbox));
    match spawned {
        // The new thread holds its own sender, so the job cannot be refused.
        Ok(_) => drop(jobs.send(job)),
        Err(e) => job(Some(e)),
    }
}

fn serve(id: u64, own: mpsc::Sender<Job>, inbox: mpsc::Receiver<Job>) {
    loop {
        match inbox.recv_timeout(IDLE_FOR) {
            Ok(job) => job(None),
            Err(_) => {
                let mut list = idle();
                if let Some(i) = list.iter().position(|t| t.id == id) {
                    list.remove(i);
                    return;
                }
                drop(list);
                // Another thread took this one from the idle list just now: its job is coming.
                match inbox.recv() {
                    Ok(job) => job(None),
                    Err(_) => return,
                }
            }
        }
        idle().push(Idle {
            id,
            jobs: own.clone(),
        });
    }
}
