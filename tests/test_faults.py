"""Fault injection: kd-rl, run as a new user would, under broken inputs, crashes, signals and full disks.

Every command runs in a fresh process (``python -m kd_rl.cli``) in the test's
own folder, with tests/ on PYTHONPATH so that ``--env fault_envs:NanReward-v0``
finds the misbehaving environments of `fault_envs`, and with no display.

The contract: bad input ends in exit status 2 and exactly one line on stderr
(starting "kd-rl", no traceback) that names the problem; a failed, interrupted
or refused run leaves nothing behind and changes nothing it did not own;
files follow the umask; checkpoints and models that are damaged, or written by
a newer kd_rl, are refused and kept as they are.
"""

import hashlib
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

TESTS_DIR = Path(__file__).resolve().parent
CLI = (sys.executable, "-m", "kd_rl.cli")
TIMEOUT = 300  # seconds for one command; a hang fails the test instead of stalling the suite
MEMORY_LIMIT = 4 * 2**30  # address space for commands asked for absurd sizes: a MemoryError, not a swamped machine

# A fast single-task distillation (about 10 s); a run with --checkpoint-every 500 can be resumed from step 500.
FAST = ("--steps", "1000", "--eval-episodes", "2", "--hidden", "16", "--no-progress")
CHECKPOINTED = ("--checkpoint-every", "500")
# A short teacher run whose last checkpoint, ckpt-3000, is the one kept.
TEACHER_STEPS = ("--steps", "3000", "--checkpoint-every", "1000", "--no-progress")
HUMAN = json.dumps({"render_mode": "human"})


def distill_args(out="run", teacher="CartPole-v1-dqn", env="CartPole-v1", *extra):
    return ("distill", "--teacher", teacher, "--env", env, "--out", out, *FAST, *extra)


def teacher_args(out="T", env="CartPole-v1", *extra):
    return ("train-teacher", "--env", env, "--algo", "dqn", "--out", out, *extra)


# ----------------------------------------------------------------- helpers


def cli_env(env_extra=None) -> dict:
    """os.environ with tests/ on PYTHONPATH, quiet TensorFlow and no display."""
    env = dict(os.environ)
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER", "TF_USE_LEGACY_KERAS"):
        env.pop(name, None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(TESTS_DIR)) if p)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.update(env_extra or {})
    return env


def _limits(umask=None, fsize_limit=None, memory_limit=None):
    if umask is None and fsize_limit is None and memory_limit is None:
        return None

    def preexec():
        if umask is not None:
            os.umask(umask)
        if fsize_limit is not None:  # writes past it fail with EFBIG (Python ignores SIGXFSZ): a full disk
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    return preexec


def run_cli(*args, cwd, env_extra=None, umask=None, fsize_limit=None, memory_limit=None, timeout=TIMEOUT):
    """``kd-rl ARGS`` in a fresh process in ``cwd``; the CompletedProcess (text stdout and stderr)."""
    return subprocess.run(
        [*CLI, *map(str, args)],
        cwd=cwd,
        env=cli_env(env_extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_limits(umask, fsize_limit, memory_limit),
    )


def start_cli(*args, cwd, env_extra=None) -> subprocess.Popen:
    """``kd-rl ARGS`` started in the background (stdout and stderr piped, text)."""
    return subprocess.Popen(
        [*CLI, *map(str, args)],
        cwd=cwd,
        env=cli_env(env_extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_python(code: str, cwd) -> subprocess.CompletedProcess:
    """``python -c CODE`` in a fresh process, with the CLI's environment."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=TIMEOUT
    )


def show(proc) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def assert_ok(proc) -> None:
    assert proc.returncode == 0, show(proc)


def assert_one_line_error(proc, *fragments, notes: bool = False) -> str:
    """Exit 2 and one stderr line, starting "kd-rl", without a traceback, holding each fragment (any case).

    With ``notes``, ``note:`` lines may come first: ``train-teacher`` says as it starts training that an
    environment has no tuned hyperparameters, before a failure in training can happen.
    """
    lines = proc.stderr.strip().splitlines()
    if notes:
        lines = [line for line in lines if not line.startswith("note: ")]
    err = "\n".join(lines)
    assert proc.returncode == 2, show(proc)
    assert len(err.splitlines()) == 1, show(proc)
    assert err.startswith("kd-rl"), show(proc)
    assert "Traceback" not in err, show(proc)
    for fragment in fragments:
        assert fragment.lower() in err.lower(), f"{fragment!r} not in: {err}"
    return err


def snapshot(folder) -> dict:
    """Relative path -> (sha256 of the bytes, or None for a folder; mode) of everything under ``folder``."""
    folder = Path(folder)
    out = {}
    for path in sorted(folder.rglob("*")):
        mode = stat.S_IMODE(path.lstat().st_mode)
        digest = None if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        out[str(path.relative_to(folder))] = (digest, mode)
    return out


def entries(folder) -> set:
    return set(os.listdir(folder))


def copy_run(src, dst) -> Path:
    shutil.copytree(src, dst)
    return Path(dst)


def wait_for(predicate, timeout: float, proc=None, what="") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the command ended before {what}:\n{show_popen(proc)}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def show_popen(proc) -> str:
    out, err = proc.communicate(timeout=60)
    return f"exit {proc.returncode}\n--- stdout\n{out}\n--- stderr\n{err}"


def stop(proc) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.communicate(timeout=60)


def damage(path, how: str) -> None:
    data = Path(path).read_bytes()
    if how == "truncate":
        data = data[: len(data) // 2]
    elif how == "flip":
        middle = len(data) // 2
        data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
    elif how == "empty":
        data = b""
    else:
        raise AssertionError(how)
    Path(path).write_bytes(data)


def no_dotfiles(folder) -> list:
    return [str(p) for p in Path(folder).rglob(".*")]


def strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"metrics.json holds a bare {name}, which is not JSON")

    return json.loads(text, parse_constant=refuse)


# ----------------------------------------------------------------- shared runs


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory) -> Path:
    """A finished single-task run (checkpoint.npz at step 500, student.keras, metrics.json). Do not modify."""
    base = tmp_path_factory.mktemp("complete")
    proc = run_cli(*distill_args("run", "CartPole-v1-dqn", "CartPole-v1", *CHECKPOINTED), cwd=base)
    assert_ok(proc)
    run = base / "run"
    assert {"student.keras", "metrics.json", "checkpoint.npz"} <= entries(run), entries(run)
    return run


@pytest.fixture(scope="module")
def resumable_run(complete_run, tmp_path_factory) -> Path:
    """The complete run without metrics.json and student.keras: --resume continues it from step 500. Copy it."""
    run = copy_run(complete_run, tmp_path_factory.mktemp("resumable") / "run")
    (run / "metrics.json").unlink()
    (run / "student.keras").unlink()
    return run


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory) -> Path:
    """A finished DQN teacher run with its TF-Agents checkpoint T/checkpoints/ckpt-3000. Do not modify."""
    base = tmp_path_factory.mktemp("teacher")
    assert_ok(run_cli(*teacher_args("T", "CartPole-v1", *TEACHER_STEPS), cwd=base))
    return base / "T"


def resume_args(out="run", teacher="CartPole-v1-dqn", *extra):
    return (*distill_args(out, teacher, "CartPole-v1", *CHECKPOINTED), "--resume", *extra)


# ----------------------------------------------------------------- 1. saved students load in fresh processes


def test_multitask_student_works_in_fresh_processes(tmp_path):
    proc = run_cli(
        "distill",
        *("--teacher", "CartPole-v1-dqn", "--env", "CartPole-v1", "--teacher", "Acrobot-v1-dqn", "--env", "Acrobot-v1"),
        *("--out", "M", "--steps", "1000", "--eval-episodes", "2", "--no-progress"),
        cwd=tmp_path,
    )
    assert_ok(proc)
    assert_ok(run_cli("evaluate", "M/student.keras", "--env", "Acrobot-v1", "--episodes", "2", cwd=tmp_path))
    proc = run_cli(
        "export", "M/student.keras", "--env", "CartPole-v1", "--format", "numpy", "--out", "x.npz", cwd=tmp_path
    )
    assert_ok(proc)
    assert (tmp_path / "x.npz").is_file()
    proc = run_python(
        "import kd_rl, keras; m = keras.saving.load_model('M/student.keras'); print(type(m).__name__)", tmp_path
    )
    assert_ok(proc)
    assert proc.stdout.strip().splitlines()[-1] == "MultiTaskStudent", show(proc)


def test_multitask_run_resumes_after_sigkill(tmp_path):
    args = ("distill", "--teacher", "CartPole-v1-dqn", "--env", "CartPole-v1", "--teacher", "Acrobot-v1-dqn")
    args += ("--env", "Acrobot-v1", "--out", "M", "--steps", "20000", "--checkpoint-every", "2000")
    args += ("--eval-episodes", "2", "--hidden", "16", "--no-progress")
    first = start_cli(*args, cwd=tmp_path)
    try:
        wait_for(lambda: (tmp_path / "M" / "checkpoint.npz").exists(), 240, first, "the first checkpoint")
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
    finally:
        stop(first)
    assert first.returncode == -signal.SIGKILL
    assert not (tmp_path / "M" / "metrics.json").exists()
    proc = run_cli(*args, "--resume", cwd=tmp_path)
    assert_ok(proc)
    metrics = strict_json((tmp_path / "M" / "metrics.json").read_text())
    assert metrics["resumed_from_env_steps"] >= 2000 and metrics["resumed_from_env_steps"] % 2000 == 0
    assert [t["labelled_states"] for t in metrics["tasks"]] == [20000, 20000]
    assert entries(tmp_path) == {"M"}


def test_single_task_student_loads_with_plain_keras(complete_run):
    proc = run_python(
        "import kd_rl, keras; m = keras.saving.load_model('student.keras'); print(type(m).__name__)", complete_run
    )
    assert_ok(proc)
    assert proc.stdout.strip().splitlines()[-1] == "StudentModel", show(proc)


# ----------------------------------------------------------------- 2. resume with another teacher


def test_resume_with_another_teacher_is_refused(resumable_run, tmp_path):
    run = copy_run(resumable_run, tmp_path / "run")
    before = snapshot(run)
    checkpoint = (run / "checkpoint.npz").read_bytes()
    assert_one_line_error(run_cli(*resume_args("run", "CartPole-v1-ppo"), cwd=tmp_path), "teacher")
    assert (run / "checkpoint.npz").read_bytes() == checkpoint
    assert snapshot(run) == before
    assert entries(tmp_path) == {"run"}


def test_resume_with_the_same_teacher_completes(resumable_run, tmp_path):
    run = copy_run(resumable_run, tmp_path / "run")
    assert_ok(run_cli(*resume_args("run", "CartPole-v1-dqn"), cwd=tmp_path))
    metrics = strict_json((run / "metrics.json").read_text())
    assert metrics["env_steps"] == 1000
    assert (run / "student.keras").is_file()
    assert entries(tmp_path) == {"run"}
    assert no_dotfiles(tmp_path) == []


# ----------------------------------------------------------------- 3. --overwrite never loses the old run


def test_overwrite_keeps_the_old_run_until_the_new_one_succeeds(complete_run, tmp_path):
    run = copy_run(complete_run, tmp_path / "run")
    before, parent = snapshot(run), entries(tmp_path)
    old_metrics = (run / "metrics.json").read_text()

    crashing = distill_args("run", "CartPole-v1-dqn", "fault_envs:CrashAt-v0")
    proc = run_cli(*crashing, "--overwrite", cwd=tmp_path)
    assert proc.returncode in (1, 2), show(proc)
    assert snapshot(run) == before, "a failed --overwrite changed the old run"
    assert entries(tmp_path) == parent, "a failed --overwrite left something beside the run"

    # Without --overwrite the folder is refused: it still holds a run.
    assert_one_line_error(run_cli(*crashing, cwd=tmp_path))
    assert snapshot(run) == before
    assert entries(tmp_path) == parent

    # A successful --overwrite replaces the whole run, leaving nothing else behind.
    assert_ok(
        run_cli(*distill_args("run", "CartPole-v1-dqn", "CartPole-v1", "--seed", "1"), "--overwrite", cwd=tmp_path)
    )
    assert entries(tmp_path) == parent
    assert (run / "metrics.json").read_text() != old_metrics
    assert strict_json((run / "metrics.json").read_text())["seed"] == 1
    assert {"student.keras", "metrics.json"} <= entries(run)
    assert "checkpoint.npz" not in entries(run), "the old run's checkpoint survived --overwrite"
    assert no_dotfiles(tmp_path) == []


# ----------------------------------------------------------------- 4. failed or interrupted teacher runs leave nothing


def test_train_teacher_on_nan_rewards_leaves_nothing(tmp_path):
    proc = run_cli(*teacher_args("T", "fault_envs:NanReward-v0", "--steps", "2000", "--no-progress"), cwd=tmp_path)
    assert_one_line_error(proc, "reward", "not finite", notes=True)
    assert not (tmp_path / "T").exists()
    assert entries(tmp_path) == set()


@pytest.fixture
def sigint_not_ignored():
    """Let a child see Ctrl-C even when the tests themselves run as a background job.

    A shell starts background jobs with SIGINT ignored, and a child inherits that (Python then
    installs no KeyboardInterrupt handler), so a ``make test &`` would ignore the SIGINT this test
    sends. With a handler in this process, a child starts with the default disposition.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_interrupted_train_teacher_leaves_nothing(tmp_path, sigint_not_ignored):
    proc = start_cli(*teacher_args("T", "CartPole-v1", "--steps", "200000", "--no-progress"), cwd=tmp_path)
    try:
        # The run has begun once anything (T, or a staging folder beside it) appears; then let it train a while.
        wait_for(lambda: entries(tmp_path), 120, proc, "the run folder to appear")
        time.sleep(8)
        assert proc.poll() is None, show_popen(proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        stop(proc)
    assert proc.returncode == 130, f"exit {proc.returncode}\n{out}\n{err}"
    assert not (tmp_path / "T").exists()
    assert entries(tmp_path) == set()
    # The same command again is not refused (nothing is left in the way).
    assert_ok(run_cli(*teacher_args("T", "CartPole-v1", "--steps", "1000", "--no-progress"), cwd=tmp_path))


# ----------------------------------------------------------------- 5. non-finite rewards, strict JSON


@pytest.mark.parametrize("env", ["fault_envs:NanReward-v0", "fault_envs:InfReward-v0"])
def test_distill_refuses_non_finite_rewards(env, tmp_path):
    proc = run_cli(*distill_args("run", "CartPole-v1-dqn", env), cwd=tmp_path)
    assert_one_line_error(proc, "reward", "finite")
    assert entries(tmp_path) == set()


@pytest.mark.parametrize("which", ["distill", "train-teacher"])
def test_metrics_json_is_strict_json(which, request):
    run = request.getfixturevalue("complete_run" if which == "distill" else "teacher_run")
    metrics = strict_json((run / "metrics.json").read_text())
    assert isinstance(metrics, dict) and metrics


# ----------------------------------------------------------------- 6. render_mode="human" without a display


@pytest.mark.parametrize(
    "args",
    [
        distill_args("run", "CartPole-v1-dqn", "CartPole-v1", "--env-kwargs", HUMAN),
        ("evaluate", "CartPole-v1-dqn", "--env", "CartPole-v1", "--episodes", "1", "--env-kwargs", HUMAN),
        teacher_args("T", "CartPole-v1", "--steps", "1000", "--no-progress", "--env-kwargs", HUMAN),
    ],
    ids=["distill", "evaluate", "train-teacher"],
)
def test_human_rendering_without_a_display_is_refused(args, tmp_path):
    proc = run_cli(*args, cwd=tmp_path, timeout=120)
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}\n{show(proc)}"
    assert_one_line_error(proc, "render_mode", "display")
    assert entries(tmp_path) == set()


# ----------------------------------------------------------------- 7. absurd sizes


@pytest.mark.parametrize(
    "args, fragments",
    [
        (distill_args("run", "CartPole-v1-dqn", "CartPole-v1", "--buffer-size", "1000000000000"), ("buffer", "bytes")),
        (distill_args("run", "CartPole-v1-dqn", "CartPole-v1", "--batch-size", "100000000"), ("batch", "bytes")),
        (("evaluate", "CartPole-v1-dqn", "--env", "CartPole-v1", "--episodes", "1000000000"), ("episodes",)),
    ],
    ids=["buffer-size", "batch-size", "episodes"],
)
def test_absurd_sizes_are_refused(args, fragments, tmp_path):
    proc = run_cli(*args, cwd=tmp_path, memory_limit=MEMORY_LIMIT, timeout=120)
    assert_one_line_error(proc, *fragments)
    assert entries(tmp_path) == set()


# ----------------------------------------------------------------- 8. damaged checkpoints and models

DAMAGES = ["truncate", "flip", "empty"]


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_distill_checkpoint_is_refused_and_kept(how, resumable_run, tmp_path):
    run = copy_run(resumable_run, tmp_path / "run")
    damage(run / "checkpoint.npz", how)
    before = snapshot(run)
    assert_one_line_error(run_cli(*resume_args(), cwd=tmp_path), "checkpoint.npz")
    assert snapshot(run) == before
    assert entries(tmp_path) == {"run"}


@pytest.mark.parametrize("part, how", [("index", how) for how in DAMAGES] + [("data", "truncate"), ("data", "flip")])
def test_damaged_teacher_checkpoint_is_refused_and_kept(part, how, teacher_run, tmp_path):
    run = copy_run(teacher_run, tmp_path / "T")
    for name in ("metrics.json", "teacher.keras"):  # an unfinished run, as an interrupted one leaves it
        (run / name).unlink(missing_ok=True)
    pattern = "ckpt-*.index" if part == "index" else "ckpt-*.data-*"
    (target,) = (run / "checkpoints").glob(pattern)
    damage(target, how)
    checkpoints = snapshot(run / "checkpoints")
    proc = run_cli(*teacher_args("T", "CartPole-v1", *TEACHER_STEPS, "--resume"), cwd=tmp_path)
    err = assert_one_line_error(proc, "checkpoint")
    assert target.name.split(".")[0] in err, f"{target.name!r} is not named in: {err}"  # ckpt-3000
    assert snapshot(run / "checkpoints") == checkpoints
    assert entries(tmp_path) == {"T"}


def test_truncated_student_is_refused_by_name(complete_run, tmp_path):
    data = (complete_run / "student.keras").read_bytes()
    (tmp_path / "broken.keras").write_bytes(data[: len(data) // 2])
    proc = run_cli("evaluate", "broken.keras", "--env", "CartPole-v1", "--episodes", "2", cwd=tmp_path)
    assert_one_line_error(proc, "broken.keras")


# ----------------------------------------------------------------- 9. file modes follow the umask


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask022", "umask077"])
def test_written_files_follow_the_umask(umask, tmp_path):
    assert_ok(run_cli(*distill_args("run", "CartPole-v1-dqn", "CartPole-v1", *CHECKPOINTED), cwd=tmp_path, umask=umask))
    for fmt, out in (("tflite", "student.tflite"), ("numpy", "student.npz")):
        assert_ok(run_cli("export", "run/student.keras", "--format", fmt, "--out", out, cwd=tmp_path, umask=umask))
    names = entries(tmp_path / "run")
    assert {"metrics.json", "curve.csv", "student.keras", "checkpoint.npz"} <= names, names
    assert entries(tmp_path) == {"run", "student.tflite", "student.npz"}
    modes = {"run": stat.S_IMODE((tmp_path / "run").stat().st_mode)}
    modes.update({f"run/{k}": mode for k, (_, mode) in snapshot(tmp_path / "run").items()})
    modes.update({name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("student.tflite", "student.npz")})
    wrong = {}
    for name, mode in modes.items():
        expected = (0o777 if (tmp_path / name).is_dir() else 0o666) & ~umask
        if mode != expected:
            wrong[name] = f"{mode:o} (expected {expected:o})"
    assert not wrong, wrong


# ----------------------------------------------------------------- 10. an environment that never ends


def test_evaluate_caps_an_endless_environment(tmp_path):
    proc = run_cli(
        *("evaluate", "CartPole-v1-dqn", "--env", "fault_envs:NeverEnds-v0", "--episodes", "2"),
        *("--max-episode-steps", "300"),
        cwd=tmp_path,
        timeout=120,
    )
    assert_ok(proc)
    assert "300" in proc.stdout + proc.stderr, show(proc)


def test_run_episodes_stops_an_endless_environment_at_max_steps():
    from kd_rl.evaluate import run_episodes

    stats = run_episodes(
        lambda obs: np.zeros(len(obs), np.int64), "fault_envs:NeverEnds-v0", episodes=2, seed=0, max_steps=25
    )
    assert stats.lengths == [25, 25]


def test_default_max_episode_steps_exists():
    from kd_rl import evaluate

    cap = getattr(evaluate, "DEFAULT_MAX_EPISODE_STEPS", None)
    assert isinstance(cap, int) and not isinstance(cap, bool) and cap > 0, cap


# ----------------------------------------------------------------- 11. smaller cases


def test_resume_with_fewer_steps_than_done_is_refused(resumable_run, tmp_path):
    run = copy_run(resumable_run, tmp_path / "run")
    before = snapshot(run)
    args = list(resume_args())
    args[args.index("--steps") + 1] = "200"
    assert_one_line_error(run_cli(*args, cwd=tmp_path), "steps")
    assert snapshot(run) == before


@pytest.mark.parametrize(
    "extra, unwritable",
    [((), "student.keras"), (CHECKPOINTED, "checkpoint.npz")],
    ids=["student", "checkpoint"],
)
def test_full_disk_names_the_file_and_leaves_no_half_written_file(extra, unwritable, tmp_path):
    # 12 kB: metrics, curve and TensorBoard files fit; the ~15 kB student and the ~20 kB checkpoint do not.
    proc = run_cli(*distill_args("run", "CartPole-v1-dqn", "CartPole-v1", *extra), cwd=tmp_path, fsize_limit=12_000)
    assert_one_line_error(proc, unwritable)
    assert no_dotfiles(tmp_path) == [], "temp files left behind"
    assert not (tmp_path / "run" / unwritable).exists(), f"a half-written {unwritable}"


def test_model_and_environment_that_do_not_fit(tmp_path):
    proc = run_cli("evaluate", "CartPole-v1-dqn", "--env", "Acrobot-v1", "--episodes", "2", cwd=tmp_path)
    assert_one_line_error(proc, "Acrobot-v1")


@pytest.mark.parametrize(
    "args",
    [
        ("evaluate", "CartPole-v1-dqn", "--env", "fault_envs:Noisy-v0", "--episodes", "2"),
        distill_args("run", "CartPole-v1-dqn", "fault_envs:Noisy-v0"),
    ],
    ids=["evaluate", "distill"],
)
def test_env_checker_warnings_do_not_add_lines_to_an_error(args, tmp_path):
    # Noisy-v0's observations make Gymnasium's env checker warn; its 3rd step's NaN observation is then refused.
    proc = run_cli(*args, "--env-kwargs", json.dumps({"nan_obs_at": 3}), cwd=tmp_path)
    assert_one_line_error(proc, "observation", "finite")
    assert entries(tmp_path) == set()


@pytest.mark.parametrize("seed", ["-1", "12345678901234567890123"])
def test_bad_seed_is_refused_before_tensorflow_loads(seed, tmp_path):
    argv = [*distill_args("run", "CartPole-v1-dqn", "CartPole-v1"), "--seed", seed]
    code = (
        "import sys\n"
        "from kd_rl.cli import main\n"
        f"rc = main({argv!r})\n"
        "sys.exit(99 if 'tensorflow' in sys.modules else rc)\n"
    )
    proc = run_python(code, tmp_path)
    assert proc.returncode != 99, f"TensorFlow was imported before the seed was refused\n{show(proc)}"
    assert_one_line_error(proc, "--seed")
    assert entries(tmp_path) == set()
    # And as the command itself.
    assert_one_line_error(run_cli(*argv, cwd=tmp_path), "--seed")
    assert entries(tmp_path) == set()


# ----------------------------------------------------------------- 12. newer files, concurrent runs


def test_student_written_by_a_newer_kd_rl_is_refused(complete_run, tmp_path):
    with zipfile.ZipFile(complete_run / "student.keras") as src:
        infos = src.infolist()
        members = {info.filename: src.read(info) for info in infos}
    metadata = json.loads(members["metadata.json"])
    metadata["kd_rl_version"] = "99.0.0"
    config = json.loads(members["config.json"])
    config["config"]["option_from_the_future"] = True
    members["metadata.json"], members["config.json"] = json.dumps(metadata).encode(), json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "future.keras", "w") as dst:
        for info in infos:
            dst.writestr(info, members[info.filename])
    proc = run_cli("evaluate", "future.keras", "--env", "CartPole-v1", "--episodes", "2", cwd=tmp_path)
    err = assert_one_line_error(proc)
    assert "newer" in err.lower() or "99.0.0" in err, err


def test_checkpoint_written_by_a_newer_kd_rl_is_refused(resumable_run, tmp_path):
    run = copy_run(resumable_run, tmp_path / "run")
    path = run / "checkpoint.npz"
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    progress = json.loads(str(arrays["progress"]))
    progress["format"] = 99
    arrays["progress"] = np.array(json.dumps(progress))
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    before = snapshot(run)
    assert_one_line_error(run_cli(*resume_args(), cwd=tmp_path), "newer")
    assert snapshot(run) == before


@pytest.mark.parametrize("second_flags", [(), ("--overwrite",)], ids=["plain", "overwrite"])
def test_second_run_into_the_same_folder_is_refused(second_flags, tmp_path):
    args = ("distill", "--teacher", "CartPole-v1-dqn", "--env", "CartPole-v1", "--out", "run")
    # Long enough (about 15 s on a 2-core CPU) for the second run to start and be refused while it runs.
    args += ("--steps", "100000", "--eval-episodes", "2", "--hidden", "16", "--no-progress")
    first = start_cli(*args, cwd=tmp_path)
    try:
        # The first run has begun once anything (run/, or a staging folder beside it) appears.
        wait_for(lambda: entries(tmp_path), 120, first, "the first run's folder to appear")
        # Even --overwrite may not touch a run that is being written.
        second = run_cli(*args, *second_flags, cwd=tmp_path)
        assert first.poll() is None, "the first run ended before the second was refused: the test proves nothing"
        assert_one_line_error(second, "another kd-rl run", "is writing")
        out, err = first.communicate(timeout=TIMEOUT)
    finally:
        stop(first)
    assert first.returncode == 0, f"exit {first.returncode}\n{out}\n{err}"
    names = entries(tmp_path / "run")
    assert {"metrics.json", "student.keras"} <= names, names
    assert strict_json((tmp_path / "run" / "metrics.json").read_text())["env_steps"] == 100000
    assert entries(tmp_path) == {"run"}
