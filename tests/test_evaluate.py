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


def test_normalised_score_is_honest_for_negative_returns():
    from kd_rl.evaluate import normalised_score

    # student/teacher would say 1.10 for a student worse than its teacher.
    assert normalised_score(-161.0, -146.0, -180.0) == pytest.approx(19 / 34)
    assert normalised_score(500.0, 500.0, 22.0) == 1.0
    assert normalised_score(22.0, 500.0, 22.0) == 0.0
    assert normalised_score(1.0, 5.0, 5.0) is None


def test_random_policy_return_is_seeded_and_plays_the_same_episodes():
    from kd_rl.evaluate import RandomPolicy, random_policy_return

    a = random_policy_return("CartPole-v1", episodes=20, seed=3)
    assert a == random_policy_return("CartPole-v1", episodes=20, seed=3)
    assert 10 < a < 40  # a random CartPole policy lasts about 22 steps
    stats = run_episodes(RandomPolicy(2, seed=3), "CartPole-v1", episodes=20, seed=3)
    assert stats.mean_return == a and stats.seeds == episode_seeds(3, 20)


def test_kl_on_visited_states_matches_numpy(cartpole_teacher):
    student = StudentModel(2, hidden_units=8, observation_dim=4)
    stats = run_episodes(student, "CartPole-v1", episodes=2, seed=0, reference=cartpole_teacher, temperature=2.0)
    # Recompute on the states the student visits, one episode at a time.
    total, count = 0.0, 0
    for s in stats.seeds:
        env = gym.make("CartPole-v1")
        obs, _ = env.reset(seed=s)
        done = False
        while not done:
            x = obs[None].astype(np.float32)
            t, z = cartpole_teacher(x).numpy()[0] / 2.0, student(x).numpy()[0] / 2.0
            p, q = np.exp(t - np.logaddexp.reduce(t)), np.exp(z - np.logaddexp.reduce(z))
            total += float(np.sum(p * (np.log(p) - np.log(q))))
            count += 1
            obs, _, terminated, truncated, _ = env.step(int(np.argmax(z)))
            done = terminated or truncated
    assert stats.kl == pytest.approx(total / count, rel=1e-4)


def test_episodes_in_chunks_match_episodes_side_by_side(monkeypatch):
    from kd_rl import evaluate

    student = StudentModel(2, hidden_units=8, observation_dim=4)
    together = run_episodes(student, "CartPole-v1", episodes=7, seed=3)
    monkeypatch.setattr(evaluate, "MAX_PARALLEL_EPISODES", 3)
    chunked = run_episodes(student, "CartPole-v1", episodes=7, seed=3)
    assert chunked.returns == together.returns == _reference_returns(lambda x: student(x).numpy(), 7, 3)
    assert chunked.seeds == together.seeds


class _NeverEnds(gym.Env):
    """CartPole's spaces; never terminates or truncates (and is registered without a time limit)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}

    def step(self, action):
        return np.zeros(4, np.float32), 1.0, False, False, {}


def test_an_environment_that_never_ends_is_capped(monkeypatch):
    from kd_rl import evaluate

    if "KdRlNeverEnds-v0" not in gym.registry:
        gym.register("KdRlNeverEnds-v0", entry_point=_NeverEnds)
    student = StudentModel(2, hidden_units=8, observation_dim=4)
    stats = run_episodes(student, "KdRlNeverEnds-v0", episodes=3, seed=0, max_steps=40)
    assert stats.lengths == [40, 40, 40] and stats.capped == 3
    assert stats.summary()["capped_episodes"] == 3 and stats.summary()["max_episode_steps"] == 40
    # Without max_steps: the environment's own limit where it has one, else the default cap.
    assert evaluate.episode_cap("CartPole-v1") is None
    assert evaluate.episode_cap("KdRlNeverEnds-v0") == evaluate.DEFAULT_MAX_EPISODE_STEPS
    monkeypatch.setattr(evaluate, "DEFAULT_MAX_EPISODE_STEPS", 25)
    assert run_episodes(student, "KdRlNeverEnds-v0", episodes=2, seed=0).lengths == [25, 25]
    ended = run_episodes(student, "CartPole-v1", episodes=2, seed=0, max_steps=10_000)
    assert ended.capped == 0  # episodes the environment ends are not counted as capped


def test_more_episodes_than_memory_holds_are_refused_at_once():
    student = StudentModel(2, hidden_units=8, observation_dim=4)
    with pytest.raises(ValueError, match=r"episodes=10000000000000 would take .* bytes"):
        run_episodes(student, "CartPole-v1", episodes=10**13)
