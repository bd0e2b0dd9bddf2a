"""The hidden command `letta-apply __complete-addresses`, which shell completion runs on each
Tab to offer a manifest's resource addresses."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import NoReturn

from ...pipeline import declared_addresses
from ..arguments import EXIT_ERROR, EXIT_OK, load_options, options_of
from ..output import Stream

ADDRESSES_COMMAND = "__complete-addresses"
PROG = "letta-apply"


class _QuietParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would print usage on stderr: completion must print nothing.
        raise ValueError(message)


def addresses_parser() -> argparse.ArgumentParser:
    """The options `__complete-addresses` takes: those that say which manifest to load."""
    p = _QuietParser(prog=f"{PROG} {ADDRESSES_COMMAND}", add_help=False)
    load_options(p)
    return p


def complete_addresses(argv: Sequence[str], out: Stream) -> int:
    """Print the addresses `--target` accepts for the manifest the options name, one a line.
    Runs on every press of Tab: it sends no request, and on any problem (no -f yet, a manifest
    that does not load) it prints nothing, so the shell simply offers no address."""
    try:
        args, _ = addresses_parser().parse_known_args(list(argv))
        if not args.file:
            return EXIT_ERROR
        addresses = declared_addresses(args.file, options_of(args))
    except Exception:
        return EXIT_ERROR
    # Never a secret: addresses are keys, which may not hold sensitive values.
    out.write("".join(f"{a}\n" for a in addresses))
    return EXIT_OK
