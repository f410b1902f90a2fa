"""The article's example, reproduced and corrected.

The article builds a ``TeacherModel`` (100 hidden units) and a
``StudentModel`` (50) on 10 input features and 10 outputs and writes a
``tf.function`` distillation step. Its code has three slips, each fixed here:

1. The loss ignores the teacher: ``loss_fn(targets, student_predictions)``
   trains on labels only, so nothing is distilled. Here the student learns
   from the teacher's temperature-softened outputs alone.
2. The models end in ``softmax`` yet the loss says ``from_logits=True``, so a
   softmax is applied twice and the gradients shrink. Here the models output
   logits and the softmax happens inside the loss, at temperature T.
3. The labels are random (``np.random.randint``), so the teacher has nothing
   to teach. Here the teacher is first fitted on a fixed synthetic task (the
   label is the argmax of a fixed random linear map of the features).

Run ``python -m kd_rl.examples.article`` (or ``kd-rl article``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import keras
import numpy as np

from kd_rl.distill import make_distill_step
from kd_rl.losses import kl_divergence_loss
from kd_rl.models import StudentModel, TeacherModel

NUM_FEATURES = 10
NUM_CLASSES = 10


@dataclass
class ArticleResult:
    """What the example measured."""

    teacher_params: int
    student_params: int
    teacher_accuracy: float
    student_accuracy_before: float
    student_accuracy_after: float
    agreement_before: float
    agreement_after: float
    kl_before: float
    kl_after: float


def synthetic_task(num_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features ``float32 [n, 10]`` and labels ``int64 [n]`` of a fixed task.

    The map ``W`` is drawn from a fixed seed, so every call poses the same
    task; ``seed`` only picks which samples are drawn.
    """
    w = np.random.default_rng(12345).normal(size=(NUM_FEATURES, NUM_CLASSES)).astype(np.float32)
    x = np.random.default_rng(seed).normal(size=(num_samples, NUM_FEATURES)).astype(np.float32)
    return x, np.argmax(x @ w, axis=1)


def _agreement(a: keras.Model, b: keras.Model, x: np.ndarray) -> float:
    return float(np.mean(a.act(x) == b.act(x)))


def run(
    temperature: float = 4.0,
    teacher_epochs: int = 30,
    distill_steps: int = 1500,
    batch_size: int = 128,
    seed: int = 0,
    verbose: bool = True,
) -> ArticleResult:
    """Fit the teacher, distil it into the student, and report the numbers."""
    keras.utils.set_random_seed(seed)
    say = print if verbose else (lambda *a, **k: None)

    x_train, y_train = synthetic_task(8000, seed=seed + 1)
    x_test, y_test = synthetic_task(2000, seed=seed + 2)

    teacher = TeacherModel(num_actions=NUM_CLASSES, observation_dim=NUM_FEATURES)
    student = StudentModel(num_actions=NUM_CLASSES, observation_dim=NUM_FEATURES)
    say(f"teacher: {teacher.count_params()} parameters (hidden {teacher.hidden_units})")
    say(f"student: {student.count_params()} parameters (hidden {student.hidden_units})")

    # 1. The teacher learns the task from labels (from logits: the model has no softmax).
    teacher.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    teacher.fit(x_train, y_train, epochs=teacher_epochs, batch_size=batch_size, verbose=0)
    teacher_acc = float(np.mean(teacher.act(x_test) == y_test))
    say(f"teacher test accuracy: {teacher_acc:.3f}")

    def kl_on_test() -> float:
        return float(kl_divergence_loss(teacher(x_test), student(x_test), temperature))

    before = dict(
        acc=float(np.mean(student.act(x_test) == y_test)), agree=_agreement(teacher, student, x_test), kl=kl_on_test()
    )

    # 2. The student learns from the teacher's softened outputs only: no labels.
    step = make_distill_step(teacher, student, keras.optimizers.Adam(1e-3), loss="kl", temperature=temperature)
    rng = np.random.default_rng(seed)
    for i in range(distill_steps):
        batch = x_train[rng.integers(0, len(x_train), size=batch_size)]
        loss = step(batch)
        if verbose and (i + 1) % max(1, distill_steps // 5) == 0:
            say(f"distill step {i + 1:5d}  w(T)*KL = {float(loss):.4f}")  # w(T) = T^2 from T = 1 up, T below

    result = ArticleResult(
        teacher_params=teacher.count_params(),
        student_params=student.count_params(),
        teacher_accuracy=teacher_acc,
        student_accuracy_before=before["acc"],
        student_accuracy_after=float(np.mean(student.act(x_test) == y_test)),
        agreement_before=before["agree"],
        agreement_after=_agreement(teacher, student, x_test),
        kl_before=before["kl"],
        kl_after=kl_on_test(),
    )
    say("")
    say(f"{'':24s}{'before':>10s}{'after':>10s}")
    say(f"{'student-teacher agreement':24s}{result.agreement_before:10.3f}{result.agreement_after:10.3f}")
    say(f"{'student test accuracy':24s}{result.student_accuracy_before:10.3f}{result.student_accuracy_after:10.3f}")
    say(f"{'T^2*KL(teacher||student)':24s}{result.kl_before:10.4f}{result.kl_after:10.4f}")
    return result


def main(argv: list[str] | None = None) -> ArticleResult:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--distill-steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    return run(temperature=args.temperature, distill_steps=args.distill_steps, seed=args.seed)


if __name__ == "__main__":
    main()


__all__ = ["ArticleResult", "run", "synthetic_task"]
