"""Showing plans and results to people: text and markdown (text.py), what deletes hold
(memory.py), graphs (diagram.py). Shared by the CLI and the Python API."""
