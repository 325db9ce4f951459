"""README.md is a front page whose commands run: at most about 200 lines, and every shell command
in it calls a script or console script that exists, with arguments its own argument parser
accepts (the parser is run on them, the job is not), and config files that exist."""

import argparse
import re
import runpy
import shlex
import sys
from unittest import mock

import pytest

from conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
PYTHONS = ("python", "python3", ".venv/bin/python")


def _console_scripts() -> dict:
    """``weaksup-*`` console script -> the file of its module (setup.py's entry points)."""
    text = (REPO_ROOT / "setup.py").read_text()
    return {
        name: str(REPO_ROOT / "tools" / f"{module}.py")
        for name, module in re.findall(r'"(weaksup-[\w-]+)=weaksup\.tools\.(\w+):\w+"', text)
    }


def readme_commands(text: str = ""):
    """Every command of the ``bash`` blocks of ``text`` (default: the README) as a token list:
    continuation lines joined, comments and ``VAR=value`` prefixes dropped, ``a && b`` split."""
    blocks = re.findall(r"```bash\n(.*?)```", text or README.read_text(), re.S)
    out = []
    for line in "\n".join(blocks).replace("\\\n", " ").splitlines():
        tokens = shlex.split(line, comments=True)
        while tokens:
            cmd = tokens[: tokens.index("&&")] if "&&" in tokens else tokens
            tokens = tokens[len(cmd) + 1 :]
            while cmd and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", cmd[0]):
                cmd = cmd[1:]
            if cmd:
                out.append(cmd)
    return out


def _script(cmd):
    """(script file, its arguments) of a command, or None for one that runs no Python file."""
    scripts = _console_scripts()
    if cmd[0] in scripts:
        return scripts[cmd[0]], cmd[1:]
    if cmd[0] in PYTHONS and cmd[1] == "-m" and cmd[2].startswith("weaksup.tools."):
        return str(REPO_ROOT / "tools" / (cmd[2].split(".")[-1] + ".py")), cmd[3:]
    if cmd[0] in PYTHONS and cmd[1] != "-m":
        return str(REPO_ROOT / cmd[1]), cmd[2:]
    return None


class _Parsed(Exception):
    pass


def parse(script: str, args) -> argparse.Namespace:
    """What the script's argument parser makes of ``args`` (its job is stopped right there)."""
    real = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, a=None, namespace=None):
        raise _Parsed(real(self, a, namespace))

    with mock.patch.object(
        argparse.ArgumentParser, "parse_args", parse_and_stop
    ), mock.patch.object(sys, "argv", [script, *args]):
        with pytest.raises(_Parsed) as parsed:
            runpy.run_path(script, run_name="__main__")
    return parsed.value.args[0]


def test_readme_is_a_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= 210, len(lines)
    assert len(readme_commands()) >= 10


@pytest.mark.parametrize("cmd", readme_commands(), ids=lambda c: " ".join(c)[:60])
def test_every_readme_command_parses(cmd, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    if cmd[0] == "bash":
        assert (REPO_ROOT / cmd[1]).is_file(), cmd
        return
    found = _script(cmd)
    if found is None:  # python -m pytest ...: the test command itself
        assert cmd[1:3] == ["-m", "pytest"], cmd
        return
    script, args = found
    assert (REPO_ROOT / script).is_file(), f"{script} does not exist"
    ns = parse(script, args)
    config = getattr(ns, "config_file", "")
    if config and not config.startswith("output/"):
        from weaksup.config import resolve_config_path

        resolve_config_path(config)  # raises naming the file


def _own_data(name: str):
    """(script, args) of README's "Your own data" call of the script ``name``."""
    text = README.read_text()
    section = text[text.index("## Your own data") :]
    section = section[: section.index("\n## ")]
    (cmd,) = [c for c in readme_commands(section) if name in c[:2]]
    return _script(cmd)


def test_own_data_predict_and_export_parse_as_intended():
    """Every flag keeps its values and the trailing KEY VALUE pairs stay overrides
    (``--format a b MODEL.WEIGHTS w`` once swallowed the key)."""
    ns = parse(*_own_data("tools/export_model.py"))
    assert ns.format == ["torchscript", "onnx"] and ns.output == "output/nuts/export"
    assert ns.opts == ["MODEL.WEIGHTS", "output/nuts/model_final.pth"]
    ns = parse(*_own_data("tools/predict.py"))
    assert ns.opts == ["MODEL.WEIGHTS", "output/nuts/model_final.pth"]
    assert ns.confidence_threshold == 0.05
