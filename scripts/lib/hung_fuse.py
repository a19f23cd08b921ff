#!/usr/bin/env python3
"""A FUSE file system that hangs: every file in it can be looked up, but
opening one never returns (the daemon never answers FUSE_OPEN), like a
binary on a FUSE or NFS mount whose server stopped answering.

The hang is killable, as on an NFS hard mount (TASK_KILLABLE): when the
kernel interrupts a pending open (the opener got a fatal signal), the open
is answered EINTR. (A FUSE daemon that ignores interrupts leaves the opener
in D state, unkillable, until it answers; kube-leader then gives up on it
after its drain timeout and does not release the lock.)

Speaks the raw /dev/fuse protocol (no libfuse needed); needs root.

    hung_fuse.py MOUNTPOINT READY_FILE

Mounts at MOUNTPOINT, writes READY_FILE, serves until SIGTERM, then
unmounts (MNT_DETACH) and exits: a pending open then fails with ENOTCONN.
"""
import ctypes, errno, os, signal, struct, sys

libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2
FUSE_LOOKUP, FUSE_GETATTR, FUSE_OPEN, FUSE_INIT, FUSE_FORGET, FUSE_BATCH_FORGET = 1, 3, 14, 26, 2, 42
FUSE_INTERRUPT = 36

def attr(ino, mode, size=64):
    # fuse_attr: ino size blocks atime mtime ctime (u64) atimensec mtimensec
    # ctimensec mode nlink uid gid rdev blksize flags (u32)
    return struct.pack("<QQQQQQIIIIIIIIII", ino, size, 1, 0, 0, 0, 0, 0, 0, mode, 1, 0, 0, 0, 4096, 0)

def reply(fd, unique, error=0, body=b""):
    os.write(fd, struct.pack("<IiQ", 16 + len(body), -error, unique) + body)

def main():
    mountpoint, ready = sys.argv[1], sys.argv[2]
    fd = os.open("/dev/fuse", os.O_RDWR)
    options = f"fd={fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
    if libc.mount(b"hung", mountpoint.encode(), b"fuse", 0, options) != 0:
        e = ctypes.get_errno()
        sys.exit(f"hung_fuse: mount: {os.strerror(e)}")
    def stop(*_):
        # Unmount and leave at once (a read of /dev/fuse may never return):
        # the kernel then fails what is still pending with ENOTCONN.
        libc.umount2(mountpoint.encode(), MNT_DETACH)
        os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    open(ready, "w").write("ready\n")
    while True:
        try:
            data = os.read(fd, 1 << 20)
        except OSError as e:
            if e.errno in (errno.EINTR, errno.EAGAIN):
                continue
            break  # ENODEV: unmounted
        length, opcode, unique, nodeid = struct.unpack_from("<IIQQ", data)
        if opcode == FUSE_INIT:
            major, minor = struct.unpack_from("<II", data, 40)
            body = struct.pack("<IIIIHHIIHHI", 7, min(minor, 31), 0, 0, 16, 12, 4096, 1, 0, 0, 0) + b"\0" * 28
            reply(fd, unique, body=body)
        elif opcode == FUSE_LOOKUP:
            # Every name is an executable file (node 2).
            reply(fd, unique, body=struct.pack("<QQQQII", 2, 0, 60, 60, 0, 0) + attr(2, 0o100755))
        elif opcode == FUSE_GETATTR:
            mode = 0o40755 if nodeid == 1 else 0o100755
            reply(fd, unique, body=struct.pack("<QII", 60, 0, 0) + attr(nodeid, mode))
        elif opcode == FUSE_OPEN:
            pass  # never answered: the opener hangs (until killed or unmounted)
        elif opcode == FUSE_INTERRUPT:
            (interrupted,) = struct.unpack_from("<Q", data, 40)
            reply(fd, interrupted, errno.EINTR)
        elif opcode in (FUSE_FORGET, FUSE_BATCH_FORGET):
            pass  # no reply expected
        else:
            reply(fd, unique, errno.ENOSYS)
    libc.umount2(mountpoint.encode(), MNT_DETACH)

if __name__ == "__main__":
    main()
