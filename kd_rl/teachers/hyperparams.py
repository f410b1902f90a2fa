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

__all__ = [
    "ACTION_SPACES",
    "ALGORITHMS",
    "check_algo",
    "check_algo_for_actions",
    "check_hyperparameters",
    "load_hyperparameters",
]

ALGORITHMS = ("dqn", "ppo", "sac")

#: The action spaces each algorithm trains on: ``"discrete"`` (Gymnasium
#: ``Discrete``) and/or ``"continuous"`` (``Box``).
ACTION_SPACES = {"dqn": ("discrete",), "ppo": ("discrete", "continuous"), "sac": ("continuous",)}

_HYPERPARAMS_DIR = Path(__file__).resolve().parent.parent / "hyperparams"

# Keys that must be positive ints, per algorithm.
_COUNTS = {
    "dqn": ("batch_size", "buffer_size", "train_freq", "gradient_steps", "target_update_interval"),
    "ppo": ("n_envs", "n_steps", "n_epochs"),
    "sac": ("batch_size", "buffer_size", "train_freq", "gradient_steps"),
}


def check_algo(algo) -> str:
    """Return ``algo`` if it is one of `ALGORITHMS`, else raise ``ValueError``."""
    if algo not in ALGORITHMS:
        raise ValueError(f"algo must be one of {list(ALGORITHMS)}, got {algo!r}")
    return algo


def check_algo_for_actions(algo: str, action_kind: str, env_id: str, action_space=None) -> None:
    """Raise ``ValueError`` if ``algo`` cannot train on ``env_id``'s kind of action space.

    The message names the algorithms that can (`ACTION_SPACES`).

    Args:
        algo: One of `ALGORITHMS`.
        action_kind: ``"discrete"`` or ``"continuous"``.
        env_id: Named in the message.
        action_space: The action space as the message shows it (a Gymnasium
            space, or words such as `kd_rl.envs.EnvSpec.describe`'s).
    """
    allowed = ACTION_SPACES[check_algo(algo)]
    if action_kind not in allowed:
        kinds = {"discrete": "a Discrete", "continuous": "a Box"}
        others = [a for a in ALGORITHMS if action_kind in ACTION_SPACES[a]]
        raise ValueError(
            f"algo {algo!r} needs {kinds[allowed[0]]} action space, but env {env_id!r} has "
            f"{action_space if action_space is not None else kinds[action_kind]}; "
            f"for this env use algo {' or '.join(repr(a) for a in others)}"
        )


def load_hyperparameters(env_id: str, algo: str, overrides: Mapping | None = None) -> tuple[str, dict]:
    """Hyperparameters for ``env_id`` from ``kd_rl/hyperparams/{algo}.yml``.

    Keys missing from the environment's entry (or every key, for an
    environment without one) come from the file's ``default`` entry. An entry
    may be an alias whose ``env_id`` key names the Gymnasium id to train on
    (``CartPole-v1-large`` is CartPole-v1 with a larger network).

    Args:
        env_id: A Gymnasium id or an alias defined in the file.
        algo: ``"dqn"``, ``"ppo"`` or ``"sac"``.
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
    for key in ("value_hidden_units", "critic_hidden_units"):
        if key in params:
            params[key] = _normalise_hidden_units(params[key])
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
    if algo == "sac":
        check_int("learning_starts", params["learning_starts"], minimum=0)
        target = params["target_entropy"]
        if target != "auto" and (isinstance(target, bool) or not isinstance(target, int | float)):
            raise ValueError(f"target_entropy must be 'auto' or a number, got {target!r}")
        alpha = params["initial_alpha"]
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha > 0:
            raise ValueError(f"initial_alpha must be a number > 0, got {alpha!r}")


def activation(name: str):
    """The ``tf_keras`` activation function called ``name``."""
    try:
        return tf_keras.activations.get(name)
    except ValueError:
        raise ValueError(f"activation must be a Keras activation name, got {name!r}") from None
