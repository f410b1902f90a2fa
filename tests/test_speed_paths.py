"""Issue #37: the NumPy forward pass of collection and evaluation, the evaluation cache and the run's profile."""

import json
import os

import keras
import numpy as np
import pytest

from kd_rl.config import DistillConfig
from kd_rl.data import Collector
from kd_rl.distill import distill_policy
from kd_rl.eval_cache import cache_dir, cached_episodes, policy_fingerprint
from kd_rl.evaluate import RandomPolicy, run_episodes
from kd_rl.models import StudentModel
from kd_rl.policies import OutputSnapshot, as_policy_fn, fast_policy_fn
from kd_rl.timing import TOP_LEVEL, RunProfile


def _gaussian(state_dependent_std: bool, squash: bool = False) -> StudentModel:
    return StudentModel(
        hidden_units=(16, 8), observation_dim=3, action_low=[-2.0], action_high=[2.0], squash=squash,
        state_dependent_std=state_dependent_std, activation="tanh",
    )  # fmt: skip


@pytest.mark.parametrize(
    "make",
    [
        lambda: StudentModel(2, hidden_units=(16, 8), observation_dim=4),
        lambda: StudentModel(
            3,
            hidden_units=12,
            observation_dim=4,
            activation="elu",
            observation_mean=[0.5, -1.0, 0.0, 2.0],
            observation_std=[2.0, 0.5, 1.0, 3.0],
            observation_clip=1.5,
        ),
        lambda: _gaussian(True),
        lambda: _gaussian(False, squash=True),
        lambda: StudentModel(
            2,
            hidden_units=8,
            observation_dim=6,
            observation_indices=[4, 0, 2],
            observation_mean=np.arange(6),
            observation_std=np.arange(1, 7),
        ),  # fmt: skip
        lambda: StudentModel(
            3, hidden_units=16, observation_shape=(10, 10, 4), conv_layers=[[8, 3, 1], [4, 2, 2]], observation_std=[2.0]
        ),  # fmt: skip
    ],
    ids=["discrete", "normalised-elu", "gaussian-state-std", "gaussian-constant-std", "subset", "minatar-cnn"],
)
def test_the_numpy_snapshot_gives_the_models_outputs(make, rng):
    model = make()
    snapshot = fast_policy_fn(model)
    assert isinstance(snapshot, OutputSnapshot)
    x = (3 * rng.normal(size=(64, model.observation_dim))).astype(np.float32)
    np.testing.assert_allclose(snapshot(x), model(x).numpy(), rtol=1e-5, atol=1e-5)
    assert snapshot(x).dtype == np.float32
    # A snapshot: later weights are seen after refresh, not before.
    model.set_weights([w + 0.25 for w in model.get_weights()])
    assert not np.allclose(snapshot(x), model(x).numpy(), atol=1e-3)
    snapshot.refresh()
    np.testing.assert_allclose(snapshot(x), model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_models_without_a_numpy_form_keep_the_compiled_tensorflow_path(monkeypatch):
    class Doubled(StudentModel):
        def call(self, observations, training=None):
            return 2.0 * super().call(observations, training=training)

    custom = Doubled(2, hidden_units=8, observation_dim=4)
    assert not OutputSnapshot.supports(custom)
    assert fast_policy_fn(custom) is as_policy_fn(custom)
    inputs = keras.Input((4,))
    functional = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    assert fast_policy_fn(functional) is as_policy_fn(functional)
    plain = StudentModel(2, hidden_units=8, observation_dim=4)
    monkeypatch.setenv("KD_RL_FAST_POLICIES", "0")
    assert fast_policy_fn(plain) is as_policy_fn(plain)
    with pytest.raises(ValueError, match="not a plain kd_rl MLP"):
        OutputSnapshot(custom)
    # The Nature DQN's convolutions on Atari frames: faster in TensorFlow than in NumPy.
    nature = StudentModel(6, hidden_units=32, observation_shape=(84, 84, 4), conv_layers=[[32, 8, 4], [64, 4, 2]])
    assert not OutputSnapshot.supports(nature)


def test_collection_acts_with_the_students_current_weights():
    teacher = StudentModel(2, hidden_units=8, observation_dim=4)
    student = StudentModel(2, hidden_units=8, observation_dim=4)
    collector = Collector("CartPole-v1", teacher, student, mode="student", num_envs=2, seed=0)
    try:
        obs, logits = collector.collect(6)
        np.testing.assert_allclose(logits, teacher(obs).numpy(), rtol=1e-5, atol=1e-6)
        # After an update (here: new weights) the next call acts with them, as a compiled call would.
        student.set_weights([-w for w in student.get_weights()])
        collector.collect(1)
        np.testing.assert_allclose(
            collector.student(obs), student(obs).numpy(), rtol=1e-5, atol=1e-6
        )  # fmt: skip
    finally:
        collector.close()


def test_evaluations_are_the_same_with_and_without_the_numpy_path(cartpole_teacher, monkeypatch):
    fast = run_episodes(cartpole_teacher, "CartPole-v1", 5, seed=3)
    monkeypatch.setenv("KD_RL_FAST_POLICIES", "0")
    compiled = run_episodes(cartpole_teacher, "CartPole-v1", 5, seed=3)
    assert fast.returns == compiled.returns  # a 500-return teacher: rounding never flips its greedy action


def test_the_cache_serves_the_same_teacher_and_never_a_changed_one(tmp_path, monkeypatch):
    monkeypatch.setenv("KD_RL_CACHE_DIR", str(tmp_path))
    teacher = StudentModel(2, hidden_units=8, observation_dim=4)
    first, status = cached_episodes(teacher, "CartPole-v1", 4, seed=7)
    assert status == "miss" and len(list(cache_dir().glob("*.json"))) == 1
    again, status = cached_episodes(teacher, "CartPole-v1", 4, seed=7)
    assert status == "hit" and again.returns == first.returns and again.seeds == first.seeds
    # The same weights loaded anew are the same teacher; other weights, seeds or episodes are not.
    path = tmp_path / "t.keras"
    teacher.save(path)
    assert cached_episodes(keras.saving.load_model(path), "CartPole-v1", 4, seed=7)[1] == "hit"
    assert cached_episodes(teacher, "CartPole-v1", 4, seed=8)[1] == "miss"
    assert cached_episodes(teacher, "CartPole-v1", 5, seed=7)[1] == "miss"
    assert cached_episodes(teacher, "CartPole-v1", 4, seed=7, env_kwargs={"max_episode_steps": 20})[1] == "miss"
    rebuilt = StudentModel(2, hidden_units=8, observation_dim=4)  # another name, the same weights
    rebuilt.set_weights(teacher.get_weights())
    assert cached_episodes(rebuilt, "CartPole-v1", 4, seed=7)[1] == "hit"
    wider = StudentModel(2, hidden_units=(8, 8), observation_dim=4)
    assert policy_fingerprint(wider) != policy_fingerprint(teacher)
    changed = StudentModel(2, hidden_units=8, observation_dim=4)
    changed.set_weights([w + 1e-3 for w in teacher.get_weights()])
    assert policy_fingerprint(changed) != policy_fingerprint(teacher)
    stats, status = cached_episodes(changed, "CartPole-v1", 4, seed=7)
    assert status == "miss" and stats.returns == run_episodes(changed, "CartPole-v1", 4, seed=7).returns
    assert cached_episodes(teacher, "CartPole-v1", 4, seed=7, use_cache=False)[1] == "off"
    assert cached_episodes(lambda obs: np.zeros(len(obs), int), "CartPole-v1", 2, seed=0)[1] == "off"
    random = RandomPolicy.for_env("CartPole-v1", seed=7)
    assert cached_episodes(random, "CartPole-v1", 4, seed=7)[1] == "miss"
    assert cached_episodes(RandomPolicy.for_env("CartPole-v1", seed=7), "CartPole-v1", 4, seed=7)[1] == "hit"


def test_a_damaged_entry_is_recomputed_and_an_unwritable_cache_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("KD_RL_CACHE_DIR", str(tmp_path))
    teacher = StudentModel(2, hidden_units=8, observation_dim=4)
    stats, _ = cached_episodes(teacher, "CartPole-v1", 3, seed=1)
    (entry,) = cache_dir().glob("*.json")
    entry.write_text('{"key": {"trunc')
    again, status = cached_episodes(teacher, "CartPole-v1", 3, seed=1)
    assert status == "miss" and again.returns == stats.returns
    assert json.loads(entry.read_text())["stats"]["returns"] == stats.returns  # replaced whole
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("KD_RL_CACHE_DIR", str(blocked))
    with pytest.warns(UserWarning, match="evaluation cache not written"):
        _, status = cached_episodes(teacher, "CartPole-v1", 3, seed=1)
    assert status == "off"


def test_a_runs_profile_adds_up_and_a_second_run_reuses_the_teachers_evaluation(
    cartpole_teacher, tmp_path, monkeypatch
):
    monkeypatch.setenv("KD_RL_CACHE_DIR", str(tmp_path / "cache"))
    config = DistillConfig(env_id="CartPole-v1", steps=600, collect_per_round=300, eval_every=300, eval_episodes=3)
    _, first = distill_policy(cartpole_teacher, config, out_dir=tmp_path / "a", progress=False)
    profile = first["profile"]
    assert first["eval_cache_status"] == {"teacher": "miss", "random": "miss"}
    assert all(profile[name] > 0 for name in ("startup", "collect", "collect_env", "collect_teacher", "updates"))
    assert profile["collect_student"] > 0 and profile["curve_evals"] > 0 and profile["final_eval_teacher"] > 0
    parts = profile["collect_env"] + profile["collect_teacher"] + profile["collect_student"]
    assert parts <= profile["collect"] + 1e-3
    assert sum(profile[name] for name in TOP_LEVEL) + profile["other"] == pytest.approx(profile["total"], abs=0.01)
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["profile"] == profile
    _, second = distill_policy(cartpole_teacher, config, out_dir=tmp_path / "b", progress=False)
    assert second["eval_cache_status"] == {"teacher": "hit", "random": "hit"}
    assert second["profile"]["final_eval_teacher"] < profile["final_eval_teacher"]
    assert second["teacher_returns"] == first["teacher_returns"]
    assert second["random_mean_return"] == first["random_mean_return"]
    off = DistillConfig(**{**config.to_dict(), "eval_cache": False})
    _, third = distill_policy(cartpole_teacher, off, progress=False)
    assert third["eval_cache_status"] == {"teacher": "off", "random": "off"}
    assert third["teacher_returns"] == first["teacher_returns"]
    assert "startup" in RunProfile.table(profile) and "collect_env" in RunProfile.table(profile)


def test_the_cli_prints_the_profile_and_no_cache_recomputes(tmp_path, capsys, monkeypatch, cartpole_teacher_path):
    from kd_rl.cli import main

    monkeypatch.setenv("KD_RL_CACHE_DIR", str(tmp_path / "cache"))
    argv = [
        "distill", "--teacher", str(cartpole_teacher_path), "--env", "CartPole-v1", "--steps", "300",
        "--eval-every", "0", "--eval-episodes", "2", "--no-progress",
    ]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "where the time went" in out and "collect_teacher" in out and "0 of 2" in out
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert "2 of 2 fixed-policy evaluations served" in capsys.readouterr().out
    assert main([*argv, "--out", str(tmp_path / "c"), "--no-cache"]) == 0
    assert "0 of 2" in capsys.readouterr().out
    assert json.loads((tmp_path / "c" / "metrics.json").read_text())["eval_cache"] is False
    assert os.path.isdir(tmp_path / "cache" / "evals")


def test_a_multitask_run_has_a_profile_and_caches_each_tasks_teacher(cartpole_teacher, tmp_path, monkeypatch):
    from kd_rl.models import load_policy
    from kd_rl.multitask import MultiTaskConfig, distill_multitask

    monkeypatch.setenv("KD_RL_CACHE_DIR", str(tmp_path / "cache"))
    teachers = [cartpole_teacher, load_policy("Acrobot-v1-dqn")]
    config = MultiTaskConfig(
        env_ids=("CartPole-v1", "Acrobot-v1"), steps=400, collect_per_round=200, eval_episodes=2, curve_episodes=1
    )
    _, first = distill_multitask(teachers, config, out_dir=tmp_path / "a", progress=False)
    assert [t["eval_cache_status"] for t in first["tasks"]] == [{"teacher": "miss", "random": "miss"}] * 2
    profile = first["profile"]
    assert profile["collect_teacher"] > 0 and profile["updates"] > 0 and profile["final_eval_teacher"] > 0
    assert sum(profile[name] for name in TOP_LEVEL) + profile["other"] == pytest.approx(profile["total"], abs=0.01)
    header = (tmp_path / "a" / "curve.csv").read_text().splitlines()[0]
    assert header.endswith(",loss,train_seconds")
    _, second = distill_multitask(teachers, config, progress=False)
    assert [t["eval_cache_status"] for t in second["tasks"]] == [{"teacher": "hit", "random": "hit"}] * 2
    assert [t["teacher_mean_return"] for t in second["tasks"]] == [t["teacher_mean_return"] for t in first["tasks"]]


def test_a_key_with_tuples_reads_back_as_the_same_key(tmp_path):
    from kd_rl.eval_cache import _key, _read, _write
    from kd_rl.evaluate import EpisodeStats

    key, material = _key("policy", "CartPole-v1", 2, 3, {"bounds": (1.0, 2.0)}, None)
    stats = EpisodeStats(returns=[1.0, 2.0], lengths=[1, 2], seeds=[5, 6])
    assert _write(tmp_path / f"{key}.json", material, stats)
    assert _read(tmp_path / f"{key}.json", material).returns == [1.0, 2.0]  # a tuple stored as a list still matches
