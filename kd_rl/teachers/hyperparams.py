"""Per-environment teacher hyperparameters, read from ``kd_rl/hyperparams/{algo}.yml``.

In the manner of RL-Baselines3-Zoo: each file has a ``default`` entry and one
entry per Gymnasium id (or alias), and every run records the values it used.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tf_keras
import yaml

from kd_rl._validate import check_int
from kd_rl.models import _normalise_hidden_units
from kd_rl.policies import NumpyPolicy

__all__ = ["ALGORITHMS", "check_algo", "check_hyperparameters", "load_hyperparameters"]

ALGORITHMS = ("dqn", "ppo")

_HYPERPARAMS_DIR = Path(__file__).resolve().parent.parent / "hyperparams"

# Keys that must be positive ints, per algorithm.
_COUNTS = {
    "dqn": ("batch_size", "buffer_size", "train_freq", "gradient_steps", "target_update_interval"),
    "ppo": ("n_envs", "n_steps", "n_epochs"),
}


def check_algo(algo) -> str:
    """Return ``algo`` if it is one of `ALGORITHMS`, else raise ``ValueError``."""
    if algo not in ALGORITHMS:
        raise ValueError(f"algo must be one of {list(ALGORITHMS)}, got {algo!r}")
    return algo


def load_hyperparameters(env_id: str, algo: str, overrides: Mapping | None = None) -> tuple[str, dict]:
    """Hyperparameters for ``env_id`` from ``kd_rl/hyperparams/{algo}.yml``.

    Keys missing from the environment's entry (or every key, for an
    environment without one) come from the file's ``default`` entry. An entry
    may be an alias whose ``env_id`` key names the Gymnasium id to train on
    (``CartPole-v1-large`` is CartPole-v1 with a larger network).

    Args:
        env_id: A Gymnasium id or an alias defined in the file.
        algo: ``"dqn"`` or ``"ppo"``.
        overrides: Keys to replace; each must be a key of ``default``.

    Returns:
        ``(gymnasium_id, hyperparameters)``; ``hyperparameters["hidden_units"]``
        is a tuple of ints.

    Raises:
        ValueError: For an unknown ``algo`` or an override key that is not a
            hyperparameter.
    """
    check_algo(algo)
    with open(_HYPERPARAMS_DIR / f"{algo}.yml", encoding="utf-8") as f:
        table = yaml.safe_load(f)
    params = dict(table["default"])
    entry = table.get(env_id, {}) if env_id != "default" else {}
    gym_id = entry.get("env_id", env_id)
    params.update({k: v for k, v in entry.items() if k != "env_id"})
    if overrides:
        unknown = sorted(set(overrides) - set(table["default"]))
        if unknown:
            raise ValueError(
                f"overrides has unknown {algo} hyperparameters {unknown}; allowed: {sorted(table['default'])}"
            )
        params.update(overrides)
    params["hidden_units"] = _normalise_hidden_units(params["hidden_units"])
    if "value_hidden_units" in params:
        params["value_hidden_units"] = _normalise_hidden_units(params["value_hidden_units"])
    return gym_id, params


def check_hyperparameters(params: Mapping, algo: str) -> None:
    """Raise ``ValueError`` naming the first hyperparameter a run could not use.

    Checked before a run writes anything: counts are positive ints, the
    activation is a Keras name, the schedule and (DQN) the loss are known.
    """
    for key in ("periodic_eval_episodes", *_COUNTS[check_algo(algo)]):
        check_int(key, params[key])
    activation(params["activation"])
    # The training loops act through a NumpyPolicy, which knows fewer activations than Keras.
    NumpyPolicy([(np.zeros((1, 1)), np.zeros(1))], params["activation"])
    if params["lr_schedule"] not in ("constant", "linear"):
        raise ValueError(f"lr_schedule must be 'constant' or 'linear', got {params['lr_schedule']!r}")
    if algo == "dqn" and params["loss"] not in ("huber", "mse"):
        raise ValueError(f"loss must be 'huber' or 'mse', got {params['loss']!r}")


def activation(name: str):
    """The ``tf_keras`` activation function called ``name``."""
    try:
        return tf_keras.activations.get(name)
    except ValueError:
        raise ValueError(f"activation must be a Keras activation name, got {name!r}") from None
