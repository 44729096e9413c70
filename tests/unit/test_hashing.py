"""Content digests: stable across machines and listing order, cached per file so an unchanged file is never re-read."""

from __future__ import annotations

import builtins
import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from mldeploy import hashing
from mldeploy.errors import ValidationError
from mldeploy.hashing import file_digest, tree_digest


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("MLDEPLOY_HOME", str(h))
    return h


def write(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


FILES = {"model.pkl": b"weights" * 100, "conf/params.json": b'{"a": 1}', "README": b"hi"}


def test_scheme_is_the_documented_one(tmp_path: Path) -> None:
    root = write(tmp_path / "m", FILES)
    # The registered folder keeps its own name, as Azure ML keeps it: m/model.pkl, m/conf/params.json, ...
    lines = "".join(f"m/{rel}\0{hashlib.sha256(FILES[rel]).hexdigest()}\n" for rel in sorted(FILES))
    expected = "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
    assert tree_digest(root) == (expected, sum(len(v) for v in FILES.values()))
    assert file_digest(root / "model.pkl") == hashlib.sha256(FILES["model.pkl"]).hexdigest()


def test_same_content_in_two_places_and_any_creation_order_gives_one_digest(tmp_path: Path) -> None:
    a = write(tmp_path / "here" / "model", FILES)
    b = write(tmp_path / "elsewhere" / "deeper" / "model", dict(reversed(list(FILES.items()))))
    # Different mtimes, too: only content and relative names count.
    for p in b.rglob("*"):
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    assert tree_digest(a) == tree_digest(b)


def test_renaming_the_folder_changes_the_digest_since_a_deployment_sees_the_name(tmp_path: Path) -> None:
    a = write(tmp_path / "a" / "model", FILES)
    b = write(tmp_path / "b" / "other-name", FILES)
    assert tree_digest(a)[0] != tree_digest(b)[0]
    assert tree_digest(a, keep_name=False) == tree_digest(b, keep_name=False)  # a source directory: contents only


def test_identical_files_inside_one_tree_each_count_under_their_own_name(tmp_path: Path) -> None:
    one = write(tmp_path / "one", {"a/w.bin": b"same"})
    two = write(tmp_path / "two", {"a/w.bin": b"same", "b/w.bin": b"same"})
    moved = write(tmp_path / "moved", {"b/w.bin": b"same"})
    digests = {tree_digest(one)[0], tree_digest(two)[0], tree_digest(moved)[0]}
    assert len(digests) == 3
    assert tree_digest(two)[1] == 8


def test_swapping_contents_between_names_changes_the_digest(tmp_path: Path) -> None:
    x = write(tmp_path / "x", {"a": b"1", "b": b"2"})
    y = write(tmp_path / "y", {"a": b"2", "b": b"1"})
    assert tree_digest(x)[0] != tree_digest(y)[0]


def test_a_file_is_one_entry_under_its_name_and_a_folder_adds_its_own_name(tmp_path: Path) -> None:
    f = write(tmp_path / "f", {"model.onnx": b"onnx"}) / "model.onnx"
    d = write(tmp_path / "d", {"model.onnx": b"onnx"})
    h = hashlib.sha256(b"onnx").hexdigest()
    assert tree_digest(f) == ("sha256:" + hashlib.sha256(f"model.onnx\0{h}\n".encode()).hexdigest(), 4)
    assert tree_digest(d) == ("sha256:" + hashlib.sha256(f"d/model.onnx\0{h}\n".encode()).hexdigest(), 4)
    assert tree_digest(d, keep_name=False) == tree_digest(f)


def test_editing_a_file_changes_the_digest_even_at_the_same_size(tmp_path: Path) -> None:
    root = write(tmp_path / "m", {"w": b"aaaa"})
    before = tree_digest(root)[0]
    st = (root / "w").stat()
    (root / "w").write_bytes(b"bbbb")
    os.utime(root / "w", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert tree_digest(root)[0] != before


def test_missing_and_empty_paths_are_validation_errors_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as missing:
        tree_digest(tmp_path / "nope")
    assert missing.value.field == "path" and "does not exist" in missing.value.message
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ValidationError) as empty:
        tree_digest(tmp_path / "empty", field="model_path")
    assert empty.value.field == "model_path" and "no files" in empty.value.message


def test_unchanged_200mb_file_is_not_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(200 * 1024 * 1024)  # sparse: quick to make, but 200 MB to read
        f.seek(100 * 1024 * 1024)
        f.write(b"x")

    reads: list[int] = []
    real_open = builtins.open

    class Counting:
        def __init__(self, fobj):  # type: ignore[no-untyped-def]
            self.f = fobj

        def read(self, n: int = -1) -> bytes:
            data = self.f.read(n)
            reads.append(len(data))
            return data

        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *exc):  # type: ignore[no-untyped-def]
            self.f.close()

    def spy_open(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        fobj = real_open(file, mode, *args, **kwargs)
        if os.fspath(file) == str(big.resolve()):
            return Counting(fobj)
        return fobj

    monkeypatch.setattr(builtins, "open", spy_open)

    first = tree_digest(big)
    assert sum(reads) == big.stat().st_size == 200 * 1024 * 1024
    assert first[1] == big.stat().st_size
    reads.clear()

    assert tree_digest(big) == first
    assert len(file_digest(big)) == 64  # the same cache serves file_digest
    assert reads == [], "an unchanged file was read again"
    assert (home / "cache" / "digests.sqlite").exists()

    # A new mtime means a new read (and the same digest, since the content is the same).
    st = big.stat()
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000))
    assert tree_digest(big) == first
    assert sum(reads) == big.stat().st_size


def test_a_broken_cache_falls_back_to_hashing(tmp_path: Path, home: Path) -> None:
    (home / "cache").mkdir(parents=True)
    (home / "cache" / "digests.sqlite").write_bytes(b"this is not a sqlite database" * 100)
    root = write(tmp_path / "m", {"w": b"data"})
    assert tree_digest(root)[0].startswith("sha256:")
    assert file_digest(root / "w") == hashlib.sha256(b"data").hexdigest()


def _digest_in_child(args: tuple[str, str]) -> str:
    home, path = args
    os.environ["MLDEPLOY_HOME"] = home
    return hashing.tree_digest(Path(path))[0]


def test_two_processes_share_the_cache(tmp_path: Path, home: Path) -> None:
    roots = [write(tmp_path / f"m{i}", {f"f{j}": f"{i}-{j}".encode() for j in range(30)}) for i in range(4)]
    expected = [tree_digest(r)[0] for r in roots]
    (home / "cache" / "digests.sqlite").unlink()
    with ProcessPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(_digest_in_child, [(str(home), str(r)) for r in roots * 3]))
    assert got == expected * 3
