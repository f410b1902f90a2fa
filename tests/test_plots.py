import json

import numpy as np
import pytest
from PIL import Image

from kd_rl import plots


def _check_png(path, min_w=500, min_h=300):
    image = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert image.shape[1] >= min_w and image.shape[0] >= min_h
    assert image.std() > 10, "the figure looks blank"
    assert (image < 128).mean() > 0.005, "too little ink: missing lines or text"


def _curve(n=6, top=500.0):
    steps = np.linspace(1000, 6000, n)
    return {"env_steps": steps, "mean_return": np.linspace(20, top, n), "agreement": np.linspace(0.5, 0.99, n)}


def _has_labels(fig):
    titled = fig.axes[0].get_title() or fig._suptitle is not None
    labelled = all(ax.get_ylabel() for ax in fig.axes) and all(ax.get_xlabel() for ax in fig.axes if ax.get_title())
    return titled and labelled and any(ax.get_legend() for ax in fig.axes)


@pytest.mark.parametrize(
    "make",
    [
        lambda: plots.plot_training_curve({"dqn": _curve(), "ppo": _curve(top=480)}, solved=475),
        lambda: plots.plot_distillation_curve({"student": _curve()}, teacher_return=500.0),
        lambda: plots.plot_comparison_bars(["teacher", "student"], [67586, 352], [500.0, 498.0], [0.0, 5.0]),
        lambda: plots.plot_compression_curve(
            {"CartPole-v1": [(352, 500), (352, 498), (86, 470), (86, 490), (23, 200), (23, 260)]},
            teacher={"CartPole-v1": (67586, 500.0)},
        ),
        lambda: plots.plot_loss_comparison(
            {"kl (T=0.01)": [500, 498], "mse": [300, 420], "nll": [480, 500]}, teacher_return=500.0
        ),
    ],
    ids=["training", "distillation", "bars", "compression", "losses"],
)
def test_every_figure_is_labelled_and_not_blank(make, tmp_path):
    fig = make()
    assert _has_labels(fig)
    path = plots.save(fig, tmp_path / "fig.png")
    _check_png(path)


def test_plot_runs_refuses_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"\.png"):
        plots.plot_runs([tmp_path], tmp_path / "fig.jpg")
    with pytest.raises(ValueError, match="curve.csv"):
        plots.plot_runs([tmp_path / "nothing"], tmp_path / "fig.png")
    assert not (tmp_path / "fig.png").exists()


def _fake_run(path, seed, returns, teacher="CartPole-v1-dqn", hidden=50):
    from kd_rl.config import DistillConfig

    path.mkdir()
    (path / "student.keras").write_text("")
    rows = ["env_steps,mean_return,std_return,agreement,kl,loss,train_seconds"]
    rows += [f"{1000 * (i + 1)},{r},0,0.9,0.1,0.5,{i}" for i, r in enumerate(returns)]
    (path / "curve.csv").write_text("\n".join(rows) + "\n")
    config = DistillConfig(seed=seed, hidden_units=hidden).to_dict()
    metrics = {**config, "teacher": teacher, "teacher_mean_return": 500.0, "command": f"kd-rl distill --seed {seed}"}
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def test_seeds_of_one_setting_are_drawn_as_their_mean_with_the_spread(tmp_path, monkeypatch):
    runs = [_fake_run(tmp_path / f"h50-seed{s}", s, r) for s, r in enumerate([(10, 100), (30, 300), (20, 500)])]
    other = _fake_run(tmp_path / "h8", 0, (5, 50), hidden=8)  # another setting: its own line
    drawn = {}
    real = plots.plot_distillation_curve

    def spy(curves, **kwargs):
        drawn.update(curves)
        return real(curves, **kwargs)

    monkeypatch.setattr(plots, "plot_distillation_curve", spy)
    path = plots.plot_runs([*runs, other], tmp_path / "fig.png")
    _check_png(path)
    assert set(drawn) == {"h50-seed (mean of 3 seeds, min-max shaded)", "h8"}
    mean = drawn["h50-seed (mean of 3 seeds, min-max shaded)"]
    np.testing.assert_allclose(mean["mean_return"], [20, 300])
    np.testing.assert_allclose(mean["mean_return_low"], [10, 100])
    np.testing.assert_allclose(mean["mean_return_high"], [30, 500])
    assert "mean_return_low" not in drawn["h8"]
    with pytest.raises(ValueError, match="different env_steps"):
        plots.seed_mean_curve(
            [{"env_steps": np.array([1, 2]), "mean_return": np.zeros(2)}] * 2
            + [{"env_steps": np.array([1, 3]), "mean_return": np.zeros(2)}]
        )
