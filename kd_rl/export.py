"""Export a policy for fast, real-time use: TFLite (float32 or int8) and NumPy.

* ``tflite``: ``tf.lite.TFLiteConverter.from_keras_model``, float32.
* ``tflite-int8``: full-integer quantisation (int8 weights and activations,
  int8 input and output) calibrated on states collected in the environment.
* ``numpy``: the weights in an ``.npz`` file and `NumpyPolicy`, a
  dependency-free forward pass (NumPy only) for the MLPs kd_rl builds.

Every exported file loads back with `load_any_policy` as a batched
``PolicyFn`` (``observations [batch, obs_dim] -> logits [batch, num_actions]``)
so ``kd-rl evaluate`` measures its return like a Keras model's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__all__ = [
    "FORMATS",
    "export_model",
    "NumpyPolicy",
    "TFLitePolicy",
    "load_any_policy",
    "calibration_states",
    "quantise_int8",
]

FORMATS = ("tflite", "tflite-int8", "numpy")
_SUFFIX = {"tflite": ".tflite", "tflite-int8": ".tflite", "numpy": ".npz"}

_ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "linear": lambda x: x,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "softplus": lambda x: np.logaddexp(0.0, x),
    "swish": lambda x: x / (1.0 + np.exp(-x)),
}


class NumpyPolicy:
    """A kd_rl MLP evaluated with NumPy alone: ``policy(obs) -> logits``.

    Args:
        weights: ``[(kernel [in, out], bias [out]), ...]``, the last pair giving logits.
        activation: Hidden activation name (one of relu, tanh, sigmoid, linear, elu, softplus, swish).
        observation_mean: Fixed mean subtracted from observations, if any.
        observation_std: Fixed standard deviation observations are divided by, if any.
        observation_clip: Clip applied after normalising, if any.
    """

    def __init__(self, weights, activation="relu", observation_mean=None, observation_std=None, observation_clip=None):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation {activation!r} has no NumPy form; supported: {', '.join(_ACTIVATIONS)}")
        self.weights = [(np.asarray(k, np.float32), np.asarray(b, np.float32)) for k, b in weights]
        self.activation = activation
        self._act = _ACTIVATIONS[activation]
        self.mean = None if observation_mean is None else np.asarray(observation_mean, np.float32)
        self.std = None if observation_std is None else np.asarray(observation_std, np.float32)
        self.clip = observation_clip
        self.observation_dim = self.weights[0][0].shape[0]
        self.num_actions = self.weights[-1][0].shape[1]

    def __call__(self, observations) -> np.ndarray:
        x = np.asarray(observations, np.float32)
        if x.shape[-1] != self.observation_dim:
            raise ValueError(f"observations have {x.shape[-1]} features but the policy expects {self.observation_dim}")
        if self.mean is not None:
            x = x - self.mean
        if self.std is not None:
            x = x / self.std
        if self.clip is not None:
            x = np.clip(x, -self.clip, self.clip)
        for kernel, bias in self.weights[:-1]:
            x = self._act(x @ kernel + bias)
        kernel, bias = self.weights[-1]
        return x @ kernel + bias

    def act(self, observations) -> np.ndarray:
        return np.argmax(self(observations), axis=-1)

    @classmethod
    def from_model(cls, model) -> NumpyPolicy:
        """The NumPy twin of a kd_rl ``PolicyModel`` (plain MLPs only; see `export_model`)."""
        return cls(
            _dense_weights(model),
            model.activation,
            observation_mean=model.observation_mean,
            observation_std=model.observation_std,
            observation_clip=model.observation_clip,
        )

    def count_params(self) -> int:
        return int(sum(k.size + b.size for k, b in self.weights))

    @classmethod
    def load(cls, path: str | os.PathLike) -> NumpyPolicy:
        """Read an ``.npz`` written by `export_model` (no pickles are loaded)."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            weights = [(data[f"kernel_{i}"], data[f"bias_{i}"]) for i in range(meta["layers"])]
            norm = {k: (data[k] if k in data.files else None) for k in ("observation_mean", "observation_std")}
        return cls(weights, meta["activation"], observation_clip=meta.get("observation_clip"), **norm)


class TFLitePolicy:
    """A TFLite model as a batched ``PolicyFn``; int8 models are (de)quantised at the edges."""

    def __init__(self, path: str | os.PathLike, num_threads: int = 1):
        import tensorflow as tf

        self.path = str(path)
        self.interpreter = tf.lite.Interpreter(model_path=self.path, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.observation_dim = int(self._input["shape"][-1])
        self.num_actions = int(self._output["shape"][-1])
        self._batch = int(self._input["shape"][0])

    def __call__(self, observations) -> np.ndarray:
        x = np.asarray(observations, np.float32)
        if x.ndim == 1:
            x = x[None]
        if x.shape[0] != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"], [x.shape[0], self.observation_dim])
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


def calibration_states(model, env_id: str, num_states: int = 2000, seed: int = 0) -> np.ndarray:
    """States visited by ``model`` acting (ε = 0.1) in ``env_id``: float32 [num_states, obs_dim]."""
    from kd_rl.data import visited_states

    return visited_states(model, env_id, num_states, seed, epsilon=0.1)


def quantise_int8(converter, states: np.ndarray) -> None:
    """Set ``converter`` (a ``tf.lite.TFLiteConverter``) to full-integer int8, calibrated on ``states``.

    Weights, activations, input and output all become int8; ``states`` (float32
    ``[n, obs_dim]``) are fed one at a time as the representative dataset.
    This is what ``export_model(..., "tflite-int8")`` does.
    """
    import tensorflow as tf

    def representative():
        for s in states:
            yield [s[None].astype(np.float32)]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8


def _dense_weights(model) -> list[tuple[np.ndarray, np.ndarray]]:
    from kd_rl.models import PolicyModel

    if not isinstance(model, PolicyModel) or type(model).call is not PolicyModel.call:
        raise ValueError(
            f"numpy export supports kd_rl's plain MLPs only; {type(model).__name__} has its own call() "
            "(export it to tflite instead)"
        )
    layers = list(getattr(model, "hidden_layers", [])) + [getattr(model, "logits_layer", None)]
    if layers[-1] is None or any(len(layer.get_weights()) != 2 for layer in layers):
        raise ValueError("numpy export needs a kd_rl PolicyModel (Dense hidden_layers and logits_layer)")
    return [tuple(layer.get_weights()) for layer in layers]


def export_model(
    model,
    fmt: str,
    out: str | os.PathLike,
    env_id: str | None = None,
    seed: int = 0,
    num_calibration_states: int = 2000,
) -> Path:
    """Export ``model`` to ``fmt`` at ``out`` (written atomically).

    Args:
        model: A built Keras policy (``PolicyModel`` for ``numpy``).
        fmt: ``"tflite"``, ``"tflite-int8"`` or ``"numpy"``.
        out: File to write (``.tflite`` or ``.npz``).
        env_id: Environment whose states calibrate ``tflite-int8``.
        seed: Seed of the calibration episodes.
        num_calibration_states: States used for int8 calibration.

    Returns:
        The path written.

    Raises:
        ValueError: For an unknown format, a wrong suffix, or int8 without an env.
    """
    import tensorflow as tf

    from kd_rl._io import atomic_path

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if out.suffix != _SUFFIX[fmt]:
        raise ValueError(f"--out for format {fmt} must end in {_SUFFIX[fmt]}, got {str(out)!r}")
    if fmt == "tflite-int8" and not env_id:
        raise ValueError("tflite-int8 export needs an environment (--env) to collect calibration states")

    if fmt == "numpy":
        weights = _dense_weights(model)
        if model.activation not in _ACTIVATIONS:
            raise ValueError(f"activation {model.activation!r} has no NumPy form")
        arrays = {}
        for i, (k, b) in enumerate(weights):
            arrays[f"kernel_{i}"], arrays[f"bias_{i}"] = k, b
        for key in ("observation_mean", "observation_std"):
            if getattr(model, key, None) is not None:
                arrays[key] = np.asarray(getattr(model, key), np.float32)
        meta = {"layers": len(weights), "activation": model.activation, "observation_clip": model.observation_clip}
        arrays["meta"] = np.array(json.dumps(meta))
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        return out

    from kd_rl.evaluate import observation_dim

    dim = observation_dim(model)
    forward = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([1, dim], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([forward.get_concrete_function()], model)
    if fmt == "tflite-int8":
        quantise_int8(converter, calibration_states(model, env_id, num_calibration_states, seed))
    flatbuffer = converter.convert()
    with atomic_path(out) as tmp:
        Path(tmp).write_bytes(flatbuffer)
    return out


def load_any_policy(name_or_path):
    """Load a ``.keras`` model (or zoo name), a ``.tflite`` file or an ``.npz`` export.

    Returns a Keras model for ``.keras`` files and a ``PolicyFn`` object
    (`TFLitePolicy` or `NumpyPolicy`) for exports.

    Raises:
        ValueError: For a missing, unknown or corrupted file, naming it.
    """
    from kd_rl.models import load_policy
    from kd_rl.zoo import resolve_model_path

    path = resolve_model_path(name_or_path)
    if path.suffix == ".tflite":
        try:
            return TFLitePolicy(path)
        except Exception as err:
            raise ValueError(f"model file {str(path)!r} is not a valid TFLite model: {err}") from None
    if path.suffix == ".npz":
        try:
            return NumpyPolicy.load(path)
        except Exception as err:
            raise ValueError(f"model file {str(path)!r} is not a kd_rl NumPy export: {err}") from None
    return load_policy(path)
