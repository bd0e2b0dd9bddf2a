"""`letta-apply convert AGENT.af`: a manifest from an Agent File, so that an agent downloaded or
handed over as a file becomes a versioned, reviewable stack that `apply` creates.

Each kind converts what the file holds of it (`Kind.from_agent_file`, kinds.writing), in the
kinds' writing order: the blocks several agents hold as shared `blocks:`, custom tools as
`tools:` with their Python sources written beside the manifest, MCP servers without their
credentials, the agents (with their own blocks, the tools they use by key, their settings and,
when asked, their messages as their `initial_message_sequence`), groups. What the file holds
that a manifest does not manage (message history, folders, skills, identities...) is reported,
one note a line. Agent secrets never reach the manifest: each becomes a sensitive variable
without a value.

Pure: the Agent File in, the manifest, the tool sources and the notes out (convert.files
writes them)."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from ..core.jsonish import JsonObject, items
from ..errors import escape_controls
from ..kinds import KINDS
from ..kinds.writing import Conversion, literal, writing_order
from ..manifest.published import manifest_schema_id
from ..memory.af_format import AgentFile
from ..read.export import ManifestDumper


@dataclass(frozen=True)
class Converted:
    """A manifest made from an Agent File: the document, the tool sources it names (by path
    relative to the manifest), the notes on what was not converted, and the sensitive
    variables made for agent secrets (their values are the user's to give)."""

    document: JsonObject
    sources: dict[str, str]
    notes: tuple[str, ...]
    secrets: tuple[str, ...]
    source_name: str
    selected: int = 0  # entries of the root kind (agents) written

    def text(self) -> str:
        """The manifest as YAML, headed by the schema line (for editors) and its origin."""
        origin = escape_controls(self.source_name).replace("\n", " ")
        header = (
            f"# yaml-language-server: $schema={manifest_schema_id()}\n"
            f"# Written by `letta-apply convert` from {origin}. Review it, then\n"
            "# `letta-apply apply -f` this file creates the stack's agents.\n"
        )
        body = yaml.dump(
            self.document, Dumper=ManifestDumper, sort_keys=False, allow_unicode=True, width=100
        )
        return header + body


def convert(
    af: AgentFile, stack: str, *, messages: bool = False, tools_dir: str | None = None
) -> Converted:
    """The manifest of stack `stack` declaring what `af` holds. `messages`: keep the agents'
    user and assistant messages as their initial_message_sequence. Tool sources go under
    `tools_dir` (relative to the manifest; default: `tools`)."""
    folder = None if tools_dir is None else (tools_dir.rstrip("/") or ".")
    conv = Conversion(data=af.data, messages=messages, sources_dir=folder)
    sections: dict[str, JsonObject] = {}
    for k in writing_order(KINDS):
        section = k.from_agent_file(conv)
        if section:
            sections[k.section] = section
    # What no kind reads: the file's own part that a manifest has no place for.
    skills = items(af.data.get("skills"))
    if skills:
        conv.note(f"skills: {len(skills)} skill(s) not converted (a manifest has none)")
    doc: JsonObject = {"version": 1, "stack": stack}
    if conv.variables:
        doc["variables"] = conv.variables
    doc.update(sections)
    (root,) = [k for k in KINDS if k.root]
    selected = len(sections.get(root.section) or ())
    document = {key: literal(value) for key, value in doc.items()}
    return Converted(
        document, dict(conv.sources), tuple(conv.notes), tuple(conv.variables), af.name,
        selected,
    )  # fmt: skip
