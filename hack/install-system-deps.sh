#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use, when missing:
# a PostgreSQL server (tests start their own private instance), poppler
# (pdftotext/pdfinfo read our PDFs back in tests), qpdf (`qpdf --check` of our
# PDFs), the fonts the PDF writer embeds (fonts-dejavu-core, fonts-noto-cjk;
# the image installs the same: see the Dockerfile's runtime stage), and what
# the real node needs.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
[ -x /usr/bin/time ] || need+=(time)
# The real node (hack/realnode.sh): runc's seccomp support (cgo), the Debian base
# image (debootstrap) and the host <-> node relays (socat).
[ -f /usr/include/seccomp.h ] || need+=(libseccomp-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v socat >/dev/null 2>&1 || need+=(socat)
command -v qpdf >/dev/null 2>&1 || need+=(qpdf)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || need+=(fonts-noto-cjk)
if [ ${#need[@]} -gt 0 ]; then
  echo "[system-deps] installing: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
  # The tests run their own PostgreSQL; the packaged default cluster is not needed.
  command -v pg_ctlcluster >/dev/null 2>&1 && pg_lsclusters -h 2>/dev/null | awk '{print $1, $2}' | while read -r v c; do pg_ctlcluster "$v" "$c" stop || true; done
fi
echo "[system-deps] ok" >&2
