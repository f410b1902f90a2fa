"""kd_rl: knowledge distillation for reinforcement learning in TensorFlow/Keras.

A large teacher policy (TF-Agents DQN or PPO on a Gymnasium environment) is
distilled into a small Keras student that acts as well.
"""

from kd_rl.distill import Distiller, make_distill_step
from kd_rl.losses import (
    KLDistillationLoss,
    MSEDistillationLoss,
    NLLDistillationLoss,
    get_loss,
    kl_divergence_loss,
    mse_loss,
    nll_loss,
)
from kd_rl.models import PolicyModel, StudentModel, TeacherModel, count_params

__version__ = "0.1.0"

__all__ = [
    "Distiller",
    "KLDistillationLoss",
    "MSEDistillationLoss",
    "NLLDistillationLoss",
    "PolicyModel",
    "StudentModel",
    "TeacherModel",
    "count_params",
    "get_loss",
    "kl_divergence_loss",
    "make_distill_step",
    "mse_loss",
    "nll_loss",
]
