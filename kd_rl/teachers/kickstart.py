r"""Kickstarting: an RL agent whose loss also pulls its policy towards a teacher's.

Kickstarting (Schmitt et al., 2018) trains an agent on its own reward and, on
the states it visits itself, adds a distillation term towards a fixed teacher
whose weight $\lambda_t$ decays over training:

$$L = L_{RL} + \lambda_t \, D(\pi_{teacher} \| \pi_{student})$$

Early on the term gives the student the teacher's behaviour in far fewer
environment steps than learning from scratch; once $\lambda_t$ has decayed the
reward alone drives the student, which can then outgrow an imperfect teacher
(pure distillation, $L = D$, stays at the teacher's level). The student's
network may be smaller than the teacher's.

$D$ is a KL divergence, averaged over the batch (``weights`` masks invalid
steps, as PPO's do):

* discrete actions: $w(\tau) \, \mathrm{KL}(\mathrm{softmax}(v / T) \| \mathrm{softmax}(z / \tau))$
  with teacher outputs $v$ at temperature $T$ (default by what they are:
  0.01 for Q-values, 1 for logits, `kd_rl.losses.DEFAULT_TEMPERATURES`) and the
  student's outputs $z$ at its own temperature $\tau$ (a DQN's "policy" is
  $\mathrm{softmax}(Q / 0.01)$, a PPO actor's its logits, $\tau = 1$), weighted
  by $w(\tau) = \tau \max(\tau, 1)$ (`kd_rl.losses.temperature_weight`) so that
  the gradient with respect to a student output is $q - p$, bounded by 1 like
  a TD or policy-gradient term's. Schmitt et al. write the cross-entropy
  $H(p, q)$; it differs from $\mathrm{KL}(p \| q)$ by the teacher's entropy,
  which the student cannot change, so the gradients are the same, and the KL
  is 0 when the student matches the teacher, which makes the logged term read
  as a distance;
* continuous actions: the KL of the Gaussians ``[mean, log_std]``
  (`kd_rl.losses.gaussian_kl_loss`, the teacher's standard deviation scaled by
  $T$), for SAC before the tanh squash: KL does not change under one
  invertible map applied to both, so teacher and student must squash alike
  into the same bounds.

The schedules of $\lambda_t$ over environment steps $t$ (`kickstart_weight`),
with ``until`` $= t_{end}$:

* ``constant``: $\lambda_0$;
* ``linear``: $\lambda_0 \max(0, 1 - t / t_{end})$: no teacher after $t_{end}$;
* ``exponential``: $\lambda_0 \cdot 100^{-t / t_{end}}$: 1% of $\lambda_0$ at $t_{end}$.

Each agent class is the TF-Agents agent kd_rl already trains, with the term
added where its loss is made: `KickstartedDqnAgent` / `KickstartedDdqnAgent`
(the TD loss, ``_loss``), `KickstartedPPOClipAgent` (the policy-gradient loss,
``policy_gradient_loss``, which receives the actor's current distribution) and
`KickstartedSacAgent` (``actor_loss``). The teacher, a Keras 3 kd_rl model,
is called inside the agents' ``tf.function``s on the batch's observations.

`kd_rl.teachers.train_teacher` (``kickstart=``) and ``kd-rl train-teacher --kickstart`` build
a `Kickstart` and pass it to the agent factories (``make_dqn_agent(..., kickstart=)``).

Example:
    >>> metrics = train_teacher(  # doctest: +SKIP
    ...     "CartPole-v1", "dqn", "runs/kick", hidden_units=64,
    ...     kickstart="CartPole-v1-dqn-large", kickstart_schedule="linear", kickstart_until=20_000,
    ... )
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import tf_keras
from tf_agents.agents.dqn import dqn_agent
from tf_agents.agents.ppo import ppo_clip_agent
from tf_agents.agents.sac import sac_agent
from tf_agents.trajectories import trajectory

from kd_rl.config import KICKSTART_SCHEDULES
from kd_rl.errors import KdRlError
from kd_rl.evaluate import check_model_fits_env
from kd_rl.losses import (
    DEFAULT_TEMPERATURES,
    check_temperature,
    default_temperature,
    gaussian_kl_loss,
    kl_divergence_loss,
    temperature_weight,
)
from kd_rl.models import LOG_STD_RANGE

__all__ = [
    "CURVE_COLUMNS",
    "SCHEDULES",
    "STUDENT_TEMPERATURES",
    "Kickstart",
    "KickstartedDdqnAgent",
    "KickstartedDqnAgent",
    "KickstartedPPOClipAgent",
    "KickstartedSacAgent",
    "check_kickstart_teacher",
    "kickstart_loss",
    "kickstart_weight",
]

#: The schedules of the distillation weight λ over environment steps (declared in `kd_rl.config`).
SCHEDULES = KICKSTART_SCHEDULES

#: The temperature τ of the student's own discrete policy ``softmax(outputs / τ)``:
#: a DQN's outputs are Q-values, a PPO actor's are logits.
STUDENT_TEMPERATURES = {"dqn": DEFAULT_TEMPERATURES["q_values"], "ppo": DEFAULT_TEMPERATURES["logits"]}

#: The columns a kickstarted run adds to curve.csv (the values last logged before each evaluation).
CURVE_COLUMNS = ("kickstart_weight", "rl_loss", "kickstart_loss")


def kickstart_weight(schedule: str, weight: float, until: int, env_steps: int) -> float:
    r"""λ at ``env_steps``: ``constant`` λ0, ``linear`` λ0·max(0, 1 − t/until), ``exponential`` λ0·100^(−t/until)."""
    t = max(int(env_steps), 0) / until
    if schedule == "constant":
        return float(weight)
    if schedule == "linear":
        return float(weight) * max(0.0, 1.0 - t)
    if schedule == "exponential":
        return float(weight) * 100.0**-t
    raise KdRlError(f"schedule must be one of {list(SCHEDULES)}, got {schedule!r}")


def kickstart_loss(
    teacher_outputs,
    student_outputs,
    teacher_temperature: float,
    student_temperature: float = 1.0,
    gaussian: bool = False,
    weights=None,
) -> tf.Tensor:
    r"""The distillation term $D(\pi_{teacher} \| \pi_{student})$, a float32 scalar.

    Discrete: $w(\tau) \frac{1}{B} \sum_b \mathrm{KL}(\mathrm{softmax}(v_b / T) \|
    \mathrm{softmax}(z_b / \tau))$, $w(\tau) = \tau \max(\tau, 1)$; its
    gradient with respect to $z_{b,i}$ is $\frac{\max(\tau, 1)}{B} (q_{b,i} - p_{b,i})$.
    Gaussian: `kd_rl.losses.gaussian_kl_loss` with temperature $T$.

    Args:
        teacher_outputs: float32 ``[..., n]``: logits or Q-values, or ``[mean, log_std]``; a fixed target.
        student_outputs: float32 ``[..., n]``, the same kind of outputs as the teacher's
            (for a Gaussian, before any squash).
        teacher_temperature: $T > 0$.
        student_temperature: $\tau > 0$ (discrete only).
        gaussian: The outputs are Gaussians' ``[mean, log_std]``.
        weights: Optional ``[...]`` mask: only entries > 0 count (PPO's mask of invalid steps).

    Returns:
        The mean over the counted entries; 0 if there are none.
    """
    teacher_outputs = tf.stop_gradient(tf.convert_to_tensor(teacher_outputs, tf.float32))
    student_outputs = tf.convert_to_tensor(student_outputs)
    if weights is not None:
        keep = tf.convert_to_tensor(weights) > 0
        teacher_outputs = tf.boolean_mask(teacher_outputs, keep)
        student_outputs = tf.boolean_mask(student_outputs, keep)
    if gaussian:
        loss = gaussian_kl_loss(teacher_outputs, student_outputs, teacher_temperature)
    else:
        # softmax(v / T) = softmax((v tau / T) / tau): one temperature for kl_divergence_loss.
        tau, t = check_temperature(student_temperature), check_temperature(teacher_temperature)
        loss = kl_divergence_loss(teacher_outputs * (tau / t), student_outputs, tau, False) * temperature_weight(tau)
    return tf.cond(tf.size(student_outputs) > 0, lambda: loss, lambda: tf.zeros_like(loss))


def check_kickstart_teacher(teacher, env_id: str, algo: str, env_kwargs: dict | None = None) -> None:
    """Raise ``ValueError`` unless ``teacher`` can kickstart an ``algo`` agent on ``env_id``.

    The teacher must read the environment's observations and act in its
    action space (`kd_rl.evaluate.check_model_fits_env`); a continuous
    teacher must also squash as the student does: tanh-squashed for SAC,
    clipped (not squashed) for PPO.
    """

    check_model_fits_env(teacher, env_id, role="kickstart teacher", env_kwargs=env_kwargs or None)
    if getattr(teacher, "is_continuous", False):
        wanted = algo == "sac"
        if bool(teacher.squash) != wanted:
            raise KdRlError(
                f"kickstart teacher is a {'tanh-squashed' if teacher.squash else 'clipped'} Gaussian policy but a "
                f"{algo} agent's is {'tanh-squashed' if wanted else 'clipped'}: the KL of their Gaussians "
                "is the KL of the policies only if both squash alike"
            )


class Kickstart(tf.Module):
    """A teacher, a λ schedule and the running sums of both loss terms, shared by a kickstarted agent and its loop.

    The training loop calls `set_step` with the environment steps before each
    training round; the agent calls `add` inside its loss; the logs read `scalars`.

    Args:
        teacher: A Keras 3 kd_rl policy (e.g. `kd_rl.models.load_policy` of a
            zoo name): Q-values or logits for discrete actions, ``[mean, log_std]``
            for continuous ones. It is not trained (no gradient reaches it).
        weight: λ0 >= 0, the distillation weight at step 0.
        schedule: One of `SCHEDULES`.
        until: Environment steps at which ``linear`` reaches 0 and
            ``exponential`` 1% of λ0; needed by both (``constant`` ignores it).
            `train_teacher`'s default is half the run's steps.
        temperature: The teacher's temperature T; None: by its outputs
            (`kd_rl.losses.default_temperature`).
        source: What the teacher was loaded from, for the run's metrics.

    Raises:
        ValueError: For a negative or non-finite ``weight``, an unknown
            ``schedule``, ``until`` < 1 (or missing for a decaying schedule) or
            a temperature <= 0.
    """

    def __init__(
        self,
        teacher,
        weight: float = 1.0,
        schedule: str = "linear",
        until: int | None = None,
        temperature: float | None = None,
        source: str | None = None,
    ):
        super().__init__(name="kickstart")
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            raise KdRlError(f"kickstart weight must be a number >= 0, got {weight!r}") from None
        if not (math.isfinite(weight) and weight >= 0):
            raise KdRlError(f"kickstart weight must be a finite number >= 0, got {weight!r}")
        if schedule not in SCHEDULES:
            raise KdRlError(f"kickstart schedule must be one of {list(SCHEDULES)}, got {schedule!r}")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int | np.integer) or until < 1):
            raise KdRlError(f"kickstart until must be an int >= 1 (env steps) or None, got {until!r}")
        if until is None and schedule != "constant":
            raise KdRlError(f"kickstart schedule {schedule!r} needs until (the env steps it decays over), got None")
        self.initial_weight, self.schedule = weight, schedule
        self.until = None if until is None else int(until)
        self.temperature = default_temperature(teacher) if temperature is None else check_temperature(temperature)
        self.gaussian = bool(getattr(teacher, "is_continuous", False))
        self.source = source
        self.output_type = getattr(teacher, "output_type", None)
        # A closure, not an attribute: the agent's checkpoint should hold the student, not the teacher.
        self._teacher = lambda observations: teacher(observations, training=False)
        self.weight = tf.Variable(weight, dtype=tf.float32, trainable=False, name="kickstart_weight")
        # Sums of the RL term, the distillation term and the count since the last `scalars`.
        self._sums = tf.Variable(tf.zeros(3), trainable=False, name="kickstart_sums")
        #: The values `scalars` last gave (NaN before any).
        self.latest = {name: float("nan") for name in CURVE_COLUMNS}

    def weight_at(self, env_steps: int) -> float:
        """λ after ``env_steps`` environment steps (see `kickstart_weight`)."""
        return kickstart_weight(self.schedule, self.initial_weight, self.until or 1, env_steps)

    def set_step(self, env_steps: int) -> None:
        """Set λ for the gradient steps that follow ``env_steps`` environment steps."""
        self.weight.assign(self.weight_at(env_steps))

    def teacher_outputs(self, observations) -> tf.Tensor:
        """The teacher's outputs, ``float32 [..., n]``, on raw ``observations: float32 [..., obs_dim]``."""
        return tf.cast(self._teacher(tf.cast(observations, tf.float32)), tf.float32)

    def add(self, rl_loss, observations, student_outputs, student_temperature: float = 1.0, weights=None):
        """``rl_loss + λ D``: the term `kickstart_loss` on ``observations``, both terms summed for `scalars`.

        Args:
            rl_loss: The agent's own loss, a scalar.
            observations: float32 ``[..., obs_dim]``, the batch's (raw) observations.
            student_outputs: float32 ``[..., n]``, the student's outputs on them.
            student_temperature: τ of a discrete student (`STUDENT_TEMPERATURES`).
            weights: Optional ``[...]`` mask of the entries that count.
        """
        term = kickstart_loss(
            self.teacher_outputs(observations),
            student_outputs,
            self.temperature,
            student_temperature,
            gaussian=self.gaussian,
            weights=weights,
        )
        rl_loss = tf.cast(rl_loss, tf.float32)
        self._sums.assign_add(tf.stack([tf.stop_gradient(rl_loss), tf.stop_gradient(term), 1.0]))
        return rl_loss + self.weight * term

    def scalars(self) -> dict:
        """``kickstart_weight`` (λ now), and the mean ``rl_loss`` and ``kickstart_loss`` since the last call.

        Without gradient steps since then, the losses are the last means.
        """
        rl, term, count = (float(x) for x in self._sums.numpy())
        if count > 0:
            self.latest.update(rl_loss=rl / count, kickstart_loss=term / count)
            self._sums.assign(tf.zeros(3))
        self.latest["kickstart_weight"] = float(self.weight.numpy())
        return dict(self.latest)

    def describe(self) -> dict:
        """The settings, as JSON for ``metrics.json``."""
        return {
            "teacher": self.source,
            "teacher_outputs": self.output_type,
            "weight": self.initial_weight,
            "schedule": self.schedule,
            "until": self.until,
            "temperature": self.temperature,
            "final_weight": float(self.weight.numpy()),
        }


def _observations(experience) -> tf.Tensor:
    """The observations a DQN loss is computed on: a ``Transition``'s time steps, or a ``Trajectory``'s."""
    if not isinstance(experience, trajectory.Transition):
        experience = trajectory.to_transition(experience)
    return experience.time_step.observation


class _KickstartedDqnMixin:
    """The DQN loss plus λ·D on the sampled observations; the student's policy is ``softmax(Q / 0.01)``."""

    def __init__(self, *args, kickstart: Kickstart, q_network, **kwargs):
        super().__init__(*args, q_network=q_network, **kwargs)
        self.kickstart = kickstart
        self._student = q_network

    def _loss(self, experience, *args, training=False, **kwargs):
        info = super()._loss(experience, *args, training=training, **kwargs)
        observations = _observations(experience)
        q_values, _ = self._student(observations, training=training)
        total = self.kickstart.add(info.loss, observations, q_values, STUDENT_TEMPERATURES["dqn"])
        return info._replace(loss=total)


class KickstartedDqnAgent(_KickstartedDqnMixin, dqn_agent.DqnAgent):
    """TF-Agents' ``DqnAgent`` with the kickstarting term (keyword ``kickstart``, a `Kickstart`)."""


class KickstartedDdqnAgent(_KickstartedDqnMixin, dqn_agent.DdqnAgent):
    """TF-Agents' ``DdqnAgent`` with the kickstarting term (keyword ``kickstart``, a `Kickstart`)."""


class KickstartedPPOClipAgent(ppo_clip_agent.PPOClipAgent):
    """TF-Agents' ``PPOClipAgent`` whose policy-gradient loss gains λ·KL(teacher ‖ actor).

    The term uses the actor's current distribution on the rollout's steps
    (the one PPO's own loss uses): its logits (τ = 1), or its Gaussian's mean
    and log standard deviation; steps PPO masks out do not count.
    """

    def __init__(self, *args, kickstart: Kickstart, **kwargs):
        super().__init__(*args, **kwargs)
        self.kickstart = kickstart

    def policy_gradient_loss(
        self, time_steps, actions, sample_action_log_probs, advantages, distribution, weights, debug_summaries=False
    ):
        loss = super().policy_gradient_loss(
            time_steps, actions, sample_action_log_probs, advantages, distribution, weights, debug_summaries
        )
        if self.kickstart.gaussian:
            outputs = tf.concat([distribution.mean(), tf.math.log(distribution.stddev())], axis=-1)
        else:
            outputs = distribution.logits_parameter()
        return self.kickstart.add(loss, time_steps.observation, outputs, STUDENT_TEMPERATURES["ppo"], weights)


class KickstartedSacAgent(sac_agent.SacAgent):
    """TF-Agents' ``SacAgent`` whose actor loss gains λ·KL of the Gaussians before the tanh squash.

    The student's ``[mean, log_std]`` are its actor's last Dense layer's
    outputs, ``log_std`` clipped as TF-Agents clips it (`kd_rl.models.LOG_STD_RANGE`).
    """

    def __init__(self, *args, kickstart: Kickstart, actor_network, **kwargs):
        super().__init__(*args, actor_network=actor_network, **kwargs)
        self.kickstart = kickstart
        self._student_layers = [layer for layer in actor_network.layers if isinstance(layer, tf_keras.layers.Dense)]

    def actor_loss(self, time_steps, weights=None, training=True):
        loss = super().actor_loss(time_steps, weights=weights, training=training)
        x = time_steps.observation
        for layer in self._student_layers:
            x = layer(x, training=training)
        mean, log_std = tf.split(x, 2, axis=-1)
        outputs = tf.concat([mean, tf.clip_by_value(log_std, *LOG_STD_RANGE)], axis=-1)
        return self.kickstart.add(loss, time_steps.observation, outputs)
