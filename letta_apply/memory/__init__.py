"""What agents remember, kept safe outside the server: Letta's Agent File (`.af`), read and
written; backups before every delete (backup.py), what a plan's deletes hold (held.py), and
`restore` (restore.py). Generic over the kinds: each kind whose resources hold memory says how
through kinds.holds_memory, and memory.holders finds those kinds in the registry.
"""
