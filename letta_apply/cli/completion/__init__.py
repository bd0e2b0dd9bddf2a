"""Shell completion: `letta-apply completion bash|zsh|fish` prints a script generated from the
command line's own parser, so that a new command or option completes without anyone listing it.

What an option's value completes is read from the parser too: its `choices`; a metavar
`a|b` (those words); PATH, FILE or PLAN (file names); ADDRESS (the manifest's resource
addresses). Addresses come from the hidden command `letta-apply __complete-addresses`, given the
`-f`, `--var` and `--var-file` options already on the line: it reads the manifest, never talks to
a server, and prints nothing at all when it cannot read it.
"""

from __future__ import annotations

import argparse

from ..arguments import SHELLS
from .bash import bash_script
from .fish import fish_script
from .spec import spec
from .zsh import zsh_script


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script for `shell`."""
    s = spec(parser)
    if shell == "bash":
        return bash_script(s)
    if shell == "zsh":
        return zsh_script(s)
    if shell == "fish":
        return fish_script(s)
    raise ValueError(f"no completion for shell {shell!r}; choose from {', '.join(SHELLS)}")
