"""Many stacks against one server from one process (run), and their one summary (report)."""
