"""kd_rl._io: atomic files with the umask's mode, strict JSON, and run folders that never lose a run."""

import json
import os

import pytest

from kd_rl import _io


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_files_take_the_umask_mode(tmp_path, umask_022):
    _io.write_json(tmp_path / "m.json", {"a": 1})
    _io.write_csv(tmp_path / "c.csv", ["x"], [[1]])
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "c.csv").stat().st_mode & 0o777 == 0o644
    os.umask(0o077)
    _io.write_text(tmp_path / "t.txt", "x")
    assert (tmp_path / "t.txt").stat().st_mode & 0o777 == 0o600


def test_json_is_strict_non_finite_numbers_become_null(tmp_path):
    _io.write_json(tmp_path / "m.json", {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf")}})

    def refuse(name):
        raise AssertionError(f"bare {name} in JSON")

    assert json.loads((tmp_path / "m.json").read_text(), parse_constant=refuse) == {
        "a": None,
        "b": [1.0, None],
        "c": {"d": None},
    }


def test_a_failed_write_names_the_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_text("old")
    with pytest.raises(OSError, match="out.bin"):
        with _io.atomic_path(target):
            raise OSError(28, "No space left on device")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_has_checkpoint_needs_a_real_one(tmp_path):
    assert not _io.has_checkpoint(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    assert not _io.has_checkpoint(tmp_path)  # TF-Agents makes the folder at once
    (tmp_path / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-10"\n')
    assert not _io.has_checkpoint(tmp_path)  # the state file names an index that is not there
    (tmp_path / "checkpoints" / "ckpt-10.index").write_bytes(b"x")
    assert _io.has_checkpoint(tmp_path)
    other = tmp_path / "distill"
    other.mkdir()
    (other / "checkpoint.npz").write_bytes(b"x")
    assert _io.has_checkpoint(other)


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_failed_run_removes_what_it_wrote(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with _io.run_folder(out) as run_dir:
            (run_dir / "curve.csv").write_text("x")
            (run_dir / "checkpoints").mkdir()
            raise RuntimeError("crash")
    assert _listing(tmp_path) == []
    out.mkdir()  # a folder that was there, empty, stays: only the files the run added go
    with pytest.raises(KeyboardInterrupt):
        with _io.run_folder(out) as run_dir:
            (run_dir / "tensorboard").mkdir()
            raise KeyboardInterrupt
    assert _listing(tmp_path) == ["run"]


def test_a_failed_run_with_a_checkpoint_keeps_it(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with _io.run_folder(out) as run_dir:
            (run_dir / "checkpoint.npz").write_bytes(b"x")
            raise RuntimeError("crash")
    assert _listing(tmp_path) == ["run", "run/checkpoint.npz"]


def test_overwrite_swaps_in_only_a_run_that_succeeds(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("old")
    with pytest.raises(ValueError, match="already holds another run"):
        with _io.run_folder(out):
            pass
    with pytest.raises(RuntimeError):
        with _io.run_folder(out, overwrite=True) as run_dir:
            assert run_dir != out and run_dir.parent == out.parent
            (run_dir / "metrics.json").write_text("new")
            raise RuntimeError("crash")
    assert _listing(tmp_path) == ["run", "run/metrics.json"]
    assert (out / "metrics.json").read_text() == "old"
    with _io.run_folder(out, overwrite=True) as run_dir:
        (run_dir / "metrics.json").write_text("new")
    assert _listing(tmp_path) == ["run", "run/metrics.json"]
    assert (out / "metrics.json").read_text() == "new"


def test_a_second_run_into_the_same_folder_is_refused_and_touches_nothing(tmp_path):
    out = tmp_path / "run"
    with _io.run_folder(out) as run_dir:
        (run_dir / "student.keras").write_text("first")
        with pytest.raises(ValueError, match=f"another kd-rl run \\(process {os.getpid()}\\) is writing"):
            with _io.run_folder(out, overwrite=True):
                pass
        assert _listing(tmp_path) == [".run.lock", "run", "run/student.keras"]
    assert _listing(tmp_path) == ["run", "run/student.keras"]


def test_a_kill_between_the_two_renames_of_an_overwrite_is_recovered(tmp_path):
    out = tmp_path / "run"
    old, new = tmp_path / ".run.old-999999", tmp_path / ".run.new-999999"
    old.mkdir()
    (old / "metrics.json").write_text("old")
    new.mkdir()
    with pytest.raises(ValueError, match="already holds another run"):
        with _io.run_folder(out):
            pass
    assert _listing(tmp_path) == ["run", "run/metrics.json"]
    assert (out / "metrics.json").read_text() == "old"


def test_a_run_folder_in_a_read_only_parent_is_locked_by_itself(tmp_path, monkeypatch):
    """Where no lock file can be made beside the folder, the folder itself is locked (root ignores modes: simulated)."""
    out = tmp_path / "run"
    out.mkdir()
    real_open = os.open

    def no_lock_file(path, *args, **kwargs):
        if str(path).endswith(".run.lock"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_lock_file)
    with _io.run_folder(out) as run_dir:
        (run_dir / "student.keras").write_text("x")
        with pytest.raises(ValueError, match="another kd-rl run is writing to"):
            with _io.run_folder(out, resume=True):
                pass
    assert _listing(tmp_path) == ["run", "run/student.keras"]
    with _io.run_folder(out, resume=True):  # released: the next run takes it
        pass
