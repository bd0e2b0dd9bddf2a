"""The version of letta-apply (a module of its own: every part may import it)."""

__version__ = "0.1.0"
