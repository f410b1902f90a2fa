"""Distillation steps: a compiled ``tf.function`` and a Keras ``Distiller``.

:func:`make_distill_step` is the low-level tool the live-environment loop uses:
one call takes a batch of observations (and, optionally, the teacher's logits
already stored in a replay buffer), updates only the student, and returns the
loss.

:class:`Distiller` is the same idea as a ``keras.Model`` in the manner of the
Keras knowledge-distillation example, so ``fit``, ``evaluate``, callbacks and
``tf.data`` work unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from kd_rl.losses import check_temperature, get_loss
from kd_rl.models import PolicyModel

__all__ = ["make_distill_step", "Distiller", "check_compatible"]


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

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def step(observations, teacher_logits=None):
        observations = tf.convert_to_tensor(observations, dtype=tf.float32)
        if teacher_logits is None:
            teacher_logits = teacher(observations, training=False)
        with tf.GradientTape() as tape:
            student_logits = student(observations, training=True)
            value = loss_fn(teacher_logits, student_logits)
        grads = tape.gradient(value, student.trainable_variables)
        optimizer.apply_gradients(zip(grads, student.trainable_variables))
        return value

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
        **kwargs,
    ):
        """Configure the distiller.

        Args:
            optimizer: Keras optimizer (or its name) for the student.
            distillation_loss: ``"kl"``, ``"mse"``, ``"nll"`` or a Keras loss
                called as ``loss(teacher_logits, student_logits)``.
            temperature: Softmax temperature T > 0 for ``"kl"``; the KL is
                scaled by T² so its gradient keeps the same size for every T.
            alpha: Weight in [0, 1] of ``student_loss`` on hard labels, used
                only when the data carry labels; ``1 - alpha`` weighs the
                distillation loss.
            student_loss: Loss on ``(actions, student_logits)``; defaults to
                sparse categorical cross-entropy from logits.
            metrics: Keras metrics of ``(actions, student_logits)``, updated
                when the data carry labels.
        """
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self.temperature = check_temperature(temperature)
        self.alpha = float(alpha)
        self.distillation_loss_fn = get_loss(distillation_loss, self.temperature)
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
