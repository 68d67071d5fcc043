#!/bin/busybox sh
# MLN's initramfs for QEMU guests (mln_core::qemu::GuestKernel): load the
# virtio, ext4 and power-button modules the Debian kernel has as modules,
# mount the root disk that root= names and hand over to its init, so that
# a root file system made for UML (the busybox template) boots unchanged.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# In dependency order (what modules.dep says), computed when this was built.
for m in @MODULES@; do
    insmod "/lib/modules/$m.ko" || echo "mln-initramfs: cannot load $m"
done
root=
fstype=ext4
mode=rw
init=/sbin/init
rootwait=10
for word in $(cat /proc/cmdline); do
    case "$word" in
        root=*) root="${word#root=}" ;;
        rootfstype=*) fstype="${word#rootfstype=}" ;;
        init=*) init="${word#init=}" ;;
        mln.rootwait=*)
            # Seconds to wait for the root disk: digits only, else the default.
            case "${word#mln.rootwait=}" in
                '' | *[!0-9]*) ;;
                *) rootwait="${word#mln.rootwait=}" ;;
            esac
            ;;
        ro) mode=ro ;;
        rw) mode=rw ;;
    esac
done
fail() {
    echo "mln-initramfs: $*"
    poweroff -f
}
[ -n "$root" ] || fail "no root= on the kernel command line"
i=0
while [ ! -b "$root" ] && [ $i -lt $((rootwait * 10)) ]; do
    sleep 0.1
    i=$((i + 1))
done
[ -b "$root" ] || fail "the root disk $root never appeared"
mkdir -p /newroot
mount -t "$fstype" -o "$mode" "$root" /newroot || fail "cannot mount $root ($fstype, $mode)"
if [ -d /newroot/dev ]; then
    mount --move /dev /newroot/dev
else
    umount /dev
fi
umount /sys
umount /proc
exec switch_root /newroot "$init"
