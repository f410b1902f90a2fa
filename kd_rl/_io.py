"""Crash-safe files and run folders.

Every file is written to a temp file beside it, then renamed (`atomic_path`),
with the mode the umask gives a new file. A run folder (`run_folder`) is locked
while a run writes it, replaced only when the new run succeeds
(``overwrite``), and removed when a run it made fails before its first
checkpoint.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from kd_rl import __version__
from kd_rl.errors import KdRlError, ResumeRefused

#: OS errors that mean the disk (or the process's file-size limit) is full.
_FULL_DISK = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def error_summary(err: BaseException) -> str:
    """``Type: message``: its first line, without TensorFlow's ``{{function_node ...}}`` prefix, <= 300 characters."""
    text = str(err).split("}}")[-1].strip() if "{{" in str(err) else str(err)
    return f"{type(err).__name__}: {text}".splitlines()[0][:300]


def damaged_checkpoint(path, err: BaseException, hint: str = "") -> KdRlError:
    """The one-line error for a checkpoint that cannot be read; the file itself is left as it is."""
    return KdRlError(
        f"checkpoint {str(path)!r} is damaged and cannot be read ({error_summary(err)}); it was left as it is{hint}"
    )


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows: results name the machine."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets under the current umask (0o644 under umask 022)."""
    return 0o666 & ~_umask()


def _name_the_file(err: OSError, path: Path) -> OSError:
    """``err`` with ``path`` named, and a full disk said in words."""
    if err.errno in _FULL_DISK:
        return OSError(err.errno, f"disk full (or file size limit reached) while writing {str(path)!r}")
    if err.filename is None:
        return OSError(err.errno, f"{err.strerror or err} while writing {str(path)!r}")
    return err


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temp path beside ``path``; on success rename it onto ``path``.

    The temp file keeps ``path``'s suffix (Keras insists on ``.keras``) and,
    once written, gets the mode the umask gives a new file (``mkstemp`` makes
    it 0600). On an exception the temp file is removed and ``path`` is left
    untouched; an ``OSError`` (a full disk, say) names ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise _name_the_file(err, path) from None
    try:
        yield tmp
        if os.path.exists(tmp):
            os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError):
            raise _name_the_file(err, path) from None
        raise


@contextmanager
def atomic_dir(
    path: str | os.PathLike, replaceable: Iterable[str] | None = None, overwrite: bool = False
) -> Iterator[Path]:
    """Yield a hidden folder beside ``path``; on success it becomes ``path``, else it is removed.

    ``path`` may be missing or an empty folder. A folder holding only files
    named in ``replaceable`` (a previous export of the same kind), or anything
    with ``overwrite``, is replaced whole once the new one is complete; any
    other existing content is refused, so nothing of the user's is lost. An
    ``OSError`` (a full disk, say) names ``path``.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise KdRlError(f"{str(path)!r} is a file; the output is a folder")
    if path.is_dir() and not overwrite:
        others = sorted(p.name for p in path.iterdir() if p.name not in set(replaceable or ()))
        if others:
            listed = ", ".join(others[:3]) + (" ..." if len(others) > 3 else "")
            hint = "pass --overwrite to replace it" if replaceable is None else "choose a new or empty folder"
            raise KdRlError(f"folder {str(path)!r} already holds {listed}; {hint}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.new-", dir=path.parent))
        os.chmod(stage, 0o777 & ~_umask())
    except OSError as err:
        raise _name_the_file(err, path) from None
    try:
        yield stage
        for child in stage.iterdir():
            os.chmod(child, file_mode())
        if path.is_dir():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            try:
                os.replace(path, old / path.name)
                try:
                    os.replace(stage, path)
                except BaseException:
                    os.replace(old / path.name, path)  # the previous folder back in place
                    raise
            except BaseException:
                if not (old / path.name).exists():  # else it holds the previous folder: never delete that
                    shutil.rmtree(old, ignore_errors=True)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, path)
    except BaseException as err:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(err, OSError):
            raise _name_the_file(err, path) from None
        raise


@contextmanager
def native_output_silenced():
    """Silence stdout and stderr at the file-descriptor level, C++ libraries included.

    TensorFlow's TFLite converter and LiteRT's interpreter print progress lines
    ("Saved artifact at ...", MLIR pass notes, "Created TensorFlow Lite XNNPACK
    delegate") that tell a kd_rl user nothing. TensorFlow's Python logger
    ("INFO:tensorflow:Assets written to ...") is held at ERROR too: its handler
    writes to the stream it was made with, which a notebook's kernel does not
    route through file descriptors 1 and 2. Errors still arrive as Python
    exceptions.
    """
    import contextlib
    import logging
    import sys

    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(max(level, logging.ERROR))
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
        tf_logger.setLevel(level)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` to ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def finite_json(data):
    """``data`` with every NaN or infinite float replaced by None, so that it is strict JSON."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_json(v) for v in data]
    return data


def write_json(path: str | os.PathLike, data) -> None:
    """Atomically write ``data`` as indented, strict JSON: a non-finite number becomes ``null``.

    (Python's ``json`` would write a bare ``NaN``, which strict parsers reject.)
    """
    text = json.dumps(finite_json(data), indent=2, sort_keys=True, allow_nan=False)
    write_text(path, text + "\n")


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Atomically write a CSV file with a header row."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def save_model(model, path: str | os.PathLike) -> None:
    """Atomically save a Keras model to a ``.keras`` file that names the kd_rl version that wrote it.

    The version goes into the archive's ``metadata.json`` (``"kd_rl_version"``),
    so that a file written by a newer kd_rl is refused with a message that says so.
    """
    with atomic_path(path, suffix=".keras") as tmp:
        os.remove(tmp)  # Keras refuses to overwrite silently in some versions.
        model.save(tmp)
        with zipfile.ZipFile(tmp) as archive:
            entries = [(info, archive.read(info.filename)) for info in archive.infolist()]
        with zipfile.ZipFile(tmp, "w") as archive:
            for info, data in entries:
                if info.filename == "metadata.json":
                    data = json.dumps({**json.loads(data), "kd_rl_version": __version__}).encode()
                archive.writestr(info, data)


def due(every: int | None, before: int, after: int) -> bool:
    """Whether a multiple of ``every`` lies in ``(before, after]``: an evaluation or checkpoint is due.

    ``every`` None or 0 means never. Every loop of kd_rl (distillation, teacher
    training) decides with this when to evaluate and when to checkpoint.
    """
    return bool(every) and after // every > before // every


def has_checkpoint(path: str | os.PathLike) -> bool:
    """Whether the run folder ``path`` holds a checkpoint a run can resume from.

    A distillation run's ``checkpoint.npz``, or a teacher run's TensorFlow
    checkpoint: ``checkpoints/checkpoint`` (the state file TensorFlow writes
    last) naming an index file that exists. An empty ``checkpoints/`` folder
    (TF-Agents makes it at once) is not one.
    """
    path = Path(path)
    if (path / "checkpoint.npz").is_file():
        return True
    state = path / "checkpoints" / "checkpoint"
    try:
        text = state.read_text()
    except (OSError, UnicodeDecodeError):
        return False
    for line in text.splitlines():
        if line.startswith("model_checkpoint_path:"):
            name = line.split(":", 1)[1].strip().strip('"')
            return (state.parent / f"{name}.index").is_file()
    return False


class _Lock:
    """An exclusive, non-blocking lock on the run folder ``path``: ``.NAME.lock`` beside it.

    The lock file holds the owner's process id; the kernel drops the lock when
    the process dies (even by SIGKILL), so a stale file never blocks a run.
    Where the folder's parent may not be written (a run folder made for you
    inside a read-only tree), the folder itself is locked instead.
    """

    def __init__(self, path: Path):
        import fcntl  # POSIX: the systems kd_rl runs on (Linux, macOS)

        self.path: Path | None = path.parent / f".{path.name}.lock"
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, file_mode())
            except PermissionError:
                if not path.is_dir():
                    raise
                self.path, fd = None, os.open(path, os.O_RDONLY)  # lock the folder itself
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = "" if self.path is None else os.read(fd, 32).decode(errors="replace").strip()
                os.close(fd)
                raise KdRlError(
                    f"another kd-rl run{f' (process {owner})' if owner else ''} is writing to {str(path)!r}; "
                    "wait for it to finish or choose another --out"
                ) from None
            if self.path is None:
                break
            # The file may have been unlinked by its last owner after we opened it: retry on the new one.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
                break
            os.close(fd)
        self.fd = fd

    def release(self) -> None:
        try:
            if self.path is not None:
                os.unlink(self.path)
        finally:
            os.close(self.fd)


def _staging_paths(path: Path, kind: str) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.{kind}-*"))


@contextmanager
def run_folder(
    out_dir: str | os.PathLike | None, resume: bool = False, overwrite: bool = False
) -> Iterator[Path | None]:
    """The folder a run writes into, locked, and never left half-written.

    * A folder holding files is used only with ``resume`` (the run continues
      in it) or ``overwrite``; otherwise ``ValueError``.
    * ``overwrite`` builds the new run in a hidden folder beside the old one
      and swaps it in only when the run succeeds: a run that fails leaves the
      old one as it was.
    * A run that fails before its first checkpoint (`has_checkpoint`) removes
      what it wrote: the folder if it made it, else the files it added.
    * ``.NAME.lock`` beside the folder keeps a second run out while one writes
      (`_Lock`).

    Yields:
        The folder to write into (the hidden one when overwriting), or None
        for ``out_dir=None`` (a run that writes nothing).

    Raises:
        ValueError: If ``out_dir`` is a file, holds another run (without a
            flag), both flags are set, or another run is writing to it.
    """
    if out_dir is None:
        yield None
        return
    path = Path(out_dir)
    if resume and overwrite:
        raise KdRlError("resume and overwrite cannot both be set")
    if path.exists() and not path.is_dir():
        raise KdRlError(f"out folder {str(path)!r} is a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _name_the_file(err, path.parent) from None
    lock = _Lock(path)
    try:
        _recover(path)
        before = set(path.iterdir()) if path.is_dir() else None
        if before and not (resume or overwrite):
            raise KdRlError(
                f"out folder {str(path)!r} already holds another run; "
                "pass --resume to continue it or --overwrite to replace it"
            )
        if before and overwrite:
            with _overwriting(path) as stage:
                yield stage
            return
        path.mkdir(exist_ok=True)
        try:
            yield path
        except BaseException:
            if not has_checkpoint(path):
                if before is None:
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    for entry in set(path.iterdir()) - before:
                        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()
            raise
    finally:
        lock.release()


@contextmanager
def _overwriting(path: Path) -> Iterator[Path]:
    """Yield a hidden folder beside ``path``; on success swap it in for ``path``, else remove it."""
    stage = path.parent / f".{path.name}.new-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    os.replace(path, old)
    os.replace(stage, path)
    shutil.rmtree(old, ignore_errors=True)


def _recover(path: Path) -> None:
    """Tidy what a killed run (SIGKILL) left beside ``path``; called with the lock held.

    A kill between `_overwriting`'s two renames leaves the old run as
    ``.NAME.old-PID`` and no ``path``: it is put back. Unfinished new runs and
    old runs already replaced are removed.
    """
    olds = _staging_paths(path, "old")
    if olds and not path.exists():
        os.replace(olds.pop(), path)
    for leftover in olds + _staging_paths(path, "new"):
        shutil.rmtree(leftover, ignore_errors=True)


# --------------------------------------------------------------------------
# A distillation run's checkpoint: one file, replaced atomically
# --------------------------------------------------------------------------

#: A distillation run's checkpoint, single- or multi-task: the student's weights,
#: the optimizer's state, every replay buffer and the run's progress, in one
#: file replaced atomically, so that they always belong together.
CHECKPOINT_FILE = "checkpoint.npz"

#: The layout of checkpoint.npz this kd_rl writes; a checkpoint of a higher one was written by a newer kd_rl.
CHECKPOINT_FORMAT = 1


def _buffer_prefixes(count: int) -> list[str]:
    # One buffer (a single-task run) keeps the key names kd_rl 0.2 wrote.
    return ["buffer_"] if count == 1 else [f"buffer{k}_" for k in range(count)]


def save_checkpoint(path: str | os.PathLike, student, optimizer, buffers: Sequence, progress: dict) -> None:
    """Atomically write a run's checkpoint: weights, optimizer state, ``buffers`` (their ``state()``) and
    ``progress`` (JSON: at least ``env_steps`` and ``config``), stamped with `CHECKPOINT_FORMAT`."""
    arrays = {f"student_{i}": np.asarray(w) for i, w in enumerate(student.get_weights())}
    arrays.update({f"optimizer_{i}": np.asarray(v) for i, v in enumerate(optimizer.variables)})
    for prefix, buffer in zip(_buffer_prefixes(len(buffers)), buffers):
        arrays.update({f"{prefix}{k}": v for k, v in buffer.state().items()})
    stamped = {"format": CHECKPOINT_FORMAT, "kd_rl_version": __version__, **progress}
    arrays["progress"] = np.array(json.dumps(finite_json(stamped), allow_nan=False))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(arrays, progress)`` of a checkpoint written by `save_checkpoint`; the file is only read.

    Raises:
        KdRlError: Naming the file, if it is damaged (truncated, emptied, a
            flipped byte); it is left as it is, for inspection.
        ResumeRefused: If a newer kd_rl wrote it.
    """
    name = str(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        progress = json.loads(str(arrays["progress"]))
        if not isinstance(progress, dict) or "config" not in progress or "env_steps" not in progress:
            raise ValueError("its progress record is incomplete")
    except Exception as err:  # a damaged file: zipfile, zlib, NumPy and json each raise their own types
        raise damaged_checkpoint(name, err) from None
    written = progress.get("format", 0)
    if not isinstance(written, int) or written > CHECKPOINT_FORMAT:
        raise ResumeRefused(
            f"checkpoint {name!r} was written by a newer kd_rl ({progress.get('kd_rl_version', 'unknown version')}, "
            f"checkpoint format {written}); this is kd_rl {__version__}: upgrade kd_rl to resume it"
        )
    return arrays, progress


def refuse_other_settings(
    name: str, saved: dict, now: dict, resumable=(), defaults: dict | None = None, prefix: str = "", hint: str = ""
) -> None:
    """Refuse to resume checkpoint ``name`` if a setting differs between it (``saved``) and the new run (``now``).

    The one comparison of distillation and teacher runs (`check_resumable`,
    `kd_rl.teachers.run.check_resumable`). Settings named in ``resumable``
    may differ; one the checkpoint lacks (an older kd_rl wrote it) takes its
    value in ``defaults``. ``prefix`` is left out of the names in the message
    (and of the names ``resumable`` lists); ``hint`` ends it.

    Raises:
        ResumeRefused: Naming each setting that differs, with both values.
    """
    defaults = defaults or {}
    differing = sorted(
        k for k in saved.keys() | now.keys()
        if k.removeprefix(prefix) not in resumable and saved.get(k, defaults.get(k)) != now.get(k)
    )  # fmt: skip
    if differing:
        detail = ", ".join(
            f"{k.removeprefix(prefix)}={saved.get(k, defaults.get(k))!r} (now {now.get(k)!r})" for k in differing
        )
        raise ResumeRefused(f"cannot resume {name!r} with different settings: {detail}{hint}")


def check_resumable(
    name: str, progress: dict, settings: dict, resumable: Sequence[str], defaults: dict, teachers: dict, steps: int
) -> None:
    """Refuse to resume a checkpoint written with other settings, another teacher, or past ``steps``.

    Args:
        name: The checkpoint, for messages.
        progress: Its progress record (`read_checkpoint`).
        settings: The new run's settings (its config as a dict).
        resumable: Settings that may change on resume (they do not change what is learned).
        defaults: Values of settings an older checkpoint lacks.
        teachers: ``{"teacher": names, "teacher_sha256": hashes}`` of the new run
            (`kd_rl.models.weights_sha256`; a list of each for several tasks).
        steps: The env steps the new run is to reach.

    Raises:
        ResumeRefused: Naming what differs.
    """

    refuse_other_settings(name, progress["config"], settings, resumable, defaults)
    saved_hash = progress.get("teacher_sha256")
    if saved_hash is not None and saved_hash != teachers["teacher_sha256"]:

        def short(hashes):
            return hashes[:12] if isinstance(hashes, str) else [h[:12] for h in hashes]

        raise ResumeRefused(
            f"cannot resume {name!r} with a different teacher: it was made with {progress.get('teacher')!r} "
            f"(weights sha256 {short(saved_hash)}), now {teachers['teacher']!r} "
            f"(sha256 {short(teachers['teacher_sha256'])})"
        )
    if steps < progress["env_steps"]:
        raise ResumeRefused(
            f"cannot resume {name!r} with steps={steps}: the run has already done {progress['env_steps']} "
            "env steps (give --steps of at least that many)"
        )


def restore_checkpoint(name: str, arrays: dict, student, optimizer, buffers: Sequence) -> None:
    """Put a checkpoint's weights, optimizer state and buffers (`read_checkpoint`'s ``arrays``) back.

    Raises:
        KdRlError: If the checkpoint does not match the student, optimizer or buffers.
    """
    try:
        weights = [arrays[f"student_{i}"] for i in range(len(student.get_weights()))]
        optimizer_state = [arrays[f"optimizer_{i}"] for i in range(len(optimizer.variables))]
        if f"student_{len(weights)}" in arrays or f"optimizer_{len(optimizer_state)}" in arrays:
            raise ValueError("it holds more weights than this student has")
        student.set_weights(weights)
        for variable, value in zip(optimizer.variables, optimizer_state):
            variable.assign(value)
        for prefix, buffer in zip(_buffer_prefixes(len(buffers)), buffers):
            buffer.load_state({k: arrays[f"{prefix}{k}"] for k in buffer.STATE_KEYS})
    except (KeyError, ValueError) as err:
        raise KdRlError(f"checkpoint {name!r} does not match this run: {err}") from None
