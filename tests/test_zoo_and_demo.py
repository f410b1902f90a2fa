import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import TEACHER_METRIC_KEYS

from kd_rl.cli import main
from kd_rl.evaluate import run_episodes
from kd_rl.models import load_policy
from kd_rl.zoo import ZOO_DIR, list_zoo, resolve_model_path, zoo_entry

# Pendulum-v1 has no official threshold: -200 is issue #13's target for its teacher.
THRESHOLDS = {
    "CartPole-v1": 495.0,
    "LunarLander-v3": 200.0,
    "LunarLanderContinuous-v3": 230.0,  # issue #13's target (Gymnasium's threshold is 200)
    "Pendulum-v1": -200.0,
    "BipedalWalker-v3": 250.0,  # issue #13's target (Gymnasium's threshold is 300)
    "Acrobot-v1": -100.0,  # Gymnasium's reward threshold
    "MountainCarContinuous-v0": 90.0,  # Gymnasium's reward threshold
    "MountainCar-v0": -110.0,  # Gymnasium's reward threshold
    # Per teacher where it differs from its environment's: the DQN MountainCar teacher (-124.8, RL-Zoo's
    # settings) is below -110, good enough to teach (issue #14) and kept for the multi-task results;
    # MountainCar-v0-ppo is the one that solves it. The test pins what each claims.
    "MountainCar-v0-dqn": -130.0,
    # MinAtar: Young & Tian's (2019) DQN after 5M frames, read off their curves (issue #34's targets).
    "MinAtar/Breakout-v1": 10.0,
    "MinAtar/Asterix-v1": 17.0,
    "MinAtar/Freeway-v1": 50.0,
    "MinAtar/Seaquest-v1": 20.0,
    "MinAtar/SpaceInvaders-v1": 43.0,
}
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
    assert entry["mean_return"] >= THRESHOLDS.get(entry["name"], THRESHOLDS[entry["env_id"]])
    model = load_policy(entry["name"])
    assert model.count_params() == entry["params"]
    expected_outputs = "gaussian" if model.is_continuous else {"dqn": "q_values", "ppo": "logits"}[entry["algo"]]
    assert model.output_type == entry["outputs"] == expected_outputs
    # The recorded score is re-measured here, not compared bit for bit: float
    # rounding differs between CPUs (AVX2 vs AVX-512 kernels) and a chaotic
    # environment's episodes then diverge. 20 episodes seeded like the final
    # evaluation must land within 4 standard errors of the recorded mean.
    n = 20
    stats = run_episodes(model, entry["env_id"], episodes=n, seed=entry["seed"])
    tolerance = 4 * entry["std_return"] / n**0.5 + 1.0
    assert abs(stats.mean_return - entry["mean_return"]) <= tolerance, (stats.mean_return, entry["mean_return"])
    assert entry["mean_return"] == pytest.approx(np.mean(entry["returns"]))


def test_zoo_files_are_keras3_and_load_in_safe_mode_without_tf_keras(tmp_path):
    # A process that cannot import tf_keras or TF-Agents loads every zoo file with Keras 3 alone.
    code = (
        "import sys, json, zipfile\n"
        "sys.modules['tf_keras'] = None; sys.modules['tf_agents'] = None\n"
        "import keras, numpy as np\n"
        "import kd_rl.models\n"
        "from kd_rl.zoo import list_zoo\n"
        "for e in list_zoo():\n"
        "    meta = json.loads(zipfile.ZipFile(e['path']).read('metadata.json'))\n"
        "    assert meta['keras_version'].startswith('3.'), meta\n"
        "    m = keras.saving.load_model(e['path'], safe_mode=True, compile=False)\n"
        "    assert m.count_params() == e['params']\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


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
