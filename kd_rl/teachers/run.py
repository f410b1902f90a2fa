"""What every teacher run records, whatever the algorithm.

`Run` holds a run's periodic evaluations (curve.csv), its best weights
(``keep_best``), its checkpoints (``--resume``), TensorBoard scalars, a
kickstarted run's λ and loss terms, and the progress bar, so the training
loops in `kd_rl.teachers.dqn`, `kd_rl.teachers.ppo` and `kd_rl.teachers.sac`
show only the algorithm.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tensorflow as tf
from tf_agents.utils import common
from tqdm import tqdm

from kd_rl import _io
from kd_rl.evaluate import CURVE_EVAL_SEED_OFFSET, run_episodes
from kd_rl.teachers.kickstart import CURVE_COLUMNS as KICKSTART_COLUMNS

__all__ = ["CURVE_COLUMNS", "RESUMABLE_HYPERPARAMETERS", "Run", "check_resumable"]

#: Columns of a teacher run's curve.csv: one row per periodic evaluation.
CURVE_COLUMNS = ("env_steps", "mean_return", "wall_seconds")

# Periodic evaluations use the seed ``seed + CURVE_EVAL_SEED_OFFSET`` (`kd_rl.evaluate`), not the
# final evaluation's ``seed``, so picking the best weights does not peek at the episodes that score
# the exported teacher.

#: Hyperparameters a resumed run may change: how often, and on how many episodes,
#: it is evaluated. ``n_timesteps`` may not: the exploration and learning-rate
#: schedules and the replay buffer's size follow it.
RESUMABLE_HYPERPARAMETERS = ("eval_every", "periodic_eval_episodes")

#: Hyperparameters added after runs could be checkpointed, with the value that does what a run
#: without them did: a checkpoint that lacks one resumes as long as the run keeps that value.
ADDED_HYPERPARAMETERS = {"conv_layers": [], "clip_reward": False, "log_std_init": 0.0}


class Run:
    """The bookkeeping of one training run.

    Args:
        out_dir: The run folder (already prepared).
        env_id: Gymnasium id, for evaluations.
        seed: The run's seed; also seeds ``rng``, the loop's NumPy generator.
        steps: Environment steps the run is to reach.
        params: Hyperparameters (``periodic_eval_episodes`` and ``keep_best`` are used).
        algo: ``"dqn"`` or ``"ppo"``, for the progress bar.
        eval_every: Environment steps between periodic evaluations.
        checkpoint_every: Environment steps between checkpoints; None: none.
        progress: Show a tqdm progress bar.
        kickstart: A kickstarted run's `kd_rl.teachers.kickstart.Kickstart`:
            its scalars join the training logs (TensorBoard ``train/kickstart_weight``,
            ``train/rl_loss``, ``train/kickstart_loss``) and curve.csv's columns.
        stop_return: End the run at the first periodic evaluation whose mean
            return reaches this (`reached` turns True); None: run every step.
        env_kwargs: Arguments for ``gymnasium.make``, for the loops' environments
            and the evaluations.
        settings: What the run learns with (JSON: environment, algorithm, seed,
            hyperparameters, kickstart). Checkpoints hold it, and a run refuses
            to resume a checkpoint written with other settings (`check_resumable`).
    """

    def __init__(
        self,
        out_dir: Path,
        env_id: str,
        seed: int,
        steps: int,
        params: dict,
        algo: str,
        eval_every: int,
        checkpoint_every: int | None,
        progress: bool,
        kickstart=None,
        stop_return: float | None = None,
        env_kwargs: dict | None = None,
        settings: dict | None = None,
    ):
        self.out_dir = out_dir
        self.settings = json.loads(json.dumps(settings or {}))  # as a checkpoint gives it back
        self.stop_return = stop_return
        self.env_kwargs = dict(env_kwargs or {})
        #: Whether a periodic evaluation reached ``stop_return``: the loops stop stepping.
        self.reached = False
        self.kickstart = kickstart
        #: curve.csv's columns: `CURVE_COLUMNS`, then a kickstarted run's λ and loss terms.
        self.curve_columns = CURVE_COLUMNS + (KICKSTART_COLUMNS if kickstart is not None else ())
        self.env_id = env_id
        self.seed = seed
        self.steps = steps
        self.params = params
        self.eval_every = eval_every
        self.checkpoint_every = checkpoint_every
        self.periodic_episodes = int(params["periodic_eval_episodes"])
        self.keep_best = bool(params["keep_best"])
        self.curve: list[tuple] = []  # rows of curve_columns
        self.best_score = -math.inf
        self.best_step = -1
        self.prior_wall_seconds = 0.0
        self.start_time = time.perf_counter()
        self.start_steps = 0
        self.env_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="env_steps")
        # Python-side state (curve, best score, RNG) travels in the checkpoint as JSON.
        self.state = tf.Variable("", dtype=tf.string, trainable=False, name="run_state")
        self.checkpointer = None
        self.rng = np.random.default_rng(seed)
        self.writer = tf.summary.create_file_writer(str(out_dir / "tensorboard"))
        self.bar = tqdm(
            total=steps,
            disable=not progress,
            desc=f"{algo} {env_id}",
            unit="step",
            mininterval=1.0,
            dynamic_ncols=True,
        )

    def attach(self, snapshot_variables: list, resume: bool, **trackables) -> int:
        """Create the checkpointer and, if resuming, restore; return the env step reached.

        Args:
            snapshot_variables: The variables that make the exported policy
                (kept as the best weights, restored by `restore_best`).
            resume: Restore the last checkpoint in ``out_dir``, if there is one.
            **trackables: Whatever else the checkpoint holds (agent, replay buffer).
        """
        self.snapshot_variables = snapshot_variables
        self.best = tf.Module(name="best")
        self.best.variables_ = [tf.Variable(v, trainable=False) for v in snapshot_variables]
        ckpt_dir = self.out_dir / "checkpoints"
        if not resume and ckpt_dir.exists():
            # A fresh run must not pick up an old run's checkpoint.
            shutil.rmtree(ckpt_dir)
        # TF-Agents' Checkpointer restores the latest checkpoint as it is made: a damaged one fails here.
        with _damage_named(tf.train.latest_checkpoint(str(ckpt_dir)) if resume else None):
            self.checkpointer = common.Checkpointer(
                str(ckpt_dir),
                max_to_keep=1,
                env_steps=self.env_steps,
                run_state=self.state,
                best=self.best,
                **trackables,
            )
            if resume and self.checkpointer.checkpoint_exists:
                self.checkpointer.initialize_or_restore()
                state = json.loads(self.state.numpy().decode())
        if resume and self.checkpointer.checkpoint_exists:
            self.curve = [tuple(row) for row in state["curve"]]
            self.best_score, self.best_step = state["best_score"], state["best_step"]
            self.prior_wall_seconds = state["wall_seconds"]
            self.rng.bit_generator.state = state["rng"]
        self.start_steps = int(self.env_steps.numpy())
        self.bar.update(self.start_steps)
        return self.start_steps

    @property
    def wall_seconds(self) -> float:
        return self.prior_wall_seconds + time.perf_counter() - self.start_time

    def steps_per_second(self, env_steps: int) -> float:
        return (env_steps - self.start_steps) / max(time.perf_counter() - self.start_time, 1e-9)

    #: Whether an evaluation or checkpoint is due: `kd_rl._io.due`, the rule of every kd_rl loop.
    due = staticmethod(_io.due)

    def evaluate(self, env_steps: int, policy: Callable) -> float:
        """Score ``policy`` greedily, extend the curve, keep the best weights; return the mean return."""
        stats = run_episodes(
            policy,
            self.env_id,
            self.periodic_episodes,
            self.seed + CURVE_EVAL_SEED_OFFSET,
            env_kwargs=self.env_kwargs or None,
        )
        score = stats.mean_return
        new = (env_steps, score, round(self.wall_seconds, 2))
        if self.kickstart is not None:
            # λ now; the loss terms' means as last logged.
            latest = dict(self.kickstart.latest, kickstart_weight=float(self.kickstart.weight.numpy()))
            new += tuple(round(latest[name], 6) for name in KICKSTART_COLUMNS)
        self.curve = [row for row in self.curve if row[0] < env_steps] + [new]
        # Ties go to the later weights: equally good and trained longer.
        if score >= self.best_score:
            self.best_score, self.best_step = score, env_steps
            for target, source in zip(self.best.variables_, self.snapshot_variables):
                target.assign(source)
        _io.write_csv(self.out_dir / "curve.csv", self.curve_columns, self.curve)
        # record_if(True): the loops silence TF-Agents' own per-step summaries with record_if(False).
        with self.writer.as_default(step=env_steps), tf.summary.record_if(True):
            tf.summary.scalar("eval/mean_return", score)
            tf.summary.scalar("eval/std_return", stats.std_return)
        self.bar.set_postfix(eval=f"{score:.1f}", best=f"{self.best_score:.1f}")
        if self.stop_return is not None and score >= self.stop_return:
            self.reached = True
        return score

    def log_training(self, env_steps: int, episode_returns: list, **scalars) -> None:
        """TensorBoard scalars of training: mean episode return, steps per second, ``scalars`` (and a kickstart's)."""
        if self.kickstart is not None:
            scalars.update(self.kickstart.scalars())
        # record_if(True): the loops silence TF-Agents' own per-step summaries with record_if(False).
        with self.writer.as_default(step=env_steps), tf.summary.record_if(True):
            if episode_returns:
                tf.summary.scalar("train/episode_return", float(np.mean(episode_returns)))
            tf.summary.scalar("train/steps_per_second", self.steps_per_second(env_steps))
            for name, value in scalars.items():
                tf.summary.scalar(f"train/{name}", float(value))

    def save_checkpoint(self, env_steps: int) -> None:
        self.env_steps.assign(env_steps)
        state = {
            "curve": self.curve,
            "best_score": self.best_score,
            "best_step": self.best_step,
            "wall_seconds": self.wall_seconds,
            "rng": self.rng.bit_generator.state,
            "settings": self.settings,
        }
        self.state.assign(json.dumps(state))
        try:
            self.checkpointer.save(global_step=env_steps)
        except (tf.errors.OpError, OSError) as err:
            # TensorFlow says "ResourceExhausted" or "Unknown: ... No space left" for a full disk.
            raise OSError(
                f"could not write the checkpoint in {str(self.out_dir / 'checkpoints')!r} "
                f"({_io.error_summary(err)}); the previous checkpoint, if any, is kept"
            ) from None

    def restore_best(self) -> None:
        """Put the best evaluated weights back, if ``keep_best`` and there are any."""
        if self.keep_best and self.best_step >= 0:
            for target, source in zip(self.snapshot_variables, self.best.variables_):
                target.assign(source)

    @property
    def exported_weights(self) -> str:
        """``"best"`` if `restore_best` put the best weights back, else ``"last"``."""
        return "best" if self.keep_best and self.best_step >= 0 else "last"

    def close(self) -> None:
        self.bar.close()
        self.writer.flush()
        self.writer.close()


def check_resumable(out_dir: Path, settings: dict) -> None:
    """Refuse to resume ``out_dir``'s checkpoint if it was written with other settings.

    Args:
        out_dir: The run folder; without a checkpoint in it there is nothing to check.
        settings: The new run's, as `Run` takes them.

    Raises:
        ValueError: Naming each setting that differs, other than
            `RESUMABLE_HYPERPARAMETERS`.
    """
    folder = Path(out_dir) / "checkpoints"
    with _damage_named(str(folder / "checkpoint")):
        latest = tf.train.latest_checkpoint(str(folder))
    if latest is None:
        return
    with _damage_named(latest):
        saved = json.loads(tf.train.load_variable(latest, "run_state/.ATTRIBUTES/VARIABLE_VALUE").decode())
    saved = saved.get("settings")
    if saved is None:  # written by a kd_rl that did not record its settings
        print(
            f"note: the checkpoint in {str(out_dir)!r} does not record its settings (an older kd_rl wrote it): "
            "resuming without comparing them, so pass the first run's options",
            file=sys.stderr,
        )
        return
    saved, settings = json.loads(json.dumps(saved)), json.loads(json.dumps(settings))
    for side in (saved, settings):  # a side that predates a key ran with the value that keeps the old behaviour
        if isinstance(side.get("hyperparameters"), dict):
            for key, value in ADDED_HYPERPARAMETERS.items():
                side["hyperparameters"].setdefault(key, value)
    _io.refuse_other_settings(
        str(out_dir), dict(_flatten(saved)), dict(_flatten(settings)),
        RESUMABLE_HYPERPARAMETERS, prefix="hyperparameters.",
        hint=" (pass the first run's options, or --overwrite to start again)",
    )  # fmt: skip


@contextmanager
def _damage_named(path: str | None):
    """Turn any error while reading the checkpoint ``path`` into one ``ValueError`` naming it (the files stay).

    ``path`` None (no checkpoint is read): errors pass through as they are.
    """
    try:
        yield
    except Exception as err:
        if path is None:
            raise
        raise _io.damaged_checkpoint(path, err, " (pass --overwrite to start the run again)") from None


def _flatten(settings: dict, prefix: str = "") -> list[tuple[str, object]]:
    """``{"a": {"b": 1}}`` as ``[("a.b", 1)]``; other values as they are; an empty mapping adds nothing."""
    items = []
    for key, value in settings.items():
        if isinstance(value, dict):
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items
