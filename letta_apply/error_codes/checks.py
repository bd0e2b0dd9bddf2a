"""LA3xx: problems the manifest's checks find (its schema, a code per kind of rule; then
checks across it), with what each means and what to do. Each kind's own are LA4xx, in its folder."""

from __future__ import annotations

from ..errors import define

_M = "ManifestError"

# fmt: off

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
# fmt: on
