"""Talking to the Letta server: the HTTP client, the stack lock and the stack's serial record."""
