"""Crash-safe file writing: every file is written to a temp file, then renamed."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temp path beside ``path``; on success rename it onto ``path``.

    The temp file keeps ``path``'s suffix (Keras insists on ``.keras``). On an
    exception the temp file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@contextmanager
def native_output_silenced():
    """Silence stdout and stderr at the file-descriptor level, C++ libraries included.

    TensorFlow's TFLite converter and LiteRT's interpreter print progress lines
    ("Saved artifact at ...", MLIR pass notes, "Created TensorFlow Lite XNNPACK
    delegate") that tell a kd_rl user nothing. Errors still arrive as Python
    exceptions.
    """
    import contextlib
    import sys

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` to ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json(path: str | os.PathLike, data) -> None:
    """Atomically write ``data`` as indented JSON."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Atomically write a CSV file with a header row."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def save_model(model, path: str | os.PathLike) -> None:
    """Atomically save a Keras model to a ``.keras`` file."""
    with atomic_path(path, suffix=".keras") as tmp:
        os.remove(tmp)  # Keras refuses to overwrite silently in some versions.
        model.save(tmp)


def prepare_run_dir(out_dir: str | os.PathLike, resume: bool = False, overwrite: bool = False) -> Path:
    """Create (or reuse) a run folder, refusing to mix two runs in one.

    An existing non-empty folder is used only with ``resume`` (continue the
    run in it) or ``overwrite`` (delete it first).

    Raises:
        ValueError: If ``out_dir`` is a file, or holds files and neither flag is set.
    """
    import shutil

    path = Path(out_dir)
    if resume and overwrite:
        raise ValueError("resume and overwrite cannot both be set")
    if path.exists() and not path.is_dir():
        raise ValueError(f"out folder {str(path)!r} is a file")
    if path.is_dir() and any(path.iterdir()):
        if overwrite:
            shutil.rmtree(path)
        elif not resume:
            raise ValueError(
                f"out folder {str(path)!r} already holds another run; "
                "pass --resume to continue it or --overwrite to replace it"
            )
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def cleanup_on_failure(path: str | os.PathLike, existed: bool):
    """Remove the run folder ``path`` if the run fails and this run created it.

    A run that dies before it has written a checkpoint leaves nothing worth
    resuming; deleting the folder it made keeps ``--out`` free for the next
    try. A folder that existed before (``--resume``) is left alone.
    """
    import shutil

    try:
        yield
    except BaseException:
        path = Path(path)
        has_checkpoint = (path / "checkpoints").is_dir() or (path / "checkpoint.npz").is_file()
        if not existed and path.is_dir() and not has_checkpoint:
            shutil.rmtree(path, ignore_errors=True)
        raise
