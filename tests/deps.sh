#!/usr/bin/env bash
# Install the Debian packages AegisBPF needs to build, test and demo, only
# when missing. Idempotent; run as root (or with sudo available).
set -euo pipefail

PACKAGES=(
	clang-19 llvm-19 libbpf-dev bpftool   # BPF compilation (make generate)
	qemu-system-x86 busybox-static        # VM harness (make test-kernel)
	kmod xz-utils zstd cpio file          # kernel module deps, decompression
	erofs-utils cryptsetup-bin            # image layer (erofs, dm-verity)
	mmdebstrap debian-archive-keyring e2fsprogs  # appliance base root
	prometheus                            # promtool, and the server for make test-fleet
	docker-registry nginx-light           # fleet simulation (make test-fleet): OCI registry, static HTTP
	ca-certificates git make
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# The VM harness resolves kernel packages with apt-cache: make sure the
# package lists exist, and are not older than a day.
lists_fresh() {
	[ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -1)" ]
}
if [ ${#missing[@]} -gt 0 ] || ! lists_fresh; then
	echo "deps: apt-get update"
	$sudo apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "deps: all ${#PACKAGES[@]} packages present"
