"""Atomic writes: content, mode of a normal write, no temporary file left."""

import os
import stat

import pytest

from weaksup.utils.file_io import write_json_atomic
from weaksup.utils.file_io import write_atomic


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_write_has_normal_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        with open(tmp_path / "normal.json", "w") as f:
            f.write("{}")
        write_json_atomic({"a": 1}, str(tmp_path / "atomic.json"))
        write_atomic(b"x", str(tmp_path / "sub" / "atomic.bin"))
    finally:
        os.umask(old)
    assert _mode(tmp_path / "atomic.json") == _mode(tmp_path / "normal.json") == 0o666 & ~umask
    assert _mode(tmp_path / "sub" / "atomic.bin") == 0o666 & ~umask
    assert (tmp_path / "atomic.json").read_text() == '{"a":1}'
    assert sorted(os.listdir(tmp_path)) == ["atomic.json", "normal.json", "sub"]


def test_atomic_overwrite_keeps_mode(tmp_path):
    path = tmp_path / "shared.json"
    path.write_text("old")
    os.chmod(path, 0o640)
    write_atomic(b"new", str(path))
    assert path.read_text() == "new" and _mode(path) == 0o640
