"""Command-line options for PseudoMaskConfig (weaksup/pseudo/config_args.py)."""

import argparse

import pytest

from weaksup.pseudo import PseudoMaskConfig
from weaksup.pseudo.config_args import add_config_arguments, config_from_args, config_overrides


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def test_defaults_and_typed_overrides():
    assert _parse([]) == PseudoMaskConfig()
    assert config_overrides(_parse([])) == {}
    cfg = _parse(
        ["--tightness-repair", "false", "--valid-threshold", "0.95", "--prior-bilateral", "5,30,3"]
    )
    assert config_overrides(cfg) == {
        "tightness_repair": False,
        "valid_threshold": 0.95,
        "prior_bilateral": (5, 30, 3),
    }


@pytest.mark.parametrize("argv", [["--tightness-repair", "maybe"], ["--grabcut-iters", "2.5"]])
def test_bad_values_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        _parse(argv)
    assert argv[0] in capsys.readouterr().err
