"""Each loss against a NumPy reference written by hand."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kd_rl import losses


def _np_log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def np_kl(t, s, temperature, scale=True):
    log_p = _np_log_softmax(t.astype(np.float64) / temperature)
    log_q = _np_log_softmax(s.astype(np.float64) / temperature)
    kl = (np.exp(log_p) * (log_p - log_q)).sum(-1).mean()
    return kl * temperature**2 if scale else kl


def np_mse(t, s):
    return ((s.astype(np.float64) - t) ** 2).mean()


def np_nll(t, s):
    log_q = _np_log_softmax(s.astype(np.float64))
    a = t.argmax(-1)
    return -np.take_along_axis(log_q, a[..., None], axis=-1).mean()


SHAPES = [(1, 2), (32, 2), (17, 6), (4, 5, 3)]
TEMPERATURES = [0.01, 0.1, 1.0, 3.0, 20.0]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("scale", [True, False])
def test_kl_matches_numpy(shape, temperature, scale, rng):
    t = rng.normal(scale=3, size=shape).astype(np.float32)
    s = rng.normal(scale=3, size=shape).astype(np.float32)
    got = float(losses.kl_divergence_loss(t, s, temperature, scale_by_temperature_squared=scale))
    np.testing.assert_allclose(got, np_kl(t, s, temperature, scale), rtol=1e-5, atol=1e-6)
    keras = losses.KLDistillationLoss(temperature, scale_by_temperature_squared=scale)
    np.testing.assert_allclose(float(keras(t, s)), np_kl(t, s, temperature, scale), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_mse_and_nll_match_numpy(shape, rng):
    t = rng.normal(scale=3, size=shape).astype(np.float32)
    s = rng.normal(scale=3, size=shape).astype(np.float32)
    np.testing.assert_allclose(float(losses.mse_loss(t, s)), np_mse(t, s), rtol=1e-5)
    np.testing.assert_allclose(float(losses.MSEDistillationLoss()(t, s)), np_mse(t, s), rtol=1e-5)
    np.testing.assert_allclose(float(losses.nll_loss(t, s)), np_nll(t, s), rtol=1e-5)
    np.testing.assert_allclose(float(losses.NLLDistillationLoss()(t, s)), np_nll(t, s), rtol=1e-5)


@pytest.mark.parametrize("name", ["kl", "mse"])
@pytest.mark.parametrize("temperature", [0.05, 1.0, 10.0])
def test_zero_loss_and_zero_gradient_when_student_equals_teacher(name, temperature, rng):
    z = rng.normal(scale=2, size=(16, 4)).astype(np.float32)
    s = tf.Variable(z)
    loss_fn = losses.get_loss(name, temperature)
    with tf.GradientTape() as tape:
        value = loss_fn(tf.constant(z), s)
    grad = tape.gradient(value, s).numpy()
    assert abs(float(value)) < 1e-6
    np.testing.assert_allclose(grad, 0.0, atol=1e-7)


def test_kl_gradient_is_T_times_q_minus_p_and_T2_scales_it(rng):
    t = rng.normal(scale=2, size=(8, 3)).astype(np.float32)
    s0 = rng.normal(scale=2, size=(8, 3)).astype(np.float32)
    for temperature in (0.5, 2.0, 8.0):
        grads = {}
        for scale in (True, False):
            s = tf.Variable(s0)
            with tf.GradientTape() as tape:
                value = losses.kl_divergence_loss(t, s, temperature, scale_by_temperature_squared=scale)
            grads[scale] = tape.gradient(value, s).numpy()
        p = np.exp(_np_log_softmax(t / temperature))
        q = np.exp(_np_log_softmax(s0 / temperature))
        # d/dz_s [T^2 KL(p_T || q_T)] = T (q_T - p_T), averaged over the batch.
        np.testing.assert_allclose(grads[True], temperature * (q - p) / len(t), rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(grads[True], temperature**2 * grads[False], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("name", ["kl", "mse", "nll"])
@pytest.mark.parametrize("temperature", [0.01, 1.0, 100.0])
@pytest.mark.parametrize("magnitude", [1e-3, 1.0, 1e4])
def test_finite_at_the_extremes(name, temperature, magnitude, rng):
    t = (rng.choice([-1.0, 1.0], size=(8, 5)) * magnitude).astype(np.float32)
    s0 = (rng.choice([-1.0, 1.0], size=(8, 5)) * magnitude).astype(np.float32)
    s = tf.Variable(s0)
    with tf.GradientTape() as tape:
        value = losses.get_loss(name, temperature)(t, s)
    grad = tape.gradient(value, s)
    assert np.isfinite(float(value))
    assert np.all(np.isfinite(grad.numpy()))


def test_teacher_gets_no_gradient(rng):
    t = tf.Variable(rng.normal(size=(4, 3)).astype(np.float32))
    s = tf.Variable(rng.normal(size=(4, 3)).astype(np.float32))
    for name in ("kl", "mse", "nll"):
        with tf.GradientTape() as tape:
            value = losses.get_loss(name, 2.0)(t, s)
        assert tape.gradient(value, t) is None


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan"), float("inf"), "hot", None])
def test_bad_temperature_is_refused(temperature):
    with pytest.raises(ValueError, match="temperature"):
        losses.kl_divergence_loss(np.zeros((1, 2)), np.zeros((1, 2)), temperature)
    with pytest.raises(ValueError, match="temperature"):
        losses.KLDistillationLoss(temperature)


def test_unknown_loss_name_is_refused():
    with pytest.raises(ValueError, match="loss must be one of kl, mse, nll"):
        losses.get_loss("hinge")


def test_keras_losses_serialise():
    loss = losses.KLDistillationLoss(temperature=3.0, scale_by_temperature_squared=False)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, losses.KLDistillationLoss)
    assert again.temperature == 3.0 and again.scale_by_temperature_squared is False


def test_teacher_logits_keep_their_precision_under_mixed_precision():
    # Teacher Q-values 1000.00 and 1000.01 round to the same float16 (spacing 0.5),
    # so casting them to a float16 student's dtype before dividing by T = 0.01
    # turned a clear preference into a tie.
    teacher = np.array([[1000.0, 1000.01]], np.float32)
    student = tf.constant([[0.0, 0.0]], tf.float16)
    expected = np_kl(teacher, np.zeros((1, 2)), 0.01)  # float32 inputs, float64 arithmetic
    got = losses.kl_divergence_loss(teacher, student, temperature=0.01)
    assert got.dtype == tf.float32
    np.testing.assert_allclose(float(got), expected, rtol=1e-3)
    assert float(losses.mse_loss(teacher, student)) == pytest.approx((1000.0**2 + 1000.01**2) / 2, rel=1e-6)


def test_temperature_weight_is_t_below_one_and_t_squared_above():
    assert losses.temperature_weight(0.01) == pytest.approx(0.01)
    assert losses.temperature_weight(1.0) == 1.0
    assert losses.temperature_weight(4.0) == 16.0
    with pytest.raises(ValueError, match="temperature"):
        losses.temperature_weight(0)
