"""Bounded storage for the local registry: distribution's garbage collector, run safely.

Deleting a manifest (``OciRegistry.delete_manifest``) only unlinks it; its
layers stay on disk until ``docker-registry garbage-collect`` sweeps the blobs
no manifest references. The collector must not run while something writes
(a layer uploaded but not yet referenced by its manifest would be swept), so
``collect_garbage``:

1. takes ``run/gc.lock`` exclusively: mldeploy's own pushes hold it shared
   (``writing``), so it waits for them, and they wait for it;
2. creates ``run/readonly``: nginx then answers every write (push, delete)
   from anyone else with 503 and ``Retry-After`` (reads keep working);
3. waits until no upload session has been written to for ``quiet_seconds``;
4. runs ``docker-registry garbage-collect <config.yml>`` (``--delete-untagged``
   only when asked: see below), logging to ``logs/registry-gc.log``;
5. removes the flag and releases the lock, whatever happened.

Untagged manifests are kept by default: mldeploy deletes the manifests it
replaces itself, while a manifest only referenced by digest (a stack that
pinned it, another machine) is untagged and still in use; distribution 2.8's
``--delete-untagged`` also deletes the platform manifests of a multi-arch
index. ``make registry-gc GC_ARGS=--delete-untagged`` when you know.

``after_delete(address)`` is what the resources call after deleting manifests:
a no-op for other registries or with ``MLDEPLOY_REGISTRY_GC=off``; it gives up
(saying so) instead of waiting more than ``lock_timeout`` for pushes in progress.
``python -m mldeploy.backends.registry_gc`` (``make registry-gc``) runs it by hand.

The registry runs without a blob descriptor cache (``config.yml.in``): a
cached descriptor would claim a swept blob still exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackendError
from ..settings import Settings


@dataclass(frozen=True)
class GcResult:
    """What one collection did: disk use of the storage before and after, blobs swept, seconds taken."""

    bytes_before: int
    bytes_after: int
    blobs_deleted: int
    seconds: float

    def describe(self) -> str:
        freed = self.bytes_before - self.bytes_after
        return (
            f"registry garbage collection: {self.blobs_deleted} blob(s) swept, {freed / 1e6:.1f} MB freed "
            f"({self.bytes_after / 1e6:.1f} MB in use) in {self.seconds:.1f}s"
        )


def disk_usage(path: Path) -> int:
    """Bytes allocated on disk under ``path`` (as ``du``)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def _run_dir(settings: Settings) -> Path:
    return settings.registry_dir / "run"


@contextlib.contextmanager
def writing(address: str) -> Iterator[None]:
    """Hold while pushing to ``address``: when it is the local registry, no garbage collection runs meanwhile."""
    settings = Settings.from_env()
    run = _run_dir(settings)
    if address != settings.registry or not run.is_dir():
        yield
        return
    with open(run / "gc.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield


def _newest_upload(data: Path) -> float:
    """The latest write time of any upload session in progress (0 when there is none)."""
    newest = 0.0
    repos = data / "docker" / "registry" / "v2" / "repositories"
    for uploads in repos.glob("**/_uploads"):
        for root, _dirs, files in os.walk(uploads):
            for name in files:
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    return newest


def collect_garbage(
    settings: Settings | None = None,
    delete_untagged: bool = False,
    lock_timeout: float = 300,
    quiet_seconds: float = 2.0,
) -> GcResult:
    """Sweep unreferenced blobs from the local registry's storage (see the module docstring)."""
    settings = settings or Settings.from_env()
    reg = settings.registry_dir
    config, run, data = reg / "config.yml", _run_dir(settings), reg / "data"
    if not config.exists() or not run.is_dir():
        raise BackendError(f"registry garbage collection: {config} or {run} is missing; run `make setup` first")
    binary = shutil.which("docker-registry")
    if binary is None:
        raise BackendError("registry garbage collection: docker-registry is not on PATH; run `make setup` first")
    started = time.monotonic()
    with open(run / "gc.lock", "a+") as lock:
        deadline = started + lock_timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BackendError(
                        f"registry garbage collection: pushes still in progress after {lock_timeout:.0f}s; not run"
                    ) from None
                time.sleep(0.2)
        flag = run / "readonly"
        flag.touch()
        try:
            # Writes that got past nginx before the flag: wait until upload sessions go quiet.
            while time.time() - _newest_upload(data) < quiet_seconds and time.monotonic() < deadline:
                time.sleep(0.2)
            before = disk_usage(data)
            cmd = [binary, "garbage-collect", *(["--delete-untagged"] if delete_untagged else []), str(config)]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
            except (OSError, subprocess.SubprocessError) as exc:
                raise BackendError(f"registry garbage collection: {exc}") from exc
            settings.logs_dir.mkdir(parents=True, exist_ok=True)
            with open(settings.logs_dir / "registry-gc.log", "a", encoding="utf-8") as log:
                log.write(f"# {' '.join(cmd)} at {time.strftime('%Y-%m-%dT%H:%M:%S')} exited {proc.returncode}\n")
                log.write(proc.stdout + proc.stderr)
            if proc.returncode != 0:
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
                raise BackendError(f"registry garbage collection failed (see {settings.logs_dir / 'registry-gc.log'}):\n{tail}")
            after = disk_usage(data)
        finally:
            flag.unlink(missing_ok=True)
    swept = len(re.findall(r"^blob eligible for deletion", proc.stdout + proc.stderr, re.M))
    return GcResult(before, after, swept, time.monotonic() - started)


def after_delete(address: str, lock_timeout: float = 60) -> str | None:
    """Collect garbage after manifests were deleted from ``address``; a line for progress output, or None.

    Never raises: the delete itself already succeeded, and the next collection frees the space.
    """
    settings = Settings.from_env()
    if address != settings.registry or os.environ.get("MLDEPLOY_REGISTRY_GC", "").lower() in ("off", "0", "false", "no"):
        return None
    try:
        return collect_garbage(settings, lock_timeout=lock_timeout).describe()
    except BackendError as exc:
        return f"{exc} (`make registry-gc` frees the space later)"


def main(argv: list[str]) -> int:
    delete_untagged = "--delete-untagged" in argv
    try:
        result = collect_garbage(delete_untagged=delete_untagged)
    except BackendError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(result.describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))


__all__ = ["GcResult", "after_delete", "collect_garbage", "disk_usage", "writing"]
