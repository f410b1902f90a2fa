"""The one home of a policy you can act with: compiled Keras policies, NumPy and TFLite exports."""

import gc
import weakref

import numpy as np

from kd_rl.models import StudentModel
from kd_rl.policies import as_policy_fn


def test_a_keras_policy_is_compiled_once_and_freed_with_its_model(rng):
    model = StudentModel(2, hidden_units=8, observation_dim=4)
    fn = as_policy_fn(model)
    assert as_policy_fn(model) is fn  # no retrace per call site
    x = rng.normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(fn(x), model(x).numpy(), rtol=1e-6)
    np.testing.assert_allclose(fn(x[:1]), model(x[:1]).numpy(), rtol=1e-6)  # any batch size
    model.set_weights([w + 1.0 for w in model.get_weights()])
    np.testing.assert_allclose(fn(x), model(x).numpy(), rtol=1e-6)  # sees new weights
    ref = weakref.ref(model)
    del model, fn
    gc.collect()
    assert ref() is None, "the compiled policy keeps its model alive"
