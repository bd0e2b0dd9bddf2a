"""An Agent File turned into a manifest (`letta-apply convert`): the manifest it writes
(manifest.py), its fields (fields.py), first messages (messages.py), and the files around it
(files.py)."""
