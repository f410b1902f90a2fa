"""Teacher hyperparameters as data (issue #16): the shipped files' schema, the algorithm table, a user's own file."""

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from kd_rl.cli import main
from kd_rl.envs import env_spec
from kd_rl.teachers import train_teacher
from kd_rl.teachers.hyperparam_tables import (
    _HYPERPARAMS_DIR,
    ACTION_SPACES,
    ALGORITHMS,
    _table,
    choose_algo,
    is_tuned,
    load_hyperparameters,
)

# A DQN run of seconds (the numbers are not meant to learn).
TINY_DQN = dict(learning_starts=100, train_freq=4, batch_size=32, buffer_size=1000, periodic_eval_episodes=2)


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_every_shipped_entry_passes_the_schema_and_loads(algo):
    table = _table(algo)  # raises on an unknown key or a value of the wrong type
    for name in table:
        gym_id, params = load_hyperparameters(name, algo)
        assert set(params) == set(table["default"]) and isinstance(params["hidden_units"], tuple), name
        assert isinstance(gym_id, str) and gym_id


def test_the_algorithm_table_names_a_tuned_algorithm_that_fits_each_environment():
    best = yaml.safe_load((_HYPERPARAMS_DIR / "best.yml").read_text())
    assert {"CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3", "Pendulum-v1"} <= set(best)
    for env_id, algo in best.items():
        assert choose_algo(env_id) == algo and is_tuned(env_id, algo), env_id
        gym_id, _ = load_hyperparameters(env_id, algo)
        kind = "continuous" if env_spec(gym_id).is_continuous else "discrete"
        assert kind in ACTION_SPACES[algo], f"{env_id}: {algo} cannot train on {kind} actions"
    # Not listed: by the action space.
    assert choose_algo("MountainCarContinuous-v0", "continuous") == "sac"
    assert choose_algo("KdRlUnlisted-v0", "discrete") == "dqn"
    with pytest.raises(ValueError, match="no algorithm listed for 'KdRlUnlisted-v0'"):
        choose_algo("KdRlUnlisted-v0")


def _sb3_zoo() -> dict:
    """RL-Zoo's entries as benchmarks/_sb3_peer.py gives them to Stable-Baselines3 (it imports no SB3 at load)."""
    path = Path(__file__).parents[1] / "benchmarks" / "_sb3_peer.py"
    spec = importlib.util.spec_from_file_location("_sb3_peer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ZOO


#: Stable-Baselines3's PPO defaults, for the keys an RL-Zoo entry leaves out.
SB3_PPO_DEFAULTS = {"n_envs": 1, "n_steps": 2048, "batch_size": 64, "n_epochs": 10, "gamma": 0.99, "gae_lambda": 0.95}


@pytest.mark.parametrize("env_id", sorted(_sb3_zoo()["ppo"]))
def test_the_ppo_entries_follow_what_sb3_runs_beside_them(env_id):
    """teachers.py runs kd_rl's PPO on these entries beside SB3 on RL-Zoo's: the rollouts and minibatches agree."""
    _, p = load_hyperparameters(env_id, "ppo")
    zoo = {**SB3_PPO_DEFAULTS, **_sb3_zoo()["ppo"][env_id]}
    for key in ("n_timesteps", "n_envs", "n_steps", "n_epochs", "gamma", "gae_lambda", "ent_coef"):
        assert p[key] == zoo[key], key
    # batch_size null: the whole rollout in one minibatch.
    assert (p["batch_size"] or p["n_envs"] * p["n_steps"]) == zoo["batch_size"]


@pytest.mark.parametrize("entry", ["CartPole-v1-rlzoo", "LunarLander-v3-rlzoo"])
def test_the_rlzoo_dqn_entries_are_what_sb3_runs_beside_them(entry):
    """benchmarks/teachers.py compares kd_rl on these entries with SB3 on RL-Zoo's: the settings must agree."""
    gym_id, p = load_hyperparameters(entry, "dqn")
    zoo = _sb3_zoo()["dqn"][gym_id]
    assert p["n_timesteps"] == zoo["n_timesteps"] and list(p["hidden_units"]) == zoo["policy_kwargs"]["net_arch"]
    same = ("learning_rate", "batch_size", "buffer_size", "learning_starts", "gamma", "train_freq")
    for key in (*same, "exploration_fraction", "exploration_final_eps"):
        assert p[key] == zoo[key], key
    # SB3's gradient_steps -1: as many gradient steps as env steps in the round.
    assert p["gradient_steps"] == (zoo["train_freq"] if zoo["gradient_steps"] == -1 else zoo["gradient_steps"])
    # SB3 counts target_update_interval in env steps, TF-Agents in gradient steps: the same refreshes per env step,
    # or (CartPole: an interval shorter than a round) one refresh per round.
    per_env_step = p["gradient_steps"] / p["train_freq"]
    if zoo["target_update_interval"] < p["train_freq"]:
        assert p["target_update_interval"] == p["gradient_steps"]
    else:
        assert p["target_update_interval"] == zoo["target_update_interval"] * per_env_step
    # SB3's DQN: vanilla targets, PyTorch's initial weights, a constant learning rate, Huber loss.
    assert (p["double_dqn"], p["init"], p["lr_schedule"], p["loss"], p["max_grad_norm"]) == (
        False, "torch", "constant", "huber", 10.0
    )  # fmt: skip
    # The one difference: kd_rl's default 3-step returns, where SB3 bootstraps after one step.
    assert p["n_step"] == load_hyperparameters("default", "dqn")[1]["n_step"] == 3


def _write(path, text):
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "text, match",
    [
        ("CartPole-v1:\n  lr: 0.001\n", "entry 'CartPole-v1' has unknown dqn hyperparameters ['lr']; allowed: ["),
        ("default:\n  learning_rate: fast\n", "entry 'default': learning_rate must be a number, got 'fast' (str)"),
        ("default:\n  n_timesteps: 1e5\n", "n_timesteps must be an int, got '1e5' (str)"),
        ("default:\n  double_dqn: 1\n", "double_dqn must be true or false, got 1 (int)"),
        ("default:\n  hidden_units: [64, 0]\n", "hidden_units must be a list of ints >= 1, such as [64, 64]"),
        ("default:\n  gamma: null\n", "gamma must not be null"),
        ("default:\n  learning_rate: [0.1\n", "is not valid YAML at line 3, column 1: expected"),
        ("- a list\n", "must map environment ids (or 'default') to mappings of hyperparameters"),
        ("Acrobot-v1:\n  gamma: 0.9\n", "has no entry for 'CartPole-v1' and no 'default' entry; its entries: ["),
    ],
)
def test_a_bad_hyperparameter_file_is_named_in_one_line_and_nothing_is_written(tmp_path, capsys, text, match):
    path = _write(tmp_path / "mine.yml", text)
    with pytest.raises(ValueError, match=None) as error:
        load_hyperparameters("CartPole-v1", "dqn", hyperparams_file=path)
    assert match in str(error.value) and "\n" not in str(error.value)
    out = tmp_path / "run"
    code = main(["train-teacher", "--env", "CartPole-v1", "--hyperparams", path, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and match in err, err
    assert not out.exists()


def test_a_missing_hyperparameter_file_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train-teacher", "--env", "CartPole-v1", "--hyperparams", str(tmp_path / "no.yml"), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "hyperparams file" in err and "does not exist" in err
    assert not out.exists()


def test_overrides_are_checked_like_the_files():
    with pytest.raises(ValueError, match="overrides: learning_rate must be a number, got 'fast'"):
        load_hyperparameters("CartPole-v1", "dqn", {"learning_rate": "fast"})
    with pytest.raises(ValueError, match=r"overrides has unknown ppo hyperparameters \['lr'\]"):
        load_hyperparameters("CartPole-v1", "ppo", {"lr": 1e-3})
    _, params = load_hyperparameters("CartPole-v1", "dqn", {"hidden_units": (8, 8), "max_grad_norm": None})
    assert params["hidden_units"] == (8, 8) and params["max_grad_norm"] is None


def test_a_users_file_replaces_the_shipped_values_key_by_key(tmp_path):
    path = _write(tmp_path / "mine.yml", "default:\n  gamma: 0.9\nCartPole-v1:\n  learning_rate: 0.0005\n")
    _, shipped = load_hyperparameters("CartPole-v1", "dqn")
    _, mine = load_hyperparameters("CartPole-v1", "dqn", hyperparams_file=path)
    assert mine == dict(shipped, learning_rate=0.0005)  # its CartPole-v1 entry, not its default
    _, acrobot = load_hyperparameters("Acrobot-v1", "dqn", hyperparams_file=path)
    assert acrobot["gamma"] == 0.9  # no Acrobot-v1 entry: its default


def test_without_algo_the_table_chooses_and_the_run_records_it(tmp_path, capsys):
    path = _write(tmp_path / "tiny.yml", yaml.safe_dump({"CartPole-v1": dict(TINY_DQN, hidden_units=[16])}))
    out = tmp_path / "run"
    argv = ["train-teacher", "--env", "CartPole-v1", "--steps", "300", "--hyperparams", path, "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "note: no algo given: dqn, kd_rl/hyperparams/best.yml's choice for CartPole-v1" in captured.err
    assert "untuned" not in captured.err and captured.out.startswith("CartPole-v1 dqn: mean return")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["algo"] == "dqn" and metrics["tuned"] and metrics["hyperparams_file"] == path
    assert metrics["hyperparameters"]["batch_size"] == 32 and metrics["hidden_units"] == [16]


def test_an_environment_without_an_entry_says_its_defaults_are_untuned(tmp_path, capsys):
    metrics = train_teacher(
        "Pendulum-v1", "ppo", tmp_path / "run", steps=64, overrides=dict(n_envs=2, n_steps=32, n_epochs=1),
        eval_every=64, eval_episodes=1, progress=False,
    )  # fmt: skip
    err = capsys.readouterr().err
    assert "note: kd_rl/hyperparams/ppo.yml has no entry for Pendulum-v1: training with its untuned defaults" in err
    assert metrics["tuned"] is False and metrics["hyperparams_file"] is None
