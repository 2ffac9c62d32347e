#!/bin/bash
# Runs tether's gcc test suite on a booted Debian 12 guest: systemd as PID 1, a pure cgroup v2
# (unified) hierarchy, and root's shell in a logind session scope (session-N.scope), the host
# most users have (doc/supervision.md, "systemd hosts").  The build machines are not such a
# host, so this is not part of .ci/run; run it by hand, as root, on a Debian 12 host (with KVM
# if it has it; emulated otherwise):
#
#     contrib/vm/debian12-suite.sh
#
# It debootstraps bookworm into a temporary directory, installs what `contrib/setup.sh test`
# wants there, copies the repository (its tracked files, with uncommitted changes) to the
# guest's /root/tether, and sets up root's autologin on the serial console.  root's
# ~/.bash_profile, on that console only, runs the suite, prints the cgroup facts and a
# monitored `tether run` with its transient scope, then powers the guest off.  The guest boots
# from an ext4 image of the directory under qemu with KVM; its serial console is logged.
# The exit status is 0 only if the suite passed in the guest.
#
# Environment: TETHER_VM_DIR (work directory, kept; default a temporary one, removed),
# TETHER_VM_MIRROR (default http://deb.debian.org/debian), TETHER_VM_TIMEOUT (seconds the
# guest may run, default 5400; 14400 when emulated), TETHER_VM_SIZE (image size, default 8G),
# TETHER_VM_ACCEL (kvm or tcg; default kvm, tcg on a PVM host or without /dev/kvm), TETHER_VM_TESTS (a ctest -R
# regular expression: only those tests), TETHER_VM_EXTRA (a bash script of the host's that the
# guest runs after the suite, as root, in /root/tether, for a diagnosis).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
mirror=${TETHER_VM_MIRROR:-http://deb.debian.org/debian}
size=${TETHER_VM_SIZE:-8G}

die() { echo "debian12-suite: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot and mkfs need it)"

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if [ ${#need[@]} -gt 0 ]; then
    echo "debian12-suite: installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if [ -n "${TETHER_VM_DIR:-}" ]; then
    work=$TETHER_VM_DIR
    mkdir -p "$work"
else
    work=$(mktemp -d /var/tmp/tether-vm.XXXXXX)
fi
root=$work/root
log=$work/console.log

unmount() {
    local m
    for m in dev/pts dev proc sys; do
        mountpoint -q "$root/$m" && umount -l "$root/$m"
    done
    return 0
}
cleanup() {
    unmount
    [ -n "${TETHER_VM_DIR:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# 1. The root file system: bookworm with systemd, logind (libpam-systemd), D-Bus and a kernel.
# A directory kept from an earlier run (TETHER_VM_DIR) is reused up to the repository copy.
if [ ! -e "$work/root.done" ]; then
    rm -rf "$root"
    echo "debian12-suite: debootstrap bookworm into $root"
    debootstrap --variant=minbase \
        --include=systemd,systemd-sysv,dbus,libpam-systemd,udev,linux-image-amd64,ca-certificates,iproute2,procps,git \
        bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
        die "debootstrap failed; see $work/debootstrap.log"

    # The packages contrib/setup.sh test wants, installed here so the guest needs no network.
    mount -t proc proc "$root/proc"
    mount -t sysfs sys "$root/sys"
    mount --bind /dev "$root/dev"
    mount --bind /dev/pts "$root/dev/pts"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    mkdir -p "$root/tmp/setup"
    cp "$repo/contrib/setup.sh" "$root/tmp/setup/"
    echo "debian12-suite: installing the build and test packages in the guest"
    chroot "$root" /tmp/setup/setup.sh test >"$work/setup.log" 2>&1 ||
        die "setup.sh test in the guest failed; see $work/setup.log"
    chroot "$root" apt-get clean
    rm -rf "$root/tmp/setup" "$root/usr/sbin/policy-rc.d"
    unmount

    echo tether-vm >"$root/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\ttether-vm\n::1\tlocalhost ip6-localhost\n' \
        >"$root/etc/hosts"
    echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' >"$root/etc/fstab"
    echo 'nameserver 10.0.2.3' >"$root/etc/resolv.conf" # qemu's user network
    printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' \
        >"$root/etc/systemd/network/80-dhcp.network"
    ln -sf /lib/systemd/system/systemd-networkd.service \
        "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"

    # root logs in on the serial console without a password: login(1) runs PAM, whose
    # pam_systemd has logind put the shell in a session scope.
    mkdir -p "$root/etc/systemd/system/serial-getty@ttyS0.service.d"
    cat >"$root/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 - $TERM
EOF
    touch "$work/root.done"
fi

# 2. The repository, and what root's login shell does on the serial console.
rm -rf "$root/root/tether"
mkdir -p "$root/root/tether"
rev=$(git -C "$repo" stash create)
git -C "$repo" -c tar.umask=0022 archive "${rev:-HEAD}" | tar -x -C "$root/root/tether"
echo "debian12-suite: the guest gets $(git -C "$repo" rev-parse --short HEAD)${rev:+ with uncommitted changes}"

rm -f "$root/root/extra.sh"
[ -z "${TETHER_VM_EXTRA:-}" ] || cp "$TETHER_VM_EXTRA" "$root/root/extra.sh"
{
    echo '[ "$(tty)" = /dev/ttyS0 ] || return 0'
    printf 'TESTS=%q\n' "${TETHER_VM_TESTS:-}"
} >"$root/root/.bash_profile"
cat >>"$root/root/.bash_profile" <<'PROFILE'
stty cols 200 2>/dev/null
export TERM=dumb SYSTEMD_PAGER= SYSTEMD_COLORS=0
echo "=== TETHER-VM: cgroup facts ==="
echo "cgroup of the login shell: $(cat /proc/self/cgroup)"
echo "/sys/fs/cgroup is: $(stat -fc %T /sys/fs/cgroup)"
echo "systemd: $(systemctl --version | head -1)"
echo "kernel: $(uname -r)"
loginctl list-sessions --no-legend
echo "=== TETHER-VM: suite ==="
suite() {
    cd /root/tether && contrib/setup.sh test &&
        cmake -S . -B build-gcc -DCMAKE_C_COMPILER=gcc -DTETHER_WERROR=ON -DTETHER_TESTS=ON &&
        cmake --build build-gcc -j2 &&
        (cd build-gcc && ctest -j2 --output-on-failure ${TESTS:+-R "$TESTS"})
}
suite 2>&1
rc=$?
echo "=== TETHER-VM: suite exit $rc ==="
if [ $rc -ne 0 ] && [ -d /root/tether/build-gcc ]; then
    # Once more, one at a time: what fails again does not fail for want of a free core.
    echo "=== TETHER-VM: the failed tests again, alone ==="
    (cd /root/tether/build-gcc && ctest --rerun-failed --output-on-failure) 2>&1
    echo "=== TETHER-VM: rerun exit $? ==="
fi

if [ -f /root/extra.sh ]; then
    echo "=== TETHER-VM: extra ==="
    (cd /root/tether && bash /root/extra.sh) 2>&1
fi

echo "=== TETHER-VM: a monitored tether run ==="
demo=$(mktemp -d)
cat >"$demo/policy.lua" <<'EOF'
function decide(input)
  return {allow = true, monitor = {interval_ms = 500, on_drift = "kill"}}
end
EOF
echo "{\"audit\": {\"path\": \"$demo/audit.jsonl\"}}" >"$demo/tether.json"
TETHER_CONFIG=$demo/tether.json TETHER_LOG=debug /root/tether/build-gcc/tether run \
    --policy "$demo/policy.lua" -- sh -c 'echo "workload cgroup: $(cat /proc/self/cgroup)"; sleep 6' \
    >"$demo/out" 2>&1 &
tpid=$!
sleep 3
echo "--- tether $tpid is in: $(cat /proc/$tpid/cgroup)"
echo "--- systemctl status 'tether-*.scope'"
systemctl status --no-pager 'tether-*.scope'
echo "--- systemctl show (scope properties)"
for u in $(systemctl list-units --plain --no-legend 'tether-*.scope' | awk '{print $1}'); do
    systemctl show -p Id -p ControlGroup -p Delegate -p CollectMode -p Slice "$u"
done
echo "--- tether status"
TETHER_CONFIG=$demo/tether.json /root/tether/build-gcc/tether status
wait $tpid
echo "--- tether exit $?; its output:"
cat "$demo/out"
echo "--- audit:"
cat "$demo/audit.jsonl"
sleep 1
echo "--- scopes left: $(systemctl list-units --plain --no-legend --all 'tether-*.scope' | wc -l)"
echo "=== TETHER-VM: done, suite exit $rc ==="
systemctl poweroff
PROFILE

# 3. An image of the directory, booted.
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)
initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -1)
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
rm -f "$work/disk.img"
echo "debian12-suite: building $work/disk.img ($size)"
mkfs.ext4 -q -F -L tether-vm -d "$root" "$work/disk.img" "$size"

# A PVM host (kvm_pvm, as in some nested sandboxes) runs only guest kernels built for PVM, and
# Debian's is not: under KVM it hangs before its first line.  There, and where there is no
# /dev/kvm at all, qemu emulates instead.
accel=${TETHER_VM_ACCEL:-}
if [ -z "$accel" ]; then
    accel=kvm
    if [ -d /sys/module/kvm_pvm ]; then
        accel=tcg
        echo "debian12-suite: a PVM host (kvm_pvm): emulating the guest (TCG), which is slow"
    elif [ ! -w /dev/kvm ]; then
        accel=tcg
        echo "debian12-suite: no /dev/kvm: emulating the guest (TCG), which is slow"
    fi
fi
if [ "$accel" = kvm ]; then
    accel_args=(-enable-kvm)
else
    accel_args=(-accel "tcg,thread=multi" -cpu max)
fi

limit=${TETHER_VM_TIMEOUT:-$([ "$accel" = kvm ] && echo 5400 || echo 14400)}
echo "debian12-suite: booting (at most ${limit}s); the console goes to $log"
set +e
timeout --foreground -k 10 "$limit" qemu-system-x86_64 "${accel_args[@]}" -m 4096 -smp 2 \
    -kernel "$work/vmlinuz" -initrd "$work/initrd.img" \
    -append 'root=/dev/vda rw console=ttyS0 systemd.unified_cgroup_hierarchy=1' \
    -drive file="$work/disk.img",format=raw,if=virtio -nic user -nographic </dev/null |
    tee "$log"
qrc=${PIPESTATUS[0]}
set -e
[ "$qrc" -eq 124 ] && echo "debian12-suite: the guest ran out of time (${limit}s)"

echo
echo "debian12-suite: ctest in the guest said:"
tr -d '\r' <"$log" | grep -E -m1 '^[0-9]+% tests passed' || echo "(no summary line)"
if [ -z "${TETHER_VM_DIR:-}" ]; then
    cp "$log" /var/tmp/tether-vm-console.log
    log=/var/tmp/tether-vm-console.log
fi
echo "debian12-suite: the console log is $log"
if tr -d '\r' <"$log" | grep -q '^=== TETHER-VM: suite exit 0 ==='; then
    echo "debian12-suite: passed"
    exit 0
fi
echo "debian12-suite: failed"
exit 1
