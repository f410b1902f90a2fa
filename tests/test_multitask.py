"""Multi-task distillation: one student, per-task adapters and heads, a shared trunk."""

import dataclasses
import json

import numpy as np
import pytest

from kd_rl.models import StudentModel, TeacherModel, count_params, load_policy
from kd_rl.multitask import MultiTaskConfig, MultiTaskStudent, distill_multitask, geometric_mean, task_spec

TASKS = [
    {"env_id": "CartPole-v1", "obs_dim": 4, "num_actions": 2},
    {"env_id": "Acrobot-v1", "obs_dim": 6, "num_actions": 3},
    {"env_id": "Pendulum-v1", "obs_dim": 3, "action_low": [-2.0], "action_high": [2.0], "squash": True},
]


def test_task_spec_reads_the_environment():
    assert task_spec("Acrobot-v1") == TASKS[1]
    assert task_spec("Pendulum-v1") == TASKS[2]


def test_parameters_are_shared_and_counted_once():
    student = MultiTaskStudent(TASKS, trunk_units=(32, 16), adapter_units=8)
    trunk = 8 * 32 + 32 + 32 * 16 + 16
    adapters = (4 + 6 + 3) * 8 + 3 * 8
    heads = (16 * 2 + 2) + (16 * 3 + 3) + 2 * (16 * 1 + 1)
    assert count_params(student) == trunk + adapters + heads
    paths = [student.for_task(t["env_id"]) for t in TASKS]
    assert all(isinstance(p, StudentModel) for p in paths)
    assert paths[0].hidden_layers[1] is paths[1].hidden_layers[1] is student.trunk[0]
    assert paths[0].hidden_layers[0] is not paths[1].hidden_layers[0]
    assert paths[2].is_continuous and paths[2].squash


def test_call_and_for_task_agree_and_share_weights(rng):
    student = MultiTaskStudent(TASKS, trunk_units=(16,), adapter_units=8)
    obs = rng.normal(size=(5, 6)).astype(np.float32)
    path = student.for_task("Acrobot-v1")
    np.testing.assert_allclose(student(obs, task="Acrobot-v1"), path(obs))
    np.testing.assert_allclose(student(obs, task=1), path(obs))
    # Moving the trunk moves every task's path: the weights are shared, not copied.
    before = np.asarray(student.for_task("CartPole-v1")(obs[:, :4]))
    student.trunk[0].bias.assign(student.trunk[0].bias + 1.0)
    assert not np.allclose(before, student.for_task("CartPole-v1")(obs[:, :4]))
    with pytest.raises(ValueError, match=r"no task 'MountainCar-v0'; its tasks are \['CartPole-v1'"):
        student.for_task("MountainCar-v0")


def test_one_step_serves_several_tasks_with_one_weighting_rule(rng):
    """make_distill_step with a teacher per task: per-task losses weighted by loss_weight, one update of their sum."""
    import keras
    import tensorflow as tf

    from kd_rl.distill import make_distill_step
    from kd_rl.losses import get_loss, loss_weight

    student = MultiTaskStudent(TASKS, trunk_units=(16,), adapter_units=8)
    teachers = [
        TeacherModel(2, observation_dim=4, hidden_units=8, output_type="q_values"),  # T = 0.01: weight 0.01
        TeacherModel(3, observation_dim=6, hidden_units=8, output_type="logits"),  # T = 1: weight 1
        TeacherModel(observation_dim=3, hidden_units=8, action_low=[-2.0], action_high=[2.0], squash=True),
    ]
    paths = [student.for_task(t["env_id"]) for t in TASKS]
    obs = tuple(rng.normal(size=(2, 16, t["obs_dim"])).astype(np.float32) for t in TASKS)
    before = [v.numpy() for v in student.trainable_variables]
    # The expected first update, by hand: SGD on the sum of the weighted task losses.
    expected_losses, grads = [], {}
    with tf.GradientTape() as tape:
        terms = []
        for teacher, path, x in zip(teachers, paths, obs):
            fn = get_loss("kl", 0.01 if teacher.output_type == "q_values" else 1.0, gaussian=path.is_continuous)
            terms.append(loss_weight(fn) * fn(teacher(x[0]), path(x[0])))
        total = tf.add_n(terms)
    expected_losses = [float(t) for t in terms]
    for v, g in zip(student.trainable_variables, tape.gradient(total, student.trainable_variables)):
        grads[id(v)] = g.numpy()
    assert [loss_weight(get_loss("kl", t)) for t in (0.01, 1.0, 4.0)] == pytest.approx([0.01, 1.0, 16.0])

    step = make_distill_step(teachers, paths, keras.optimizers.SGD(0.1))
    assert step.tasks == 3 and step.replicas == 1
    losses = step(tuple(x[0] for x in obs)).numpy()
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-4)
    for b, v in zip(before, student.trainable_variables):  # the shared trunk updated once, by the summed gradient
        np.testing.assert_allclose(v.numpy(), b - 0.1 * grads[id(v)], rtol=1e-4, atol=1e-6)
    assert step(obs).shape == (2, 3)  # a stack of two updates: [steps, tasks]
    with pytest.raises(ValueError, match="one batch of observations per task: 3, got 2"):
        step(obs[:2])
    with pytest.raises(ValueError, match="sequences of the same length"):
        make_distill_step(teachers, paths[:2], keras.optimizers.SGD(0.1))


def test_save_and_load_round_trip_in_safe_mode(tmp_path, rng):
    student = MultiTaskStudent(TASKS, trunk_units=(16,), adapter_units=8)
    student.save(tmp_path / "m.keras")
    again = load_policy(tmp_path / "m.keras")
    assert isinstance(again, MultiTaskStudent) and again.task_ids == student.task_ids
    for k, task in enumerate(TASKS):
        obs = rng.normal(size=(4, task["obs_dim"])).astype(np.float32)
        np.testing.assert_allclose(np.asarray(again(obs, task=k)), np.asarray(student(obs, task=k)), rtol=1e-6)
    # One task's path saves as an ordinary StudentModel.
    student.for_task("Pendulum-v1").save(tmp_path / "p.keras")
    single = load_policy(tmp_path / "p.keras")
    assert type(single) is StudentModel and single.is_continuous


def test_bad_tasks_are_refused():
    with pytest.raises(ValueError, match="at least one task"):
        MultiTaskStudent([])
    with pytest.raises(ValueError, match=r"repeated: \['CartPole-v1'\]"):
        MultiTaskStudent([TASKS[0], TASKS[0]])
    with pytest.raises(ValueError, match="repeated"):
        MultiTaskConfig(env_ids=("CartPole-v1", "CartPole-v1"))


def test_geometric_mean_clips_at_zero():
    assert geometric_mean([1.0, 0.25]) == pytest.approx(0.5)
    assert geometric_mean([1.0, -0.3]) == 0.0
    assert geometric_mean([0.9, None]) is None


def _random_teacher(task, hidden=64):
    if "num_actions" in task:
        return TeacherModel(task["num_actions"], hidden_units=hidden, observation_dim=task["obs_dim"])
    return TeacherModel(
        hidden_units=hidden, observation_dim=task["obs_dim"], action_low=task["action_low"],
        action_high=task["action_high"],
    )  # fmt: skip


def test_distill_multitask_learns_every_task_and_writes_a_run(cartpole_teacher, tmp_path):
    teachers = [cartpole_teacher, _random_teacher(TASKS[1]), _random_teacher(TASKS[2])]
    env_ids = tuple(t["env_id"] for t in TASKS)
    config = MultiTaskConfig(
        env_ids=env_ids, trunk_units=(32,), adapter_units=32, steps=1500, collect_per_round=500,
        updates_per_round=100, eval_every=500, curve_episodes=2, eval_episodes=3, learning_rate=3e-3,
    )  # fmt: skip
    student, metrics = distill_multitask(teachers, config, out_dir=tmp_path / "run", progress=False)
    assert [t["env_id"] for t in metrics["tasks"]] == list(env_ids)
    cartpole, acrobot, pendulum = metrics["tasks"]
    assert cartpole["student_mean_return"] > 150 and cartpole["agreement"] > 0.8
    assert acrobot["agreement"] > 0.6 and pendulum["action_error"] < 0.2
    expected = geometric_mean([t["normalised_score"] for t in metrics["tasks"]])
    assert metrics["geometric_mean_score"] == expected
    assert metrics["student_params"] == count_params(student)
    header = (tmp_path / "run" / "curve.csv").read_text().splitlines()[0]
    assert header == "env_steps,CartPole-v1,Acrobot-v1,Pendulum-v1,loss,train_seconds"
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["tasks"][0]["env_id"] == "CartPole-v1"
    assert isinstance(load_policy(tmp_path / "run" / "student.keras"), MultiTaskStudent)
    # TensorBoard: every task's curve and the loss, as the curve.csv has them.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["tensors"]) | set(events.Tags()["scalars"])
    assert {"distill/loss", *(f"distill/{e}/mean_return" for e in env_ids)} <= tags, tags


def test_a_teacher_that_does_not_fit_its_task_writes_nothing(cartpole_teacher, tmp_path):
    config = MultiTaskConfig(env_ids=("CartPole-v1", "Acrobot-v1"), steps=100)
    with pytest.raises(ValueError, match="teacher of Acrobot-v1 expects 4 observation features"):
        distill_multitask([cartpole_teacher, cartpole_teacher], config, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- Command line ---------------------------------------------------------------------------------


def _error(capsys, argv, match):
    from kd_rl.cli import main

    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err and match in err, err


def test_cli_multitask_distil_evaluate_export(cartpole_teacher_path, tmp_path, capsys):
    from kd_rl.cli import main

    acrobot = tmp_path / "acrobot.keras"
    _random_teacher(TASKS[1]).save(acrobot)
    out = tmp_path / "run"
    argv = ["distill", "--teacher", str(cartpole_teacher_path), "--env", "CartPole-v1", "--teacher", str(acrobot)]
    argv += ["--env", "Acrobot-v1", "--out", str(out), "--hidden", "16", "--adapter", "16", "--steps", "500"]
    assert main([*argv, "--eval-episodes", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "CartPole-v1: teacher" in printed and "geometric mean score" in printed
    student = out / "student.keras"
    assert main(["evaluate", str(student), "--env", "Acrobot-v1", "--episodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 2
    export = ["export", str(student), "--env", "CartPole-v1", "--format", "numpy", "--out", str(tmp_path / "c.npz")]
    assert main(export) == 0
    from kd_rl.policies import NumpyPolicy

    assert NumpyPolicy.load(tmp_path / "c.npz").num_actions == 2


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--teacher", "CartPole-v1-dqn"], "give one --env per --teacher, in pairs: got 2 --teacher and 1 --env"),
        (["--teacher", "CartPole-v1-dqn", "--env", "CartPole-v1"], "repeated: ['CartPole-v1']"),
        (["--teacher", "CartPole-v1-dqn", "--env", "Acrobot-v1"], "teacher of Acrobot-v1 expects 4 observation"),
        (["--teacher", "Acrobot-v1-dqn", "--env", "Acrobot-v1", "--resume"], "nothing to resume"),
        (["--teacher", "CartPole-v1-dqn", "--env", "LunarLander-v3", "--actors", "2"], "--actors: not available"),
    ],
)
def test_cli_multitask_bad_input(extra, match, cartpole_teacher_path, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["distill", "--teacher", str(cartpole_teacher_path), "--env", "CartPole-v1", "--out", str(out), *extra]
    _error(capsys, argv, match)
    assert not out.exists()


def test_cli_evaluate_needs_a_task_of_the_student(tmp_path, capsys):
    path = tmp_path / "m.keras"
    MultiTaskStudent(TASKS[:2], trunk_units=(8,), adapter_units=8).save(path)
    _error(capsys, ["evaluate", str(path), "--env", "Pendulum-v1"], "no task 'Pendulum-v1'")
    _error(
        capsys, ["export", str(path), "--format", "numpy", "--out", str(tmp_path / "x.npz")], "name its task with --env"
    )
    assert not (tmp_path / "x.npz").exists()


def test_a_multitask_run_resumes_from_its_checkpoint_after_an_interruption(cartpole_teacher, tmp_path, monkeypatch):
    """Interrupted in its third round (after the checkpoint at 1,000 steps), the run resumes and finishes."""
    from kd_rl import multitask
    from kd_rl.data import Collector
    from kd_rl.errors import ResumeRefused

    config = MultiTaskConfig(
        env_ids=("CartPole-v1", "Acrobot-v1"), trunk_units=(16,), adapter_units=8, steps=2000,
        checkpoint_every=1000, eval_every=1000, curve_episodes=2, eval_episodes=3,
    )  # fmt: skip
    acrobot = load_policy("Acrobot-v1-dqn")
    out = tmp_path / "run"
    real_collect, calls = Collector.collect, []

    def dying_collect(self, n):
        calls.append(n)
        if len(calls) == 5:  # round 3's first task: the checkpoint of round 2 (1,000 steps) is written
            raise KeyboardInterrupt
        return real_collect(self, n)

    monkeypatch.setattr(Collector, "collect", dying_collect)
    with pytest.raises(KeyboardInterrupt):
        multitask.distill_multitask([cartpole_teacher, acrobot], config, out_dir=out, progress=False)
    monkeypatch.setattr(Collector, "collect", real_collect)
    assert (out / "checkpoint.npz").exists() and not (out / "metrics.json").exists()
    kept = (out / "checkpoint.npz").read_bytes()

    # Another teacher for a task, or other settings, are refused and change nothing.
    zoo_cartpole = load_policy("CartPole-v1-dqn")  # fits CartPole-v1 too, but is another teacher
    with pytest.raises(ResumeRefused, match="different teacher"):
        multitask.distill_multitask([zoo_cartpole, acrobot], config, out_dir=out, progress=False, resume=True)
    other = dataclasses.replace(config, seed=1)
    with pytest.raises(ResumeRefused, match="seed=0 \\(now 1\\)"):
        multitask.distill_multitask([cartpole_teacher, acrobot], other, out_dir=out, progress=False, resume=True)
    assert (out / "checkpoint.npz").read_bytes() == kept

    _, metrics = multitask.distill_multitask(
        [cartpole_teacher, acrobot], config, out_dir=out, progress=False, resume=True
    )
    assert metrics["resumed_from_env_steps"] == 1000 and metrics["checkpoint_every"] == 1000
    assert [t["labelled_states"] for t in metrics["tasks"]] == [2000, 2000]
    curve = (out / "curve.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in curve[1:]] == ["1000", "2000"]  # the curve point before the stop is kept
    assert {"student.keras", "metrics.json"} <= {p.name for p in out.iterdir()}
