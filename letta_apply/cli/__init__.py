"""The command line: arguments, rendering and progress. `main` is the `letta-apply` command."""

from .commands import main

__all__ = ["main"]
