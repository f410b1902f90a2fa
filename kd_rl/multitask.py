"""Multi-task policy distillation: one small student for several environments (Rusu et al. 2016).

Rusu et al. distilled ten Atari DQN teachers into one network with a shared
body and one output layer per game. Control tasks differ in their inputs as
well as their outputs, so `MultiTaskStudent` has, per task, an input
*adapter* (a Dense layer from that environment's observations to a common
width) and an output *head* (logits, or a Gaussian for continuous actions),
around a *trunk* of Dense layers that every task shares::

    observations of task k ──adapter_k──▶ trunk (shared) ──head_k──▶ outputs of task k

For image tasks (MinAtar's games, whose frames have different numbers of
channels) the adapter is the task's own first convolution, and any further
convolutions belong to the trunk, with its Dense layers.

Each task's path is an ordinary kd_rl ``StudentModel`` whose hidden layers
are ``[adapter_k, *trunk]`` — the same layer objects, so the weights are
shared — and `MultiTaskStudent.for_task` returns it: every single-task tool
(`kd_rl.evaluate.run_episodes`, `kd_rl.export.export_model`, ``kd-rl
evaluate``, the TF-Agents wrapper) takes it as it is.

`distill_multitask` trains one with kd_rl's one loop (`kd_rl.distill.train_loop`)
and one step (`kd_rl.distill.make_distill_step` with a sequence of teachers):
one replay buffer and one collector per task; each update draws a batch from
every task's buffer and applies each task's loss (at that teacher's
temperature, weighted by `kd_rl.losses.loss_weight`) to its own head, the
trunk taking the sum.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from kd_rl._io import CHECKPOINT_FILE, run_folder, save_model, write_csv, write_json
from kd_rl._validate import check_int, normalise_conv_layers
from kd_rl.config import DistillConfig, MultiTaskConfig
from kd_rl.data import BetaSchedule, Collector, ReplayBuffer, check_buffer_memory
from kd_rl.distill import (
    CURVE_EVAL_SEED_OFFSET,
    FINAL_EVAL_SEED_OFFSET,
    check_resume_target,
    fixed_policy_returns,
    log_point,
    make_distill_step,
    resume_progress,
    save_progress,
    train_loop,
)
from kd_rl.distributed import make_strategy
from kd_rl.envs import env_spec
from kd_rl.errors import KdRlError
from kd_rl.evaluate import check_model_fits_env, normalised_score, run_episodes
from kd_rl.models import LOG_STD_RANGE, StudentModel, count_params, normalise_hidden_units, weights_sha256
from kd_rl.timing import RunProfile

__all__ = [
    "MultiTaskStudent",
    "MultiTaskConfig",
    "TASK_SEED_OFFSET",
    "distill_multitask",
    "geometric_mean",
    "task_spec",
]

#: Task ``k``'s collection seeds start at ``seed + TASK_SEED_OFFSET · k``, so no two tasks share episodes' seeds.
TASK_SEED_OFFSET = 1000


def task_spec(env_id: str, teacher=None) -> dict:
    """A task as `MultiTaskStudent` stores it: ``env_id``, ``obs_dim`` and the action space.

    Discrete: ``num_actions``. Continuous: ``action_low``, ``action_high`` and
    ``squash`` (the teacher's, so that its Gaussian KL is exact; tanh-squashed
    when there is no teacher).
    """

    spec = env_spec(env_id)
    task = {"env_id": env_id, "obs_dim": spec.obs_dim}
    if spec.is_image:
        task["obs_shape"] = list(spec.obs_shape)
    if spec.is_continuous:
        task.update(
            action_low=spec.action_low.tolist(),
            action_high=spec.action_high.tolist(),
            squash=bool(getattr(teacher, "squash", True)),
        )
    else:
        task["num_actions"] = spec.num_actions
    return task


@keras.saving.register_keras_serializable(package="kd_rl")
class MultiTaskStudent(keras.Model):
    """One student for several tasks: per-task adapters and heads around a shared trunk.

    Args:
        tasks: One dict per task, as from `task_spec`: ``env_id``, ``obs_dim``
            and ``num_actions`` (discrete) or ``action_low``/``action_high``/
            ``squash`` (continuous). Task ids must be unique.
        trunk_units: Widths of the shared Dense layers.
        adapter_units: Width of every task's input adapter.
        activation: Keras activation of adapters and trunk.
        state_dependent_std: Continuous tasks: ``log_std`` from a Dense head
            (True) or one learned value per action dimension.
        conv_layers: Image tasks (each with an ``obs_shape``): ``(filters,
            kernel, stride)`` of each convolution. The first is each task's own
            adapter (its input channels are the game's); the others are shared.
            ``adapter_units`` is then unused. Image and vector tasks do not mix.
        **kwargs: Passed to ``keras.Model``.

    ``student(observations, task=env_id)`` runs one task's path:
    ``float32 [batch, obs_dim_k] -> [batch, num_actions_k]`` (or ``[batch, 2d_k]``).

    Raises:
        ValueError: For no tasks, a repeated task id or a malformed task.
    """

    def __init__(
        self,
        tasks: Sequence[dict],
        trunk_units: int | Sequence[int] = (64,),
        adapter_units: int = 64,
        activation: str = "relu",
        state_dependent_std: bool = True,
        conv_layers: Sequence[Sequence[int]] = (),
        **kwargs,
    ):
        super().__init__(**kwargs)
        tasks = [dict(t) for t in tasks]
        self.conv_layers = normalise_conv_layers(conv_layers)
        images = [t.get("obs_shape") is not None for t in tasks]
        if any(images) and not all(images):
            raise KdRlError("a multi-task student takes image tasks or vector tasks, not both")
        if tasks and all(images) and not self.conv_layers:
            raise KdRlError("image tasks need conv_layers: the first convolution is each task's adapter")
        if self.conv_layers and not all(images):
            raise KdRlError("conv_layers are for image tasks (each with an obs_shape)")
        if not tasks:
            raise KdRlError("a MultiTaskStudent needs at least one task")
        ids = [t.get("env_id") for t in tasks]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise KdRlError(f"each task may appear once; repeated: {repeated}")
        self.tasks = tasks
        self.task_ids = ids
        self.trunk_units = normalise_hidden_units(trunk_units)
        self.adapter_units = check_int("adapter_units", adapter_units)
        self.activation = activation
        self.state_dependent_std = bool(state_dependent_std)
        self.trunk = [
            keras.layers.Dense(units, activation=activation, name=f"trunk_{i}")
            for i, units in enumerate(self.trunk_units)
        ]
        if self.conv_layers:
            (filters, kernel, stride), shared = self.conv_layers[0], self.conv_layers[1:]
            self.adapters = [
                keras.layers.Conv2D(filters, kernel, strides=stride, activation=activation, name=f"adapter_{i}")
                for i in range(len(tasks))
            ]
            self.shared_convolutions = [
                keras.layers.Conv2D(f, k, strides=s, activation=activation, name=f"trunk_conv_{i}")
                for i, (f, k, s) in enumerate(shared)
            ]
            grids = {tuple(t["obs_shape"][:2]) for t in tasks}
            if len(grids) > 1:
                raise KdRlError(f"image tasks must share one frame size to share a trunk, got {sorted(grids)}")
        else:
            self.adapters = [
                keras.layers.Dense(self.adapter_units, activation=activation, name=f"adapter_{i}")
                for i in range(len(tasks))
            ]
            self.shared_convolutions = []
        # One StudentModel per task, built on the task's adapter and the shared trunk.
        self.task_models = [self._task_model(i, task) for i, task in enumerate(tasks)]
        self.built = True  # every task's model built its layers (observation sizes are known)

    def _task_model(self, index: int, task: dict) -> StudentModel:
        for key in ("env_id", "obs_dim"):
            if key not in task:
                raise KdRlError(f"task {index} has no {key!r}: {task}")
        action = (
            {"num_actions": task["num_actions"]}
            if "num_actions" in task
            else {
                "action_low": task["action_low"],
                "action_high": task["action_high"],
                "squash": task.get("squash", True),
                "state_dependent_std": self.state_dependent_std,
                "log_std_range": LOG_STD_RANGE,
            }
        )
        if self.conv_layers:
            return StudentModel(
                hidden_units=self.trunk_units,
                activation=self.activation,
                observation_shape=task["obs_shape"],
                conv_layers=self.conv_layers,
                name=f"task_{index}",
                _convolutions=[self.adapters[index], *self.shared_convolutions],
                _hidden_layers=self.trunk,
                **action,
            )
        return StudentModel(
            hidden_units=(self.adapter_units, *self.trunk_units),
            activation=self.activation,
            observation_dim=task["obs_dim"],
            name=f"task_{index}",
            _hidden_layers=[self.adapters[index], *self.trunk],
            **action,
        )

    def task_index(self, task: int | str) -> int:
        """The index of ``task`` (an index or an environment id)."""
        if isinstance(task, int | np.integer) and not isinstance(task, bool) and 0 <= task < len(self.tasks):
            return int(task)
        if task in self.task_ids:
            return self.task_ids.index(task)
        raise KdRlError(f"the student has no task {task!r}; its tasks are {self.task_ids}")

    def for_task(self, task: int | str) -> StudentModel:
        """Task ``task``'s path as an ordinary single-task ``StudentModel`` (weights shared, not copied).

        Saved alone (``.save``), it is a plain ``StudentModel`` file.
        """
        return self.task_models[self.task_index(task)]

    def with_tasks(self, tasks: Sequence[dict]) -> MultiTaskStudent:
        """A new student with ``tasks`` added, starting from this one's weights (transfer to new tasks).

        The trunk and the existing tasks' adapters and heads are copied; the new
        tasks' adapters and heads start fresh.
        """
        student = MultiTaskStudent(
            [*self.tasks, *tasks], self.trunk_units, self.adapter_units, self.activation, self.state_dependent_std,
            conv_layers=self.conv_layers,
        )  # fmt: skip
        for source, target in zip(self.task_models, student.task_models):
            target.set_weights(source.get_weights())
        return student

    def call(self, observations, task=0, training=None):
        return self.for_task(task)(observations, training=training)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            tasks=self.tasks,
            trunk_units=list(self.trunk_units),
            adapter_units=self.adapter_units,
            activation=self.activation,
            state_dependent_std=self.state_dependent_std,
        )
        if self.conv_layers:  # only then: a vector student's config stays what it was
            config.update(conv_layers=[list(c) for c in self.conv_layers])
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


def geometric_mean(scores: Sequence[float | None]) -> float | None:
    """Geometric mean of normalised scores, each clipped at 0 (a task no better than random makes it 0).

    Rusu et al. (2016) summarise their multi-task student so (89.3% of the
    teachers on ten Atari games). None if any score is undefined.
    """
    if not scores or any(s is None for s in scores):
        return None
    clipped = [max(float(s), 0.0) for s in scores]
    if min(clipped) == 0.0:
        return 0.0
    return float(math.exp(np.mean(np.log(clipped))))


def distill_multitask(
    teachers: Sequence[keras.Model],
    config: DistillConfig,
    out_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    student: MultiTaskStudent | None = None,
    teacher_names: Sequence[str] | None = None,
    resume: bool = False,
) -> tuple[MultiTaskStudent, dict]:
    """Distil ``teachers[k]`` (on ``config.env_ids[k]``) into one `MultiTaskStudent`.

    Each round collects ``collect_per_round`` labelled states in every task
    (the task's teacher labels them; who acts follows ``config.collect``),
    then runs ``updates_per_round`` updates, each on one batch of every
    task's buffer. The final evaluation plays ``eval_episodes`` seeded
    episodes per task with the teacher, the student's path for the task and a
    random policy, all on the same episodes.

    With ``out_dir`` it writes ``student.keras`` (the multi-task student),
    ``metrics.json`` (a ``tasks`` list and ``geometric_mean_score``),
    ``curve.csv`` (``env_steps``, one mean-return column per task, ``loss``),
    each atomically, and TensorBoard scalars (``tensorboard/``:
    ``distill/ENV_ID/mean_return`` per task and ``distill/loss``). With ``config.checkpoint_interval`` it checkpoints
    (``checkpoint.npz``: the student, the optimizer, every task's buffer, the
    curve; as `kd_rl.distill.distill_policy` does), and ``resume=True``
    continues from the last checkpoint after checking that the settings and
    the teachers (their weights' SHA-256) are the run's.

    Raises:
        ValueError: For a teacher that does not fit its environment, a
            student without those tasks, ``out_dir`` holding another run, or a
            refused resume (`kd_rl.errors.ResumeRefused`).
    """

    profile = RunProfile()
    if not config.is_multitask:
        raise KdRlError(
            f"a multi-task run takes a tuple of environment ids, got env_id {config.env_id!r}: "
            f"DistillConfig(env_id=({config.env_id!r},), ...) or kd_rl.multitask.MultiTaskConfig"
        )
    teachers = list(teachers)
    if len(teachers) != len(config.env_ids):
        raise KdRlError(f"got {len(teachers)} teachers for {len(config.env_ids)} environments; give one per task")
    shapes = [check_model_fits_env(t, e, role=f"teacher of {e}") for t, e in zip(teachers, config.env_ids)]
    if config.strategy != "default" and student is not None:
        raise KdRlError(f"strategy={config.strategy!r} makes its own student under the strategy; pass student=None")
    if student is not None:
        for env_id in config.env_ids:
            check_model_fits_env(student.for_task(env_id), env_id, role=f"student's {env_id} task")
    # One buffer per task, each of buffer_size states: together they take the sum of the tasks' widths.
    specs = [env_spec(e) for e in config.env_ids]
    image = sum(spec.obs_dim for spec in specs if spec.is_image)
    width = sum(obs_dim + outputs for obs_dim, outputs in shapes) - image
    check_buffer_memory(config.buffer_size, config.batch_size, config.updates_per_round, width, image)
    check_resume_target(out_dir, resume)
    with run_folder(out_dir, resume=resume, overwrite=overwrite) as run_dir:
        start = time.perf_counter()
        keras.utils.set_random_seed(config.seed)
        strategy = make_strategy(config.strategy)
        with strategy.scope():  # the default strategy's scope changes nothing
            if student is None:
                tasks = [task_spec(e, t) for t, e in zip(teachers, config.env_ids)]
                convs = config.conv_layers
                if convs is None:  # the first teacher's convolutions, for image tasks
                    convs = getattr(teachers[0], "conv_layers", ()) if all(s.is_image for s in specs) else ()
                student = MultiTaskStudent(
                    tasks, config.trunk_units, config.adapter_units, config.activation, config.state_dependent_std,
                    conv_layers=convs,
                )  # fmt: skip
            optimizer = keras.optimizers.Adam(config.learning_rate)
        # A given student was checked above, before the run folder; a new one is built from the tasks' specs.
        models = [student.for_task(e) for e in config.env_ids]
        step = make_distill_step(
            teachers, models, optimizer, config.loss, config.temperature, gaussian_kl=config.gaussian_kl,
            strategy=None if config.strategy == "default" else strategy,
        )  # fmt: skip
        buffers = [
            ReplayBuffer(config.buffer_size, obs, out, obs_dtype=spec.obs_dtype)
            for (obs, out), spec in zip(shapes, specs)
        ]
        checkpoint = None if run_dir is None else run_dir / CHECKPOINT_FILE
        names = list(teacher_names) if teacher_names else [None] * len(teachers)
        teacher_id = {"teacher": names, "teacher_sha256": [weights_sha256(t) for t in teachers]}
        state = {"env_steps": 0, "curve": [], "wall_seconds": 0.0}
        if resume:
            state = resume_progress(checkpoint, config, student, optimizer, buffers, teacher_id)
        curve, env_steps = state["curve"], state["env_steps"]
        profile.carried = state.get("train_seconds", state["wall_seconds"])  # the curve counts on from the checkpoint
        # As a single-task run: a resumed run starts fresh episodes, seeded from where it stopped.
        collectors = [
            Collector(
                env_id, teacher, model, mode=config.collect, num_envs=config.num_envs,
                seed=config.seed + TASK_SEED_OFFSET * k + env_steps,
                epsilon=config.epsilon, beta=BetaSchedule(config.beta_start, config.beta_end),
                total_steps=config.steps,
            )
            for k, (env_id, teacher, model) in enumerate(zip(config.env_ids, teachers, models))
        ]  # fmt: skip
        for collector in collectors:
            collector.steps = env_steps  # the mixed β schedule continues where it stopped
        rng = np.random.default_rng([config.seed, env_steps] if env_steps else config.seed)
        writer = tf.summary.create_file_writer(str(run_dir / "tensorboard")) if run_dir is not None else None
        tags = {"loss": "distill/loss", **{e: f"distill/{e}/mean_return" for e in config.env_ids}}

        def checkpoint_run(env_steps: int, curve: list) -> None:
            elapsed = state["wall_seconds"] + time.perf_counter() - start
            save_progress(
                checkpoint, config, student, optimizer, buffers, teacher_id, env_steps, curve, elapsed,
                profile.training_seconds(),
            )  # fmt: skip

        profile.mark("startup", profile.start)
        env_steps = train_loop(
            config, step, collectors, buffers, rng, env_steps, curve,
            lambda env_steps, loss: log_point(_curve_point(models, config, env_steps, loss), writer, tags),
            checkpoint_run if checkpoint is not None else None, progress, "distill (multi-task)", profile,
        )  # fmt: skip
        train_seconds = state["wall_seconds"] + time.perf_counter() - start
        if run_dir is not None:  # first: a full disk is then reported on the file the run is for
            with profile.section("save"):
                save_model(student, run_dir / "student.keras")
        with profile.section("final_eval"):
            metrics = _final_metrics(teachers, student, config, step.temperatures, buffers, train_seconds, profile)
        metrics["teachers"] = list(teacher_names) if teacher_names else None
        metrics["teacher_sha256"] = teacher_id["teacher_sha256"]
        metrics["replicas"] = step.replicas
        metrics["checkpoint_every"] = config.checkpoint_interval
        metrics["resumed_from_env_steps"] = state["env_steps"] if resume else 0
        metrics["wall_seconds"] = state["wall_seconds"] + time.perf_counter() - start
        if run_dir is not None:
            with profile.section("save"):
                columns = ["env_steps", *config.env_ids, "loss", "train_seconds"]
                write_csv(run_dir / "curve.csv", columns, [[p.get(c) for c in columns] for p in curve])
                writer.close()
        metrics["profile"] = profile.to_dict()
        if run_dir is not None:
            write_json(run_dir / "metrics.json", metrics)
        return student, metrics


def _curve_point(models, config: DistillConfig, env_steps: int, loss: float) -> dict:
    point = {"env_steps": env_steps, "loss": loss}
    for model, env_id in zip(models, config.env_ids):
        seed = CURVE_EVAL_SEED_OFFSET + config.seed
        point[env_id] = run_episodes(model, env_id, config.curve_episodes, seed=seed).mean_return
    return point


def _final_metrics(teachers, student, config, temperatures, buffers, train_seconds, profile) -> dict:
    eval_seed = FINAL_EVAL_SEED_OFFSET + config.seed
    tasks = []
    for teacher, env_id, temperature, buffer in zip(teachers, config.env_ids, temperatures, buffers):
        model = student.for_task(env_id)
        with profile.section("final_eval_teacher"):
            teacher_eval, random_eval, cache = fixed_policy_returns(teacher, config, env_id)
        teacher_return, random_return = teacher_eval.mean_return, random_eval.mean_return
        stats = run_episodes(model, env_id, config.eval_episodes, seed=eval_seed, reference=teacher)
        tasks.append(
            {
                "env_id": env_id,
                "teacher_mean_return": teacher_return,
                "student_mean_return": stats.mean_return,
                "student_std_return": stats.std_return,
                "random_mean_return": random_return,
                "normalised_score": normalised_score(stats.mean_return, teacher_return, random_return),
                "agreement": stats.agreement,
                "action_error": stats.action_error,
                "temperature": temperature if config.loss == "kl" else None,
                "teacher_outputs": getattr(teacher, "output_type", None),
                "teacher_params": count_params(teacher),
                "task_params": count_params(model),
                "labelled_states": int(buffer.added),
                "eval_cache_status": cache,
            }
        )
    teacher_params = sum(t["teacher_params"] for t in tasks)
    student_params = count_params(student)
    return {
        **config.to_dict(),
        "tasks": tasks,
        "geometric_mean_score": geometric_mean([t["normalised_score"] for t in tasks]),
        "min_score": min((t["normalised_score"] for t in tasks if t["normalised_score"] is not None), default=None),
        "teacher_params": teacher_params,
        "student_params": student_params,
        "compression": teacher_params / student_params,
        "train_seconds": train_seconds,
        "eval_seed": eval_seed,
    }
