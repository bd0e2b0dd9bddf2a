"""The codes of the problems users can meet, with what each means and what to do: docs/errors.md
is written from them (scripts/schemas). Each resource kind declares the codes of its own checks
and requests in its folder (LA4xx, and where they fall elsewhere), so that a new kind touches
nothing outside it. A code once given is never given to another problem: one no longer raised
moves to errors.RETIRED."""

from __future__ import annotations

from .errors import define

RANGES = {
    "1": "reading the manifest: its files, YAML, data given to the Python API, files it names",
    "2": "the manifest language: variables, `${...}` references, for_each and count, secrets",
    "3": "checks of the manifest: its schema (a code per kind of rule), checks across it",
    "4": "each resource kind's own checks (a decade per kind, declared in the kind's folder)",
    "5": "the server: connections, its answers, projects",
    "6": "plans: saved plan files, stale plans, resources a plan refuses",
    "7": "apply and the stack lock",
    "8": "memory kept safe: backups, restore, Agent Files, export and convert",
    "9": "usage: command-line options and arguments of the Python API",
}
"""What the first digit of a code says: the step that found the problem. LA1xx to LA4xx are
found before any request is sent: nothing was read from the server or written."""

_M, _U = "ManifestError", "UsageError"

# fmt: off

# LA1xx: reading the manifest
define("LA101", _M, "a manifest file cannot be read",
       "A path given with -f is missing, not a regular file, unreadable or over the size limit.",
       "Check the path and its permissions; a manifest file is at most 64 MB.")
define("LA102", _M, "no manifest file",
       "No manifest file was given, or a folder given with -f holds no *.yaml or *.yml file.",
       "Name the manifest with -f FILE, or a folder that holds it.")
define("LA103", _M, "not UTF-8",
       "The file is not UTF-8 text (UTF-16, or a byte that UTF-8 does not allow).",
       "Save the file as UTF-8.")
define("LA104", _M, "a character YAML does not allow",
       "The file holds a NUL, a control character or a lone surrogate, which YAML refuses.",
       "Remove the character at the position shown (write it as an escape in a quoted string).")
define("LA105", _M, "invalid YAML",
       "The file is not valid YAML: an unclosed quote or bracket, a tab used to indent, a "
       "mapping that is not indented as it should be, an alias with no anchor, two documents.",
       "Fix the syntax at the position shown.")
define("LA106", _M, "empty manifest",
       "The manifest file holds nothing.",
       "Write at least `version: 1` and `stack: NAME`.")
define("LA107", _M, "a manifest over a limit",
       "The manifest passes a limit letta-apply sets to stay fast and safe: over 1,000,000 "
       "values (aliases expanded), nested over 100 levels, over 64 MB of text.",
       "Split the manifest, or cut what repeats; reading stopped where the limit was passed.")
define("LA108", _M, "a value that contains itself",
       "A YAML alias or merge, or a Python list or mapping, refers to a value that contains it.",
       "Break the cycle: a manifest is a tree.")
define("LA109", _M, "a YAML value that is not plain data",
       "A value uses a YAML tag or form letta-apply does not read (a timestamp, a binary, a "
       "non-finite number, a custom tag), or a tagged value that cannot be read as its tag says.",
       "Quote it to make it a string, or write it as a plain string, number, boolean or null.")
define("LA110", _M, "'<<' merges a value that is not a mapping",
       "A YAML merge key (`<<`) names something other than a mapping or a list of mappings.",
       "Merge mappings only.")
define("LA111", _M, "duplicate key",
       "A mapping has the same key twice; YAML would silently keep the last.",
       "Keep one of them (the message says where the first is).")
define("LA112", _M, "a key that is not a string",
       "A mapping key is a number, a boolean, null, a list or a mapping.",
       "Quote the key.")
define("LA113", _M, "a manifest that is not a mapping",
       "A manifest file (or the data given to Stack.from_dict) is a list or a scalar, not a "
       "mapping of sections.",
       "Write the manifest as a mapping: `version`, `stack`, `blocks`, `agents`...")
define("LA114", _M, "declared in two files",
       "Two files of one manifest declare the same key of a section.",
       "Keep the declaration in one file.")
define("LA115", _M, "files of one manifest disagree",
       "Two files of one manifest set a scalar section (`version`, `stack`) differently.",
       "Set it the same in every file, or in one file only.")
define("LA116", _M, "data that is not plain",
       "A manifest, variable values or environment given to the Python API holds an object "
       "that is not plain data, or a mapping whose items cannot be read.",
       "Pass str, int, float, bool, None, list and dict only (an enum member counts as its "
       "value).")
define("LA117", _M, "a number that cannot be kept",
       "A number given to the Python API is not finite, or is a whole number of over 4300 "
       "digits.",
       "Pass a finite number of a sensible size.")
define("LA118", _M, "a Python API argument of the wrong type",
       "An argument of Stack.from_dict or Stack.from_files (name, variables, env, var_files, "
       "paths, base_dir) is not of the type it takes.",
       "Pass what the message says it expects.")
define("LA120", _M, "a file the manifest names may not be read",
       "A file field (value_file, source_file, files, ...) names a file outside the folder "
       "given to -f, or a name that cannot be a file's.",
       "Move the file inside the manifest's folder, or pass --allow-outside-files.")
define("LA121", _M, "a file the manifest names does not exist",
       "A file field names a file that is not there (looked for relative to the manifest "
       "file that names it).",
       "Fix the path, relative to the manifest file.")
define("LA122", _M, "a file the manifest names cannot be read",
       "A file field names a directory, a pipe or a device, a file over its size limit, or "
       "one that cannot be opened.",
       "Name a regular, readable file within the size limit.")
define("LA123", _M, "a file the manifest names is not UTF-8",
       "A file read as text (a value, a prompt, a tool's source, an archive's passages) is "
       "not UTF-8.",
       "Save the file as UTF-8.")

# LA2xx: the manifest language
define("LA201", _M, "undefined variable",
       "`${var.NAME}` names a variable the manifest does not declare under `variables:`.",
       "Declare it, or fix the name (the message suggests a close one).")
define("LA202", _M, "environment variable not set",
       "`${env.NAME}` names an environment variable that is not set.",
       "Set it before running, or stop using it.")
define("LA203", _M, "each outside for_each",
       "`${each.key}` or `${each.value}` is used outside a block or agent with `for_each`.",
       "Use it inside a `for_each` template only.")
define("LA204", _M, "no such field of each",
       "`${each.key.X}` or `${each.value.X}` names a field the instance's value does not have.",
       "Name a field of the `for_each` values, or use `${each.value}` whole.")
define("LA205", _M, "count.index outside count",
       "`${count.index}` is used outside a block or agent with `count`.",
       "Use it inside a `count` template only.")
define("LA206", _M, "unknown reference",
       "`${...}` is none of var.NAME, env.NAME, each.key, each.value, count.index.",
       "Use one of those, or write `$${` for a literal `${`.")
define("LA207", _M, "unclosed reference",
       "A `${` has no matching `}`.",
       "Close it, or write `$${` for a literal `${`.")
define("LA208", _M, "a list or map inside a string",
       "A reference to a list or a map is part of a longer string.",
       "Use the reference as the whole value.")
define("LA210", _M, "'[' or ']' in a key",
       "A key of a block or agent holds '[' or ']', which addresses keep for instances.",
       "Rename the key; instances are made by for_each or count.")
define("LA211", _M, "for_each or count without a value",
       "`for_each` or `count` is empty or null, which would make no instance (and delete "
       "every one on the server).",
       "Write `count: 0` or `for_each: []` to mean no instances.")
define("LA212", _M, "too many instances",
       "A template makes more instances than --max-instances allows (10,000 by default).",
       "Raise --max-instances if that many are meant.")
define("LA213", _M, "for_each and count together",
       "A block or agent sets both `for_each` and `count`.",
       "Keep one of them.")
define("LA214", _M, "sensitive for_each or count",
       "`count`, or the keys of `for_each`, come from a sensitive value: they are shown (in "
       "addresses and counts).",
       "Make them from values that are not sensitive.")
define("LA215", _M, "count that is not a whole number",
       "`count` is not a whole number of 0 or more.",
       "Give a whole number.")
define("LA216", _M, "a for_each list of other than strings",
       "A `for_each` list holds values that are not strings; its items become instance keys.",
       "List strings, or use a map of keys to values.")
define("LA217", _M, "a for_each key listed twice",
       "A `for_each` list holds the same string twice: two instances would share an address.",
       "List each key once.")
define("LA218", _M, "for_each that is not a list or a map",
       "`for_each` is a scalar.",
       "Give a list of strings or a map.")
define("LA219", _M, "for_each or count on an agent's own block",
       "An entry of an agent's `memory_blocks` sets `for_each` or `count`.",
       "Template the agent (its own blocks come with each instance), or use a shared block.")
define("LA220", _M, "a template named without an instance",
       "A reference names a block or agent with for_each or count by its key alone.",
       "Name one instance (`worker[0]`, `region[eu]`), or, in a list, every one (`region[*]`).")
define("LA221", _M, "a field and its file both set",
       "Both a field and the file field that reads it (`value` and `value_file`) are set.",
       "Keep one of them.")
define("LA222", _M, "a file field that is not a path",
       "A file field (value_file, system_file, ...) is not a string.",
       "Give the file's path, relative to the manifest file.")
define("LA223", _M, "a sensitive value where it would be shown",
       "A sensitive variable is used in a field that plans and outputs show (a name, a label, "
       "a tag, a tool rule).",
       "Use it only in a value, description, system prompt, metadata, secrets or credentials.")
define("LA230", _M, "variables that are not a mapping",
       "The `variables:` section is not a mapping of names to declarations.",
       "Write `variables: {NAME: {type: string}}`.")
define("LA231", _M, "invalid variable name",
       "A variable's name is not letters, digits and '_', starting with a letter or '_'.",
       "Rename the variable.")
define("LA232", _M, "a variable declaration that is not a mapping",
       "A variable is declared as a scalar or a list.",
       "Declare it as a mapping (`type`, `default`, `sensitive`, `description`), or empty.")
define("LA233", _M, "unknown key in a variable",
       "A variable's declaration has a key other than type, default, sensitive, description.",
       "Remove or fix the key.")
define("LA234", _M, "unknown variable type",
       "A variable's `type` is not string, number, bool, list or map.",
       "Use one of those types.")
define("LA235", _M, "a variable's sensitive or description of the wrong type",
       "`sensitive` is not true or false, or `description` is not a string.",
       "Fix the value.")
define("LA236", _M, "a default not of its variable's type",
       "A variable's `default` is not of its declared `type`.",
       "Fix the default or the type.")
define("LA237", _M, "a value for an undeclared variable",
       "--var, a --var-file or the Python API gives a value to a variable the manifest does "
       "not declare.",
       "Declare the variable, or fix its name.")
define("LA238", _M, "a value not of its variable's type",
       "A value given for a variable (--var, --var-file, LETTA_APPLY_VAR_*, the Python API) "
       "cannot be read as the variable's type.",
       "Give a value of the declared type.")
define("LA239", _M, "a variables file that is not a mapping",
       "A --var-file is not a mapping of variable names to values.",
       "Write it as `NAME: value` lines.")
define("LA240", _M, "--var without name=value",
       "A --var is not `name=value` (its text is not shown: it may hold a secret).",
       "Write --var NAME=VALUE.")
define("LA241", _M, "a variable without a value",
       "A declared variable has no default and was given no value.",
       "Give it a default, or set it with --var, a --var-file or LETTA_APPLY_VAR_<name>.")
define("LA242", _M, "a sensitive boolean",
       "A sensitive variable is, or holds, a boolean: with two values it cannot be kept secret.",
       "Make it not sensitive, or not a boolean.")

# LA3xx: checks of the manifest (the schema: a code per kind of rule; then checks across it)
define("LA301", _M, "invalid key",
       "A key (a resource's key, a variable's, an instance's) is not letters, digits, '_' and "
       "'-', starting with a letter or '_', at most 100 characters.",
       "Rename the key.")
define("LA302", _M, "unknown key",
       "A key the manifest's schema does not know, often a typo.",
       "Fix the key (the message suggests a close one) or remove it; see docs/kinds/.")
define("LA303", _M, "missing required key",
       "A required key is missing (`version`, `stack`, an agent's `model`...).",
       "Add the key.")
define("LA304", _M, "wrong type",
       "A value is not of the type its field takes (a string for a list, a number for a "
       "string...).",
       "Give a value of the type named; quote a number or boolean meant as a string.")
define("LA305", _M, "unsupported manifest version",
       "`version` is not a version this letta-apply reads (or is a string).",
       "Write `version: 1`.")
define("LA306", _M, "a value other than the one allowed",
       "A field that takes one value holds another.",
       "Give the value the message names.")
define("LA307", _M, "invalid stack name",
       "`stack` is not lowercase letters, digits, '_', '.' and '-', starting with a letter "
       "or digit, at most 63 characters.",
       "Rename the stack (renaming a live stack makes a new one: see `moved`).")
define("LA308", _M, "invalid model or embedding handle",
       "`model` or `embedding` is not written as provider/model.",
       "Write it as the server lists it, e.g. `letta/letta-free`.")
define("LA309", _M, "a value that does not match its pattern",
       "A string does not have the form its field takes.",
       "Give a value matching the pattern shown.")
define("LA310", _M, "empty value",
       "A string that must not be empty is.",
       "Give a value, or leave the field out.")
define("LA311", _M, "too short or too long",
       "A string is shorter or longer than its field allows.",
       "Shorten or lengthen it to the bound shown.")
define("LA312", _M, "a number out of range",
       "A number is below or above what its field allows.",
       "Give a number within the bound shown.")
define("LA313", _M, "listed twice",
       "A list whose items must be unique holds one twice.",
       "Remove the second (the message says where the first is).")
define("LA314", _M, "reserved key letta_apply",
       "`metadata` or `properties` has the key `letta_apply`, where letta-apply keeps its "
       "ownership marks.",
       "Use another key.")
define("LA315", _M, "another schema rule",
       "A value breaks a rule of the manifest's schema not listed above (a value not among "
       "those allowed, too few items...).",
       "Fix it as the message says; docs/kinds/ lists every field.")
define("LA320", _M, "a character Letta cannot store",
       "A string or key holds a NUL or a lone surrogate, which Letta's database refuses.",
       "Remove the character.")
define("LA325", _M, "reserved tag",
       "A tag starts with `letta-apply:` or `letta-apply-lock:`, which letta-apply keeps for "
       "its marks and its lock.",
       "Use another tag.")
define("LA326", _M, "reserved label",
       "A block's label is one letta-apply keeps for its lock or its bookkeeping blocks.",
       "Use another label.")
define("LA327", _M, "reserved metadata key",
       "`metadata` has a key letta-apply keeps for its stack lock.",
       "Use another key.")
define("LA328", _M, "block key reserved for a bookkeeping block",
       "A shared block's key is the label of one of letta-apply's own bookkeeping blocks "
       "(plans show their changes at block.<label>).",
       "Use another key.")
define("LA329", _M, "block key that is a reserved label",
       "A shared block without `label` takes its key as label, and that label is reserved.",
       "Set another `label`, or use another key.")
define("LA330", _M, "import or move into an address not declared",
       "An `imports:` or `moved:` entry's `to` names an address the manifest does not declare.",
       "Declare the resource, or fix the address.")
define("LA331", _M, "two entries into one address",
       "Two `imports:` or `moved:` entries bring a resource to the same address.",
       "Keep one of them.")
define("LA332", _M, "import id of another kind",
       "An `imports:` id does not start with the prefix of the kind its address names.",
       "Give the id of a resource of that kind (`agent-...`, `block-...`).")
define("LA333", _M, "import by name of a kind imported by id",
       "An `imports:` entry gives a `name` for a kind that is imported by id only.",
       "Give its `id`.")
define("LA334", _M, "move to another kind",
       "A `moved:` entry moves a resource to an address of another kind.",
       "Move within one kind; import the other.")
define("LA335", _M, "move from an address still declared",
       "A `moved:` entry's `from` is still declared in the manifest.",
       "Remove the old key (a move renames it), or the entry.")
define("LA336", _M, "moved twice",
       "Two `moved:` entries move the same address.",
       "Keep one of them.")
define("LA337", _M, "removed but still declared",
       "A `removed:` entry names an address the manifest still declares.",
       "Delete the resource's entry, or the `removed:` one.")
define("LA338", _M, "both moved and removed",
       "An address is in `moved:` and in `removed:`.",
       "Keep one of them.")
define("LA339", _M, "removed twice",
       "Two `removed:` entries name the same address.",
       "Keep one of them.")

# LA5xx: the server
define("LA501", "ServerUnreachable", "server unreachable",
       "No connection to the Letta server: refused, a name that does not resolve, a timeout, "
       "a connection lost (after the retries of --max-retries).",
       "Check --base-url (LETTA_BASE_URL) and that the server runs; a run can be repeated.")
define("LA502", "ApiError", "credentials refused",
       "The server answered 401 or 403: the API key is missing, wrong, or may not do this.",
       "Check --api-key (LETTA_API_KEY), and --project on Letta Cloud.")
define("LA503", "ApiError", "not found on the server",
       "The server answered 404 for a resource: it was deleted while the command ran, or an "
       "id given (imports, force-unlock) names nothing.",
       "Plan again; check the ids the manifest gives.")
define("LA504", "ApiError", "conflict on the server",
       "The server answered 409 or 423: what was asked clashes with what it holds now (a "
       "name taken, a resource busy).",
       "Read the server's message; plan again once the clash is gone.")
define("LA505", "ApiError", "server busy",
       "The server kept answering 408 or 429 (too many requests) past the retries allowed.",
       "Run again later, or raise --max-retries and --retry-max-time.")
define("LA506", "ApiError", "server error",
       "The server answered 5xx: it failed (after retries, where retrying is safe).",
       "Look at the server's logs; apply again to converge (nothing is made twice).")
define("LA507", "ApiError", "request refused",
       "The server refused a request as wrong (400, 422 and other 4xx): sending it again gets "
       "the same answer.",
       "Fix what the server's message names, in the manifest or on the server.")
define("LA508", "RouteGone", "the server does not offer this kind",
       "A route a kind of resource needs answered 404 or 410: this server (or Letta Cloud) "
       "does not offer the kind.",
       "Remove that section from the manifest for this server, or use a server that has it.")
define("LA510", "ApiError", "an answer letta-apply cannot use",
       "A request succeeded but its answer is not what it should be (not JSON, not a list), "
       "or a change could not be made as planned for a reason the message gives.",
       "Read the message; check that --base-url is a Letta server of a supported version.")
define("LA511", "ServerStateError", "no such project",
       "--project names no project on the server, or more than one.",
       "Give a project's id, slug or name as the message lists them.")
define("LA512", "ServerStateError", "a server without projects",
       "--project is given, but the server has no projects (projects are Letta Cloud's).",
       "Leave out --project (LETTA_PROJECT) for a self-hosted server.")

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
