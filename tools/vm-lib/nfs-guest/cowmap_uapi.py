# The uapi of uapi/cowmap.h that the NFS scenario's python programs use
# (b-session.py, nfs-big.py), packed by hand: the kernel checks each
# struct's size, which is in the ioctl number, so a layout that drifted
# fails with ENOTTY instead of doing something else.
import fcntl
import os
from _struct import Struct  # struct.py is not in the guest; _struct is built in

PAGE = 4096
MAGIC = 0xC7


def iowr(nr, size):
    return (3 << 30) | (size << 16) | (MAGIC << 8) | nr


API = Struct("=IIQQ4Q")          # struct cowmap_api
ATTACH = Struct("=iIQiI3Q")      # struct cowmap_attach
COMMIT = Struct("=IIQQQ4Q")      # struct cowmap_commit
MERGE = Struct("=iIQIIQQQQQ4Q")  # struct cowmap_merge
REFRESH = Struct("=IIQ2Q")       # struct cowmap_refresh
IOC_API = iowr(0x00, API.size)
IOC_ATTACH = iowr(0x01, ATTACH.size)
IOC_COMMIT = iowr(0x03, COMMIT.size)
IOC_MERGE = iowr(0x07, MERGE.size)
IOC_REFRESH = iowr(0x0B, REFRESH.size)
IOC_DISCARD = (MAGIC << 8) | 0x06       # _IO(COWMAP_IOC_MAGIC, 0x06)
MERGE_FSYNC = 1 << 3


def attach(fd):
    """A session on open file FD: the API handshake and the attach.
    Returns (session fd, session id)."""
    sfd = os.open("/dev/cowmap", os.O_RDWR)
    buf = bytearray(API.pack(1, 0, 0, 0, 0, 0, 0, 0))
    fcntl.ioctl(sfd, IOC_API, buf, True)
    buf = bytearray(ATTACH.pack(fd, 0, 0, 0, 0, 0, 0, 0))
    fcntl.ioctl(sfd, IOC_ATTACH, buf, True)
    return sfd, ATTACH.unpack(buf)[2]
