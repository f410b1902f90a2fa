import keras
import numpy as np
import pytest
import tensorflow as tf

from kd_rl.distill import Distiller, make_distill_step
from kd_rl.losses import kl_divergence_loss
from kd_rl.models import StudentModel, TeacherModel


def _pair(num_actions=2, obs_dim=4):
    return TeacherModel(num_actions, observation_dim=obs_dim), StudentModel(num_actions, observation_dim=obs_dim)


def test_distill_step_brings_kl_below_1e_3_and_leaves_teacher_alone(rng):
    teacher, student = _pair(num_actions=3)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    teacher_before = [w.copy() for w in teacher.get_weights()]
    step = make_distill_step(teacher, student, keras.optimizers.Adam(3e-3), loss="kl", temperature=1.0)
    initial = float(kl_divergence_loss(teacher(x), student(x), 1.0))
    for _ in range(1500):
        step(x)
    final = float(kl_divergence_loss(teacher(x), student(x), 1.0))
    assert initial > 1e-2
    assert final < 1e-3
    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_distill_step_returns_the_loss_before_the_update(rng):
    teacher, student = _pair()
    x = rng.normal(size=(32, 4)).astype(np.float32)
    expected = float(kl_divergence_loss(teacher(x), student(x), 2.0))
    step = make_distill_step(teacher, student, keras.optimizers.SGD(0.1), temperature=2.0)
    np.testing.assert_allclose(float(step(x)), expected, rtol=1e-5)
    assert float(kl_divergence_loss(teacher(x), student(x), 2.0)) < expected


def test_distill_step_accepts_stored_teacher_logits(rng):
    teacher, student = _pair()
    x = rng.normal(size=(32, 4)).astype(np.float32)
    labels = teacher(x).numpy()
    a = StudentModel(2, observation_dim=4)
    a.set_weights(student.get_weights())
    step_live = make_distill_step(teacher, student, keras.optimizers.SGD(0.1), loss="mse")
    step_stored = make_distill_step(teacher, a, keras.optimizers.SGD(0.1), loss="mse")
    for _ in range(3):
        np.testing.assert_allclose(float(step_live(x)), float(step_stored(x, labels)), rtol=1e-6)
    for w1, w2 in zip(student.get_weights(), a.get_weights()):
        np.testing.assert_allclose(w1, w2, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("loss", ["mse", "nll"])
def test_other_losses_raise_agreement(loss, rng):
    teacher, student = _pair(num_actions=4)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    step = make_distill_step(teacher, student, keras.optimizers.Adam(3e-3), loss=loss)
    for _ in range(400):
        step(x)
    assert np.mean(teacher.act(x) == student.act(x)) > 0.9


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("stored", [False, True])
def test_a_stack_of_batches_runs_the_same_updates_in_one_call(jit_compile, stored, rng):
    teacher, one_by_one = _pair()
    stacked = StudentModel(2, observation_dim=4)
    stacked.set_weights(one_by_one.get_weights())
    x = rng.normal(size=(5, 32, 4)).astype(np.float32)
    labels = teacher(x.reshape(-1, 4)).numpy().reshape(5, 32, 2) if stored else None
    step_a = make_distill_step(
        teacher, one_by_one, keras.optimizers.Adam(1e-2), temperature=2.0, jit_compile=jit_compile
    )
    step_b = make_distill_step(teacher, stacked, keras.optimizers.Adam(1e-2), temperature=2.0, jit_compile=jit_compile)
    losses = [float(step_a(x[i], None if labels is None else labels[i])) for i in range(5)]
    stacked_losses = step_b(x, labels).numpy()
    assert stacked_losses.shape == (5,)
    np.testing.assert_allclose(stacked_losses, losses, rtol=1e-5)
    assert losses[-1] < losses[0]
    for w1, w2 in zip(one_by_one.get_weights(), stacked.get_weights()):
        np.testing.assert_allclose(w1, w2, rtol=1e-5, atol=1e-6)


def test_one_step_takes_single_and_stacked_batches_in_any_order(rng):
    teacher, student = _pair()
    step = make_distill_step(teacher, student, keras.optimizers.SGD(0.1))
    x = rng.normal(size=(3, 16, 4)).astype(np.float32)
    assert step(x).shape == (3,)
    assert step(x[0]).shape == ()
    assert step(tf.constant(x)).shape == (3,)
    assert step(x[1], teacher(x[1])).shape == ()


def test_distill_step_rejects_other_ranks(rng):
    teacher, student = _pair()
    step = make_distill_step(teacher, student, keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match=r"stack of batches \[steps, batch, obs_dim\], got shape \(4,\)"):
        step(np.zeros(4, np.float32))


def test_jit_compiled_step_matches(rng):
    teacher, student = _pair()
    twin = StudentModel(2, observation_dim=4)
    twin.set_weights(student.get_weights())
    x = rng.normal(size=(64, 4)).astype(np.float32)
    plain = make_distill_step(teacher, student, keras.optimizers.SGD(0.05), temperature=3.0)
    xla = make_distill_step(teacher, twin, keras.optimizers.SGD(0.05), temperature=3.0, jit_compile=True)
    for _ in range(3):
        np.testing.assert_allclose(float(plain(x)), float(xla(x)), rtol=1e-4)


def test_bad_arguments():
    teacher, _ = _pair(num_actions=2)
    student3 = StudentModel(3, observation_dim=4)
    with pytest.raises(ValueError, match="num_actions"):
        make_distill_step(teacher, student3, keras.optimizers.Adam())
    with pytest.raises(ValueError, match="observation_dim"):
        make_distill_step(teacher, StudentModel(2, observation_dim=5), keras.optimizers.Adam())
    with pytest.raises(ValueError, match="temperature"):
        make_distill_step(teacher, StudentModel(2, observation_dim=4), keras.optimizers.Adam(), temperature=0)
    with pytest.raises(ValueError, match="loss must be one of"):
        make_distill_step(teacher, StudentModel(2, observation_dim=4), keras.optimizers.Adam(), loss="l1")
    with pytest.raises(ValueError, match="num_actions"):
        Distiller(student=student3, teacher=teacher)


def test_distiller_fits_on_tf_data_with_callbacks(rng):
    teacher, student = _pair(num_actions=3)
    x = rng.normal(size=(2048, 4)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices(x).shuffle(2048, seed=0).batch(64)
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(3e-3), distillation_loss="kl", temperature=2.0)
    teacher_before = teacher.get_weights()[0].copy()
    seen = []
    cb = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(dict(logs)))
    history = distiller.fit(ds, epochs=8, verbose=0, callbacks=[cb])
    losses = history.history["loss"]
    assert losses[-1] < 0.2 * losses[0]
    assert len(seen) == 8 and "agreement" in seen[-1]
    result = distiller.evaluate(ds, verbose=0, return_dict=True)
    assert result["agreement"] > 0.9
    np.testing.assert_allclose(
        result["distillation_loss"], float(kl_divergence_loss(teacher(x), student(x), 2.0)), rtol=1e-4
    )
    np.testing.assert_array_equal(teacher.get_weights()[0], teacher_before)
    np.testing.assert_allclose(distiller(x[:5]).numpy(), student(x[:5]).numpy())


def test_distiller_fit_with_steps_per_execution_matches_one_step_per_call(rng):
    teacher, student = _pair()
    twin = StudentModel(2, observation_dim=4)
    twin.set_weights(student.get_weights())
    initial = student.get_weights()
    x = rng.normal(size=(640, 4)).astype(np.float32)
    weights = []
    for model, per_call in ((student, 1), (twin, 10)):
        distiller = Distiller(student=model, teacher=teacher)
        distiller.compile(optimizer=keras.optimizers.SGD(0.05), temperature=2.0, steps_per_execution=per_call)
        distiller.fit(x, batch_size=64, epochs=2, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    assert not np.allclose(weights[0][0], initial[0])
    for w1, w2 in zip(*weights):
        np.testing.assert_allclose(w1, w2, rtol=1e-5, atol=1e-6)


def test_distiller_mixes_in_hard_labels_with_alpha(rng):
    teacher, student = _pair(num_actions=3)
    x = rng.normal(size=(512, 4)).astype(np.float32)
    y = teacher.act(x)
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer="adam", temperature=2.0, alpha=0.5, metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")]
    )
    logs = distiller.evaluate(x, y, batch_size=512, verbose=0, return_dict=True)
    ce = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, student(x)))
    kl = float(kl_divergence_loss(teacher(x), student(x), 2.0))
    np.testing.assert_allclose(logs["loss"], 0.5 * ce + 0.5 * kl, rtol=1e-4)
    assert "acc" in logs
    with pytest.raises(ValueError, match="alpha"):
        distiller.compile(alpha=1.5)


# A Keras user's own model, not a kd_rl PolicyModel: a functional MLP and a subclass.
def _functional_policy(units=16, num_actions=3, obs_dim=4, seed=0):
    inputs = keras.Input((obs_dim,))
    hidden = keras.layers.Dense(units, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed))
    return keras.Model(inputs, keras.layers.Dense(num_actions)(hidden(inputs)))


class OwnStudent(keras.Model):
    def __init__(self, num_actions=3):
        super().__init__()
        self.body = keras.layers.Dense(32, activation="tanh")
        self.head = keras.layers.Dense(num_actions)

    def call(self, x, training=None):
        return self.head(self.body(x))


@pytest.mark.parametrize("which", ["teacher", "student"])
def test_a_users_own_keras_models_distil(which, rng):
    x = rng.normal(size=(256, 4)).astype(np.float32)
    teacher = _functional_policy() if which == "teacher" else TeacherModel(3, observation_dim=4)
    student = OwnStudent() if which == "student" else StudentModel(3, observation_dim=4)
    step = make_distill_step(teacher, student, keras.optimizers.Adam(1e-2), temperature=1.0)
    first = float(step(x))
    for _ in range(200):
        last = float(step(x))
    assert last < 0.1 * first
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", temperature=1.0)
    logs = distiller.evaluate(x, batch_size=256, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["kl"], float(kl_divergence_loss(teacher(x), student(x), 1.0, False)), rtol=1e-4)


def test_a_keras2_model_is_refused_with_a_clear_message():
    import tf_keras

    from kd_rl.evaluate import check_model_fits_env

    old = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"Keras 2 \(tf_keras\) model .* Keras 3"):
        check_model_fits_env(old, "CartPole-v1", role="student")
    with pytest.raises(ValueError, match=r"student is a Keras 2 \(tf_keras\) model"):
        make_distill_step(TeacherModel(2, observation_dim=4), old, keras.optimizers.Adam())
    with pytest.raises(ValueError, match=r"teacher is a Keras 2 \(tf_keras\) model"):
        Distiller(student=StudentModel(2, observation_dim=4), teacher=old)


def test_default_temperature_follows_what_the_teacher_outputs(rng):
    from kd_rl.losses import default_temperature

    dqn = TeacherModel(2, observation_dim=4, output_type="q_values")
    ppo = TeacherModel(2, observation_dim=4, output_type="logits")
    assert default_temperature(dqn) == 0.01 and default_temperature(ppo) == 1.0
    assert default_temperature(_functional_policy()) == 1.0  # unknown outputs are taken as logits
    x = rng.normal(size=(64, 4)).astype(np.float32)
    for teacher, t in ((dqn, 0.01), (ppo, 1.0)):
        student = StudentModel(2, observation_dim=4)
        loss = float(make_distill_step(teacher, student, keras.optimizers.SGD(0.0))(x))
        # The KL at the teacher's temperature, weighted by kd_rl's one rule T · max(T, 1): T at 0.01, 1 at 1.
        kl = float(kl_divergence_loss(teacher(x), student(x), t, scale_by_temperature_squared=False))
        np.testing.assert_allclose(loss, t * max(t, 1.0) * kl, rtol=1e-4)
        distiller = Distiller(student=student, teacher=teacher)
        distiller.compile()
        assert distiller.temperature == t
    with pytest.raises(ValueError, match="output_type must be one of"):
        TeacherModel(2, observation_dim=4, output_type="probabilities")


@pytest.mark.parametrize("temperature", [0.01, 0.5, 1.0, 4.0])
def test_alpha_weighs_hard_labels_against_t_max_t_1_kl_at_any_temperature(temperature, rng):
    teacher, student = _pair(num_actions=3)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=256)  # labels that disagree with the teacher: both terms matter
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", temperature=temperature, alpha=0.3)
    logs = distiller.evaluate(x, y, batch_size=256, verbose=0, return_dict=True)
    ce = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, student(x)))
    kl = float(kl_divergence_loss(teacher(x), student(x), temperature, scale_by_temperature_squared=False))
    weight = temperature * max(temperature, 1.0)
    np.testing.assert_allclose(logs["kl"], kl, rtol=1e-4)
    np.testing.assert_allclose(logs["distillation_loss"], weight * kl, rtol=1e-4)
    np.testing.assert_allclose(logs["loss"], 0.3 * ce + 0.7 * weight * kl, rtol=1e-4)
    # The weighted KL's gradient stays the size of the hard term's: with plain T² at
    # T = 0.01 it was 1e-4 of it, and alpha = 0.3 meant "hard labels only".
    with tf.GradientTape(persistent=True) as tape:
        z = student(x)
        hard = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, z)
        soft = weight * kl_divergence_loss(teacher(x), z, temperature, scale_by_temperature_squared=False)
    ratio = float(tf.norm(tape.gradient(soft, z)) / tf.norm(tape.gradient(hard, z)))
    assert 0.05 < ratio < 20, ratio


def test_sample_weights_weigh_each_sample(rng):
    teacher, student = _pair(num_actions=3)
    x = rng.normal(size=(128, 4)).astype(np.float32)
    w = np.r_[np.ones(64), np.zeros(64)].astype(np.float32)
    y = teacher.act(x)  # Keras passes sample weights only beside labels; alpha = 0 ignores them
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", temperature=2.0)
    logs = distiller.evaluate(x, y, sample_weight=w, batch_size=128, verbose=0, return_dict=True)
    # Keras's convention: sum(w * loss) / batch size.
    expected = 0.5 * float(kl_divergence_loss(teacher(x[:64]), student(x[:64]), 2.0))
    np.testing.assert_allclose(logs["distillation_loss"], expected, rtol=1e-4)
    # A zero-weight half leaves no trace on the update: sum(w * l) / 128 is half the
    # mean over the weighted 64, so SGD at 0.2 on all 128 moves as SGD at 0.1 on those 64.
    twin = StudentModel(3, observation_dim=4)
    twin.set_weights(student.get_weights())
    before = student.get_weights()
    for model, data, kwargs, rate in ((student, x, {"sample_weight": w}, 0.2), (twin, x[:64], {}, 0.1)):
        d = Distiller(student=model, teacher=teacher)
        d.compile(optimizer=keras.optimizers.SGD(rate), temperature=2.0)
        d.fit(data, y[: len(data)], batch_size=len(data), epochs=1, verbose=0, shuffle=False, **kwargs)
    assert not np.allclose(student.get_weights()[0], before[0])
    for a, b in zip(student.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_distiller_leaves_the_teachers_trainable_flag_alone():
    teacher, student = _pair()
    assert teacher.trainable
    Distiller(student=student, teacher=teacher).compile()
    assert teacher.trainable
    assert len(teacher.trainable_variables) == 4  # the caller's model is as it was
