"""kd_rl.config: every distillation setting declared once, and the CLI and docs generated from it."""

import sys
from dataclasses import fields
from pathlib import Path

import pytest

from kd_rl.cli import _config_from_args, build_parser
from kd_rl.config import DistillConfig, MultiTaskConfig, cli_settings, options_markdown
from kd_rl.errors import KdRlError

ROOT = Path(__file__).resolve().parent.parent


def _parse(*argv):
    args = build_parser().parse_args(["distill", "--out", "run", *argv])
    return _config_from_args(args)


def test_every_setting_is_on_the_command_line():
    flagged = {s.name for s in cli_settings()}
    assert {f.name for f in fields(DistillConfig)} - flagged == {"env_id"}  # from --env (several: multi-task)
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
    assert multi.is_multitask and multi.env_ids == ("CartPole-v1", "Acrobot-v1") and multi.trunk_units == (32,)
    assert multi.batch_size == MultiTaskConfig().batch_size == 64  # a multi-task run keeps its own defaults
    assert (multi.adapter_units, multi.eval_every, config.adapter_units, config.eval_every) == (64, 5000, None, 0)


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


def test_one_config_for_one_task_or_several():
    single, multi = DistillConfig(), DistillConfig(env_id=("CartPole-v1", "Acrobot-v1"))
    assert not single.is_multitask and single.env_ids == ("CartPole-v1",)
    assert (single.hidden_units, single.batch_size, single.eval_every, single.adapter_units) == ((50,), 128, 2000, None)
    assert (multi.hidden_units, multi.batch_size, multi.eval_every, multi.adapter_units) == ((64,), 64, 5000, 64)
    assert DistillConfig(env_id=["Acrobot-v1"]).env_ids == ("Acrobot-v1",)  # a tuple (or list) of one: multi-task
    assert MultiTaskConfig(env_ids=("CartPole-v1",), trunk_units=8) == DistillConfig(
        env_id=("CartPole-v1",), hidden_units=8
    )
    again = DistillConfig(**multi.to_dict())  # what metrics.json and checkpoints record builds the same config
    assert again == multi and multi.to_dict()["env_id"] == ["CartPole-v1", "Acrobot-v1"]
    with pytest.raises(KdRlError, match="adapter_units=8 is for multi-task runs"):
        DistillConfig(adapter_units=8)
    with pytest.raises(KdRlError, match="actors is for single-task runs"):
        DistillConfig(env_id=("CartPole-v1", "Acrobot-v1"), actors=2)
    with pytest.raises(KdRlError, match=r"repeated: \['CartPole-v1'\]"):
        DistillConfig(env_id=("CartPole-v1", "CartPole-v1"))
    with pytest.raises(KdRlError, match="env_id must be an environment id or a tuple"):
        DistillConfig(env_id=())


def test_teacher_training_settings_are_declared_once_and_all_on_the_command_line():
    from kd_rl.config import TeacherConfig

    flagged = {s.name for s in cli_settings(TeacherConfig)}
    assert {f.name for f in fields(TeacherConfig)} - flagged == {"env_id"}  # from --env
    args = build_parser().parse_args(
        ["train-teacher", "--env", "Acrobot-v1", "--out", "run", "--overrides", '{"learning_rate": 0.0005}',
         "--eval-every", "500", "--eval-episodes", "7", "--kickstart", "CartPole-v1-dqn", "--kickstart-temperature",
         "0.1", "--hidden", "32,32"]
    )  # fmt: skip
    values = {s.name: getattr(args, s.name) for s in cli_settings(TeacherConfig) if getattr(args, s.name) is not None}
    assert values["overrides"] == '{"learning_rate": 0.0005}' and values["kickstart_temperature"] == 0.1
    config = TeacherConfig(env_id=args.env, **{**values, "overrides": {"learning_rate": 0.0005}})
    assert (config.eval_every, config.eval_episodes, config.hidden_units) == (500, 7, (32, 32))
    assert config.kickstart_options() == {"temperature": 0.1}
    assert options_markdown(TeacherConfig).count("\n| `--") == len(cli_settings(TeacherConfig))
    with pytest.raises(KdRlError, match=r"kickstart settings \['kickstart_weight'\] need a kickstart teacher"):
        TeacherConfig(kickstart_weight=2.0)
    with pytest.raises(KdRlError, match="algo must be one of"):
        TeacherConfig(algo="a2c")
    with pytest.raises(KdRlError, match="overrides must be a mapping"):
        TeacherConfig(overrides=[("learning_rate", 1e-3)])


def test_train_teacher_takes_a_config_or_its_settings_not_both(tmp_path):
    from kd_rl.config import TeacherConfig
    from kd_rl.teachers import train_teacher

    with pytest.raises(KdRlError, match="settings in the config"):
        train_teacher(TeacherConfig(), out_dir=tmp_path / "x", steps=10)
    with pytest.raises(KdRlError, match="needs out_dir"):
        train_teacher(TeacherConfig())
    assert not (tmp_path / "x").exists()
