# A larger file for the NFS scenario (tools/vm-lib/nfs-guest/nfs-guest.sh),
# run by the guest's python3.11 (-I -S): its pages, a session that changes
# some of them, their check, and the benchmark of issue 15 (a kernel merge
# on an NFS client against pwrite of the same bytes on that client).
#
# The file has NPAGES pages; page p holds "p%06d\n" (its number) 512 times.
# A change is every STRIDE-th page from page 1 (NREC pages), every byte of
# the page changed (one record each): the 8-byte unit "p%06d\n" becomes a
# letter for the change's number N, the page number's digits as letters
# (shifted by N) and a tab or a return, so that changes N and N + 1 differ
# in every byte too, and a page written in the wrong place, half written or
# lost shows.  The uapi structs of uapi/cowmap.h are
# packed by hand, as in b-session.py: the kernel checks each struct's size,
# which is in the ioctl number.
#
#   make FILE NPAGES                 write the file (fsynced)
#   keep FILE NREC STRIDE N          a session with change N, left as an
#                                    orphan: prints its id
#   check FILE NPAGES NREC STRIDE N
#                                    every page as it must be after the
#                                    change merged; exit 0 if so, else 1
#   bench FILE NREC STRIDE ROUNDS    per round: a session writes the change
#                                    (change N in round N), then the kernel
#                                    merge with COWMAP_MERGE_FSYNC is timed,
#                                    then pwrite of the same bytes at the
#                                    same offsets and fsync; lines "bench| "
import fcntl
import mmap
import os
import sys
import time
# The uapi, shared with the other script (-I leaves this directory out).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowmap_uapi import (  # noqa: E402
    PAGE, COMMIT, MERGE, IOC_COMMIT, IOC_MERGE, IOC_DISCARD, MERGE_FSYNC, attach)


def base(p):
    return (b"p%06d\n" % p) * (PAGE // 8)


def changed(n, p):
    unit = chr(ord("a") + n % 15)       # never "p"
    unit += "".join(chr(ord("A") + (int(c) + 10 * n) % 26) for c in "%06d" % p)
    unit += "\t" if n % 2 == 0 else "\r"
    return unit.encode() * (PAGE // 8)


def pages_of(nrec, stride):
    return [1 + i * stride for i in range(nrec)]


def make(path, npages):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    for p in range(npages):
        os.write(fd, base(p))
    os.fsync(fd)
    os.close(fd)


def session(path, nrec, stride, n):
    """A session on PATH whose change is committed: (session fd, file fd)."""
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    sfd, sid = attach(fd)
    m = mmap.mmap(sfd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    for p in pages_of(nrec, stride):
        m[p * PAGE:(p + 1) * PAGE] = changed(n, p)
    m.close()
    buf = bytearray(COMMIT.pack(0, 0, 0, 0, 0, 0, 0, 0, 0))
    fcntl.ioctl(sfd, IOC_COMMIT, buf, True)
    records = COMMIT.unpack(buf)[1]
    return sfd, fd, sid, records


def keep(path, nrec, stride, n):
    sfd, fd, sid, records = session(path, nrec, stride, n)
    if records != nrec:
        print("nfs-big: the commit made %d records, not %d" % (records, nrec), file=sys.stderr)
        return 1
    os.close(sfd)       # closed with its records: an orphan
    os.close(fd)
    print(sid)
    return 0


def check(path, npages, nrec, stride, n):
    want_changed = set(pages_of(nrec, stride))
    fd = os.open(path, os.O_RDONLY)
    bad = []
    size = os.fstat(fd).st_size
    if size != npages * PAGE:
        bad.append("size %d" % size)
    for p in range(npages):
        got = os.pread(fd, PAGE, p * PAGE)
        want = changed(n, p) if p in want_changed else base(p)
        if got != want:
            bad.append("page %d (%s: %r...)" % (
                p, "changed" if p in want_changed else "unchanged", got[:8]))
    os.close(fd)
    if bad:
        print("%d bad: %s" % (len(bad), ", ".join(bad[:5])))
        return 1
    print("all %d pages right (%d changed)" % (npages, nrec))
    return 0


def bench(path, nrec, stride, rounds):
    ms = lambda t: (time.monotonic_ns() - t) / 1e6  # noqa: E731
    print("bench| %d records of %d B, one every %d pages of %s (%d KiB)" % (
        nrec, PAGE, stride, path, os.stat(path).st_size // 1024), flush=True)
    res = []
    for r in range(rounds):
        sfd, fd, sid, records = session(path, nrec, stride, r)
        tfd = os.open(path, os.O_RDWR)
        buf = bytearray(MERGE.pack(tfd, MERGE_FSYNC, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        t = time.monotonic_ns()
        fcntl.ioctl(sfd, IOC_MERGE, buf, True)
        merge_ms = ms(t)
        out = MERGE.unpack(buf)
        applied, written = out[6], out[9]
        fcntl.ioctl(sfd, IOC_DISCARD, 0)
        os.close(sfd)
        os.close(fd)
        # The same bytes at the same offsets, through write(2).
        data = [(p * PAGE, changed(r, p)) for p in pages_of(nrec, stride)]
        t = time.monotonic_ns()
        for off, b in data:
            os.pwrite(tfd, b, off)
        os.fsync(tfd)
        pwrite_ms = ms(t)
        os.close(tfd)
        if records != nrec or applied != nrec or written != nrec * PAGE:
            print("bench| round %d: records %d, applied %d, written %d: not the change" % (
                r, records, applied, written))
            return 1
        res.append((merge_ms, pwrite_ms))
        print("bench| round %d: kernel merge (fsync) %.1f ms, %.0f us per record; "
              "pwrite + fsync %.1f ms, %.0f us per record; ratio %.2f" % (
                  r, merge_ms, merge_ms * 1000 / nrec, pwrite_ms,
                  pwrite_ms * 1000 / nrec, merge_ms / pwrite_ms), flush=True)
    mm = sorted(x[0] for x in res)[len(res) // 2]
    pm = sorted(x[1] for x in res)[len(res) // 2]
    print("bench| median of %d rounds: kernel merge %.1f ms, pwrite %.1f ms, ratio %.2f" % (
        rounds, mm, pm, mm / pm))
    return 0


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "make":
        make(args[0], int(args[1]))
        return 0
    if cmd == "keep":
        return keep(args[0], int(args[1]), int(args[2]), int(args[3]))
    if cmd == "check":
        return check(args[0], int(args[1]), int(args[2]), int(args[3]), int(args[4]))
    if cmd == "bench":
        return bench(args[0], int(args[1]), int(args[2]), int(args[3]))
    print("nfs-big: unknown command %s" % cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except OSError as e:
        print("nfs-big: error: %s" % e, file=sys.stderr)
        sys.exit(1)
