"""LA8xx: problems keeping memory safe (backups, restore, Agent Files, export and
convert), with what each means and what to do."""

from __future__ import annotations

from ..errors import define

# fmt: off

# LA8xx: memory kept safe: backups, restore, Agent Files, export and convert
define("LA801", "BackupFailed", "backup failed",
       "The backup a delete waits for could not be made (export or write failed); the "
       "delete was not sent.",
       "Fix what the message names (disk space, permissions, the server's export), then "
       "apply again; --no-backup skips backups.")
define("LA802", "AgentFileError", "an Agent File letta-apply will not read",
       "The Agent File (.af) is not JSON, not an object, or breaks the format where the "
       "message says (a missing field, an id used twice, a reference to nothing).",
       "Give an Agent File as Letta exports it.")
define("LA810", "RestoreError", "no backup there",
       "The path given to restore does not exist.",
       "Give a backup folder or record file (apply prints where it saved them).")
define("LA811", "RestoreError", "a backup record cannot be read",
       "A backup record file cannot be read, or is not JSON.",
       "Check the file; restore reads the .json records apply wrote.")
define("LA812", "RestoreError", "not a backup record",
       "The file given to restore is not a letta-apply backup record.",
       "Give a record, or the folder of a run's records.")
define("LA813", "RestoreError", "no backup record in the folder",
       "The folder given to restore holds no letta-apply backup record.",
       "Give the folder of one run (under the backup folder, one per stack and run).")
define("LA814", "RestoreError", "records of several stacks",
       "The folder holds records of more than one stack.",
       "Restore one stack at a time (one run's folder).")
define("LA815", "RestoreError", "a record that cannot go to that address",
       "A record's kind cannot be restored at the address given (--address).",
       "Give an address of the same kind.")
define("LA816", "RestoreError", "the address is held",
       "The stack already holds a resource at an address to restore; nothing was restored.",
       "Restore at another --address, or into another --stack.")
define("LA818", "RestoreError", "--address with several records",
       "--address names one resource, but the folder holds several records.",
       "Restore one record file with --address.")
define("LA821", "ServerStateError", "an export that does not lead with its agent",
       "Letta's export of an agent does not start with that agent; nothing was written.",
       "Check the server's version; export again.")
define("LA830", "ExportError", "nothing to export",
       "No agent matches the selection, or every selected one is already managed by a "
       "stack; nothing was written.",
       "Change --id, --name, --tag or --all.")
define("LA831", "ExportError", "the stack owns no agent",
       "export --format af found no agent of the stack on the server; nothing was written.",
       "Apply the manifest first, or check --base-url.")
define("LA832", "ExportError", "a conversion that would not validate",
       "The manifest converted from an Agent File would not pass validate; nothing was "
       "written.",
       "Read the first problem named; fix the Agent File or finish the manifest by hand.")
define("LA833", "ExportError", "a file in the way",
       "convert would overwrite a file that exists with other content; nothing was written.",
       "Move it, or write the manifest into another folder with -o.")
# fmt: on
