#!/usr/bin/env bash
# Build (once) a minimal Debian bookworm arm64 userland that runs under qemu-user
# without Docker, binfmt_misc or chroot:
#
#   debootstrap --arch=arm64 --foreign --variant=minbase --include=$PACKAGES
#
# from the Debian mirror configured in this machine's apt sources, then every
# downloaded .deb is unpacked with tar (debootstrap's second stage would need to
# execute arm64 binaries inside a chroot, which needs binfmt_misc), and the few files
# the packages' maintainer scripts would write are made: /etc/passwd and /etc/group
# (base-passwd), /etc/ssl/certs/ca-certificates.crt (ca-certificates). pip, venv and
# `python` are there for tests/arm64/image.py, which builds Dockerfile.arm64 on this
# userland as its stand-in for python:3.11-slim-bookworm. Run the result as
#
#   QEMU_CPU=cortex-a72 qemu-aarch64-static -L ROOTFS ROOTFS/usr/bin/python3
#
# Usage: tests/arm64/build_rootfs.sh [CACHE_DIR]   (default: REPO/.cache/arm64)
# Prints the rootfs path on stdout; progress goes to stderr. Idempotent: a finished
# rootfs (marked by ROOTFS/.edge-rootfs-complete) is reused as it is.
# DEBIAN_MIRROR=http://... overrides the mirror read from the apt sources.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${1:-$REPO/.cache/arm64}"
SUITE=bookworm
ROOTFS="$CACHE/rootfs"
STAMP="$ROOTFS/.edge-rootfs-complete"
# What a python:3.11-slim-bookworm build needs besides python3: pip, venv (ensurepip), `python`.
PACKAGES=python3,python3-pip,python3-venv,python-is-python3,ca-certificates
STAMP_TEXT="debian $SUITE arm64 minbase+$PACKAGES v2"

log() { echo "build_rootfs: $*" >&2; }
die() { echo "build_rootfs: error: $*" >&2; exit 1; }

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_TEXT" && -f "$ROOTFS/proc/cpuinfo" &&
      -x "$ROOTFS/usr/bin/python3" ]]; then
    log "reusing $ROOTFS"
    echo "$ROOTFS"
    exit 0
fi

# --- tools ---------------------------------------------------------------------------
need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
[[ -x /usr/sbin/debootstrap ]] || command -v debootstrap >/dev/null || need+=(debootstrap)
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || need+=(debian-archive-keyring)
if ((${#need[@]})); then
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "need root (or sudo) to install: ${need[*]}"
        sudo=(sudo)
    fi
    log "installing ${need[*]} with apt-get"
    "${sudo[@]}" apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        "${need[@]}" >&2 || die "apt-get install ${need[*]} failed"
fi
DEBOOTSTRAP="$(command -v debootstrap || echo /usr/sbin/debootstrap)"

# --- mirror from the apt sources (one-line format and deb822 .sources) ----------------
# Prints the first URI of an enabled `deb` source that carries the suite itself
# (bookworm, not bookworm-security or bookworm-updates).
find_mirror() {
    local file
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$file" ]] || continue
        # deb [options] URI SUITE COMPONENTS...
        awk -v suite="$SUITE" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; exit }
            }' "$file"
    done
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$file" ]] || continue
        # deb822 stanzas are separated by blank lines; keys are case-insensitive.
        awk -v suite="$SUITE" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " suite " ") && uris != "") {
                    split(uris, u, " "); print u[1]; found = 1
                }
                types = ""; suites = ""; uris = ""; enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); if (found) exit; next }
            {
                key = tolower($1); sub(/:$/, "", key)
                value = $0; sub(/^[^:]*:[ \t]*/, "", value)
                if (key == "types") types = value
                else if (key == "suites") suites = value
                else if (key == "uris") uris = value
                else if (key == "enabled") enabled = tolower(value)
            }
            END { if (!found) flush() }' "$file"
    done
}
MIRROR="${DEBIAN_MIRROR:-$(find_mirror | head -n1)}"
[[ -n "$MIRROR" ]] || die "no 'deb ... $SUITE ...' source in /etc/apt/sources.list or \
/etc/apt/sources.list.d/*.sources; set DEBIAN_MIRROR to a Debian mirror URL"
log "mirror $MIRROR (from the apt sources)"

# --- first stage: download and extract the base system --------------------------------
mkdir -p "$CACHE"
WORK="$ROOTFS.tmp"
rm -rf "$WORK"
log "debootstrap --arch=arm64 --foreign --variant=minbase --include=$PACKAGES $SUITE"
if ! "$DEBOOTSTRAP" --arch=arm64 --foreign --variant=minbase --include="$PACKAGES" \
    "$SUITE" "$WORK" "$MIRROR" >"$CACHE/debootstrap.out" 2>&1; then
    tail -n 20 "$CACHE/debootstrap.out" >&2
    [[ -f "$WORK/debootstrap/debootstrap.log" ]] && tail -n 20 "$WORK/debootstrap/debootstrap.log" >&2
    die "debootstrap failed (full output: $CACHE/debootstrap.out)"
fi

# --- unpack every downloaded package (what the second stage would do) -----------------
# tar --keep-directory-symlink keeps the merged-/usr links (/lib -> usr/lib, /bin ->
# usr/bin); `dpkg -x` can replace them with real folders and break the loader path.
shopt -s nullglob
debs=("$WORK"/var/cache/apt/archives/*.deb)
((${#debs[@]})) || die "debootstrap downloaded no packages into $WORK/var/cache/apt/archives"
log "unpacking ${#debs[@]} packages"
for deb in "${debs[@]}"; do
    dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$WORK" ||
        die "cannot unpack $(basename "$deb")"
done
rm -f "${debs[@]}"
[[ -L "$WORK/lib" ]] || die "/lib is no longer a link to usr/lib after unpacking"

# --- what the maintainer scripts would have written -----------------------------------
# base-passwd's preinst: the system users and groups (groupadd/useradd need them).
cp "$WORK/usr/share/base-passwd/passwd.master" "$WORK/etc/passwd"
cp "$WORK/usr/share/base-passwd/group.master" "$WORK/etc/group"
# ca-certificates' postinst (update-ca-certificates): every Mozilla CA, in one bundle.
(cd "$WORK/usr/share/ca-certificates" && find . -name '*.crt' | sed 's|^\./||' | LC_ALL=C sort) \
    >"$WORK/etc/ca-certificates.conf"
mkdir -p "$WORK/etc/ssl/certs"
while read -r cert; do cat "$WORK/usr/share/ca-certificates/$cert"; done \
    <"$WORK/etc/ca-certificates.conf" >"$WORK/etc/ssl/certs/ca-certificates.crt"

# --- an ARM /proc/cpuinfo --------------------------------------------------------------
# qemu-user resolves paths under the -L prefix first. debootstrap leaves ROOTFS/proc as
# a link to the host's /proc, so the x86 cpuinfo would show through and ONNX Runtime's
# CPU detection (cpuinfo library) crashes on it; a real folder with an ARM file fixes it.
rm -rf "$WORK/proc"
mkdir "$WORK/proc"
for i in 0 1 2 3; do
    # Four Cortex-A72 cores, as on a Raspberry Pi 4.
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$i"
    printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n'
    printf 'CPU part\t: 0xd08\nCPU revision\t: 3\n\n'
done >"$WORK/proc/cpuinfo"

# --- does the emulated Python run? ----------------------------------------------------
[[ -x "$WORK/usr/bin/python3" ]] || die "no usr/bin/python3 in the unpacked rootfs"
if ! QEMU_CPU="${QEMU_CPU:-cortex-a72}" qemu-aarch64-static -L "$WORK" "$WORK/usr/bin/python3" \
    -c 'import platform, ssl, sys; assert platform.machine() == "aarch64"; print(sys.version.split()[0], platform.libc_ver()[1])' \
    >"$CACHE/python-check.out" 2>&1; then
    cat "$CACHE/python-check.out" >&2
    die "the arm64 python3 does not run under qemu-aarch64-static"
fi
log "python $(cut -d' ' -f1 "$CACHE/python-check.out"), glibc $(cut -d' ' -f2 "$CACHE/python-check.out") runs under qemu"

echo "$STAMP_TEXT" >"$WORK/.edge-rootfs-complete"
rm -rf "$ROOTFS"
mv "$WORK" "$ROOTFS"
echo "$ROOTFS"
