"""Train DQN, PPO and SAC teachers with TF-Agents and export them as Keras 3 models.

This package is the only part of kd_rl that uses TF-Agents 0.19, and with it
the legacy Keras 2 (``tf_keras``); the rest of kd_rl is Keras 3 and imports
it lazily (``kd-rl train-teacher``, ``kd_rl.train_teacher``). Importing it
checks first that TensorFlow's ``tf.keras`` is ``tf_keras`` (see `_compat`).

Modules, one concept each:

* `hyperparams`: per-environment YAML hyperparameters;
* `agents`: DQN, PPO and SAC agents over Dense networks kd_rl holds;
* `envs`: Gymnasium environments as TF-Agents ``PyEnvironment`` objects;
* `replay`: DQN's and SAC's NumPy replay buffer;
* `run`: a run's evaluations, best weights, checkpoints and logs;
* `dqn`, `ppo`, `sac`: the training loops (PPO: discrete or continuous actions);
* `export`: a trained agent as a `kd_rl.models.TeacherModel`;
* `tf_policy`: any Keras policy as a TF-Agents policy;
* `kickstart`: agents whose loss also pulls them towards a teacher (Schmitt et al. 2018);
* `train`: `train_teacher`, the whole pipeline.
"""

from kd_rl.teachers import _compat  # noqa: F401  (first: checks tf.keras before TF-Agents loads)

# isort: split
from kd_rl.teachers.agents import (
    make_actor_network,
    make_critic_network,
    make_dqn_agent,
    make_ppo_agent,
    make_q_network,
    make_sac_actor_network,
    make_sac_agent,
)
from kd_rl.teachers.collect import OffPolicyEnvs, make_training_env
from kd_rl.teachers.hyperparam_tables import ALGORITHMS, load_hyperparameters
from kd_rl.teachers.kickstart import (
    Kickstart,
    KickstartedDdqnAgent,
    KickstartedDqnAgent,
    KickstartedPPOClipAgent,
    KickstartedSacAgent,
)
from kd_rl.teachers.tf_agents_envs import GymnasiumEnvironment, make_batched_env, make_env, make_tf_env
from kd_rl.teachers.tf_policy import KerasGreedyPolicy, as_tf_policy
from kd_rl.teachers.to_keras import export_dqn_teacher, export_ppo_teacher, export_sac_teacher
from kd_rl.teachers.train import train_teacher

__all__ = [
    "ALGORITHMS",
    "GymnasiumEnvironment",
    "KerasGreedyPolicy",
    "Kickstart",
    "KickstartedDdqnAgent",
    "KickstartedDqnAgent",
    "KickstartedPPOClipAgent",
    "KickstartedSacAgent",
    "OffPolicyEnvs",
    "as_tf_policy",
    "export_dqn_teacher",
    "export_ppo_teacher",
    "export_sac_teacher",
    "load_hyperparameters",
    "make_actor_network",
    "make_batched_env",
    "make_critic_network",
    "make_dqn_agent",
    "make_env",
    "make_ppo_agent",
    "make_q_network",
    "make_sac_actor_network",
    "make_sac_agent",
    "make_tf_env",
    "make_training_env",
    "train_teacher",
]
