#!/bin/sh
# customize.sh ROOT — the mmdebstrap customize hook of the appliance base
# root. The appliance builder (image/appliance) runs it with the recipe
# directory in AEGISBPF_RECIPE, after every package is installed. The
# builder also sets INITRD=No so that installing the kernel does not build
# an initramfs that this hook would build again.
set -eu
root=$1
recipe=${AEGISBPF_RECIPE:?AEGISBPF_RECIPE is not set}

# Files baked into the base root, owned by root whoever owns the checkout.
tar -C "$recipe/files" --owner=0 --group=0 --numeric-owner -cf - . |
	tar -C "$root" --no-overwrite-dir -xpf -

# Root logs in without a password (serial autologin, see files/).
chroot "$root" passwd --delete root >/dev/null

# systemd-sysext merges /run/extensions at boot (DESIGN §6); Debian ships
# it disabled. Timers and gettys that only make noise in a test VM are
# masked.
chroot "$root" systemctl enable systemd-sysext.service
chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer \
	e2scrub_all.timer fstrim.timer getty@tty1.service

# No network in the appliance; the host's resolver file has no business here.
rm -f "$root/etc/resolv.conf"

# Persistent journal on /var; the builder moves /var to the second disk.
mkdir -p "$root/var/log/journal"

# The initramfs must carry erofs, virtio-blk and dm-verity
# (files/etc/initramfs-tools/modules). mmdebstrap empties /etc/machine-id
# after this hook; the builder writes the recipe's machine-id file instead.
for k in $(ls "$root/lib/modules"); do
	if [ -e "$root/boot/initrd.img-$k" ]; then op=-u; else op=-c; fi
	chroot "$root" update-initramfs "$op" -k "$k"
done
