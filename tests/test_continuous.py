"""Continuous (Box) actions: Gaussian policies, their losses, collection, evaluation, distillation and export."""

import json

import numpy as np
import pytest
import tensorflow as tf

from kd_rl import losses
from kd_rl.models import StudentModel, TeacherModel, gaussian_action, load_policy, split_gaussian

LOW, HIGH = np.array([-2.0], np.float32), np.array([2.0], np.float32)


def pendulum_model(cls=TeacherModel, **kwargs):
    kwargs.setdefault("hidden_units", 32)
    return cls(action_low=LOW, action_high=HIGH, observation_dim=3, **kwargs)


def gaussians(rng, shape, d):
    mean = rng.normal(scale=2.0, size=(*shape, d))
    log_std = rng.uniform(-2.0, 1.0, size=(*shape, d))
    return np.concatenate([mean, log_std], -1).astype(np.float32)


# --- NumPy references, written from the formulas ---------------------------------------------


def np_gaussian_kl(t, s, temperature=1.0):
    d = t.shape[-1] // 2
    mu_t, sd_t = t[..., :d].astype(np.float64), np.exp(t[..., d:].astype(np.float64)) * temperature
    mu_s, sd_s = s[..., :d].astype(np.float64), np.exp(s[..., d:].astype(np.float64))
    kl = np.log(sd_s / sd_t) + (sd_t**2 + (mu_t - mu_s) ** 2) / (2 * sd_s**2) - 0.5
    return kl.sum(-1).mean()


def np_gaussian_decoupled_kl(t, s, temperature=1.0):
    """KL(N(mu_t, s_t^2) || N(mu_s, s_t^2)) + KL(N(mu_t, s_t^2) || N(mu_t, s_s^2)), MPO's split of the KL."""
    d = t.shape[-1] // 2
    mu_t, sd_t = t[..., :d].astype(np.float64), np.exp(t[..., d:].astype(np.float64)) * temperature
    mu_s, sd_s = s[..., :d].astype(np.float64), np.exp(s[..., d:].astype(np.float64))
    means = (mu_t - mu_s) ** 2 / (2 * sd_t**2)
    stds = np.log(sd_s / sd_t) + sd_t**2 / (2 * sd_s**2) - 0.5
    return (means + stds).sum(-1).mean()


def np_gaussian_nll(t, s):
    d = t.shape[-1] // 2
    a, mu, sd = t[..., :d].astype(np.float64), s[..., :d].astype(np.float64), np.exp(s[..., d:].astype(np.float64))
    return (0.5 * ((a - mu) / sd) ** 2 + np.log(sd) + 0.5 * np.log(2 * np.pi)).sum(-1).mean()


def np_gaussian_mse(t, s):
    d = t.shape[-1] // 2
    return ((t[..., :d].astype(np.float64) - s[..., :d]) ** 2).mean()


@pytest.mark.parametrize("shape,d", [((1,), 1), ((16,), 3), ((4, 5), 2)])
@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_gaussian_losses_match_numpy(shape, d, temperature, rng):
    t, s = gaussians(rng, shape, d), gaussians(rng, shape, d)
    np.testing.assert_allclose(
        float(losses.gaussian_kl_loss(t, s, temperature)), np_gaussian_kl(t, s, temperature), rtol=1e-5
    )
    exact = losses.get_loss("kl", temperature, gaussian=True, gaussian_kl="exact")
    np.testing.assert_allclose(float(exact(t, s)), np_gaussian_kl(t, s, temperature), rtol=1e-5)
    decoupled = np_gaussian_decoupled_kl(t, s, temperature)
    np.testing.assert_allclose(float(losses.gaussian_kl_loss(t, s, temperature, decoupled=True)), decoupled, rtol=1e-5)
    default = losses.get_loss("kl", temperature, gaussian=True)  # distillation's default form
    assert default.decoupled
    np.testing.assert_allclose(float(default(t, s)), decoupled, rtol=1e-5)
    np.testing.assert_allclose(float(losses.gaussian_nll_loss(t, s)), np_gaussian_nll(t, s), rtol=1e-5)
    np.testing.assert_allclose(float(losses.get_loss("nll", gaussian=True)(t, s)), np_gaussian_nll(t, s), rtol=1e-5)
    np.testing.assert_allclose(float(losses.gaussian_mse_loss(t, s)), np_gaussian_mse(t, s), rtol=1e-5)
    np.testing.assert_allclose(float(losses.get_loss("mse", gaussian=True)(t, s)), np_gaussian_mse(t, s), rtol=1e-5)


def test_gaussian_kl_gradient_matches_the_formula(rng):
    # dKL/dmu_s = (mu_s - mu_t) / s_s^2 ; dKL/dlog s_s = 1 - ((T s_t)^2 + (mu_t - mu_s)^2) / s_s^2, per sample / batch.
    t, s = gaussians(rng, (8,), 2), gaussians(rng, (8,), 2)
    temperature = 1.5
    s_var = tf.Variable(s)
    with tf.GradientTape() as tape:
        value = losses.gaussian_kl_loss(t, s_var, temperature)
    grad = tape.gradient(value, s_var).numpy()
    mu_t, sd_t = t[:, :2].astype(np.float64), np.exp(t[:, 2:].astype(np.float64)) * temperature
    mu_s, sd_s = s[:, :2].astype(np.float64), np.exp(s[:, 2:].astype(np.float64))
    expected = np.concatenate([(mu_s - mu_t) / sd_s**2, 1 - (sd_t**2 + (mu_t - mu_s) ** 2) / sd_s**2], -1) / 8
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


def test_decoupled_gaussian_kl_pulls_the_mean_at_the_teachers_std(rng):
    # d/dmu_s = (mu_s - mu_t) / (T s_t)^2 whatever the student's std; d/dlog s_s = 1 - (T s_t)^2 / s_s^2.
    t, s = gaussians(rng, (8,), 2), gaussians(rng, (8,), 2)
    temperature = 1.5
    s_var = tf.Variable(s)
    with tf.GradientTape() as tape:
        value = losses.gaussian_kl_loss(t, s_var, temperature, decoupled=True)
    grad = tape.gradient(value, s_var).numpy()
    mu_t, sd_t = t[:, :2].astype(np.float64), np.exp(t[:, 2:].astype(np.float64)) * temperature
    mu_s, sd_s = s[:, :2].astype(np.float64), np.exp(s[:, 2:].astype(np.float64))
    expected = np.concatenate([(mu_s - mu_t) / sd_t**2, 1 - sd_t**2 / sd_s**2], -1) / 8
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)
    # Equal to the exact KL once the student's std matches the (tempered) target's, and >= 0 always.
    matched = s.copy()
    matched[:, 2:] = t[:, 2:] + np.log(temperature)
    np.testing.assert_allclose(
        float(losses.gaussian_kl_loss(t, matched, temperature, decoupled=True)),
        float(losses.gaussian_kl_loss(t, matched, temperature)),
        rtol=1e-5,
    )
    assert float(losses.gaussian_kl_loss(t, s, temperature, decoupled=True)) > 0
    assert abs(float(losses.gaussian_kl_loss(t, t, decoupled=True))) < 1e-5
    with pytest.raises(ValueError, match="gaussian_kl must be one of decoupled, exact, got 'approximate'"):
        losses.get_loss("kl", gaussian=True, gaussian_kl="approximate")


def test_gaussian_kl_is_zero_for_identical_policies_and_temperature_widens_the_target(rng):
    t = gaussians(rng, (10,), 2)
    assert abs(float(losses.gaussian_kl_loss(t, t))) < 1e-5
    # With T = 2 the target's std doubles: the student that matches it has log_std + log 2, and KL 0 again.
    wider = t.copy()
    wider[:, 2:] += np.log(2.0)
    assert abs(float(losses.gaussian_kl_loss(t, wider, temperature=2.0))) < 1e-5
    assert float(losses.gaussian_kl_loss(t, t, temperature=2.0)) > 0.5


def test_gaussian_losses_refuse_odd_outputs():
    with pytest.raises(ValueError, match="even size"):
        losses.gaussian_kl_loss(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32))


# --- Models --------------------------------------------------------------------------------------


@pytest.mark.parametrize("squash", [True, False])
@pytest.mark.parametrize("state_dependent_std", [True, False])
def test_gaussian_model_outputs_act_and_save(squash, state_dependent_std, tmp_path, rng):
    model = pendulum_model(StudentModel, squash=squash, state_dependent_std=state_dependent_std)
    if not state_dependent_std:
        model.log_std.assign([-0.7])
    obs = rng.normal(size=(64, 3)).astype(np.float32) * 3
    out = model(obs).numpy()
    assert out.shape == (64, 2) and model.output_type == "gaussian" and model.action_dim == 1
    mean, log_std = split_gaussian(out)
    if not state_dependent_std:
        np.testing.assert_allclose(log_std, -0.7, rtol=1e-6)
    actions = model.act(obs)
    expected = 2.0 * np.tanh(mean) if squash else np.clip(mean, -2.0, 2.0)
    np.testing.assert_allclose(actions, expected, rtol=1e-5, atol=1e-6)
    assert actions.dtype == np.float32 and np.all(np.abs(actions) <= 2.0)
    model.save(tmp_path / "m.keras")
    again = load_policy(tmp_path / "m.keras")
    assert (again.squash, again.state_dependent_std) == (squash, state_dependent_std)
    np.testing.assert_allclose(again(obs).numpy(), out, rtol=1e-6)


def test_gaussian_action_matches_tf_agents_squash_to_spec():
    # SquashToSpecNormal's mode: means_spec + magnitudes * tanh(mean), with (high + low)/2 and (high - low)/2.
    low, high = np.array([-1.0, 0.0]), np.array([3.0, 0.5])
    mean = np.array([[0.3, -2.0], [5.0, 0.1]], np.float32)
    expected = (high + low) / 2 + (high - low) / 2 * np.tanh(mean)
    np.testing.assert_allclose(gaussian_action(mean, low, high, squash=True), expected, rtol=1e-6)
    np.testing.assert_allclose(gaussian_action(tf.constant(mean), low, high, True).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(gaussian_action(mean, low, high, squash=False), np.clip(mean, low, high))


def test_log_std_is_clipped_to_its_range():
    model = pendulum_model(StudentModel, log_std_range=(-1.0, 0.5))
    model.log_std_layer.bias.assign([10.0])
    _, log_std = split_gaussian(model(np.zeros((2, 3), np.float32)).numpy())
    np.testing.assert_allclose(log_std, 0.5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(action_low=[1.0], action_high=[0.0]), "action_low must be < action_high"),
        (dict(action_low=[0.0], action_high=[np.inf]), "finite"),
        (dict(action_low=[0.0, 0.0], action_high=[1.0]), "same number"),
        (dict(action_low=[0.0]), "both action_low and action_high"),
        (dict(num_actions=2, action_low=[0.0], action_high=[1.0]), "not both"),
        (dict(num_actions=2, output_type="gaussian"), "needs action_low"),
        (dict(action_low=[0.0], action_high=[1.0], output_type="logits"), "output_type is 'gaussian'"),
        (dict(action_low=[0.0], action_high=[1.0], log_std_range=(1.0, 0.0)), "log_std_range"),
    ],
)
def test_bad_continuous_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StudentModel(observation_dim=3, **kwargs)


# --- Environments, evaluation, collection ---------------------------------------------------


def test_env_spec_and_env_group_take_box_actions():
    from kd_rl.envs import EnvGroup, env_dims, env_spec

    spec = env_spec("Pendulum-v1")
    assert spec.is_continuous and spec.action_dim == 1 and spec.output_size == 2 and spec.obs_dim == 3
    np.testing.assert_allclose(spec.action_range, [4.0])
    with pytest.raises(ValueError, match="continuous 1-dimensional action"):
        env_dims("Pendulum-v1")
    with EnvGroup("Pendulum-v1", 2) as envs:
        envs.reset([0, 1])
        # Out-of-bounds actions are clipped as TF-Agents and SB3 clip Gaussian samples: 5.0 acts as 2.0.
        obs_a, rew_a, _, _ = envs.step(np.array([[5.0], [2.0]], np.float32))
        assert rew_a.shape == (2,)
    with EnvGroup("Pendulum-v1", 2) as envs:
        envs.reset([0, 0])
        obs_b, _, _, _ = envs.step(np.array([[5.0], [2.0]], np.float32))
        np.testing.assert_allclose(obs_b[0], obs_b[1])


def test_run_episodes_measures_continuous_agreement_against_numpy():
    from kd_rl.evaluate import AGREEMENT_TOLERANCE, run_episodes

    student, teacher = pendulum_model(StudentModel), pendulum_model()
    stats = run_episodes(student, "Pendulum-v1", episodes=2, seed=0, reference=teacher, temperature=1.0, max_steps=20)
    # Recompute on the same states: the student's own trajectory, replayed.
    from kd_rl.envs import EnvGroup
    from kd_rl.evaluate import episode_seeds

    errors, agree, kl = [], [], []
    with EnvGroup("Pendulum-v1", 2) as envs:
        obs = envs.reset(episode_seeds(0, 2))
        for _ in range(20):
            a_s, a_t = student.act(obs), teacher.act(obs)
            err = np.abs(a_s - a_t) / 4.0
            errors.append(err.mean(-1))
            agree.append(np.all(err <= AGREEMENT_TOLERANCE, -1))
            kl.append(
                [np_gaussian_kl(teacher(obs[i : i + 1]).numpy(), student(obs[i : i + 1]).numpy()) for i in range(2)]
            )
            obs, *_ = envs.step(a_s)
    assert stats.action_error == pytest.approx(np.mean(errors), rel=1e-4)
    assert stats.agreement == pytest.approx(np.mean(agree))
    assert stats.kl == pytest.approx(np.mean(kl), rel=1e-3)
    same = run_episodes(teacher, "Pendulum-v1", episodes=2, seed=0, reference=teacher, max_steps=20)
    assert same.agreement == 1.0 and same.action_error == 0.0


def test_random_policy_for_a_box_space_stays_in_bounds():
    from kd_rl.evaluate import RandomPolicy, random_policy_return

    policy = RandomPolicy.for_env("Pendulum-v1", seed=0)
    actions = policy(np.zeros((1000, 3)))
    assert actions.shape == (1000, 1) and actions.min() >= -2.0 and actions.max() <= 2.0 and actions.std() > 1.0
    assert random_policy_return("Pendulum-v1", episodes=3) < -500  # a random torque never holds it up


@pytest.mark.parametrize("mode", ["teacher", "student", "mixed"])
def test_collector_labels_box_states_with_the_teachers_gaussian(mode):
    from kd_rl.data import Collector

    teacher, student = pendulum_model(), pendulum_model(StudentModel, hidden_units=8)
    collector = Collector("Pendulum-v1", teacher, student, mode=mode, num_envs=3, total_steps=60)
    try:
        obs, labels = collector.collect(60)
    finally:
        collector.close()
    assert obs.shape == (60, 3) and labels.shape == (60, 2)
    np.testing.assert_allclose(labels, teacher(obs).numpy(), rtol=1e-5, atol=1e-6)


def test_sampled_actions_differ_from_deterministic_ones_and_need_a_box_space(cartpole_teacher):
    from kd_rl.data import Collector

    teacher = pendulum_model()
    teacher.log_std_layer.bias.assign([0.0])  # std around 1: samples spread
    runs = {}
    for sample in (False, True):
        collector = Collector("Pendulum-v1", teacher, mode="teacher", num_envs=1, seed=3, sample_actions=sample)
        try:
            runs[sample], _ = collector.collect(30)
        finally:
            collector.close()
    assert not np.allclose(runs[False], runs[True])
    with pytest.raises(ValueError, match="sample_actions needs continuous actions"):
        Collector("CartPole-v1", cartpole_teacher, mode="teacher", sample_actions=True)


# --- Distillation -------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["kl", "mse", "nll"])
def test_distill_step_moves_the_student_towards_a_gaussian_teacher(loss, rng):
    import keras

    from kd_rl.distill import make_distill_step

    teacher, student = pendulum_model(), pendulum_model(StudentModel, hidden_units=32)
    obs = rng.uniform(-1, 1, size=(256, 3)).astype(np.float32) * [1, 1, 8]
    step = make_distill_step(teacher, student, keras.optimizers.Adam(1e-2), loss=loss)
    error = lambda: np.abs(student.act(obs) - teacher.act(obs)).mean()  # noqa: E731
    before = error()
    for _ in range(200):
        step(obs)
    assert error() < 0.3 * before


def test_distiller_fit_on_a_gaussian_teacher_reports_kl_and_agreement(rng):
    import keras

    from kd_rl.distill import Distiller

    teacher, student = pendulum_model(), pendulum_model(StudentModel, hidden_units=32)
    obs = rng.uniform(-1, 1, size=(512, 3)).astype(np.float32) * [1, 1, 8]
    distiller = Distiller(student, teacher)
    distiller.compile(keras.optimizers.Adam(1e-2))
    history = distiller.fit(obs, epochs=15, batch_size=64, verbose=0).history
    assert history["kl"][-1] < 0.2 * history["kl"][0]
    assert history["agreement"][-1] > history["agreement"][0]
    with pytest.raises(ValueError, match="student_loss"):
        distiller.fit(obs, np.zeros((512, 1), np.float32), epochs=1, verbose=0)


@pytest.mark.parametrize(
    "student_kwargs,match",
    [
        (dict(num_actions=2), "same kind of action space"),
        (dict(action_low=[-1.0], action_high=[1.0]), "share action bounds"),
        (dict(action_low=LOW, action_high=HIGH, squash=False), "share action bounds and squashing"),
        (dict(action_low=[-2.0, -2.0], action_high=[2.0, 2.0]), "same action_dim"),
    ],
)
def test_mismatched_teacher_and_student_are_refused(student_kwargs, match):
    from kd_rl.distill import check_compatible

    with pytest.raises(ValueError, match=match):
        check_compatible(pendulum_model(), StudentModel(observation_dim=3, hidden_units=4, **student_kwargs))


def test_distill_policy_on_pendulum_writes_a_continuous_student(tmp_path):
    from kd_rl.distill import DistillConfig, distill_policy

    teacher = pendulum_model(hidden_units=64)
    config = DistillConfig(
        env_id="Pendulum-v1", steps=1500, hidden_units=16, eval_every=500, curve_episodes=2, eval_episodes=3,
        collect_per_round=250, updates_per_round=50, sample_actions=True, state_dependent_std=False,
    )  # fmt: skip
    student, metrics = distill_policy(teacher, config, out_dir=tmp_path / "run", progress=False)
    assert student.is_continuous and not student.state_dependent_std and student.squash == teacher.squash
    assert metrics["teacher_outputs"] == "gaussian" and metrics["temperature"] == 1.0
    assert 0.0 <= metrics["agreement"] <= 1.0 and 0.0 <= metrics["action_error"] < 0.5
    assert metrics["kl"] is not None and metrics["random_mean_return"] < 0
    again = load_policy(tmp_path / "run" / "student.keras")
    assert again.is_continuous and again.action_dim == 1


def test_distill_policy_refuses_a_discrete_teacher_on_a_box_env(cartpole_teacher, tmp_path):
    from kd_rl.distill import DistillConfig, distill_policy

    with pytest.raises(ValueError, match="discrete-action policy but Pendulum-v1 has a continuous"):
        distill_policy(cartpole_teacher, DistillConfig(env_id="Pendulum-v1"), out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- Export ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("squash", [True, False])
def test_exports_give_the_deterministic_action(squash, tmp_path, rng):
    from kd_rl.export import export_model
    from kd_rl.policies import load_any_policy

    model = pendulum_model(StudentModel, hidden_units=16, squash=squash)
    obs = rng.uniform(-1, 1, size=(200, 3)).astype(np.float32) * [1, 1, 8]
    for fmt, name, tol in (("tflite", "a.tflite", 1e-5), ("numpy", "a.npz", 1e-5), ("tflite-int8", "b.tflite", 0.2)):
        policy = load_any_policy(export_model(model, fmt, tmp_path / name, env_id="Pendulum-v1"))
        assert policy.is_continuous and policy.action_dim == 1
        got = policy(obs)
        assert got.shape == (200, 1)
        # int8: one quantisation step of the output and the activations; the mean error is what matters.
        assert np.abs(got - model.act(obs)).mean() < tol
        np.testing.assert_allclose(policy.act(obs), got)


def test_tf_agents_policy_wrapper_and_policy_saver_take_a_continuous_student(tmp_path, rng):
    from tf_agents.policies import policy_saver
    from tf_agents.specs import tensor_spec
    from tf_agents.trajectories import time_step as ts

    from kd_rl.policies import as_tf_policy

    student = pendulum_model(StudentModel, hidden_units=8)
    time_step_spec = ts.time_step_spec(tensor_spec.TensorSpec([3], tf.float32, "observation"))
    action_spec = tensor_spec.BoundedTensorSpec([1], tf.float32, -2.0, 2.0)
    policy = as_tf_policy(student, time_step_spec, action_spec)
    obs = rng.uniform(-1, 1, size=(16, 3)).astype(np.float32) * [1, 1, 8]
    step = ts.restart(tf.constant(obs, tf.float32), batch_size=16)
    np.testing.assert_allclose(policy.action(step).action.numpy(), student.act(obs), rtol=1e-6)
    policy_saver.PolicySaver(policy, batch_size=None).save(str(tmp_path / "policy"))
    loaded = tf.saved_model.load(str(tmp_path / "policy"))
    np.testing.assert_allclose(loaded.action(step).action.numpy(), student.act(obs), rtol=1e-6)
    wrong = tensor_spec.BoundedTensorSpec([1], tf.float32, -1.0, 1.0)
    with pytest.raises(ValueError, match="the model acts in"):
        as_tf_policy(student, time_step_spec, wrong)


# --- Command line ---------------------------------------------------------------------------------


def test_cli_distills_evaluates_and_exports_a_continuous_student(tmp_path, capsys):
    from kd_rl.cli import main

    teacher_path = tmp_path / "teacher.keras"
    pendulum_model(hidden_units=64).save(teacher_path)
    out = tmp_path / "run"
    argv = ["distill", "--teacher", str(teacher_path), "--env", "Pendulum-v1", "--out", str(out), "--hidden", "8"]
    argv += ["--steps", "1000", "--eval-episodes", "3", "--sample-actions", "--constant-std", "--no-progress"]
    assert main([*argv, "--gaussian-kl", "approximate"]) == 2
    assert "--gaussian-kl: invalid choice: 'approximate'" in capsys.readouterr().err and not out.exists()
    assert main([*argv, "--gaussian-kl", "exact"]) == 0
    assert "mean action error" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["gaussian_kl"] == "exact"
    student = load_policy(out / "student.keras")
    assert student.is_continuous and not student.state_dependent_std
    assert main(["export", str(out / "student.keras"), "--format", "tflite", "--out", str(tmp_path / "s.tflite")]) == 0
    for model in (out / "student.keras", tmp_path / "s.tflite"):
        capsys.readouterr()
        assert main(["evaluate", str(model), "--env", "Pendulum-v1", "--episodes", "2", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["mean_length"] == 200.0


@pytest.mark.parametrize(
    "env,match",
    [
        ("CartPole-v1", "teacher is a continuous (Gaussian) policy but CartPole-v1 has 2 discrete actions"),
        ("MountainCarContinuous-v0", "teacher expects 3 observation features but MountainCarContinuous-v0 gives 2"),
    ],
)
def test_cli_refuses_a_gaussian_teacher_on_the_wrong_env(env, match, tmp_path, capsys):
    from kd_rl.cli import main

    teacher_path = tmp_path / "teacher.keras"
    pendulum_model().save(teacher_path)
    out = tmp_path / "run"
    code = main(["distill", "--teacher", str(teacher_path), "--env", env, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and match in err, err
    assert not out.exists()
