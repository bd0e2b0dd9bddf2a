"""The Python API: what the `letta-apply` command does, for programs (one stack per tenant, a
deployment script...). Nothing here prints; results are frozen dataclasses.

    from letta_apply import LettaClient, Stack

    with LettaClient("http://127.0.0.1:8283") as client:
        stack = Stack.from_dict(manifest, variables={"tenant": "acme"})
        plan = stack.plan(client)
        print(stack.render(plan, client=client))
        result = stack.apply(client, plan=plan)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from .apply.runner import Done
from .apply.session import ApplyEvents, ApplyResult, Planned, run_apply
from .core.changes import Plan
from .core.model import Desired
from .core.sensitive import Masker, mask_plan
from .errors import ApplyError, StalePlanError, UsageError
from .manifest.variables import Options
from .many.report import Operation, stacks_document, stacks_text, totals
from .many.run import Settings, Source, StackRun, apply_stacks, distinct, plan_stacks, stack_sources
from .memory.backup import Backups, default_root
from .pipeline import DATA_NAME, load_manifest, load_manifest_data, plan_for
from .plan import planfile
from .plan.graph import Graph, stack_graph
from .plan.listing import Listing, list_stack
from .plan.planner import restrict
from .plan.targets import expand_targets
from .policy import Policies, check_plan, policies_for
from .read.live import read_live
from .render.markdown import plan_markdown
from .render.text import plan_text
from .server.client import LettaClient
from .server.urls import public_url

Format = Literal["text", "json", "markdown"]


class ApplyFailed(ApplyError):
    """A change failed and apply stopped; `result` has what was done before it did."""

    def __init__(self, failure: ApplyError, result: ApplyResult) -> None:
        super().__init__(failure.failures, failure.done, failure.not_attempted, failure.skipped)
        self.result = result


def render_plan(
    plan: Plan,
    format: Format = "text",
    *,
    base_url: str = "",
    secrets: Sequence[str] = (),
    origin: planfile.Origin | None = None,
    desired: Desired | None = None,
) -> str:
    """The plan as `letta-apply plan --format FORMAT` shows it, sensitive values masked (the
    values of sensitive variables, and `secrets`). Markdown has a diagram of the changes when
    the manifest's `desired` state is given."""
    origin = origin or planfile.Origin(public_url(base_url), None, (), "")  # no credentials
    shown = mask_plan(plan, Masker(secrets))
    if format == "json":
        return planfile.dumps(shown, origin)
    if format == "markdown":
        graph = stack_graph(desired, plan) if desired is not None else None
        return plan_markdown(shown, origin.base_url, graph)
    if format == "text":
        return plan_text(shown, origin.base_url)
    raise UsageError(f"unknown format {format!r}: text, json or markdown", code="LA904")


@dataclass(frozen=True)
class Stack:
    """A loaded, validated manifest: the stack it declares and everything in it, and the
    policy rules its plans are checked by (`policy_files`, and the manifest's `policy:`)."""

    desired: Desired
    policy_files: tuple[str, ...] = ()

    @cached_property
    def policies(self) -> Policies:
        """The rules of `policy_files` and of the manifest's `policy:`, compiled."""
        return policies_for(self.policy_files, self.desired)

    @classmethod
    def from_files(
        cls,
        paths: str | Sequence[str],
        variables: Mapping[str, object] | None = None,
        *,
        var_files: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        allow_outside_files: bool = False,
        policies: str | Sequence[str] = (),
    ) -> Stack:
        """Load manifest files or folders (as `-f`). `variables` win over `var_files` and
        over `env` (LETTA_APPLY_VAR_<name>, and `${env.X}`; the process environment is not
        read unless passed). `policies`: policy files or folders (as `--policy`). Raises
        ManifestError listing every problem (PolicyFileError for the policy files)."""
        # Checked as data by load_manifest before anything converts them.
        options = _options(variables, var_files, env, allow_outside_files, bool(policies))
        return cls(load_manifest(paths, options), _paths(policies)).checked()

    @classmethod
    def from_dict(
        cls,
        manifest: Mapping[str, object],
        variables: Mapping[str, object] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        base_dir: str | Path | None = None,
        name: str = DATA_NAME,
        policies: str | Sequence[str] = (),
    ) -> Stack:
        """Load a manifest given as data, as a YAML file would hold it. Errors name `name`
        and the key path (`<dict>: agents.a.model: ...`); files it names (value_file...) are
        read inside `base_dir` (default: the working directory). `policies` as from_files."""
        options = Options(
            env=env if env is not None else {}, values=variables if variables is not None else {}
        )
        desired = load_manifest_data(manifest, options, name=name, root=base_dir)
        return cls(desired, _paths(policies)).checked()

    def checked(self) -> Stack:
        """The stack, once its policy files are known to be valid (PolicyFileError if not):
        a broken rule is found when the stack is loaded, before any request."""
        self.policies  # noqa: B018  compiled once, kept
        return self

    @property
    def name(self) -> str:
        """The stack's name: what it owns on the server is marked with it."""
        return self.desired.stack

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values of sensitive variables, masked in everything rendered."""
        return self.desired.secrets

    def plan(
        self,
        client: LettaClient,
        *,
        destroy: bool = False,
        detach_unmanaged_blocks: bool = False,
        targets: Sequence[str] = (),
    ) -> Plan:
        """What apply would change (with `destroy`: delete everything the stack owns). With
        `targets`, only those resources and what they depend on."""
        plan = plan_for(
            client, self.desired, destroy=destroy, detach_unmanaged=detach_unmanaged_blocks
        )
        if isinstance(targets, str):
            targets = [targets]  # one address, not its characters
        if targets:
            plan = restrict(plan, self.desired, expand_targets(self.desired, targets))
        # A violation at `error` blocks the plan: apply writes nothing, the lock neither.
        return check_plan(plan, self.desired, self.policies)

    def render(
        self, plan: Plan, format: Format = "text", *, client: LettaClient | None = None
    ) -> str:
        """The plan as text, JSON or markdown (a pull-request comment); secrets masked."""
        origin = planfile.Origin(
            client.base_url if client else "", None, self.desired.files, self.desired.digest
        )
        return render_plan(plan, format, secrets=self.secrets, origin=origin, desired=self.desired)

    def graph(self, plan: Plan | None = None) -> Graph:
        """The stack as a graph (agents, their own blocks, shared blocks, tools, identities);
        with a `plan` of this stack, each resource marked with what the plan does to it and
        what it deletes drawn too. No request is sent: `render_graph(graph, "mermaid")` or
        `"dot"` draws it."""
        return stack_graph(self.desired, plan)

    def apply(
        self,
        client: LettaClient,
        plan: Plan | None = None,
        *,
        parallelism: int = 8,
        lock: bool = True,
        lock_timeout: float = 60.0,
        on_done: Callable[[Done], None] | None = None,
        backups: bool | str | Path = True,
    ) -> ApplyResult:
        """Converge the server to the manifest: plan (or check that `plan` still holds), take
        the stack lock, plan again under it if another run wrote to the stack since, apply.
        What a delete removes is saved first into `backups` (a folder; True: the
        LETTA_APPLY_BACKUP_DIR or `.letta-apply/backups`; False: not saved), a folder per run
        named in the result's `backup_folder`; a backup that fails fails its delete. Raises
        StalePlanError when `plan` no longer matches the server, ApplyFailed (an ApplyError)
        when a change fails, LockError when the lock stays held, PolicyViolated when a policy
        rule at `error` refuses the plan (nothing written), DestroyPrevented when
        prevent_destroy blocks the plan; each error's `code` is explained in docs/errors.md."""
        return self._run(client, plan, False, parallelism, lock, lock_timeout, on_done, backups)

    def destroy(
        self,
        client: LettaClient,
        plan: Plan | None = None,
        *,
        parallelism: int = 8,
        lock: bool = True,
        lock_timeout: float = 60.0,
        on_done: Callable[[Done], None] | None = None,
        backups: bool | str | Path = True,
    ) -> ApplyResult:
        """Delete everything the stack owns on the server, and nothing else, each resource
        saved first as for apply (`backups`). `plan`, when given, is one made with
        `plan(client, destroy=True)`. Raises like apply."""
        return self._run(client, plan, True, parallelism, lock, lock_timeout, on_done, backups)

    def drift(self, client: LettaClient, *, detach_unmanaged_blocks: bool = False) -> Plan:
        """A plan whose `drift` says what changed on the server outside the manifest, and
        whether apply (with the same `detach_unmanaged_blocks`) undoes each."""
        plan = plan_for(
            client, self.desired, detach_unmanaged=detach_unmanaged_blocks, memory=False
        )
        return check_plan(plan, self.desired, self.policies, drift=True)

    def show(self, client: LettaClient) -> Listing:
        """The stack's resources on the server, with their ids."""
        return list_stack(self.desired, read_live(client, self.desired))

    def _run(
        self,
        client: LettaClient,
        given: Plan | None,
        destroy: bool,
        parallelism: int,
        lock: bool,
        lock_timeout: float,
        on_done: Callable[[Done], None] | None,
        backups: bool | str | Path,
    ) -> ApplyResult:
        _check_options(parallelism, lock, lock_timeout, on_done)
        saver = None
        root = _backup_root(backups)
        if root is not None:
            saver = Backups(
                root, self.name, masker=Masker(self.secrets),
                operation="destroy" if destroy else "apply", server=client.base_url,
            )  # fmt: skip

        def make() -> Planned:
            plan = self.plan(client, destroy=destroy)
            if given is not None and given.changes != plan.changes:
                raise StalePlanError(
                    f'stale plan: stack "{self.name}" changed on the server since the plan was '
                    "made; nothing was applied, plan again",
                    code="LA610",
                )
            return plan, self.desired

        events = _Callbacks(on_done)
        result = run_apply(
            client, make, operation="destroy" if destroy else "apply", lock=lock,
            lock_timeout=lock_timeout, parallelism=parallelism, events=events, backups=saver,
        )  # fmt: skip
        if (refused := result.refusal) is not None:
            raise refused
        if result.failure:
            raise ApplyFailed(result.failure, result) from result.failure
        return result


@dataclass(frozen=True)
class StacksResult:
    """What `Stacks.plan`, `apply` or `destroy` did: one StackRun per stack, in order (`stack`,
    `origin`, `plan`, `result`, `ok`, and `why` it is not)."""

    runs: tuple[StackRun, ...]
    operation: Operation
    secrets: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Every stack planned (and applied) in full."""
        return all(r.ok for r in self.runs)

    @property
    def failed(self) -> tuple[StackRun, ...]:
        return tuple(r for r in self.runs if not r.ok)

    def plans(self) -> dict[str, Plan]:
        """Each planned stack's plan, by name: what `Stacks.apply(plans=...)` takes."""
        return {r.stack: r.plan for r in self.runs if r.plan is not None and r.stack}

    def summary(self) -> dict[str, int]:
        """How many stacks ended each way, and the changes planned in all."""
        return totals(self.runs, self.operation)

    def render(self, format: Literal["text", "json"] = "text") -> str:
        """The summary as `letta-apply plan --stacks` shows it: a table, or JSON with one entry
        per stack; sensitive values masked."""
        masker = Masker(self.secrets)
        if format == "json":
            doc = stacks_document(self.runs, self.operation, masker)
            return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False)
        if format == "text":
            return masker.text(stacks_text(self.runs, self.operation))
        raise UsageError(f"unknown format {format!r}: text or json", code="LA904")


class Stacks:
    """Many stacks (one per tenant, say) planned and applied against one server from one
    process: the server is read once for all of them, each stack is planned and applied under
    its own lock as it would be alone, `concurrency` stacks at a time, and what happens to one
    (a manifest that does not load, a server error, a held lock) is its own result, never
    another's.

        stacks = Stacks.from_folder("tenants/")       # a manifest or a folder per stack
        result = stacks.apply(client)
        print(result.render())                        # one table; result.ok, result.failed
    """

    def __init__(self, stacks: Iterable[Stack], *, policies: str | Sequence[str] = ()) -> None:
        """Stacks already loaded; two of one name are both refused (they would fight).
        `policies`: policy files or folders every stack is checked by, beside its own (its
        `policy_files` and its manifest's `policy:`); PolicyFileError when one is broken."""
        self.sources = tuple(
            distinct([Source(s.name, s.desired, policy_files=s.policy_files) for s in stacks])
        )
        self.policies = policies_for(_paths(policies), None)

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        variables: Mapping[str, object] | None = None,
        *,
        var_files: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        allow_outside_files: bool = False,
        policies: str | Sequence[str] = (),
    ) -> Stacks:
        """Each manifest file (*.yaml, *.yml) of `folder`, and each folder in it, is a stack,
        loaded as Stack.from_files loads one (the same variables for all). One that does not
        load is kept with its errors: its result says why, the others run. `policies` as
        for Stacks()."""
        options = _options(variables, var_files, env, allow_outside_files, bool(policies))
        made = cls((), policies=policies)
        made.sources = tuple(stack_sources(folder, options))  # each loaded, or why not
        return made

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the stacks that loaded."""
        return tuple(s.desired.stack for s in self.sources if s.desired is not None)

    def plan(
        self, client: LettaClient, *, destroy: bool = False, concurrency: int = 8
    ) -> StacksResult:
        """Each stack's plan (`destroy`: of deleting what it owns); nothing is written."""
        _check_options(concurrency, True, 0.0, None)
        runs = plan_stacks(
            client, self.sources, destroy=destroy, concurrency=concurrency, policies=self.policies
        )
        return StacksResult(tuple(runs), "plan", self._secrets())

    def apply(
        self,
        client: LettaClient,
        plans: StacksResult | None = None,
        *,
        destroy: bool = False,
        concurrency: int = 8,
        parallelism: int = 4,
        lock: bool = True,
        lock_timeout: float = 60.0,
        backups: bool | str | Path = True,
        on_stack: Callable[[StackRun], None] | None = None,
    ) -> StacksResult:
        """Plan and apply every stack (`destroy`: delete what each owns), each under its own
        lock; `parallelism` writes at once within a stack. With `plans` (a `plan` result,
        reviewed), a stack is applied only when its plan still matches the server; else its
        result is a StalePlanError. Deletes are saved first as Stack.apply saves them
        (`backups`). Raises nothing for a stack: each result says why it failed."""
        _check_options(concurrency, lock, lock_timeout, on_stack)
        _check_options(parallelism, lock, lock_timeout, None)
        settings = Settings(
            destroy=destroy, concurrency=concurrency, parallelism=parallelism, lock=lock,
            lock_timeout=lock_timeout, backups=_backup_root(backups), policies=self.policies,
        )  # fmt: skip
        given = plans.plans() if plans is not None else None
        runs = apply_stacks(client, self.sources, settings, plans=given, on_stack=on_stack)
        return StacksResult(tuple(runs), "destroy" if destroy else "apply", self._secrets())

    def destroy(
        self,
        client: LettaClient,
        plans: StacksResult | None = None,
        *,
        concurrency: int = 8,
        parallelism: int = 4,
        lock: bool = True,
        lock_timeout: float = 60.0,
        backups: bool | str | Path = True,
        on_stack: Callable[[StackRun], None] | None = None,
    ) -> StacksResult:
        """Delete what every stack owns, and nothing else: `apply(destroy=True)` (`plans`,
        when given, made with `plan(client, destroy=True)`)."""
        return self.apply(
            client, plans, destroy=True, concurrency=concurrency, parallelism=parallelism,
            lock=lock, lock_timeout=lock_timeout, backups=backups, on_stack=on_stack,
        )  # fmt: skip

    def _secrets(self) -> tuple[str, ...]:
        return tuple(v for s in self.sources if s.desired for v in s.desired.secrets)


def _options(
    variables: Mapping[str, object] | None,
    var_files: Sequence[str],
    env: Mapping[str, str] | None,
    allow_outside_files: bool,
    policed: bool,
) -> Options:
    """How manifest files are loaded: `variables` win over `var_files` and over `env` (the
    process environment is read only when passed); with positions when policy rules will place
    what they find."""
    return Options(
        var_files=var_files, env=env if env is not None else {},
        values=variables if variables is not None else {}, allow_outside_files=allow_outside_files,
        positions=policed,
    )  # fmt: skip


def _paths(given: str | Sequence[str]) -> tuple[str, ...]:
    return (given,) if isinstance(given, str) else tuple(given)


def _backup_root(backups: object) -> Path | None:
    if not isinstance(backups, (bool, str, Path)) or backups == "":
        raise UsageError(
            f"backups: expected true, false or a folder, got {type(backups).__name__}",
            code="LA904",
        )
    if backups is False:
        return None
    return default_root() if backups is True else Path(backups)


def _check_options(parallelism: object, lock: object, timeout: object, on_done: object) -> None:
    """The options of apply and destroy, checked before anything is read: a wrong one is the
    library's own error naming it, not a failure deep inside the run."""
    if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1:
        raise UsageError(
            f"parallelism: expected a whole number of at least 1, got {parallelism!r}",
            code="LA904",
        )
    if not isinstance(lock, bool):
        raise UsageError(f"lock: expected true or false, got {type(lock).__name__}", code="LA904")
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout < 0
    ):
        raise UsageError(
            f"lock_timeout: expected seconds (0 or more), got {timeout!r}", code="LA904"
        )
    if on_done is not None and not callable(on_done):
        raise UsageError(
            f"on_done: expected a function, got {type(on_done).__name__}", code="LA904"
        )


class _Callbacks(ApplyEvents):
    def __init__(self, on_done: Callable[[Done], None] | None) -> None:
        self.on_done = on_done

    def done(self, done: Done) -> None:
        if self.on_done:
            self.on_done(done)
