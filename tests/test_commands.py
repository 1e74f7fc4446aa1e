"""The command lines: one parser per config dataclass, --help complete and truthful, one flag style, and the
installed entry points."""

from __future__ import annotations

import re

import pytest

from seqrl.data.collect import main as collect_main
from seqrl.evaluation.command import main as evaluate_main
from seqrl.evaluation.command import parse_evaluate_args
from seqrl.evaluation.config import EvaluateConfig
from seqrl.parsing import ConfigError, field_names
from seqrl.hub.__main__ import main as hub_main
from seqrl.training.cli import parse_train_args
from seqrl.training.command import main as train_main
from seqrl.training.config import TrainConfig

OPTION = re.compile(r"^\s+(?:-\w, )?(--[\w.-]+)", re.MULTILINE)  # the option that starts a line of the help
MAINS = {"train.py": train_main, "evaluate.py": evaluate_main, "hub push": lambda a: hub_main(["push", *a]),
         "hub push_dataset": lambda a: hub_main(["push_dataset", *a]), "collect": collect_main}


def help_text(command: str, capsys) -> str:
    """What ``COMMAND --help`` prints (run in the test process: the same parser, without a Python start)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        MAINS[command](["--help"])
    assert exit_.value.code in (0, None)
    return capsys.readouterr().out


@pytest.mark.parametrize("script, config, extra", [
    ("train.py", TrainConfig, {"--config", "--algo"}),
    ("evaluate.py", EvaluateConfig, set()),
])
def test_help_lists_every_config_key_and_nothing_else(script, config, extra, capsys):
    text = help_text(script, capsys)
    listed = set(OPTION.findall(text)) - {"--help"}
    keys = {f"--{name}" for name in field_names(config)}
    assert keys - listed == set()  # every key, of every algorithm, planner and online setting included
    assert listed - keys == extra  # and no option that is not a key (draccus' --config_path, "--data" ...)


@pytest.mark.parametrize("command", list(MAINS))
def test_help_shows_real_defaults_and_no_none(command, capsys):
    """A field left unset (None) says in its help what that means; the help never prints "(default: None)"."""
    text = " ".join(help_text(command, capsys).split())  # help lines wrap anywhere
    assert "(default: None)" not in text
    if command == "evaluate.py":
        assert "(default: 10000)" in text and "the policy's saved mode" in text


def test_train_help_covers_the_nested_configs_hub_and_resume(capsys):
    keys = field_names(TrainConfig)
    for key in ("online.env_steps", "online.mix_ratio", "algo.planner.beam_width", "algo.expectile", "eval.video",
                "push_to_hub", "private", "push_every_checkpoint", "resume", "resume_from_checkpoint", "report_to",
                "log_level"):
        assert key in keys
    assert "global norm" not in help_text("train.py", capsys)  # grad_clip clips each named group separately


def test_train_options_parse_as_the_help_says():
    """Keys from each nested config parse, a bool alone means true, lists take several values, and what draccus
    alone used to offer (--config_path, a bare --data or --planner) is refused."""
    cfg = parse_train_args(["--resume", "--output_dir", "runs/x", "--private", "--report_to", "none",
                            "--online.env_steps", "0", "--algo", "iql", "--algo.expectile", "0.8", "--eval.video"])
    assert cfg.resume and cfg.private and cfg.eval.video and cfg.algo.expectile == 0.8 and cfg.report_to == "none"
    assert parse_train_args(["--resume", "true", "--output_dir", "runs/x"]).resume  # both spellings of a bool
    assert not parse_train_args(["--compile", "false"]).compile
    tt = parse_train_args(["--algo", "tt", "--algo.planner.beam_width", "4"])
    assert tt.algo.planner.beam_width == 4
    assert parse_train_args(["--eval.target_returns", "100", "200"]).eval.target_returns == [100.0, 200.0]
    for rejected in (["--config_path", "x.yaml"], ["--data", "x"], ["--planner", "x"]):
        with pytest.raises(ConfigError, match="unrecognized arguments"):
            parse_train_args(rejected)


def test_evaluate_parses_from_the_same_settings_as_training():
    cfg = parse_evaluate_args(["--policy", "p", "--target_returns", "-600", "-300", "--planner", "beam_width=2",
                               "horizon=1", "--env_kwargs", '{"g": 5.0}', "--trust_remote_code"])
    assert cfg.target_returns == [-600.0, -300.0] and cfg.planner == ["beam_width=2", "horizon=1"]
    assert cfg.env_kwargs == {"g": 5.0} and cfg.trust_remote_code
    assert cfg.seed == TrainConfig().eval.seed  # one default seed for both commands
    assert parse_evaluate_args(["--policy", "p", "--mixed_precision", "no"]).mixed_precision == "no"  # not YAML's false
    assert parse_train_args(["--mixed_precision", "no"]).mixed_precision == "no"
    with pytest.raises(ConfigError, match="--policy is required"):
        parse_evaluate_args([])
    with pytest.raises(ConfigError, match="at least 1"):
        parse_evaluate_args(["--policy", "p", "--episodes", "0"])


@pytest.mark.parametrize("command", sorted(MAINS))
def test_one_flag_style_underscores(command, capsys):
    options = set(OPTION.findall(help_text(command, capsys)))
    assert len(options) > 2 and {option for option in options if "-" in option[2:]} == set()
