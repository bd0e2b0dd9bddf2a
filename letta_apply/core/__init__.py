"""The vocabulary every phase shares, below all of them: the desired and live state (model.py),
what a plan is made of (changes.py), the marks letta-apply leaves on what it owns (marks.py), the
stack's record (record.py), and the masking of sensitive values (sensitive.py)."""
