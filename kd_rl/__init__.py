"""kd_rl: knowledge distillation for reinforcement learning in TensorFlow/Keras.

A large teacher policy (TF-Agents DQN or PPO on a Gymnasium environment) is
distilled into a small Keras student that acts as well.

Public names are imported lazily, so ``import kd_rl`` (and ``kd-rl --help``)
does not pay for importing TensorFlow until a name is used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Distiller": "kd_rl.distill",
    "DistillConfig": "kd_rl.distill",
    "distill_policy": "kd_rl.distill",
    "make_distill_step": "kd_rl.distill",
    "KLDistillationLoss": "kd_rl.losses",
    "MSEDistillationLoss": "kd_rl.losses",
    "NLLDistillationLoss": "kd_rl.losses",
    "get_loss": "kd_rl.losses",
    "kl_divergence_loss": "kd_rl.losses",
    "mse_loss": "kd_rl.losses",
    "nll_loss": "kd_rl.losses",
    "PolicyModel": "kd_rl.models",
    "StudentModel": "kd_rl.models",
    "TeacherModel": "kd_rl.models",
    "count_params": "kd_rl.models",
    "load_policy": "kd_rl.models",
    "ReplayBuffer": "kd_rl.data",
    "Collector": "kd_rl.data",
    "evaluate_model": "kd_rl.evaluate",
    "run_episodes": "kd_rl.evaluate",
    "export_model": "kd_rl.export",
    "load_any_policy": "kd_rl.export",
    "list_zoo": "kd_rl.zoo",
    "GymnasiumEnvironment": "kd_rl.envs",
    "make_env": "kd_rl.envs",
    "make_tf_env": "kd_rl.envs",
    "make_batched_env": "kd_rl.envs",
    "train_teacher": "kd_rl.teachers",
    "export_dqn_teacher": "kd_rl.teachers",
    "export_ppo_teacher": "kd_rl.teachers",
    "as_tf_policy": "kd_rl.policies",
    "KerasGreedyPolicy": "kd_rl.policies",
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
