"""python3 userns_run.py 'MAP' -- CMD [ARGS]: runs CMD, as root, in a user namespace of its
own whose uid and gid maps are MAP, lines of "inside outside count" joined by ';'
("0 0 1000;1000 1000 4294966295": every uid, in two pieces).  unshare(1) of util-linux 2.38
writes a map of one line only."""
import ctypes
import os
import sys

CLONE_NEWUSER = 0x10000000


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: userns_run.py MAP -- CMD [ARGS]")
    text = sys.argv[1].replace(";", "\n") + "\n"
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWUSER) != 0:
            os._exit(125)
        os.write(ready_w, b"x")
        if os.read(go_r, 1) != b"x":
            os._exit(125)
        os.execvp(sys.argv[3], sys.argv[3:])
    os.close(ready_w)
    os.close(go_r)
    if os.read(ready_r, 1) != b"x":
        sys.exit("userns_run.py: the child made no user namespace")
    for name in ("uid_map", "gid_map"):
        with open("/proc/%d/%s" % (pid, name), "w") as f:
            f.write(text)
    os.write(go_w, b"x")
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
