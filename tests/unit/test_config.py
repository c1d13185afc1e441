"""The training config tree (trainer/config.py): one declaration gives the checks, the `train` flags with their
defaults, the sweep's option table, the identity and the summary; StreamConfig refuses bad values at once."""
import argparse
import math
import subprocess
import sys

import pytest

from synthstream import cli
from synthstream.commands import flags
from synthstream.errors import UserError
from synthstream.stream import StreamConfig
from synthstream.style import load_style
from trainer import config as cfg
from trainer.config import TrainConfig
from trainer.sweep import TRAIN_OPTIONS, parse_space, train_config


@pytest.mark.parametrize("field, value, fragment", [
    ("max_restarts", -5, "max_restarts = -5 must be an integer"),
    ("max_restarts", "x", "max_restarts = 'x' must be an integer"),
    ("max_restarts", True, "max_restarts = True must be an integer"),
    ("ready_timeout_s", math.nan, "ready_timeout_s = nan must be in (0, 86400]"),
    ("ready_timeout_s", -1, "ready_timeout_s = -1 must be in (0, 86400]"),
    ("resource_wait_s", math.nan, "resource_wait_s = nan must be in"),
    ("batch_size", True, "batch_size = True must be an integer"),
    ("actor_cpus", math.inf, "actor_cpus = inf must be in"),
])
def test_stream_config_refuses_bad_values_at_once(field, value, fragment):
    with pytest.raises(UserError) as e:
        StreamConfig(style=load_style("tiny"), **{field: value})
    assert fragment in str(e.value)


def test_stream_config_keeps_unlimited_restarts():
    assert StreamConfig(style=load_style("tiny"), max_restarts=-1).max_restarts == -1


@pytest.mark.parametrize("kw, fragment", [
    ({"val_size": 2_000_000}, "val_size = 2000000 must be at most"),
    ({"style": "wikipedia", "val_size": 20000}, "at most 16384 for style 'wikipedia' (rank 0"),
    ({"warmup_steps": -1}, "warmup_steps = -1 must be an integer >= 0"),
    ({"grad_clip": 0.0}, "grad_clip = 0.0 must be a number > 0"),
    ({"weight_decay": -1e-4}, "weight_decay = -0.0001 must be a number >= 0"),
    ({"weight_decay": math.nan}, "weight_decay = nan"),
    ({"lr": 2.0}, "lr = 2.0 must be in (0, 1)"),
    ({"steps": 2.5}, "steps = 2.5 must be an integer"),
    ({"gpu": "yes"}, "gpu = 'yes' must be true or false"),
    ({"max_minutes": 0}, "max_minutes = 0 must be in"),
    ({"preset": "huge"}, "preset 'huge' is unknown"),
    ({"prior_scale": -1.0}, "prior_scale = -1.0 must be a number > 0"),
])
def test_train_config_checks_every_option(kw, fragment):
    with pytest.raises(UserError) as e:
        TrainConfig(**kw)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_the_identity_is_what_it_was():
    """Run folders made before the config tree must still resume: the same keys and values."""
    style = load_style("tiny")
    c = TrainConfig(stream=StreamConfig(style=style, seed=3, batch_size=32), preset="cpu", lr=1e-3)
    assert c.identity() == {"style": style.canonical, "seed": 3, "batch_size": 32, "preset": "cpu", "workers": 1,
                            "lr": 1e-3, "warmup_steps": 50, "weight_decay": 1e-4, "grad_clip": 1.0, "val_size": 512}
    flat = TrainConfig(style="tiny", seed=3, batch_size=32, lr=1e-3)        # the same run, built from options
    assert flat.identity() == c.identity()
    assert TrainConfig(prior_scale=1.5).identity()["style"] != TrainConfig().identity()["style"]


def test_summary_lists_every_option():
    summary = TrainConfig(style="tiny", max_minutes=2.0).summary()
    assert list(summary) == [f.name for f in cfg.options()]
    assert summary["style"] == "tiny" and summary["max_minutes"] == 2.0
    assert TrainConfig(max_minutes=2.0).max_seconds == 120


def test_every_option_is_a_train_flag_with_its_default_in_help():
    parser = cli.build_parser()
    text = subprocess.run([sys.executable, "-m", "synthstream", "train", "--help"], capture_output=True, text=True,
                          check=True).stdout
    flat = " ".join(text.split())
    for f in cfg.options():
        if not f.metadata["cli"]:
            continue
        flag = "--" + (f.metadata["flag"] or f.name).replace("_", "-")
        assert flag in text
        if f.default not in (None, False):
            assert f"(default: {f.default})" in flat, flag
    args = parser.parse_args(["train", "--out", "o", "--warmup-steps", "7", "--grad-clip", "0.5"])
    built = flags.config_from_args(args, TrainConfig)
    assert (built.warmup_steps, built.grad_clip, built.lr) == (7, 0.5, TrainConfig().lr)


def test_the_sweep_flags_are_derived_from_sweep_config():
    args = cli.build_parser().parse_args(["sweep", "--space", "s.toml", "--out", "o", "--trials", "3",
                                          "--resource-wait", "5", "--metric", "val/loss"])
    space = parse_space({"search": {"lr": {"choice": [1e-3]}}})
    config = flags.config_from_args(args, cfg.SweepConfig, space=space)
    assert (config.trials, config.resource_wait_s, config.mode, config.scheduler) == (3, 5.0, "min", "asha")
    assert set(config.identity()) == {"space", "metric", "mode", "trials", "scheduler", "eval_data"}


def test_the_sweep_option_table_is_derived():
    assert {"warmup_steps", "grad_clip", "weight_decay", "torch_threads", "max_minutes"} <= set(TRAIN_OPTIONS)
    assert "resource_wait_s" not in TRAIN_OPTIONS and "log_every" not in TRAIN_OPTIONS
    assert TRAIN_OPTIONS["worker_cpus"] == (float, 1.0) and TRAIN_OPTIONS["steps"] == (int, 500)
    space = parse_space({"train": {"warmup_steps": 5}, "search": {"lr": {"choice": [1e-3]}}})
    assert train_config(space.options({}), seed=9).warmup_steps == 5
    with pytest.raises(UserError, match="train.warmup_steps: 1.5 must be an integer"):
        parse_space({"train": {"warmup_steps": 1.5}, "search": {"lr": {"choice": [1e-3]}}})


def test_every_command_shows_its_defaults_and_the_version():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        help_text = " ".join(command.format_help().split())
        for action in command._actions:
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS) \
                    and action.help and "default" not in action.help:
                assert f"(default: {action.default})" in help_text, (name, action.dest)
    r = subprocess.run([sys.executable, "-m", "synthstream", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("synthstream ")


def test_docs_hold_the_current_option_table():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()
    assert cfg.reference() in doc, "run `python -m trainer.config` to rewrite the table in docs/config.md"
