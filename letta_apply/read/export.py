"""Write a manifest from agents and what they use that already exist, with the `imports:` that
adopt them: the way in for fleets built by hand. Server defaults are left out, so the manifest
says only what the user chose.

The manifest is written around the selected resources of the root kind (agents: kinds.writing),
each kind writing its own section (`Kind.export_section`) in the kinds' writing order: what the
agents use (shared blocks, identities, MCP servers), the agents, what is made of them (groups).
A kind that does not export is said so, in a note."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import yaml

from ..core.jsonish import JsonObject
from ..kinds import KINDS
from ..kinds.writing import Export, Selection, literal, writing_order
from ..manifest.published import manifest_schema_id
from ..server.client import LettaClient

__all__ = ["ExportFormat", "Exported", "ManifestDumper", "Selection", "export_manifest"]

ExportFormat = Literal["yaml", "json"]


@dataclass
class Exported:
    document: JsonObject  # the manifest, as data
    selected: int  # entries of the selected resources (agents) written
    summary: str  # what it declares, for people: "2 agent(s), 1 shared block(s)"
    skipped: list[str]  # why some selected resources were left out
    notes: list[str] = field(default_factory=list)  # what was not exported

    def text(self, fmt: ExportFormat = "yaml") -> str:
        """The manifest as a file: YAML with a header naming the schema (for editors) and
        what the imports do, or JSON (YAML's subset: `-f` loads it like any manifest)."""
        if fmt == "json":
            return json.dumps(self.document, indent=2, ensure_ascii=False) + "\n"
        body = yaml.dump(
            self.document, Dumper=ManifestDumper, sort_keys=False, allow_unicode=True, width=100
        )
        return _HEADER + body

    @property
    def manifest(self) -> str:
        """The manifest as YAML."""
        return self.text("yaml")


_HEADER = (
    f"# yaml-language-server: $schema={manifest_schema_id()}\n"
    "# Written by `letta-apply export`. The imports adopt these resources into the stack on\n"
    "# the next apply (it marks them; nothing else changes). Review, then commit.\n"
)


def export_manifest(
    client: LettaClient, stack: str, sel: Selection, *, include_system: bool = False
) -> Exported:
    """A manifest for stack `stack` declaring the selected agents and what they use, and the
    `imports:` that adopt them into the stack on the next apply."""
    (root,) = [k for k in KINDS if k.root]
    selected = root.export_selection(client, sel)
    ex = Export(client=client, selected=selected.found, include_system=include_system)
    sections: dict[str, object] = {}
    counts: dict[str, int] = {}
    unexported: list[str] = []
    for k in writing_order(KINDS):
        section = k.export_section(ex)
        if section is None:
            unexported.append(k.section)
        elif section:
            sections[k.section] = literal(section)  # server text is never a reference
            counts[k.name] = len(section)
    doc: JsonObject = {"version": 1, "stack": stack}
    if ex.variables:  # made for the secrets export never writes
        doc["variables"] = ex.variables
    doc.update(sections)
    imports = [
        {"to": f"{k.name}.{key}", "id": rid}
        for k in writing_order(KINDS)
        if k.section in doc
        for rid, key in ex.keys.get(k.name, {}).items()
    ]
    if imports:
        doc["imports"] = imports
    if unexported:
        ex.note(
            f"not exported: {', '.join(unexported)} (export writes none of these); the agents "
            "keep theirs as they are on the server"
        )
    nouns = {k.name: k.noun or k.name.replace("_", " ") for k in KINDS}
    shown = [root.name, *(n for n in counts if n != root.name)]
    summary = ", ".join(f"{counts.get(n, 0)} {nouns[n]}(s)" for n in shown)
    return Exported(doc, counts.get(root.name, 0), summary, list(selected.skipped), ex.notes)


class ManifestDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so that personas read like text."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value and not value.startswith(" ") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


ManifestDumper.add_representer(str, _str)
