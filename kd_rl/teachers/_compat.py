"""Load TF-Agents 0.19 and the legacy Keras 2 (``tf_keras``) it needs, or say why not.

kd_rl's core is Keras 3; TF-Agents 0.19 builds its networks with ``tf.keras``
and only works when TensorFlow resolves ``tf.keras`` to ``tf_keras``. That
happens when ``TF_USE_LEGACY_KERAS=1`` is set before ``tf.keras`` is first
used, which ``import kd_rl`` arranges. TensorFlow resolves ``tf.keras`` once
per process, so a process that used it before importing kd_rl cannot train
teachers, and this module says so in one line instead of letting TF-Agents
fail deep inside a network.

Every module of ``kd_rl.teachers`` imports TF-Agents after this one (the
package's ``__init__`` imports it first).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings

from kd_rl.errors import MissingDependency

INSTALL_COMMAND = (
    'pip install ".[teachers,box2d,video]" (in a kd_rl clone) && pip install --no-deps tf-agents==0.19.0 gym==0.23.0'
)


class LegacyKerasError(MissingDependency):
    """TensorFlow's ``tf.keras`` is Keras 3 in this process, so TF-Agents cannot run.

    An ``ImportError``: TF-Agents cannot be used as installed here, which the
    CLI reports in one line (exit 2) like a missing package.
    """


def _missing(err: ImportError) -> MissingDependency:
    return MissingDependency(
        f"training teachers needs TF-Agents 0.19 and tf_keras ({err}); "
        f"install them with: {INSTALL_COMMAND}  (`make install` does this)"
    )


def check_legacy_keras() -> None:
    """Raise unless ``tf.keras`` is ``tf_keras`` (and both it and TF-Agents import).

    Raises:
        ImportError: If ``tf_keras``, gym or ``tf_agents`` is not installed;
            the message names the install command.
        LegacyKerasError: If this process resolved ``tf.keras`` to Keras 3
            before kd_rl was imported.
    """
    try:
        import tf_keras
    except ImportError as err:
        raise _missing(err) from err
    import tensorflow as tf

    if tf.keras.layers.Dense is not tf_keras.layers.Dense:
        setting = os.environ.get("TF_USE_LEGACY_KERAS")
        if setting not in (None, "1", "true", "True"):
            raise LegacyKerasError(
                f"TF-Agents needs Keras 2 but TF_USE_LEGACY_KERAS={setting!r} makes tf.keras Keras 3: "
                "unset it or set it to 1 before starting Python"
            )
        raise LegacyKerasError(
            "TF-Agents needs Keras 2 but tf.keras is already Keras 3 in this process: "
            "import kd_rl before tensorflow/keras in this process (it sets TF_USE_LEGACY_KERAS=1), "
            "or set TF_USE_LEGACY_KERAS=1 before starting Python, or use the kd-rl CLI"
        )
    try:
        # gym 0.23, TF-Agents' dependency, prints a deprecation notice on
        # import that a kd_rl user (who speaks Gymnasium) cannot act on.
        with contextlib.redirect_stderr(io.StringIO()):
            import gym  # noqa: F401
        import tf_agents  # noqa: F401
    except ImportError as err:
        raise _missing(err) from err
    # Autograph's compiled copies of TF-Agents 0.19 functions compare with
    # literals (``state is not ()``); Python warns at each compile, to no use.
    warnings.filterwarnings("ignore", category=SyntaxWarning, module=r".*__autograph_generated_file")


check_legacy_keras()
