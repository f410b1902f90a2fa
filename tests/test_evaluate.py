import gymnasium as gym
import numpy as np
import pytest

from kd_rl.evaluate import check_model_fits_env, evaluate_model, run_episodes
from kd_rl.models import StudentModel, TeacherModel


def _reference_returns(policy, episodes, seed):
    """One episode at a time with gymnasium directly: the slow, obvious way."""
    out = []
    for i in range(episodes):
        env = gym.make("CartPole-v1")
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            action = int(np.argmax(policy(obs[None].astype(np.float32))))
            obs, r, terminated, truncated, _ = env.step(action)
            total += r
            done = terminated or truncated
        out.append(total)
    return out


def test_batched_episodes_match_one_at_a_time():
    student = StudentModel(2, hidden_units=8, observation_dim=4)
    stats = run_episodes(student, "CartPole-v1", episodes=6, seed=5)
    expected = _reference_returns(lambda x: student(x).numpy(), 6, 5)
    assert stats.returns == expected
    assert stats.lengths == [int(r) for r in expected]  # CartPole pays 1 per step


def test_agreement_with_itself_and_with_a_stranger(cartpole_teacher):
    same = run_episodes(cartpole_teacher, "CartPole-v1", episodes=3, seed=0, reference=cartpole_teacher)
    assert same.agreement == 1.0 and same.mean_return == 500.0
    stranger = StudentModel(2, observation_dim=4)
    other = run_episodes(cartpole_teacher, "CartPole-v1", episodes=3, seed=0, reference=stranger)
    assert 0.0 <= other.agreement < 1.0


def test_evaluate_model_reports_everything(cartpole_teacher):
    result = evaluate_model(cartpole_teacher, "CartPole-v1", episodes=4, seed=0)
    for key in (
        "mean_return",
        "std_return",
        "min_return",
        "max_return",
        "mean_length",
        "params",
        "size_bytes",
        "latency_us",
        "returns",
        "lengths",
    ):
        assert key in result
    assert result["params"] == 702 and result["size_bytes"] > 1000
    assert result["latency_us"]["median_us"] > 0


def test_model_must_fit_the_environment():
    with pytest.raises(ValueError, match="teacher expects 8 observation features but CartPole-v1 gives 4"):
        check_model_fits_env(TeacherModel(2, observation_dim=8), "CartPole-v1", role="teacher")
    with pytest.raises(ValueError, match="outputs 3 actions but CartPole-v1 has 2"):
        check_model_fits_env(TeacherModel(3, observation_dim=4), "CartPole-v1")
    with pytest.raises(ValueError, match="unknown environment id"):
        check_model_fits_env(TeacherModel(2, observation_dim=4), "NoSuchEnv-v0")
    with pytest.raises(ValueError, match="episodes"):
        run_episodes(TeacherModel(2, observation_dim=4), "CartPole-v1", episodes=0)
