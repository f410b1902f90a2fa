#!/usr/bin/env bash
# A Colab-like check (issue #11): a fresh Python 3.13 venv that first installs Colab's
# preinstalled set, then kd_rl exactly as the README tells a Colab user, then fails if
# TensorFlow or Keras were replaced, and runs a zoo distillation, a TFLite export and its
# evaluation, a short PPO teacher training and every notebook in fast mode, each from a copy in a
# folder outside the repository (as a learner who opens it on Colab has it). Last, it uninstalls
# kd_rl and runs notebook 01 again from a folder that holds only it and the kd_rl wheel (`make
# dist`'s): its first cell must install kd_rl from the wheel, as on a fresh Colab runtime with the
# wheel uploaded, and leave TensorFlow and Keras as they were.
#
#   bash scripts/colab_check.sh [PYTHON3.13]      (default: python3.13, else pyenv's 3.13)
#
# Exit 0 when all of it works; the venv and runs live in a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

is313() { [ -n "$1" ] && "$1" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; }
PY=${1:-}
if [ -z "$PY" ]; then
  for candidate in "$(command -v python3.13 || true)" /root/.pyenv/versions/3.13*/bin/python; do
    if is313 "$candidate"; then PY=$candidate; break; fi
  done
fi
if ! is313 "$PY"; then
  echo "colab_check: no Python 3.13 found (pass its path as the first argument)" >&2
  exit 2
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PY" -m venv "$WORK/venv"
PIP="$WORK/venv/bin/python -m pip"
export TF_CPP_MIN_LOG_LEVEL=3 PIP_DISABLE_PIP_VERSION_CHECK=1

echo "== 1. Colab's preinstalled set"
$PIP install --quiet --upgrade pip
$PIP install --quiet "tensorflow==2.20.*" "keras==3.13.*" "tf-keras==2.20.*" \
  "tensorflow-probability==0.25.*" "gymnasium==1.3.*" matplotlib
before=$($PIP freeze | grep -i -E '^(tensorflow|keras|tf-keras|tf_keras)==' | sort)
echo "$before"

echo "== 2. kd_rl as the README tells a Colab user"
$PIP install --quiet "$REPO[teachers,box2d,video,minatar]"
$PIP install --quiet --no-deps tf-agents==0.19.0 gym==0.23.0
after=$($PIP freeze | grep -i -E '^(tensorflow|keras|tf-keras|tf_keras)==' | sort)
if [ "$before" != "$after" ]; then
  echo "colab_check: installing kd_rl changed TensorFlow/Keras:" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  exit 1
fi
echo "TensorFlow and Keras kept as they were."

echo "== 3. distil from the zoo, export to TFLite, evaluate the export, train a PPO teacher"
cd "$WORK"
KD="$WORK/venv/bin/kd-rl"
$KD distill --teacher CartPole-v1-dqn --env CartPole-v1 --steps 3000 --eval-episodes 20 --out runs/student --no-progress
$KD export runs/student/student.keras --format tflite --out runs/student/student.tflite
$KD evaluate runs/student/student.tflite --env CartPole-v1 --episodes 20
$KD train-teacher --env CartPole-v1 --algo ppo --steps 4096 --out runs/ppo --no-progress
"$WORK/venv/bin/python" - <<'PY'
import json
import kd_rl  # noqa: F401
import keras
from kd_rl.models import load_policy
from kd_rl.policies import load_any_policy
from kd_rl.data import visited_states
import numpy as np

student = load_policy("runs/student/student.keras")
exported = load_any_policy("runs/student/student.tflite")
states = visited_states(student, "CartPole-v1", 1000, seed=0, epsilon=0.1)
np.testing.assert_allclose(exported(states), student(states).numpy(), rtol=1e-5, atol=1e-5)
teacher = json.load(open("runs/ppo/metrics.json"))
assert teacher["algo"] == "ppo" and teacher["env_steps"] >= 4096, teacher
assert keras.__version__.startswith("3.13"), keras.__version__
print("TFLite export exact on 1,000 visited states; PPO teacher trained:", teacher["mean_return"])
PY

echo "== 4. every notebook in fast mode, each copied to a folder outside the repository"
$PIP install --quiet "pytest>=8,<9" pytest-timeout nbmake ipykernel
mkdir "$WORK/course"
cp "$REPO"/notebooks/[0-9][0-9]_*.ipynb "$WORK/course/"
cd "$WORK/course"
NBMAKE=("$WORK/venv/bin/python" -m pytest -q -p no:cacheprovider --timeout 1800 --nbmake --rootdir "$WORK/course")
KD_RL_FAST=1 "${NBMAKE[@]}" ./*.ipynb

echo "== 5. a runtime without kd_rl: notebook 01's first cell installs it from the uploaded wheel"
$PIP uninstall --quiet --yes kd_rl
mkdir "$WORK/fresh"
# As `make dist` builds it: from a clean build folder, so that no module deleted from the source ships.
rm -rf "$REPO/build"
"$WORK/venv/bin/python" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/fresh" "$REPO"
rm -rf "$REPO/build"
cp "$REPO/notebooks/01_article_reproduced.ipynb" "$WORK/fresh/"
cd "$WORK/fresh"
if "$WORK/venv/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("kd_rl") is not None)'; then
  KD_RL_FAST=1 "$WORK/venv/bin/python" -m pytest -q -p no:cacheprovider --timeout 1800 --nbmake \
    --rootdir "$WORK/fresh" 01_article_reproduced.ipynb
else
  echo "colab_check: kd_rl is still importable after pip uninstall" >&2
  exit 1
fi
"$WORK/venv/bin/python" - "$REPO" <<'PY'
import sys
from importlib.metadata import distribution

import kd_rl

origin = distribution("kd_rl").read_text("direct_url.json") or ""
assert sys.argv[1] not in kd_rl.__path__[0], f"kd_rl came from the repository: {kd_rl.__path__[0]}"
assert ".whl" in origin, f"kd_rl was not installed from the wheel: {origin}"
print("kd_rl", kd_rl.__version__, "installed by the notebook from", origin)
PY
after=$($PIP freeze | grep -i -E '^(tensorflow|keras|tf-keras|tf_keras)==' | sort)
if [ "$before" != "$after" ]; then
  echo "colab_check: the notebook's install cell changed TensorFlow/Keras:" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  exit 1
fi
echo "colab_check: passed"
