"""DQN on the off-policy loop it shares with SAC (`kd_rl.teachers.off_policy`).

A kickstarted run (``run.kickstart``) sets the distillation weight λ from the
environment steps before each training round (`kd_rl.teachers.kickstart`).

Python stays out of the inner loop's costly parts: the agent acts with a
NumPy copy of the Q-network (refreshed after every training round) and samples
a NumPy replay buffer; only the training round runs in TensorFlow: all of its
``gradient_steps`` minibatches go in at once and `make_dqn_update` runs
``agent.train`` on each in one compiled loop (one call from Python per round,
not one per gradient step).
"""

from __future__ import annotations

import numpy as np

from kd_rl.models import TeacherModel
from kd_rl.teachers.agents import make_dqn_agent, make_q_network
from kd_rl.teachers.off_policy import OffPolicyTrainer, make_train_round, sample_round
from kd_rl.teachers.run import Run
from kd_rl.teachers.to_keras import export_dqn_teacher, frame_normaliser, numpy_policy

__all__ = ["DqnTrainer", "make_dqn_update", "train_dqn"]


def make_dqn_update(agent, gradient_steps: int):
    """The compiled training round: ``update(batches) -> mean loss`` over ``gradient_steps`` gradient steps.

    `kd_rl.teachers.off_policy.make_train_round` with DQN's one loss.
    """
    round_ = make_train_round(agent, gradient_steps)
    return lambda batches: round_(batches)["loss"]


class DqnTrainer(OffPolicyTrainer):
    """DQN on the shared off-policy loop (`kd_rl.teachers.off_policy.OffPolicyTrainer`).

    Each environment acts epsilon-greedily on its own, with epsilon falling
    linearly from ``exploration_initial_eps`` to ``exploration_final_eps``
    over ``exploration_fraction`` of the steps. With ``n_step > 1`` a step
    reaches the replay buffer ``n_step - 1`` steps late, so a round that falls
    due before anything is stored (``learning_starts: 0``) is skipped.
    """

    def __init__(self, run: Run, gym_id: str, resume: bool):
        self.n_step = int(run.params["n_step"])
        super().__init__(run, gym_id, resume)
        p = self.params
        self.update = make_dqn_update(self.agent, self.gradient_steps)
        self.eps_start, self.eps_end = float(p["exploration_initial_eps"]), float(p["exploration_final_eps"])
        self.eps_steps = max(float(p["exploration_fraction"]) * self.run.steps, 1.0)
        self.acting_policy = self._numpy_copy()  # refreshed after every training round
        self.actions = np.zeros(self.envs.n, np.int64)

    def build(self, train_steps: int) -> tuple:
        self.num_actions = int(self.py_env.action_spec().maximum) + 1
        self.q_network = make_q_network(
            self.action_spec, self.params, self.obs_dim, self.observation_shape, self.observation_scale
        )
        agent = make_dqn_agent(
            self.time_step_spec, self.action_spec, self.params, train_steps, q_network=self.q_network,
            kickstart=self.run.kickstart,
        )  # fmt: skip
        return self.q_network, agent

    def act(self, env_steps: int) -> tuple[np.ndarray, dict]:
        epsilon = self.eps_start + (self.eps_end - self.eps_start) * min(1.0, env_steps / self.eps_steps)
        acting, actions = np.flatnonzero(self.envs.acting), self.actions
        if acting.size:  # random numbers only for the environments that act
            explore = self.rng.random(acting.size) < epsilon
            greedy = acting[~explore]
            if greedy.size:
                actions[greedy] = np.argmax(self.acting_policy(self.envs.observations[greedy]), axis=-1)
            if explore.any():
                actions[acting[explore]] = self.rng.integers(self.num_actions, size=int(explore.sum()))
        return actions, {"epsilon": epsilon}

    def train_round(self) -> list:
        loss = self.update(sample_round(self.buffer, self.rng, self.gradient_steps, self.batch_size))
        self.acting_policy = self._numpy_copy()
        return [loss]

    def _numpy_copy(self):
        return numpy_policy(
            self.layers, frame_normaliser(self.q_network), convs=self.convs, observation_shape=self.observation_shape
        )

    def eval_policy(self):
        return self.acting_policy  # the policy that acts, as it is now

    def summarise(self, losses: list) -> dict:
        return _mean_loss(losses)

    def export(self) -> TeacherModel:
        return export_dqn_teacher(
            self.q_network, self.obs_dim, self.num_actions, observation_shape=self.observation_shape
        )


def train_dqn(run: Run, gym_id: str, resume: bool) -> tuple[TeacherModel, int]:
    """Train a DQN teacher for ``run.steps`` environment steps; return it exported and the steps reached.

    See `DqnTrainer` and, for the loop, `kd_rl.teachers.off_policy.OffPolicyTrainer`.
    """
    return DqnTrainer(run, gym_id, resume).train()


def _mean_loss(losses: list) -> dict:
    """The mean loss of a list of training rounds' mean losses (empty: none)."""
    return {"loss": float(np.mean([float(x) for x in losses]))} if losses else {}
