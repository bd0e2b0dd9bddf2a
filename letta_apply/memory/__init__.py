"""What agents remember, kept safe outside the server: Letta's Agent File (`.af`), read, written,
and turned into a manifest (convert)."""
