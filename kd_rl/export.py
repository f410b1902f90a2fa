"""Export a policy for fast, real-time use: TFLite (float32 or int8) and NumPy.

* ``tflite``: ``tf.lite.TFLiteConverter.from_keras_model``, float32, with a
  batch-1 input ``[1, obs_dim]`` (the shape of a real-time control step).
* ``tflite-int8``: full-integer quantisation (int8 weights and activations,
  int8 input and output) calibrated on states collected in the environment.
* ``numpy``: the weights in an ``.npz`` file and `NumpyPolicy`, a
  dependency-free forward pass (NumPy only) for the MLPs kd_rl builds.

Every exported file loads back with `kd_rl.policies.load_any_policy` as a
batched ``PolicyFn`` (``observations [batch, obs_dim] -> logits [batch,
num_actions]``; TFLite files run with LiteRT, ``ai_edge_litert``), so
``kd-rl evaluate`` measures its return like a Keras model's. A continuous
(Gaussian) policy is exported as its deterministic action, ``observations
[batch, obs_dim] -> actions [batch, d]`` inside the bounds: the TFLite
signature's output is named ``deterministic_actions``, and the ``.npz`` holds the
mean layer with the bounds and the squash.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kd_rl._io import atomic_path, native_output_silenced
from kd_rl.config import EXPORT_FORMATS
from kd_rl.data import visited_states
from kd_rl.errors import KdRlError
from kd_rl.models import DeterministicAction, PolicyModel
from kd_rl.policies import ACTIONS_OUTPUT, NUMPY_ACTIVATIONS, dense_weights, observation_dim

__all__ = [
    "FORMATS",
    "export_model",
    "calibration_states",
    "quantise_int8",
]

FORMATS = EXPORT_FORMATS  # declared in kd_rl.config, which the CLI reads without TensorFlow
_SUFFIX = {"tflite": ".tflite", "tflite-int8": ".tflite", "numpy": ".npz"}


def calibration_states(
    model, env_id: str, num_states: int = 2000, seed: int = 0, env_kwargs: dict | None = None
) -> np.ndarray:
    """States visited by ``model`` acting (ε = 0.1) in ``env_id``: float32 [num_states, obs_dim]."""

    return visited_states(model, env_id, num_states, seed, epsilon=0.1, env_kwargs=env_kwargs)


def quantise_int8(converter, states: np.ndarray) -> None:
    """Set ``converter`` (a ``tf.lite.TFLiteConverter``) to full-integer int8, calibrated on ``states``.

    Weights, activations, input and output all become int8; ``states`` (float32
    ``[n, obs_dim]``) are fed one at a time as the representative dataset.
    This is what ``export_model(..., "tflite-int8")`` does.
    """

    def representative():
        for s in states:
            yield [s[None].astype(np.float32)]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8


def _batch1_model(model):
    """``model`` behind a fixed ``[1, obs_dim]`` input: a real-time step is one observation.

    ``from_keras_model`` on a Keras 3 functional model gives exact float32
    outputs; converting a concrete function together with the model
    (``from_concrete_functions([cf], model)``) does not (outputs ~1e33).
    `kd_rl.policies.TFLitePolicy` resizes the input for other batch sizes.
    """
    inputs = keras.Input(shape=(observation_dim(model),), batch_size=1, name="observations")
    if getattr(model, "is_continuous", False) and type(model).call is PolicyModel.call:
        # The action needs the mean only: leaving log_std out keeps the graph resizable to any batch.
        class GaussianMean(keras.layers.Layer):  # made here, used once for the conversion, never saved
            def call(self, observations):
                return model.mean_layer(model.features(observations))

        outputs = GaussianMean(name="mean")(inputs)
    else:
        outputs = model(inputs, training=False)
    if getattr(model, "is_continuous", False):
        # A continuous policy is exported as its deterministic action, what a controller needs.
        action = DeterministicAction(model.action_low, model.action_high, model.squash, name=ACTIONS_OUTPUT)
        # A named output: the TFLite signature keeps the name, which tells TFLitePolicy what it gives.
        outputs = {ACTIONS_OUTPUT: action(outputs)}
    return keras.Model(inputs, outputs, name="policy")


def export_model(
    model,
    fmt: str,
    out: str | os.PathLike,
    env_id: str | None = None,
    seed: int = 0,
    num_calibration_states: int = 2000,
    env_kwargs: dict | None = None,
) -> Path:
    """Export ``model`` to ``fmt`` at ``out`` (written atomically).

    Args:
        model: A built Keras policy (``PolicyModel`` for ``numpy``).
        fmt: ``"tflite"``, ``"tflite-int8"`` or ``"numpy"``.
        out: File to write (``.tflite`` or ``.npz``).
        env_id: Environment whose states calibrate ``tflite-int8``.
        seed: Seed of the calibration episodes.
        num_calibration_states: States used for int8 calibration.
        env_kwargs: Passed to ``gymnasium.make`` for the calibration environment.

    Returns:
        The path written.

    Raises:
        ValueError: For an unknown format, a wrong suffix, or int8 without an env.
    """
    if fmt not in FORMATS:
        raise KdRlError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if out.suffix != _SUFFIX[fmt]:
        raise KdRlError(f"--out for format {fmt} must end in {_SUFFIX[fmt]}, got {str(out)!r}")
    if fmt == "tflite-int8" and not env_id:
        raise KdRlError("tflite-int8 export needs an environment (--env) to collect calibration states")

    if fmt == "numpy":
        weights = dense_weights(model)
        if model.activation not in NUMPY_ACTIVATIONS:
            raise KdRlError(f"activation {model.activation!r} has no NumPy form")
        arrays = {}
        for i, (k, b) in enumerate(weights):
            arrays[f"kernel_{i}"], arrays[f"bias_{i}"] = k, b
        for key in ("observation_mean", "observation_std"):
            if getattr(model, key, None) is not None:
                arrays[key] = np.asarray(getattr(model, key), np.float32)
        meta = {"layers": len(weights), "activation": model.activation, "observation_clip": model.observation_clip}
        if getattr(model, "is_continuous", False):
            arrays["action_low"], arrays["action_high"] = model.action_low, model.action_high
            meta["squash"] = model.squash
        arrays["meta"] = np.array(json.dumps(meta))
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        return out

    with native_output_silenced():  # Keras's export prints the SavedModel it writes
        converter = tf.lite.TFLiteConverter.from_keras_model(_batch1_model(model))
    if fmt == "tflite-int8":
        quantise_int8(converter, calibration_states(model, env_id, num_calibration_states, seed, env_kwargs))
    with native_output_silenced():
        flatbuffer = converter.convert()
    with atomic_path(out) as tmp:
        Path(tmp).write_bytes(flatbuffer)
    return out
