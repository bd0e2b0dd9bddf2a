"""Talking to the Letta server: the HTTP client, reading a stack's live state, the stack lock."""
