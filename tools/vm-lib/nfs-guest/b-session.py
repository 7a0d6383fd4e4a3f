# Client B's session in the NFS scenario (tools/vm-lib/nfs-guest/nfs-guest.sh),
# run by the guest's python3.11 (-I -S): a cowmap session on DATA through
# /dev/cowmap's ioctls (the uapi structs of uapi/cowmap.h, packed by hand:
# the kernel checks each struct's size, which is in the ioctl number, so a
# layout that drifted fails with ENOTTY instead of doing something else),
# mapped whole; it writes page 0, reads pages 1 to 3, and then, in steps
# with client A and B's shell (step files in CTL), writes what it shows
# into CTL/b-view-N, before and after COWMAP_IOC_REFRESH.
#
# Args: CTL DATA NPAGES WAIT_SECONDS.  Exit 0 when every step was done
# (whether the bytes were right is judged by nfs-guest.sh), 1 otherwise.
import fcntl
import mmap
import os
import sys
import time
# The uapi, shared with the other script (-I leaves this directory out).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowmap_uapi import (  # noqa: E402
    PAGE, REFRESH, IOC_REFRESH, IOC_DISCARD, attach)

CTL, DATA = sys.argv[1], sys.argv[2]
NPAGES, WAIT = int(sys.argv[3]), float(sys.argv[4])


def log(msg):
    print("nfs-b: [%.1fs] session: %s" % (time.clock_gettime(time.CLOCK_BOOTTIME), msg),
          flush=True)


def waitf(name):
    t0 = time.monotonic()
    while not os.path.exists(os.path.join(CTL, name)):
        if os.path.exists(os.path.join(CTL, "a-failed")):
            log("client A failed; not waiting for %s" % name)
            sys.exit(1)
        if time.monotonic() - t0 > WAIT:
            log("timed out after %.0fs waiting for %s" % (WAIT, name))
            sys.exit(1)
        time.sleep(0.1)


def put(name, text):
    tmp = os.path.join(CTL, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.rename(tmp, os.path.join(CTL, name))


def pages(m):
    return " ".join(m[n * PAGE:n * PAGE + 4].decode("latin-1") for n in range(4))


def refresh(sfd):
    buf = bytearray(REFRESH.pack(0, 0, 0, 0, 0))
    fcntl.ioctl(sfd, IOC_REFRESH, buf, True)
    return REFRESH.unpack(buf)[2]


def main():
    fd = os.open(DATA, os.O_RDONLY)
    sfd, sid = attach(fd)
    m = mmap.mmap(sfd, NPAGES * PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    # Page 0 is the session's own; pages 1 to 3 are mapped from B's page
    # cache (and pinned by the session) before A changes them.
    m[0:4] = b"BBBB"
    if pages(m) != "BBBB .... .... ....":
        log("session %d at the start: %s" % (sid, pages(m)))
        return 1
    put("b-session", str(sid))
    log("session %d attached; pages 0-3: %s" % (sid, pages(m)))

    # A's plain write over pages 1 and 2.
    waitf("a-wrote")
    put("b-view-1", pages(m))                   # nothing on B opened the file yet
    waitf("b-reader-1")                         # B's plain reader has read it
    put("b-view-2", pages(m))                   # before the refresh
    n = refresh(sfd)
    put("b-view-3", "%s %d" % (pages(m), n))     # after it

    # A's kernel merge over page 3: the refresh alone, with no open on B.
    waitf("a-merged")
    put("b-view-4", pages(m))
    n = refresh(sfd)
    put("b-view-5", "%s %d" % (pages(m), n))

    waitf("b-end")
    # Closed with its page 0, the session would stay as an orphan.
    fcntl.ioctl(sfd, IOC_DISCARD, 0)
    m.close()
    os.close(sfd)
    os.close(fd)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except OSError as e:
        log("error: %s" % e)
        sys.exit(1)
