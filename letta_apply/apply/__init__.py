"""Applying a plan: its changes in dependency order, in parallel within a level."""
