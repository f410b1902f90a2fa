from pathlib import Path

import keras
import numpy as np
import pytest

from kd_rl.models import PolicyModel, StudentModel, TeacherModel


def test_parameter_counts_match_the_article_shapes():
    assert TeacherModel(num_actions=2, observation_dim=4).count_params() == 702
    assert StudentModel(num_actions=2, observation_dim=4).count_params() == 352
    # 10 features and 10 outputs, as in the article's code.
    assert TeacherModel(10, observation_dim=10).count_params() == 10 * 100 + 100 + 100 * 10 + 10
    assert StudentModel(10, observation_dim=10).count_params() == 10 * 50 + 50 + 50 * 10 + 10


def test_outputs_are_logits_not_probabilities(rng):
    model = TeacherModel(3, observation_dim=4)
    x = rng.normal(size=(64, 4)).astype(np.float32) * 10
    logits = model(x).numpy()
    assert logits.shape == (64, 3)
    # Softmax rows sum to one and lie in [0, 1]; logits of a scaled input do not.
    assert not np.allclose(logits.sum(axis=1), 1.0)
    assert (logits < 0).any()


def test_action_probabilities_and_act(rng):
    model = StudentModel(4, hidden_units=(16, 8), observation_dim=3)
    x = rng.normal(size=(10, 3)).astype(np.float32)
    logits = model(x).numpy()
    for t in (0.5, 1.0, 5.0):
        probs = model.action_probabilities(x, temperature=t).numpy()
        z = logits / t
        expected = np.exp(z - z.max(1, keepdims=True))
        expected /= expected.sum(1, keepdims=True)
        np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(model.act(x), logits.argmax(1))


def test_hidden_units_tuple_builds_each_layer():
    model = StudentModel(2, hidden_units=(8, 6, 4), observation_dim=5)
    assert [layer.units for layer in model.hidden_layers] == [8, 6, 4]
    assert model.count_params() == (5 * 8 + 8) + (8 * 6 + 6) + (6 * 4 + 4) + (4 * 2 + 2)


@pytest.mark.parametrize("cls", [TeacherModel, StudentModel])
def test_keras_file_round_trip_is_exact_in_safe_mode(tmp_path, cls, rng):
    model = cls(
        3,
        hidden_units=(12, 7),
        activation="tanh",
        observation_dim=6,
        observation_mean=rng.normal(size=6),
        observation_std=rng.uniform(0.5, 2, size=6),
        observation_clip=5.0,
    )
    x = rng.normal(size=(32, 6)).astype(np.float32)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is cls
    assert loaded.hidden_units == (12, 7) and loaded.activation == "tanh"
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


def test_model_built_lazily_round_trips(tmp_path, rng):
    model = StudentModel(2)
    x = rng.normal(size=(4, 4)).astype(np.float32)
    model(x)
    assert model.observation_dim == 4
    model.save(tmp_path / "s.keras")
    loaded = keras.saving.load_model(tmp_path / "s.keras")
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


def test_observation_normaliser_is_applied(rng):
    mean, std = np.array([1.0, -2.0]), np.array([2.0, 0.5])
    model = StudentModel(
        2, hidden_units=4, observation_dim=2, observation_mean=mean, observation_std=std, observation_clip=1.0
    )
    x = np.array([[5.0, -2.25]], np.float32)
    np.testing.assert_allclose(model.normalise(x).numpy(), [[1.0, -0.5]])  # (5-1)/2=2 clipped to 1


# A Keras user extends the student: a residual MLP with layer normalisation.
# Registering it makes the .keras file load without custom_objects.
@keras.saving.register_keras_serializable(package="kd_rl_tests")
class LayerNormStudent(StudentModel):
    """A student whose hidden activations are layer-normalised."""

    def __init__(self, *args, epsilon: float = 1e-3, **kwargs):
        super().__init__(*args, **kwargs)
        self.epsilon = epsilon
        self.norms = [keras.layers.LayerNormalization(epsilon=epsilon) for _ in self.hidden_units]
        self.ensure_built()  # now that every layer exists

    def call(self, observations, training=None):
        x = self.normalise(observations)
        for dense, norm in zip(self.hidden_layers, self.norms):
            x = norm(dense(x))
        return self.logits_layer(x)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def test_subclassed_student_trains_and_round_trips(tmp_path, rng):
    from kd_rl.distill import make_distill_step

    teacher = TeacherModel(2, observation_dim=4)
    student = LayerNormStudent(2, hidden_units=16, epsilon=1e-4, observation_dim=4)
    assert student.count_params() == (4 * 16 + 16) + 2 * 16 + (16 * 2 + 2)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    step = make_distill_step(teacher, student, keras.optimizers.Adam(1e-2))
    first = float(step(x))
    for _ in range(50):
        last = float(step(x))
    assert last < first
    student.save(tmp_path / "ln.keras")
    loaded = keras.saving.load_model(tmp_path / "ln.keras", safe_mode=True)
    assert isinstance(loaded, LayerNormStudent) and loaded.epsilon == 1e-4
    np.testing.assert_array_equal(loaded(x).numpy(), student(x).numpy())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_actions=0), "num_actions"),
        (dict(num_actions=2.5), "num_actions"),
        (dict(num_actions=2, hidden_units=0), "hidden_units"),
        (dict(num_actions=2, hidden_units=(10, -1)), "hidden_units"),
        (dict(num_actions=2, hidden_units="big"), "hidden_units"),
        (dict(num_actions=2, activation="nope"), "activation"),
        (dict(num_actions=2, observation_dim=0), "observation_dim"),
        (dict(num_actions=2, observation_dim=2, observation_std=[1.0, 0.0]), "observation_std"),
        (dict(num_actions=2, observation_dim=2, observation_mean=[1.0, 2.0, 3.0]), "observation_mean"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PolicyModel(**kwargs)


def test_wrong_observation_size_is_refused():
    model = StudentModel(2, observation_dim=4)
    with pytest.raises(ValueError, match="observation_dim=4"):
        model(np.zeros((1, 3), np.float32))


def test_a_kd_rl_0_1_keras2_file_loads_as_keras3_and_converts(tmp_path, capsys):
    # A PPO teacher saved by kd_rl 0.1 (TensorFlow 2.15, Keras 2): Keras 3 alone would
    # load it with none of its weights; load_policy reads them from the archive.
    import json
    import zipfile

    from kd_rl.cli import main
    from kd_rl.models import load_policy

    old = Path(__file__).parent / "data" / "keras2_ppo_teacher.keras"
    assert json.loads(zipfile.ZipFile(old).read("metadata.json"))["keras_version"].startswith("2.")
    model = load_policy(old)
    zoo = load_policy("CartPole-v1-ppo")  # the same teacher, re-saved as a Keras 3 file
    x = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    np.testing.assert_array_equal(model(x).numpy(), zoo(x).numpy())
    assert model.observation_clip == 5.0 and model.observation_mean is not None
    assert main(["convert", str(old), "--out", str(tmp_path / "new.keras")]) == 0
    assert "Keras 3" in capsys.readouterr().out
    new = keras.saving.load_model(tmp_path / "new.keras", safe_mode=True)
    np.testing.assert_array_equal(new(x).numpy(), zoo(x).numpy())
    assert new.output_type is None  # 0.1 files do not say what their outputs are
    assert main(["convert", str(old), "--out", str(tmp_path / "typed.keras"), "--output-type", "logits"]) == 0
    assert keras.saving.load_model(tmp_path / "typed.keras", safe_mode=True).output_type == "logits"


def test_keras_load_model_registers_every_kd_rl_class_after_import_kd_rl(tmp_path):
    """`import kd_rl` then `keras.saving.load_model`, in a fresh process, in either import order."""
    import subprocess
    import sys

    from kd_rl.multitask import MultiTaskStudent, task_spec

    student = MultiTaskStudent([task_spec("CartPole-v1"), task_spec("Acrobot-v1")], (8,), 8)
    path = tmp_path / "multi.keras"
    student.save(path)
    for imports in ("import kd_rl, keras", "import keras, kd_rl"):
        code = f"{imports}; m = keras.saving.load_model({str(path)!r}); print(type(m).__name__, m.task_ids)"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.split()[0] == "MultiTaskStudent", proc.stdout
