#!/usr/bin/env python3
"""Push a root filesystem tarball to a registry as a one-layer OCI image.

Used by hack/realnode.sh for the images no Dockerfile builds: the Debian base
(hack/realnode/base-image.sh, the Dockerfile's PYTHON_IMAGE on the real node) and
the pause image of the Pod sandboxes (the same layer, `sleep infinity`). Speaks
the registry's HTTP API (distribution spec) directly: no Docker, no crane.

    push-image.py --registry 127.0.0.1:5000 --layer base.tar --image debian-python:bookworm --cmd python3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"  # uncompressed: loopback only, no CPU spent on gzip
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _request(method: str, url: str, data=None, headers: dict[str, str] | None = None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    try:
        return opener.open(req, timeout=300)
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"{method} {url}: {exc.code} {exc.read()[:300]!r}") from None


def push_blob(base: str, repo: str, digest: str, body, size: int) -> None:
    if _exists(f"{base}/v2/{repo}/blobs/{digest}"):
        return
    resp = _request("POST", f"{base}/v2/{repo}/blobs/uploads/", data=b"")
    location = resp.headers["Location"]
    if location.startswith("/"):
        location = base + location
    sep = "&" if "?" in location else "?"
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    _request("PUT", f"{location}{sep}digest={digest}", data=body, headers=headers)


def _exists(url: str) -> bool:
    try:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            urllib.request.Request(url, method="HEAD"), timeout=30
        )
        return True
    except urllib.error.HTTPError:
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--registry", required=True, help="host:port (plain HTTP, loopback)")
    ap.add_argument("--layer", type=Path, required=True, help="root filesystem tarball (uncompressed)")
    ap.add_argument("--image", required=True, help="name:tag")
    ap.add_argument("--entrypoint", action="append", default=[])
    ap.add_argument("--cmd", action="append", default=[])
    args = ap.parse_args(argv)

    base = f"http://{args.registry}"
    repo, tag = args.image.rsplit(":", 1)
    layer_digest = _sha256_file(args.layer)  # uncompressed: digest == diff_id
    layer_size = args.layer.stat().st_size
    with args.layer.open("rb") as f:
        push_blob(base, repo, layer_digest, f, layer_size)

    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": [PATH_ENV], "Entrypoint": args.entrypoint or None, "Cmd": args.cmd or None},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": f"hack/realnode/push-image.py {args.layer.name}"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    push_blob(base, repo, config_digest, config_bytes, len(config_bytes))

    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": layer_size}],
    }
    body = json.dumps(manifest, sort_keys=True).encode()
    _request("PUT", f"{base}/v2/{repo}/manifests/{tag}", data=body, headers={"Content-Type": OCI_MANIFEST})
    print(f"[push-image] {args.registry}/{args.image} ({layer_size // (1 << 20)} MiB layer)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
