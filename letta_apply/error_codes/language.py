"""LA2xx: problems of the manifest language (variables, `${...}` references, for_each
and count, secrets), with what each means and what to do."""

from __future__ import annotations

from ..errors import define

_M = "ManifestError"

# fmt: off

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
# fmt: on
