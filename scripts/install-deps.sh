#!/bin/sh
# Install what modelfs needs to build, test and benchmark, from Debian's packages.
# Run by `make` when pkg-config cannot find a library; safe to run again (installs only what is missing).
set -eu

# build: libraries and tools
pkgs="pkg-config gcc make libfuse3-dev fuse3 libzstd-dev zstd libxxhash-dev libjson-c-dev libcmocka-dev"
# tests and the demo: the model generator and the numpy reference, compressors to compare with, a FUSE
# mount helper, getfattr (attr), hexdump (bsdextrautils)
pkgs="$pkgs python3 python3-numpy attr util-linux bsdextrautils"
# benchmarks and fuzzing (clang's libFuzzer), man pages, plots
pkgs="$pkgs squashfuse squashfs-tools clang libclang-rt-dev help2man gnuplot-nox"

missing=""
# one dpkg-query for all (it still prints the installed ones when some are unknown)
# shellcheck disable=SC2086
installed=$(dpkg-query -W -f='${Package} ${Status}\n' $pkgs 2>/dev/null | awk '/ install ok installed$/ { print $1 }')
for p in $pkgs; do
    printf '%s\n' "$installed" | grep -qx "$p" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "install-deps: missing packages:$missing; run this script as root" >&2
        exit 1
    fi
else
    SUDO=
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2 || true
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2
