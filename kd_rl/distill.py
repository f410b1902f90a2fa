"""Distillation steps: a compiled ``tf.function`` and a Keras ``Distiller``.

`make_distill_step` is the low-level tool the live-environment loop uses:
one call takes a batch of observations (and, optionally, the teacher's logits
already stored in a replay buffer), updates only the student, and returns the
loss.

`Distiller` is the same idea as a ``keras.Model`` in the manner of the
Keras knowledge-distillation example, so ``fit``, ``evaluate``, callbacks and
``tf.data`` work unchanged.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from kd_rl._validate import check_int
from kd_rl.losses import check_temperature, get_loss
from kd_rl.models import PolicyModel, StudentModel, count_params

__all__ = ["make_distill_step", "Distiller", "check_compatible", "DistillConfig", "distill_policy"]


def check_compatible(teacher: tf.keras.Model, student: tf.keras.Model) -> None:
    """Raise ``ValueError`` if teacher and student disagree on their sizes.

    Also builds kd_rl models whose ``observation_dim`` is known, so that their
    variables exist before a ``tf.function`` traces them.
    """
    for model in (teacher, student):
        if isinstance(model, PolicyModel):
            model.ensure_built()
    t_actions = getattr(teacher, "num_actions", None)
    s_actions = getattr(student, "num_actions", None)
    if t_actions is not None and s_actions is not None and t_actions != s_actions:
        raise ValueError(
            f"teacher and student must have the same num_actions, got teacher={t_actions} and student={s_actions}"
        )
    t_dim = getattr(teacher, "observation_dim", None)
    s_dim = getattr(student, "observation_dim", None)
    if t_dim is not None and s_dim is not None and t_dim != s_dim:
        raise ValueError(
            f"teacher and student must have the same observation_dim, got teacher={t_dim} and student={s_dim}"
        )


def make_distill_step(
    teacher: tf.keras.Model,
    student: tf.keras.Model,
    optimizer: tf.keras.optimizers.Optimizer,
    loss: str | tf.keras.losses.Loss = "kl",
    temperature: float = 1.0,
    scale_by_temperature_squared: bool = True,
    jit_compile: bool = False,
) -> Callable[..., tf.Tensor]:
    """Build a compiled distillation step.

    The returned ``step(observations, teacher_logits=None)`` takes
    ``observations: float32 [batch, obs_dim]``; when ``teacher_logits``
    (float32 [batch, num_actions]) is omitted the teacher is run on the batch.
    It applies one optimizer update to the student's trainable variables only
    and returns the scalar loss computed before the update.

    Several updates in one call: given a stack of batches,
    ``observations: float32 [steps, batch, obs_dim]`` (and ``teacher_logits``
    ``[steps, batch, num_actions]``), the step runs ``steps`` updates in turn
    inside one graph call and returns their losses, float32 ``[steps]``. This
    is Keras's ``steps_per_execution`` idea: each call into TensorFlow costs
    a fixed overhead (about half a millisecond for an empty call on a 2-core
    CPU), as much as an update of a small student or more, so the live loop
    (`distill_policy`) passes all of a round's batches at once. Each rank has
    its own compiled function, so a step may be called both ways.

    Args:
        teacher: Model giving the target logits (DQN Q-values or PPO logits).
        student: Model being trained; must output ``num_actions`` logits.
        optimizer: Any Keras optimizer.
        loss: ``"kl"``, ``"mse"``, ``"nll"`` or a ``tf.keras.losses.Loss``
            called as ``loss(teacher_logits, student_logits)``.
        temperature: Softmax temperature for ``"kl"`` (> 0).
        scale_by_temperature_squared: Hinton's T² factor for ``"kl"``.
        jit_compile: Compile the step with XLA.

    Raises:
        ValueError: For a temperature <= 0, an unknown loss name, or a teacher
            and student with different numbers of actions.
    """
    temperature = check_temperature(temperature)
    loss_fn = get_loss(loss, temperature, scale_by_temperature_squared)
    check_compatible(teacher, student)

    def update(observations, teacher_logits):
        if teacher_logits is None:
            teacher_logits = teacher(observations, training=False)
        with tf.GradientTape() as tape:
            student_logits = student(observations, training=True)
            value = loss_fn(teacher_logits, student_logits)
        grads = tape.gradient(value, student.trainable_variables)
        optimizer.apply_gradients(zip(grads, student.trainable_variables))
        return value

    def one_batch(observations, teacher_logits=None):
        return update(tf.convert_to_tensor(observations, dtype=tf.float32), teacher_logits)

    def stacked(observations, teacher_logits=None):
        observations = tf.convert_to_tensor(observations, dtype=tf.float32)
        num_steps = tf.shape(observations)[0]
        losses = tf.TensorArray(tf.float32, size=num_steps)
        for i in tf.range(num_steps):
            logits_i = None if teacher_logits is None else teacher_logits[i]
            losses = losses.write(i, tf.cast(update(observations[i], logits_i), tf.float32))
        return losses.stack()

    # One tf.function per rank: with reduce_retracing, a single function called
    # with both ranks would be retraced for an input of unknown rank.
    compiled = {
        rank: tf.function(fn, jit_compile=jit_compile, reduce_retracing=True)
        for rank, fn in ((2, one_batch), (3, stacked))
    }

    def step(observations, teacher_logits=None):
        rank = np.ndim(observations)
        if rank not in compiled:
            raise ValueError(
                "observations must be [batch, obs_dim] or a stack of batches [steps, batch, obs_dim], "
                f"got shape {tuple(np.shape(observations))}"
            )
        return compiled[rank](observations, teacher_logits)

    return step


@tf.keras.utils.register_keras_serializable(package="kd_rl")
class Distiller(tf.keras.Model):
    """Trains a student to imitate a teacher through ``fit``.

    Data may be observations alone (pure distillation, the usual RL case) or
    ``(observations, actions)`` pairs, in which case a hard-label student loss
    is mixed in with weight ``alpha``:

    ``loss = alpha * student_loss(actions, student_logits)
    + (1 - alpha) * distillation_loss(teacher_logits, student_logits)``.

    Calling the distiller runs the student. The teacher is never updated.

    Args:
        student: The model being trained.
        teacher: The fixed teacher.
    """

    def __init__(self, student: tf.keras.Model, teacher: tf.keras.Model, **kwargs):
        super().__init__(**kwargs)
        check_compatible(teacher, student)
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False

    def compile(
        self,
        optimizer="adam",
        distillation_loss: str | tf.keras.losses.Loss = "kl",
        temperature: float = 1.0,
        alpha: float = 0.0,
        student_loss: tf.keras.losses.Loss | None = None,
        metrics=None,
        scale_by_temperature_squared: bool = True,
        **kwargs,
    ):
        """Configure the distiller.

        Args:
            optimizer: Keras optimizer (or its name) for the student.
            distillation_loss: ``"kl"``, ``"mse"``, ``"nll"`` or a Keras loss
                called as ``loss(teacher_logits, student_logits)``.
            temperature: Softmax temperature T > 0 for ``"kl"``. The KL is
                scaled by T² (unless ``scale_by_temperature_squared=False``)
                so that its gradient, ``T (q − p)``, does not fade as ``1/T``
                at high temperature.
            alpha: Weight in [0, 1] of ``student_loss`` on hard labels, used
                only when the data carry labels; ``1 - alpha`` weighs the
                distillation loss.
            student_loss: Loss on ``(actions, student_logits)``; defaults to
                sparse categorical cross-entropy from logits.
            metrics: Keras metrics of ``(actions, student_logits)``, updated
                when the data carry labels.
            scale_by_temperature_squared: Hinton's T² factor for ``"kl"``.
        """
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self.temperature = check_temperature(temperature)
        self.alpha = float(alpha)
        self.distillation_loss_fn = get_loss(distillation_loss, self.temperature, scale_by_temperature_squared)
        self.student_loss_fn = student_loss or tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self._loss_tracker = tf.keras.metrics.Mean(name="loss")
        self._distillation_tracker = tf.keras.metrics.Mean(name="distillation_loss")
        self._agreement_tracker = tf.keras.metrics.Mean(name="agreement")

    @property
    def metrics(self):
        trackers = [getattr(self, n, None) for n in ("_loss_tracker", "_distillation_tracker", "_agreement_tracker")]
        return [t for t in trackers if t is not None] + super().metrics

    def call(self, observations, training=None):
        return self.student(observations, training=training)

    def _compute_losses(self, data, training):
        x, y, _ = tf.keras.utils.unpack_x_y_sample_weight(data)
        teacher_logits = self.teacher(x, training=False)
        student_logits = self.student(x, training=training)
        distill = self.distillation_loss_fn(teacher_logits, student_logits)
        if y is None:
            total = distill
        else:
            total = self.alpha * self.student_loss_fn(y, student_logits) + (1.0 - self.alpha) * distill
        return x, y, teacher_logits, student_logits, distill, total

    def _update_metrics(self, y, teacher_logits, student_logits, distill, total):
        self._loss_tracker.update_state(total)
        self._distillation_tracker.update_state(distill)
        same = tf.equal(tf.argmax(teacher_logits, axis=-1), tf.argmax(student_logits, axis=-1))
        self._agreement_tracker.update_state(tf.cast(same, tf.float32))
        if y is not None:
            self.compiled_metrics.update_state(y, student_logits)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            _, y, teacher_logits, student_logits, distill, total = self._compute_losses(data, training=True)
        grads = tape.gradient(total, self.student.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.student.trainable_variables))
        return self._update_metrics(y, teacher_logits, student_logits, distill, total)

    def test_step(self, data):
        _, y, teacher_logits, student_logits, distill, total = self._compute_losses(data, training=False)
        return self._update_metrics(y, teacher_logits, student_logits, distill, total)

    def get_config(self) -> dict:
        return {
            "student": tf.keras.utils.serialize_keras_object(self.student),
            "teacher": tf.keras.utils.serialize_keras_object(self.teacher),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict):
        student = tf.keras.utils.deserialize_keras_object(config.pop("student"))
        teacher = tf.keras.utils.deserialize_keras_object(config.pop("teacher"))
        return cls(student=student, teacher=teacher, **config)


# --------------------------------------------------------------------------
# Distillation on a live environment
# --------------------------------------------------------------------------


@dataclass
class DistillConfig:
    """Every setting of a live distillation run (all recorded in metrics.json).

    Attributes:
        env_id: Gymnasium environment id.
        hidden_units: Student hidden layer width(s).
        loss: ``"kl"``, ``"mse"`` or ``"nll"``.
        temperature: Softmax temperature for ``"kl"``. DQN Q-values differ by
            little between actions, so a small T (Rusu et al. 2016 use 0.01)
            turns them into a sharp target.
        collect: ``"teacher"``, ``"student"`` (DAgger) or ``"mixed"``.
        steps: Teacher-labelled environment steps (the data budget).
        seed: Seeds TensorFlow, the sampler and the environments.
        learning_rate: Adam learning rate.
        batch_size: States per update.
        buffer_size: Replay buffer capacity.
        num_envs: Environments stepped together while collecting.
        collect_per_round: Env steps collected between rounds of updates.
        updates_per_round: Gradient updates after each collection round.
        epsilon: Random-action probability while collecting.
        beta_start, beta_end: β schedule for ``mixed`` collection.
        eval_every: Env steps between the evaluations that make the curve (0: none).
        curve_episodes: Episodes of each of those evaluations.
        eval_episodes: Episodes of the final evaluation of both policies.
        checkpoint_every: Env steps between checkpoints (0: none).
    """

    env_id: str = "CartPole-v1"
    hidden_units: int | tuple[int, ...] = 50
    loss: str = "kl"
    temperature: float = 0.01
    collect: str = "student"
    steps: int = 10_000
    seed: int = 0
    learning_rate: float = 1e-3
    batch_size: int = 128
    buffer_size: int = 50_000
    num_envs: int = 8
    collect_per_round: int = 500
    updates_per_round: int = 100
    epsilon: float = 0.0
    beta_start: float = 1.0
    beta_end: float = 0.0
    eval_every: int = 2_000
    curve_episodes: int = 10
    eval_episodes: int = 100
    checkpoint_every: int = 0

    def __post_init__(self):
        from kd_rl.data import COLLECT_MODES
        from kd_rl.losses import LOSS_NAMES
        from kd_rl.models import _normalise_hidden_units

        self.hidden_units = _normalise_hidden_units(self.hidden_units)
        self.temperature = check_temperature(self.temperature)
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"loss must be one of {', '.join(LOSS_NAMES)}, got {self.loss!r}")
        if self.collect not in COLLECT_MODES:
            raise ValueError(f"collect must be one of {', '.join(COLLECT_MODES)}, got {self.collect!r}")
        for name in (
            "steps",
            "batch_size",
            "buffer_size",
            "num_envs",
            "collect_per_round",
            "updates_per_round",
            "curve_episodes",
            "eval_episodes",
        ):
            setattr(self, name, check_int(name, getattr(self, name)))
        for name in ("eval_every", "checkpoint_every", "seed"):
            setattr(self, name, check_int(name, getattr(self, name), minimum=0))
        if not (self.learning_rate > 0 and np.isfinite(self.learning_rate)):
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden_units"] = list(self.hidden_units)
        return d


def _evaluate_point(student, teacher, config: DistillConfig, env_steps: int, loss: float) -> dict:
    from kd_rl.evaluate import run_episodes

    stats = run_episodes(student, config.env_id, config.curve_episodes, seed=10_000 + config.seed, reference=teacher)
    return {
        "env_steps": env_steps,
        "mean_return": stats.mean_return,
        "std_return": stats.std_return,
        "agreement": stats.agreement,
        "loss": loss,
    }


CURVE_COLUMNS = ("env_steps", "mean_return", "std_return", "agreement", "loss")


def distill_policy(
    teacher: tf.keras.Model,
    config: DistillConfig | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    student: tf.keras.Model | None = None,
    teacher_name: str | None = None,
    loss_fn: tf.keras.losses.Loss | None = None,
) -> tuple[tf.keras.Model, dict]:
    """Distil ``teacher`` into a new student on a live environment.

    Alternates collection (``config.collect_per_round`` env steps, every state
    labelled with the teacher's logits and added to the replay buffer) with
    ``config.updates_per_round`` `make_distill_step` updates on batches
    sampled from the buffer (one call runs them all), until ``config.steps``
    states are labelled. Then both policies are evaluated on
    ``config.eval_episodes`` seeded episodes, and the student's agreement with
    the teacher is measured on the states the student visits.

    With ``out_dir`` it writes ``student.keras``, ``metrics.json``,
    ``curve.csv`` and TensorBoard scalars (``tensorboard/``), each atomically;
    with ``config.checkpoint_every`` it also checkpoints, and ``resume=True``
    continues from the last checkpoint.

    Args:
        teacher: The teacher (``num_actions`` logits per observation).
        config: Settings; defaults are `DistillConfig`'s.
        out_dir: Run folder, or None to write nothing.
        resume: Continue the run in ``out_dir`` from its last checkpoint.
        overwrite: Replace a finished or different run in ``out_dir``.
        progress: Show a tqdm progress bar.
        student: A model to train instead of a new ``StudentModel``.
        teacher_name: Recorded in metrics (the zoo name or path).
        loss_fn: A custom Keras loss ``(teacher_logits, student_logits)`` used
            instead of ``config.loss``; its class name is recorded as the loss.

    Returns:
        ``(student, metrics)``.

    Raises:
        ValueError: If the teacher does not fit the environment, a setting is
            out of range, or ``out_dir`` already holds another run.
    """
    from tqdm import tqdm

    from kd_rl._io import cleanup_on_failure as _cleanup_on_failure
    from kd_rl._io import prepare_run_dir, save_model, write_csv, write_json
    from kd_rl.data import BetaSchedule, Collector, ReplayBuffer
    from kd_rl.evaluate import check_model_fits_env, evaluate_model, run_episodes

    config = config or DistillConfig()
    obs_dim, num_actions = check_model_fits_env(teacher, config.env_id, role="teacher")
    existed = out_dir is None or os.path.exists(out_dir)  # only a folder this run creates is removed
    run_dir = None if out_dir is None else prepare_run_dir(out_dir, resume=resume, overwrite=overwrite)
    with _cleanup_on_failure(run_dir or ".", existed):
        start_time = time.perf_counter()
        tf.keras.utils.set_random_seed(config.seed)
        if student is None:
            student = StudentModel(num_actions, hidden_units=config.hidden_units, observation_dim=obs_dim)
        check_model_fits_env(student, config.env_id, role="student")
        optimizer = tf.keras.optimizers.Adam(config.learning_rate)
        step = make_distill_step(teacher, student, optimizer, loss_fn or config.loss, config.temperature)
        buffer = ReplayBuffer(config.buffer_size, obs_dim, num_actions)
        rng = np.random.default_rng(config.seed)
        curve: list[dict] = []
        env_steps, last_loss, elapsed_before = 0, float("nan"), 0.0

        ckpt = manager = None
        if run_dir is not None and config.checkpoint_every:
            optimizer.build(student.trainable_variables)
            ckpt = tf.train.Checkpoint(student=student, optimizer=optimizer)
            manager = tf.train.CheckpointManager(ckpt, str(run_dir / "checkpoints"), max_to_keep=2)
            if resume and manager.latest_checkpoint:
                ckpt.restore(manager.latest_checkpoint).expect_partial()
                progress_state = json.loads((run_dir / "checkpoints" / "progress.json").read_text())
                with np.load(run_dir / "checkpoints" / "buffer.npz", allow_pickle=False) as state:
                    buffer.load_state(dict(state))
                env_steps = int(progress_state["env_steps"])
                curve = progress_state["curve"]
                elapsed_before = float(progress_state["wall_seconds"])
                rng = np.random.default_rng([config.seed, env_steps])

        # Environments cannot be checkpointed mid-episode; a resumed run starts
        # fresh episodes with seeds derived from where it stopped.
        collector = Collector(
            config.env_id,
            teacher,
            student,
            mode=config.collect,
            num_envs=config.num_envs,
            seed=config.seed + env_steps,
            epsilon=config.epsilon,
            beta=BetaSchedule(config.beta_start, config.beta_end),
            total_steps=config.steps,
        )
        collector.steps = env_steps
        writer = tf.summary.create_file_writer(str(run_dir / "tensorboard")) if run_dir is not None else None
        bar = tqdm(total=config.steps, initial=env_steps, disable=not progress, desc="distill", unit="step")
        next_eval = (env_steps // config.eval_every + 1) * config.eval_every if config.eval_every else None
        next_ckpt = (env_steps // config.checkpoint_every + 1) * config.checkpoint_every if manager else None
        try:
            while env_steps < config.steps:
                n = min(config.collect_per_round, config.steps - env_steps)
                observations, logits = collector.collect(n)
                observations, logits = observations[:n], logits[:n]  # whole batches may overshoot
                buffer.add(observations, logits)
                env_steps += len(observations)
                # All of a round's updates in one call: [updates, batch, ...] stacks.
                batch_obs, batch_logits = buffer.sample(config.updates_per_round * config.batch_size, rng)
                stack = (config.updates_per_round, config.batch_size)
                losses = step(batch_obs.reshape(stack + (obs_dim,)), batch_logits.reshape(stack + (num_actions,)))
                last_loss = float(losses[-1])
                bar.update(len(observations))
                bar.set_postfix(loss=f"{last_loss:.4g}")
                if next_eval is not None and (env_steps >= next_eval or env_steps >= config.steps):
                    point = _evaluate_point(student, teacher, config, env_steps, last_loss)
                    curve.append(point)
                    next_eval += config.eval_every
                    if writer is not None:
                        with writer.as_default(step=env_steps):
                            for key in ("mean_return", "agreement", "loss"):
                                tf.summary.scalar(f"distill/{key}", point[key])
                if next_ckpt is not None and env_steps >= next_ckpt and env_steps < config.steps:
                    manager.save(checkpoint_number=env_steps)
                    np.savez(run_dir / "checkpoints" / "buffer.npz.tmp.npz", **buffer.state())
                    os.replace(run_dir / "checkpoints" / "buffer.npz.tmp.npz", run_dir / "checkpoints" / "buffer.npz")
                    write_json(
                        run_dir / "checkpoints" / "progress.json",
                        {
                            "env_steps": env_steps,
                            "curve": curve,
                            "wall_seconds": elapsed_before + time.perf_counter() - start_time,
                        },
                    )
                    next_ckpt += config.checkpoint_every
        finally:
            bar.close()
            collector.close()

        train_seconds = elapsed_before + time.perf_counter() - start_time
        eval_seed = 1_000_000 + config.seed
        teacher_eval = run_episodes(teacher, config.env_id, config.eval_episodes, seed=eval_seed)
        student_eval = evaluate_model(
            student, config.env_id, config.eval_episodes, seed=eval_seed, reference=teacher, latency=False
        )
        metrics = {
            "env_id": config.env_id,
            "teacher": teacher_name,
            "teacher_mean_return": teacher_eval.mean_return,
            "teacher_std_return": teacher_eval.std_return,
            "student_mean_return": student_eval["mean_return"],
            "student_std_return": student_eval["std_return"],
            "student_min_return": student_eval["min_return"],
            "return_ratio": student_eval["mean_return"] / teacher_eval.mean_return
            if teacher_eval.mean_return
            else None,
            "agreement": student_eval["agreement"],
            "teacher_params": count_params(teacher),
            "student_params": count_params(student),
            "compression": count_params(teacher) / count_params(student),
            "student_size_bytes": student_eval["size_bytes"],
            "env_steps": env_steps,
            "labelled_states": int(buffer.added),
            "train_seconds": train_seconds,
            "wall_seconds": elapsed_before + time.perf_counter() - start_time,
            "eval_episodes": config.eval_episodes,
            "eval_seed": eval_seed,
            **config.to_dict(),
        }
        if loss_fn is not None:
            metrics["loss"] = type(loss_fn).__name__
        if getattr(student, "hidden_units", None) is not None:
            metrics["hidden_units"] = list(student.hidden_units)  # a given student may differ from the config
        metrics["student_class"] = type(student).__name__
        if run_dir is not None:
            save_model(student, run_dir / "student.keras")
            write_csv(run_dir / "curve.csv", CURVE_COLUMNS, [[p[c] for c in CURVE_COLUMNS] for p in curve])
            write_json(run_dir / "metrics.json", metrics)
            if writer is not None:
                writer.close()
        return student, metrics
