# The hand-over of bench/run.mjs's figure 3, done the Python way: a parent puts n float64 in a
# multiprocessing.shared_memory block and tells W waiting Python processes its name; each
# attaches by name, reads x[n-1] and replies. Timed from the first send to the last reply, as
# the Node figure is; children are started and warmed before anything is timed. The same round
# trip with no block ("ping") is the messaging alone.
# With IDLE_MS > 0, every timed hand-over and ping starts after that long with every process
# asleep, as the Node side's receivers are asleep in receive() when its parent sends; with 0 they
# run back to back, and a receiver that replied a moment ago wakes with its caches warm.
# Run: python3 bench/py-handover.py W REPS IDLE_MS WARM n1 [n2 ...]. Prints {"n": median ms, "ping":
# median ms} as JSON. With --serve W IDLE_MS WARM, one timed hand-over per request (see serve()).
# WARM untimed hand-overs of a small block come first, as many as the Node side's receivers get.
import json
import statistics
import subprocess
import sys
import time
from multiprocessing import shared_memory

CHILD = r"""
import sys
from multiprocessing import resource_tracker, shared_memory
while True:
    line = sys.stdin.readline()
    if not line:
        break
    if line == "ping\n":
        print("ping", flush=True)
        continue
    name, n = line.split()
    shm = shared_memory.SharedMemory(name=name)
    # The parent created the block and unlinks it; this process only attaches.
    resource_tracker.unregister(shm._name, "shared_memory")
    x = shm.buf.cast("d")
    last = x[int(n) - 1]
    x.release()
    shm.close()
    print(repr(last), flush=True)
"""


IDLE = 0.0


def handover(children, name, n):
    time.sleep(IDLE)
    t0 = time.perf_counter()
    for c in children:
        c.stdin.write(f"{name} {n}\n")
        c.stdin.flush()
    replies = [c.stdout.readline() for c in children]
    ms = (time.perf_counter() - t0) * 1000
    if any(float(r) != 1.5 for r in replies):
        raise SystemExit(f"a child read {replies}, not 1.5")
    return ms


def ping(children):
    time.sleep(IDLE)
    t0 = time.perf_counter()
    for c in children:
        c.stdin.write("ping\n")
        c.stdin.flush()
    replies = [c.stdout.readline() for c in children]
    ms = (time.perf_counter() - t0) * 1000
    if any(r != "ping\n" for r in replies):
        raise SystemExit(f"a child answered {replies} to a ping")
    return ms


def block(n):
    shm = shared_memory.SharedMemory(create=True, size=n * 8)
    x = shm.buf.cast("d")
    shm.buf[:] = b"\x00" * (n * 8)  # every page written, as the Node side's vector is
    x[n - 1] = 1.5
    x.release()
    return shm


def start(w, warm):
    """W receivers, started and warmed (`warm` hand-overs and three pings each) before any timing."""
    children = [subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(w)]
    try:
        small = block(1024)
        block_name = small.name
        try:
            for _ in range(max(warm, 1)):
                handover(children, block_name, 1024)
        finally:
            drop(small)
        for _ in range(3):
            ping(children)
    except BaseException:
        stop(children)
        raise
    return children


def stop(children):
    for c in children:
        c.stdin.close()
        c.wait()


def drop(shm):
    shm.close()
    shm.unlink()


def serve():
    # python3 py-handover.py --serve W IDLE_MS WARM: starts and warms W receivers, prints "ready",
    # then times one hand-over of n float64 for each line "n" it reads (printing the ms), so that
    # a caller can take its own rounds and these in turn; "ping" times the messaging alone.
    global IDLE
    w, idle, warm = int(sys.argv[2]), float(sys.argv[3]) / 1000, int(sys.argv[4])
    children = start(w, warm)
    IDLE = idle  # the warm hand-overs ran back to back
    n, shm = None, None
    try:
        print("ready", flush=True)
        for line in sys.stdin:
            what = line.strip()
            if what == "ping":
                print(ping(children), flush=True)
                continue
            if int(float(what)) != n:
                if shm is not None:
                    drop(shm)
                    shm = None
                n = int(float(what))
                shm = block(n)
            print(handover(children, shm.name, n), flush=True)
    finally:
        if shm is not None:
            drop(shm)
        stop(children)


def main():
    global IDLE
    if sys.argv[1] == "--serve":
        return serve()
    w, reps, idle, warm = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000, int(sys.argv[4])
    sizes = [int(float(a)) for a in sys.argv[5:]]
    children = start(w, warm)
    IDLE = idle  # the warm hand-overs ran back to back
    out = {}
    try:
        out["ping"] = statistics.median(ping(children) for _ in range(reps))
        for n in sizes:
            shm = block(n)
            try:
                out[str(n)] = statistics.median(handover(children, shm.name, n) for _ in range(reps))
            finally:
                drop(shm)
    finally:
        stop(children)
    print(json.dumps(out))


main()
