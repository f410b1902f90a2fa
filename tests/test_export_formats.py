"""The deployment exports: ONNX (ONNX Runtime), TFLite for Microcontrollers (a C array) and plain C.

Each is checked against the Keras model on 10,000 states a policy really
visits: 100% argmax agreement for float exports of discrete policies, a max
action error below 1e-5 for Gaussian ones; the int8 TFLM export against
LiteRT's int8 model.
"""

import importlib.util
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import one_line_error

from kd_rl.cli import main
from kd_rl.codegen import CPolicy, compile_c
from kd_rl.data import visited_states
from kd_rl.export import export_model, supported_formats
from kd_rl.models import StudentModel, load_policy
from kd_rl.policies import OnnxPolicy, TflmPolicy, load_any_policy

pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")


@pytest.fixture(scope="module")
def cartpole_states():
    from conftest import make_cartpole_teacher

    return visited_states(make_cartpole_teacher(), "CartPole-v1", 10_000, seed=0, epsilon=0.1)


@pytest.fixture(scope="module")
def cartpole_student():
    """A 50-unit ReLU student with a normaliser, like a distilled CartPole student (weights seeded)."""
    import keras

    keras.utils.set_random_seed(3)
    return StudentModel(
        2,
        hidden_units=50,
        observation_dim=4,
        observation_mean=[0.0, 0.1, 0.0, -0.1],
        observation_std=[1.0, 0.5, 0.1, 0.5],
        observation_clip=5.0,
    )


@pytest.fixture(scope="module")
def pendulum():
    teacher = load_policy("Pendulum-v1-sac")  # a squashed Gaussian
    return teacher, visited_states(teacher, "Pendulum-v1", 10_000, seed=0, epsilon=0.1)


def _agree(a, b) -> float:
    return float(np.mean(np.argmax(a, -1) == np.argmax(b, -1)))


def test_onnx_export_agrees_on_visited_states(cartpole_student, cartpole_states, tmp_path):
    path = export_model(cartpole_student, "onnx", tmp_path / "s.onnx")
    policy = load_any_policy(path)
    assert isinstance(policy, OnnxPolicy) and not policy.is_continuous and policy.num_actions == 2
    expected = cartpole_student(cartpole_states).numpy()
    assert _agree(policy(cartpole_states), expected) == 1.0
    np.testing.assert_allclose(policy(cartpole_states[:1]), expected[:1], rtol=1e-5, atol=1e-5)


def test_onnx_and_c_export_of_a_gaussian_policy(pendulum, tmp_path):
    teacher, states = pendulum
    expected = teacher.actions_from_outputs(teacher(states).numpy())
    onnx_policy = load_any_policy(export_model(teacher, "onnx", tmp_path / "t.onnx"))
    assert onnx_policy.is_continuous and onnx_policy.session.get_outputs()[0].name == "deterministic_actions"
    assert np.max(np.abs(onnx_policy(states) - expected)) < 1e-5
    c_policy = load_any_policy(export_model(teacher, "c", tmp_path / "c"))
    assert isinstance(c_policy, CPolicy) and c_policy.is_continuous
    assert np.max(np.abs(c_policy(states) - expected)) < 1e-5
    if importlib.util.find_spec("tflite_micro"):
        out = export_model(teacher, "tflm-float", tmp_path / "m", env_id="Pendulum-v1", num_check_states=1000)
        assert json.loads((out / "export.json").read_text())["check"]["max_abs_error"] < 1e-5
        micro = load_any_policy(out)
        assert isinstance(micro, TflmPolicy) and micro.is_continuous
        assert np.max(np.abs(micro(states[:1000]) - expected[:1000])) < 1e-5


def test_c_export_compiles_and_agrees(cartpole_student, cartpole_states, tmp_path):
    out = export_model(cartpole_student, "c", tmp_path / "policy", source="test")
    assert sorted(p.name for p in out.iterdir()) == ["kd_rl_policy.c", "kd_rl_policy.h"]
    source = (out / "kd_rl_policy.c").read_text()
    assert "#include <stdlib.h>" not in source and "malloc" not in source  # no heap, no libraries but math.h
    policy = CPolicy(out)
    expected = cartpole_student(cartpole_states).numpy()
    assert _agree(policy(cartpole_states), expected) == 1.0
    np.testing.assert_allclose(policy(cartpole_states), expected, rtol=1e-4, atol=1e-5)
    # kd_rl_act, compiled strictly (C99, all warnings as errors) into a program of its own.
    main_c = tmp_path / "main.c"
    main_c.write_text(
        '#include <stdio.h>\n#include "kd_rl_policy.h"\n'
        "int main(void) { float o[KD_RL_OBSERVATION_DIM]; int n = 0;\n"
        '  while (scanf("%f %f %f %f", &o[0], &o[1], &o[2], &o[3]) == 4) { printf("%d\\n", kd_rl_act(o)); ++n; }\n'
        "  return n == 0; }\n"
    )
    program = compile_c(
        [main_c, out / "kd_rl_policy.c"], tmp_path / "act", ("-O2", "-Wall", "-Wextra", "-Werror", f"-I{out}")
    )
    sample = cartpole_states[:500]
    given = "\n".join(" ".join(f"{v:.9g}" for v in row) for row in sample)
    acts = subprocess.run([str(program)], input=given, capture_output=True, text=True, check=True).stdout.split()
    assert [int(a) for a in acts] == list(np.argmax(cartpole_student(sample).numpy(), -1))


def test_tflm_float_and_int8_exports(cartpole_student, tmp_path):
    pytest.importorskip("tflite_micro")
    out = export_model(cartpole_student, "tflm-float", tmp_path / "float", env_id="CartPole-v1", num_check_states=2000)
    record = json.loads((out / "export.json").read_text())
    assert record["check"]["argmax_agreement"] == 1.0 and record["check"]["max_abs_error"] < 1e-4
    assert "FULLY_CONNECTED" in record["operators"] and record["tensor_arena_bytes"] > 0
    data = (out / "kd_rl_policy.tflite").read_bytes()
    source = (out / "kd_rl_policy_model.cc").read_text()
    assert "alignas(16) const unsigned char kd_rl_policy_model[]" in source
    assert f"kd_rl_policy_model_len = {len(data)};" in source
    assert source.count("0x") == len(data)
    settings = (out / "kd_rl_policy_settings.h").read_text()
    if shutil.which("c++"):  # the headers compile as C++ (a whole-number constant is written 1.0f, not 1f)
        main_cc = tmp_path / "main.cc"
        main_cc.write_text(
            '#include "kd_rl_policy_model.h"\n#include "kd_rl_policy_settings.h"\nint main() { return 0; }\n'
        )
        command = ["c++", "-std=c++17", "-fsyntax-only", "-Wall", "-Werror", f"-I{out}", str(main_cc)]
        subprocess.run(command, check=True, capture_output=True)
        subprocess.run(
            ["c++", "-std=c++17", "-c", "-o", str(tmp_path / "model.o"), str(out / "kd_rl_policy_model.cc")], check=True
        )
    assert f"#define KD_RL_TENSOR_ARENA_SIZE {record['tensor_arena_bytes']}" in settings
    assert "(resolver).AddFullyConnected();" in settings and "kd_rl_observation_mean[4]" in settings
    assert f"#define KD_RL_OP_COUNT {len(record['operators'])}" in settings
    # The arena is the smallest that runs: 16 bytes less does not (probed in a child: it may crash).
    from kd_rl.export import _ARENA_PROBE

    def runs(size):
        probe = [sys.executable, "-c", _ARENA_PROBE, str(out / "kd_rl_policy.tflite"), str(size)]
        return subprocess.run(probe, capture_output=True, text=True).stdout.strip().endswith("ok")

    assert runs(record["tensor_arena_bytes"]) and not runs(record["tensor_arena_bytes"] - 16)

    out8 = export_model(cartpole_student, "tflm", tmp_path / "int8", env_id="CartPole-v1", num_check_states=2000)
    record8 = json.loads((out8 / "export.json").read_text())
    assert record8["input"]["dtype"] == "int8" and record8["output"]["dtype"] == "int8"
    check = record8["check"]
    # TFLM's reference int8 kernels round differently from LiteRT's (XNNPACK) by a few output steps;
    # each agrees with Keras as int8 rounding allows, TFLM as well as LiteRT.
    assert check["argmax_agreement"] >= check["litert_int8_argmax_agreement_with_keras"] - 0.01
    assert check["argmax_agreement"] > 0.9 and check["max_abs_error"] < 20 * record8["output"]["scale"]
    assert "#define KD_RL_INT8 1" in (out8 / "kd_rl_policy_settings.h").read_text()


def test_exports_of_a_multitask_student_per_task(tmp_path):
    from kd_rl.multitask import MultiTaskStudent

    tasks = [
        {"env_id": "CartPole-v1", "obs_dim": 4, "num_actions": 2},
        {"env_id": "Acrobot-v1", "obs_dim": 6, "num_actions": 3},
    ]
    student = MultiTaskStudent(tasks, trunk_units=(16,), adapter_units=8)
    path = student.for_task("Acrobot-v1")
    x = np.random.default_rng(0).normal(size=(256, 6)).astype(np.float32)
    policy = load_any_policy(export_model(path, "onnx", tmp_path / "acrobot.onnx"))
    np.testing.assert_allclose(policy(x), path(x).numpy(), rtol=1e-5, atol=1e-5)


def test_cli_exports_and_evaluates_each_format(tmp_path, cartpole_teacher_path, capsys):
    formats = [("onnx", "t.onnx"), ("c", "t_c")]
    if importlib.util.find_spec("tflite_micro"):
        formats.append(("tflm", "t_tflm"))
    for fmt, name in formats:
        out = str(tmp_path / name)
        assert main(["export", str(cartpole_teacher_path), "--format", fmt, "--out", out, "--env", "CartPole-v1"]) == 0
        assert "wrote" in capsys.readouterr().out
        assert main(["evaluate", str(tmp_path / name), "--env", "CartPole-v1", "--episodes", "2", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["mean_return"] == 500.0


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--format", "onnx", "--out", "x.tflite"], "must end in .onnx"),
        (["--format", "c", "--out", "x.c"], "is a folder"),
        (["--format", "tflm", "--out", "m", "--env", "Pendulum-v1"], "discrete-action policy but Pendulum-v1"),
    ],
)
def test_cli_export_bad_input(argv, match, tmp_path, cartpole_teacher_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error(capsys, ["export", str(cartpole_teacher_path), *argv], match)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_plain_c_refuses_a_model_with_its_own_call(tmp_path):
    class Recurrentish(StudentModel):  # a student with its own call(): no MLP weights to write as C
        def call(self, observations, training=False):
            return super().call(observations, training=training)

    model = Recurrentish(2, hidden_units=8, observation_dim=4)
    model(np.zeros((1, 4), np.float32))
    assert "c" not in supported_formats(model) and "onnx" in supported_formats(model)
    with pytest.raises(ValueError, match="export it as one of: tflite, tflite-int8, onnx, tflm, tflm-float"):
        export_model(model, "c", tmp_path / "c")
    assert list(tmp_path.iterdir()) == []


def test_c_export_replaces_its_own_files_only(cartpole_student, tmp_path):
    out = tmp_path / "c"
    export_model(cartpole_student, "c", out)
    export_model(cartpole_student, "c", out)  # a previous export is replaced
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="already holds notes.txt"):
        export_model(cartpole_student, "c", out)
    assert (out / "notes.txt").read_text() == "mine" and (out / "kd_rl_policy.c").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # no staging folder left behind


@pytest.mark.parametrize(
    "fmt, module, extra",
    [("onnx", "tf2onnx", "kd_rl[onnx]"), ("tflm", "tflite_micro", "kd_rl[tflm]")],
)
def test_a_missing_optional_package_names_its_extra(fmt, module, extra, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # its import raises ImportError
    out = str(tmp_path / ("m.onnx" if fmt == "onnx" else "m"))
    one_line_error(capsys, ["export", "CartPole-v1-dqn", "--format", fmt, "--out", out], f'pip install "{extra}"')
    assert list(tmp_path.iterdir()) == []


def test_loading_a_damaged_onnx_file_names_it(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf")
    with pytest.raises(ValueError, match="is not a valid ONNX model"):
        load_any_policy(junk)


def test_a_model_tflm_cannot_run_is_bad_input_naming_its_operators(tmp_path):
    pytest.importorskip("tflite_micro")
    model = StudentModel(2, hidden_units=8, observation_dim=4, activation="gelu")  # TFLM has no GELU kernel
    assert "c" not in supported_formats(model)  # nor a C or NumPy form
    with pytest.raises(ValueError, match="cannot run this model .*its operators: .*GELU"):
        export_model(model, "tflm-float", tmp_path / "m", env_id="CartPole-v1", num_check_states=100)
    with pytest.raises(ValueError, match="uses 'gelu' .*export it as one of: tflite, tflite-int8, onnx"):
        export_model(model, "c", tmp_path / "c")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_output_may_have_a_dot_in_its_name(cartpole_student, tmp_path):
    out = export_model(cartpole_student, "c", tmp_path / "policy.v2")
    assert (out / "kd_rl_policy.c").is_file()
