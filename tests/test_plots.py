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
