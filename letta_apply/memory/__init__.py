"""What agents remember, kept safe outside the server: Letta's Agent File (`.af`), read and
written; backups before every delete (backup.py, save.py), what a plan's deletes hold (held.py),
and `restore` (restore.py).
"""
