import numpy as np
import pytest

from kd_rl.evaluate import run_episodes
from kd_rl.export import export_model
from kd_rl.models import StudentModel, load_policy
from kd_rl.policies import NumpyPolicy, TFLitePolicy, load_any_policy


@pytest.fixture
def student(rng):
    model = StudentModel(
        2,
        hidden_units=(16, 8),
        activation="tanh",
        observation_dim=4,
        observation_mean=[0.1, 0.0, 0.0, 0.2],
        observation_std=[1.0, 2.0, 0.5, 1.5],
        observation_clip=4.0,
    )
    return model


def test_numpy_export_matches_keras(student, tmp_path, rng):
    path = export_model(student, "numpy", tmp_path / "s.npz")
    policy = load_any_policy(path)
    assert isinstance(policy, NumpyPolicy) and policy.count_params() == student.count_params()
    x = rng.normal(scale=3, size=(256, 4)).astype(np.float32)
    np.testing.assert_allclose(policy(x), student(x).numpy(), rtol=1e-5, atol=1e-5)


def test_numpy_policy_from_model_matches_keras(student, rng):
    x = rng.normal(scale=3, size=(64, 4)).astype(np.float32)
    np.testing.assert_allclose(NumpyPolicy.from_model(student)(x), student(x).numpy(), rtol=1e-5, atol=1e-5)


def test_tflite_float_export_matches_keras(student, tmp_path, rng):
    path = export_model(student, "tflite", tmp_path / "s.tflite")
    policy = load_any_policy(path)
    assert isinstance(policy, TFLitePolicy)
    # Run by LiteRT, not the deprecated tf.lite.Interpreter.
    assert type(policy.interpreter).__module__.startswith("ai_edge_litert")
    x = rng.normal(scale=3, size=(64, 4)).astype(np.float32)
    np.testing.assert_allclose(policy(x), student(x).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(policy(x[:1]), student(x[:1]).numpy(), rtol=1e-5, atol=1e-5)


def test_tflite_float_export_is_exact_on_visited_states(cartpole_teacher, tmp_path):
    # Keras 3 models converted through from_concrete_functions([cf], model) gave
    # outputs ~1e33: check the numbers on >= 1,000 states a policy really visits.
    from kd_rl.data import visited_states

    teacher = load_policy("CartPole-v1-ppo")  # with a baked-in observation normaliser
    states = visited_states(teacher, "CartPole-v1", 1000, seed=0, epsilon=0.1)
    assert len(states) >= 1000
    policy = load_any_policy(export_model(teacher, "tflite", tmp_path / "t.tflite"))
    np.testing.assert_allclose(policy(states), teacher(states).numpy(), rtol=1e-5, atol=1e-5)


def test_tflite_int8_export_agrees_and_acts_well(cartpole_teacher, tmp_path):
    path = export_model(cartpole_teacher, "tflite-int8", tmp_path / "t8.tflite", env_id="CartPole-v1")
    policy = load_any_policy(path)
    assert policy._input["dtype"] == np.int8
    stats = run_episodes(policy, "CartPole-v1", episodes=5, seed=0, reference=cartpole_teacher)
    # This hand-made teacher balances the pole on its decision boundary, where
    # one int8 step of the (per-tensor) input scale flips the action; it still
    # balances, so the return is the sharper check here.
    assert stats.agreement > 0.85
    assert stats.mean_return > 450


def test_export_bad_input(student, tmp_path):
    with pytest.raises(ValueError, match="format must be one of"):
        export_model(student, "savedmodel", tmp_path / "s")
    with pytest.raises(ValueError, match="must end in .npz"):
        export_model(student, "numpy", tmp_path / "s.tflite")
    with pytest.raises(ValueError, match="calibration"):
        export_model(student, "tflite-int8", tmp_path / "s.tflite")
    assert list(tmp_path.iterdir()) == []


def test_loading_the_wrong_kind_of_file_is_refused(student, tmp_path):
    tfl = export_model(student, "tflite", tmp_path / "s.tflite")
    with pytest.raises(ValueError, match="not a Keras model"):
        load_policy(tfl)
    broken = tmp_path / "broken.keras"
    student.save(broken)
    broken.write_bytes(broken.read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_policy(broken)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ValueError, match="not a valid TFLite model"):
        load_any_policy(junk)
