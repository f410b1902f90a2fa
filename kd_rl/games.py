"""Games seen as pixels: MinAtar (``kd_rl[minatar]``) and Atari through ale-py (``kd_rl[atari]``).

MinAtar (Young & Tian 2019) is a miniature Atari: five games on a 10 x 10
grid of boolean channels, with sticky actions (probability 0.1) and the
difficulty ramping of the original. kd_rl registers its own Gymnasium ids
``MinAtar/<Game>-v1`` (each game's minimal action set) and ``MinAtar/<Game>-v0``
(all 6 actions), for ``<Game>`` in `MINATAR_GAMES`, the first time one is
made (`ensure_registered`): MinAtar's own registration goes through an entry
point Gymnasium 1.x no longer loads, and its environment ignores the seed a
reset is given, which `MinAtarEnv` fixes (Gymnasium's env checker passes).
Observations are ``bool [10, 10, channels]``. An episode is cut (truncated)
after `MINATAR_MAX_STEPS` steps, so that a policy that never loses still
finishes its episodes; Freeway's end by themselves after 2,500 steps.

Atari ids (``ALE/<Game>-v5``) are registered by importing ``ale_py``, whose
wheel ships the ROMs, and made with the standard preprocessing
(`atari_env`, `ATARI_PREPROCESSING`): up to 30 no-op starts, 4 frames per step
with the last two max-pooled, 84 x 84 grey frames, the last 4 stacked into
``uint8 [84, 84, 4]``. A life lost does not end the episode, and the v5
environments' sticky actions (probability 0.25) stay (Machado et al. 2018's
recommendations); rewards are the game's own (a DQN teacher may clip them
while it trains: its ``clip_reward`` hyperparameter). The settings a model
was trained with are recorded in its file (``preprocessing``), and kd_rl
makes the environment with them wherever the model plays
(`env_kwargs_for`); ``--env-kwargs '{"preprocessing": "none"}'`` gives
the raw 210 x 160 RGB screen.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import gymnasium
import numpy as np

from kd_rl.errors import KdRlError

__all__ = [
    "ATARI_PREPROCESSING",
    "MINATAR_GAMES",
    "MINATAR_MAX_STEPS",
    "MinAtarEnv",
    "atari_env",
    "ensure_registered",
    "env_kwargs_for",
    "is_atari",
    "register_minatar",
]

#: kd_rl's Atari preprocessing (Gymnasium's ``AtariPreprocessing`` and
#: ``FrameStackObservation``), the settings a model records; any may be changed
#: through the ``preprocessing`` environment argument.
ATARI_PREPROCESSING = {
    "noop_max": 30,
    "frame_skip": 4,
    "screen_size": 84,
    "grayscale": True,
    "frame_stack": 4,
    "terminal_on_life_loss": False,
}

#: The MinAtar games: Gymnasium name -> MinAtar's module name.
MINATAR_GAMES = {
    "Asterix": "asterix",
    "Breakout": "breakout",
    "Freeway": "freeway",
    "Seaquest": "seaquest",
    "SpaceInvaders": "space_invaders",
}

#: Steps after which a MinAtar episode is truncated (Gymnasium's ``max_episode_steps``).
MINATAR_MAX_STEPS = 10_000

_ENTRY_POINT = "kd_rl.games:MinAtarEnv"

# The colour of each channel when a frame is drawn (black where no channel is set).
_PALETTE = np.array(
    [
        [0, 0, 0],
        [230, 159, 0],
        [86, 180, 233],
        [0, 158, 115],
        [240, 228, 66],
        [0, 114, 178],
        [213, 94, 0],
        [204, 121, 167],
        [153, 153, 153],
        [255, 255, 255],
        [128, 0, 0],
    ],
    np.uint8,
)


@contextmanager
def _quiet_import():
    # minatar logs a warning at import when seaborn is missing (kd_rl draws frames itself).
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _minatar():
    try:
        with _quiet_import():
            import minatar
    except ImportError:
        return None
    return minatar


class MinAtarEnv(gymnasium.Env):
    """One MinAtar game as a Gymnasium environment with seeded resets.

    Args:
        game: MinAtar's module name (``"breakout"``...; see `MINATAR_GAMES`).
        use_minimal_action_set: Only the game's own actions (``-v1`` ids), not all 6 (``-v0``).
        sticky_action_prob: Probability that the previous action repeats (MinAtar's 0.1).
        difficulty_ramping: Whether the game speeds up as it goes (MinAtar's default).
        render_mode: ``"rgb_array"`` (a ``uint8 [10, 10, 3]`` frame, one colour per channel) or None.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        game: str,
        use_minimal_action_set: bool = True,
        sticky_action_prob: float = 0.1,
        difficulty_ramping: bool = True,
        render_mode: str | None = None,
    ):
        minatar = _minatar()
        if minatar is None:
            raise KdRlError('MinAtar is not installed: pip install "kd_rl[minatar]"')
        if render_mode not in (None, "rgb_array"):
            raise KdRlError(f"MinAtar environments render only 'rgb_array', got render_mode={render_mode!r}")
        self.render_mode = render_mode
        self.game = minatar.Environment(
            env_name=game, sticky_action_prob=float(sticky_action_prob), difficulty_ramping=bool(difficulty_ramping)
        )
        self.action_set = (
            list(self.game.minimal_action_set()) if use_minimal_action_set else list(range(self.game.num_actions()))
        )
        self.action_space = gymnasium.spaces.Discrete(len(self.action_set))
        self.observation_space = gymnasium.spaces.Box(0, 1, shape=tuple(self.game.state_shape()), dtype=bool)
        self._seeded = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None or not self._seeded:
            # The game draws from its own RandomState: seed it from Gymnasium's generator.
            self.game.seed(int(self.np_random.integers(2**31 - 1)))
            self._seeded = True
        self.game.reset()
        self.game.last_action = 0  # a sticky action does not carry over from the last episode
        return self.game.state(), {}

    def step(self, action):
        reward, done = self.game.act(self.action_set[int(action)])
        return self.game.state(), float(reward), bool(done), False, {}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        state = self.game.state()
        index = np.max(state * np.arange(1, state.shape[-1] + 1), axis=-1)  # the last set channel wins
        return _PALETTE[np.minimum(index, len(_PALETTE) - 1)]


def register_minatar() -> list[str]:
    """Register ``MinAtar/<Game>-v0`` and ``-v1`` for every game in `MINATAR_GAMES`; return the ids.

    Ids already registered by MinAtar's own ``register_envs`` are replaced.

    Raises:
        ValueError: If MinAtar is not installed (``pip install "kd_rl[minatar]"``).
    """
    if _minatar() is None:
        raise KdRlError('MinAtar is not installed: pip install "kd_rl[minatar]"')
    ids = []
    for name, game in MINATAR_GAMES.items():
        for version, minimal in (("v0", False), ("v1", True)):
            env_id = f"MinAtar/{name}-{version}"
            registered = gymnasium.envs.registry.get(env_id)
            if registered is None or registered.entry_point != _ENTRY_POINT:
                gymnasium.envs.registry.pop(env_id, None)
                gymnasium.register(
                    env_id,
                    entry_point=_ENTRY_POINT,
                    kwargs={"game": game, "use_minimal_action_set": minimal},
                    max_episode_steps=MINATAR_MAX_STEPS,
                )
            ids.append(env_id)
    return ids


def ensure_registered(env_id: str) -> None:
    """Register the family ``env_id`` belongs to (MinAtar, Atari) if it is one; nothing for other ids.

    Raises:
        ValueError: If the family's package is missing, naming the extra to install.
    """
    if not isinstance(env_id, str):
        return
    if env_id.startswith("MinAtar/"):
        if _minatar() is None:
            raise KdRlError(
                f'environment {env_id!r} needs MinAtar, which is not installed: pip install "kd_rl[minatar]"'
            )
        register_minatar()
    elif env_id.startswith("ALE/"):
        try:
            import ale_py
        except ImportError:
            raise KdRlError(
                f'environment {env_id!r} needs ale-py, which is not installed: pip install "kd_rl[atari]"'
            ) from None
        gymnasium.register_envs(ale_py)


def is_atari(env_id) -> bool:
    """Whether ``env_id`` is an Atari id kd_rl preprocesses (``ALE/<Game>-v5``)."""
    return isinstance(env_id, str) and env_id.startswith("ALE/")


class _ChannelsLast(gymnasium.ObservationWrapper):
    """Stacked frames ``[stack, h, w(, 3)]`` as one image ``[h, w, stack(·3)]``: what a Conv2D takes."""

    def __init__(self, env):
        super().__init__(env)
        shape = env.observation_space.shape
        self._colour = len(shape) == 4
        h, w = shape[1], shape[2]
        channels = shape[0] * (shape[3] if self._colour else 1)
        self.observation_space = gymnasium.spaces.Box(0, 255, (h, w, channels), np.uint8)

    def observation(self, observation):
        frames = np.asarray(observation)
        if self._colour:  # [stack, h, w, 3] -> [h, w, stack * 3]
            return np.ascontiguousarray(frames.transpose(1, 2, 0, 3).reshape(*frames.shape[1:3], -1))
        return np.ascontiguousarray(frames.transpose(1, 2, 0))


def _check_preprocessing(preprocessing, env_id: str) -> dict:
    if not isinstance(preprocessing, dict):
        raise KdRlError(
            f"environment {env_id!r}: preprocessing must be a JSON object of {sorted(ATARI_PREPROCESSING)} "
            f'or "none", got {preprocessing!r}'
        )
    unknown = sorted(set(preprocessing) - set(ATARI_PREPROCESSING))
    if unknown:
        raise KdRlError(
            f"environment {env_id!r}: unknown preprocessing settings {unknown}; known: {sorted(ATARI_PREPROCESSING)}"
        )
    options = {**ATARI_PREPROCESSING, **preprocessing}
    for key, default in ATARI_PREPROCESSING.items():
        value = options[key]
        ok = (
            isinstance(value, bool)
            if isinstance(default, bool)
            else (isinstance(value, int) and not isinstance(value, bool) and value >= (0 if key == "noop_max" else 1))
        )
        if not ok:
            kind = "true or false" if isinstance(default, bool) else "a positive int"
            raise KdRlError(f"environment {env_id!r}: preprocessing {key} must be {kind}, got {value!r}")
    return options


def atari_env(env_id: str, preprocessing=None, **gym_kwargs) -> gymnasium.Env:
    """An Atari environment with kd_rl's preprocessing (`ATARI_PREPROCESSING`, updated by ``preprocessing``).

    The emulator runs with ``frameskip=1`` and ``AtariPreprocessing`` skips the
    frames (max-pooling the last two), so observations are ``uint8 [84, 84,
    4]`` by default. The settings are on the environment as
    ``env.get_wrapper_attr("kd_rl_preprocessing")``.

    Raises:
        ValueError: For an unknown or ill-typed setting, naming it.
    """
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    options = _check_preprocessing(preprocessing or {}, env_id)
    if "frameskip" in gym_kwargs:
        raise KdRlError(f"environment {env_id!r}: set preprocessing's frame_skip, not frameskip (the emulator's)")
    # max_episode_steps counts the agent's steps: the time limit goes around the preprocessing, not inside it.
    limit = gym_kwargs.pop("max_episode_steps", None)
    env = gymnasium.make(env_id, frameskip=1, **gym_kwargs)
    env = AtariPreprocessing(
        env,
        noop_max=options["noop_max"],
        frame_skip=options["frame_skip"],
        screen_size=options["screen_size"],
        terminal_on_life_loss=options["terminal_on_life_loss"],
        grayscale_obs=options["grayscale"],
        scale_obs=False,
    )
    env = _ChannelsLast(FrameStackObservation(env, options["frame_stack"]))
    if limit is not None:
        env = gymnasium.wrappers.TimeLimit(env, int(limit))
    env.kd_rl_preprocessing = options
    return env


def env_kwargs_for(model, env_id: str, env_kwargs: dict | None) -> dict:
    """``env_kwargs`` with the ``preprocessing`` ``model`` records, where it plays an Atari id and none is given.

    Raises:
        ValueError: If ``env_kwargs`` give other preprocessing than the model
            was trained with, naming both.
    """
    kwargs = dict(env_kwargs or {})
    recorded = getattr(model, "preprocessing", None)
    if not is_atari(env_id) or recorded is None:
        return kwargs
    if "preprocessing" not in kwargs:
        kwargs["preprocessing"] = dict(recorded)
    elif kwargs["preprocessing"] == "none" or _check_preprocessing(kwargs["preprocessing"], env_id) != recorded:
        raise KdRlError(
            f"the model was trained on {env_id} frames preprocessed with {recorded}, but the environment "
            f"arguments give preprocessing {kwargs['preprocessing']!r}; leave it out to use the model's"
        )
    return kwargs
