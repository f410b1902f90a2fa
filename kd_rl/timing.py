"""Where a run's time goes: `RunProfile`, the wall seconds of each part of a distillation.

Every distillation (`kd_rl.distill.distill_policy`, `kd_rl.multitask.distill_multitask`)
keeps one and writes it to its metrics (``metrics.json``, key ``profile``);
``kd-rl distill`` prints it at the end. The sections:

========================  ==========================================================
``startup``               from the call to the first collection: the student, the
                          compiled step, the environments, a resumed checkpoint
``collect``               collection in all (the next three and the loop around them)
``collect_env``           of which stepping and resetting the environments
``collect_teacher``       of which the teacher labelling the states
``collect_student``       of which the student choosing its actions
``updates``               sampling batches and the compiled update steps
``curve_evals``           the learning curve's periodic evaluations
``checkpoints``           writing checkpoints
``final_eval``            the final evaluation: teacher, random policy, student
``final_eval_teacher``    of which the teacher's and the random policy's episodes
                          (0 when the evaluation cache served them)
``save``                  writing the student and the run's files
``total``                 wall seconds from the call to its end
``other``                 ``total`` less the top-level sections
========================  ==========================================================

With Ray actors (``actors``) the collection runs in other processes: ``collect``
is the learner's wait for it, and its three parts stay 0 here.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

__all__ = ["RunProfile", "SECTIONS", "TOP_LEVEL"]

#: Every section, in the order a report lists them.
SECTIONS = (
    "startup", "collect", "collect_env", "collect_teacher", "collect_student", "updates", "curve_evals",
    "checkpoints", "final_eval", "final_eval_teacher", "save",
)  # fmt: skip

#: The sections that do not overlap; with ``other`` they add up to ``total``.
TOP_LEVEL = ("startup", "collect", "updates", "curve_evals", "checkpoints", "final_eval", "save")


class RunProfile:
    """Wall seconds spent in named sections of a run, summed over every time each is entered.

    ``with profile.section("updates"): ...`` adds the block's wall time to
    ``updates``; `to_dict` reports every section, ``total`` (since the profile
    was made) and ``other``.
    """

    def __init__(self):
        self.start = time.perf_counter()
        self.seconds = dict.fromkeys(SECTIONS, 0.0)
        #: Seconds a resumed run had spent before this process (its checkpoint's): `training_seconds` adds them.
        self.carried = 0.0

    def training_seconds(self) -> float:
        """Wall seconds so far less the curve's evaluations and the checkpoints, plus `carried`."""
        spent = time.perf_counter() - self.start - self.seconds["curve_evals"] - self.seconds["checkpoints"]
        return self.carried + spent

    @contextmanager
    def section(self, name: str):
        """Time the ``with`` block into ``name`` (one of `SECTIONS`)."""
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - begin

    def mark(self, name: str, since: float) -> None:
        """Add the seconds from ``since`` (a ``time.perf_counter()`` reading) to now to ``name``."""
        self.seconds[name] += time.perf_counter() - since

    def to_dict(self) -> dict:
        """``{section: seconds}`` for every section, with ``total`` and ``other``, rounded to 0.1 ms."""
        total = time.perf_counter() - self.start
        out = {name: round(seconds, 4) for name, seconds in self.seconds.items()}
        out["total"] = round(total, 4)
        out["other"] = round(max(total - sum(self.seconds[name] for name in TOP_LEVEL), 0.0), 4)
        return out

    @staticmethod
    def table(profile: dict) -> str:
        """A profile (`to_dict`'s) as aligned text lines, parts indented under their section, with shares."""
        total = profile.get("total") or 0.0
        lines = []
        for name in (*SECTIONS, "other", "total"):
            seconds = profile.get(name)
            if seconds is None:
                continue
            part = name not in TOP_LEVEL and name not in ("other", "total")
            share = f"{100 * seconds / total:5.1f}%" if total else ""
            label = ("  " if part else "") + name
            lines.append(f"{label:<22}{seconds:9.2f} s  {share}")
        return "\n".join(lines)
