#!/bin/sh
# MLN busybox template: boot-time setup, run once by init (sysinit).
PATH=/sbin:/bin:/usr/sbin:/usr/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
grep -q ' /dev ' /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -o remount,rw / 2>/dev/null
ip link set lo up
# Network devices of UML's vector driver are vecN: give them their MLN
# names (ethN) now, and have the kernel call the same helper for any
# plugged in later.
for dev in /sys/class/net/vec*; do
    [ -e "$dev" ] && /etc/mln/hotplug net "${dev##*/}"
done
[ -w /proc/sys/kernel/hotplug ] && echo /etc/mln/hotplug > /proc/sys/kernel/hotplug
[ -f /etc/hostname ] && hostname -F /etc/hostname
# A QEMU guest's clean shutdown is the ACPI power button: acpid runs
# /etc/mln/powerbutton for it. UML guests have no input devices.
if ls /dev/input/event* >/dev/null 2>&1; then
    acpid -c /etc/mln -a /etc/mln/acpid.conf -p /run/acpid.pid -l /run/acpid.log
fi

# MLN's guest configuration is a tar archive on a disk: the kernel argument
# mln.config=DEVICE names it, else the second disk is tried.
cfg=
for word in $(cat /proc/cmdline); do
    case "$word" in mln.config=*) cfg="${word#mln.config=}" ;; esac
done
if [ -z "$cfg" ]; then
    for d in ubdb xvdb vdb; do
        if [ -b "/dev/$d" ]; then cfg=$d; break; fi
    done
fi
if [ -n "$cfg" ] && [ -b "/dev/$cfg" ]; then
    mkdir -p /run/mln
    if tar -xf "/dev/$cfg" -C /run/mln && [ -f /run/mln/apply ]; then
        echo "mln: applying the guest configuration from /dev/$cfg"
        sh /run/mln/apply
        [ -f /run/mln/startup ] && sh /run/mln/startup
    else
        echo "mln: /dev/$cfg holds no guest configuration"
    fi
fi
# `mln exec`'s agent on the second line (the second serial line, or a
# Xen guest's channel), before the marker: a guest that says it booted
# answers commands.
/etc/mln/agent &
echo "mln: boot finished"
