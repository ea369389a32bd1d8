"""``--help`` as plain text: every option with its help and default, no reStructuredText markup.

The subcommands' descriptions are their module docstrings, written for the API reference
(``code``, :func:`name`); the terminal shows them without that markup. The formatter is set on every
parser of the tree by :func:`plain_help`, so a new subcommand gets it without asking.
"""

from __future__ import annotations

import argparse
import re

#: Help of options that several subcommands share, for those that give none of their own.
SHARED_HELP = {
    "--seed": "random seed",
    "--threads": "CPU threads of torch (default: torch's choice)",
    "--batch-size": "cells per minibatch (default: the model's)",
    "--resolution": "Leiden resolution (higher gives more, smaller clusters)",
}

_ROLE = re.compile(r":[a-z]+:`~?([^`<]+?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``([^`]+)``")
_TICKS = re.compile(r"`([^`]+)`")
_SAYS_DEFAULT = re.compile(r"\(default\b|default:")


def plain(text: str | None) -> str | None:
    """``text`` without reStructuredText roles and backquotes."""
    if not text:
        return text
    return _TICKS.sub(r"\1", _LITERAL.sub(r"\1", _ROLE.sub(r"\1", text)))


class PlainHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions kept as written (paragraphs) minus markup; each option's help ends with its default."""

    def _format_text(self, text):
        return super()._format_text(plain(text))

    def _get_help_string(self, action):
        text = (plain(action.help) or "").replace("(%(default)s)", "(default: %(default)s)")
        default = action.default
        bare = f"({default})"
        if default is not None and text.rstrip().endswith(bare):  # "min reads (5)": say it is the default
            text = text.rstrip()[: -len(bare)] + "(default: %(default)s)"
        if (
            "%(default)" not in text
            and not _SAYS_DEFAULT.search(text)
            and default is not None
            and default is not argparse.SUPPRESS
            and not isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))
            and action.option_strings
        ):
            shown = "on" if default is True else "off" if default is False else "%(default)s"
            text = f"{text} (default: {shown})" if text else f"(default: {shown})"
        return text


def plain_help(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` and every subparser below it :class:`PlainHelpFormatter` and shared option help."""
    parser.formatter_class = PlainHelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                plain_help(sub)
        elif not action.help and action.option_strings:
            action.help = next((SHARED_HELP[o] for o in action.option_strings if o in SHARED_HELP), None)
