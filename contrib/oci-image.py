#!/usr/bin/env python3
"""Writes small OCI image layouts for contrib/demo.sh, as `skopeo copy ... oci:DIR:REF` does.

  oci-image.py layout ROOTFS DIR REF ENTRYPOINT...   one gzip layer of ROOTFS (root's, mtime 0)
  oci-image.py sign DIR REF KEY.pem REFERENCE        a cosign signature (ECDSA P-256 over the
                                                     simple-signing payload, made by openssl)

Only the standard library and the openssl command: what a demo on a fresh machine has."""
import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

REF = "org.opencontainers.image.ref.name"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"


def put(root, data):
    digest = hashlib.sha256(data).hexdigest()
    blobs = os.path.join(root, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def index(root):
    with open(os.path.join(root, "index.json")) as f:
        return json.load(f)


def write_index(root, idx):
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(idx, f)


def layout(rootfs, root, ref, entrypoint):
    def owned_by_root(ti):
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        ti.mtime = 0
        return ti

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name in sorted(os.listdir(rootfs)):
            t.add(os.path.join(rootfs, name), arcname=name, filter=owned_by_root)
    layer = gzip.compress(raw.getvalue(), mtime=0)
    os.makedirs(root, mode=0o755)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": entrypoint, "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()]},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": dict(mediaType=CONFIG, **put(root, config)),
        "layers": [dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip",
                        **put(root, layer))],
    }).encode()
    write_index(root, {"schemaVersion": 2, "manifests": [
        dict(mediaType=MANIFEST, annotations={REF: ref}, **put(root, manifest))]})


def sign(root, ref, key, reference):
    idx = index(root)
    digest = next(m["digest"] for m in idx["manifests"]
                  if m.get("annotations", {}).get(REF) == ref)
    payload = json.dumps({"critical": {"identity": {"docker-reference": reference},
                                       "image": {"docker-manifest-digest": digest},
                                       "type": "cosign container image signature"},
                          "optional": None}).encode()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=payload,
                         check=True, capture_output=True).stdout
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": dict(mediaType=CONFIG, **put(root, b"{}")),
        "layers": [dict(mediaType="application/vnd.dev.cosign.simplesigning.v1+json",
                        annotations={"dev.cosignproject.cosign/signature":
                                     base64.b64encode(sig).decode()},
                        **put(root, payload))],
    }).encode()
    idx["manifests"].append(dict(mediaType=MANIFEST,
                                 annotations={REF: "sha256-%s.sig" % digest[7:]},
                                 **put(root, manifest)))
    write_index(root, idx)


def main(argv):
    if len(argv) >= 5 and argv[1] == "layout":
        layout(argv[2], argv[3], argv[4], argv[5:])
    elif len(argv) == 6 and argv[1] == "sign":
        sign(*argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
