"""Reading the server through the kinds: a stack's live state (live.py) and a manifest written
from what the server holds (export.py)."""
