import json
import os

import pytest
from conftest import TEACHER_METRIC_KEYS

from kd_rl.cli import main
from kd_rl.evaluate import run_episodes
from kd_rl.models import load_policy
from kd_rl.zoo import ZOO_DIR, list_zoo, resolve_model_path, zoo_entry

THRESHOLDS = {"CartPole-v1": 495.0, "LunarLander-v3": 200.0}
ENTRIES = list_zoo()


def test_the_zoo_ships_the_cartpole_dqn_teacher_of_the_article():
    entry = zoo_entry("CartPole-v1-dqn")
    assert entry["algo"] == "dqn" and entry["hidden_units"] == [100] and entry["params"] == 702


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_each_zoo_teacher_is_small_documented_and_scores_what_it_claims(entry):
    folder = ZOO_DIR / entry["name"]
    for path in folder.iterdir():
        assert path.stat().st_size < 2 * 1024 * 1024, path
    for key in TEACHER_METRIC_KEYS | {"command"}:
        assert key in entry, key
    assert entry["command"].startswith("kd-rl train-teacher")
    assert entry["eval_episodes"] >= 100
    assert entry["mean_return"] >= THRESHOLDS[entry["env_id"]]
    model = load_policy(entry["name"])
    assert model.count_params() == entry["params"]
    # A few episodes (seeded like the final evaluation) reproduce the recorded returns.
    stats = run_episodes(model, entry["env_id"], episodes=3, seed=entry["seed"])
    recorded = json.loads((folder / "metrics.json").read_text()).get("returns")
    if recorded:
        assert stats.returns == recorded[:3]
    assert stats.mean_return >= 0.9 * THRESHOLDS[entry["env_id"]]


def test_zoo_names_resolve_and_unknown_names_are_listed():
    assert resolve_model_path("CartPole-v1-dqn") == ZOO_DIR / "CartPole-v1-dqn" / "teacher.keras"
    with pytest.raises(ValueError, match="CartPole-v1-dqn"):
        zoo_entry("CartPole-v0-dqn")


def test_zoo_command_lists_every_teacher(capsys):
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    for entry in ENTRIES:
        assert entry["name"] in out
    assert main(["zoo", "--json"]) == 0
    assert {e["name"] for e in json.loads(capsys.readouterr().out)} == {e["name"] for e in ENTRIES}


def test_demo_tells_the_whole_story(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| teacher |" in printed and "| student |" in printed
    for name in (
        "student.keras",
        "metrics.json",
        "curve.csv",
        "distillation_curve.png",
        "teacher_vs_student.png",
        "summary.md",
    ):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["teacher"] == "CartPole-v1-dqn"
    assert metrics["teacher_params"] == 702 and metrics["student_params"] == 352
    assert metrics["student_mean_return"] >= 0.99 * metrics["teacher_mean_return"]
    assert metrics["eval_episodes"] == 100
    assert not [p for p in os.listdir(out) if p.startswith(".")], "temp files left behind"
