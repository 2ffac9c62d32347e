"""A minimal FUSE server for the tests: one regular file /prog (the bytes of a given file),
mode 0755, owned by UID, as a FUSE file system of that user's would be (without allow_other
not even root may read it).  It speaks the kernel's protocol on /dev/fuse itself, so that no
libfuse or fusermount is needed.  Prints "mounted" once it is.

Usage: minifuse.py MOUNTPOINT FILE UID [allow_other]   (as root; it calls mount(2))"""
import ctypes, os, struct, sys, signal
mp, src, uid = sys.argv[1], sys.argv[2], int(sys.argv[3])
allow = len(sys.argv) > 4 and sys.argv[4] == "allow_other"
data = open(src, "rb").read()
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open("/dev/fuse", os.O_RDWR)
opts = "fd=%d,rootmode=40755,user_id=%d,group_id=%d%s" % (fd, uid, uid, ",allow_other" if allow else "")
if libc.mount(b"minifuse", mp.encode(), b"fuse.minifuse", 6, opts.encode()) != 0:  # nosuid,nodev
    sys.exit("mount: %d" % ctypes.get_errno())
print("mounted", flush=True)
ROOT, FILE = 1, 2

def attr(ino):
    if ino == ROOT:
        mode, size, nlink = 0o040755, 0, 2
    else:
        mode, size, nlink = 0o100755, len(data), 1
    return struct.pack("<QQQQQQIIIIIIIIII", ino, size, (size + 511) // 512, 0, 0, 0, 0, 0, 0,
                       mode, nlink, uid, uid, 0, 4096, 0)

def reply(unique, err=0, body=b""):
    os.write(fd, struct.pack("<IiQ", 16 + len(body), err, unique) + body)

while True:
    try:
        buf = os.read(fd, 1 << 17)
    except OSError as e:
        if e.errno in (19,):  # ENODEV: unmounted
            break
        if e.errno == 4:
            continue
        raise
    ln, op, unique, node, u, g, pid = struct.unpack_from("<IIQQIII", buf)
    arg = buf[40:ln]
    if op == 26:  # INIT
        major, minor, ra, flags = struct.unpack_from("<IIII", arg)
        reply(unique, 0, struct.pack("<IIIIHHIIHHII", 7, 31, ra, 0, 16, 12, 4096, 1, 1, 0, 0, 0) + b"\0" * 24)
    elif op == 1:  # LOOKUP
        name = arg.split(b"\0")[0]
        if node == ROOT and name == b"prog":
            reply(unique, 0, struct.pack("<QQQQII", FILE, 0, 1, 1, 0, 0) + attr(FILE))
        else:
            reply(unique, -2)
    elif op == 3:  # GETATTR
        reply(unique, 0, struct.pack("<QII", 1, 0, 0) + attr(node))
    elif op in (14, 27):  # OPEN, OPENDIR
        reply(unique, 0, struct.pack("<QII", 0, 0, 0))
    elif op == 15:  # READ
        fh, off, size = struct.unpack_from("<QQI", arg)
        reply(unique, 0, data[off:off + size])
    elif op == 28:  # READDIR
        reply(unique, 0, b"")
    elif op in (18, 25, 29, 34):  # RELEASE FLUSH RELEASEDIR ACCESS
        reply(unique, 0)
    elif op in (2, 42, 36):  # FORGET BATCH_FORGET INTERRUPT
        pass
    elif op == 38:  # DESTROY
        reply(unique, 0)
        break
    else:
        reply(unique, -38)
