"""kd-rl record (videos) and kd-rl package (a Hub-ready folder): issue #36, items 4 and 5."""

import json
import re
import sys

import gymnasium
import imageio.v3 as iio
import keras
import numpy as np
import pytest
from conftest import Countdown, make_cartpole_teacher, one_line_error, with_options

from kd_rl.cli import main
from kd_rl.errors import KdRlError, MissingDependency
from kd_rl.policies import NumpyPolicy, load_any_policy
from kd_rl.record import record

ZOO = "CartPole-v1-dqn"
# CartPole renders 600 x 400; each panel gets a 20-pixel label strip above it.
WIDTH, HEIGHT = 600, 400 + 20


def _always_left() -> NumpyPolicy:
    """A CartPole policy that always pushes left (action 0): its episodes end within a few steps."""
    return NumpyPolicy([(np.zeros((4, 2), np.float32), np.array([1.0, 0.0], np.float32))])


def _always_left_lengths(seeds) -> list[int]:
    """The reference: CartPole played by hand with action 0 from each seed."""
    lengths = []
    for seed in seeds:
        env = gymnasium.make("CartPole-v1")
        env.reset(seed=seed)
        steps, done = 0, False
        while not done:
            _, _, terminated, truncated, _ = env.step(0)
            steps, done = steps + 1, terminated or truncated
        env.close()
        lengths.append(steps)
    return lengths


@pytest.fixture(scope="module")
def no_render_env():
    env_id = "KdRlTest/NoRender-v0"
    gymnasium.register(env_id, entry_point=Countdown, max_episode_steps=10)
    yield env_id
    gymnasium.registry.pop(env_id, None)


# ----------------------------------------------------------------- record


def test_record_mp4_of_a_zoo_model(tmp_path, capsys):
    out = tmp_path / "clip.mp4"
    argv = ["record", ZOO, "--env", "CartPole-v1", "--out", str(out), "--episodes", "2", "--seed", "3"]
    assert main([*argv, "--max-steps", "12"]) == 0
    printed = capsys.readouterr().out
    assert "26 frames at 50 fps" in printed and "returns 12.0, 12.0" in printed and "seeds 3..4" in printed
    frames = iio.imread(out, index=None, plugin="FFMPEG")
    # Two episodes of 12 steps, each with its reset frame; padded to multiples of 16 for H.264.
    assert frames.shape == (26, 432, 608, 3) and frames.dtype == np.uint8
    meta = iio.immeta(out, plugin="FFMPEG")
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p") and meta["fps"] == 50
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temp file left


def test_record_gif_side_by_side_holds_the_finished_episode(tmp_path):
    out = tmp_path / "clip.gif"
    result = record(_always_left(), "CartPole-v1", out, teacher=make_cartpole_teacher(), seed=5, max_steps=40, fps=10)
    (student_length,) = _always_left_lengths([5])
    assert student_length < 40
    assert result["lengths"] == [student_length] and result["returns"] == [float(student_length)]
    assert result["teacher_lengths"] == [40] and result["teacher_returns"] == [40.0]  # the cap ends it
    assert result["frames"] == 41 and result["seeds"] == [5] and result["fps"] == 10
    frames = iio.imread(out, index=None)
    assert frames.shape == (41, HEIGHT, 2 * WIDTH + 4, 3)  # student | 4-pixel bar | teacher
    left, right = frames[:, :, :WIDTH], frames[:, :, WIDTH + 4 :]
    # The student's last frame (and label) is held while the teacher plays on.
    assert all(np.array_equal(frame, left[student_length]) for frame in left[student_length:])
    assert np.abs(right[-1].astype(int) - right[student_length].astype(int)).max() > 50
    assert iio.immeta(out, index=0)["duration"] == 100  # 10 fps, in milliseconds


def test_record_api_returns_match_a_hand_loop(tmp_path):
    result = record(_always_left(), "CartPole-v1", tmp_path / "a.gif", episodes=3, seed=7)
    lengths = _always_left_lengths([7, 8, 9])
    assert result["lengths"] == lengths and result["returns"] == [float(n) for n in lengths]
    assert result["frames"] == sum(lengths) + 3 and result["teacher_returns"] is None
    assert len(iio.imread(tmp_path / "a.gif", index=None)) == result["frames"]


@pytest.mark.parametrize(
    "out, extra, match",
    [
        ("clip.avi", [], "must end in .mp4 or .gif, got"),
        ("clip.mp4", ["--episodes", "0"], "--episodes: expected an integer > 0"),
        ("clip.mp4", ["--env", "Acrobot-v1"], "model expects 4 observation features but Acrobot-v1 gives 6"),
        ("clip.mp4", ["--teacher", "Acrobot-v1-dqn"], "teacher expects 6 observation features but CartPole-v1 gives 4"),
        ("clip.mp4", ["--env-kwargs", '{"render_mode": "rgb_array"}'], "leave render_mode out"),
    ],
)
def test_record_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, out, extra, match):
    argv = ["record", ZOO, "--env", "CartPole-v1", "--out", str(tmp_path / out), "--max-steps", "3"]
    argv = with_options(argv, extra)
    one_line_error(capsys, argv, match)
    assert not any(tmp_path.iterdir())


def test_record_refuses_an_env_without_rgb_array_before_loading_the_model(tmp_path, capsys, no_render_env):
    out = tmp_path / "clip.mp4"
    # The model is not even looked at: the environment is checked first.
    err = one_line_error(capsys, ["record", "NoSuchModel", "--env", no_render_env, "--out", str(out)], "rgb_array")
    assert "does not render to images" in err
    assert not any(tmp_path.iterdir())


def test_record_api_refuses_episodes_below_one(tmp_path):
    with pytest.raises(KdRlError, match="episodes must be an int >= 1, got 0"):
        record(ZOO, "CartPole-v1", tmp_path / "a.mp4", episodes=0)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("modules", [["imageio_ffmpeg"], ["imageio", "imageio.v2"]])
def test_record_mp4_without_imageio_names_the_extra(tmp_path, capsys, monkeypatch, modules):
    suffix = ".mp4"
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # its import raises ImportError
    with pytest.raises(MissingDependency, match=re.escape('pip install "kd_rl[video]"')):
        record(ZOO, "CartPole-v1", tmp_path / f"a{suffix}")
    one_line_error(capsys, ["record", ZOO, "--env", "CartPole-v1", "--out", str(tmp_path / f"a{suffix}")], "[video]")
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------- package


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real, tiny kd-rl distill run on CartPole (1,000 labelled states)."""
    root = tmp_path_factory.mktemp("package")
    teacher = root / "teacher.keras"
    make_cartpole_teacher().save(teacher)
    out = root / "run"
    argv = ["distill", "--teacher", str(teacher), "--env", "CartPole-v1", "--out", str(out)]
    assert main([*argv, "--hidden", "8", "--steps", "1000", "--eval-episodes", "3", "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def packaged(run_dir):
    out = run_dir.parent / "hub"
    assert main(["package", str(run_dir), "--out", str(out), "--episodes", "3", "--seed", "11"]) == 0
    return out


def test_package_writes_a_hub_ready_folder(packaged, run_dir):
    files = {p.name for p in packaged.iterdir()}
    expected = {"README.md", "config.json", "results.json", "replay.mp4", "student.keras", "student.tflite"}
    assert files == expected | {"student.onnx"}
    assert not [p for p in packaged.parent.iterdir() if p.name.startswith(".hub.")]  # no staging folder left

    student = keras.saving.load_model(packaged / "student.keras")  # kd_rl is imported: its classes are known
    original = keras.saving.load_model(run_dir / "student.keras")
    for a, b in zip(student.get_weights(), original.get_weights()):
        np.testing.assert_array_equal(a, b)
    states = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    tflite = load_any_policy(packaged / "student.tflite")
    np.testing.assert_array_equal(np.argmax(tflite(states), -1), student.act(states))

    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((packaged / "config.json").read_text())
    assert config["env_id"] == "CartPole-v1" and config["hidden_units"] == [8] and config["steps"] == 1000
    assert all(config[k] == metrics[k] for k in config)

    results = json.loads((packaged / "results.json").read_text())
    returns = results["student"]["returns"]
    # kd-rl distill records the final evaluation's returns per episode, and its command line.
    assert returns == metrics["student_returns"] and len(returns) == 3
    assert (
        results["student"]["seed"] == metrics["eval_seed"]
        and "as metrics.json records it" in results["student"]["source"]
    )
    assert results["mean_reward"] == f"{np.mean(returns):.2f} +/- {np.std(returns):.2f}"
    assert results["run_evaluation"]["teacher_mean_return"] == metrics["teacher_mean_return"] == 500.0
    assert results["normalised_score"] == metrics["normalised_score"]
    assert results["parameters"] == {"teacher": 702, "student": 4 * 8 + 8 + 8 * 2 + 2, "compression": 702 / 58}
    assert results["command"] == metrics["command"]
    assert results["command"].startswith("kd-rl distill --teacher ") and "--hidden 8 " in results["command"]
    assert results["machine"]["cpu"] and results["files"] == sorted(files)

    replay = iio.imread(packaged / "replay.mp4", index=None, plugin="FFMPEG")
    assert len(replay) == results["replay"]["frames"] == results["replay"]["length"] + 1
    assert results["replay"]["seed"] == 11


def test_package_of_a_run_without_per_episode_returns(run_dir, tmp_path):
    """A run made before metrics.json held its returns and command: the student is evaluated, the command rebuilt."""
    import shutil

    old = tmp_path / "old-run"
    shutil.copytree(run_dir, old)
    metrics = json.loads((old / "metrics.json").read_text())
    for key in ("student_returns", "teacher_returns", "command"):
        del metrics[key]
    (old / "metrics.json").write_text(json.dumps(metrics))
    assert main(["package", str(old), "--out", str(tmp_path / "hub"), "--episodes", "3", "--seed", "11"]) == 0
    results = json.loads((tmp_path / "hub" / "results.json").read_text())
    returns = results["student"]["returns"]
    assert len(returns) == 3 and results["student"]["seed"] == 11 and len(results["student"]["seeds"]) == 3
    assert "metrics.json holds no per-episode returns" in results["student"]["source"]
    assert results["command"].startswith("kd-rl distill --teacher ") and "--hidden 8 --" in results["command"]


def test_package_card_parses_with_huggingface_hub(packaged, monkeypatch):
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard import metadata_load
    from huggingface_hub.repocard_data import model_index_to_eval_results

    results = json.loads((packaged / "results.json").read_text())
    meta = metadata_load(packaged / "README.md")
    assert meta["library_name"] == "kd_rl"
    assert {"CartPole-v1", "reinforcement-learning", "knowledge-distillation"} <= set(meta["tags"])
    _, (result,) = model_index_to_eval_results(meta["model-index"])
    assert result.task_type == "reinforcement-learning"
    assert result.dataset_type == result.dataset_name == "CartPole-v1"
    assert (result.metric_type, result.metric_value) == ("mean_reward", results["mean_reward"])
    card = ModelCard.load(packaged / "README.md")
    assert card.data.eval_results[0].metric_value == results["mean_reward"]
    assert "upload_folder(folder_path=" in card.text and 'repo_type="model"' in card.text

    # The card's Python example runs as written, in the folder.
    (example,) = [block for block in re.findall(r"```python\n(.*?)```", card.text, re.S) if "load_model" in block]
    monkeypatch.chdir(packaged)
    namespace = {}
    exec(example, namespace)
    assert namespace["actions"].shape == (1,)


def test_package_refuses_a_non_empty_out(packaged, run_dir, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in packaged.iterdir()}
    one_line_error(capsys, ["package", str(run_dir), "--out", str(packaged)], "not empty; pass --overwrite")
    assert {p.name: p.stat().st_mtime_ns for p in packaged.iterdir()} == before


def test_package_overwrite_replaces_only_once_complete(run_dir, monkeypatch, capsys):
    import kd_rl.package

    out = run_dir.parent / "replaced"
    out.mkdir()
    (out / "old.txt").write_text("old")

    def failing_export(*args, **kwargs):
        raise KdRlError("export failed")

    monkeypatch.setattr(kd_rl.package, "export_model", failing_export)
    one_line_error(capsys, ["package", str(run_dir), "--out", str(out), "--overwrite"], "export failed")
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".replaced.")]


def test_package_overwrite_replaces_what_out_held(run_dir, capsys):
    out = run_dir.parent / "overwritten"
    out.mkdir()
    (out / "old.txt").write_text("old")
    assert main(["package", str(run_dir), "--out", str(out), "--episodes", "1", "--overwrite"]) == 0
    assert "mean_reward" in capsys.readouterr().out
    files = {p.name for p in out.iterdir()}
    assert "old.txt" not in files and {"README.md", "results.json", "student.keras"} <= files
    # The run's own three recorded returns; --episodes only counts where metrics.json has none.
    assert json.loads((out / "results.json").read_text())["student"]["episodes"] == 3


@pytest.mark.parametrize("what", ["missing", "empty", "no student"])
def test_package_refuses_a_missing_or_unfinished_run(tmp_path, capsys, run_dir, what):
    run = tmp_path / "run"
    if what != "missing":
        run.mkdir()
    if what == "no student":
        (run / "metrics.json").write_text((run_dir / "metrics.json").read_text())
    match = {"missing": "does not exist", "empty": "has no metrics.json", "no student": "has no student.keras"}[what]
    one_line_error(capsys, ["package", str(run), "--out", str(tmp_path / "hub")], match)
    assert not (tmp_path / "hub").exists()


def test_package_without_huggingface_hub_names_the_extra(tmp_path, monkeypatch, capsys, run_dir):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    one_line_error(capsys, ["package", str(run_dir), "--out", str(tmp_path / "hub")], 'pip install "kd_rl[hub]"')
    assert not (tmp_path / "hub").exists()


def test_validate_model_card_refuses_what_the_hub_would_not_show(tmp_path, packaged):
    from kd_rl.package import validate_model_card

    card = (packaged / "README.md").read_text()
    value = json.loads((packaged / "results.json").read_text())["mean_reward"]
    path = tmp_path / "README.md"
    path.write_text(card)
    validate_model_card(path, "CartPole-v1", value)  # the real card passes
    with pytest.raises(KdRlError, match="its result is"):
        validate_model_card(path, "CartPole-v1", "1.00 +/- 0.00")
    path.write_text(card.replace("library_name: kd_rl", "library_name: something-else"))
    with pytest.raises(KdRlError, match="library_name is 'something-else'"):
        validate_model_card(path, "CartPole-v1", value)
    path.write_text(card.replace("model-index:", "model-index: [\n"))
    with pytest.raises(KdRlError, match="does not parse with huggingface_hub"):
        validate_model_card(path, "CartPole-v1", value)


def test_package_refuses_an_out_folder_that_holds_the_run(run_dir, capsys):
    # --overwrite would otherwise replace the folder holding the run (and its siblings).
    one_line_error(capsys, ["package", str(run_dir), "--out", str(run_dir.parent), "--overwrite"], "holds the run")
    assert (run_dir / "student.keras").is_file()


def test_package_without_onnx_names_the_extra(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    one_line_error(capsys, ["package", str(run_dir), "--out", str(tmp_path / "hub")], 'pip install "kd_rl[onnx]"')
    assert not any(tmp_path.iterdir())
