"""LA1xx: problems met reading the manifest (its files, YAML, data given to the Python
API, files it names), with what each means and what to do."""

from __future__ import annotations

from ..errors import define

_M = "ManifestError"

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
# fmt: on
