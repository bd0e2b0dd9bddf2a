"""LA65x: policy rules (letta_apply.policy): their files, and the resources a plan breaks
them with, with what each means and what to do."""

from __future__ import annotations

from ..errors import define

_M = "ManifestError"
_V = "Violation"

# fmt: off

# LA65x: policies
define("LA650", _M, "not a policy file",
       "A file or folder given with --policy (or in the manifest's `policy: files:`) cannot be "
       "read as one: no such file, a folder without .yaml files, or a top level that is not "
       "`rules:`.",
       "Give a policy file as README, Policies shows one.")
define("LA651", _M, "a policy rule not as the format says",
       "A rule misses a field, has one it does not take, one of the wrong type, or an id "
       "another rule has.",
       "Fix the rule at the position the message gives.")
define("LA652", _M, "a rule's expression does not compile",
       "A condition (or a `{{...}}` in a message) is not valid CEL; the position is where the "
       "CEL parser stopped.",
       "Fix the expression; CEL's syntax is that of Kubernetes admission policies.")
define("LA653", _M, "a rule's expression over the limits",
       "A condition or message is too long, nests too deeply, or nests one comprehension (all, "
       "exists, exists_one, map, filter) in another: evaluation would not stay bounded.",
       "Split the rule, or precompute with the `stack` summary (README, Policies).")
define("LA654", _M, "an unknown name or function in a rule",
       "An expression names a variable rules are not given, or a function CEL here does not "
       "have.",
       "Use resource, change, stack, address, kind, template, sensitive and the functions "
       "README, Policies lists.")
define("LA655", "PolicyViolated, Violation", "a policy rule broken at error",
       "A resource (or its planned change) breaks a rule of severity error: the plan is refused "
       "and apply writes nothing.",
       "Change the manifest as the message says, or have the policy's owners add an exception.")
define("LA656", _V, "a policy rule broken at warning",
       "A resource breaks a rule of severity warning: reported, applied all the same.",
       "Review it; the policy's owners may make it an error later.")
define("LA657", _V, "a policy rule could not be evaluated",
       "A rule's condition failed on a resource (a missing key: test it with has(); a wrong "
       "type; a result that is not true or false) or ran out of its time budget. A rule of "
       "severity error that fails refuses the plan, as a broken one does.",
       "Fix the rule (has(), size() checks), or narrow what it applies to.")
