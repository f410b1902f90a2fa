"""Import gym, which TF-Agents 0.19 pulls in, without its deprecation notice.

kd_rl speaks Gymnasium; the old gym 0.23 is only a dependency of TF-Agents and
its notice on every import says nothing a kd_rl user can act on. Import this
module before anything from ``tf_agents``.
"""

import contextlib
import io

with contextlib.redirect_stderr(io.StringIO()):
    import gym  # noqa: F401
