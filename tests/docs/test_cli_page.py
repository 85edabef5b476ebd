"""docs/cli.md names every command and every option the parser has."""

import argparse
from pathlib import Path

from cfexp.cli.main import build_parser

PAGE = Path(__file__).parents[2] / "docs" / "cli.md"


def test_every_command_and_option_is_in_the_cli_page():
    text = PAGE.read_text()
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    missing = []
    for name, command in commands.items():
        if f"cfexp {name}" not in text:
            missing.append(f"cfexp {name}")
        for action in command._actions:
            shown = action.help != argparse.SUPPRESS and action.option_strings and action.dest != "help"
            if shown and action.option_strings[-1] not in text:
                missing.append(f"cfexp {name} {action.option_strings[-1]}")
    assert "--version" in text and "sweep.variants.NAME.key" in text
    assert not missing, f"docs/cli.md leaves out {missing}"
