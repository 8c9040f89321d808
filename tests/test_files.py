"""jaxdiff.files: a file is either its old content or its complete new content, never half of one."""
import os

import numpy as np
import pytest

from jaxdiff.files import atomic_write, save_npz


def test_atomic_write_creates_parents_and_is_readable_by_others(tmp_path):
    path = tmp_path / "a" / "b" / "x.bin"
    assert atomic_write(path, lambda f: f.write(b"hello")) == str(path)
    assert path.read_bytes() == b"hello"
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert sorted(os.listdir(path.parent)) == ["x.bin"]  # no temporary file left


def test_a_failed_write_keeps_the_old_content_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"old")

    def boom(f):
        f.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(path, boom)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["x.bin"]


def test_save_npz_skips_none_and_needs_no_pickle(tmp_path):
    path = tmp_path / "out.npz"
    save_npz(path, a=np.arange(3), b=None, c=[[1.5, 2.5]])
    with np.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == ["a", "c"]
        np.testing.assert_array_equal(f["a"], [0, 1, 2])
        np.testing.assert_array_equal(f["c"], [[1.5, 2.5]])
