"""Distillation: the one step, the one loop, a Keras ``Distiller`` and the live-environment run.

`make_distill_step` is kd_rl's one update, a compiled ``tf.function``: one
call takes a batch of observations (and, optionally, the teacher's logits
already stored in a replay buffer), or a stack of batches, for one task or
several, updates only the student, and returns the loss, each loss weighted
by `kd_rl.losses.loss_weight`.

`train_loop` is the one loop of a live run, for one task or several:
collection, the step, and the run folder's hooks. `distill_policy` runs it
for one teacher (`kd_rl.multitask.distill_multitask` for several).

`Distiller` is the same update as a ``keras.Model`` in the manner of the
Keras knowledge-distillation example, with the same loss objects and weight,
so ``fit``, ``evaluate``, callbacks and ``tf.data`` work unchanged.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from kd_rl._io import (
    CHECKPOINT_FILE,
    check_resumable,
    due,
    read_checkpoint,
    restore_checkpoint,
    run_folder,
    save_checkpoint,
    save_model,
    write_csv,
    write_json,
)
from kd_rl._validate import check_int, normalise_observation_indices
from kd_rl.config import LONG_RUN_STEPS, DistillConfig, checkpoint_interval
from kd_rl.data import BetaSchedule, Collector, ReplayBuffer, SequenceBuffer, check_buffer_memory
from kd_rl.distributed import DistributedCollector, check_ray_ready, make_strategy
from kd_rl.envs import env_spec
from kd_rl.errors import KdRlError, ResumeRefused
from kd_rl.eval_cache import cached_episodes
from kd_rl.evaluate import (
    AGREEMENT_TOLERANCE,
    CURVE_EVAL_SEED_OFFSET,
    FINAL_EVAL_SEED_OFFSET,
    RandomPolicy,
    check_model_fits_env,
    evaluate_model,
    normalised_score,
    run_episodes,
)
from kd_rl.games import env_kwargs_for
from kd_rl.losses import (
    LOSS_WEIGHTING,
    GaussianKLDistillationLoss,
    KLDistillationLoss,
    check_temperature,
    default_temperature,
    get_loss,
    loss_weight,
)
from kd_rl.models import (
    PolicyModel,
    RecurrentStudent,
    StudentModel,
    check_keras3,
    count_params,
    sensor_noise_std,
    weights_sha256,
)
from kd_rl.policies import sensor_readings
from kd_rl.timing import RunProfile

__all__ = [
    "make_distill_step",
    "make_mirrored_distill_step",
    "Distiller",
    "check_compatible",
    "DistillConfig",
    "LONG_RUN_STEPS",
    "checkpoint_interval",
    "check_resume_target",
    "distill_policy",
    "resume_progress",
    "save_progress",
    "train_loop",
    "log_point",
    "fixed_policy_returns",
]


def check_compatible(teacher: keras.Model, student: keras.Model) -> None:
    """Raise ``ValueError`` if teacher and student disagree on their sizes.

    Also builds kd_rl models whose ``observation_dim`` is known, so that their
    variables exist before a ``tf.function`` traces them.
    """
    for model in (teacher, student):
        if isinstance(model, PolicyModel):
            model.ensure_built()
    check_keras3(teacher, "teacher")
    check_keras3(student, "student")
    t_cont, s_cont = is_gaussian(teacher), is_gaussian(student)
    if t_cont != s_cont:
        kinds = {True: "continuous (Gaussian)", False: "discrete"}
        raise KdRlError(
            f"teacher and student must act in the same kind of action space, got a {kinds[t_cont]} teacher "
            f"and a {kinds[s_cont]} student"
        )
    if t_cont:
        if teacher.action_dim != student.action_dim:
            raise KdRlError(
                f"teacher and student must have the same action_dim, got teacher={teacher.action_dim} "
                f"and student={student.action_dim}"
            )
        same_bounds = np.allclose(teacher.action_low, student.action_low) and np.allclose(
            teacher.action_high, student.action_high
        )
        if not same_bounds or teacher.squash != student.squash:
            raise KdRlError(
                "teacher and student must share action bounds and squashing (the Gaussian KL is taken before "
                f"the squash): teacher [{teacher.action_low.tolist()}, {teacher.action_high.tolist()}] "
                f"squash={teacher.squash}, student [{student.action_low.tolist()}, "
                f"{student.action_high.tolist()}] squash={student.squash}"
            )
    t_actions = getattr(teacher, "num_actions", None)
    s_actions = getattr(student, "num_actions", None)
    if t_actions is not None and s_actions is not None and t_actions != s_actions:
        raise KdRlError(
            f"teacher and student must have the same num_actions, got teacher={t_actions} and student={s_actions}"
        )
    t_dim = getattr(teacher, "observation_dim", None)
    s_dim = getattr(student, "observation_dim", None)
    if s_dim is not None:
        s_dim //= int(getattr(student, "history", 1))  # one reading of a student's window
    if t_dim is not None and s_dim is not None and t_dim != s_dim:
        raise KdRlError(
            f"teacher and student must have the same observation_dim, got teacher={t_dim} and student={s_dim}"
        )


def is_gaussian(model) -> bool:
    """Whether ``model`` is a continuous (diagonal Gaussian) policy: a kd_rl model with action bounds."""
    return bool(getattr(model, "is_continuous", False))


def make_distill_step(
    teacher: keras.Model | Sequence[keras.Model],
    student: keras.Model | Sequence[keras.Model],
    optimizer: keras.optimizers.Optimizer,
    loss: str | keras.losses.Loss = "kl",
    temperature: float | Sequence[float | None] | None = None,
    *,
    weight: float | None = None,
    jit_compile: bool = False,
    gaussian_kl: str = "decoupled",
    strategy: tf.distribute.Strategy | None = None,
    burn_in: int = 0,
) -> Callable[..., tf.Tensor]:
    """Build a compiled distillation step: kd_rl's one update, for one task or several, on one device or more.

    The returned ``step(observations, teacher_logits=None)`` takes
    ``observations: float32 [batch, obs_dim]``; when ``teacher_logits``
    (float32 [batch, num_actions]) is omitted the teacher is run on the batch.
    It applies one optimizer update to the student's trainable variables only
    and returns the scalar loss computed before the update: the loss times
    its weight, `kd_rl.losses.loss_weight` (``T · max(T, 1)`` for the KL, 1
    for the others) unless ``weight`` is given.

    Several updates in one call: given a stack of batches,
    ``observations: float32 [steps, batch, obs_dim]`` (and ``teacher_logits``
    ``[steps, batch, num_actions]``), the step runs ``steps`` updates in turn
    inside one graph call and returns their losses, float32 ``[steps]``. This
    is Keras's ``steps_per_execution`` idea: each call into TensorFlow costs
    a fixed overhead (about half a millisecond for an empty call on a 2-core
    CPU), as much as an update of a small student or more, so the live loop
    (`distill_policy`) passes all of a round's batches at once. Each rank has
    its own compiled function, so a step may be called both ways.

    Several tasks (multi-task distillation, `kd_rl.multitask`): ``teacher``
    and ``student`` are sequences of the same length (task ``k``'s teacher
    and the student's path for it, `kd_rl.multitask.MultiTaskStudent.for_task`,
    whose shared layers are the same variables). The step then takes tuples,
    ``observations[k]`` (and ``teacher_logits[k]``) for task ``k``, each as
    above; one update minimises the sum of the tasks' weighted losses,
    updating each variable once, and the step returns the per-task losses,
    float32 ``[tasks]`` (``[steps, tasks]`` for stacks).

    With a ``strategy`` (`kd_rl.distributed.make_strategy`; the student's and
    optimizer's variables made under its scope), each update gives replica
    ``r`` of ``R`` the slice ``observations[r·b/R : (r+1)·b/R]`` of a global
    batch of ``b`` (of every task's batch) and scales its summed per-sample
    losses by ``1/b``; Keras's optimizer sums the replicas' gradients (an
    all-reduce) before one update of the mirrored variables, so the update is
    the single-device one on the whole batch, up to float rounding. The
    step's attribute ``replicas`` is ``R`` (1 without a strategy), ``tasks``
    the number of tasks, ``weights`` and ``temperatures`` each task's loss
    weight and temperature (None resolved to the teacher's default), ``multi``
    whether it was built from sequences.

    A recurrent student (`kd_rl.models.RecurrentStudent`, one task, no
    strategy) learns from sequences: ``observations: float32 [batch, time,
    obs_dim + 1]``, each state's observation with a last feature that is 1.0
    where an episode begins (`kd_rl.data.SequenceBuffer.sample`), and
    ``teacher_logits [batch, time, num_actions]``; a stack adds a leading
    ``steps`` axis. The student unrolls each sequence from a zero state,
    reset where an episode begins; the loss is the mean over the steps after
    the first ``burn_in`` (which only warm the state up) and over those after
    an episode's start (where the state is known).

    Args:
        teacher: Model giving the target logits (DQN Q-values, PPO logits or
            a Gaussian); a sequence of them, one per task.
        student: Model being trained, with the teacher's action space; a
            sequence of them, one per task.
        optimizer: Any Keras optimizer.
        loss: ``"kl"``, ``"mse"``, ``"nll"`` or a ``keras.losses.Loss``
            called as ``loss(teacher_logits, student_logits)``. For Gaussian
            (continuous-action) policies the names give the Gaussian forms
            (`kd_rl.losses.gaussian_kl_loss`, ...).
        temperature: Softmax temperature for ``"kl"`` (> 0); None: the
            teacher's default (`kd_rl.losses.default_temperature`: 0.01 for
            Q-values, 1 for logits and Gaussians). For a Gaussian it scales
            the teacher's standard deviation. Several tasks: one value for
            all, or one per task.
        weight: The losses' weight, a number >= 0; None (the default):
            `kd_rl.losses.loss_weight`, kd_rl's rule. Give ``T**2`` for
            Hinton's factor at any T, or 1.0 for the bare KL. It and the
            arguments after it are keyword-only.
        jit_compile: Compile the step with XLA.
        gaussian_kl: Gaussian policies, ``"kl"``: minimise the KL in its
            ``"decoupled"`` form (the default) or the ``"exact"`` KL
            (`kd_rl.losses.gaussian_kl_loss`).
        strategy: A ``tf.distribute`` strategy to split each batch across;
            None: the one device, as without ``tf.distribute``.
        burn_in: A recurrent student's warm-up steps at the start of each sequence.

    Raises:
        ValueError: For a temperature <= 0, an unknown loss name, a teacher
            and student with different numbers of actions, unequal numbers of
            teachers and students, or (at a call) a batch that does not divide
            evenly among the strategy's replicas.
    """
    if weight is not None:
        if isinstance(weight, bool) or not isinstance(weight, int | float | np.integer | np.floating):
            raise KdRlError(f"weight must be a number >= 0 or None (kd_rl's rule), got {weight!r}")
        if not (np.isfinite(weight) and weight >= 0):
            raise KdRlError(f"weight must be a finite number >= 0 or None (kd_rl's rule), got {weight!r}")
    multi = isinstance(teacher, list | tuple)
    teachers = list(teacher) if multi else [teacher]
    students = list(student) if isinstance(student, list | tuple) else [student]
    if multi != isinstance(student, list | tuple) or len(teachers) != len(students) or not teachers:
        raise KdRlError(
            "give one teacher and one student, or sequences of the same length (one per task); got "
            f"{len(teachers)} teacher(s) and {len(students)} student(s)"
        )
    temperatures = list(temperature) if isinstance(temperature, list | tuple) else [temperature] * len(teachers)
    if len(temperatures) != len(teachers):
        raise KdRlError(f"give one temperature or one per task, got {len(temperatures)} for {len(teachers)} tasks")
    temperatures = [
        default_temperature(t) if T is None else check_temperature(T) for t, T in zip(teachers, temperatures)
    ]
    loss_fns, weights = [], []
    for t, s, temp in zip(teachers, students, temperatures):
        loss_fns.append(get_loss(loss, temp, gaussian=is_gaussian(t), gaussian_kl=gaussian_kl))
        weights.append(loss_weight(loss_fns[-1]) if weight is None else float(weight))
        check_compatible(t, s)
    tasks = range(len(teachers))
    replicas = 1 if strategy is None else int(strategy.num_replicas_in_sync)
    recurrent = any(hasattr(s, "unroll") and getattr(s, "state_size", 0) for s in students)
    if recurrent and (multi and len(students) > 1 or strategy is not None):
        raise KdRlError("a recurrent student learns alone: one task, on one device (no strategy)")
    burn_in = check_int("burn_in", burn_in, minimum=0)
    base = 3 if recurrent else 2  # the rank of one batch: [batch, (time,) features]

    def variables():
        # A shared layer (a multi-task trunk) is in every task's student: each variable once, in order.
        out, seen = [], set()
        for s in students:
            for v in s.trainable_variables:
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out

    def prepare(observations=None):
        # Variables are made eagerly, never inside the first trace of one of the
        # compiled functions: a model not built yet (a user's own) is built by a
        # call on one observation, then the optimizer for its variables (under
        # the strategy's scope, where the student's variables live).
        for k in tasks:
            if observations is not None and not students[k].built:
                obs = observations[k]
                one = np.asarray(obs, np.float32).reshape(-1, np.shape(obs)[-1])[:1]
                one = one[:, :-1] if recurrent else one  # a sequence's last feature flags episode starts
                students[k](one)
                teachers[k](one)
        if all(s.built for s in students) and not optimizer.built:
            if strategy is None:
                optimizer.build(variables())
            else:
                with strategy.scope():
                    optimizer.build(variables())

    prepare()

    def labels_of(observations, teacher_logits):
        if teacher_logits is not None:
            return list(teacher_logits)
        if not recurrent:
            return [teachers[k](observations[k], training=False) for k in tasks]
        obs = observations[0][..., :-1]
        flat = teachers[0](tf.reshape(obs, (-1, obs.shape[-1])), training=False)
        return [tf.reshape(flat, (tf.shape(obs)[0], tf.shape(obs)[1], flat.shape[-1]))]

    def outputs_of(k, observations, labels):
        """``(labels, the student's outputs)`` of what is learnt: a recurrent student's trained steps."""
        if not recurrent:
            return labels, students[k](observations, training=True)
        obs, flags = observations[..., :-1], observations[..., -1]
        outputs, _ = students[k].unroll(obs, flags > 0.5)
        after_start = tf.cumsum(flags, axis=1) > 0  # the state is known: zero at the start, and on from it
        trained = after_start | (tf.range(tf.shape(flags)[1]) >= burn_in)[None, :]
        return tf.boolean_mask(labels, trained), tf.boolean_mask(outputs, trained)

    def apply(per_task, tape):
        trained = variables()
        grads = tape.gradient(per_task, trained)  # of their sum: the gradients of a list add up
        optimizer.apply_gradients(zip(grads, trained))  # under a strategy: an all-reduce
        return tf.stack([tf.cast(v, tf.float32) for v in per_task])

    def update(observations, teacher_logits):
        labels = labels_of(observations, teacher_logits)
        with tf.GradientTape() as tape:
            per_task = [weights[k] * loss_fns[k](*outputs_of(k, observations[k], labels[k])) for k in tasks]
        return apply(per_task, tape)

    def replica_update(observations, teacher_logits, global_batches):
        labels = labels_of(observations, teacher_logits)
        with tf.GradientTape() as tape:
            # Per-sample losses summed over this replica's slice, over the global batch: the replicas'
            # gradients then sum to the global mean's. (Calling the Loss itself would also divide by
            # the replica count under a strategy, a Keras 3 rule that custom losses need not follow.)
            per_task = []
            for k in tasks:
                per_sample = loss_fns[k].call(labels[k], students[k](observations[k], training=True))
                per_task.append(weights[k] * tf.reduce_sum(tf.cast(per_sample, tf.float32)) / global_batches[k])
        return apply(per_task, tape)

    def mirrored_update(observations, teacher_logits):
        def shard(x):
            return strategy.experimental_distribute_values_from_function(
                lambda ctx: tf.split(x, replicas)[ctx.replica_id_in_sync_group]
            )

        global_batches = tuple(tf.cast(tf.shape(o)[0], tf.float32) for o in observations)
        labels = None if teacher_logits is None else tuple(shard(x) for x in teacher_logits)
        sharded = tuple(shard(o) for o in observations)
        per_replica = strategy.run(replica_update, args=(sharded, labels, global_batches))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    one_update = update if strategy is None else mirrored_update

    def one_batch(observations, teacher_logits=None):
        losses = one_update(observations, teacher_logits)
        return losses if multi else losses[0]

    def stacked(observations, teacher_logits=None):
        num_steps = tf.shape(observations[0])[0]
        losses = tf.TensorArray(tf.float32, size=num_steps)
        for i in tf.range(num_steps):
            logits_i = None if teacher_logits is None else tuple(x[i] for x in teacher_logits)
            losses = losses.write(i, one_update(tuple(o[i] for o in observations), logits_i))
        losses = losses.stack()
        return losses if multi else losses[:, 0]

    # One tf.function per rank: with reduce_retracing, a single function called
    # with both ranks would be retraced for an input of unknown rank.
    compiled = {
        rank: tf.function(fn, jit_compile=jit_compile, reduce_retracing=True)
        for rank, fn in ((base, one_batch), (base + 1, stacked))
    }

    def as_float32(x):
        # NumPy input of any float dtype is cast here: a float64 array would otherwise reach the graph as float64.
        return tf.cast(x, tf.float32) if isinstance(x, tf.Tensor) else tf.constant(np.asarray(x, np.float32))

    def step(observations, teacher_logits=None):
        if not multi:
            observations = (observations,)
            teacher_logits = None if teacher_logits is None else (teacher_logits,)
        if len(observations) != len(teachers):
            raise KdRlError(f"give one batch of observations per task: {len(teachers)}, got {len(observations)}")
        observations = tuple(as_float32(o) for o in observations)
        if teacher_logits is not None:
            teacher_logits = tuple(as_float32(x) for x in teacher_logits)
        if not optimizer.built:
            prepare(observations)
        rank = observations[0].shape.rank
        if recurrent and rank in compiled and observations[0].shape[-2] <= burn_in:
            raise KdRlError(
                f"sequences of {observations[0].shape[-2]} steps with burn_in={burn_in}: no step after the burn-in "
                "would be learnt from (give longer sequences or a shorter burn-in)"
            )
        if rank not in compiled or any(o.shape.rank != rank for o in observations):
            if recurrent:
                raise KdRlError(
                    "a recurrent student's observations must be sequences [batch, time, obs_dim + 1] (the last "
                    f"feature flags episode starts) or a stack of them, got shape {tuple(observations[0].shape)}"
                )
            raise KdRlError(
                "observations must be [batch, obs_dim] or a stack of batches [steps, batch, obs_dim], "
                + (
                    f"got shapes {[tuple(o.shape) for o in observations]}"
                    if multi
                    else f"got shape {tuple(observations[0].shape)}"
                )
            )
        for o in observations:
            if o.shape[-base] % replicas:
                raise KdRlError(
                    f"batch_size must be a multiple of the {replicas} replicas of the learner, got {o.shape[-base]}"
                )
        return compiled[rank](observations, teacher_logits)

    step.replicas = replicas
    step.tasks = len(teachers)
    step.weights = tuple(weights)  # each task's loss weight
    step.temperatures = tuple(temperatures)  # each task's temperature, the teacher's default where None was given
    step.multi = multi  # built from sequences: takes and returns one entry per task
    return step


def make_mirrored_distill_step(
    teacher, student, optimizer, loss="kl", temperature=None, strategy=None, gaussian_kl="decoupled"
):
    """`make_distill_step` under ``strategy`` (default: the strategy whose scope this is called in).

    Kept for code written against kd_rl 0.2; it is `make_distill_step` with ``strategy=``.
    """
    return make_distill_step(
        teacher, student, optimizer, loss, temperature, gaussian_kl=gaussian_kl,
        strategy=strategy or tf.distribute.get_strategy(),
    )  # fmt: skip


@keras.saving.register_keras_serializable(package="kd_rl")
class Distiller(keras.Model):
    """Trains a student to imitate a teacher through ``fit``.

    Data may be observations alone (pure distillation, the usual RL case) or
    ``(observations, actions)`` pairs, in which case a hard-label student loss
    is mixed in with weight ``alpha``:

    ``loss = alpha * student_loss(actions, student_logits)
    + (1 - alpha) * w(T) * distillation_loss(teacher_logits, student_logits)``,

    with ``w(T) = T · max(T, 1)`` for the KL loss (1 for the others; see
    `compile`).

    Sample weights weigh both terms per sample, as Keras losses do
    (``sum(w · loss) / batch``). Keras hands them to ``train_step`` only beside
    labels: pass ``(observations, actions, weights)`` (or ``fit(x, y,
    sample_weight=w)``); with ``alpha=0`` the labels are ignored. Calling the distiller
    runs the student. Only the student's variables get gradients; the
    teacher's ``trainable`` flag is left as the caller set it.

    Args:
        student: The model being trained (a Keras 3 model).
        teacher: The fixed teacher (a Keras 3 model).
    """

    def __init__(self, student: keras.Model, teacher: keras.Model, **kwargs):
        super().__init__(**kwargs)
        check_compatible(teacher, student)
        self.student = student
        self.teacher = teacher

    def compile(
        self,
        optimizer="adam",
        distillation_loss: str | keras.losses.Loss = "kl",
        temperature: float | None = None,
        alpha: float = 0.0,
        student_loss: keras.losses.Loss | None = None,
        metrics=None,
        gaussian_kl: str = "decoupled",
        **kwargs,
    ):
        """Configure the distiller.

        Args:
            optimizer: Keras optimizer (or its name) for the student.
            distillation_loss: ``"kl"``, ``"mse"``, ``"nll"`` or a Keras loss
                called as ``loss(teacher_logits, student_logits)``.
            temperature: Softmax temperature T > 0 for ``"kl"``; None: the
                teacher's default (`kd_rl.losses.default_temperature`: 0.01
                for Q-values, 1 for logits).
            alpha: Weight in [0, 1] of ``student_loss`` on hard labels, used
                only when the data carry labels; ``1 - alpha`` weighs the
                distillation loss. The KL term is ``T · max(T, 1) · KL``
                (`kd_rl.losses.loss_weight`, as in every kd_rl update): Hinton's T² for T >= 1,
                T below 1, so that its gradient has the size of the hard
                term's at any T and ``alpha`` means what it says (plain T²
                would shrink the KL term 10,000-fold at T = 0.01). The
                metric ``kl`` is the unweighted ``KL(p_T ‖ q_T)``, comparable
                across temperatures.
            student_loss: Loss on ``(actions, student_logits)``; defaults to
                sparse categorical cross-entropy from logits.
            metrics: Keras metrics of ``(actions, student_logits)``, updated
                when the data carry labels.
            gaussian_kl: Gaussian teachers, ``"kl"``: the ``"decoupled"``
                form (default) or the ``"exact"`` KL
                (`kd_rl.losses.gaussian_kl_loss`); the metric ``kl`` is
                always the exact KL.
            **kwargs: Passed to ``keras.Model.compile`` (``steps_per_execution``,
                ``jit_compile``, ...).
        """
        if not 0.0 <= float(alpha) <= 1.0:
            raise KdRlError(f"alpha must be in [0, 1], got {alpha!r}")
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self.temperature = default_temperature(self.teacher) if temperature is None else check_temperature(temperature)
        self.alpha = float(alpha)
        self.gaussian = is_gaussian(self.teacher)
        self.distillation_loss_fn = get_loss(
            distillation_loss, self.temperature, gaussian=self.gaussian, gaussian_kl=gaussian_kl
        )
        self.distillation_weight = loss_weight(self.distillation_loss_fn)  # the rule every kd_rl update follows
        if self.gaussian:
            self.kl_fn = GaussianKLDistillationLoss(self.temperature, decoupled=False, name="kl")
            # Hard labels of a continuous policy are actions; there is no one right loss for them.
            self.student_loss_fn = student_loss
        else:
            self.kl_fn = KLDistillationLoss(self.temperature, scale_by_temperature_squared=False, name="kl")
            self.student_loss_fn = student_loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        # Keras 3 models own a private `_loss_tracker`; these names are kd_rl's.
        self.total_loss_tracker = keras.metrics.Mean(name="loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.agreement_tracker = keras.metrics.Mean(name="agreement")

    @property
    def metrics(self):
        names = ("total_loss_tracker", "distillation_loss_tracker", "kl_tracker", "agreement_tracker")
        trackers = [getattr(self, n) for n in names if hasattr(self, n)]
        compiled = getattr(self, "_compile_metrics", None)  # Keras's container of compile(metrics=...)
        return trackers + ([compiled] if compiled is not None else [])

    def call(self, observations, training=None):
        return self.student(observations, training=training)

    def _forward_losses(self, data, training):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        teacher_logits = tf.stop_gradient(self.teacher(x, training=False))
        student_logits = self.student(x, training=training)
        distill = self.distillation_weight * self.distillation_loss_fn(
            teacher_logits, student_logits, sample_weight=sample_weight
        )
        total = distill
        if y is not None and self.student_loss_fn is None:
            raise KdRlError(
                "data with labels for a continuous policy need compile(student_loss=...), a loss of "
                "(actions, student [mean, log_std] outputs)"
            )
        if y is not None:
            hard = self.student_loss_fn(y, student_logits, sample_weight=sample_weight)
            total = self.alpha * hard + (1.0 - self.alpha) * distill
        return x, y, sample_weight, teacher_logits, student_logits, distill, total

    def _update_distill_metrics(self, x, y, sample_weight, teacher_logits, student_logits, distill, total):
        self.total_loss_tracker.update_state(total)
        self.distillation_loss_tracker.update_state(distill)
        self.kl_tracker.update_state(self.kl_fn(teacher_logits, student_logits, sample_weight=sample_weight))
        if self.gaussian:
            # Deterministic actions within AGREEMENT_TOLERANCE of the range in every dimension.

            t_actions = self.teacher.actions_from_outputs(teacher_logits)
            s_actions = self.student.actions_from_outputs(student_logits)
            span = tf.constant(self.teacher.action_high - self.teacher.action_low, t_actions.dtype)
            same = tf.reduce_all(tf.abs(t_actions - s_actions) / span <= AGREEMENT_TOLERANCE, axis=-1)
        else:
            same = tf.equal(tf.argmax(teacher_logits, axis=-1), tf.argmax(student_logits, axis=-1))
        self.agreement_tracker.update_state(tf.cast(same, tf.float32), sample_weight=sample_weight)
        if y is not None:
            self.compute_metrics(x, y, student_logits, sample_weight=sample_weight)
        return self.get_metrics_result()

    def train_step(self, data):
        with tf.GradientTape() as tape:
            results = self._forward_losses(data, training=True)
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(results[-1], variables), variables))
        return self._update_distill_metrics(*results)

    def test_step(self, data):
        return self._update_distill_metrics(*self._forward_losses(data, training=False))

    def get_config(self) -> dict:
        return {
            "student": keras.saving.serialize_keras_object(self.student),
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict):
        student = keras.saving.deserialize_keras_object(config.pop("student"))
        teacher = keras.saving.deserialize_keras_object(config.pop("teacher"))
        return cls(student=student, teacher=teacher, **config)


# --------------------------------------------------------------------------
# Distillation on a live environment
# --------------------------------------------------------------------------


def _evaluate_point(student, teacher, config: DistillConfig, temperature: float, env_steps: int, loss: float) -> dict:
    seed = CURVE_EVAL_SEED_OFFSET + config.seed
    stats = run_episodes(
        student, config.env_id, config.curve_episodes, seed=seed, reference=teacher, temperature=temperature,
        env_kwargs=config.env_kwargs,
    )  # fmt: skip
    return {
        "env_steps": env_steps,
        "mean_return": stats.mean_return,
        "std_return": stats.std_return,
        "agreement": stats.agreement,
        "kl": stats.kl,
        "loss": loss,
    }


def log_point(point: dict, writer, tags: dict | None = None) -> dict:
    """Write a curve point's scalars to TensorBoard (``writer`` None: nothing) at its ``env_steps``; return it.

    ``tags``: the point's key -> TensorBoard tag; default a single-task run's
    ``distill/mean_return``, ``distill/agreement``, ``distill/kl`` and ``distill/loss``.
    """
    if writer is not None:
        tags = tags or {key: f"distill/{key}" for key in ("mean_return", "agreement", "kl", "loss")}
        with writer.as_default(step=point["env_steps"]):
            for key, tag in tags.items():
                if point[key] is not None:
                    tf.summary.scalar(tag, point[key])
    return point


#: Columns of a run's curve.csv. ``kl`` is the unscaled ``KL(p_T ‖ q_T)`` on the
#: states the student visits, comparable across losses and temperatures; ``loss``
#: is the training loss of the last update, weighted by `kd_rl.losses.loss_weight` (``T · max(T, 1)`` for ``kl``).
#: ``train_seconds``: wall seconds of the run when the point was taken, its curve evaluations and checkpoints
#: left out (start-up, collection and updates: the time it took to train a student this good).
CURVE_COLUMNS = ("env_steps", "mean_return", "std_return", "agreement", "kl", "loss", "train_seconds")


def distill_policy(
    teacher: keras.Model,
    config: DistillConfig | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    student: keras.Model | None = None,
    teacher_name: str | None = None,
    loss_fn: keras.losses.Loss | None = None,
    command: str | None = None,
) -> tuple[keras.Model, dict]:
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
        command: The command line that started the run (``kd-rl distill`` passes
            its own), recorded in metrics.

    Returns:
        ``(student, metrics)``.

    Raises:
        ValueError: If the teacher does not fit the environment, a setting is
            out of range, or ``out_dir`` already holds another run.
    """

    profile = RunProfile()
    config = config or DistillConfig()
    if config.is_multitask:
        raise KdRlError(
            f"env_id {config.env_id!r} makes a multi-task run: distil it with kd_rl.multitask.distill_multitask "
            "(one teacher per task)"
        )
    env_kwargs = env_kwargs_for(teacher, config.env_id, config.env_kwargs)
    if env_kwargs != (config.env_kwargs or {}):  # an Atari teacher's preprocessing, recorded with the run
        config = dataclasses.replace(config, env_kwargs=env_kwargs)
    obs_dim, num_actions = check_model_fits_env(teacher, config.env_id, "teacher", config.env_kwargs)
    spec = env_spec(config.env_id, **(config.env_kwargs or {}))
    image = obs_dim if spec.is_image else 0
    history = int(getattr(student, "history", config.student_history))  # the buffer keeps the student's windows
    recurrent = _is_recurrent(student) if student is not None else config.student_recurrent > 0
    check_buffer_memory(
        config.buffer_size, config.batch_size, config.updates_per_round, obs_dim * history - image + num_actions,
        image,
    )  # fmt: skip
    if config.conv_layers and not spec.is_image:
        raise KdRlError(
            f"--conv {','.join(':'.join(map(str, c)) for c in config.conv_layers)}: {config.env_id} gives a vector "
            f"of {obs_dim} features, not images; "
            "convolutions are for image observations"
        )
    check_student_view(config, spec, student)
    check_resume_target(out_dir, resume)
    if config.actors:  # before anything is written: Ray missing, or a cluster that does not answer
        check_ray_ready(config.ray_address)
    if config.strategy != "default" and student is not None:
        raise KdRlError(f"strategy={config.strategy!r} makes its own student under the strategy; pass student=None")
    with run_folder(out_dir, resume=resume, overwrite=overwrite) as run_dir:
        start_time = time.perf_counter()
        keras.utils.set_random_seed(config.seed)
        strategy = make_strategy(config.strategy)
        with strategy.scope():  # the default strategy's scope changes nothing
            if student is None:
                student = _new_student(teacher, config, obs_dim, num_actions, spec)
            optimizer = keras.optimizers.Adam(config.learning_rate)
        check_model_fits_env(student, config.env_id, "student", config.env_kwargs)
        step = make_distill_step(  # in its multi-task form, with one task: the form train_loop calls
            [teacher], [student], optimizer, loss_fn or config.loss, config.temperature,
            gaussian_kl=config.gaussian_kl,
            strategy=None if config.strategy == "default" else strategy,  # the one the student was made under
            burn_in=config.burn_in,
        )  # fmt: skip
        (temperature,) = step.temperatures
        if recurrent:  # each environment's states in order, sampled as sequences
            buffer = SequenceBuffer(config.buffer_size, config.num_envs, obs_dim, num_actions, config.sequence_length)
        else:
            buffer = ReplayBuffer(config.buffer_size, obs_dim * history, num_actions, obs_dtype=spec.obs_dtype)
        checkpoint = None if run_dir is None else run_dir / CHECKPOINT_FILE
        checkpoint_every = config.checkpoint_interval
        progress_state = {"env_steps": 0, "curve": [], "wall_seconds": 0.0}
        teacher_id = {"teacher": teacher_name, "teacher_sha256": weights_sha256(teacher)}
        if resume:
            progress_state = resume_progress(
                checkpoint, config, student, optimizer, [buffer], teacher_id, weights=step.weights
            )
        env_steps, curve = progress_state["env_steps"], progress_state["curve"]
        # A resumed run's curve counts on from its checkpoint (older checkpoints kept only the wall seconds).
        profile.carried = progress_state.get("train_seconds", progress_state["wall_seconds"])
        # Environments cannot be checkpointed mid-episode: a resumed run starts
        # fresh episodes, and draws samples, from seeds derived from where it stopped.
        rng = np.random.default_rng([config.seed, env_steps] if env_steps else config.seed)
        scale_out = {"actors": config.actors, "ray_address": config.ray_address} if config.actors else {}
        collector = (DistributedCollector if config.actors else Collector)(
            config.env_id, teacher, student, mode=config.collect, num_envs=config.num_envs,
            seed=config.seed + env_steps, epsilon=config.epsilon,
            beta=BetaSchedule(config.beta_start, config.beta_end), total_steps=config.steps,
            sample_actions=config.sample_actions, env_kwargs=config.env_kwargs, **scale_out,
        )  # fmt: skip
        collector.steps = env_steps
        writer = tf.summary.create_file_writer(str(run_dir / "tensorboard")) if run_dir is not None else None

        def evaluate_point(env_steps: int, loss: float) -> dict:
            return log_point(_evaluate_point(student, teacher, config, temperature, env_steps, loss), writer)

        def checkpoint_run(env_steps: int, curve: list) -> None:
            elapsed = progress_state["wall_seconds"] + time.perf_counter() - start_time
            save_progress(
                checkpoint, config, student, optimizer, [buffer], teacher_id, env_steps, curve, elapsed,
                profile.training_seconds(),
            )  # fmt: skip

        profile.mark("startup", profile.start)
        env_steps = train_loop(
            config, step, [collector], [buffer], rng, env_steps, curve, evaluate_point,
            checkpoint_run if checkpoint is not None else None, progress, "distill", profile,
            noise=[_batch_noise(student)],
        )  # fmt: skip

        train_seconds = progress_state["wall_seconds"] + time.perf_counter() - start_time
        if run_dir is not None:  # first: a full disk is then reported on the file the run is for
            with profile.section("save"):
                save_model(student, run_dir / "student.keras")
        with profile.section("final_eval"):
            metrics = _final_metrics(teacher, student, config, temperature, buffer, env_steps, train_seconds, profile)
        metrics.update(teacher=teacher_name, checkpoint_every=checkpoint_every, replicas=step.replicas, command=command)
        metrics["teacher_sha256"] = teacher_id["teacher_sha256"]
        if loss_fn is not None:
            metrics["loss"] = type(loss_fn).__name__
        metrics["wall_seconds"] = progress_state["wall_seconds"] + time.perf_counter() - start_time
        if run_dir is not None:
            with profile.section("save"):
                write_csv(run_dir / "curve.csv", CURVE_COLUMNS, [[p.get(c) for c in CURVE_COLUMNS] for p in curve])
                writer.close()
        metrics["profile"] = profile.to_dict()
        if run_dir is not None:
            write_json(run_dir / "metrics.json", metrics)
        return student, metrics


def train_loop(
    config, step, collectors, buffers, rng, env_steps: int, curve: list, evaluate, checkpoint,
    progress: bool = True, desc: str = "distill", profile: RunProfile | None = None, noise=(),
) -> int:  # fmt: skip
    """kd_rl's one distillation loop, for one task or several (`distill_policy`, `kd_rl.multitask.distill_multitask`).

    Each round, every task's collector takes ``collect_per_round`` env steps
    (its teacher labels each state) into the task's buffer; one call of
    ``step`` (`make_distill_step`) then runs ``updates_per_round`` updates, each
    on a batch of ``batch_size`` from every task's buffer; ``evaluate(env_steps,
    loss)`` adds a curve point every ``eval_every`` steps and at the end (``loss``:
    the last update's, summed over tasks), and ``checkpoint(env_steps, curve)``
    (None: never) saves the run every ``checkpoint_interval`` steps, not at the
    end. Runs until ``config.steps`` steps per task; the collectors are closed
    however it ends. ``profile`` (a `kd_rl.timing.RunProfile`), if given,
    gets the seconds of collection (and, through the collectors, of its
    parts), updates, curve evaluations and checkpoints. ``noise`` (one entry
    per task, None for none) is the student's sensor noise
    (`kd_rl.models.sensor_noise_std`), drawn afresh onto every training batch
    of the task; the teacher's labels stay those of the clean states.

    Returns:
        The env steps taken per task, ``config.steps``.
    """
    stack = (config.updates_per_round, config.batch_size)
    profile = profile or RunProfile()
    for collector in collectors:
        if hasattr(collector, "profile"):
            collector.profile = profile
    bar = tqdm(total=config.steps, initial=env_steps, disable=not progress, desc=desc, unit="step")
    try:
        while env_steps < config.steps:
            chunk = min(config.collect_per_round, config.steps - env_steps)
            with profile.section("collect"):
                for collector, buffer in zip(collectors, buffers):
                    sequences = isinstance(buffer, SequenceBuffer)  # a recurrent student's: where each state came from
                    buffer.add(*(collector.collect_steps(chunk) if sequences else collector.collect(chunk)))
            before, env_steps = env_steps, env_steps + chunk
            with profile.section("updates"):
                # All of a round's updates in one call: [updates, batch, ...] stacks, one per task.
                rows = [_rows_per_update(config, buffer) for buffer in buffers]
                batches = [buffer.sample(stack[0] * n, rng) for buffer, n in zip(buffers, rows)]
                for k, std in enumerate(noise):
                    if std is not None:
                        obs, lab = batches[k]
                        batches[k] = (sensor_readings(std, rng)(obs), lab)
                observations = tuple(obs.reshape((stack[0], n, *obs.shape[1:])) for (obs, _), n in zip(batches, rows))
                labels = tuple(lab.reshape((stack[0], n, *lab.shape[1:])) for (_, lab), n in zip(batches, rows))
                if getattr(step, "multi", True):
                    losses = step(observations, labels).numpy()  # [updates, tasks]
                else:  # a step built from one teacher and one student: one task
                    losses = step(observations[0], labels[0]).numpy().reshape(stack[0], 1)
            loss = float(losses[-1].sum())
            bar.update(chunk)
            bar.set_postfix(loss=f"{loss:.4g}")
            done = env_steps >= config.steps
            if due(config.eval_every, before, env_steps) or done:
                trained = profile.training_seconds()
                with profile.section("curve_evals"):
                    curve.append({**evaluate(env_steps, loss), "train_seconds": round(trained, 3)})
            if checkpoint is not None and not done and due(config.checkpoint_interval, before, env_steps):
                with profile.section("checkpoints"):
                    checkpoint(env_steps, curve)
    finally:
        bar.close()
        for collector in collectors:
            collector.close()
    return env_steps


def _rows_per_update(config, buffer) -> int:
    """What one update samples from ``buffer``: ``batch_size`` states, or enough sequences that about
    ``batch_size`` of their states are learnt from (those after the burn-in)."""
    if not isinstance(buffer, SequenceBuffer):
        return config.batch_size
    return -(-config.batch_size // (config.sequence_length - config.burn_in))


def _is_recurrent(model) -> bool:
    return isinstance(model, RecurrentStudent)


def _new_student(teacher, config: DistillConfig, obs_dim: int, num_outputs: int, spec=None) -> StudentModel:
    """A new ``StudentModel`` of ``config.hidden_units`` for ``teacher``'s action space.

    For image observations (``spec.is_image``) it takes the environment's
    frames in their own shape, through ``config.conv_layers`` (None: the
    teacher's, if it has convolutions; empty: an MLP on the flattened image).
    """
    common = {"hidden_units": config.hidden_units, "activation": config.activation, "observation_dim": obs_dim}
    common.update(observation_indices=config.student_obs, observation_noise=config.student_obs_noise)
    if config.student_history > 1:
        common["history"] = config.student_history
    if spec is not None and spec.is_image:
        convs = config.conv_layers if config.conv_layers is not None else getattr(teacher, "conv_layers", ())
        common.update(observation_shape=spec.obs_shape, conv_layers=convs, preprocessing=spec.preprocessing)
        if spec.obs_scale != 1.0 and not config.inherit_normalizer:
            common["observation_std"] = [spec.obs_scale]  # Atari's bytes into [0, 1], as the teacher saw them
    if config.inherit_normalizer:
        for key in ("observation_mean", "observation_std", "observation_clip"):
            common[key] = getattr(teacher, key, None)
    if config.student_recurrent:
        common.update(recurrent_units=config.student_recurrent, cell=config.student_cell)
    cls = RecurrentStudent if config.student_recurrent else StudentModel
    if not is_gaussian(teacher):
        return cls(num_outputs, **common)
    return cls(
        **common,
        action_low=teacher.action_low,
        action_high=teacher.action_high,
        squash=teacher.squash,
        state_dependent_std=config.state_dependent_std,
        log_std_range=teacher.log_std_range,
    )


def _batch_noise(student) -> np.ndarray | None:
    """The sensor noise of each entry of ``student``'s training input: one reading's, in every reading of a window."""
    noise = sensor_noise_std(student)
    if noise is None:
        return None
    if _is_recurrent(student):  # a sequence's last feature flags episode starts: never noisy
        return np.append(noise, np.float32(0.0))
    return np.tile(noise, int(getattr(student, "history", 1)))


def check_student_view(config: DistillConfig, spec, student=None) -> None:
    """Refuse ``student_obs`` and ``student_obs_noise`` that do not fit the environment or a given student.

    Raises:
        ValueError: For indices outside the observation, a view of image
            observations, or a given ``student`` that sees otherwise; the message names it.
    """
    recurrent = config.student_recurrent > 0 or _is_recurrent(student)
    view = config.student_obs is not None or config.student_obs_noise > 0 or config.student_history > 1 or recurrent
    if view and spec.is_image:
        raise KdRlError(
            f"--student-obs, --student-obs-noise, --student-history and --student-recurrent are for vector "
            f"observations; {config.env_id} gives images {spec.obs_shape}"
        )
    if recurrent and config.strategy != "default":
        raise KdRlError(
            f"--strategy {config.strategy}: a recurrent student learns on one device (leave --strategy out)"
        )
    if recurrent and config.burn_in >= config.sequence_length:
        raise KdRlError(
            f"burn_in={config.burn_in} must be below sequence_length={config.sequence_length}: the steps after the "
            "burn-in are the ones learnt from"
        )
    if recurrent and config.actors:
        raise KdRlError(
            f"--actors {config.actors}: a recurrent student's sequences are collected in this process "
            "(leave --actors out)"
        )
    first_round = min(config.collect_per_round, config.steps) // config.num_envs  # states per environment
    if recurrent and first_round < config.sequence_length:
        raise KdRlError(
            f"a recurrent student's first round collects {first_round} states per environment (--collect-per-round "
            f"{config.collect_per_round} or --steps {config.steps}, over --num-envs {config.num_envs}), fewer than "
            f"a sequence of --sequence-length {config.sequence_length}: collect more per round or use fewer "
            "environments"
        )
    if recurrent and config.collect == "teacher":
        warnings.warn(
            "a recurrent student learning from teacher-driven data only (--collect teacher) never sees the states "
            "its own memory leads to; --collect student (DAgger, the default) or mixed is what makes memory pay",
            stacklevel=3,
        )
    if config.student_obs is not None:
        normalise_observation_indices(config.student_obs, spec.obs_dim)
    if student is None:
        return
    given = {"student_obs": getattr(student, "observation_indices", None),
             "student_obs_noise": float(getattr(student, "observation_noise", 0.0) or 0.0),
             "student_history": int(getattr(student, "history", 1)),
             "student_recurrent": int(getattr(student, "recurrent_units", 0))}  # fmt: skip
    defaults = {"student_obs": None, "student_obs_noise": 0.0, "student_history": 1, "student_recurrent": 0}
    for name, value in given.items():
        wanted = getattr(config, name)
        if wanted != defaults[name] and wanted != value:
            raise KdRlError(
                f"{name}={wanted!r} but the given student has {value!r}: a given student keeps what it sees "
                f"(leave {name} out)"
            )


def fixed_policy_returns(teacher, config: DistillConfig, env_id: str, env_kwargs=None):
    """The teacher's and a random policy's returns on the final evaluation's episodes, through the cache.

    Shared by `distill_policy` and `kd_rl.multitask.distill_multitask`. Returns
    ``(teacher_stats, random_stats, {"teacher": status, "random": status})``
    with each status from `kd_rl.eval_cache.cached_episodes`.
    """
    seed = FINAL_EVAL_SEED_OFFSET + config.seed
    episodes, use = config.eval_episodes, config.eval_cache
    teacher_stats, t_status = cached_episodes(teacher, env_id, episodes, seed, env_kwargs, use_cache=use)
    random = RandomPolicy.for_env(env_id, seed, env_kwargs)
    random_stats, r_status = cached_episodes(random, env_id, episodes, seed, env_kwargs, use_cache=use)
    return teacher_stats, random_stats, {"teacher": t_status, "random": r_status}


def _final_metrics(teacher, student, config, temperature, buffer, env_steps, train_seconds, profile) -> dict:
    """Both policies, and a random one, on the same ``eval_episodes`` seeded episodes; and the run's settings."""

    eval_seed = FINAL_EVAL_SEED_OFFSET + config.seed
    kwargs = config.env_kwargs
    with profile.section("final_eval_teacher"):
        teacher_eval, random_eval, cache = fixed_policy_returns(teacher, config, config.env_id, kwargs)
    random_return = random_eval.mean_return
    student_eval = evaluate_model(
        student, config.env_id, config.eval_episodes, eval_seed, reference=teacher, latency=False, env_kwargs=kwargs
    )
    kl = run_episodes(
        student, config.env_id, config.curve_episodes, eval_seed, reference=teacher, temperature=temperature,
        env_kwargs=kwargs,
    )  # fmt: skip
    metrics = {
        **config.to_dict(),
        "env_id": config.env_id,
        # The softmax temperature of the KL loss (None for mse and nll, which have none); the
        # curve's and metrics' kl is measured at kl_temperature whatever the loss.
        "temperature": temperature if config.loss == "kl" else None,
        "kl_temperature": temperature,
        "teacher_outputs": getattr(teacher, "output_type", None),
        "teacher_mean_return": teacher_eval.mean_return,
        "teacher_std_return": teacher_eval.std_return,
        "student_mean_return": student_eval["mean_return"],
        "student_std_return": student_eval["std_return"],
        "student_min_return": student_eval["min_return"],
        # Per episode, on the same seeds: what a model card's "mean +/- std" and a reader's own statistics need.
        "teacher_returns": [float(r) for r in teacher_eval.returns],
        "student_returns": [float(r) for r in student_eval["returns"]],
        "random_mean_return": random_return,
        "normalised_score": normalised_score(student_eval["mean_return"], teacher_eval.mean_return, random_return),
        "agreement": student_eval["agreement"],
        "action_error": student_eval.get("action_error"),
        "kl": kl.kl,
        "teacher_params": count_params(teacher),
        "student_params": count_params(student),
        "compression": count_params(teacher) / count_params(student),
        "student_size_bytes": student_eval["size_bytes"],
        "env_steps": env_steps,
        "labelled_states": int(buffer.added),
        "train_seconds": train_seconds,
        "eval_episodes": config.eval_episodes,
        "eval_seed": eval_seed,
        "eval_cache_status": cache,
    }
    if getattr(student, "hidden_units", None) is not None:
        metrics["hidden_units"] = list(student.hidden_units)  # a given student may differ from the config
    metrics["student_class"] = type(student).__name__
    if _is_recurrent(student):  # a given student's memory, whatever the config said
        metrics.update(student_recurrent=student.recurrent_units, student_cell=student.cell_type)
    return metrics


#: Settings that may differ between a run and its resumption (they do not change what is learned).
RESUMABLE_SETTINGS = (
    "steps", "eval_episodes", "eval_cache", "checkpoint_every", "curve_episodes", "eval_every", "ray_address",
    "strategy",
)  # fmt: skip

#: Settings a checkpoint of an older kd_rl lacks take their default (``actors`` came after 0.2.0).
_DEFAULTS = {
    "actors": 0, "student_obs_noise": 0.0, "student_history": 1, "student_recurrent": 0, "student_cell": "gru",
    "sequence_length": 32, "burn_in": 8,
}  # fmt: skip


def check_resume_target(out_dir, resume: bool) -> None:
    """With ``resume``, refuse a run folder without a checkpoint or with a finished run, before anything else.

    Raises:
        ResumeRefused: Saying which, and what to do instead.
    """
    if not resume:
        return
    if out_dir is None or not os.path.isfile(os.path.join(out_dir, CHECKPOINT_FILE)):
        raise ResumeRefused(
            f"nothing to resume: {str(out_dir)!r} holds no distillation checkpoint ({CHECKPOINT_FILE}); "
            "run without --resume (a run checkpoints with --checkpoint-every)"
        )
    if os.path.isfile(os.path.join(out_dir, "metrics.json")):
        raise ResumeRefused(
            f"nothing to resume: the run in {str(out_dir)!r} has finished (metrics.json); "
            "pass --overwrite to run it again"
        )


def save_progress(
    path, config, student, optimizer, buffers, teachers: dict, env_steps: int, curve, wall_seconds,
    train_seconds: float | None = None,
) -> None:  # fmt: skip
    """Checkpoint a run (`kd_rl._io.save_checkpoint`) with what `resume_progress` checks and restores.

    Shared by `distill_policy` and `kd_rl.multitask.distill_multitask`; the
    progress record holds ``env_steps``, ``curve``, ``wall_seconds``,
    ``train_seconds`` (the wall seconds less the curve's evaluations and the
    checkpoints, `kd_rl.timing.RunProfile.training_seconds`), the config and
    the teachers' names and weight hashes.
    """
    progress = {
        "env_steps": env_steps, "curve": curve, "wall_seconds": wall_seconds, "config": config.to_dict(),
        "loss_weighting": LOSS_WEIGHTING,
        "train_seconds": wall_seconds if train_seconds is None else train_seconds,
    }  # fmt: skip
    save_checkpoint(path, student, optimizer, buffers, {**progress, **teachers})


def resume_progress(path, config, student, optimizer, buffers, teachers: dict, weights: Sequence[float] = ()) -> dict:
    """Restore a run from its checkpoint (`kd_rl._io.read_checkpoint`), checking that it belongs to this run.

    Shared by `distill_policy` and `kd_rl.multitask.distill_multitask`. The
    file is only read: a damaged one is left as it is, for inspection.

    Args:
        path: The checkpoint file.
        config: The new run's `DistillConfig` (single- or multi-task).
        student: The new run's student, its weights set from the checkpoint.
        optimizer: Its optimizer (built), its state set from the checkpoint.
        buffers: One `kd_rl.data.ReplayBuffer` per task, refilled from the checkpoint.
        teachers: ``{"teacher": name(s), "teacher_sha256": hash(es)}`` of this run's teacher(s).
        weights: The step's loss weights (``step.weights``): a checkpoint written
            before kd_rl weighed every KL by `kd_rl.losses.loss_weight` (kd_rl
            0.2 weighed a single-task run's by T²) is refused where that
            differs, at T < 1, since Adam's saved state is of the old scale.

    Returns:
        The checkpoint's progress record: ``env_steps``, ``curve``, ``wall_seconds``, ...

    Raises:
        ResumeRefused: If the settings or teachers differ from the checkpoint's
            (naming them), ``config.steps`` is below the steps already done, or
            a newer kd_rl wrote the file.
        KdRlError: If the file is damaged or does not match the student, optimizer or buffers.
    """
    arrays, progress = read_checkpoint(path)
    settings = config.to_dict()
    check_resumable(str(path), progress, settings, RESUMABLE_SETTINGS, _DEFAULTS, teachers, config.steps)
    if progress.get("loss_weighting") != LOSS_WEIGHTING and any(w < 1 for w in weights):
        raise ResumeRefused(
            f"cannot resume {str(path)!r}: an older kd_rl wrote it, weighing the KL by T² where kd_rl now "
            f"weighs it by T · max(T, 1) ({', '.join(f'{w:g}' for w in weights)} here); the optimizer's saved state "
            "is of the old scale: run again with --overwrite"
        )
    restore_checkpoint(str(path), arrays, student, optimizer, buffers)
    return progress
