"""Per-environment teacher hyperparameters, read from ``kd_rl/hyperparams/{algo}.yml``.

In the manner of RL-Baselines3-Zoo: each file has a ``default`` entry and one
entry per Gymnasium id (or alias), and every run records the values it used.
Every entry is checked against the file's ``default`` when it is read (a key
``default`` does not have, or a value of the wrong type, is a one-line
``ValueError`` naming the file, the entry and the key), and so is a user's own
file of the same form (`load_hyperparameters`'s ``hyperparams_file``).
``kd_rl/hyperparams/best.yml`` says which algorithm to use for an environment
when none is given (`choose_algo`).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tf_keras
import yaml

from kd_rl._validate import check_float, check_int, normalise_conv_layers
from kd_rl.config import ALGORITHMS
from kd_rl.errors import KdRlError
from kd_rl.models import normalise_hidden_units
from kd_rl.policies import NumpyPolicy

__all__ = [
    "ACTION_SPACES",
    "ALGORITHMS",
    "choose_algo",
    "is_tuned",
    "check_algo",
    "check_algo_for_actions",
    "check_hyperparameters",
    "load_hyperparameters",
]


#: SAC's ``action_noise`` values (`kd_rl.teachers.sac.ActionNoise`).
ACTION_NOISES = ("none", "normal", "ornstein-uhlenbeck")

#: The action spaces each algorithm trains on: ``"discrete"`` (Gymnasium
#: ``Discrete``) and/or ``"continuous"`` (``Box``).
ACTION_SPACES = {"dqn": ("discrete",), "ppo": ("discrete", "continuous"), "sac": ("continuous",)}

_HYPERPARAMS_DIR = Path(__file__).resolve().parent.parent / "hyperparams"

# Keys that may be null (YAML's ~ or null) whatever their default, and keys of two types,
# checked by check_hyperparameters.
_NULLABLE = frozenset({"max_grad_norm", "batch_size"})
_CHECKED_LATER = frozenset({"target_entropy"})  # "auto" or a number

# Keys that must be positive ints, per algorithm.
_COUNTS = {
    "dqn": ("n_envs", "batch_size", "buffer_size", "train_freq", "gradient_steps", "target_update_interval", "n_step"),
    "ppo": ("n_envs", "n_steps", "n_epochs"),
    "sac": ("n_envs", "batch_size", "buffer_size", "train_freq", "gradient_steps"),
}


def check_algo(algo) -> str:
    """Return ``algo`` if it is one of `ALGORITHMS`, else raise ``ValueError``."""
    if algo not in ALGORITHMS:
        raise KdRlError(f"algo must be one of {list(ALGORITHMS)}, got {algo!r}")
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
        raise KdRlError(
            f"algo {algo!r} needs {kinds[allowed[0]]} action space, but env {env_id!r} has "
            f"{action_space if action_space is not None else kinds[action_kind]}; "
            f"for this env use algo {' or '.join(repr(a) for a in others)}"
        )


def _read_yaml(path, what: str) -> dict:
    """The mapping in the YAML file ``path``; a one-line ``ValueError`` if it is missing or not one."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise KdRlError(f"{what} {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise KdRlError(f"{what} {str(path)!r} is a folder, not a YAML file") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise KdRlError(f"{what} {str(path)!r} is not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise KdRlError(
            f"{what} {str(path)!r} must map environment ids (or 'default') to mappings of hyperparameters, "
            "as kd_rl/hyperparams/*.yml do"
        )
    return data


def _check_value(where: str, key: str, value, default) -> None:
    """Raise ``ValueError`` unless ``value`` has the type of the ``default`` entry's ``value``."""
    if value is None:
        if key in _NULLABLE or default is None:
            return
        raise KdRlError(f"{where}: {key} must not be null")
    if key in _CHECKED_LATER:
        return
    if key.endswith("hidden_units"):
        units = [value] if isinstance(value, numbers.Integral) else value
        ok = (
            isinstance(units, list | tuple)
            and len(units) > 0
            and all(isinstance(u, numbers.Integral) and not isinstance(u, bool) for u in units)
        )
        if not ok or min(units) < 1:
            raise KdRlError(f"{where}: {key} must be a list of ints >= 1, such as [64, 64], got {value!r}")
        return
    if isinstance(default, bool):
        expected, ok = "true or false", isinstance(value, bool)
    elif isinstance(default, int):
        expected, ok = "an int", isinstance(value, numbers.Integral) and not isinstance(value, bool)
    elif isinstance(default, float) or default is None:
        expected, ok = "a number", isinstance(value, numbers.Real) and not isinstance(value, bool)
    elif isinstance(default, str):
        expected, ok = "a string", isinstance(value, str)
    else:
        expected, ok = type(default).__name__, isinstance(value, type(default))
    if not ok:
        raise KdRlError(f"{where}: {key} must be {expected}, got {value!r} ({type(value).__name__})")


def _check_entry(entry: Mapping, defaults: Mapping, algo: str, where: str) -> None:
    """Raise ``ValueError`` for a key ``defaults`` does not have or a value of the wrong type."""
    unknown = sorted(set(entry) - set(defaults) - {"env_id"})
    if unknown:
        raise KdRlError(f"{where} has unknown {algo} hyperparameters {unknown}; allowed: {sorted(defaults)}")
    if "env_id" in entry and not (isinstance(entry["env_id"], str) and entry["env_id"]):
        raise KdRlError(f"{where}: env_id must be a Gymnasium id, got {entry['env_id']!r}")
    for key, value in entry.items():
        if key != "env_id":
            _check_value(where, key, value, defaults[key])


def _table(algo: str) -> dict:
    """``kd_rl/hyperparams/{algo}.yml``, every entry checked against its ``default``."""
    path = _HYPERPARAMS_DIR / f"{algo}.yml"
    table = _read_yaml(path, "hyperparameter file")
    defaults = table.get("default")
    if defaults is None:
        raise KdRlError(f"hyperparameter file {str(path)!r} has no 'default' entry")
    for name, entry in table.items():
        if name != "default":
            _check_entry(entry, defaults, algo, f"{path.name}: entry {name!r}")
    return table


def is_tuned(env_id: str, algo: str) -> bool:
    """Whether ``kd_rl/hyperparams/{algo}.yml`` has an entry of its own for ``env_id``."""
    return env_id != "default" and env_id in _table(check_algo(algo))


def choose_algo(env_id: str, action_kind: str | None = None) -> str:
    """The algorithm to train a teacher for ``env_id`` with when none is given.

    ``kd_rl/hyperparams/best.yml``'s choice for ``env_id``; for an environment
    it does not list, ``"dqn"`` for ``action_kind="discrete"`` and ``"sac"``
    for ``"continuous"``.

    Raises:
        ValueError: If ``env_id`` is not listed and ``action_kind`` is not given.
    """
    best = yaml.safe_load((_HYPERPARAMS_DIR / "best.yml").read_text(encoding="utf-8"))
    if env_id in best:
        return check_algo(best[env_id])
    if action_kind not in ("discrete", "continuous"):
        raise KdRlError(f"no algorithm listed for {env_id!r}: give its action kind, 'discrete' or 'continuous'")
    return "dqn" if action_kind == "discrete" else "sac"


def load_hyperparameters(
    env_id: str, algo: str, overrides: Mapping | None = None, hyperparams_file=None
) -> tuple[str, dict]:
    """Hyperparameters for ``env_id`` from ``kd_rl/hyperparams/{algo}.yml``.

    Keys missing from the environment's entry (or every key, for an
    environment without one) come from the file's ``default`` entry. An entry
    may be an alias whose ``env_id`` key names the Gymnasium id to train on
    (``CartPole-v1-large`` is CartPole-v1 with a larger network).

    Args:
        env_id: A Gymnasium id or an alias defined in the file.
        algo: ``"dqn"``, ``"ppo"`` or ``"sac"``.
        overrides: Keys to replace; each must be a key of ``default``.
        hyperparams_file: A YAML file of the same form as the shipped ones (a
            mapping from environment ids, or ``default``, to hyperparameters):
            its entry for ``env_id``, else its ``default`` entry, replaces the
            shipped values key by key (``overrides`` still win).

    Returns:
        ``(gymnasium_id, hyperparameters)``; ``hyperparameters["hidden_units"]``
        is a tuple of ints.

    Raises:
        ValueError: For an unknown ``algo``; a hyperparameter key the file's
            ``default`` does not have, or a value of the wrong type, in a
            shipped file, in ``hyperparams_file`` or in ``overrides``; a
            ``hyperparams_file`` that does not exist, is not valid YAML, or has
            no entry for ``env_id`` and no ``default``.
    """
    check_algo(algo)
    table = _table(algo)
    params = dict(table["default"])
    entry = table.get(env_id, {}) if env_id != "default" else {}
    gym_id = entry.get("env_id", env_id)
    params.update({k: v for k, v in entry.items() if k != "env_id"})
    if hyperparams_file is not None:
        mine = _read_yaml(hyperparams_file, "hyperparams file")
        name = env_id if env_id in mine else "default" if "default" in mine else None
        if name is None:
            raise KdRlError(
                f"hyperparams file {str(hyperparams_file)!r} has no entry for {env_id!r} and no 'default' entry; "
                f"its entries: {sorted(mine)}"
            )
        _check_entry(mine[name], table["default"], algo, f"{hyperparams_file}: entry {name!r}")
        gym_id = mine[name].get("env_id", gym_id)
        params.update({k: v for k, v in mine[name].items() if k != "env_id"})
    if overrides:
        _check_entry({k: v for k, v in overrides.items() if k != "env_id"}, table["default"], algo, "overrides")
        params.update(overrides)
    params["hidden_units"] = normalise_hidden_units(params["hidden_units"])
    if "conv_layers" in params:
        params["conv_layers"] = [list(c) for c in normalise_conv_layers(params["conv_layers"])]
    for key in ("value_hidden_units", "critic_hidden_units"):
        if key in params:
            params[key] = normalise_hidden_units(params[key])
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
    if algo == "ppo" and params["batch_size"] is not None:
        check_int("batch_size", params["batch_size"])
    if algo == "ppo" and params["normalize_rewards"] and params["normalize_returns"]:
        raise KdRlError(
            "normalize_rewards and normalize_returns both scale the rewards: set at most one of them to true"
        )
    if params["lr_schedule"] not in ("constant", "linear"):
        raise KdRlError(f"lr_schedule must be 'constant' or 'linear', got {params['lr_schedule']!r}")
    if algo == "dqn" and params["loss"] not in ("huber", "mse"):
        raise KdRlError(f"loss must be 'huber' or 'mse', got {params['loss']!r}")
    if algo == "sac":
        check_int("learning_starts", params["learning_starts"], minimum=0)
        target = params["target_entropy"]
        if target != "auto" and (isinstance(target, bool) or not isinstance(target, int | float)):
            raise KdRlError(f"target_entropy must be 'auto' or a number, got {target!r}")
        alpha = params["initial_alpha"]
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha > 0:
            raise KdRlError(f"initial_alpha must be a number > 0, got {alpha!r}")
        if params["action_noise"] not in ACTION_NOISES:
            raise KdRlError(f"action_noise must be one of {list(ACTION_NOISES)}, got {params['action_noise']!r}")
        if not check_float("noise_std", params["noise_std"]) >= 0:
            raise KdRlError(f"noise_std must be a number >= 0, got {params['noise_std']!r}")
        if not 0 < check_float("noise_theta", params["noise_theta"]) <= 1:
            raise KdRlError(f"noise_theta must be a number in (0, 1], got {params['noise_theta']!r}")


def activation(name: str):
    """The ``tf_keras`` activation function called ``name``."""
    try:
        return tf_keras.activations.get(name)
    except ValueError:
        raise KdRlError(f"activation must be a Keras activation name, got {name!r}") from None
