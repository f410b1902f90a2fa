"""`train_teacher`: the whole teacher pipeline, from hyperparameters to ``teacher.keras``.

Check every argument, train (`kd_rl.teachers.dqn`, `kd_rl.teachers.ppo` or
`kd_rl.teachers.sac`), save the exported Keras 3 ``TeacherModel``, score it
with `kd_rl.evaluate.run_episodes`, and write ``metrics.json`` and ``curve.csv``.
With ``kickstart`` the agent also learns from a teacher (`kd_rl.teachers.kickstart`).

Example:
    >>> metrics = train_teacher(TeacherConfig("CartPole-v1", "dqn"), out_dir="runs/cartpole-dqn")  # doctest: +SKIP
    >>> metrics = train_teacher("CartPole-v1", "dqn", "runs/cartpole-dqn")  # doctest: +SKIP (the same)
    >>> metrics["mean_return"]  # doctest: +SKIP
    500.0
    >>> metrics = train_teacher(  # doctest: +SKIP
    ...     "CartPole-v1", "dqn", "runs/kick", hidden_units=64, kickstart="CartPole-v1-dqn-large"
    ... )
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import gymnasium
import keras
import tensorflow as tf
import tf_agents
import tf_keras

from kd_rl import _io
from kd_rl._validate import check_int, check_memory
from kd_rl.config import TeacherConfig
from kd_rl.envs import env_spec
from kd_rl.errors import KdRlError
from kd_rl.evaluate import CURVE_EVAL_SEED_OFFSET, run_episodes
from kd_rl.models import count_params, load_policy
from kd_rl.teachers.dqn import train_dqn
from kd_rl.teachers.hyperparam_tables import (
    check_algo_for_actions,
    check_hyperparameters,
    choose_algo,
    is_tuned,
    load_hyperparameters,
)
from kd_rl.teachers.kickstart import Kickstart, check_kickstart_teacher
from kd_rl.teachers.ppo import train_ppo
from kd_rl.teachers.run import Run, check_resumable
from kd_rl.teachers.sac import train_sac

__all__ = ["train_teacher"]

#: The training loop of each algorithm.
TRAINERS = {"dqn": train_dqn, "ppo": train_ppo, "sac": train_sac}


def train_teacher(
    config: TeacherConfig | str,
    algo: str | None = None,
    out_dir: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    command: str | None = None,
    **settings,
) -> dict:
    """Train a DQN, PPO or SAC teacher and export it as a Keras ``TeacherModel``.

    DQN needs a ``Discrete`` action space, SAC a ``Box`` one; PPO takes either
    (a categorical actor, or a Gaussian one with a learned ``log_std`` per
    dimension). A continuous teacher outputs its Gaussian's ``[mean, log_std]``
    and acts with `TeacherModel.act` (SAC's tanh-squashed mean, PPO's clipped mean).

    Writes to ``out_dir``: ``teacher.keras``, ``metrics.json``, ``curve.csv``
    (``env_steps,mean_return,wall_seconds`` of the periodic greedy evaluations),
    ``tensorboard/`` and, with ``checkpoint_every``, ``checkpoints/``. Nothing
    is written before every argument has been checked.

    The final score is the mean greedy return of the exported model over
    ``eval_episodes`` episodes of ``run_episodes(teacher, env, eval_episodes,
    seed)``. With the hyperparameter ``keep_best`` the exported weights are
    those of the best periodic evaluation (which uses the seed ``seed + 10000``,
    so other episodes), not the last.

    Kickstarting (``kickstart``: a teacher) adds ``λ_t · KL(teacher ‖ agent)`` on
    the agent's own states to the DQN, PPO or SAC loss, with ``λ_t`` following
    ``kickstart_schedule`` (`kd_rl.teachers.kickstart`); the agent's network
    (``hidden_units``) may be smaller than the teacher's. ``metrics.json``
    gains ``kickstart`` (the settings), curve.csv the columns
    ``kickstart_weight, rl_loss, kickstart_loss``, TensorBoard the same scalars.

    Args:
        config: The run's settings, a `kd_rl.config.TeacherConfig` (every
            setting declared once there, with its check and its
            ``train-teacher`` flag); or, as kd_rl 0.2 called it, the
            environment id, with ``algo`` and the settings as keywords
            (``train_teacher("CartPole-v1", "dqn", "runs/x", steps=5_000)``).
            ``algo`` None: the one ``kd_rl/hyperparams/best.yml`` lists for
            the environment, else DQN for ``Discrete`` actions and SAC for
            ``Box`` ones (`kd_rl.teachers.hyperparam_tables.choose_algo`). An
            environment the algorithm's file has no entry for trains with that
            file's untuned defaults, said in one line on stderr
            (``metrics["tuned"]`` False).
        algo: With an environment id: ``"dqn"``, ``"ppo"``, ``"sac"`` or None.
        out_dir: Output folder (created).
        resume: Continue from the last checkpoint in ``out_dir`` (if there is
            none, start afresh). The run ends at the same total step count as
            an uninterrupted one.
        overwrite: Replace a different run already in ``out_dir``, only once
            this one has finished (without it, or ``resume``, a non-empty
            ``out_dir`` is refused).
        progress: Show a tqdm progress bar.
        command: The command line that made this run, recorded in the metrics.
        **settings: With an environment id: `TeacherConfig`'s fields.

    Returns:
        The metrics written to ``metrics.json``; ``outputs`` says what the
        teacher's outputs are (``"q_values"`` for DQN, ``"logits"`` for
        discrete PPO, ``"gaussian"`` for SAC and continuous PPO).

    Raises:
        ValueError: For an unknown ``algo`` or environment, an environment
            whose spaces kd_rl cannot use, an algorithm that cannot train on
            its action space (DQN on a ``Box``, SAC on a ``Discrete``), a bad
            hyperparameter or a non-positive count; a kickstart teacher that
            does not fit the environment or the algorithm, a negative
            ``kickstart_weight``, an unknown schedule, or kickstart settings
            without ``kickstart``.
    """
    if isinstance(config, TeacherConfig):
        if algo is not None or settings:
            raise KdRlError("give a TeacherConfig's settings in the config, not as arguments of train_teacher")
    else:
        config = TeacherConfig(env_id=config, algo=algo, **settings)
    if out_dir is None:
        raise KdRlError("train_teacher needs out_dir, the run folder to write")
    env_id, algo, seed = config.env_id, config.algo, config.seed
    env_kwargs = dict(config.env_kwargs or {})
    hyperparams_file, kickstart = config.hyperparams_file, config.kickstart
    chosen = None
    if algo is None:
        try:
            algo = choose_algo(env_id)
            chosen = f"{algo}, kd_rl/hyperparams/best.yml's choice for {env_id}"
        except ValueError:  # not listed: by the action space
            continuous = env_spec(env_id, **env_kwargs).is_continuous
            algo = choose_algo(env_id, "continuous" if continuous else "discrete")
            chosen = f"{algo}, for its {'Box' if continuous else 'Discrete'} actions"
    overrides = dict(config.overrides or {})
    if config.hidden_units is not None:
        overrides["hidden_units"] = config.hidden_units
    gym_id, params = load_hyperparameters(env_id, algo, overrides, hyperparams_file)
    tuned = is_tuned(env_id, algo) or hyperparams_file is not None
    steps = check_int("steps", params["n_timesteps"] if config.steps is None else config.steps)
    params["n_timesteps"] = steps
    eval_every = check_int("eval_every", params["eval_every"] if config.eval_every is None else config.eval_every)
    params["eval_every"] = eval_every
    eval_episodes, checkpoint_every, stop_return = config.eval_episodes, config.checkpoint_every, config.stop_return
    check_hyperparameters(params, algo)
    # Unknown id, unusable spaces or the wrong algorithm for them: fail before writing anything.
    spec = env_spec(gym_id, **env_kwargs)
    check_algo_for_actions(algo, "continuous" if spec.is_continuous else "discrete", gym_id, spec.describe())
    _check_replay_memory(params, algo, spec, steps)
    kick = _kickstart(kickstart, config.kickstart_options(), gym_id, algo, steps, env_kwargs)
    if chosen is not None:
        print(f"note: no algo given: {chosen}", file=sys.stderr)
    if not tuned:
        print(
            f"note: kd_rl/hyperparams/{algo}.yml has no entry for {env_id}: training with its untuned defaults "
            "(set your own with --hyperparams FILE; see docs/cli.md)",
            file=sys.stderr,
        )

    # What is learned with; a checkpoint holds it and --resume must match it.
    settings = {
        "env_id": gym_id,
        "env_kwargs": env_kwargs,
        "algo": algo,
        "seed": seed,
        "hyperparameters": params,
        "kickstart": None if kick is None else _kickstart_settings(kick, kickstart),
    }
    with _io.run_folder(out_dir, resume=resume, overwrite=overwrite) as out_dir:
        if resume:
            check_resumable(out_dir, settings)
        tf_keras.utils.set_random_seed(seed)
        run = Run(
            out_dir,
            gym_id,
            seed,
            steps,
            params,
            algo,
            eval_every,
            checkpoint_every,
            progress,
            kick,
            stop_return,
            env_kwargs,
            settings,
        )
        try:
            teacher, env_steps = TRAINERS[algo](run, gym_id, resume)
            steps_per_second = run.steps_per_second(env_steps)
            wall_seconds = run.wall_seconds
        finally:
            run.close()

        teacher.preprocessing = spec.preprocessing  # an Atari teacher records its preprocessing
        _io.save_model(teacher, out_dir / "teacher.keras")
        final = run_episodes(teacher, gym_id, eval_episodes, seed, env_kwargs=env_kwargs or None)
        metrics = {
            "env_id": gym_id,
            "hyperparameters_key": env_id,
            "env_kwargs": env_kwargs,
            "algo": algo,
            "tuned": tuned,
            "hyperparams_file": None if hyperparams_file is None else str(hyperparams_file),
            "outputs": teacher.output_type,
            "seed": seed,
            "env_steps": env_steps,
            "resumed_from_env_steps": run.start_steps,
            "wall_seconds": round(wall_seconds, 2),
            "steps_per_second": round(steps_per_second, 1),
            **{k: v for k, v in final.summary().items() if k.endswith("_return")},
            "eval_episodes": eval_episodes,
            "returns": final.returns,
            "params": count_params(teacher),
            "hidden_units": list(teacher.hidden_units),
            "best_eval_env_steps": run.best_step,
            "best_eval_mean_return": run.best_score if run.best_step >= 0 else None,
            "exported_weights": run.exported_weights,
            "periodic_eval_seed": seed + CURVE_EVAL_SEED_OFFSET,
            "stop_return": stop_return,
            "stopped_early": run.reached,
            "hyperparameters": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
            "versions": _versions(),
        }
        metrics["config"] = config.to_dict()  # the settings as given (None: by the file or the default)
        if kick is not None:
            metrics["kickstart"] = kick.describe()
        if command is not None:
            metrics["command"] = command
        _io.write_json(out_dir / "metrics.json", metrics)
        _io.write_csv(out_dir / "curve.csv", run.curve_columns, run.curve)
        return metrics


def _check_replay_memory(params: Mapping, algo: str, spec, steps: int) -> None:
    """Refuse an off-policy replay buffer (``buffer_size``, capped at ``steps``) or a round of its
    batches that cannot fit in memory, before anything is written."""
    if algo not in ("dqn", "sac"):
        return
    capacity = min(int(params["buffer_size"]), steps)
    action = 1 if spec.action_dim is None else spec.action_dim
    # Bytes per transition: observation and next observation (one byte per entry for images), then
    # action, reward, discount and the n-step bookkeeping as four-byte numbers, twice (the NumPy arrays and
    # the tf.Variables a checkpoint saves); batches are float32.
    stored = 2 * ((1 if spec.is_image else 4) * 2 * spec.obs_dim + 4 * (action + 3))
    check_memory(f"buffer_size={params['buffer_size']} (the replay buffer)", float(capacity * stored))
    batch = int(params["batch_size"]) * max(int(params.get("gradient_steps") or 1), 1)
    floats = 2 * spec.obs_dim + action + 3
    check_memory(f"batch_size={params['batch_size']} (a round's batches)", 4.0 * batch * floats)


def _kickstart_settings(kick: Kickstart, teacher) -> dict:
    """A kickstart's settings as a checkpoint holds them; ``teacher`` is what ``kickstart=`` was given.

    Not the λ reached, nor a model object's generated name; a teacher file by
    its absolute path, however it was spelled (a zoo name as it is).
    """
    by_path = isinstance(teacher, (str, os.PathLike))
    settings = {k: v for k, v in kick.describe().items() if k != "final_weight" and (by_path or k != "teacher")}
    if by_path and Path(kick.source).exists():
        settings["teacher"] = str(Path(kick.source).resolve())
    return settings


def _kickstart(teacher, options: dict, gym_id: str, algo: str, steps: int, env_kwargs: dict) -> Kickstart | None:
    """The run's `Kickstart`, its teacher loaded and checked against the environment; None without a teacher."""
    if teacher is None:  # TeacherConfig refuses kickstart settings without a teacher
        return None
    source = teacher.name if isinstance(teacher, keras.Model) else str(teacher)
    model = teacher if isinstance(teacher, keras.Model) else load_policy(teacher)
    check_kickstart_teacher(model, gym_id, algo, env_kwargs)
    options.setdefault("until", max(steps // 2, 1))
    return Kickstart(model, source=source, **options)


def _versions() -> dict:
    return {
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf_keras": tf_keras.__version__,
        "tf_agents": tf_agents.__version__,
        "gymnasium": gymnasium.__version__,
    }
