"""Policies you can act with: one callable interface for every form of a policy.

A *policy function* (`PolicyFn`) maps ``observations float32 [batch, obs_dim]``
to the policy's outputs: for discrete actions ``logits float32 [batch,
num_actions]`` (a DQN's Q-values, an actor's logits), where acting greedily is
``argmax`` over the last axis; for continuous actions a Keras model's
``[mean, log_std]`` ``float32 [batch, 2d]``, or, for an exported continuous
policy, its deterministic actions ``float32 [batch, d]`` (`to_actions` turns
any of these into actions). Every form kd_rl deals in becomes one:

* a Keras model: `as_policy_fn` wraps it in one compiled ``tf.function`` per
  model (made once and reused, so repeated evaluations do not retrace);
  `fast_policy_fn` computes a plain kd_rl MLP's outputs with NumPy from a
  snapshot of its weights instead, what collection and evaluation use (a call
  into TensorFlow costs 0.3-0.6 ms whatever the batch; a small MLP on a few
  states costs microseconds in NumPy);
* a NumPy export: `NumpyPolicy`, a dependency-free forward pass;
* a TFLite export: `TFLitePolicy`, run with LiteRT (``ai_edge_litert``);
* any file or zoo name: `load_any_policy`.

The reverse direction, a Keras model as a TF-Agents ``TFPolicy`` for drivers
and ``PolicySaver``, is `as_tf_policy` (it needs TF-Agents, and lives in
`kd_rl.teachers.tf_policy`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kd_rl.errors import KdRlError

__all__ = [
    "PolicyFn",
    "as_policy_fn",
    "fast_policy_fn",
    "OutputSnapshot",
    "as_tf_policy",
    "NumpyPolicy",
    "TFLitePolicy",
    "OnnxPolicy",
    "TflmPolicy",
    "conv2d_valid",
    "load_any_policy",
    "observation_dim",
    "to_actions",
]

#: A batched policy: ``observations float32 [batch, obs_dim] -> logits float32 [batch, num_actions]``.
PolicyFn = Callable[[np.ndarray], np.ndarray]

_POLICY_FN_ATTR = "_kd_rl_policy_fn"


def _is_keras_model(obj) -> bool:
    import keras

    return isinstance(obj, keras.Model)


def observation_dim(model) -> int:
    """Input size of a policy: its ``observation_dim``, else its Keras input shape."""
    return getattr(model, "observation_dim", None) or model.input_shape[-1]


def as_policy_fn(policy) -> PolicyFn:
    """A fast batched ``PolicyFn`` for a Keras model; any other callable is returned as is.

    A Keras model is traced once per model with a ``[None, obs_dim]`` signature
    (kept on the model itself, so it lives and dies with it), so varying batch
    sizes and repeated calls do not retrace, and later weight updates are seen.
    """
    if not _is_keras_model(policy):
        return policy
    fn = policy.__dict__.get(_POLICY_FN_ATTR)
    if fn is None:
        import tensorflow as tf

        @tf.function(input_signature=[tf.TensorSpec([None, observation_dim(policy)], tf.float32)])
        def forward(x):
            return policy(x, training=False)

        def fn(observations):
            return forward(np.asarray(observations, np.float32)).numpy()

        # object.__setattr__: Keras would track the function as part of the model (and save it).
        object.__setattr__(policy, _POLICY_FN_ATTR, fn)
    return fn


def _mlp_features(x: np.ndarray, mean, std, clip, hidden, activation, indices=None) -> np.ndarray:
    """A kd_rl MLP's last hidden activations in NumPy: the fixed normaliser (``mean``, ``std``, ``clip``,
    each None for none), the observation's ``indices`` (None: all), then each ``(kernel, bias)`` of
    ``hidden`` with ``activation`` (a NumPy function)."""
    if mean is not None:
        x = x - mean
    if std is not None:
        x = x / std
    if clip is not None:
        x = np.clip(x, -clip, clip)
    if indices is not None:
        x = np.take(x, indices, axis=1)
    for kernel, bias in hidden:
        x = activation(x @ kernel + bias)
    return x


def recurrent_cell_step(recurrent, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keras's ``GRUCell`` (``reset_after``) or ``LSTMCell`` in NumPy: ``(output, new_state)``.

    ``recurrent``: ``(cell, kernel, recurrent_kernel, bias)`` as Keras keeps
    them; ``state``: the GRU's ``h``, or the LSTM's ``[h, c]`` side by side
    (`kd_rl.models.RecurrentStudent`'s layout).
    """
    cell, kernel, recurrent_kernel, bias = recurrent
    sigmoid = NUMPY_ACTIVATIONS["sigmoid"]
    if cell == "gru":  # gates z, r, h; the reset gate applied after the recurrent product
        x_z, x_r, x_h = np.split(x @ kernel + bias[0], 3, axis=-1)
        h_z, h_r, h_h = np.split(state @ recurrent_kernel + bias[1], 3, axis=-1)
        z, r = sigmoid(x_z + h_z), sigmoid(x_r + h_r)
        h = z * state + (1.0 - z) * np.tanh(x_h + r * h_h)
        return h.astype(np.float32), h.astype(np.float32)
    h, c = np.split(state, 2, axis=-1)
    i, f, g, o = np.split(x @ kernel + h @ recurrent_kernel + bias, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    return h.astype(np.float32), np.concatenate([h, c], axis=-1).astype(np.float32)


#: The names of a recurrent cell's arrays in a NumPy export (``.npz``).
_CELL_ARRAYS = ("cell_kernel", "cell_recurrent_kernel", "cell_bias")


def conv2d_valid(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """Keras' ``Conv2D(padding="valid")`` in NumPy: ``x [n, h, w, c]``, ``kernel [k, k, c, f]`` -> ``[n, h', w', f]``.

    ``stride`` is the same along both axes. The activation is the caller's. The
    windows are laid out as rows (im2col) and multiplied by the kernel in one
    matrix product: about 30 µs for 8 MinAtar frames and 16 filters.
    """
    k, f = kernel.shape[0], kernel.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    n, h, w = windows.shape[:3]
    # windows: [n, h', w', c, k, k] -> rows [n·h'·w', k·k·c], in the kernel's [k, k, c] order.
    rows = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * h * w, -1)
    return (rows @ kernel.reshape(-1, f)).reshape(n, h, w, f) + bias


#: The largest first convolution (multiply-adds per frame) `OutputSnapshot` computes in NumPy:
#: MinAtar's teachers (16 3x3 filters over 10x10x4 frames: 36,864) are about 10 times faster
#: so than through a compiled TensorFlow call, the Nature DQN's first layer on 84x84x4 Atari
#: frames (3.3M) is not.
MAX_NUMPY_CONV_MACS = 500_000


class ObservationWindows:
    """The last ``history`` readings of ``n`` environments, oldest first: what a ``history`` policy sees.

    Before an episode's first reading the window holds zeros, as the policy
    learnt it (`kd_rl.models.PolicyModel`'s ``history``). `start` begins an
    episode, `push` adds a reading, `view` gives the flat windows
    ``float32 [len(indices), history * features]``.
    """

    def __init__(self, n: int, history: int, features: int):
        self.data = np.zeros((n, history, features), np.float32)

    def start(self, indices, readings) -> None:
        self.data[indices] = 0.0
        self.data[indices, -1] = readings

    def push(self, indices, readings) -> None:
        self.data[indices, :-1] = self.data[indices, 1:]
        self.data[indices, -1] = readings

    def view(self, indices) -> np.ndarray:
        return self.data[indices].reshape(len(np.atleast_1d(indices)), -1)


class PolicyMemory:
    """A policy played step by step in ``n`` environments, with what it remembers between steps.

    ``memory(indices, readings)`` gives the policy's outputs for this step's
    readings of environments ``indices`` (``float32 [len(indices), features]``,
    what its sensors read) and remembers them; `start` begins new episodes in
    environments ``indices``, before their first reading. What is remembered
    is the policy's own:

    - nothing, for a memoryless policy: its outputs on the readings;
    - a window of its last ``history`` readings (`ObservationWindows`, zeros
      before an episode's first), for a ``history`` policy;
    - its recurrent state (zeros at an episode's start), for a policy with a
      ``state_size`` (`kd_rl.models.RecurrentStudent` and its TFLite and NumPy
      exports), updated by each of its ``step`` calls.

    Collection, evaluation and `kd_rl.record` play a student through this.
    ``forward``: the ``PolicyFn`` to call for a memoryless or ``history``
    policy (default `fast_policy_fn`), so that a caller refreshing its own
    snapshot of a model's weights is heard.
    """

    def __init__(self, policy, n: int, features: int, forward=None):
        self.state_size = int(getattr(policy, "state_size", 0) or 0)
        self.history = int(getattr(policy, "history", 1))
        self._windows = None
        if self.state_size:
            self._step = recurrent_step_fn(policy)
            self.state = np.zeros((n, self.state_size), np.float32)
        else:
            self._forward = fast_policy_fn(policy) if forward is None else forward
            if self.history > 1:
                self._windows = ObservationWindows(n, self.history, features)

    def start(self, indices) -> None:
        """New episodes begin in environments ``indices``: they remember nothing yet."""
        if self.state_size:
            self.state[indices] = 0.0
        elif self._windows is not None:
            self._windows.data[indices] = 0.0

    def __call__(self, indices, readings) -> np.ndarray:
        if self.state_size:
            outputs, state = self._step(readings, self.state[indices])
            self.state[indices] = state
            return np.asarray(outputs)
        if self._windows is not None:
            self._windows.push(indices, readings)
            return self._forward(self._windows.view(indices))
        return self._forward(readings)


_STEP_FN_ATTR = "_kd_rl_step_fn"


def recurrent_step_fn(policy):
    """``step(observations, state) -> (outputs, new_state)`` as NumPy arrays, for a policy with a ``state_size``.

    A `kd_rl.models.RecurrentStudent` gets a compiled ``tf.function`` of its
    ``step`` (its weights as they are at each call); an exported recurrent
    policy (`NumpyPolicy`, `TFLitePolicy`) its own ``step``.
    """
    if not _is_keras_model(policy):
        return policy.step
    fn = policy.__dict__.get(_STEP_FN_ATTR)
    if fn is None:
        import tensorflow as tf

        signature = [
            tf.TensorSpec([None, observation_dim(policy)], tf.float32),
            tf.TensorSpec([None, policy.state_size], tf.float32),
        ]
        compiled = tf.function(policy.step, input_signature=signature)

        def fn(observations, state):
            outputs, state = compiled(np.asarray(observations, np.float32), np.asarray(state, np.float32))
            return outputs.numpy(), state.numpy()

        object.__setattr__(policy, _STEP_FN_ATTR, fn)  # kept on the model, never tracked or saved by Keras
    return fn


def sensor_readings(std: np.ndarray, rng: np.random.Generator):
    """What a robot's sensors read: ``readings(observations)`` adds ``std * N(0, 1)`` drawn from ``rng``.

    ``std``: per feature, as `kd_rl.models.sensor_noise_std` gives it. Collection, evaluation and
    `kd_rl.record` all draw a student's sensor noise through this.
    """

    def readings(observations):
        x = np.asarray(observations, np.float32)
        return x + std * rng.standard_normal(x.shape, np.float32)

    return readings


class OutputSnapshot:
    """A plain kd_rl MLP's (or small CNN's) outputs computed with NumPy from a snapshot of its weights: a ``PolicyFn``.

    ``snapshot(obs)`` gives what ``model(obs)`` gives (logits, or a Gaussian's
    ``[mean, log_std]``) up to float32 rounding (about 1e-6 relative), without
    a call into TensorFlow. The weights are copied when the snapshot is made
    and by `refresh`; later updates of the model are not seen until then.

    Args:
        model: A kd_rl ``PolicyModel`` that `OutputSnapshot.supports`.
    """

    def __init__(self, model):
        if not self.supports(model):
            raise KdRlError(f"{type(model).__name__} is not a plain kd_rl MLP with a NumPy form; use as_policy_fn")
        self.model = model
        self.observation_dim = model.observation_dim
        self._act = NUMPY_ACTIVATIONS[model.activation]
        self._mean = None if model.observation_mean is None else np.asarray(model.observation_mean, np.float32)
        self._std = None if model.observation_std is None else np.asarray(model.observation_std, np.float32)
        indices = getattr(model, "input_indices", None)
        self._indices = None if indices is None else np.asarray(indices, np.intp)
        self._shape = getattr(model, "observation_shape", None)
        self.history = getattr(model, "history", 1)
        self._strides = [stride for _, _, stride in getattr(model, "conv_layers", ())]
        self.refresh()

    @staticmethod
    def supports(model) -> bool:
        """Whether ``model`` is a kd_rl ``PolicyModel`` whose forward pass this class reproduces."""
        from kd_rl.models import PolicyModel

        if not isinstance(model, PolicyModel):
            return False
        kind = type(model)
        if (kind.call, kind.features, kind.head, kind.normalise) != (
            PolicyModel.call, PolicyModel.features, PolicyModel.head, PolicyModel.normalise,
        ):  # fmt: skip
            return False
        if model.activation not in NUMPY_ACTIVATIONS or model.compute_dtype != "float32":
            return False
        if model.observation_dim is None:  # not built yet: its first call decides its input
            return False
        import keras

        from kd_rl._validate import conv_output_shape

        def plain(layer, activation, kind=keras.layers.Dense) -> bool:  # a float layer: a kernel and a bias
            return (
                type(layer) is kind and layer.use_bias and layer.activation is activation
                and len(layer.weights) == 2 and not getattr(layer, "lora_enabled", False)
                and getattr(layer, "quantization_mode", None) is None
            )  # fmt: skip

        hidden = keras.activations.get(model.activation)
        linear = keras.activations.get("linear")
        conv_layers = getattr(model, "conv_layers", ())
        if conv_layers:  # a small CNN (MinAtar's) only: a large one (Atari's) is faster in TensorFlow
            (filters, kernel, _), channels = conv_layers[0], model.observation_shape[-1]
            height, width, _ = conv_output_shape(model.observation_shape, conv_layers[:1])
            if height * width * filters * kernel * kernel * channels > MAX_NUMPY_CONV_MACS:
                return False
        model.ensure_built()
        return (
            all(plain(conv, hidden, keras.layers.Conv2D) for conv in getattr(model, "convolutions", []))
            and all(plain(layer, hidden) for layer in model.hidden_layers)
            and all(plain(layer, linear) for layer in model.output_layers)
        )

    def refresh(self) -> None:
        """Copy the model's current weights (about 0.1 ms for a small MLP)."""
        model = self.model
        model.ensure_built()
        self._convolutions = [tuple(conv.get_weights()) for conv in getattr(model, "convolutions", [])]
        self._hidden = [tuple(layer.get_weights()) for layer in model.hidden_layers]
        self._out = [tuple(layer.get_weights()) for layer in model.output_layers]
        self._log_std = None
        if model.is_continuous and not model.state_dependent_std:
            self._log_std = np.asarray(model.log_std.numpy(), np.float32)

    def __call__(self, observations) -> np.ndarray:
        x = np.asarray(observations, np.float32)
        if self._shape is not None and x.ndim > 2 and x.shape[1:] == tuple(self._shape):
            x = x.reshape(len(x), -1)  # frames in their own shape
        if x.ndim != 2 or x.shape[-1] != self.observation_dim:
            raise KdRlError(
                f"observations must be [batch, {self.observation_dim}], got shape {tuple(np.shape(observations))}"
            )
        model = self.model
        if self._convolutions:
            x = _mlp_features(x, self._mean, self._std, model.observation_clip, [], self._act)  # the normaliser
            x = x.reshape(len(x), *self._shape)
            for (kernel, bias), stride in zip(self._convolutions, self._strides):
                x = self._act(conv2d_valid(x, kernel, bias, stride))
            x = _mlp_features(x.reshape(len(x), -1), None, None, None, self._hidden, self._act)
        else:
            x = _mlp_features(
                x, self._mean, self._std, model.observation_clip, self._hidden, self._act, self._indices
            )  # fmt: skip
        if not model.is_continuous:
            kernel, bias = self._out[0]
            return x @ kernel + bias
        kernel, bias = self._out[0]
        mean = x @ kernel + bias
        if self._log_std is None:
            kernel, bias = self._out[1]
            log_std = x @ kernel + bias
        else:
            log_std = np.zeros_like(mean) + self._log_std
        if model.log_std_range is not None:
            log_std = np.clip(log_std, *model.log_std_range)
        return np.concatenate([mean, log_std], axis=-1).astype(np.float32, copy=False)


def fast_policy_fn(policy) -> PolicyFn:
    """The fastest batched ``PolicyFn`` for ``policy`` as it is now: collection's and evaluation's.

    A plain kd_rl MLP becomes an `OutputSnapshot` (NumPy, its weights copied
    now: make a new one, or call its ``refresh``, after the model changes);
    any other Keras model gets `as_policy_fn`'s compiled ``tf.function``, and
    any other callable is returned as is. Setting the environment variable
    ``KD_RL_FAST_POLICIES=0`` turns the NumPy path off (for comparisons).
    """
    if os.environ.get("KD_RL_FAST_POLICIES", "1") != "0" and OutputSnapshot.supports(policy):
        return OutputSnapshot(policy)
    return as_policy_fn(policy)


def as_tf_policy(model, time_step_spec, action_spec, name: str | None = None):
    """``model`` as a greedy TF-Agents policy (needs TF-Agents; see `kd_rl.teachers.tf_policy`)."""
    from kd_rl.teachers.tf_policy import as_tf_policy as _as_tf_policy

    return _as_tf_policy(model, time_step_spec, action_spec, name=name)


#: The activations `NumpyPolicy` (and so the NumPy export) can compute, by Keras name.
NUMPY_ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "linear": lambda x: x,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "softplus": lambda x: np.logaddexp(0.0, x),
    "swish": lambda x: x / (1.0 + np.exp(-x)),
}


#: The key under which an exported file records the Atari preprocessing of its frames
#: (TFLite metadata, ONNX ``metadata_props``, the ``.npz``'s ``meta``), as JSON.
PREPROCESSING_KEY = "kd_rl.preprocessing"
#: The key under which an exported TFLite or ONNX file records the sensor noise its policy was
#: trained with (`kd_rl.models.sensor_noise_std`: per feature, raw units), as a JSON list.
SENSOR_NOISE_KEY = "kd_rl.sensor_noise_std"
#: The key under which an exported TFLite or ONNX file records its policy's ``history`` (the readings
#: its input holds, `kd_rl.models.PolicyModel`), as JSON.
HISTORY_KEY = "kd_rl.history"


class _ExportedPolicy:
    """What every exported policy shares: `act` from its outputs (logits, or continuous actions).

    ``preprocessing``: the Atari preprocessing (`kd_rl.games.ATARI_PREPROCESSING`'s
    keys) the exported model's frames had, where it was recorded; None otherwise.
    ``recorded_sensor_noise_std``: the sensor noise the model was trained with
    (`kd_rl.models.sensor_noise_std`), where the file records it; None otherwise.
    ``history``: the readings the model's input holds (`ObservationWindows`), 1 unless recorded.
    """

    is_continuous: bool
    preprocessing: dict | None = None
    recorded_sensor_noise_std: list | None = None
    history: int = 1

    def _read_recorded(self, entries: dict) -> None:
        """Take what the exported file records (`PREPROCESSING_KEY`, `SENSOR_NOISE_KEY`, `HISTORY_KEY`: JSON
        strings or bytes)."""
        if entries.get(PREPROCESSING_KEY) is not None:
            self.preprocessing = json.loads(entries[PREPROCESSING_KEY])
        if entries.get(SENSOR_NOISE_KEY) is not None:
            self.recorded_sensor_noise_std = json.loads(entries[SENSOR_NOISE_KEY])
        if entries.get(HISTORY_KEY) is not None:
            self.history = int(json.loads(entries[HISTORY_KEY]))

    def act(self, observations) -> np.ndarray:
        """Deterministic actions: int64 ``[batch]`` (argmax) or float32 ``[batch, d]``."""
        out = self(observations)
        return out if self.is_continuous else np.argmax(out, axis=-1)


class NumpyPolicy(_ExportedPolicy):
    """A kd_rl MLP (or CNN) evaluated with NumPy alone: ``policy(obs) -> logits`` (or actions).

    Discrete: ``policy(obs)`` gives logits ``[batch, num_actions]`` and
    `act` their argmax. Continuous (``action_low``/``action_high`` given):
    the last layer gives the Gaussian's mean, and ``policy(obs)`` and `act`
    both give the deterministic action ``float32 [batch, d]`` inside the bounds
    (`kd_rl.models.gaussian_action`).

    Args:
        weights: ``[(kernel [in, out], bias [out]), ...]``, the last pair giving
            logits (discrete) or the Gaussian's mean (continuous).
        activation: Hidden activation name (one of relu, tanh, sigmoid, linear, elu, softplus, swish).
        observation_mean: Fixed mean subtracted from observations, if any.
        observation_std: Fixed standard deviation observations are divided by, if any.
        observation_clip: Clip applied after normalising, if any.
        action_low: Lower Box action bounds of a continuous policy.
        action_high: Upper Box action bounds of a continuous policy.
        squash: Continuous only: tanh-squash the mean into the bounds (else clip it).
        convolutions: ``[(kernel [k, k, c, f], bias [f], stride), ...]``: ``Conv2D``
            layers (``valid`` padding, ``activation``) applied to image
            observations before the Dense layers (`conv2d_valid`).
        observation_shape: The observations' own shape; needed with ``convolutions``.
            Observations come in that shape or flattened.
        preprocessing: The Atari preprocessing the policy's frames had, if recorded.
        observation_indices: The entries of the (flat) input the first layer
            sees, taken after the normaliser (`kd_rl.models.PolicyModel`'s
            ``input_indices``); None: all.
        observation_noise: The sensor noise the policy was trained with (`PolicyModel`'s), recorded only.
        history: The readings the input holds (`PolicyModel`'s ``history``),
            recorded for whoever keeps the window; the input is then
            ``observation_shape = (history, features)`` or flat.
        recurrent: ``(cell, kernel, recurrent_kernel, bias)`` of a
            `kd_rl.models.RecurrentStudent`'s cell (``"gru"`` or ``"lstm"``,
            Keras's weights), between the normaliser and ``weights``. The
            policy then has a state: `step` takes and gives it, ``policy(obs)``
            is one step from a zero state (an episode's first).
    """

    def __init__(
        self,
        weights,
        activation="relu",
        observation_mean=None,
        observation_std=None,
        observation_clip=None,
        action_low=None,
        action_high=None,
        squash: bool = False,
        convolutions=(),
        observation_shape=None,
        preprocessing: dict | None = None,
        observation_indices=None,
        observation_noise: float = 0.0,
        history: int = 1,
        recurrent=None,
    ):
        if activation not in NUMPY_ACTIVATIONS:
            raise KdRlError(f"activation {activation!r} has no NumPy form; supported: {', '.join(NUMPY_ACTIVATIONS)}")
        self.weights = [(np.asarray(k, np.float32), np.asarray(b, np.float32)) for k, b in weights]
        self.activation = activation
        self._act = NUMPY_ACTIVATIONS[activation]
        self.mean = None if observation_mean is None else np.asarray(observation_mean, np.float32)
        self.std = None if observation_std is None else np.asarray(observation_std, np.float32)
        self.clip = observation_clip
        self.convolutions = [
            (np.asarray(k, np.float32), np.asarray(b, np.float32), int(stride)) for k, b, stride in convolutions
        ]
        self.observation_shape = None if observation_shape is None else tuple(int(d) for d in observation_shape)
        self.preprocessing = None if preprocessing is None else dict(preprocessing)
        self.observation_indices = None if observation_indices is None else tuple(int(i) for i in observation_indices)
        self.observation_noise = float(observation_noise)
        self.history = int(history)
        self.recurrent = None
        if recurrent is not None:
            from kd_rl.models import RECURRENT_CELLS

            cell, *arrays = recurrent
            if cell not in RECURRENT_CELLS or len(arrays) != 3:
                raise KdRlError(
                    f"recurrent must be (cell, kernel, recurrent_kernel, bias) with cell one of "
                    f"{', '.join(RECURRENT_CELLS)}"
                )
            self.recurrent = (cell, *(np.asarray(a, np.float32) for a in arrays))
        first = self.recurrent[1] if self.recurrent else self.weights[0][0]  # the first layer's kernel
        if self.convolutions and (self.observation_shape is None or len(self.observation_shape) != 3):
            raise KdRlError("a convolutional NumpyPolicy needs observation_shape=(height, width, channels)")
        self.observation_dim = (
            first.shape[0] if self.observation_shape is None else int(np.prod(self.observation_shape))
        )
        if self.observation_indices is not None:
            from kd_rl._validate import normalise_observation_indices

            if len(self.observation_indices) != first.shape[0]:
                layer = "a recurrent cell" if self.recurrent else "a first layer"
                raise KdRlError(
                    f"{len(self.observation_indices)} observation indices for {layer} of {first.shape[0]} inputs"
                )
            if self.mean is None and self.std is None:
                raise KdRlError(
                    "a NumpyPolicy with observation_indices learns the observation's length from its normaliser: "
                    "give observation_mean (zeros do) or observation_std"
                )
            self.observation_dim = int(np.size(self.mean if self.mean is not None else self.std))
            normalise_observation_indices(self.observation_indices, self.observation_dim)
        # A one-entry normaliser (an image's scale) applies to every feature: written out in full for C.
        if self.mean is not None:
            self.mean = np.broadcast_to(self.mean.reshape(-1), (self.observation_dim,)).copy()
        if self.std is not None:
            self.std = np.broadcast_to(self.std.reshape(-1), (self.observation_dim,)).copy()
        self.is_continuous = action_low is not None
        self.outputs_are_actions = self.is_continuous
        if self.is_continuous:
            from kd_rl.models import check_action_bounds

            self.action_low, self.action_high = check_action_bounds(action_low, action_high)
            self.squash = bool(squash)
            self.action_dim = int(self.action_low.size)
            self.num_actions = None
            if self.weights[-1][0].shape[1] != self.action_dim:
                raise KdRlError(
                    f"the last layer has {self.weights[-1][0].shape[1]} outputs but the action has {self.action_dim}"
                )
        else:
            self.action_low = self.action_high = None
            self.squash = False
            self.action_dim = None
            self.num_actions = self.weights[-1][0].shape[1]

    def __call__(self, observations) -> np.ndarray:
        x = np.asarray(observations, np.float32)
        if x.ndim == 1 or (self.observation_shape is not None and x.shape == self.observation_shape):
            x = x[None]  # one observation
        if x.ndim > 2 and self.observation_shape is not None:
            if x.shape[1:] != self.observation_shape:
                raise KdRlError(
                    f"observations have shape {x.shape[1:]} but the policy expects {self.observation_shape}"
                )
            x = x.reshape(len(x), -1)
        if x.shape[-1] != self.observation_dim:
            raise KdRlError(f"observations have {x.shape[-1]} features but the policy expects {self.observation_dim}")
        if self.recurrent is not None:  # an episode's first step
            return self.step(x, np.zeros((len(x), self.state_size), np.float32))[0]
        x = _mlp_features(x, self.mean, self.std, self.clip, [], self._act, self.observation_indices)  # normaliser
        if self.convolutions:
            x = x.reshape(len(x), *self.observation_shape)
            for kernel, bias, stride in self.convolutions:
                x = self._act(conv2d_valid(x, kernel, bias, stride))
            x = x.reshape(len(x), -1)
        return self._head(x)

    def _head(self, x: np.ndarray) -> np.ndarray:
        for kernel, bias in self.weights[:-1]:
            x = self._act(x @ kernel + bias)
        kernel, bias = self.weights[-1]
        out = x @ kernel + bias
        if self.is_continuous:
            from kd_rl.models import gaussian_action

            return gaussian_action(out, self.action_low, self.action_high, self.squash)
        return out

    @property
    def state_size(self) -> int:
        """The entries of a recurrent policy's state (0 without one)."""
        if self.recurrent is None:
            return 0
        cell, _, recurrent_kernel, _ = self.recurrent
        return recurrent_kernel.shape[0] * (2 if cell == "lstm" else 1)

    def step(self, observations, state) -> tuple[np.ndarray, np.ndarray]:
        """One step of a recurrent policy: ``(outputs, new_state)`` from ``observations [batch, d]`` and
        ``state [batch, state_size]`` (`kd_rl.models.RecurrentStudent.step`)."""
        if self.recurrent is None:
            raise KdRlError("step is for a recurrent policy; this one has no state: call it on observations")
        x = np.asarray(observations, np.float32)
        x = x[None] if x.ndim == 1 else x
        if x.shape[-1] != self.observation_dim:
            raise KdRlError(f"observations have {x.shape[-1]} features but the policy expects {self.observation_dim}")
        x = _mlp_features(x, self.mean, self.std, self.clip, [], self._act, self.observation_indices)
        memory, state = recurrent_cell_step(self.recurrent, x, np.asarray(state, np.float32).reshape(len(x), -1))
        return self._head(memory), state

    @classmethod
    def from_model(cls, model) -> NumpyPolicy:
        """The NumPy twin of a kd_rl ``PolicyModel`` (plain MLPs and CNNs; see `export_model`)."""
        continuous = getattr(model, "is_continuous", False)
        convolutions = [
            (*conv.get_weights(), stride)
            for conv, (_, _, stride) in zip(getattr(model, "convolutions", []), getattr(model, "conv_layers", ()))
        ]
        mean, std = model.observation_mean, model.observation_std
        indices = getattr(model, "input_indices", None)
        if indices is not None:  # the normaliser at the observation's full length tells it
            dim = model.observation_dim
            mean = np.zeros(dim, np.float32) if mean is None else np.broadcast_to(mean.reshape(-1), (dim,))
            std = None if std is None else np.broadcast_to(std.reshape(-1), (dim,))
        return cls(
            dense_weights(model),
            model.activation,
            observation_mean=mean,
            observation_std=std,
            observation_clip=model.observation_clip,
            action_low=model.action_low if continuous else None,
            action_high=model.action_high if continuous else None,
            squash=model.squash if continuous else False,
            convolutions=convolutions,
            observation_shape=getattr(model, "observation_shape", None),
            preprocessing=getattr(model, "preprocessing", None),
            observation_indices=indices,
            observation_noise=getattr(model, "observation_noise", 0.0),
            history=getattr(model, "history", 1),
            recurrent=(model.cell_type, *model.cell.get_weights()) if hasattr(model, "cell_type") else None,
        )

    def count_params(self) -> int:
        cell = 0 if self.recurrent is None else sum(a.size for a in self.recurrent[1:])
        return int(
            sum(k.size + b.size for k, b in self.weights) + sum(k.size + b.size for k, b, _ in self.convolutions)
            + cell
        )  # fmt: skip

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights, normaliser and bounds to an ``.npz`` (arrays and a JSON ``meta``; no pickles)."""
        arrays = {}
        for i, (kernel, bias) in enumerate(self.weights):
            arrays[f"kernel_{i}"], arrays[f"bias_{i}"] = kernel, bias
        if self.mean is not None:
            arrays["observation_mean"] = self.mean
        if self.std is not None:
            arrays["observation_std"] = self.std
        for i, (kernel, bias, _) in enumerate(self.convolutions):
            arrays[f"conv_kernel_{i}"], arrays[f"conv_bias_{i}"] = kernel, bias
        meta = {"layers": len(self.weights), "activation": self.activation, "observation_clip": self.clip}
        if self.convolutions:
            meta["conv_strides"] = [stride for _, _, stride in self.convolutions]
        if self.observation_shape is not None:
            meta["observation_shape"] = list(self.observation_shape)
        if self.preprocessing is not None:
            meta["preprocessing"] = self.preprocessing
        if self.observation_indices is not None:
            meta["observation_indices"] = list(self.observation_indices)
        if self.observation_noise:
            meta["observation_noise"] = self.observation_noise
        if self.history > 1:
            meta["history"] = self.history
        if self.recurrent is not None:
            meta["cell"] = self.recurrent[0]
            for name, array in zip(_CELL_ARRAYS, self.recurrent[1:]):
                arrays[name] = array
        if self.is_continuous:
            arrays["action_low"], arrays["action_high"] = self.action_low, self.action_high
            meta["squash"] = self.squash
        arrays["meta"] = np.array(json.dumps(meta))
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> NumpyPolicy:
        """Read an ``.npz`` written by `export_model` (no pickles are loaded)."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            weights = [(data[f"kernel_{i}"], data[f"bias_{i}"]) for i in range(meta["layers"])]
            convolutions = [
                (data[f"conv_kernel_{i}"], data[f"conv_bias_{i}"], stride)
                for i, stride in enumerate(meta.get("conv_strides", []))
            ]
            keys = ("observation_mean", "observation_std", "action_low", "action_high")
            arrays = {k: (data[k] if k in data.files else None) for k in keys}
            recurrent = (meta["cell"], *(data[name] for name in _CELL_ARRAYS)) if "cell" in meta else None
        return cls(
            weights,
            meta["activation"],
            observation_clip=meta.get("observation_clip"),
            squash=bool(meta.get("squash", False)),
            convolutions=convolutions,
            observation_shape=meta.get("observation_shape"),
            preprocessing=meta.get("preprocessing"),
            observation_indices=meta.get("observation_indices"),
            observation_noise=meta.get("observation_noise", 0.0),
            history=meta.get("history", 1),
            recurrent=recurrent,
            **arrays,
        )


#: Name of the output of an exported continuous policy (its deterministic action).
ACTIONS_OUTPUT = "deterministic_actions"
#: Names of an exported recurrent policy's state input and output (`kd_rl.models.RecurrentStudent`).
STATE_INPUT, STATE_OUTPUT = "state", "next_state"


def _batched(observations, shape: tuple[int, ...]) -> np.ndarray:
    """Observations as float32 ``[batch, *shape]``: one observation gets a batch axis, flat ones their shape."""
    x = np.asarray(observations, np.float32)
    if x.shape == tuple(shape) or (x.ndim == 1 and x.size == int(np.prod(shape))):
        x = x[None]  # one observation
    if x.shape[1:] != shape and x.ndim == 2 and x.shape[1] == int(np.prod(shape)) and len(shape) > 1:
        x = x.reshape(len(x), *shape)  # flat, as kd_rl's buffers and environments give them
    return x


def tflite_metadata(flatbuffer: bytes) -> dict[str, bytes]:
    """The named metadata entries of a TFLite model: name -> the bytes of its buffer."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    entries = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        entries[entry.Name().decode()] = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    return entries


class TFLitePolicy(_ExportedPolicy):
    """A TFLite model run by LiteRT (``ai_edge_litert``) as a batched ``PolicyFn``.

    int8 models are (de)quantised at the edges, so the policy always takes and
    returns float32. A recurrent export (inputs ``observations`` and ``state``,
    outputs the policy's and ``next_state``) has a ``state_size`` and a
    `step`; calling it is one step from a zero state.
    """

    state_size = 0

    def __init__(self, path: str | os.PathLike, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        from kd_rl._io import native_output_silenced

        self.path = str(path)
        with native_output_silenced():  # LiteRT announces its XNNPACK delegate on stderr
            self.interpreter = Interpreter(model_path=self.path, num_threads=num_threads)
            self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        # A continuous policy is exported with its deterministic action as the output (see kd_rl.export).
        signatures = self.interpreter.get_signature_list()
        outputs = [name for signature in signatures.values() for name in signature.get("outputs", [])]
        self.outputs_are_actions = self.is_continuous = ACTIONS_OUTPUT in outputs
        self._runner = None
        for key, signature in signatures.items():
            if STATE_INPUT in signature.get("inputs", []):  # a recurrent policy: named inputs and outputs
                self._runner = self.interpreter.get_signature_runner(key)
                inputs = self._runner.get_input_details()
                self._input = next(d for name, d in inputs.items() if name != STATE_INPUT)
                self.state_size = int(inputs[STATE_INPUT]["shape"][-1])
                self._output_name = next(name for name in signature["outputs"] if name != STATE_OUTPUT)
                self._input_name = next(name for name in inputs if name != STATE_INPUT)
                self._output = self._runner.get_output_details()[self._output_name]
        self.observation_shape = tuple(int(d) for d in self._input["shape"][1:])
        self.observation_dim = int(np.prod(self.observation_shape))
        size = int(self._output["shape"][-1])
        self.num_actions, self.action_dim = (None, size) if self.is_continuous else (size, None)
        self._batch = int(self._input["shape"][0])
        self._read_recorded(tflite_metadata(Path(self.path).read_bytes()))

    def step(self, observations, state) -> tuple[np.ndarray, np.ndarray]:
        """One step of a recurrent export: ``(outputs, new_state)`` (float32)."""
        if self._runner is None:
            raise KdRlError(f"{self.path} has no state input: it is not a recurrent policy")
        x = _batched(observations, self.observation_shape)
        state = np.asarray(state, np.float32).reshape(len(x), self.state_size)
        out = self._runner(**{self._input_name: x, STATE_INPUT: state})
        return np.asarray(out[self._output_name]), np.asarray(out[STATE_OUTPUT])

    def __call__(self, observations) -> np.ndarray:
        if self._runner is not None:  # an episode's first step
            x = _batched(observations, self.observation_shape)
            return self.step(x, np.zeros((len(x), self.state_size), np.float32))[0]
        x = _batched(observations, self.observation_shape)
        if x.shape[0] != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"], [x.shape[0], *self.observation_shape])
            self.interpreter.allocate_tensors()
            self._input = self.interpreter.get_input_details()[0]
            self._output = self.interpreter.get_output_details()[0]
            self._batch = x.shape[0]
        scale, zero = self._input["quantization"]
        if self._input["dtype"] != np.float32:
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(self._input["dtype"])
        self.interpreter.set_tensor(self._input["index"], x)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._output["index"])
        scale, zero = self._output["quantization"]
        if self._output["dtype"] != np.float32:
            out = (out.astype(np.float32) - zero) * scale
        return out


class OnnxPolicy(_ExportedPolicy):
    """An ONNX model (a kd_rl ``onnx`` export) run by ONNX Runtime as a batched ``PolicyFn``.

    Its output is ``logits``, or ``deterministic_actions`` for a continuous
    policy (`kd_rl.export`). One intra-op thread, like `TFLitePolicy`: a
    control step is one small batch.
    """

    def __init__(self, path: str | os.PathLike, num_threads: int = 1):
        try:
            import onnxruntime
        except ImportError:
            from kd_rl.errors import MissingDependency

            hint = 'pip install "kd_rl[onnx]"'
            raise MissingDependency(f"ONNX models need onnxruntime, which is not installed: {hint}") from None
        self.path = str(path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = num_threads
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        given, taken = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self._input = given.name
        self.observation_shape = tuple(int(d) for d in given.shape[1:])
        self.observation_dim = int(np.prod(self.observation_shape))
        self.outputs_are_actions = self.is_continuous = taken.name == ACTIONS_OUTPUT
        size = int(taken.shape[-1])
        self.num_actions, self.action_dim = (None, size) if self.is_continuous else (size, None)
        self._read_recorded(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, observations) -> np.ndarray:
        return self.session.run(None, {self._input: _batched(observations, self.observation_shape)})[0]


class TflmPolicy(_ExportedPolicy):
    """A TFLite model run in the TensorFlow Lite for Microcontrollers Python interpreter, as a batched ``PolicyFn``.

    Observations go through one at a time, as on a device; int8 models are
    (de)quantised at the edges, so the policy takes and returns float32. Load
    a ``kd-rl export --format tflm`` folder with `load_any_policy` (or
    ``TflmPolicy.from_folder``), which reads its tensor-arena size. Needs
    ``kd_rl[tflm]``.

    Args:
        flatbuffer: The TFLite model's bytes.
        arena_size: The tensor arena in bytes.
        continuous: Whether the output is a continuous action (else logits).
    """

    def __init__(self, flatbuffer: bytes, arena_size: int, continuous: bool = False):
        try:
            from tflite_micro import runtime
        except ImportError:
            from kd_rl.errors import MissingDependency

            hint = 'pip install "kd_rl[tflm]"'
            raise MissingDependency(f"TFLM models need tflite-micro, which is not installed: {hint}") from None
        from kd_rl._io import native_output_silenced

        with native_output_silenced():  # TFLM prints its allocation failures
            self.interpreter = runtime.Interpreter.from_bytes(bytes(flatbuffer), arena_size=int(arena_size))
        self._input, self._output = self.interpreter.get_input_details(0), self.interpreter.get_output_details(0)
        self.observation_dim = int(self._input["shape"][-1])
        size = int(self._output["shape"][-1])
        self.outputs_are_actions = self.is_continuous = bool(continuous)
        self.num_actions, self.action_dim = (None, size) if self.is_continuous else (size, None)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> TflmPolicy:
        """Load a ``tflm``/``tflm-float`` export folder (its ``kd_rl_policy.tflite`` and ``export.json``)."""
        folder = Path(folder)
        record = json.loads((folder / "export.json").read_text())
        flatbuffer = (folder / "kd_rl_policy.tflite").read_bytes()
        return cls(flatbuffer, record["tensor_arena_bytes"], record.get("continuous", False))

    @staticmethod
    def _quantisation(details) -> tuple[float, int] | None:
        q = details["quantization_parameters"]
        return (float(q["scales"][0]), int(q["zero_points"][0])) if details["dtype"] == np.int8 else None

    def __call__(self, observations) -> np.ndarray:
        x = np.asarray(observations, np.float32)
        if x.ndim == 1:
            x = x[None]
        given, taken = self._quantisation(self._input), self._quantisation(self._output)
        outputs = np.empty((x.shape[0], self.action_dim or self.num_actions), np.float32)
        for i, row in enumerate(x):
            row = row[None]
            if given is not None:
                row = np.clip(np.round(row / given[0] + given[1]), -128, 127).astype(np.int8)
            self.interpreter.set_input(row, 0)
            self.interpreter.invoke()
            y = np.asarray(self.interpreter.get_output(0))[0]
            outputs[i] = y if taken is None else (y.astype(np.float32) - taken[1]) * taken[0]
        return outputs


def dense_weights(model) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(kernel, bias), ...]`` of a kd_rl MLP, hidden layers first, the logits (or mean) layer last.

    For a continuous policy the last pair is the Gaussian's mean layer: what
    its deterministic action needs.

    Raises:
        ValueError: For a model that is not a plain kd_rl ``PolicyModel``.
    """
    from kd_rl.models import PolicyModel, RecurrentStudent

    plain = type(model).call is PolicyModel.call or type(model).call is RecurrentStudent.call
    if not isinstance(model, PolicyModel) or not plain:
        raise KdRlError(
            f"numpy export supports kd_rl's plain MLPs only; {type(model).__name__} has its own call() "
            "(export it to tflite instead)"
        )
    model.ensure_built()
    output = model.mean_layer if model.is_continuous else getattr(model, "logits_layer", None)
    layers = list(getattr(model, "hidden_layers", [])) + [output]
    if layers[-1] is None or any(len(layer.get_weights()) != 2 for layer in layers):
        raise KdRlError("numpy export needs a kd_rl PolicyModel (Dense hidden_layers and an output layer)")
    return [tuple(layer.get_weights()) for layer in layers]


def to_actions(policy, outputs) -> np.ndarray:
    """The deterministic actions for ``outputs`` that ``policy`` gave.

    A kd_rl ``PolicyModel`` knows its own (argmax, or its Gaussian's
    deterministic action); an exported continuous policy (``NumpyPolicy``,
    ``TFLitePolicy``) already gives actions; any other policy's 2-D outputs
    are logits (argmax) and 1-D outputs are discrete actions.

    Returns:
        int64 ``[batch]`` or float32 ``[batch, d]``.
    """
    from kd_rl.models import PolicyModel

    if isinstance(policy, PolicyModel):
        return np.asarray(policy.actions_from_outputs(np.asarray(outputs)))
    out = np.asarray(outputs)
    if getattr(policy, "outputs_are_actions", False):
        return out.astype(np.float32)
    if out.ndim == 2:
        return np.argmax(out, axis=-1)
    if out.ndim == 1:
        return out.astype(np.int64)
    raise KdRlError(f"the policy must return logits [batch, num_actions] or actions [batch], got shape {out.shape}")


def load_any_policy(name_or_path):
    """Load a ``.keras`` model (or zoo name), a ``.tflite``, ``.onnx`` or ``.npz`` export, or a C export's folder.

    Returns a Keras model for ``.keras`` files and a ``PolicyFn`` object
    (`TFLitePolicy`, `OnnxPolicy`, `NumpyPolicy`, or `kd_rl.codegen.CPolicy`,
    compiled with the system C compiler) for exports.

    Raises:
        ValueError: For a missing, unknown or corrupted file, naming it.
    """
    from kd_rl.errors import MissingDependency
    from kd_rl.models import load_policy
    from kd_rl.zoo import resolve_model_path

    if os.path.isdir(name_or_path) and os.path.isfile(os.path.join(name_or_path, "kd_rl_policy.c")):
        from kd_rl.codegen import CPolicy

        return CPolicy(name_or_path)
    if os.path.isdir(name_or_path) and os.path.isfile(os.path.join(name_or_path, "kd_rl_policy_settings.h")):
        try:
            return TflmPolicy.from_folder(name_or_path)
        except MissingDependency:
            raise
        except (OSError, KeyError, ValueError, RuntimeError) as err:
            raise KdRlError(f"{str(name_or_path)!r} is not a complete kd_rl TFLM export: {err}") from None
    path = resolve_model_path(name_or_path)
    if path.suffix == ".onnx":
        try:
            return OnnxPolicy(path)
        except MissingDependency:
            raise
        except Exception as err:
            raise KdRlError(f"model file {str(path)!r} is not a valid ONNX model: {err}") from None
    if path.suffix == ".tflite":
        try:
            return TFLitePolicy(path)
        except Exception as err:
            raise KdRlError(f"model file {str(path)!r} is not a valid TFLite model: {err}") from None
    if path.suffix == ".npz":
        try:
            return NumpyPolicy.load(path)
        except Exception as err:
            raise KdRlError(f"model file {str(path)!r} is not a kd_rl NumPy export: {err}") from None
    return load_policy(path)
