"""Export a policy for fast, real-time use: TFLite, ONNX, a microcontroller C array, plain C, NumPy.

* ``tflite``: ``tf.lite.TFLiteConverter.from_keras_model``, float32, with a
  batch-1 input ``[1, obs_dim]`` (the shape of a real-time control step).
* ``tflite-int8``: full-integer quantisation (int8 weights and activations,
  int8 input and output) calibrated on states collected in the environment.
* ``onnx``: an ONNX graph (opset 17, through ``tf2onnx``) with a dynamic batch,
  input ``observations``, output ``logits`` (or ``deterministic_actions``); runs
  in ONNX Runtime (`kd_rl.policies.OnnxPolicy`). Needs ``kd_rl[onnx]``.
* ``tflm`` / ``tflm-float``: a folder for TensorFlow Lite for Microcontrollers:
  the int8 (or float32) TFLite model as an aligned ``const`` C array
  (``kd_rl_policy_model.h``/``.cc``), ``kd_rl_policy_settings.h`` (input and
  output scales and zero points, the normaliser's constants, the operators to
  register, the tensor-arena size), the ``.tflite`` file and ``export.json``.
  The arena size and the agreement with the Keras model are measured by running
  the model in the ``tflite-micro`` Python interpreter on visited states.
  Needs ``kd_rl[tflm]``.
* ``c``: a folder with ``kd_rl_policy.h``/``.c``, a dependency-free C99 forward
  pass of a kd_rl MLP (`kd_rl.codegen`).
* ``numpy``: the weights in an ``.npz`` file and `NumpyPolicy`, a
  dependency-free forward pass (NumPy only) for the MLPs kd_rl builds.

Every exported file loads back with `kd_rl.policies.load_any_policy` as a
batched ``PolicyFn`` (``observations [batch, obs_dim] -> logits [batch,
num_actions]``; TFLite files run with LiteRT, ``ai_edge_litert``; ONNX files
with ONNX Runtime; a C folder compiled with the system compiler), so
``kd-rl evaluate`` measures its return like a Keras model's. A continuous
(Gaussian) policy is exported as its deterministic action, ``observations
[batch, obs_dim] -> actions [batch, d]`` inside the bounds: the TFLite
signature's and the ONNX graph's output is named ``deterministic_actions``, and
the ``.npz`` and the C hold the mean layer with the bounds and the squash.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kd_rl import __version__
from kd_rl._io import atomic_dir, atomic_path, cpu_name, native_output_silenced
from kd_rl.codegen import C_FILES, c_array_sources, c_float, mlp_c_sources
from kd_rl.config import EXPORT_FORMATS
from kd_rl.data import visited_states
from kd_rl.errors import KdRlError, MissingDependency
from kd_rl.models import DeterministicAction, PolicyModel, RecurrentStudent, sensor_noise_std
from kd_rl.policies import (
    ACTIONS_OUTPUT,
    HISTORY_KEY,
    NUMPY_ACTIVATIONS,
    PREPROCESSING_KEY,
    SENSOR_NOISE_KEY,
    STATE_INPUT,
    STATE_OUTPUT,
    NumpyPolicy,
    TFLitePolicy,
    TflmPolicy,
    observation_dim,
)

__all__ = [
    "FORMATS",
    "FOLDER_FORMATS",
    "TFLM_FILES",
    "export_model",
    "calibration_states",
    "quantise_int8",
    "require_format",
    "supported_formats",
]

FORMATS = EXPORT_FORMATS  # declared in kd_rl.config, which the CLI reads without TensorFlow
_SUFFIX = {"tflite": ".tflite", "tflite-int8": ".tflite", "numpy": ".npz", "onnx": ".onnx"}
# What a file, not a folder, is called: refused as the --out of a folder format.
_FILE_SUFFIXES = (".c", ".h", ".cc", ".cpp", ".tflite", ".onnx", ".npz", ".keras", ".json")
#: Formats written as a folder of files (the others are one file).
FOLDER_FORMATS = ("tflm", "tflm-float", "c")
#: The files a ``tflm``/``tflm-float`` export writes.
TFLM_FILES = (
    "kd_rl_policy_model.h",
    "kd_rl_policy_model.cc",
    "kd_rl_policy_settings.h",
    "kd_rl_policy.tflite",
    "export.json",
)
# Formats that read a kd_rl MLP's weights (kd_rl.policies.dense_weights); the others convert any Keras policy.
_MLP_FORMATS = ("numpy", "c")
_EXTRA = {"onnx": "onnx", "tflm": "tflm", "tflm-float": "tflm"}


def _is_plain_mlp(model) -> bool:
    return isinstance(model, PolicyModel) and type(model).call in (PolicyModel.call, RecurrentStudent.call)


def _numpy_ok(model) -> bool:
    return _is_plain_mlp(model) and model.activation in NUMPY_ACTIVATIONS


def supported_formats(model) -> tuple[str, ...]:
    """The export formats ``model`` can take: all for kd_rl's MLPs, the graph converters for any other Keras policy.

    ``numpy`` and ``c`` write the MLP's layers themselves, so they need a kd_rl
    ``PolicyModel`` without its own ``call()`` and with a hidden activation they
    know (`kd_rl.policies.NUMPY_ACTIVATIONS`). A convolutional kd_rl policy
    (image observations) exports to ``numpy`` (`kd_rl.policies.conv2d_valid`)
    and the graph converters; ``c`` and the microcontroller formats are for MLPs.
    A policy with a ``history`` of readings exports to ``tflite``, ``onnx`` and
    ``numpy``, which record the window's length for `kd_rl.policies.ObservationWindows`.
    A `kd_rl.models.RecurrentStudent` exports to ``tflite`` and ``numpy``, its
    state an explicit input (``state``) and output (``next_state``).
    """
    if isinstance(model, RecurrentStudent):  # a state in and out: the formats that take it
        return tuple(f for f in ("tflite", "numpy") if f != "numpy" or _numpy_ok(model))
    if getattr(model, "history", 1) > 1:  # a window of readings: the formats that record the window's length
        return tuple(f for f in ("tflite", "onnx", "numpy") if f != "numpy" or _numpy_ok(model))
    if getattr(model, "conv_layers", ()):
        return tuple(f for f in FORMATS if f not in ("c", *FOLDER_FORMATS, *([] if _numpy_ok(model) else ["numpy"])))
    if _numpy_ok(model):
        return FORMATS
    return tuple(f for f in FORMATS if f not in _MLP_FORMATS)


def _optional(module: str, fmt: str):
    """Import ``module`` for format ``fmt``, or raise `MissingDependency` naming the extra to install."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf2onnx warns about NumPy aliases on import
            return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(
            f"format {fmt} needs {module.split('.')[0]}, which is not installed: pip install \"kd_rl[{_EXTRA[fmt]}]\""
        ) from None


def require_format(fmt: str) -> None:
    """Raise `MissingDependency` naming the extra to install unless ``fmt``'s optional package imports."""
    if fmt in _EXTRA:
        _optional("tf2onnx" if fmt == "onnx" else "tflite_micro", fmt)


def calibration_states(
    model, env_id: str, num_states: int = 2000, seed: int = 0, env_kwargs: dict | None = None
) -> np.ndarray:
    """States visited by ``model`` acting (ε = 0.1) in ``env_id``: float32 [num_states, obs_dim]."""

    return visited_states(model, env_id, num_states, seed, epsilon=0.1, env_kwargs=env_kwargs)


def quantise_int8(converter, states: np.ndarray, shape: tuple[int, ...] | None = None) -> None:
    """Set ``converter`` (a ``tf.lite.TFLiteConverter``) to full-integer int8, calibrated on ``states``.

    Weights, activations, input and output all become int8; ``states`` (float32
    ``[n, obs_dim]``) are fed one at a time as the representative dataset.
    This is what ``export_model(..., "tflite-int8")`` does. ``shape``: the
    model's input shape without the batch (an image's), when it is not flat.
    """

    def representative():
        for s in states:
            x = s[None].astype(np.float32)
            yield [x.reshape(1, *shape) if shape else x]  # a flat state, shaped as the model's input

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8


def _policy_graph(model, batch_size: int | None = 1):
    """``model`` as the function a runtime calls: observations in, logits (or the deterministic action) out.

    A real-time step is one observation, so TFLite gets a fixed ``[1, obs_dim]``
    input (`kd_rl.policies.TFLitePolicy` resizes it for other batch sizes); ONNX
    gets a dynamic batch. ``from_keras_model`` on a Keras 3 functional model
    gives exact float32 outputs; converting a concrete function together with
    the model (``from_concrete_functions([cf], model)``) does not (outputs ~1e33).
    """
    # An image policy takes the environment's own frames ([1, height, width, channels]).
    shape = getattr(model, "observation_shape", None) or (observation_dim(model),)
    inputs = keras.Input(shape=tuple(shape), batch_size=batch_size, name="observations")
    if isinstance(model, RecurrentStudent):
        return _recurrent_graph(model, inputs, batch_size)
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


def _recurrent_graph(model, inputs, batch_size: int | None):
    """A `RecurrentStudent`'s one step as a graph: ``observations`` and ``state`` in, its outputs and
    ``next_state`` out (a continuous policy's outputs: its deterministic action)."""
    state = keras.Input(shape=(model.state_size,), batch_size=batch_size, name=STATE_INPUT)

    class Step(keras.layers.Layer):  # made here, used once for the conversion, never saved
        def call(self, observations, state):
            return model.step(observations, state)

    outputs, next_state = Step(name="step")(inputs, state)
    if model.is_continuous:
        action = DeterministicAction(model.action_low, model.action_high, model.squash, name=ACTIONS_OUTPUT)
        named = {ACTIONS_OUTPUT: action(outputs)}
    else:
        named = {"logits": keras.layers.Identity(name="logits")(outputs)}
    named[STATE_OUTPUT] = keras.layers.Identity(name=STATE_OUTPUT)(next_state)
    return keras.Model([inputs, state], named, name="policy")


def _tflite_bytes(model, int8: bool, states: np.ndarray | None = None) -> bytes:
    with native_output_silenced():  # Keras's export prints the SavedModel it writes
        # A recurrent student's graph keeps its batch open: LiteRT then resizes its state ops to any batch.
        converter = tf.lite.TFLiteConverter.from_keras_model(
            _policy_graph(model, None if isinstance(model, RecurrentStudent) else 1)
        )
    if int8:
        quantise_int8(converter, states, getattr(model, "observation_shape", None))
    with native_output_silenced(), warnings.catch_warnings():
        # The int8 converter's note that the float input has no recorded range: the calibration gives it.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        return converter.convert()


def _with_tflite_metadata(flatbuffer: bytes, entries: dict[str, bytes]) -> bytes:
    """``flatbuffer`` with named metadata entries added (each a buffer of its own; the graph is untouched)."""
    if not entries:
        return flatbuffer
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    model.metadata = model.metadata or []
    for name, data in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(data, np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = name, len(model.buffers) - 1
        model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _recorded(model) -> dict[str, str]:
    """What an exported file records beside the graph, as JSON: the Atari preprocessing of the model's frames,
    the sensor noise it was trained with (`kd_rl.models.sensor_noise_std`) and its ``history``, where it has them."""
    recorded = {}
    preprocessing = getattr(model, "preprocessing", None)
    if preprocessing is not None:
        recorded[PREPROCESSING_KEY] = json.dumps(preprocessing, sort_keys=True)
    noise = sensor_noise_std(model)
    if noise is not None:
        recorded[SENSOR_NOISE_KEY] = json.dumps(noise.tolist())
    if getattr(model, "history", 1) > 1:
        recorded[HISTORY_KEY] = json.dumps(int(model.history))
    return recorded


def _onnx_bytes(model) -> bytes:
    """``model`` as an ONNX graph: input ``observations [batch, obs_dim]``, output ``logits`` or the action."""
    tf2onnx = _optional("tf2onnx", "onnx")
    graph = _policy_graph(model, batch_size=None)
    shape = getattr(model, "observation_shape", None) or (observation_dim(model),)
    spec = [tf.TensorSpec([None, *shape], tf.float32, name="observations")]
    function = tf.function(lambda x: tf.nest.flatten(graph(x, training=False))[0], input_signature=spec)
    with native_output_silenced(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto, _ = tf2onnx.convert.from_function(function, input_signature=spec, opset=17)
    name = ACTIONS_OUTPUT if getattr(model, "is_continuous", False) else "logits"
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [name if o == old else o for o in node.output]
    proto.graph.output[0].name = name
    proto.producer_name, proto.producer_version = "kd_rl", __version__
    for key, value in _recorded(model).items():
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString()


_ARENA_PROBE = """import sys
from tflite_micro import runtime
try:
    runtime.Interpreter.from_bytes(open(sys.argv[1], "rb").read(), arena_size=int(sys.argv[2])).invoke()
    print("ok")
except RuntimeError:
    print("too small")
"""


def _arena_size(runtime, flatbuffer: bytes) -> int:
    """The smallest tensor arena (bytes, a multiple of 16) in which TFLM allocates and runs the model.

    The interpreter is built in a generous arena and its ``RecordingMicroAllocator``
    total is read from what ``print_allocations`` prints; the search for the
    smallest arena that runs starts there, each try in a child process (an
    arena just short of the need can crash the interpreter instead of failing).
    """
    with tempfile.TemporaryFile(mode="w+") as log:
        with native_output_silenced():
            interpreter = runtime.Interpreter.from_bytes(flatbuffer, arena_size=max(64 * 1024, 16 * len(flatbuffer)))
            saved = [os.dup(1), os.dup(2)]
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                interpreter.print_allocations()
                ctypes.CDLL(None).fflush(None)  # TFLM prints through C stdio
            finally:
                for fd, stream in zip(saved, (1, 2)):
                    os.dup2(fd, stream)
                    os.close(fd)
        log.seek(0)
        found = re.search(r"Arena allocation total (\d+) bytes", log.read())
    if found is None:
        raise KdRlError("the tflite-micro interpreter did not report its arena use")
    recorded = -(-int(found.group(1)) // 16) * 16

    with tempfile.TemporaryDirectory() as folder:
        model_file = Path(folder) / "model.tflite"
        model_file.write_bytes(flatbuffer)

        def fits(size: int) -> bool:
            # In a child process: an arena just short of the need can crash the interpreter, not fail cleanly.
            probe = [sys.executable, "-c", _ARENA_PROBE, str(model_file), str(size)]
            return subprocess.run(probe, capture_output=True, text=True).stdout.strip().endswith("ok")

        return _search_arena(fits, recorded)


def _search_arena(fits, recorded: int) -> int:
    """The smallest multiple of 16 from ``recorded`` up for which ``fits`` holds."""
    if fits(recorded):
        return recorded
    # Preparing some kernels (int8 ones) takes scratch memory the record leaves out: search above it.
    low, high = recorded, 2 * recorded
    while not fits(high):
        low, high = high, 2 * high
        if high > 1 << 30:
            raise KdRlError("the TFLM interpreter could not run the model in 1 GiB")
    while high - low > 16:
        middle = (low + high) // 32 * 16
        low, high = (low, middle) if fits(middle) else (middle, high)
    return high


def _operator_names(flatbuffer: bytes) -> list[str]:
    """The builtin operators the TFLite model uses (``FULLY_CONNECTED``, ...), in the model's order."""
    runtime = _optional("tflite_micro", "tflm").runtime
    schema = _optional("tflite_micro.tensorflow.lite.micro.python.schema_py_generated", "tflm")
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = runtime.convert_bytearray_to_object(bytearray(flatbuffer))
    return [names[runtime.get_builtin_code_from_operator_code(code)] for code in model.operatorCodes]


def _warn_if_unfaithful(fmt: str, check: dict) -> None:
    """Warn when the TFLM model agrees with Keras less than float rounding (or LiteRT's int8) explains."""
    agreement = check.get("argmax_agreement")
    if fmt == "tflm-float":
        bad = agreement < 0.999 if agreement is not None else check["max_abs_error"] >= 1e-5
    else:
        reference = check.get("litert_int8_argmax_agreement_with_keras")
        bad = agreement is not None and reference is not None and agreement < reference - 0.01
    if bad:
        warnings.warn(
            f"the {fmt} model agrees with the Keras model less than expected on {check['states']} visited states "
            f"({check_summary(check)}): check export.json before deploying it",
            stacklevel=3,
        )


def _c_define(name: str, value) -> str:
    if isinstance(value, float):
        return f"#define {name} {c_float(value)}"
    return f"#define {name} ({int(value)})" if int(value) < 0 else f"#define {name} {int(value)}"


def _tflm_files(model, fmt: str, states: np.ndarray, calibration: np.ndarray | None, meta: dict) -> dict:
    """The files of a ``tflm``/``tflm-float`` export; runs the model in TFLM to size its arena and check it."""
    runtime = _optional("tflite_micro", fmt).runtime
    int8 = fmt == "tflm"
    flatbuffer = _tflite_bytes(model, int8, calibration)
    operators = _operator_names(flatbuffer)
    try:
        arena = _arena_size(runtime, flatbuffer)
    except RuntimeError as err:  # TFLM's interpreter lacks a kernel, or cannot prepare one
        raise KdRlError(
            f"TensorFlow Lite for Microcontrollers cannot run this model ({err}); its operators: "
            f"{', '.join(operators)} (export it as tflite or onnx instead)"
        ) from None
    continuous = bool(getattr(model, "is_continuous", False))
    micro = TflmPolicy(flatbuffer, arena, continuous)
    given, taken = micro.interpreter.get_input_details(0), micro.interpreter.get_output_details(0)
    ours = micro(states)
    predicted = _policy_graph(model, None).predict(states, batch_size=1024, verbose=0)
    keras_out = np.asarray(tf.nest.flatten(predicted)[0])  # a continuous policy's output is a named dict
    check = {"states": int(len(states)), "max_abs_error": float(np.max(np.abs(ours - keras_out)))}
    if not getattr(model, "is_continuous", False):
        check["argmax_agreement"] = float(np.mean(np.argmax(ours, -1) == np.argmax(keras_out, -1)))
    if int8:  # int8 rounding costs what it costs in any runtime: compare with LiteRT's int8 too
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "m.tflite").write_bytes(flatbuffer)
            litert = TFLitePolicy(Path(folder) / "m.tflite")(states)
        check["litert_int8_max_abs_error"] = float(np.max(np.abs(ours - litert)))
        if "argmax_agreement" in check:
            check["litert_int8_argmax_agreement"] = float(np.mean(np.argmax(ours, -1) == np.argmax(litert, -1)))
            check["litert_int8_argmax_agreement_with_keras"] = float(
                np.mean(np.argmax(litert, -1) == np.argmax(keras_out, -1))
            )
    _warn_if_unfaithful(fmt, check)

    def quantisation(details) -> tuple[float, int]:
        q = details["quantization_parameters"]
        return (float(q["scales"][0]), int(q["zero_points"][0])) if len(q["scales"]) else (1.0, 0)

    (in_scale, in_zero), (out_scale, out_zero) = quantisation(given), quantisation(taken)
    source = meta.get("source", "")
    lines = [
        f"/* kd_rl_policy_settings.h: generated by kd_rl {__version__}{f' from {source}' if source else ''}.",
        f" * The model (kd_rl_policy_model.cc) is {'int8 (int8 input and output)' if int8 else 'float32'};"
        " it applies the observation normaliser itself.",
        f" * Checked in the tflite-micro interpreter on {check['states']} visited states: {check_summary(check)}. */",
        "#ifndef KD_RL_POLICY_SETTINGS_H",
        "#define KD_RL_POLICY_SETTINGS_H",
        "",
        _c_define("KD_RL_OBSERVATION_DIM", observation_dim(model)),
        _c_define("KD_RL_OUTPUT_DIM", int(taken["shape"][-1])),
        _c_define("KD_RL_CONTINUOUS", int(continuous)),
        _c_define("KD_RL_INT8", int(int8)),
        "/* float -> int8 input: q = round(x / KD_RL_INPUT_SCALE) + KD_RL_INPUT_ZERO_POINT, clamped to [-128, 127];",
        " * int8 -> float output: y = (q - KD_RL_OUTPUT_ZERO_POINT) * KD_RL_OUTPUT_SCALE (1 and 0 for float32). */",
        _c_define("KD_RL_INPUT_SCALE", in_scale),
        _c_define("KD_RL_INPUT_ZERO_POINT", in_zero),
        _c_define("KD_RL_OUTPUT_SCALE", out_scale),
        _c_define("KD_RL_OUTPUT_ZERO_POINT", out_zero),
        "/* The tensor arena the tflite-micro interpreter recorded for this model (on a 64-bit host; the model",
        " * ran in exactly this many bytes). Confirm on the target with MicroInterpreter::arena_used_bytes(). */",
        _c_define("KD_RL_TENSOR_ARENA_SIZE", arena),
        "/* The operators to register: tflite::MicroMutableOpResolver<KD_RL_OP_COUNT> r; KD_RL_ADD_OPS(r); */",
        _c_define("KD_RL_OP_COUNT", len(operators)),
        "#define KD_RL_ADD_OPS(resolver) \\",
        "    do { " + " ".join(f"(resolver).Add{_camel(op)}();" for op in operators) + " } while (0)",
    ]
    normaliser = {k: getattr(model, k, None) for k in ("observation_mean", "observation_std")}
    if any(v is not None for v in normaliser.values()) or getattr(model, "observation_clip", None) is not None:
        lines += ["", "/* The observation normaliser the model applies, (x - mean) / std clipped to +-clip. */"]
        for key, value in normaliser.items():
            if value is not None:
                full = np.broadcast_to(np.asarray(value, np.float32).ravel(), (observation_dim(model),))
                values = ", ".join(c_float(v) for v in full)
                lines.append(f"static const float kd_rl_{key}[{full.size}] = {{{values}}};")
        if getattr(model, "observation_clip", None) is not None:
            lines.append(_c_define("KD_RL_OBSERVATION_CLIP", float(model.observation_clip)))
    lines += ["", "#endif /* KD_RL_POLICY_SETTINGS_H */", ""]
    files = c_array_sources(flatbuffer, "kd_rl_policy_model", f"generated by kd_rl {__version__}: the TFLite model")
    record = {
        **meta,
        "format": fmt,
        "continuous": continuous,
        "model_bytes": len(flatbuffer),
        "tensor_arena_bytes": arena,
        "operators": operators,
        "input": {"dtype": np.dtype(given["dtype"]).name, "scale": in_scale, "zero_point": in_zero},
        "output": {"dtype": np.dtype(taken["dtype"]).name, "scale": out_scale, "zero_point": out_zero},
        "check": check,
        "cpu": cpu_name(),
    }
    files.update(
        {
            "kd_rl_policy_settings.h": "\n".join(lines),
            "kd_rl_policy.tflite": flatbuffer,
            "export.json": json.dumps(record, indent=2, sort_keys=True) + "\n",
        }
    )
    return files


def check_summary(check: dict) -> str:
    """One line for a TFLM export's ``export.json`` check: agreement with Keras (and LiteRT's int8)."""
    parts = []
    if "argmax_agreement" in check:
        parts.append(f"argmax agreement with Keras {check['argmax_agreement']:.4f}")
    parts.append(f"max |output - Keras| {check['max_abs_error']:.3g}")
    if "litert_int8_argmax_agreement_with_keras" in check:
        parts.append(f"LiteRT's int8 agrees with Keras {check['litert_int8_argmax_agreement_with_keras']:.4f}")
    if "litert_int8_argmax_agreement" in check:
        parts.append(f"TFLM with LiteRT {check['litert_int8_argmax_agreement']:.4f}")
    return ", ".join(parts)


def _camel(operator: str) -> str:
    """``FULLY_CONNECTED`` -> ``FullyConnected``, the name of TFLM's ``MicroMutableOpResolver::Add...`` method."""
    return "".join(part.capitalize() for part in operator.split("_"))


def export_model(
    model,
    fmt: str,
    out: str | os.PathLike,
    env_id: str | None = None,
    seed: int = 0,
    num_calibration_states: int = 2000,
    env_kwargs: dict | None = None,
    num_check_states: int = 10_000,
    source: str = "",
) -> Path:
    """Export ``model`` to ``fmt`` at ``out`` (written atomically: a file, or a folder for `FOLDER_FORMATS`).

    Args:
        model: A built Keras policy (a kd_rl MLP ``PolicyModel`` for ``numpy`` and ``c``).
        fmt: One of `FORMATS`.
        out: File to write (``.tflite``, ``.npz``, ``.onnx``) or, for ``tflm``,
            ``tflm-float`` and ``c``, a new (or empty) folder.
        env_id: Environment whose visited states calibrate the int8 formats and
            check the ``tflm`` formats (required for those).
        seed: Seed of the calibration (and check) episodes.
        num_calibration_states: States used for int8 calibration.
        env_kwargs: Passed to ``gymnasium.make`` for the calibration environment.
        num_check_states: States on which a ``tflm`` export is checked against the Keras model.
        source: What the model is (a path or zoo name), noted in the C files and ``export.json``.

    Returns:
        The path written.

    Raises:
        KdRlError: For an unknown format, a wrong suffix, a model the format
            does not support, an int8 or TFLM export without an environment, or
            a missing optional package (`MissingDependency`, naming the extra).
    """
    if fmt not in FORMATS:
        raise KdRlError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if fmt in _SUFFIX and out.suffix != _SUFFIX[fmt]:
        raise KdRlError(f"--out for format {fmt} must end in {_SUFFIX[fmt]}, got {str(out)!r}")
    if fmt in FOLDER_FORMATS and (out.suffix.lower() in _FILE_SUFFIXES or out.is_file()):
        raise KdRlError(f"--out for format {fmt} is a folder (it writes several files), got {str(out)!r}")
    if fmt not in supported_formats(model) and isinstance(model, RecurrentStudent):
        raise KdRlError(
            f"format {fmt} does not take a recurrent student's state; it exports as one of: "
            f"{', '.join(supported_formats(model))} (its state an input and an output)"
        )
    if fmt not in supported_formats(model) and getattr(model, "history", 1) > 1:
        raise KdRlError(
            f"format {fmt} takes one reading; a policy that sees the last {model.history} exports as one of: "
            f"{', '.join(supported_formats(model))}"
        )
    if fmt not in supported_formats(model) and getattr(model, "conv_layers", ()):
        raise KdRlError(
            f"format {fmt} is for MLPs; a convolutional policy exports as one of: {', '.join(supported_formats(model))}"
        )
    if fmt not in supported_formats(model):
        raise KdRlError(
            f"format {fmt} supports kd_rl's MLP students and teachers with a hidden activation among "
            f"{', '.join(NUMPY_ACTIVATIONS)}; this {type(model).__name__} "
            + ("has its own call()" if not _is_plain_mlp(model) else f"uses {model.activation!r}")
            + f" (export it as one of: {', '.join(supported_formats(model))})"
        )
    if fmt in ("tflite-int8", "tflm", "tflm-float") and not env_id:
        raise KdRlError(f"{fmt} export needs an environment (--env) to collect calibration and check states")
    require_format(fmt)  # before any work

    if fmt in ("numpy", "c"):
        policy = NumpyPolicy.from_model(model)
        if fmt == "c":
            with atomic_dir(out, replaceable=C_FILES) as stage:
                for name, text in mlp_c_sources(policy, source).items():
                    (stage / name).write_text(text)
            return out
        with atomic_path(out) as tmp:
            policy.save(tmp)
        return out
    if fmt == "onnx":
        data = _onnx_bytes(model)
        with atomic_path(out) as tmp:
            Path(tmp).write_bytes(data)
        return out
    calibration = None
    if fmt in ("tflite-int8", "tflm"):
        calibration = calibration_states(model, env_id, num_calibration_states, seed, env_kwargs)
    if fmt in ("tflm", "tflm-float"):
        # Checked on other episodes than those it was calibrated on.
        states = calibration_states(model, env_id, num_check_states, seed + 1, env_kwargs)
        meta = {"source": source, "env_id": env_id, "seed": seed, "kd_rl_version": __version__}
        files = _tflm_files(model, fmt, states, calibration, meta)
        with atomic_dir(out, replaceable=TFLM_FILES) as stage:
            for name, content in files.items():
                (stage / name).write_bytes(content if isinstance(content, bytes) else content.encode())
        return out
    flatbuffer = _tflite_bytes(model, fmt == "tflite-int8", calibration)
    flatbuffer = _with_tflite_metadata(flatbuffer, {k: v.encode() for k, v in _recorded(model).items()})
    with atomic_path(out) as tmp:
        Path(tmp).write_bytes(flatbuffer)
    return out
