import numpy as np
import pytest

from kd_rl.data import BetaSchedule, Collector, ReplayBuffer, visited_states
from kd_rl.models import StudentModel


def test_replay_buffer_is_bounded_fifo(rng):
    buf = ReplayBuffer(capacity=5, obs_dim=2, num_actions=3)
    obs = np.arange(14, dtype=np.float32).reshape(7, 2)
    logits = np.arange(21, dtype=np.float32).reshape(7, 3)
    buf.add(obs[:3], logits[:3])
    assert len(buf) == 3
    buf.add(obs[3:], logits[3:])
    assert len(buf) == 5 and buf.added == 7
    # The two oldest pairs were overwritten; every kept pair is still matched.
    kept = {tuple(o) for o in buf.observations}
    assert kept == {tuple(o) for o in obs[2:]}
    for o, lg in zip(buf.observations, buf.logits):
        np.testing.assert_array_equal(lg, logits[int(o[0]) // 2])
    buf.add(obs, logits)  # more than the capacity at once: only the newest fit
    assert {tuple(o) for o in buf.observations} == {tuple(o) for o in obs[2:]}
    assert buf.added == 14


def test_replay_buffer_sample_and_dataset(rng):
    buf = ReplayBuffer(capacity=100, obs_dim=4, num_actions=2)
    obs = rng.normal(size=(50, 4)).astype(np.float32)
    logits = np.stack([obs[:, 0], -obs[:, 0]], axis=1)
    buf.add(obs, logits)
    o, lg = buf.sample(32, rng)
    assert o.shape == (32, 4) and lg.shape == (32, 2)
    np.testing.assert_array_equal(lg[:, 0], o[:, 0])
    o, lg = next(iter(buf.as_dataset(16, seed=0)))
    assert o.shape == (16, 4)
    np.testing.assert_array_equal(lg.numpy()[:, 0], o.numpy()[:, 0])
    state = buf.state()
    again = ReplayBuffer(capacity=100, obs_dim=4, num_actions=2)
    again.load_state(state)
    assert len(again) == 50 and again.added == 50
    np.testing.assert_array_equal(again.observations[:50], buf.observations[:50])
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3, 4, 2).sample(1, rng)
    with pytest.raises(ValueError, match="buffer_size"):
        ReplayBuffer(0, 4, 2)


def test_beta_schedule():
    beta = BetaSchedule(1.0, 0.2)
    assert beta(0) == 1.0 and beta(1) == pytest.approx(0.2) and beta(0.5) == pytest.approx(0.6)
    assert beta(2.0) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="beta_end"):
        BetaSchedule(1.0, 1.5)


def test_teacher_driven_collection_labels_with_teacher_logits(cartpole_teacher):
    collector = Collector("CartPole-v1", cartpole_teacher, mode="teacher", num_envs=4, seed=0)
    obs, logits = collector.collect(400)
    assert obs.shape == (400, 4) and logits.shape == (400, 2)
    np.testing.assert_allclose(logits, cartpole_teacher(obs).numpy(), rtol=1e-5, atol=1e-5)
    # The teacher never fails in 100 steps: no episode has ended yet.
    assert collector.episode_returns == []


def test_student_driven_collection_visits_the_students_states(cartpole_teacher):
    student = StudentModel(2, observation_dim=4)  # untrained: falls quickly
    collector = Collector("CartPole-v1", cartpole_teacher, student, mode="student", num_envs=4, seed=0)
    obs, logits = collector.collect(400)
    np.testing.assert_allclose(logits, cartpole_teacher(obs).numpy(), rtol=1e-5, atol=1e-5)
    assert len(collector.episode_returns) > 4 and np.mean(collector.episode_returns) < 100


def test_mixed_collection_follows_the_beta_schedule(cartpole_teacher):
    student = StudentModel(2, observation_dim=4)
    always_teacher = Collector(
        "CartPole-v1", cartpole_teacher, student, mode="mixed", num_envs=4, seed=0, beta=BetaSchedule(1.0, 1.0)
    )
    always_teacher.collect(400)
    assert always_teacher.episode_returns == []
    never_teacher = Collector(
        "CartPole-v1", cartpole_teacher, student, mode="mixed", num_envs=4, seed=0, beta=BetaSchedule(0.0, 0.0)
    )
    never_teacher.collect(400)
    assert len(never_teacher.episode_returns) > 4


def test_collection_is_reproducible(cartpole_teacher):
    runs = []
    for _ in range(2):
        c = Collector("CartPole-v1", cartpole_teacher, mode="teacher", num_envs=2, seed=3, epsilon=0.3)
        runs.append(c.collect(200)[0])
    np.testing.assert_array_equal(runs[0], runs[1])


def test_collector_bad_input(cartpole_teacher):
    with pytest.raises(ValueError, match="collect mode"):
        Collector("CartPole-v1", cartpole_teacher, mode="random")
    with pytest.raises(ValueError, match="needs a student"):
        Collector("CartPole-v1", cartpole_teacher, mode="student")
    with pytest.raises(ValueError, match="epsilon"):
        Collector("CartPole-v1", cartpole_teacher, mode="teacher", epsilon=2)
    with pytest.raises(ValueError, match="teacher is a discrete-action policy but Pendulum-v1 has a continuous"):
        Collector("Pendulum-v1", cartpole_teacher, mode="teacher")


def _register_nan_env():
    import gymnasium as gym

    class NanAfterThree(gym.Env):
        observation_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        action_space = gym.spaces.Discrete(2)

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return np.zeros(4, np.float32), {}

        def step(self, action):
            self.t += 1
            obs = np.full(4, np.nan if self.t >= 3 else 0.1, np.float32)
            return obs, 1.0, False, False, {}

    if "KdRlNanAfterThree-v0" not in gym.registry:
        gym.register(id="KdRlNanAfterThree-v0", entry_point=NanAfterThree, max_episode_steps=50)


def test_nan_observation_stops_collection_naming_the_step(cartpole_teacher, tmp_path, capsys):
    _register_nan_env()
    collector = Collector("KdRlNanAfterThree-v0", cartpole_teacher, mode="teacher", num_envs=2)
    with pytest.raises(ValueError, match="observation at step 3 of an episode of 'KdRlNanAfterThree-v0' is not finite"):
        collector.collect(100)
    from kd_rl.cli import main

    cartpole_teacher.save(tmp_path / "t.keras")
    out = tmp_path / "run"
    argv = ["distill", "--teacher", str(tmp_path / "t.keras"), "--env", "KdRlNanAfterThree-v0", "--out", str(out)]
    code = main([*argv, "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "step 3" in err
    assert not out.exists(), "a run that failed before its first checkpoint leaves no folder behind"


def test_visited_states_are_the_greedy_collector_states(cartpole_teacher):
    states = visited_states(cartpole_teacher, "CartPole-v1", 100, seed=3)
    assert states.shape == (100, 4) and states.dtype == np.float32
    collector = Collector("CartPole-v1", cartpole_teacher, mode="teacher", num_envs=8, seed=3, total_steps=100)
    expected, _ = collector.collect(100)
    collector.close()
    np.testing.assert_array_equal(states, expected[:100])
    explored = visited_states(cartpole_teacher, "CartPole-v1", 100, seed=3, epsilon=1.0)
    assert not np.array_equal(states, explored)


def test_collection_takes_exactly_the_steps_asked_and_rotates_the_environments(cartpole_teacher):
    # 500 steps over 8 environments: no state is thrown away and no environment falls behind.
    collector = Collector("CartPole-v1", cartpole_teacher, mode="teacher", num_envs=8, seed=0)
    try:
        for n in (500, 500, 3, 13):
            observations, logits = collector.collect(n)
            assert len(observations) == len(logits) == n
        steps = collector.envs.episode_steps + 0  # steps of each environment's current episode
        assert collector.steps == 1016
        assert np.all(steps == 127)  # 1016 / 8: the hand-made teacher never ends an episode this early
    finally:
        collector.close()
