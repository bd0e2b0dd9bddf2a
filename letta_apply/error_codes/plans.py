"""LA6xx: problems of plans (saved plan files, stale plans, resources a plan refuses),
with what each means and what to do."""

from __future__ import annotations

from ..errors import define

# fmt: off

# LA6xx: plans
define("LA601", "PlanFileError", "plan file cannot be read",
       "The file given as a saved plan cannot be opened.",
       "Check the path; `plan --out FILE` writes one.")
define("LA602", "PlanFileError", "not a plan file",
       "The file given as a saved plan is not one: not UTF-8, not JSON, or JSON that is not "
       "a letta-apply plan.",
       "Give a file `plan --out` wrote.")
define("LA603", "PlanFileError", "a plan of another format version",
       "The saved plan was written by a letta-apply whose plan format differs.",
       "Plan again with this letta-apply.")
define("LA604", "PlanFileError", "a manifest given as a plan",
       "The file given as a saved plan is a manifest.",
       "Pass the manifest with -f (apply -f FILE).")
define("LA605", "PlanFileError", "a plan for another server",
       "The saved plan was made against another server URL or project.",
       "Apply it with the --base-url and --project it was made with, or plan again.")
define("LA606", "PlanFileError", "a saved plan needs its manifest",
       "The saved plan changes sensitive values, which are never saved in it.",
       "Pass the manifest it was made from with -f, and the same variables.")
define("LA607", "PlanFileError", "a plan for another stack",
       "The saved plan is for another stack than the manifest given with -f.",
       "Pass the manifest the plan was made from.")
define("LA610", "StalePlanError", "stale plan: the server changed",
       "A resource the plan touches changed on the server since the plan was made; nothing "
       "was applied.",
       "Plan again, review, apply the new plan.")
define("LA611", "StalePlanError", "stale plan: the manifest changed",
       "The manifest, a file it reads or a variable changed since the plan was made; nothing "
       "was applied.",
       "Plan again from the manifest as it is now.")
define("LA612", "StalePlanError", "stale plan: a sensitive value changed",
       "A sensitive value the plan overwrites changed on the server since the plan was made "
       "(or the plan was made with another API key); nothing was applied.",
       "Plan again.")
define("LA613", "StalePlanError", "stale plan: a change would differ",
       "A change of the plan would not be made the same way now (the server or a sensitive "
       "variable changed); nothing was applied.",
       "Plan again.")
define("LA621", "Problem", "a delete that would leave agents of others without it",
       "A resource the plan would delete is still attached to agents this stack does not "
       "manage; it is not deleted.",
       "Detach it from those agents first.")
define("LA622", "Problem", "a resource that needs a refused one",
       "A resource depends on one that the plan refuses, so it is refused too.",
       "Fix the refused resource the message names.")
define("LA623", "Problem", "nothing to import",
       "An `imports:` entry names no resource on the server, or (by name) more than one.",
       "Fix the entry's id or name.")
define("LA624", "Problem", "an import of what the stack already manages",
       "An `imports:` entry names a resource this stack manages at another address.",
       "Use `moved:` to rename an address.")
define("LA625", "Problem", "an import of another stack's resource",
       "An `imports:` entry names a resource another stack owns; a resource has one owner.",
       "Remove it from the other stack first.")
define("LA626", "Problem", "a name taken on the server",
       "The server holds a resource of the same kind and name (an agent, a tool, an MCP "
       "server...) that this stack does not manage: apply leaves it alone.",
       "Adopt it with an `imports:` entry (the hint gives it), or declare another name.")
# fmt: on
