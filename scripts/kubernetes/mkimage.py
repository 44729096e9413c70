#!/usr/bin/env python3
"""Make a one-layer image tar in ``docker save`` format from a root filesystem directory, without
Docker: the pause image of mldeploy's embedded cluster (``ctr images import`` loads it).

usage: mkimage.py ROOTFS NAME:TAG OUT.tar --entrypoint '["/pause"]'
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import tarfile
import tempfile


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("rootfs")
    ap.add_argument("tag")
    ap.add_argument("out")
    ap.add_argument("--entrypoint", required=True, help='a JSON list, e.g. ["/pause"]')
    a = ap.parse_args()
    with tempfile.TemporaryFile() as layer:
        with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:

            def owned_by_root(ti: tarfile.TarInfo) -> tarfile.TarInfo:
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = ""
                ti.mtime = 0
                return ti

            for name in sorted(os.listdir(a.rootfs)):
                t.add(os.path.join(a.rootfs, name), arcname=name, filter=owned_by_root)
        size = layer.tell()
        layer.seek(0)
        diff_id = hashlib.file_digest(layer, "sha256").hexdigest()  # type: ignore[arg-type]
        layer.seek(0)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Entrypoint": json.loads(a.entrypoint), "WorkingDir": "/"},
                "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id]},
            },
            sort_keys=True,
        ).encode()
        config_id = hashlib.sha256(config).hexdigest()
        manifest = json.dumps([{"Config": config_id + ".json", "RepoTags": [a.tag], "Layers": [diff_id + "/layer.tar"]}]).encode()
        with tarfile.open(a.out, "w") as out:

            def add(name: str, data: bytes | None, fileobj: object = None, n: int = 0) -> None:
                ti = tarfile.TarInfo(name)
                ti.size = len(data) if data is not None else n
                out.addfile(ti, io.BytesIO(data) if data is not None else fileobj)  # type: ignore[arg-type]

            add(config_id + ".json", config)
            add(diff_id + "/layer.tar", None, layer, size)
            add("manifest.json", manifest)
    print(f"{a.out}: {a.tag} (layer sha256:{diff_id[:12]}, {size} bytes)")


if __name__ == "__main__":
    main()
