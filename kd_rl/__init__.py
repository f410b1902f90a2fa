"""kd_rl: knowledge distillation for reinforcement learning in TensorFlow/Keras.

A large teacher policy (TF-Agents DQN, PPO or SAC on a Gymnasium environment,
with discrete or continuous actions) is distilled into a small Keras 3 student
that acts as well.

Two Kerases live in one process. kd_rl's models, losses, distillation,
evaluation and export use Keras 3 (``import keras``). TF-Agents, used only to
train teachers (`kd_rl.teachers`), needs the legacy Keras 2 package
``tf_keras``, which TensorFlow serves as ``tf.keras`` only when
``TF_USE_LEGACY_KERAS=1`` is set before ``tf.keras`` is first touched. So
``import kd_rl`` sets it (unless it is already set): after it, ``tf.keras`` is
Keras 2, and Keras 3 code should say ``import keras``.

Public names are imported lazily, so ``import kd_rl`` (and ``kd-rl --help``)
does not pay for importing TensorFlow until a name is used.

Keras finds a saved model's class only once its module has registered it. So
that ``import kd_rl`` then ``keras.saving.load_model("student.keras")`` loads
every kd_rl model (teacher, student, multi-task student, distiller) in a
fresh process, ``import kd_rl`` arranges for ``keras.saving.load_model``
(whenever Keras is imported) to import kd_rl's model modules before it reads
the first file; it then behaves as Keras's own.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.util
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

#: The modules that define (and register) kd_rl's Keras classes.
_KERAS_CLASS_MODULES = ("kd_rl.models", "kd_rl.losses", "kd_rl.distill", "kd_rl.multitask")


def _register_keras_classes() -> None:
    for module in _KERAS_CLASS_MODULES:
        importlib.import_module(module)


def _patch_load_model(keras_module) -> None:
    """Make ``keras.saving.load_model`` (and ``keras.models.load_model``) register kd_rl's classes first."""
    saving = keras_module.saving
    original = saving.load_model
    if getattr(original, "_kd_rl_registers", False):
        return

    @functools.wraps(original)
    def load_model(*args, **kwargs):
        _register_keras_classes()
        return original(*args, **kwargs)

    load_model._kd_rl_registers = True
    saving.load_model = load_model
    if getattr(keras_module.models, "load_model", None) is original:
        keras_module.models.load_model = load_model


class _PatchedLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _patch_load_model(module)


class _KerasImportHook(importlib.abc.MetaPathFinder):
    """Patches ``keras`` as its import completes (see the module docstring)."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)  # once: the real finders locate Keras
        spec = importlib.util.find_spec("keras")
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchedLoader(spec.loader)
        return spec


if "keras" in sys.modules:
    _patch_load_model(sys.modules["keras"])
elif not any(isinstance(finder, _KerasImportHook) for finder in sys.meta_path):
    sys.meta_path.insert(0, _KerasImportHook())

__version__ = "0.2.0"

_EXPORTS = {
    "KdRlError": "kd_rl.errors",
    "MissingDependency": "kd_rl.errors",
    "ResumeRefused": "kd_rl.errors",
    "Distiller": "kd_rl.distill",
    "DistillConfig": "kd_rl.config",
    "distill_policy": "kd_rl.distill",
    "make_distill_step": "kd_rl.distill",
    "DistributedCollector": "kd_rl.distributed",
    "make_strategy": "kd_rl.distributed",
    "make_mirrored_distill_step": "kd_rl.distill",
    "KLDistillationLoss": "kd_rl.losses",
    "MSEDistillationLoss": "kd_rl.losses",
    "NLLDistillationLoss": "kd_rl.losses",
    "get_loss": "kd_rl.losses",
    "kl_divergence_loss": "kd_rl.losses",
    "mse_loss": "kd_rl.losses",
    "nll_loss": "kd_rl.losses",
    "gaussian_kl_loss": "kd_rl.losses",
    "gaussian_mse_loss": "kd_rl.losses",
    "gaussian_nll_loss": "kd_rl.losses",
    "GaussianKLDistillationLoss": "kd_rl.losses",
    "GaussianMSEDistillationLoss": "kd_rl.losses",
    "GaussianNLLDistillationLoss": "kd_rl.losses",
    "gaussian_action": "kd_rl.models",
    "split_gaussian": "kd_rl.models",
    "EnvSpec": "kd_rl.envs",
    "env_spec": "kd_rl.envs",
    "to_actions": "kd_rl.policies",
    "MultiTaskStudent": "kd_rl.multitask",
    "MultiTaskConfig": "kd_rl.config",
    "TeacherConfig": "kd_rl.config",
    "loss_weight": "kd_rl.losses",
    "train_loop": "kd_rl.distill",
    "distill_multitask": "kd_rl.multitask",
    "PolicyModel": "kd_rl.models",
    "StudentModel": "kd_rl.models",
    "RecurrentStudent": "kd_rl.models",
    "TeacherModel": "kd_rl.models",
    "count_params": "kd_rl.models",
    "load_policy": "kd_rl.models",
    "ReplayBuffer": "kd_rl.data",
    "SequenceBuffer": "kd_rl.data",
    "Collector": "kd_rl.data",
    "evaluate_model": "kd_rl.evaluate",
    "run_episodes": "kd_rl.evaluate",
    "export_model": "kd_rl.export",
    "load_any_policy": "kd_rl.policies",
    "NumpyPolicy": "kd_rl.policies",
    "PolicyMemory": "kd_rl.policies",
    "TFLitePolicy": "kd_rl.policies",
    "as_policy_fn": "kd_rl.policies",
    "fast_policy_fn": "kd_rl.policies",
    "RunProfile": "kd_rl.timing",
    "EnvGroup": "kd_rl.envs",
    "episode_seeds": "kd_rl.evaluate",
    "list_zoo": "kd_rl.zoo",
    "GymnasiumEnvironment": "kd_rl.teachers",
    "make_env": "kd_rl.teachers",
    "make_tf_env": "kd_rl.teachers",
    "make_batched_env": "kd_rl.teachers",
    "make_gymnasium_env": "kd_rl.envs",
    "train_teacher": "kd_rl.teachers",
    "export_dqn_teacher": "kd_rl.teachers",
    "export_ppo_teacher": "kd_rl.teachers",
    "make_q_network": "kd_rl.teachers",
    "make_actor_network": "kd_rl.teachers",
    "as_tf_policy": "kd_rl.policies",
    "KerasGreedyPolicy": "kd_rl.teachers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kd_rl' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
