"""``--help`` of every subcommand: plain text (no reStructuredText markup), every option with help and default."""

from __future__ import annotations

import argparse
import re

import pytest

from splicevi.cli.main import build_parser


def _parsers():
    out = {}

    def walk(parser, name):
        out[name] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}")

    walk(build_parser(), "splicevi")
    return out


PARSERS = _parsers()


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_help_is_plain_text(name):
    text = PARSERS[name].format_help()
    assert "``" not in text and not re.search(r":(func|class|mod|meth|attr):", text), text
    assert "`" not in text, text


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_option_has_help_and_shows_its_default(name):
    parser = PARSERS[name]
    text = " ".join(parser.format_help().split())
    for action in parser._actions:
        if not action.option_strings or action.dest == "help" or isinstance(action, argparse._VersionAction):
            continue
        assert action.help, f"{name} {action.option_strings[0]}: no help"
        if action.default not in (None, False, argparse.SUPPRESS):
            shown = "on" if action.default is True else str(action.default)
            assert f"default: {shown}" in text or "(default)" in text, (
                f"{name} {action.option_strings[0]}: no default"
            )


def test_ds_fdr_target_batch_size_and_seed_say_what_they_are():
    text = " ".join(PARSERS["splicevi ds"].format_help().split())
    assert "target false discovery rate of the calls (default: 0.05)" in text
    assert "--seed SEED random seed" in text and "(default: 0)" in text
    assert "--batch-size BATCH_SIZE cells per minibatch" in text
