"""The zoo: trained teachers shipped inside the package.

Each entry is a folder ``kd_rl/zoo/<name>/`` holding ``teacher.keras``, the
``metrics.json`` of the run that made it (its score over 100 episodes and the
exact command) and its ``curve.csv``. Wherever kd_rl accepts a model path, a
zoo name such as ``CartPole-v1-dqn`` works too. Nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from kd_rl.errors import KdRlError
from kd_rl.losses import DEFAULT_TEMPERATURES

__all__ = ["ZOO_DIR", "list_zoo", "zoo_entry", "resolve_model_path", "zoo_table"]

ZOO_DIR = Path(__file__).resolve().parent


def list_zoo() -> list[dict]:
    """Metadata of every shipped teacher, sorted by name (``name`` and ``path`` added)."""
    entries = []
    for folder in sorted(p for p in ZOO_DIR.iterdir() if (p / "teacher.keras").is_file()):
        meta = {}
        if (folder / "metrics.json").is_file():
            meta = json.loads((folder / "metrics.json").read_text())
        entries.append({"name": folder.name, "path": str(folder / "teacher.keras"), **meta})
    return entries


def zoo_entry(name: str) -> dict:
    """Metadata of one zoo teacher; ``ValueError`` naming the known ones if absent."""
    for entry in list_zoo():
        if entry["name"] == name:
            return entry
    known = ", ".join(e["name"] for e in list_zoo()) or "none"
    raise KdRlError(f"no zoo teacher named {name!r}; the zoo has: {known}")


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A zoo name or a file path, as the path of a model file.

    Raises:
        ValueError: If it is neither an existing file nor a zoo name.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.exists():
        raise KdRlError(f"model path {str(name_or_path)!r} is not a file")
    if (ZOO_DIR / str(name_or_path) / "teacher.keras").is_file():
        return ZOO_DIR / str(name_or_path) / "teacher.keras"
    known = ", ".join(e["name"] for e in list_zoo()) or "none"
    raise KdRlError(f"model {str(name_or_path)!r} is neither an existing file nor a zoo name (zoo: {known})")


def zoo_table() -> str:
    """The zoo as a Markdown table: name, algorithm, size, score, training budget and command."""
    rows = [
        "| name | env | algo | outputs (default T) | hidden units | parameters | mean return ± std (episodes) "
        "| env steps | train time | command |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in list_zoo():
        hidden = ",".join(str(u) for u in e.get("hidden_units", []))
        convs = (e.get("hyperparameters") or {}).get("conv_layers") or []
        if convs:  # a convolutional teacher: its convolutions, filters:kernel:stride, before the Dense widths
            hidden = "conv " + ",".join(":".join(str(v) for v in c) for c in convs) + "; " + hidden
        rows.append(
            f"| `{e['name']}` | {e.get('env_id', '?')} | {e.get('algo', '?')} | {e.get('outputs', '?')} "
            f"({DEFAULT_TEMPERATURES.get(e.get('outputs'), 1.0):g}) | {hidden} | {e.get('params', 0):,} | "
            f"{e.get('mean_return', float('nan')):.1f} ± {e.get('std_return', float('nan')):.1f} "
            f"({e.get('eval_episodes', 0)}) | {e.get('env_steps', 0):,} | {e.get('wall_seconds', 0):.0f} s | "
            f"`{e.get('command', '')}` |"
        )
    return "\n".join(rows)
