"""How faithful are the exported students? Agreement and return of each export format.

A student is distilled from a zoo teacher (default settings), exported to
every format (TFLite float32 and int8, NumPy, ONNX, TFLite for
Microcontrollers float32 and int8, plain C), and every export is compared with
the Keras student on the states the Keras student visits (argmax agreement)
and on the same seeded episodes (mean return). TFLite files run in LiteRT
(``ai_edge_litert``) through `kd_rl.policies.TFLitePolicy`, ONNX files in ONNX
Runtime, TFLM folders in the tflite-micro Python interpreter (one observation
at a time, as on a device), the C compiled with the system compiler and called
through ``ctypes``. The return of an
export is scored against the Keras student's as a normalised score,
``(export − random) / (Keras − random)`` (1: as good as the Keras student),
which means the same for LunarLander's negative returns as for CartPole's.
Targets: agreement >= 99.5% for the float exports (100% for ONNX, C and
TFLM float) and >= 98% for int8, normalised score within 0.01 of 1.

Where the int8 export disagrees is measured too: the share of states whose
top-two Keras logit gap is at least 4 steps of the int8 output's quantisation
scale, and the agreement on those ("decisive") states.

The students (teacher, width, labelled states): the row ``export_check`` of ``experiments.yml``,
the same as ``int8_study``'s.

    python benchmarks/run.py export_check [--states 10000] [--episodes 100] [--envs CartPole-v1 LunarLander-v3]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from _common import check_choices, quiet_tensorflow

quiet_tensorflow()

FORMATS = ("tflite", "tflite-int8", "numpy", "onnx", "tflm-float", "tflm", "c")
INT8 = ("tflite-int8", "tflm")
#: Float exports held to 100% agreement (the issue's target); tflite and numpy keep 99.5%.
EXACT = {"onnx": 1.0, "c": 1.0, "tflm-float": 1.0}
_SUFFIX = {"tflite": ".tflite", "tflite-int8": ".tflite", "numpy": ".npz", "onnx": ".onnx"}


def _size(path: Path) -> int:
    """The bytes a device stores: the file, or a TFLM folder's model array / a C folder's source."""
    if path.is_file():
        return path.stat().st_size
    if (path / "kd_rl_policy.tflite").is_file():
        return (path / "kd_rl_policy.tflite").stat().st_size
    return (path / "kd_rl_policy.c").stat().st_size


def _output_step(policy, path: Path) -> float:
    """The int8 output's quantisation step (scale) of a TFLite file or a TFLM folder."""
    if path.is_dir():
        import json

        return float(json.loads((path / "export.json").read_text())["output"]["scale"])
    return float(policy._output["quantization"][0])


def check(
    cases: list[list], envs: list[str], states: int, episodes: int, max_steps: int | None = None
) -> tuple[dict, str]:
    """Each student's exports against the Keras student: agreement, near-ties of int8, normalised return.

    Args:
        cases: ``[zoo teacher, env_id, student hidden units, labelled states]`` per student.
        envs: the environments of ``cases`` to measure.
        states: visited states on which the exports' actions are compared.
        episodes: evaluation episodes of every export.
        max_steps: cap the labelled-state budgets (quick tries only).
    """
    from kd_rl.data import visited_states
    from kd_rl.distill import DistillConfig, distill_policy
    from kd_rl.evaluate import normalised_score, random_policy_return, run_episodes
    from kd_rl.export import export_model
    from kd_rl.models import load_policy
    from kd_rl.policies import load_any_policy

    check_choices("envs", envs, [c[1] for c in cases])
    results, rows = (
        {},
        [
            "| env | student params | format | file bytes | agreement | decisive states (gap >= 4 int8 steps) | "
            "return | Keras return | random return | normalised score (Keras = 1) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ],
    )
    verdicts = []
    for teacher_name, env_id, hidden, steps in (c for c in cases if c[1] in envs):
        steps = min(steps, max_steps or steps)
        teacher = load_policy(teacher_name)
        student, _ = distill_policy(
            teacher,
            DistillConfig(env_id=env_id, hidden_units=hidden, steps=steps, eval_every=0, eval_episodes=10),
            progress=False,
        )
        visited = visited_states(student, env_id, states, seed=123)
        keras_logits = student(visited).numpy()
        keras_actions = keras_logits.argmax(1)
        top_two = np.sort(keras_logits, axis=1)[:, -2:]
        gap = top_two[:, 1] - top_two[:, 0]
        keras_return = run_episodes(student, env_id, episodes, seed=777).mean_return
        random_return = random_policy_return(env_id, episodes, seed=777)
        with tempfile.TemporaryDirectory() as tmp:
            for fmt in FORMATS:
                path = export_model(student, fmt, Path(tmp) / f"student-{fmt}{_SUFFIX.get(fmt, '')}", env_id=env_id)
                policy = load_any_policy(path)
                agrees = policy(visited).argmax(1) == keras_actions
                agreement = float(np.mean(agrees))
                decisive = ""
                if fmt in INT8:
                    step = _output_step(policy, path)
                    mask = gap >= 4 * step
                    near_ties = {
                        "output_step": step,
                        "decisive_share": float(mask.mean()),
                        "decisive_agreement": float(agrees[mask].mean()) if mask.any() else float("nan"),
                        "disagreements_at_near_ties": int((~agrees & ~mask).sum()),
                        "disagreements": int((~agrees).sum()),
                    }
                    decisive = (
                        f"{100 * near_ties['decisive_share']:.1f}% of states; agreement there "
                        f"{100 * near_ties['decisive_agreement']:.2f}%"
                    )
                ret = run_episodes(policy, env_id, episodes, seed=777).mean_return
                score = normalised_score(ret, keras_return, random_return)
                results[f"{env_id}/{fmt}"] = {
                    "agreement": agreement,
                    "return": ret,
                    "keras_return": keras_return,
                    "random_return": random_return,
                    "normalised_score": score,
                    "bytes": _size(path),
                    "states": len(visited),
                }
                if fmt in INT8:
                    results[f"{env_id}/{fmt}"].update(near_ties)
                rows.append(
                    f"| {env_id} | {student.count_params():,} | {fmt} | {_size(path):,} | "
                    f"{100 * agreement:.2f}% | {decisive} | {ret:.1f} | {keras_return:.1f} | {random_return:.1f} | "
                    f"{'—' if score is None else f'{score:.3f}'} |"
                )
                need = 0.98 if fmt in INT8 else EXACT.get(fmt, 0.995)
                ok = agreement >= need and score is not None and abs(score - 1) <= 0.01
                verdicts.append(
                    f"- {env_id} {fmt}: agreement {100 * agreement:.2f}% (target {100 * need:.1f}%), "
                    f"normalised score {'—' if score is None else f'{score:.3f}'} against the Keras student "
                    f"(target 1 ± 0.01): {'met' if ok else 'NOT met'}."
                    + (
                        f" {near_ties['disagreements_at_near_ties']} of its {near_ties['disagreements']} "
                        f"disagreements are at near-ties (top-two gap < 4 x {near_ties['output_step']:.4f})."
                        if fmt in INT8
                        else ""
                    )
                )
    note = (
        "File bytes: the file; for tflm and tflm-float, the .tflite flatbuffer their C array holds; "
        "for c, the generated C source (compiled, its weights take 4 bytes a parameter)."
    )
    return {"results": results}, "\n".join(rows) + "\n\n" + note + "\n\n" + "\n".join(verdicts)


GAUSSIAN_FORMATS = ("tflite", "numpy", "onnx", "tflm-float", "c")


def gaussian(teachers: list[list], states: int, target: float) -> tuple[dict, str]:
    """Gaussian policies in every float format: the largest action difference from the Keras model.

    Each export gives the deterministic action (the squashed or clipped mean);
    it is compared with the Keras model's on the states the Keras model visits.

    Args:
        teachers: ``[zoo teacher, env_id]`` per Gaussian policy.
        states: visited states compared.
        target: the largest action difference allowed.
    """
    from kd_rl.data import visited_states
    from kd_rl.export import export_model
    from kd_rl.models import load_policy
    from kd_rl.policies import load_any_policy

    results = {}
    rows = [
        "| policy | params | action dims | " + " | ".join(GAUSSIAN_FORMATS) + " |",
        "|---" * (3 + len(GAUSSIAN_FORMATS)) + "|",
    ]
    for name, env_id in teachers:
        model = load_policy(name)
        visited = visited_states(model, env_id, states, seed=123)
        keras_actions = model.actions_from_outputs(model(visited).numpy())
        errors = {}
        with tempfile.TemporaryDirectory() as tmp:
            for fmt in GAUSSIAN_FORMATS:
                out = Path(tmp) / f"{fmt}{_SUFFIX.get(fmt, '')}"
                policy = load_any_policy(export_model(model, fmt, out, env_id=env_id))
                errors[fmt] = float(np.max(np.abs(policy(visited) - keras_actions)))
        results[name] = {
            "env_id": env_id,
            "params": model.count_params(),
            "states": len(visited),
            "max_abs_error": errors,
        }
        rows.append(
            f"| {name} | {model.count_params():,} | {keras_actions.shape[1]} | "
            + " | ".join(f"{errors[f]:.1e}" for f in GAUSSIAN_FORMATS)
            + " |"
        )
    worst = max(e for r in results.values() for e in r["max_abs_error"].values())
    verdict = (
        f"Largest action difference from the Keras model over {states:,} visited states per policy: {worst:.1e} "
        f"(target: below {target:.0e}: {'met' if worst < target else 'NOT met'})."
    )
    return {"results": results, "worst": worst, "target_met": worst < target}, "\n".join(rows) + "\n\n" + verdict


if __name__ == "__main__":
    from run import main

    main(script=__file__)
