import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The evaluation cache (kd_rl.eval_cache) of the tests' runs goes to a folder of their own, not ~/.cache,
# removed when the session ends.
_CACHE = __import__("tempfile").TemporaryDirectory(prefix="kd_rl-test-cache-")
os.environ["KD_RL_CACHE_DIR"] = _CACHE.name

import kd_rl  # noqa: E402, F401  (first: it sets TF_USE_LEGACY_KERAS before TensorFlow resolves tf.keras)

# isort: split
import gymnasium  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# The keys every teacher run's metrics.json must have (issue #3), spelled out once.
TEACHER_METRIC_KEYS = frozenset(
    {"env_id", "algo", "seed", "env_steps", "wall_seconds", "mean_return", "std_return", "eval_episodes", "params"}
)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def interrupt_teacher_run(monkeypatch):
    """``interrupt(n, train)``: call ``train()``, a teacher run, and stop it in its n-th periodic evaluation.

    The evaluation raises KeyboardInterrupt, as Ctrl-C would; the fixture checks
    the run let it through and puts the real evaluation back.
    """
    from kd_rl.teachers import run

    def interrupt(n: int, train) -> None:
        real_evaluate, calls = run.run_episodes, []

        def dying_evaluate(*args, **kwargs):
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
            return real_evaluate(*args, **kwargs)

        monkeypatch.setattr(run, "run_episodes", dying_evaluate)
        try:
            with pytest.raises(KeyboardInterrupt):
                train()
        finally:
            monkeypatch.setattr(run, "run_episodes", real_evaluate)

    return interrupt


# A hand-made CartPole-v1 policy in a 100-unit TeacherModel: push right when
# 0.1 x + 0.5 x' + theta + theta' > 0. It scores 500 on every seed we tried, so
# tests get a strong teacher without training one.
CARTPOLE_W = np.array([0.1, 0.5, 1.0, 1.0], np.float32)


def make_cartpole_teacher(hidden_units: int = 100, scale: float = 10.0):
    from kd_rl.models import TeacherModel

    model = TeacherModel(2, hidden_units=hidden_units, observation_dim=4)
    kernel = np.zeros((4, hidden_units), np.float32)
    kernel[:, 0], kernel[:, 1] = CARTPOLE_W, -CARTPOLE_W
    out = np.zeros((hidden_units, 2), np.float32)
    # logits = scale * [-(w.x), w.x], written with two ReLUs.
    out[0], out[1] = [-scale, scale], [scale, -scale]
    model.set_weights([kernel, np.zeros(hidden_units, np.float32), out, np.zeros(2, np.float32)])
    return model


@pytest.fixture
def cartpole_teacher():
    return make_cartpole_teacher()


@pytest.fixture
def cartpole_teacher_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher") / "teacher.keras"
    make_cartpole_teacher().save(path)
    return path


class Countdown(gymnasium.Env):
    """Observation [t, 0]; reward t; terminates after `terminate_at` steps, truncates at `truncate_at`."""

    def __init__(self, terminate_at=3, truncate_at=None, obs_shape=(2,), nan_at=None, start=0):
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, obs_shape, np.float64)
        self.action_space = gymnasium.spaces.Discrete(2, start=start)
        self.terminate_at, self.truncate_at, self.nan_at, self.t = terminate_at, truncate_at, nan_at, 0
        self.actions = []

    def _obs(self):
        obs = np.zeros(self.observation_space.shape)
        obs.flat[0] = self.t
        if self.t == self.nan_at:
            obs.flat[-1] = np.nan
        return obs

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.actions.append(action)
        self.t += 1
        truncated = self.truncate_at is not None and self.t >= self.truncate_at
        return self._obs(), float(self.t), self.t >= self.terminate_at, truncated, {}


def one_line_error(capsys, argv, match):
    """Run ``kd-rl argv``; check it fails as bad input must: exit 2, one line on stderr naming ``match``."""
    from kd_rl.cli import main

    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert match in err, err
    return err


def with_options(argv: list[str], extra: list[str]) -> list[str]:
    """``argv`` with each ``--option value`` pair of ``extra`` replacing the option's value, or appended."""
    argv = list(argv)
    for i in range(0, len(extra), 2):
        if extra[i] in argv:
            argv[argv.index(extra[i]) + 1] = extra[i + 1]
        else:
            argv += extra[i : i + 2]
    return argv
