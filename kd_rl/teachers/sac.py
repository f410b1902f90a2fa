"""SAC on the off-policy loop it shares with DQN (`kd_rl.teachers.off_policy`).

``n_envs`` environments (`kd_rl.teachers.collect`); the first ``learning_starts`` actions are uniform in the
bounds (as Stable-Baselines3), later ones are sampled from the agent's
tanh-squashed Gaussian (its ``collect_policy``). With ``action_noise`` set,
`ActionNoise` is added to every collected action, which is then clipped to the
bounds. Transitions go to the NumPy
`TransitionBuffer`; ``agent.train`` runs ``gradient_steps`` times every
``train_freq`` steps. Periodic evaluations act deterministically (the
Gaussian's squashed mean) with a NumPy copy of the actor. A kickstarted run
(``run.kickstart``) sets λ from the environment steps before each training round.
"""

from __future__ import annotations

import numpy as np
from tf_agents.trajectories import time_step as ts
from tf_agents.utils import common

from kd_rl.models import TeacherModel
from kd_rl.teachers.agents import make_sac_actor_network, make_sac_agent
from kd_rl.teachers.off_policy import OffPolicyTrainer, make_train_round, sample_round
from kd_rl.teachers.run import Run
from kd_rl.teachers.to_keras import action_bounds, export_sac_teacher, numpy_policy

__all__ = ["ActionNoise", "SacTrainer", "train_sac"]


class ActionNoise:
    """Exploration noise for ``n`` environments, in half-ranges of the action bounds.

    Each step, ``x <- x - theta * x + std * N(0, 1)`` per environment and
    action dimension: with ``theta = 1`` that is normal noise drawn afresh, with
    a small ``theta`` Ornstein-Uhlenbeck noise whose pushes last about
    ``1 / theta`` steps (the discrete-time process of Lillicrap et al., 2016,
    DDPG). `reset` restarts an environment's noise at 0 when a new episode
    begins, as Stable-Baselines3 does.

    Args:
        n: Environments.
        low: The action's lower bounds (an array of the action's shape).
        high: Its upper bounds.
        std: Standard deviation of the per-step draw, in half-ranges.
        theta: Pull towards 0 per step, in (0, 1].

    Example:
        >>> noise = ActionNoise(1, np.array([-2.0]), np.array([2.0]), std=0.5, theta=1.0)
        >>> noise(np.random.default_rng(0)).shape
        (1, 1)
    """

    def __init__(self, n: int, low: np.ndarray, high: np.ndarray, std: float, theta: float):
        self.scale = (np.asarray(high, np.float64) - np.asarray(low, np.float64)) / 2.0 * float(std)
        self.theta = float(theta)
        self.state = np.zeros((int(n), *np.shape(low)))

    def reset(self, which: np.ndarray) -> None:
        """Restart the noise of the environments ``which`` (a bool mask or indices) at 0."""
        self.state[which] = 0.0

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        """The next noise of every environment, ``float32 [n, *action_shape]``, in action units."""
        self.state = (1.0 - self.theta) * self.state + rng.standard_normal(self.state.shape)
        return (self.state * self.scale).astype(np.float32)


def make_action_noise(params, n: int, low: np.ndarray, high: np.ndarray) -> ActionNoise | None:
    """The `ActionNoise` that ``params["action_noise"]`` names for ``n`` environments, or None for ``"none"``."""
    kind = params["action_noise"]
    if kind == "none":
        return None
    theta = 1.0 if kind == "normal" else float(params["noise_theta"])
    return ActionNoise(n, low, high, std=float(params["noise_std"]), theta=theta)


class SacTrainer(OffPolicyTrainer):
    """SAC on the shared off-policy loop (`kd_rl.teachers.off_policy.OffPolicyTrainer`).

    The first ``learning_starts`` actions are uniform in the bounds, later ones
    sampled from the agent's ``collect_policy``; `ActionNoise`, when set, is
    added and the result clipped to the bounds. A training round runs
    ``agent.train`` ``gradient_steps`` times, in one compiled call
    (`kd_rl.teachers.off_policy.make_train_round`).
    """

    def __init__(self, run: Run, gym_id: str, resume: bool):
        super().__init__(run, gym_id, resume)
        self.update = make_train_round(self.agent, self.gradient_steps, LOSS_NAMES)
        self.sample = common.function(self.agent.collect_policy.action)
        self.actions = np.zeros((self.envs.n, self.low.size), np.float32)
        self.noise = make_action_noise(self.params, self.envs.n, self.low, self.high)

    def build(self, train_steps: int) -> tuple:
        self.low, self.high = action_bounds(self.action_spec)
        self.action_dim = self.low.size
        self.actor = make_sac_actor_network(self.action_spec, self.params)
        agent = make_sac_agent(
            self.time_step_spec, self.action_spec, self.params, train_steps, actor_network=self.actor,
            kickstart=self.run.kickstart,
        )  # fmt: skip
        return self.actor, agent

    def act(self, env_steps: int) -> tuple[np.ndarray, dict]:
        envs, actions, low, high = self.envs, self.actions, self.low, self.high
        acting = np.flatnonzero(envs.acting)
        # Actions (and random numbers) only when an environment acts: a step that only resets draws none.
        if acting.size and env_steps < self.learning_starts:
            actions[acting] = self.rng.uniform(low, high, size=(acting.size, low.size)).astype(np.float32)
        elif acting.size:
            actions[:] = self.sample(envs.time_step).action.numpy()
        if acting.size and self.noise is not None:
            self.noise.reset(envs.time_step.step_type == ts.StepType.FIRST)
            actions[:] = np.clip(actions + self.noise(self.rng), low, high)
        return actions, {}

    def train_round(self) -> list:
        return [self.update(sample_round(self.buffer, self.rng, self.gradient_steps, self.batch_size))]

    def eval_policy(self):
        return numpy_policy(self.layers, action_spec=self.action_spec, squash=True)

    def summarise(self, losses: list) -> dict:
        return _mean_losses(losses)

    def export(self) -> TeacherModel:
        return export_sac_teacher(self.actor, self.obs_dim, self.action_spec)


def train_sac(run: Run, gym_id: str, resume: bool) -> tuple[TeacherModel, int]:
    """Train a SAC teacher for ``run.steps`` environment steps; return it exported and the steps reached.

    See `SacTrainer` and, for the loop, `kd_rl.teachers.off_policy.OffPolicyTrainer`.
    """
    return SacTrainer(run, gym_id, resume).train()


#: The SAC losses a training round averages and the run logs.
LOSS_NAMES = ("loss", "critic_loss", "actor_loss", "alpha_loss")


def _mean_losses(losses: list) -> dict:
    """Mean total, critic, actor and alpha losses of a list of rounds' means (empty: none)."""
    if not losses:
        return {}
    return {name: np.mean([float(means[name]) for means in losses]) for name in LOSS_NAMES}
