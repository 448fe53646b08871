"""`terminology <command> --help` describes every option."""

from __future__ import annotations

import argparse

import pytest

from terminology.cli import build_parser


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("command", ["serve", "reload", "check", "import-cpt"])
def test_every_option_of_a_command_has_a_description(command: str) -> None:
    parser = _subcommands()[command]
    undocumented = [a.option_strings or a.dest for a in parser._actions
                    if not isinstance(a, argparse._HelpAction) and not a.help]
    assert undocumented == []


def test_check_help_names_content_package_and_no_bundled(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["check", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "extra folder of FHIR JSON content" in text
    assert "FHIR package (.tgz" in text
    assert "not the bundled" in text
