"""Requests checked against an OpenAPI 3.1 description of a Letta API (Letta Cloud's, for the
contract tests): the method and path exist (matched against path templates such as
/v1/agents/{agent_id}), every query parameter is declared and its values fit its schema, and a
JSON body validates against the operation's request schema, $refs resolved in the document's
components (OpenAPI 3.1 schemas are JSON Schema 2020-12). What a body breaks is said without its
values: a body may carry a secret.

Query strings carry only text: a value is accepted when it, or the number or boolean it spells,
fits the schema; a parameter sent more than once must be declared as an array.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

HERE = Path(__file__).resolve().parent
CLOUD_SPEC = HERE / "cloud-openapi.json"
SELF_HOSTED_SPEC = HERE / "server-0.16.8-openapi.json"  # Letta 0.16.8, the test server
SELF_HOSTED_ONLY = HERE / "self_hosted_only.json"

_METHODS = ("get", "post", "put", "patch", "delete")
_DOC = "urn:letta-apply:openapi"


@dataclass(frozen=True)
class Sent:
    """One request as it went over the wire (the Authorization header is never kept)."""

    method: str
    target: str  # path and query string, as sent
    body: bytes = b""
    content_type: str = ""
    cloud: bool = False  # sent to the Cloud-like proxy (no self-hosted route is excused)
    user_agent: str = ""

    @property
    def by_letta_apply(self) -> bool:
        """Sent by letta-apply's client (not by a test's own client)."""
        return re.match(r"letta-apply(/|$)", self.user_agent) is not None

    @cached_property
    def path(self) -> str:
        return urlsplit(self.target).path

    @cached_property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.target).query, keep_blank_values=True)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Operation:
    method: str  # upper case
    template: str
    spec: Mapping[str, Any] = field(repr=False, compare=False, hash=False)

    @property
    def pointer(self) -> str:
        """Where the operation is in its document (a JSON pointer)."""
        escaped = self.template.replace("~", "~0").replace("/", "~1")
        return f"/paths/{escaped}/{self.method.lower()}"

    @cached_property
    def query(self) -> dict[str, str]:
        """Declared query parameters: name -> JSON pointer to its schema."""
        return {
            p["name"]: f"{self.pointer}/parameters/{i}/schema"
            for i, p in enumerate(self.spec.get("parameters", ()))
            if p.get("in") == "query"
        }

    @cached_property
    def path_params(self) -> tuple[str, ...]:
        return tuple(re.findall(r"\{([^}]+)\}", self.template))

    @property
    def takes_upload(self) -> bool:
        """Whether the operation's body is a multipart upload (a file)."""
        content = (self.spec.get("requestBody") or {}).get("content") or {}
        return "multipart/form-data" in content

    @property
    def body_schema(self) -> str | None:
        """JSON pointer to the JSON request body's schema; None when it takes no JSON body."""
        content = (self.spec.get("requestBody") or {}).get("content") or {}
        if "schema" not in content.get("application/json", {}):
            return None
        return f"{self.pointer}/requestBody/content/application~1json/schema"


@dataclass(frozen=True)
class Match:
    operation: Operation
    params: dict[str, str]  # path parameters by name


class Api:
    """An OpenAPI document: its operations, matched by method and concrete path."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.registry: Registry[Any] = Registry().with_resource(
            _DOC, Resource.from_contents(dict(document), default_specification=DRAFT202012)
        )
        routes: list[tuple[int, re.Pattern[str], Operation]] = []
        for template, item in document["paths"].items():
            regex = re.compile(
                "".join(
                    "([^/]+)" if part.startswith("{") else re.escape(part)
                    for part in re.split(r"(\{[^}]+\})", template)
                )
            )
            for method, spec in item.items():
                if method in _METHODS:
                    op = Operation(method.upper(), template, spec)
                    routes.append((len(op.path_params), regex, op))
        # A literal segment wins over a parameter: /v1/blocks/count is not block "count".
        routes.sort(key=lambda r: r[0])
        self._routes = routes
        self._validators: dict[str, jsonschema.protocols.Validator] = {}

    @classmethod
    def load(cls, path: Path) -> Api:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def match(self, method: str, path: str) -> Match | None:
        for _, regex, op in self._routes:
            if op.method == method.upper() and (m := regex.fullmatch(path)):
                return Match(op, dict(zip(op.path_params, m.groups(), strict=True)))
        return None

    def operations(self) -> Iterator[Operation]:
        for _, _, op in self._routes:
            yield op

    def validator(self, pointer: str) -> jsonschema.protocols.Validator:
        """A 2020-12 validator for the schema at `pointer` in this document (its $refs
        resolve in the document)."""
        if pointer not in self._validators:
            self._validators[pointer] = jsonschema.Draft202012Validator(
                {"$ref": f"{_DOC}#{pointer}"}, registry=self.registry
            )
        return self._validators[pointer]

    def violations(self, sent: Sent) -> list[str]:
        """What in `sent` the API does not declare or accept; empty when it conforms."""
        found = self.match(sent.method, sent.path)
        if found is None:
            return [f"{sent.method} {sent.path}: no such route"]
        op = found.operation
        problems: list[str] = []
        values: dict[str, list[str]] = {}
        for name, value in sent.query:
            values.setdefault(name, []).append(value)
        for name, given in values.items():
            if name not in op.query:
                problems.append(f"query parameter {name!r} is not declared")
            elif not _query_fits(self, op.query[name], given):
                problems.append(f"query parameter {name!r}={given!r} does not fit its schema")
        schema = op.body_schema
        if sent.body and op.takes_upload:
            # A file upload: multipart, as the operation declares; its parts are files.
            if not sent.content_type.startswith("multipart/form-data"):
                problems.append(f"the body is {sent.content_type or 'untyped'}, not multipart")
        elif sent.body:
            if schema is None:
                problems.append("a body was sent; the operation takes no JSON body")
            elif "json" not in sent.content_type:
                problems.append(f"the body is {sent.content_type or 'untyped'}, not JSON")
            else:
                try:
                    body = sent.json()
                except ValueError:
                    problems.append("the body is not valid JSON")
                else:
                    problems += [
                        f"body{_where(e.absolute_path)}: {_without_values(e)}"
                        for e in self.validator(schema).iter_errors(body)
                    ]
        elif schema is not None and (op.spec.get("requestBody") or {}).get("required"):
            problems.append("the operation requires a JSON body; none was sent")
        return [f"{op.method} {op.template}: {p}" for p in problems]


def shape(api: Api, sent: Sent) -> tuple[str, str, tuple[str, ...]]:
    """What makes a request distinct for the contract: method, path template (the concrete
    path when no route matches) and the names of its query parameters."""
    found = api.match(sent.method, sent.path)
    template = found.operation.template if found else sent.path
    return sent.method, template, tuple(sorted({name for name, _ in sent.query}))


def _where(path: Iterable[Any]) -> str:
    return "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in path)


def _without_values(error: jsonschema.ValidationError) -> str:
    """What a body breaks, without the value that breaks it (a body may carry a secret)."""
    if error.validator in ("required", "additionalProperties", "unevaluatedProperties"):
        return error.message  # names properties, never their values
    rule = repr(error.validator_value)
    return f"does not satisfy {error.validator} {rule[:120]}"


def _spelled(raw: str) -> Any:
    """The number or boolean a query value spells, else the text itself."""
    if raw in ("true", "false"):
        return raw == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def _query_fits(api: Api, pointer: str, given: list[str]) -> bool:
    validator = api.validator(pointer)
    candidates: list[Any] = [given, [_spelled(v) for v in given]]
    if len(given) == 1:
        candidates += [given[0], _spelled(given[0])]
    return any(validator.is_valid(c) for c in candidates)


@dataclass(frozen=True)
class SelfHostedOnly:
    """A request letta-apply sends to a self-hosted server that Letta Cloud does not serve, and
    what it does instead on Cloud."""

    method: str
    path: str  # template, as in the self-hosted API description
    why: str
    cloud_fallback: str


def unexplained(entry: SelfHostedOnly, cloud: Api, self_hosted: Api) -> list[str]:
    """What is wrong with an entry of the list: it must say why and what replaces it, name a
    route of the self-hosted server, and one Letta Cloud lacks."""
    problems = [f"no {k}" for k in ("why", "cloud_fallback") if not getattr(entry, k).strip()]
    concrete = re.sub(r"\{[^}]+\}", "x-1", entry.path)
    found = self_hosted.match(entry.method, concrete)
    if found is None or found.operation.template != entry.path:
        problems.append("not a route of the self-hosted server")
    if cloud.match(entry.method, concrete) is not None:
        problems.append("Letta Cloud serves it: take it off the list")
    return [f"{entry.method} {entry.path}: {p}" for p in problems]


def self_hosted_only(path: Path = SELF_HOSTED_ONLY) -> list[SelfHostedOnly]:
    entries = json.loads(path.read_text(encoding="utf-8"))
    return [SelfHostedOnly(**e) for e in entries]
