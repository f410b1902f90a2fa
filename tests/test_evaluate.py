import gymnasium as gym
import numpy as np
import pytest

from kd_rl.evaluate import check_model_fits_env, episode_seeds, evaluate_model, run_episodes
from kd_rl.models import StudentModel, TeacherModel


def _reference_returns(policy, episodes, seed):
    """One episode at a time with gymnasium directly: the slow, obvious way."""
    out = []
    for child in np.random.SeedSequence(seed).spawn(episodes):
        env = gym.make("CartPole-v1")
        obs, _ = env.reset(seed=int(child.generate_state(1)[0]))
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


def test_episode_seeds_of_different_seeds_do_not_overlap():
    # With seed + i, seeds 0 and 5 shared 95 of 100 episodes.
    a, b = episode_seeds(0, 100), episode_seeds(5, 100)
    assert len(set(a)) == 100 and not set(a) & set(b)
    assert episode_seeds(0, 100) == a  # reproducible
    assert episode_seeds(0, 10) == a[:10]  # a longer evaluation extends a shorter one
    stats = run_episodes(StudentModel(2, hidden_units=8, observation_dim=4), "CartPole-v1", episodes=3, seed=0)
    assert stats.seeds == a[:3]


def test_teacher_and_student_share_episodes_within_one_seed(cartpole_teacher):
    # Common random numbers: the same seed gives the same first observations to any policy.
    from kd_rl.envs import EnvGroup

    with EnvGroup("CartPole-v1", 4) as envs:
        first = envs.reset(episode_seeds(3, 4))
    with EnvGroup("CartPole-v1", 4) as envs:
        again = envs.reset(run_episodes(cartpole_teacher, "CartPole-v1", episodes=4, seed=3).seeds)
    np.testing.assert_array_equal(first, again)


def test_agreement_with_itself_and_with_a_stranger(cartpole_teacher):
    same = run_episodes(cartpole_teacher, "CartPole-v1", episodes=3, seed=0, reference=cartpole_teacher)
    assert same.agreement == 1.0 and same.mean_return == 500.0
    stranger = StudentModel(2, observation_dim=4)
    other = run_episodes(cartpole_teacher, "CartPole-v1", episodes=3, seed=0, reference=stranger)
    assert 0.0 <= other.agreement < 1.0


def test_evaluate_model_reports_everything(cartpole_teacher, tmp_path):
    student = StudentModel(2, hidden_units=8, observation_dim=4)
    result = evaluate_model(student, "CartPole-v1", episodes=4, seed=0, reference=cartpole_teacher)
    stats = run_episodes(student, "CartPole-v1", episodes=4, seed=0, reference=cartpole_teacher)
    assert result["returns"] == stats.returns and result["lengths"] == stats.lengths
    assert result["mean_return"] == pytest.approx(np.mean(stats.returns))
    assert result["std_return"] == pytest.approx(np.std(stats.returns))
    assert (result["min_return"], result["max_return"]) == (min(stats.returns), max(stats.returns))
    assert result["mean_length"] == pytest.approx(np.mean(stats.lengths))
    assert result["agreement"] == stats.agreement and result["episodes"] == 4
    assert result["params"] == 4 * 8 + 8 + 8 * 2 + 2
    path = tmp_path / "s.keras"
    student.save(path)
    assert result["size_bytes"] == path.stat().st_size
    lat = result["latency_us"]
    assert 0 < lat["median_us"] <= lat["p99_us"] and lat["iqr_us"] >= 0


def test_model_must_fit_the_environment():
    with pytest.raises(ValueError, match="teacher expects 8 observation features but CartPole-v1 gives 4"):
        check_model_fits_env(TeacherModel(2, observation_dim=8), "CartPole-v1", role="teacher")
    with pytest.raises(ValueError, match="outputs 3 actions but CartPole-v1 has 2"):
        check_model_fits_env(TeacherModel(3, observation_dim=4), "CartPole-v1")
    with pytest.raises(ValueError, match="unknown environment id"):
        check_model_fits_env(TeacherModel(2, observation_dim=4), "NoSuchEnv-v0")
    with pytest.raises(ValueError, match="episodes"):
        run_episodes(TeacherModel(2, observation_dim=4), "CartPole-v1", episodes=0)
