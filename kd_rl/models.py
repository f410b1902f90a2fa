"""Keras policy networks: the teacher and the student.

Both are small multi-layer perceptrons, or, for image observations (MinAtar,
Atari), convolutional networks: ``conv_layers`` puts convolutions before the
Dense layers. For a discrete action space they map observations to one logit
per action. Logits stay logits everywhere inside
kd_rl; probabilities are made only at the edges
(`PolicyModel.action_probabilities`).

For a continuous (``Box``) action space of ``d`` dimensions they output the
parameters of a diagonal Gaussian, ``[mean, log_std]`` (``2d`` numbers per
observation), with the action bounds and whether the action is
tanh-squashed (SAC) or clipped (PPO) saved with the model; `PolicyModel.act`
gives the deterministic action inside the bounds for both kinds.

A DQN teacher's logits are its Q-values, so ``softmax(q / tau)`` is the
softened policy of Rusu et al. (2016). A PPO teacher's logits are its actor's
logits, and its observation normaliser travels inside the model as fixed
``observation_mean`` / ``observation_std`` / ``observation_clip`` so that
``model(raw_observations)`` gives exactly what the agent saw.

Example:
    >>> teacher = TeacherModel(num_actions=2, observation_dim=4)
    >>> student = StudentModel(num_actions=2, observation_dim=4)
    >>> teacher.count_params(), student.count_params()
    (702, 352)
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from kd_rl import __version__
from kd_rl._validate import (
    check_activation,
    check_int,
    check_noise,
    check_observation_shape,
    check_temperature,
    conv_output_shape,
    normalise_conv_layers,
    normalise_hidden_units,
    normalise_observation_indices,
)
from kd_rl.config import RECURRENT_CELLS
from kd_rl.errors import KdRlError
from kd_rl.zoo import resolve_model_path

__all__ = [
    "LOG_STD_RANGE",
    "OUTPUT_TYPES",
    "PolicyModel",
    "check_keras3",
    "TeacherModel",
    "StudentModel",
    "RecurrentStudent",
    "RECURRENT_CELLS",
    "count_params",
    "sensor_noise_std",
    "DeterministicAction",
    "gaussian_action",
    "load_policy",
    "split_gaussian",
    "weights_sha256",
    "normalise_hidden_units",
    "check_action_bounds",
]

_PACKAGE = "kd_rl"

#: What a policy's outputs can be: Q-values, policy logits, a Gaussian's
#: ``[mean, log_std]`` (continuous actions), or not said (discrete).
OUTPUT_TYPES = ("q_values", "logits", "gaussian", None)

#: Default clip of a Gaussian policy's log standard deviation, as TF-Agents' SAC
#: (``std_clip_transform``) and Stable-Baselines3's SAC use.
LOG_STD_RANGE = (-20.0, 2.0)


def _optional_vector(name: str, value, dim: int | None) -> np.ndarray | None:
    # One entry applies to every feature: an image's 1/255 scale is one number, not 28,224.
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float32).reshape(-1)
    if dim is not None and arr.shape[0] not in (1, dim):
        raise KdRlError(f"{name} must have 1 or observation_dim={dim} entries, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise KdRlError(f"{name} must be finite, got {arr.tolist()}")
    return arr


def check_action_bounds(action_low, action_high) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """A ``Box`` action's bounds as float32 ``[d]`` vectors, checked; ``(None, None)`` for a discrete policy.

    Raises:
        ValueError: If only one bound is given, they differ in size, are not
            finite, or ``low >= high`` somewhere.
    """
    if action_low is None and action_high is None:
        return None, None
    if action_low is None or action_high is None:
        raise KdRlError("a continuous policy needs both action_low and action_high (the Box action bounds)")
    low = np.asarray(action_low, dtype=np.float32).reshape(-1)
    high = np.asarray(action_high, dtype=np.float32).reshape(-1)
    if low.shape != high.shape or low.size == 0:
        raise KdRlError(
            f"action_low and action_high must have the same number (>= 1) of entries, got {low.size} and {high.size}"
        )
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise KdRlError(f"action bounds must be finite, got low={low.tolist()} high={high.tolist()}")
    if np.any(low >= high):
        raise KdRlError(f"action_low must be < action_high everywhere, got low={low.tolist()} high={high.tolist()}")
    return low, high


def _log_std_range(value) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise KdRlError(f"log_std_range must be (min, max) or None, got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise KdRlError(f"log_std_range must be finite with min < max, got {value!r}")
    return lo, hi


def split_gaussian(outputs):
    """``(mean, log_std)``, each ``[batch, d]``, from a Gaussian policy's outputs ``[batch, 2d]``.

    Works on TensorFlow tensors and NumPy arrays alike.
    """
    d = outputs.shape[-1] // 2
    return outputs[..., :d], outputs[..., d:]


def gaussian_action(mean, action_low, action_high, squash: bool):
    """The deterministic action of a Gaussian policy, inside ``[action_low, action_high]``.

    With ``squash`` (SAC's tanh-squashed Gaussian)
    ``a = low + (tanh(mean) + 1) / 2 * (high - low)`` — the mode of TF-Agents'
    ``SquashToSpecNormal``; without it (PPO's Gaussian on the action itself)
    ``a = clip(mean, low, high)``, what the environment receives.

    Args:
        mean: ``float32 [batch, d]`` (a TF tensor or NumPy array).
        action_low: ``[d]`` lower bounds.
        action_high: ``[d]`` upper bounds.
        squash: Whether the policy is tanh-squashed.

    Returns:
        ``float32 [batch, d]``, of the same kind (TF or NumPy) as ``mean``.
    """
    if isinstance(mean, np.ndarray):
        low, high = np.asarray(action_low, np.float32), np.asarray(action_high, np.float32)
        if squash:
            return (low + (np.tanh(mean) + 1.0) * 0.5 * (high - low)).astype(np.float32)
        return np.clip(mean, low, high).astype(np.float32)
    low = tf.constant(action_low, mean.dtype)
    high = tf.constant(action_high, mean.dtype)
    if squash:
        return low + (tf.tanh(mean) + 1.0) * 0.5 * (high - low)
    return tf.clip_by_value(mean, low, high)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DeterministicAction(keras.layers.Layer):
    """From a Gaussian policy's ``[mean, log_std]`` (or its mean) to its deterministic action (`gaussian_action`).

    Used to export a continuous policy whose one output is the action
    ``float32 [batch, d]`` (``kd_rl.export``).
    """

    def __init__(self, action_low, action_high, squash: bool, **kwargs):
        super().__init__(**kwargs)
        self.action_low, self.action_high = check_action_bounds(action_low, action_high)
        self.squash = bool(squash)

    def call(self, outputs):
        # ``[mean, log_std]`` (2d values), or the mean alone (d values).
        mean = outputs if outputs.shape[-1] == self.action_low.size else split_gaussian(outputs)[0]
        return gaussian_action(mean, self.action_low, self.action_high, self.squash)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.action_low.size)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(action_low=self.action_low.tolist(), action_high=self.action_high.tolist(), squash=self.squash)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PolicyModel(keras.Model):
    """An MLP (or CNN) policy: logits for discrete actions, a diagonal Gaussian for continuous ones.

    Discrete (``num_actions`` given): ``call`` maps
    ``observations: float32 [batch, obs_dim]`` to
    ``logits: float32 [batch, num_actions]``; it never applies a softmax.

    Continuous (``action_low``/``action_high`` given, ``d`` entries each):
    ``call`` returns ``float32 [batch, 2d]`` = ``[mean, log_std]`` of a
    diagonal Gaussian (`split_gaussian` separates them), ``log_std`` clipped to
    ``log_std_range``. With ``squash`` the action is ``tanh``-squashed into the
    bounds (SAC); without, the Gaussian is over the action itself and actions
    are clipped to the bounds (PPO). `act` gives the deterministic action
    for both kinds.

    Image observations (``observation_shape`` ``(height, width, channels)``):
    the model takes them in their own shape ``[batch, height, width,
    channels]`` (any dtype: bool and uint8 frames are cast to float), or
    flattened ``[batch, height * width * channels]`` as kd_rl's buffers store
    them. With ``conv_layers`` they go through ``Conv2D`` layers (``valid``
    padding, the hidden ``activation``), are flattened and go on to the Dense
    layers; without, an MLP sees the flattened image.

    Args:
        num_actions: Number of discrete actions (>= 1); None for a continuous policy.
        hidden_units: Width of each hidden layer: an int for one layer or a
            sequence of ints for several.
        activation: Keras activation name for the hidden layers.
        observation_dim: Input size. If given, the model is built at once (a
            subclass with its own ``__init__`` calls `ensure_built` at
            the end of it); otherwise the first call fixes it.
        observation_shape: The environment's observation shape, e.g. ``(10, 10, 4)``;
            ``observation_dim`` is then its number of entries. Inputs of that
            shape are accepted besides flat ones; a convolutional model needs it.
        conv_layers: ``(filters, kernel_size, stride)`` of each ``Conv2D`` layer,
            applied to ``[height, width, channels]`` observations before the
            Dense layers (``[[16, 3, 1]]``: MinAtar's DQN; ``[[32, 8, 4], [64, 4, 2],
            [64, 3, 1]]``: the Nature DQN's). Empty: an MLP.
        observation_mean: Optional fixed mean subtracted from observations
            (PPO's observation normaliser), length ``observation_dim`` (or 1: the same for every feature).
        observation_std: Optional fixed standard deviation that observations
            are divided by, length ``observation_dim`` or 1 (all > 0; 255 scales Atari frames into [0, 1]).
        observation_clip: Optional clip applied to normalised observations.
        output_type: What the outputs are, for a teacher: ``"q_values"`` (a DQN's
            action values) or ``"logits"`` (a policy's logits, e.g. a PPO
            actor's); None when unknown; always ``"gaussian"`` for a
            continuous policy (None is taken as it). Saved with the model; the
            distillation temperature's default follows it
            (`kd_rl.losses.default_temperature`).
        action_low: The ``Box`` action's lower bounds, ``d`` finite entries;
            given, the policy is continuous.
        action_high: Its upper bounds, each above the lower one.
        squash: Continuous only: tanh-squash the Gaussian into the bounds
            (True, SAC) or clip its samples (False, PPO).
        state_dependent_std: Continuous only: ``log_std`` from a Dense head on
            the last hidden layer (True) or one learned value per action
            dimension, the same for every observation (False).
        log_std_range: Continuous only: ``(min, max)`` clip of ``log_std``, or None.
        preprocessing: The environment preprocessing the policy was trained
            with (an Atari policy's frame skip, size, stack...:
            `kd_rl.games.ATARI_PREPROCESSING`), saved with it so that kd_rl
            makes its environment the same way wherever it plays; None for none.
        observation_indices: The features the policy sees (vector
            observations): it still takes the environment's whole observation,
            normalises it and keeps these entries, in this order, for its first
            layer (a robot's student without the simulator's velocities). A
            string of ranges works too: ``"0:5,8"``. None: all of them.
        observation_noise: The standard deviation of the Gaussian sensor noise
            the policy was trained to see, in the units of its normalised
            observation: each feature's noise is this times the feature's
            ``observation_std`` (times 1 without a normaliser). Saved with the
            model; kd_rl adds the noise where it plays the policy in an
            environment (collection, training batches, evaluation), never in
            ``call`` or an export, where real sensors bring their own. 0: none.
        history: The number of observations the policy sees at once: the last
            ``history`` readings of a vector observation, oldest first, zeros
            before an episode's first (a robot's student without velocities
            can estimate them so). The model then takes ``[batch, history,
            observation_dim]`` (``observation_shape`` is that, without the
            batch) or the same flattened; ``observation_dim`` is the features
            of one reading on construction, and the normaliser and
            ``observation_indices`` are those of one reading. kd_rl keeps the
            window wherever it plays the policy. 1: the current observation.
        **kwargs: Passed to ``keras.Model`` (``name``, ``dtype``...).

    Raises:
        ValueError: If an argument is out of range; the message names it.
    """

    default_hidden_units: int | tuple[int, ...] = 64

    def __init__(
        self,
        num_actions: int | None = None,
        hidden_units: int | Sequence[int] | None = None,
        activation: str = "relu",
        observation_dim: int | None = None,
        observation_shape: Sequence[int] | None = None,
        conv_layers: Sequence[Sequence[int]] | None = None,
        observation_mean=None,
        observation_std=None,
        observation_clip: float | None = None,
        output_type: str | None = None,
        action_low=None,
        action_high=None,
        squash: bool = True,
        state_dependent_std: bool = True,
        log_std_range: Sequence[float] | None = LOG_STD_RANGE,
        preprocessing: dict | None = None,
        observation_indices: Sequence[int] | str | None = None,
        observation_noise: float = 0.0,
        history: int = 1,
        _hidden_layers: Sequence[keras.layers.Dense] | None = None,
        _convolutions: Sequence[keras.layers.Conv2D] | None = None,
        **kwargs,
    ):
        # _hidden_layers, _convolutions: layers to use (and share) instead of new ones; kd_rl's
        # MultiTaskStudent gives each task's model its adapter and the shared trunk so.
        super().__init__(**kwargs)
        self.action_low, self.action_high = check_action_bounds(action_low, action_high)
        self.is_continuous = self.action_low is not None
        if self.is_continuous:
            if num_actions is not None:
                raise KdRlError(
                    "give either num_actions (discrete actions) or action_low/action_high (continuous), not both"
                )
            if output_type not in ("gaussian", None):
                raise KdRlError(f"a continuous policy's output_type is 'gaussian', got {output_type!r}")
            output_type = "gaussian"
            self.action_dim = int(self.action_low.size)
            self.num_actions = None
        else:
            if num_actions is None:
                raise KdRlError("give num_actions (discrete actions) or action_low/action_high (continuous)")
            if output_type == "gaussian":
                raise KdRlError("output_type='gaussian' needs action_low/action_high (a continuous policy)")
            self.num_actions = check_int("num_actions", num_actions)
            self.action_dim = None
        self.squash = bool(squash)
        self.state_dependent_std = bool(state_dependent_std)
        self.log_std_range = _log_std_range(log_std_range)
        self.observation_dim = check_int("observation_dim", observation_dim, allow_none=True)
        self.observation_shape = check_observation_shape(observation_shape)
        self.history = check_int("history", history)
        reading_dim = self.observation_dim  # the features of one reading (observation_dim, unless history > 1)
        if self.history > 1:
            if self.observation_dim is None or (observation_shape is not None and len(self.observation_shape) > 1):
                raise KdRlError(
                    f"history={self.history} needs the size of one vector reading: observation_dim=N "
                    f"(got observation_dim={observation_dim}, observation_shape={observation_shape})"
                )
            self.observation_shape = (self.history, reading_dim)
            self.observation_dim = self.history * reading_dim
        if self.observation_shape is not None:
            size = int(np.prod(self.observation_shape))
            if self.observation_dim not in (None, size):
                raise KdRlError(
                    f"observation_dim={self.observation_dim} does not match observation_shape={self.observation_shape} "
                    f"({size} entries)"
                )
            self.observation_dim = size
        self.conv_layers = normalise_conv_layers(conv_layers)
        if preprocessing is not None and not isinstance(preprocessing, dict):
            raise KdRlError(f"preprocessing must be a dict of settings or None, got {preprocessing!r}")
        self.preprocessing = None if preprocessing is None else dict(preprocessing)
        if self.conv_layers and (self.observation_shape is None or len(self.observation_shape) != 3):
            raise KdRlError(
                "conv_layers need an image observation: observation_shape=(height, width, channels), "
                f"got {self.observation_shape}"
            )
        if self.conv_layers:
            conv_output_shape(self.observation_shape, self.conv_layers)  # refuses convolutions too large
        self.observation_indices = normalise_observation_indices(observation_indices, reading_dim)
        if self.observation_indices is not None and self.observation_shape is not None and self.history == 1:
            raise KdRlError(
                "observation_indices choose features of a vector observation; "
                f"this model takes observation_shape={self.observation_shape}"
            )
        self.observation_noise = check_noise("observation_noise", observation_noise)
        if hidden_units is None:
            hidden_units = self.default_hidden_units
        self.hidden_units = normalise_hidden_units(hidden_units)
        self.activation = check_activation(activation)
        self.observation_mean = _optional_vector("observation_mean", observation_mean, reading_dim)
        self.observation_std = _optional_vector("observation_std", observation_std, reading_dim)
        if self.history > 1:  # one reading's normaliser, for every reading of the window
            self.observation_mean, self.observation_std = (
                None if v is None else np.tile(v, self.history if v.size == reading_dim else 1)
                for v in (self.observation_mean, self.observation_std)
            )
        if self.observation_std is not None and np.any(self.observation_std <= 0):
            raise KdRlError("observation_std must be > 0 everywhere")
        if observation_clip is not None and not observation_clip > 0:
            raise KdRlError(f"observation_clip must be > 0 or None, got {observation_clip!r}")
        self.observation_clip = None if observation_clip is None else float(observation_clip)
        if output_type not in OUTPUT_TYPES:
            raise KdRlError(f"output_type must be one of {', '.join(map(repr, OUTPUT_TYPES))}, got {output_type!r}")
        self.output_type = output_type

        if _convolutions is not None:
            given = tuple((c.filters, c.kernel_size[0], c.strides[0]) for c in _convolutions)
            if given != self.conv_layers:
                raise KdRlError(f"the given convolutions do not have conv_layers={self.conv_layers}")
            self.convolutions = list(_convolutions)
        else:
            self.convolutions = [
                keras.layers.Conv2D(filters, kernel, strides=stride, activation=activation, name=f"conv_{i}")
                for i, (filters, kernel, stride) in enumerate(self.conv_layers)
            ]
        if _hidden_layers is not None:
            if tuple(layer.units for layer in _hidden_layers) != self.hidden_units:
                raise KdRlError(f"the given hidden layers do not have hidden_units={self.hidden_units}")
            self.hidden_layers = list(_hidden_layers)
        else:
            self.hidden_layers = [
                keras.layers.Dense(units, activation=activation, name=f"hidden_{i}")
                for i, units in enumerate(self.hidden_units)
            ]
        if self.is_continuous:
            self.mean_layer = keras.layers.Dense(self.action_dim, name="mean")
            if self.state_dependent_std:
                self.log_std_layer = keras.layers.Dense(self.action_dim, name="log_std")
            else:
                self.log_std = self.add_weight(
                    shape=(self.action_dim,), initializer="zeros", name="log_std", trainable=True
                )
        else:
            self.logits_layer = keras.layers.Dense(self.num_actions, name="logits")
        if type(self).__init__ is PolicyModel.__init__:
            self.ensure_built()
        # A subclass with its own __init__ adds layers after super().__init__(),
        # so it calls self.ensure_built() at its end (or is built by its first call).

    @property
    def reading_dim(self) -> int | None:
        """The features of one reading of the environment: ``observation_dim / history``."""
        return None if self.observation_dim is None else self.observation_dim // self.history

    @property
    def input_indices(self) -> tuple[int, ...] | None:
        """The entries of the flat input the first layer sees: ``observation_indices`` in every reading."""
        if self.observation_indices is None:
            return None
        d = self.reading_dim
        return tuple(k * d + i for k in range(self.history) for i in self.observation_indices)

    @property
    def output_layers(self) -> list:
        """The Dense layers after the last hidden one: ``[logits]``, or ``[mean(, log_std)]``."""
        if not self.is_continuous:
            return [self.logits_layer]
        return [self.mean_layer] + ([self.log_std_layer] if self.state_dependent_std else [])

    def ensure_built(self) -> PolicyModel:
        """Build the weights now if ``observation_dim`` is known; returns ``self``.

        One forward pass on a zero observation builds every layer ``call``
        uses, a subclass's own layers included.
        """
        if not self.built and self.observation_dim is not None:
            self(tf.zeros((1, self.observation_dim)))
        return self

    def build(self, input_shape):
        # Keras 3 builds no sublayers in Model.build: build each layer here so
        # the weights exist (and count) before the first call.
        input_shape = tuple(input_shape)
        self._check_observations(tf.zeros([0 if d is None else d for d in input_shape]))
        dim = input_shape[-1] if len(input_shape) == 2 else None
        if self.observation_dim is None and dim is not None:
            self.observation_dim = int(dim)
            normalise_observation_indices(self.observation_indices, self.observation_dim)
        shape = (input_shape[0], self.observation_dim)
        if self.input_indices is not None:
            shape = (input_shape[0], len(self.input_indices))
        if self.convolutions:
            shape = (input_shape[0], *self.observation_shape)
            for conv in self.convolutions:
                if not conv.built:
                    conv.build(shape)
                shape = conv.compute_output_shape(shape)
            shape = (input_shape[0], int(np.prod(shape[1:])))
        for layer in [*self.hidden_layers, *self.output_layers]:
            if not layer.built:  # a shared layer (MultiTaskStudent's trunk) may be built already
                layer.build(shape)
            if layer in self.hidden_layers:
                shape = (*shape[:-1], layer.units)

    def normalise(self, observations: tf.Tensor) -> tf.Tensor:
        """Observations as float ``[batch, observation_dim]``, with the model's fixed normaliser applied (if any)."""
        x = tf.cast(observations, self.compute_dtype)
        self._check_observations(x)
        if len(x.shape) > 2:
            x = tf.reshape(x, (-1, self.observation_dim))
        if self.observation_mean is not None:
            x = x - tf.constant(self.observation_mean, dtype=x.dtype)
        if self.observation_std is not None:
            x = x / tf.constant(self.observation_std, dtype=x.dtype)
        if self.observation_clip is not None:
            x = tf.clip_by_value(x, -self.observation_clip, self.observation_clip)
        return x

    def _check_observations(self, observations) -> None:
        shape = tuple(observations.shape[1:])
        if len(shape) > 1 or (self.observation_shape is not None and len(self.observation_shape) == 1):
            if self.observation_shape is None:
                raise KdRlError(
                    f"observations of shape {shape} need a model built with observation_shape; "
                    f"this one takes flat [batch, {self.observation_dim}] observations"
                )
            if shape != self.observation_shape:
                what = (
                    f" ({shape[-1]} channels where the model has {self.observation_shape[-1]})"
                    if len(shape) == len(self.observation_shape) == 3 and shape[:2] == self.observation_shape[:2]
                    else ""
                )
                raise KdRlError(
                    f"observations have shape {shape}{what} but the model was built for "
                    f"observation_shape={self.observation_shape}"
                )
            return
        dim = observations.shape[-1]
        if self.observation_dim is not None and dim is not None and dim != self.observation_dim:
            raise KdRlError(
                f"observations have {dim} features but the model was built for observation_dim={self.observation_dim}"
            )

    def features(self, observations) -> tf.Tensor:
        """The last hidden layer's activations: ``float32 [batch, hidden_units[-1]]``."""
        x = self.normalise(observations)
        if self.input_indices is not None:
            x = tf.gather(x, list(self.input_indices), axis=-1)
        if self.convolutions:
            x = tf.reshape(x, (-1, *self.observation_shape))
            for conv in self.convolutions:
                x = conv(x)
            x = tf.reshape(x, (-1, int(np.prod(x.shape[1:]))))
        for layer in self.hidden_layers:
            x = layer(x)
        return x

    def head(self, features) -> tf.Tensor:
        """The outputs from the last hidden layer's activations (logits, or ``[mean, log_std]``)."""
        if not self.is_continuous:
            return self.logits_layer(features)
        mean = self.mean_layer(features)
        if self.state_dependent_std:
            log_std = self.log_std_layer(features)
        else:
            # zeros_like + broadcast (not broadcast_to): a TFLite export then resizes to any batch.
            log_std = tf.zeros_like(mean) + tf.cast(self.log_std, mean.dtype)
        if self.log_std_range is not None:
            log_std = tf.clip_by_value(log_std, *self.log_std_range)
        return tf.concat([mean, log_std], axis=-1)

    def call(self, observations, training=None):
        return self.head(self.features(observations))

    def action_probabilities(self, observations, temperature: float = 1.0) -> tf.Tensor:
        """``softmax(logits / temperature)``: float32 [batch, num_actions] (discrete policies)."""

        if self.is_continuous:
            raise KdRlError("action_probabilities is for discrete policies; a continuous one outputs a Gaussian")
        temperature = check_temperature(temperature)
        return tf.nn.softmax(self(observations) / temperature, axis=-1)

    def actions_from_outputs(self, outputs):
        """The deterministic actions for outputs of this model (TF tensor or NumPy array).

        Discrete: ``argmax(logits)`` (int64 ``[batch]``); continuous:
        `gaussian_action` of the mean (float32 ``[batch, d]``).
        """
        if not self.is_continuous:
            if isinstance(outputs, np.ndarray):
                return np.argmax(outputs, axis=-1)
            return tf.argmax(outputs, axis=-1)
        mean, _ = split_gaussian(outputs)
        return gaussian_action(mean, self.action_low, self.action_high, self.squash)

    def act(self, observations) -> np.ndarray:
        """Deterministic actions: int64 ``[batch]`` (argmax) or float32 ``[batch, d]`` inside the bounds."""
        return self.actions_from_outputs(np.asarray(self(observations)))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            num_actions=self.num_actions,
            hidden_units=list(self.hidden_units),
            activation=self.activation,
            observation_dim=self.observation_dim,
            observation_mean=None if self.observation_mean is None else self.observation_mean.tolist(),
            observation_std=None if self.observation_std is None else self.observation_std.tolist(),
            observation_clip=self.observation_clip,
            output_type=self.output_type,
        )
        if self.observation_shape is not None:  # only when set: an MLP's config stays what it was
            config.update(observation_shape=list(self.observation_shape))
        if self.conv_layers:
            config.update(conv_layers=[list(c) for c in self.conv_layers])
        if self.preprocessing is not None:
            config.update(preprocessing=dict(self.preprocessing))
        if self.observation_indices is not None:
            config.update(observation_indices=list(self.observation_indices))
        if self.observation_noise:
            config.update(observation_noise=self.observation_noise)
        if self.history > 1:  # one reading's size and normaliser, as given
            d = self.reading_dim
            config.update(history=self.history, observation_dim=d)
            config.pop("observation_shape")
            for key in ("observation_mean", "observation_std"):
                if config[key] is not None and len(config[key]) > 1:
                    config[key] = config[key][:d]
        if self.is_continuous:
            config.update(
                action_low=self.action_low.tolist(),
                action_high=self.action_high.tolist(),
                squash=self.squash,
                state_dependent_std=self.state_dependent_std,
                log_std_range=None if self.log_std_range is None else list(self.log_std_range),
            )
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TeacherModel(PolicyModel):
    """The big policy: 100 hidden units by default, as in the article."""

    default_hidden_units = 100


@keras.saving.register_keras_serializable(package=_PACKAGE)
class StudentModel(PolicyModel):
    """The small policy: 50 hidden units by default, as in the article."""

    default_hidden_units = 50


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RecurrentStudent(StudentModel):
    """A student with memory: a GRU or LSTM cell between its observation and its Dense layers.

    A robot whose sensors miss part of the state (no velocities, say) can
    estimate it from what it has seen; a window of the last readings
    (``history``) is one way, a recurrent state is the other (Lee et al.
    2020; ``rsl_rl``'s recurrent students). The observation is normalised, the
    features of ``observation_indices`` kept, then go through the cell, whose
    output goes through ``hidden_units`` Dense layers to the head, as in
    `PolicyModel`.

    The state is one ``float32 [batch, state_size]`` tensor: the GRU's hidden
    state, or the LSTM's ``[h, c]`` side by side (``state_size`` is twice the
    units). It is zero at an episode's start.

    - `step` ``(observations [batch, d], state) -> (outputs, new_state)``: one
      control step, what a robot runs (and what the TFLite and NumPy exports
      compute, with the state as an explicit input and output).
    - `unroll` ``(observations [batch, time, d], starts [batch, time]) ->
      (outputs [batch, time, n], state)``: a sequence, the state set to zero
      before each step where ``starts`` is true (an episode begins there).
    - ``call`` on ``[batch, time, d]`` is `unroll` from zero states, so
      ``fit`` on sequences works; on ``[batch, d]`` it is one step from a zero
      state: an episode's first step, never a later one.

    kd_rl carries the state wherever it plays the student
    (`kd_rl.policies.PolicyMemory`) and trains it on sequences with a burn-in
    (`kd_rl.data.SequenceBuffer`).

    Args:
        num_actions: As `PolicyModel`'s (continuous policies give
            ``action_low``/``action_high`` instead).
        recurrent_units: The cell's units (>= 1).
        cell: ``"gru"`` or ``"lstm"``.
        **kwargs: `PolicyModel`'s arguments for vector observations (no
            ``conv_layers``, ``history`` 1).
    """

    def __init__(self, num_actions: int | None = None, recurrent_units: int = 32, cell: str = "gru", **kwargs):
        if int(kwargs.get("history", 1)) != 1:
            raise KdRlError(
                f"a recurrent student remembers through its state: history={kwargs['history']} is for "
                "memoryless students (give one of them, not both)"
            )
        if kwargs.get("conv_layers"):
            raise KdRlError("a recurrent student takes vector observations: conv_layers are for image ones")
        super().__init__(num_actions, **kwargs)
        if self.observation_shape is not None and len(self.observation_shape) > 1:
            raise KdRlError(
                f"a recurrent student takes vector observations, got observation_shape={self.observation_shape}"
            )
        self.recurrent_units = check_int("recurrent_units", recurrent_units)
        if not isinstance(cell, str) or cell.lower() not in RECURRENT_CELLS:
            raise KdRlError(f"cell must be one of {', '.join(RECURRENT_CELLS)}, got {cell!r}")
        self.cell_type = cell.lower()
        layer = keras.layers.GRUCell if self.cell_type == "gru" else keras.layers.LSTMCell
        self.cell = layer(self.recurrent_units, name=self.cell_type)
        self.ensure_built()

    @property
    def state_size(self) -> int:
        """The entries of the state: the units (GRU) or twice them (LSTM's ``h`` and ``c``)."""
        return self.recurrent_units * (2 if self.cell_type == "lstm" else 1)

    def initial_state(self, batch_size: int) -> tf.Tensor:
        """The state at an episode's start: zeros, ``float32 [batch_size, state_size]``."""
        return tf.zeros((batch_size, self.state_size), self.compute_dtype)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        if self.observation_dim is None:
            self.observation_dim = dim
            normalise_observation_indices(self.observation_indices, self.observation_dim)
        seen = self.observation_dim if self.input_indices is None else len(self.input_indices)
        if not self.cell.built:
            self.cell.build((None, seen))
        shape = (None, self.recurrent_units)
        for layer in [*self.hidden_layers, *self.output_layers]:
            if not layer.built:
                layer.build(shape)
            if layer in self.hidden_layers:
                shape = (None, layer.units)

    def _cell(self, x, state):
        if self.cell_type == "gru":
            out, new = self.cell(x, [state])
            return out, new[0]
        h, c = tf.split(state, 2, axis=-1)
        out, (h, c) = self.cell(x, [h, c])
        return out, tf.concat([h, c], axis=-1)

    def _inputs(self, observations) -> tf.Tensor:
        x = self.normalise(observations)
        return x if self.input_indices is None else tf.gather(x, list(self.input_indices), axis=-1)

    def _outputs(self, memory) -> tf.Tensor:
        for layer in self.hidden_layers:
            memory = layer(memory)
        return self.head(memory)

    def features(self, observations) -> tf.Tensor:
        raise KdRlError(
            "a recurrent student's features depend on its state: use step(observations, state) or unroll(sequences)"
        )

    def step(self, observations, state):
        """One control step: ``(outputs [batch, n], new_state [batch, state_size])``."""
        memory, state = self._cell(self._inputs(observations), tf.cast(state, self.compute_dtype))
        return self._outputs(memory), state

    def unroll(self, observations, starts=None, state=None):
        """A sequence: ``(outputs [batch, time, n], final state)``.

        Args:
            observations: ``[batch, time, observation_dim]`` (``time`` known when traced).
            starts: ``[batch, time]``, true where an episode begins (the state is
                zeroed before that step); None: none begins inside the sequence.
            state: The state before the first step; None: zeros.
        """
        x = tf.cast(observations, self.compute_dtype)
        batch, steps = tf.shape(x)[0], x.shape[1]
        if steps is None:
            raise KdRlError("unroll needs the sequence length known: observations [batch, time, features]")
        features = self._inputs(tf.reshape(x, (-1, x.shape[-1])))
        features = tf.reshape(features, (batch, steps, features.shape[-1]))
        state = self.initial_state(batch) if state is None else tf.cast(state, self.compute_dtype)
        keep = None if starts is None else 1.0 - tf.cast(starts, self.compute_dtype)
        memories = []
        for t in range(steps):
            if keep is not None:
                state = state * keep[:, t : t + 1]
            memory, state = self._cell(features[:, t], state)
            memories.append(memory)
        memory = tf.reshape(tf.stack(memories, axis=1), (-1, self.recurrent_units))
        outputs = self._outputs(memory)
        return tf.reshape(outputs, (batch, steps, outputs.shape[-1])), state

    def call(self, observations, training=None):
        x = tf.convert_to_tensor(observations)
        if x.shape.rank == 3:
            return self.unroll(x)[0]
        return self.step(x, self.initial_state(tf.shape(x)[0]))[0]

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(recurrent_units=self.recurrent_units, cell=self.cell_type)
        return config


def sensor_noise_std(policy) -> np.ndarray | None:
    """The standard deviation of the sensor noise ``policy`` was trained to see, per feature in raw units.

    ``float32 [features of one reading]``: a kd_rl model's (or `kd_rl.policies.NumpyPolicy`'s)
    ``observation_noise`` times its ``observation_std`` (1 without one), or an
    exported file's recorded values; None for a policy without sensor noise.
    kd_rl adds ``std * N(0, 1)`` to what the policy sees wherever it plays it in
    an environment (`kd_rl.data.Collector`, `kd_rl.evaluate.run_episodes`) and
    to its training batches.
    """
    recorded = getattr(policy, "recorded_sensor_noise_std", None)  # an exported file's
    if recorded is not None:
        return np.asarray(recorded, np.float32)
    sigma = float(getattr(policy, "observation_noise", 0.0) or 0.0)
    if not sigma:
        return None
    std = getattr(policy, "observation_std", getattr(policy, "std", None))
    reading = int(policy.observation_dim) // int(getattr(policy, "history", 1))  # one reading of a window
    scale = np.ones(1, np.float32) if std is None else np.asarray(std, np.float32).reshape(-1)
    return (sigma * np.broadcast_to(scale, (int(policy.observation_dim),))[:reading]).astype(np.float32)


def count_params(model: keras.Model) -> int:
    """Number of weights (trainable and not) of a model, building it if it can."""
    if isinstance(model, PolicyModel):
        model.ensure_built()
    return int(model.count_params())


def weights_sha256(model: keras.Model) -> str:
    """SHA-256 of a model's class, weight shapes and weight bytes: the same for the same policy, however loaded.

    A resumed run compares its teacher's with the one its checkpoint records.
    """
    import hashlib

    if isinstance(model, PolicyModel):
        model.ensure_built()
    digest = hashlib.sha256(type(model).__name__.encode())
    for weights in model.get_weights():
        weights = np.ascontiguousarray(weights)
        digest.update(f"{weights.dtype}{weights.shape}".encode())
        digest.update(weights.tobytes())
    return digest.hexdigest()


def _newer_kd_rl(path) -> str | None:
    """The kd_rl version that wrote the ``.keras`` file ``path`` if it is newer than this one, else None."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            written = str(json.loads(archive.read("metadata.json")).get("kd_rl_version", ""))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None

    def key(version: str) -> tuple:
        return tuple(int(part) if part.isdigit() else 0 for part in version.split(".")[:3])

    return written if written and key(written) > key(__version__) else None


def load_policy(name_or_path) -> keras.Model:
    """Load a Keras policy from a ``.keras`` file or a zoo name, in safe mode.

    ``safe_mode=True`` means no code is run from the file (no Lambda layers),
    and nothing is unpickled.

    Raises:
        ValueError: For a missing path or unknown zoo name, a file that is not
            a ``.keras`` model (a TFLite or ``.npz`` export, say), or a
            truncated or corrupted file. The message names the file.
    """
    import json
    import zipfile

    path = resolve_model_path(name_or_path)
    if path.suffix != ".keras":
        raise KdRlError(
            f"model file {str(path)!r} is not a Keras model: expected a .keras file"
            + (
                " (TFLite and NumPy exports cannot be trained or distilled from)"
                if path.suffix in (".tflite", ".npz")
                else ""
            )
        )
    if not zipfile.is_zipfile(path):
        raise KdRlError(f"model file {str(path)!r} is truncated or corrupted: not a valid .keras archive")
    try:
        model = _load_keras2_policy(path)
    except (KeyError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise KdRlError(f"model file {str(path)!r} is truncated or corrupted: {type(err).__name__}: {err}") from None
    if model is not None:
        return model
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # Keras raises many types for a damaged archive.
        newer = _newer_kd_rl(path)
        if newer is not None:
            raise KdRlError(
                f"model file {str(path)!r} was written by a newer kd_rl ({newer}); this is kd_rl {__version__}: "
                "upgrade kd_rl to load it"
            ) from None
        raise KdRlError(f"model file {str(path)!r} could not be loaded: {type(err).__name__}: {err}") from None
    if not isinstance(model, keras.Model) or len(getattr(model, "outputs", None) or [None]) != 1:
        raise KdRlError(f"model file {str(path)!r} does not hold a single-output Keras policy")
    return model


def _load_keras2_policy(path) -> PolicyModel | None:
    """A kd_rl 0.1 policy saved by Keras 2 (TF 2.15) as a Keras 3 model; None for a Keras 3 file.

    Keras 3 reads such a file without an error but finds none of its weights
    (Keras 2 stored them under other paths), so kd_rl reads the archive itself:
    the model's config from ``config.json`` and each Dense layer's kernel and
    bias from ``model.weights.h5``. ``load_policy(old).save(new)`` converts.
    """
    import io
    import json
    import re
    import zipfile

    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("metadata.json"))
        if not str(meta.get("keras_version", "3")).startswith("2."):
            return None
        config = json.loads(archive.read("config.json"))
        weights_file = archive.read("model.weights.h5")
    classes = {f"{_PACKAGE}>{c.__name__}": c for c in (PolicyModel, TeacherModel, StudentModel)}
    cls = classes.get(config.get("registered_name"))
    if cls is None:
        raise KdRlError(
            f"model file {str(path)!r} was saved by Keras {meta['keras_version']} and holds "
            f"{config.get('class_name')!r}; kd_rl converts only its own TeacherModel/StudentModel from Keras 2 files: "
            "rebuild the model in Keras 3 and load its weights"
        )
    import h5py

    def index(name: str) -> int:  # Keras 2 named the hidden Dense layers dense, dense_1, dense_2, ...
        match = re.fullmatch(r"dense(?:_(\d+))?", name)
        return -1 if match is None else int(match.group(1) or 0)

    try:
        with h5py.File(io.BytesIO(weights_file), "r") as h5:
            names = sorted(h5["layers"].keys(), key=index) if "layers" in h5 else []
            groups = [h5["layers"][n]["vars"] for n in names] + [h5["logits_layer"]["vars"]]
            arrays = [(np.asarray(g["0"]), np.asarray(g["1"])) for g in groups]
        model = cls.from_config(config["config"])
        model.ensure_built()
        layers = [*model.hidden_layers, model.logits_layer]
        if any(index(n) < 0 for n in names) or len(arrays) != len(layers):
            raise KdRlError(f"{len(arrays)} Dense layers stored for a model of {len(layers)}")
        for layer, (kernel, bias) in zip(layers, arrays):
            layer.set_weights([kernel, bias])
    except (KeyError, ValueError, OSError) as err:
        raise KdRlError(f"Keras 2 model file {str(path)!r} could not be converted: {err}") from None
    return model


def check_keras3(model, role: str = "model") -> None:
    """Raise ``ValueError`` naming ``role`` if ``model`` is a Keras 2 (``tf_keras``) model."""
    if any(cls.__module__.split(".")[0] == "tf_keras" for cls in type(model).__mro__):
        raise KdRlError(
            f"{role} is a Keras 2 (tf_keras) model ({type(model).__name__}); kd_rl's students and teachers are "
            "Keras 3 models: build them with `import keras` (after `import kd_rl`, `tf.keras` is Keras 2)"
        )
