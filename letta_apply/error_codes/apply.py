"""LA7xx: problems of apply and the stack lock, with what each means and what to do."""

from __future__ import annotations

from ..errors import define

# fmt: off

# LA7xx: apply and the stack lock
define("LA701", "ApplyError", "a change failed",
       "Apply stopped at a failed change; each failure is a line with its own code. What was "
       "done is done, and said.",
       "Fix what the failures name, then apply again: it converges without duplicates.")
define("LA702", "ApplyError", "apply interrupted",
       "A signal (Ctrl-C, a cancelled job) stopped the apply: changes in flight finished, no "
       "new one started.",
       "Apply again to finish.")
define("LA703", "Problem, DestroyPrevented", "prevent_destroy",
       "The plan would delete a resource declared with `prevent_destroy: true`; nothing was "
       "applied.",
       "Remove `prevent_destroy` first if the delete is meant, or change the manifest so "
       "that it keeps the resource.")
define("LA710", "LockError", "stack locked",
       "Another run holds the stack's lock, and kept it past --lock-timeout.",
       "Wait for it; if no run holds it any more, `letta-apply force-unlock ID` (the "
       "message gives the id).")
define("LA711", "LockError", "not a lock id",
       "force-unlock was given something that is not a lock id (block-<uuid>).",
       "Copy the id from the error that named the lock.")
define("LA712", "LockError", "no such lock",
       "force-unlock names a lock that is not on the server (released, or taken over).",
       "Nothing to do: the stack is not locked by it.")
define("LA713", "LockError", "not a lock record",
       "force-unlock names a block that is not a letta-apply lock record; it was not deleted.",
       "Check the id.")
define("LA714", "ApiError", "the lock's lease could not be renewed",
       "The server did not take the lock's renewals for too long: another run may take the "
       "lock over, so this one stopped sending.",
       "Apply again once the server answers.")
# fmt: on
