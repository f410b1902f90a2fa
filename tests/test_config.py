"""kd_rl.config: every distillation setting declared once, and the CLI and docs generated from it."""

import sys
from dataclasses import fields
from pathlib import Path

import pytest

from kd_rl.cli import _config_from_args, build_parser
from kd_rl.config import MULTITASK_NAMES, DistillConfig, MultiTaskConfig, cli_settings, options_markdown
from kd_rl.errors import KdRlError

ROOT = Path(__file__).resolve().parent.parent


def _parse(*argv):
    args = build_parser().parse_args(["distill", "--out", "run", *argv])
    return _config_from_args(args)


def test_every_setting_is_on_the_command_line():
    flagged = {s.name for s in cli_settings()}
    assert {f.name for f in fields(DistillConfig)} - flagged == {"env_id"}  # from --env
    multi = {MULTITASK_NAMES.get(name, name) for name in flagged}
    assert {f.name for f in fields(MultiTaskConfig)} - multi == {"env_ids"}
    flags = [s.flag for s in cli_settings()]
    assert len(flags) == len(set(flags))


def test_flags_reach_the_config_and_defaults_stay_the_configs():
    config = _parse(
        "--teacher", "t", "--env", "CartPole-v1", "--num-envs", "4", "--collect-per-round", "250",
        "--updates-per-round", "50", "--epsilon", "0.1", "--beta-start", "0.9", "--beta-end", "0.2",
        "--eval-every", "0", "--curve-episodes", "3", "--constant-std", "--lr", "0.003", "--hidden", "16,16",
    )  # fmt: skip
    assert isinstance(config, DistillConfig)
    assert (config.num_envs, config.collect_per_round, config.updates_per_round) == (4, 250, 50)
    assert (config.epsilon, config.beta_start, config.beta_end, config.eval_every) == (0.1, 0.9, 0.2, 0)
    assert config.curve_episodes == 3 and config.state_dependent_std is False and config.learning_rate == 0.003
    assert config.hidden_units == (16, 16) and config.batch_size == DistillConfig().batch_size
    multi = _parse("--teacher", "a", "--env", "CartPole-v1", "--teacher", "b", "--env", "Acrobot-v1", "--hidden", "32")
    assert isinstance(multi, MultiTaskConfig) and multi.trunk_units == (32,)
    assert multi.batch_size == MultiTaskConfig().batch_size == 64  # a multi-task run keeps its own defaults


@pytest.mark.parametrize(
    "argv, match",
    [
        (
            ["--teacher", "a", "--env", "CartPole-v1", "--teacher", "b", "--env", "Acrobot-v1", "--actors", "2"],
            "--actors: not available for multi-task runs",
        ),  # fmt: skip
        (["--teacher", "a", "--env", "CartPole-v1", "--adapter", "8"], "--adapter is for multi-task students"),
        (["--teacher", "a", "--env", "CartPole-v1", "--beta-start", "0.9", "--beta-end", "0.95", "--steps", "9"], None),
    ],
)
def test_options_of_the_other_kind_of_run_are_refused(argv, match):
    if match is None:
        assert _parse(*argv).steps == 9
        return
    with pytest.raises(KdRlError, match=match):
        _parse(*argv)


def test_out_of_range_values_are_refused_by_the_parser_before_tensorflow():
    from kd_rl.cli import main

    assert main(["distill", "--teacher", "a", "--env", "E", "--out", "r", "--epsilon", "1.5"]) == 2
    assert main(["distill", "--teacher", "a", "--env", "E", "--out", "r", "--eval-every", "-1"]) == 2


def test_the_docs_option_table_is_the_generated_one():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import options_table
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    text = (ROOT / "docs" / "cli.md").read_text()
    assert options_table.with_table(text) == text, "run: python scripts/options_table.py"
    assert options_markdown().count("\n| `--") == len(cli_settings())
