"""Evaluations computed once: a fixed policy's returns on a fixed set of seeded episodes, reused across runs.

A distillation's final evaluation plays the teacher and a random policy on
the same ``eval_episodes`` seeded episodes as the student (common random
numbers). Neither changes from one run to the next of a sweep over students,
losses or seeds of the student (the episodes depend on ``seed``, so runs with
different seeds are different entries), so `cached_episodes` computes them
once and keeps them in a small JSON file per evaluation.

The key of an entry is the SHA-256 of everything the returns depend on:

* the policy's content: its class, its configuration (layer sizes, normaliser,
  action bounds, ...) and its weights' bytes (`kd_rl.models.weights_sha256`),
  so a retrained or edited teacher is a new entry, however it is named; a
  random policy is identified by its kind and seed;
* the environment id and its keyword arguments, the evaluation seed, the
  number of episodes and the step cap;
* what could change the numbers without changing the policy: the versions of
  kd_rl, Gymnasium, NumPy, TensorFlow and Keras, of the physics engines
  (Box2D, MuJoCo, ale-py) and of the distribution that provides the
  environment (its entry point's package); the source of the kd_rl modules
  that play the episodes (so a development checkout's edits count); whether
  the NumPy forward pass is on (`kd_rl.policies.fast_policy_fn`); and the CPU
  (float rounding differs between instruction sets, and a chaotic
  environment's returns with it).

What it cannot see is a change to a user's own environment or layer code that
keeps its package's version: clear the cache, or pass ``--no-cache``, after
such an edit.

Entries live in ``$KD_RL_CACHE_DIR/evals`` (default ``~/.cache/kd_rl/evals``),
written atomically, so parallel runs can share them; a damaged entry is
recomputed and replaced, and a cache folder that cannot be written is
skipped with a warning (the run goes on uncached). ``kd-rl distill
--no-cache`` (``DistillConfig(eval_cache=False)``) neither reads nor writes
it; deleting the folder clears it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path

import keras

import kd_rl
from kd_rl._io import cpu_name, write_json
from kd_rl.errors import KdRlError
from kd_rl.evaluate import EpisodeStats, RandomPolicy, episode_cap, run_episodes
from kd_rl.models import weights_sha256

__all__ = ["CACHE_DIR_ENV", "cache_dir", "cached_episodes", "policy_fingerprint"]

#: The environment variable that moves the cache (default ``~/.cache/kd_rl``).
CACHE_DIR_ENV = "KD_RL_CACHE_DIR"

#: Bumped when what an entry holds, or how it is computed, changes.
_FORMAT = 1


def cache_dir() -> Path:
    """Where evaluations are cached: ``$KD_RL_CACHE_DIR/evals``, default ``~/.cache/kd_rl/evals``."""
    root = os.environ.get(CACHE_DIR_ENV)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "kd_rl") / "evals"


def policy_fingerprint(policy) -> str | None:
    """SHA-256 of a Keras policy's class, configuration and weights; a `RandomPolicy`'s kind and seed.

    None for anything else (a plain callable has no content to hash): such a
    policy is never cached.
    """
    if isinstance(policy, RandomPolicy):
        return f"random-{policy.seed}"
    if not isinstance(policy, keras.Model):
        return None
    try:
        # A model's name and trainable flag do not change what it does: a teacher rebuilt anew is the same teacher.
        config = {k: v for k, v in policy.get_config().items() if k not in ("name", "trainable")}
        config = json.dumps(config, sort_keys=True, default=repr)
    except (NotImplementedError, TypeError):
        return None
    digest = hashlib.sha256(f"{type(policy).__module__}.{type(policy).__qualname__}".encode())
    digest.update(config.encode())
    digest.update(weights_sha256(policy).encode())
    return digest.hexdigest()


#: Distributions whose versions are part of every key (None where not installed).
_VERSIONED = ("gymnasium", "numpy", "tensorflow", "keras", "box2d", "box2d-py", "mujoco", "ale-py", "minatar")

#: The kd_rl modules whose source is part of every key: they play the episodes.
_PLAYING_MODULES = ("evaluate.py", "envs.py", "games.py", "policies.py", "eval_cache.py")


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _versions(env_id: str) -> dict:
    out = {**_installed(), "environment_package": _environment_package(env_id)}
    out["fast_policies"] = os.environ.get("KD_RL_FAST_POLICIES", "1") != "0"
    return out


@functools.cache
def _installed() -> dict:
    """What this process runs on (read once: it does not change while it runs)."""
    out = {"kd_rl": kd_rl.__version__, "cpu": cpu_name()}
    out.update({package: _version(package) for package in _VERSIONED})
    source = hashlib.sha256()
    for name in _PLAYING_MODULES:
        source.update((Path(kd_rl.__file__).parent / name).read_bytes())
    out["kd_rl_source"] = source.hexdigest()[:16]
    return out


@functools.cache
def _environment_package(env_id: str) -> dict:
    """The distribution(s) that provide ``env_id``'s entry point, with their versions ({} when unknown)."""
    import gymnasium

    try:
        entry = gymnasium.spec(env_id).entry_point
    except Exception:  # an id only `make` can resolve: its module is in the id ("module:Env-v0")
        entry = env_id.split(":")[0] if ":" in env_id else None
    if not isinstance(entry, str):
        return {}
    top = entry.split(":")[0].split(".")[0]
    if top == "gymnasium":  # Gymnasium's own environments: its version is in every key already
        return {}
    return {name: _version(name) for name in sorted(packages_distributions().get(top, []))}


def _key(fingerprint: str, env_id: str, episodes: int, seed: int, env_kwargs, max_steps) -> tuple[str, dict] | None:
    material = {
        "format": _FORMAT,
        "policy": fingerprint,
        "env_id": env_id,
        "env_kwargs": env_kwargs or {},
        "episodes": int(episodes),
        "seed": int(seed),
        "max_steps": max_steps,
        **_versions(env_id),
    }
    try:
        text = json.dumps(material, sort_keys=True)
    except TypeError:  # keyword arguments that are not plain JSON (an object): not cacheable
        return None
    # The key as an entry stores it, read back: a tuple in env_kwargs becomes a list.
    return hashlib.sha256(text.encode()).hexdigest(), json.loads(text)


def cached_episodes(
    policy,
    env_id: str,
    episodes: int,
    seed: int,
    env_kwargs: dict | None = None,
    max_steps: int | None = None,
    use_cache: bool = True,
) -> tuple[EpisodeStats, str]:
    """`kd_rl.evaluate.run_episodes` for a fixed policy, served from the cache when it has the answer.

    Args:
        policy: A Keras model (a teacher) or a `kd_rl.evaluate.RandomPolicy`;
            any other callable is evaluated and not cached.
        env_id, episodes, seed, env_kwargs, max_steps: As `run_episodes`.
        use_cache: False: evaluate, and neither read nor write the cache.

    Returns:
        ``(stats, status)``: status is ``"hit"`` (read from the cache),
        ``"miss"`` (evaluated and stored), or ``"off"`` (evaluated, not
        stored: caching off, a policy or keyword arguments without a
        fingerprint, or a folder that cannot be written).
    """
    fingerprint = policy_fingerprint(policy) if use_cache else None
    keyed = None
    if fingerprint is not None:
        keyed = _key(fingerprint, env_id, episodes, seed, env_kwargs, episode_cap(env_id, max_steps, env_kwargs))
    if keyed is None:
        return _evaluate(policy, env_id, episodes, seed, env_kwargs, max_steps), "off"
    key, material = keyed
    path = cache_dir() / f"{key}.json"
    stats = _read(path, material)
    if stats is not None:
        return stats, "hit"
    stats = _evaluate(policy, env_id, episodes, seed, env_kwargs, max_steps)
    return stats, ("miss" if _write(path, material, stats) else "off")


def _evaluate(policy, env_id, episodes, seed, env_kwargs, max_steps) -> EpisodeStats:
    return run_episodes(policy, env_id, episodes, seed=seed, env_kwargs=env_kwargs, max_steps=max_steps)


def _read(path: Path, material: dict) -> EpisodeStats | None:
    """The entry at ``path`` if it is whole and is the one asked for; else None (it is then recomputed)."""
    try:
        with open(path, encoding="utf-8") as f:
            entry = json.load(f)
        if entry.get("key") != material:  # a hash collision, or a hand-edited file
            return None
        stats = EpisodeStats(**entry["stats"])
        if len(stats.returns) != material["episodes"] or len(stats.lengths) != material["episodes"]:
            return None
        return stats
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # absent, or damaged: recompute and replace it
        return None


def _write(path: Path, material: dict, stats: EpisodeStats) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"key": material, "stats": stats.to_dict()})
        return True
    except (OSError, KdRlError) as err:
        warnings.warn(f"kd_rl: evaluation cache not written ({err}); the run goes on without it", stacklevel=3)
        return False
