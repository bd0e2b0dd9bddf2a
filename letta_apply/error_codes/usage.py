"""LA9xx: usage problems (command-line options, arguments of the Python API), with what
each means and what to do."""

from __future__ import annotations

from ..errors import define

_U = "UsageError"

# fmt: off

# LA9xx: usage
define("LA901", _U, "command line not understood",
       "The command line cannot be parsed: an unknown option, a missing argument, a value of "
       "the wrong form.",
       "See `letta-apply COMMAND --help`.")
define("LA902", _U, "an option is missing",
       "The command needs an option it was not given (a manifest, a saved plan, --stack, a "
       "selection, -o).",
       "Give the option the message names.")
define("LA903", _U, "options that do not go together",
       "Two options were given that exclude each other, or one that does not fit the others.",
       "Drop one of them, as the message says.")
define("LA904", _U, "an argument's value not taken",
       "An argument of the Python API (or an option) has a value of a type or range it does "
       "not take.",
       "Give a value of the kind the message names.")
define("LA905", _U, "no terminal to confirm",
       "apply asks for confirmation, but standard input is not a terminal.",
       "Review the plan, then pass --auto-approve (or apply a saved plan).")
define("LA906", _U, "--target names nothing declared",
       "A --target address (or Stack.plan's targets) is not declared in the manifest.",
       "Fix the address (the message suggests one), as plan lists them.")
define("LA907", _U, "server URL without a scheme",
       "--base-url (LETTA_BASE_URL) does not start with http:// or https://.",
       "Write the URL in full, e.g. http://localhost:8283.")
define("LA908", _U, "an output file cannot be written",
       "The file given to `plan --out` or `export -o` cannot be written (no such folder, no "
       "permission, a directory); nothing was written to the server.",
       "Give a path in a folder that exists and that you may write to.")
# fmt: on
