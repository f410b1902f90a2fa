r"""Policy-distillation losses of Rusu et al. (2016), and the one rule for their weight in an update.

Every loss takes ``teacher_logits`` and ``student_logits`` of shape
``float32 [..., num_actions]`` (logits or Q-values, never probabilities) and
averages over all leading (batch) dimensions. With teacher logits $v$, student
logits $z$, temperature $T$ and $N$ actions, per sample:

* ``kl``: $\mathrm{KL}(p \| q) = \sum_a p_a (\log p_a - \log q_a)$ with
  $p = \mathrm{softmax}(v / T)$ and $q = \mathrm{softmax}(z / T)$; `kl_divergence_loss`
  and `KLDistillationLoss` multiply it by Hinton's $T^2$ unless told not to
  (``scale_by_temperature_squared=False``, as `get_loss` builds it). The gradient
  of $T^2 \mathrm{KL}$ with respect to a student logit is
  $\partial L / \partial z_i = T (q_i - p_i)$, so the T² factor keeps the
  gradient's size from fading as $1/T^2$ at high temperature (Hinton et al., 2015).
* ``mse``: $\frac{1}{N} \sum_a (z_a - v_a)^2$, regressing the Q-values.
* ``nll``: $-\log \mathrm{softmax}(z)_{a^*}$ with $a^* = \arg\max_a v_a$,
  imitating the teacher's greedy action.

All are computed with ``log_softmax`` so they stay finite for temperatures
from 0.01 to 100 and logits up to ±1e4.

`get_loss` builds them by name, the KL unscaled; an update weighs each loss
by `loss_weight`, one rule for every update kd_rl makes: $T \max(T, 1)$ for
the categorical KL (Hinton's $T^2$ from $T = 1$ up, $T$ below), 1 otherwise.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from kd_rl._validate import check_temperature
from kd_rl.config import GAUSSIAN_KL_FORMS, LOSS_NAMES
from kd_rl.errors import KdRlError

__all__ = [
    "LOSS_NAMES",
    "DEFAULT_TEMPERATURES",
    "check_temperature",
    "default_temperature",
    "temperature_weight",
    "loss_weight",
    "LOSS_WEIGHTING",
    "kl_divergence_loss",
    "mse_loss",
    "nll_loss",
    "KLDistillationLoss",
    "MSEDistillationLoss",
    "NLLDistillationLoss",
    "gaussian_kl_loss",
    "gaussian_mse_loss",
    "gaussian_nll_loss",
    "GaussianKLDistillationLoss",
    "GaussianMSEDistillationLoss",
    "GaussianNLLDistillationLoss",
    "get_loss",
    "GAUSSIAN_KL_FORMS",
]

#: The default distillation temperature for each kind of teacher output. A DQN's
#: Q-values differ by little between actions, so a small T (Rusu et al. 2016
#: use 0.01) sharpens ``softmax(q / T)`` into a near-greedy target. A policy's
#: logits (a PPO actor's) already are a distribution: T = 1 keeps it, and
#: T > 1 softens it (Hinton et al. 2015, and the article) if asked for.
#: A Gaussian policy's temperature scales its standard deviation: T = 1 keeps it.
DEFAULT_TEMPERATURES = {"q_values": 0.01, "logits": 1.0, "gaussian": 1.0, None: 1.0}


def default_temperature(teacher) -> float:
    """The default temperature for ``teacher``: by its ``output_type`` (see `DEFAULT_TEMPERATURES`).

    A model that does not say what its outputs are (no ``output_type``, or
    None) is taken to output logits: T = 1.
    """
    return DEFAULT_TEMPERATURES.get(getattr(teacher, "output_type", None), 1.0)


def temperature_weight(temperature: float) -> float:
    r"""$w(T) = T \max(T, 1)$: the weight that keeps a KL term's gradient the size of a hard-label term's.

    With $p = \mathrm{softmax}(v / T)$ and $q = \mathrm{softmax}(z / T)$, the
    gradient of $\mathrm{KL}(p \| q)$ with respect to a student logit is
    $(q - p) / T$. Weighted by $T$ for $T \le 1$ it is $q - p$, bounded by 1
    like the hard-label cross-entropy's $q - y$; weighted by $T^2$ for
    $T \ge 1$ (Hinton et al. 2015) it stays $T (q - p) \approx (z - v) / N$ as
    $T$ grows instead of fading as $1/T^2$. Plain $T^2$ at $T = 0.01$ would
    weigh the KL term $10^{-4}$ times the hard term: `kd_rl.distill.Distiller`
    uses this weight instead, so that ``alpha`` means what it says at any $T$.
    """
    temperature = check_temperature(temperature)
    return temperature * max(temperature, 1.0)


#: The rule `loss_weight` follows, as checkpoints record it (a checkpoint without it is kd_rl 0.2's: T² on the KL).
LOSS_WEIGHTING = "T*max(T,1)"


def loss_weight(loss_fn: keras.losses.Loss) -> float:
    r"""The weight of a distillation loss in an update: kd_rl's one rule, used by every update it makes.

    An unscaled categorical KL (`KLDistillationLoss` as `get_loss` builds it)
    is weighted by $w(T) = T \max(T, 1)$ (`temperature_weight`): Hinton's
    $T^2$ for $T \ge 1$, $T$ below 1, so that a DQN teacher's KL at
    $T = 0.01$ keeps a gradient of the size of the others' (`make_distill_step`,
    `Distiller`, multi-task runs and kickstarting all weigh it so). Every
    other loss has weight 1: the Gaussian KL (its temperature scales the
    teacher's standard deviation, not a softmax), ``mse``, ``nll``, a KL a
    user already scaled by $T^2$ and any loss of the user's own.
    """
    if isinstance(loss_fn, KLDistillationLoss) and not loss_fn.scale_by_temperature_squared:
        return temperature_weight(loss_fn.temperature)
    return 1.0


def _as_logits(teacher_logits, student_logits):
    # Losses are computed in float32 at least: under mixed precision the
    # student's logits arrive in float16, and the teacher's must not be
    # rounded to float16 (nor divided by a small T there) on their way in.
    student_logits = tf.convert_to_tensor(student_logits)
    dtype = tf.float64 if student_logits.dtype == tf.float64 else tf.float32
    return tf.cast(tf.convert_to_tensor(teacher_logits), dtype), tf.cast(student_logits, dtype)


def _kl_per_sample(teacher_logits, student_logits, temperature, scale_by_temperature_squared):
    teacher_logits, student_logits = _as_logits(teacher_logits, student_logits)
    dtype = student_logits.dtype
    # log p - log q cancels badly in float32 when the two are close (large T);
    # the softmax over a handful of actions is cheap in float64.
    t = tf.constant(temperature, tf.float64)
    # The teacher is a fixed target: no gradient flows into it.
    log_p = tf.stop_gradient(tf.nn.log_softmax(tf.cast(teacher_logits, tf.float64) / t, axis=-1))
    log_q = tf.nn.log_softmax(tf.cast(student_logits, tf.float64) / t, axis=-1)
    kl = tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)
    if scale_by_temperature_squared:
        kl = kl * t * t
    return tf.cast(kl, dtype)


def _mse_per_sample(teacher_logits, student_logits):
    teacher_logits, student_logits = _as_logits(teacher_logits, student_logits)
    return tf.reduce_mean(tf.square(student_logits - tf.stop_gradient(teacher_logits)), axis=-1)


def _nll_per_sample(teacher_logits, student_logits):
    teacher_logits, student_logits = _as_logits(teacher_logits, student_logits)
    target = tf.argmax(teacher_logits, axis=-1)
    log_q = tf.nn.log_softmax(student_logits, axis=-1)
    return -tf.gather(log_q, target, axis=-1, batch_dims=len(log_q.shape) - 1)


def kl_divergence_loss(
    teacher_logits, student_logits, temperature: float = 1.0, scale_by_temperature_squared: bool = True
) -> tf.Tensor:
    r"""Mean over the batch of $T^2 \mathrm{KL}(p \| q)$, Hinton's distillation loss.

    With teacher logits $v$ and student logits $z$, for each of the $B$
    samples $b$ of the batch, $p_b = \mathrm{softmax}(v_b / T)$ and
    $q_b = \mathrm{softmax}(z_b / T)$:

    $$L = \frac{1}{B} \sum_b T^2 \sum_a p_{b,a} (\log p_{b,a} - \log q_{b,a})$$

    Its gradient with respect to a student logit is
    $\partial L / \partial z_{b,i} = T (q_{b,i} - p_{b,i}) / B$.

    Args:
        teacher_logits: float32 [..., num_actions]; the fixed target.
        student_logits: float32 [..., num_actions].
        temperature: $T > 0$. Small T (e.g. 0.01) sharpens DQN Q-values into an
            almost greedy target, as Rusu et al. (2016) recommend.
        scale_by_temperature_squared: Multiply by $T^2$ (Hinton et al., 2015).

    Returns:
        A float32 scalar.
    """
    temperature = check_temperature(temperature)
    return tf.reduce_mean(_kl_per_sample(teacher_logits, student_logits, temperature, scale_by_temperature_squared))


def mse_loss(teacher_logits, student_logits) -> tf.Tensor:
    r"""Mean squared error between student and teacher logits (Q-values): a scalar.

    $$L = \frac{1}{B} \sum_b \frac{1}{N} \sum_a (z_{b,a} - v_{b,a})^2$$
    """
    return tf.reduce_mean(_mse_per_sample(teacher_logits, student_logits))


def nll_loss(teacher_logits, student_logits) -> tf.Tensor:
    r"""Mean negative log-likelihood of the teacher's argmax action under the student: a scalar.

    $$L = -\frac{1}{B} \sum_b \log \mathrm{softmax}(z_b)_{a^*_b}, \qquad a^*_b = \arg\max_a v_{b,a}$$
    """
    return tf.reduce_mean(_nll_per_sample(teacher_logits, student_logits))


class _DistillationLoss(keras.losses.Loss):
    """Base for the Keras forms: ``loss(y_true=teacher_logits, y_pred=student_logits)``."""

    def get_config(self) -> dict:
        return super().get_config()


@keras.saving.register_keras_serializable(package="kd_rl")
class KLDistillationLoss(_DistillationLoss):
    """Keras form of `kl_divergence_loss`; ``y_true`` are the teacher's logits."""

    def __init__(
        self, temperature: float = 1.0, scale_by_temperature_squared: bool = True, name="kl_distillation", **kwargs
    ):
        super().__init__(name=name, **kwargs)
        self.temperature = check_temperature(temperature)
        self.scale_by_temperature_squared = bool(scale_by_temperature_squared)

    def call(self, y_true, y_pred):
        return _kl_per_sample(y_true, y_pred, self.temperature, self.scale_by_temperature_squared)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(temperature=self.temperature, scale_by_temperature_squared=self.scale_by_temperature_squared)
        return config


@keras.saving.register_keras_serializable(package="kd_rl")
class MSEDistillationLoss(_DistillationLoss):
    """Keras form of `mse_loss`; ``y_true`` are the teacher's logits."""

    def __init__(self, name="mse_distillation", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return _mse_per_sample(y_true, y_pred)


@keras.saving.register_keras_serializable(package="kd_rl")
class NLLDistillationLoss(_DistillationLoss):
    """Keras form of `nll_loss`; ``y_true`` are the teacher's logits."""

    def __init__(self, name="nll_distillation", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return _nll_per_sample(y_true, y_pred)


def get_loss(
    name: str | keras.losses.Loss,
    temperature: float = 1.0,
    *,
    gaussian: bool = False,
    gaussian_kl: str = "decoupled",
) -> keras.losses.Loss:
    """Build a distillation loss by name (``"kl"``, ``"mse"`` or ``"nll"``).

    A ``keras.losses.Loss`` instance is returned unchanged, so custom losses
    plug in wherever a name is accepted. ``temperature`` is used by ``kl`` only,
    which is returned unweighted (``KL(p_T ‖ q_T)``): an update weighs it by
    `loss_weight`.
    With ``gaussian=True`` (continuous actions) the names give the Gaussian
    forms: `gaussian_kl_loss`, `gaussian_mse_loss` (on the means) and
    `gaussian_nll_loss`; ``gaussian_kl`` (`GAUSSIAN_KL_FORMS`) says whether
    ``kl`` minimises the KL in its ``"decoupled"`` form (the default) or the
    ``"exact"`` KL (see `gaussian_kl_loss`).

    Raises:
        ValueError: If ``name`` is not one of `LOSS_NAMES`, or ``gaussian_kl``
            not one of `GAUSSIAN_KL_FORMS`.
    """
    if gaussian_kl not in GAUSSIAN_KL_FORMS:
        raise KdRlError(f"gaussian_kl must be one of {', '.join(GAUSSIAN_KL_FORMS)}, got {gaussian_kl!r}")
    if isinstance(name, keras.losses.Loss):
        return name
    key = str(name).lower()
    if key not in LOSS_NAMES:
        raise KdRlError(f"loss must be one of {', '.join(LOSS_NAMES)} or a keras.losses.Loss, got {name!r}")
    if gaussian:
        if key == "kl":
            return GaussianKLDistillationLoss(temperature, decoupled=gaussian_kl == "decoupled")
        return GaussianMSEDistillationLoss() if key == "mse" else GaussianNLLDistillationLoss()
    if key == "kl":
        return KLDistillationLoss(temperature, scale_by_temperature_squared=False)
    return MSEDistillationLoss() if key == "mse" else NLLDistillationLoss()


# Continuous actions: diagonal Gaussian policies.
#
# A Gaussian policy outputs ``[mean, log_std]`` (``float32 [..., 2d]``, see
# `kd_rl.models.split_gaussian`). For a tanh-squashed policy (SAC) the Gaussian
# is over the action before the squash ``a = low + (tanh(u) + 1)(high - low)/2``.
# KL divergence does not change under one invertible map applied to both
# distributions, so the KL between two squashed policies with the same bounds
# is exactly the KL between their Gaussians before the squash.
#
# The temperature of a Gaussian target scales the teacher's standard
# deviation: ``p_T = N(mu_t, (T sigma_t)^2)``. T > 1 widens the target (the
# student is asked to keep more exploration noise), T < 1 narrows it. Unlike a
# softmax, the mean's gradient ``(mu_s - mu_t) / sigma_s^2`` does not shrink
# with T, so no T² factor is applied.
#
# The decoupled form. In the exact KL the mean's gradient is weighted by the
# *student's* variance, 1 / sigma_s^2: where the student's mean is still far off
# it can lower the loss by widening sigma_s instead, which weakens the pull on
# its mean there, the states it has not learned yet (the pitfall of fitting a
# Gaussian's variance and mean together; Seitzer et al. 2022). Measured on
# Pendulum-v1 (docs/continuous.md) the exact KL left students with 4x the
# teacher's sigma and a quarter of the action range of error. The decoupled form
# splits the KL into two KLs, as MPO's M-step does (Abdolmaleki et al. 2018):
#   KL(N(mu_t, s_t^2) || N(mu_s, s_t^2))  -- the means, at the teacher's sigma,
#   + KL(N(mu_t, s_t^2) || N(mu_t, s_s^2))  -- the sigmas, at the teacher's mean,
# = (mu_t - mu_s)^2 / (2 s_t^2) + log(s_s/s_t) + s_t^2 / (2 s_s^2) - 1/2.
# Both terms are >= 0 and zero exactly when mu_s = mu_t and s_s = s_t, as the KL
# is, and their sum equals the exact KL once s_s = s_t; but the mean's gradient,
# (mu_s - mu_t) / s_t^2, no longer depends on the student's sigma.

_LOG_2PI = math.log(2.0 * math.pi)


def _split(outputs):
    d = outputs.shape[-1]
    if d is None or d % 2:
        raise KdRlError(f"Gaussian policy outputs must have an even size 2d = [mean, log_std], got {d}")
    return outputs[..., : d // 2], outputs[..., d // 2 :]


def _gaussian_kl_per_sample(teacher_outputs, student_outputs, temperature, decoupled=False):
    teacher_outputs, student_outputs = _as_logits(teacher_outputs, student_outputs)
    mu_t, log_std_t = _split(tf.stop_gradient(teacher_outputs))
    mu_s, log_std_s = _split(student_outputs)
    log_std_t = log_std_t + math.log(temperature)
    # KL(N(mu_t, s_t^2) || N(mu_s, s_s^2)) = log(s_s/s_t) + (s_t^2 + (mu_t - mu_s)^2) / (2 s_s^2) - 1/2, per dimension;
    # decoupled: the means' term at s_t instead of s_s (see above).
    var_ratio = tf.exp(2.0 * (log_std_t - log_std_s))
    mahalanobis = tf.square(mu_t - mu_s) * tf.exp(-2.0 * (log_std_t if decoupled else log_std_s))
    per_dim = log_std_s - log_std_t + 0.5 * (var_ratio + mahalanobis) - 0.5
    return tf.reduce_sum(per_dim, axis=-1)


def _gaussian_mse_per_sample(teacher_outputs, student_outputs):
    teacher_outputs, student_outputs = _as_logits(teacher_outputs, student_outputs)
    mu_t, _ = _split(tf.stop_gradient(teacher_outputs))
    mu_s, _ = _split(student_outputs)
    return tf.reduce_mean(tf.square(mu_s - mu_t), axis=-1)


def _gaussian_nll_per_sample(teacher_outputs, student_outputs):
    teacher_outputs, student_outputs = _as_logits(teacher_outputs, student_outputs)
    mu_t, _ = _split(tf.stop_gradient(teacher_outputs))
    mu_s, log_std_s = _split(student_outputs)
    z = (mu_t - mu_s) * tf.exp(-log_std_s)
    return tf.reduce_sum(0.5 * tf.square(z) + log_std_s + 0.5 * _LOG_2PI, axis=-1)


def gaussian_kl_loss(teacher_outputs, student_outputs, temperature: float = 1.0, decoupled: bool = False) -> tf.Tensor:
    """Mean over the batch of ``KL(N(mu_t, (T sigma_t)^2) ‖ N(mu_s, sigma_s^2))``, summed over action dimensions.

    Per dimension the KL of two Gaussians is
    ``log(sigma_s / (T sigma_t)) + ((T sigma_t)^2 + (mu_t − mu_s)^2) / (2 sigma_s^2) − 1/2``.
    With ``decoupled=True`` the means' term uses the teacher's standard
    deviation, ``(mu_t − mu_s)^2 / (2 (T sigma_t)^2)``: the sum of a KL
    between the means (at the teacher's sigma) and one between the standard
    deviations (at the teacher's mean), as in MPO (Abdolmaleki et al. 2018). It
    is zero exactly when the KL is, equals it once ``sigma_s = T sigma_t``, and
    a wide student sigma no longer weakens the pull on its mean; ``"kl"``
    distillation of Gaussians minimises this form unless told otherwise (`get_loss`).

    Args:
        teacher_outputs: float32 [..., 2d], ``[mean, log_std]``; the fixed target.
        student_outputs: float32 [..., 2d], ``[mean, log_std]``.
        temperature: T > 0 scales the teacher's standard deviation.
        decoupled: The decoupled form instead of the exact KL.

    Returns:
        A float32 scalar.
    """
    temperature = check_temperature(temperature)
    return tf.reduce_mean(_gaussian_kl_per_sample(teacher_outputs, student_outputs, temperature, bool(decoupled)))


def gaussian_mse_loss(teacher_outputs, student_outputs) -> tf.Tensor:
    """Mean squared error between the student's and the teacher's means (the standard deviations are ignored)."""
    return tf.reduce_mean(_gaussian_mse_per_sample(teacher_outputs, student_outputs))


def gaussian_nll_loss(teacher_outputs, student_outputs) -> tf.Tensor:
    """Mean negative log-likelihood of the teacher's deterministic action under the student's Gaussian.

    ``Σ_d [(mu_t − mu_s)^2 / (2 sigma_s^2) + log sigma_s + log(2π)/2]``, before the squash
    for tanh-squashed policies (the squash's Jacobian does not depend on the student).
    """
    return tf.reduce_mean(_gaussian_nll_per_sample(teacher_outputs, student_outputs))


@keras.saving.register_keras_serializable(package="kd_rl")
class GaussianKLDistillationLoss(_DistillationLoss):
    """Keras form of `gaussian_kl_loss`; ``y_true`` are the teacher's ``[mean, log_std]``.

    ``decoupled`` (default True, the form distillation trains with) or the exact KL (False).
    """

    def __init__(self, temperature: float = 1.0, decoupled: bool = True, name="gaussian_kl_distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = check_temperature(temperature)
        self.decoupled = bool(decoupled)

    def call(self, y_true, y_pred):
        return _gaussian_kl_per_sample(y_true, y_pred, self.temperature, self.decoupled)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(temperature=self.temperature, decoupled=self.decoupled)
        return config


@keras.saving.register_keras_serializable(package="kd_rl")
class GaussianMSEDistillationLoss(_DistillationLoss):
    """Keras form of `gaussian_mse_loss`; ``y_true`` are the teacher's ``[mean, log_std]``."""

    def __init__(self, name="gaussian_mse_distillation", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return _gaussian_mse_per_sample(y_true, y_pred)


@keras.saving.register_keras_serializable(package="kd_rl")
class GaussianNLLDistillationLoss(_DistillationLoss):
    """Keras form of `gaussian_nll_loss`; ``y_true`` are the teacher's ``[mean, log_std]``."""

    def __init__(self, name="gaussian_nll_distillation", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return _gaussian_nll_per_sample(y_true, y_pred)
