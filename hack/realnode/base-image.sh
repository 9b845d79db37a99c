#!/usr/bin/env bash
# The real node's stand-in for the Dockerfile's base image (python:3.11-slim-bookworm):
# a Debian bookworm root filesystem made with `debootstrap --variant=minbase` plus
# python3 and python3-venv, from the Debian mirror only (no Docker Hub).
#
#   hack/realnode/base-image.sh            # prints the path of the cached rootfs tarball
#
# The tarball is cached in ~/.cache/exportjob-operator/realnode/, keyed by this
# script's digest; hack/realnode/push-image.py pushes it to the node's registry as a
# one-layer OCI image. debootstrap mounts /proc and /sys into the target: it runs
# in a private mount namespace, so those mounts never reach the host.
#
# This machine's outbound TLS goes through a proxy whose CA is in the host's trust
# store (pip is pointed at it by PIP_CERT); the image gets the host's CA bundle and
# an /etc/pip.conf naming it, so the Dockerfile's `pip install` works unchanged.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=python3,python3-venv
cache=${EXPORTJOB_REALNODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/exportjob-operator/realnode}
key=$( { cat "$here/base-image.sh"; echo "$suite $mirror $packages"; } | sha256sum | cut -c1-12)
out="$cache/base-$suite-$key.tar"
if [ -s "$out" ]; then echo "$out"; exit 0; fi
command -v debootstrap >/dev/null || { echo "debootstrap missing: run make system-deps" >&2; exit 1; }
mkdir -p "$cache"
work=$(mktemp -d "$cache/base.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$(date +%s)
echo "[base-image] debootstrap --variant=minbase $suite (+$packages) from $mirror" >&2
unshare --mount --propagation private -- \
  debootstrap --variant=minbase --include="$packages" "$suite" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
cp /etc/ssl/certs/ca-certificates.crt "$work/root/etc/ssl/certs/ca-certificates.crt" 2>/dev/null \
  || { mkdir -p "$work/root/etc/ssl/certs" && cp /etc/ssl/certs/ca-certificates.crt "$work/root/etc/ssl/certs/"; }
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$work/root/etc/pip.conf"
rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/"*.bin "$work/root/var/cache/apt/archives/"*.deb
tar --numeric-owner --xattrs -C "$work/root" -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "[base-image] built $(du -h "$out" | cut -f1) in $(( $(date +%s) - started ))s: $out" >&2
echo "$out"
