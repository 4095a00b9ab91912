"""One look for every ``closecast`` help page: a line per option, its default, and an epilog
with the exit codes and examples.

Each subcommand module declares ``EXAMPLES`` and ``EXIT_CODES`` beside ``add_arguments`` and
``run``; :func:`make_subparser` turns them into the subcommand's parser. Sub-subcommands
(``closecast stack up``) use it the same way.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

# argparse's own exit status for a usage error; every command shares it.
EXIT_USAGE = 2
USAGE_EXIT_TEXT = "bad usage: an unknown option or an invalid value (argparse)"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option's help (not for unset options and flags, where
    ``(default: None)`` says nothing), with the epilog's line breaks kept."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def format_epilog(examples: Sequence[str], exit_codes: Mapping[int, str]) -> str:
    """The epilog: exit codes, then one example command per line."""
    lines = ["exit status:"]
    lines += [f"  {code}  {meaning}" for code, meaning in sorted(exit_codes.items())]
    lines += ["", "examples:"]
    lines += [f"  {example}" for example in examples]
    return "\n".join(lines)


def make_subparser(
    subparsers: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    examples: Sequence[str],
    exit_codes: Mapping[int, str],
    description: str | None = None,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` with the shared formatter and an exit-code/example epilog.

    Args:
        subparsers: What ``parser.add_subparsers()`` returned.
        name: The subcommand, e.g. ``"replay"``.
        help: One line for the parent's command list (also the description by default).
        examples: Whole command lines, at least two, each runnable as written.
        exit_codes: Exit status -> meaning; the usage-error status 2 is added when absent.
        description: A longer description for the subcommand's own help page.
        parents: Parsers whose options the subcommand shares.

    Returns:
        The subcommand's parser, for ``add_argument`` calls.
    """
    codes = dict(exit_codes)
    codes.setdefault(EXIT_USAGE, USAGE_EXIT_TEXT)
    return subparsers.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=format_epilog(examples, codes),
        formatter_class=HelpFormatter,
        parents=list(parents),
    )
