"""Many stacks against one server from one process: a SaaS keeping one small stack per tenant.

The server is read once for all of them (read.shared: each kind's listing shared, split by
stack), then each stack is planned, and applied under its own lock, as it would be alone, a
bounded number at a time. What happens to one stack never stops or changes another: a manifest
that does not load, a server error, a held lock, a refused plan are that stack's result, with
why. Ownership stays proven by each stack's marks (the kinds' `match`), never by names.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from ..apply.session import ApplyResult, Planned, run_apply
from ..core.changes import Plan
from ..core.model import Desired
from ..core.sensitive import Masker
from ..errors import (
    LettaApplyError,
    ManifestError,
    StalePlanError,
    UsageError,
    with_code,
)
from ..manifest.variables import Options
from ..memory.backup import Backups
from ..pipeline import load_manifest, plan_for
from ..policy import Policies, check_plan, stack_policies
from ..read.shared import Ahead, read_ahead, read_shared
from ..server.client import LettaClient

MANIFEST_SUFFIXES = (".yaml", ".yml")


NO_POLICIES = Policies()


@dataclass(frozen=True)
class Source:
    """One stack of a run: where its manifest comes from, and the manifest loaded, or why not
    (`error`, one located line per problem)."""

    origin: str
    desired: Desired | None
    error: str = ""
    policy_files: tuple[str, ...] = ()  # the stack's own rules, beside a run's and its manifest's


@dataclass(frozen=True)
class StackRun:
    """What a run did to one stack: its plan, what apply did (`result`), or why it failed
    (`error`: then nothing more was done to that stack)."""

    origin: str
    stack: str
    plan: Plan | None = None
    result: ApplyResult | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        """Planned (and applied, when it was) in full, nothing refused."""
        if self.error or self.plan is None:
            return False
        return self.result.ok if self.result is not None else not self.plan.problems

    @property
    def why(self) -> list[str]:
        """Why the stack is not ok: its error, the changes that failed, what its plan refused
        (`address: message`); empty when it is."""
        refused = [with_code(f"{p.address}: {p.message}", p.code)
                   for p in (self.plan.problems if self.plan is not None else ())]  # fmt: skip
        failed = list(self.result.failure.failures) if self.result and self.result.failure else []
        return [*([self.error] if self.error else []), *failed, *refused]


def stack_sources(folder: str | Path, options: Options | None = None) -> list[Source]:
    """The stacks of a folder: each manifest file (*.yaml, *.yml) in it is one stack, and each
    folder in it is one stack (its files are one manifest, as `-f FOLDER`); names starting with
    a dot are skipped. A manifest that does not load is a Source with its error; two that
    declare one stack name are both refused (they would fight over its resources)."""
    return distinct([_load(p, options) for p in _entries(folder)])


def _entries(folder: str | Path) -> list[Path]:
    """The manifests and manifest folders of `folder`, one per stack, in name order."""
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"--stacks {folder}: no such folder", code="LA902")
    entries = sorted(
        p for p in root.iterdir()
        if not p.name.startswith(".")
        and (p.is_dir() or (p.is_file() and p.suffix in MANIFEST_SUFFIXES))
    )  # fmt: skip
    if not entries:
        raise UsageError(
            f"--stacks {folder}: no manifest (*.yaml, *.yml) nor folder of one in it",
            code="LA902",
        )
    return entries


def sources_read_ahead(
    client: LettaClient, folder: str | Path, options: Options | None = None
) -> tuple[list[Source], Ahead]:
    """`stack_sources(folder)`, the server's listings read meanwhile (read.shared.read_ahead):
    for many stacks, loading their manifests and the server's listing take about as long."""
    count = len(_entries(folder))
    pool = ThreadPoolExecutor(max_workers=4)
    try:
        ahead = read_ahead(client, pool, count)
        return stack_sources(folder, options), ahead
    finally:
        pool.shutdown(wait=False)  # what it reads is waited for where it is used


def _load(path: Path, options: Options | None) -> Source:
    try:
        return Source(str(path), load_manifest([str(path)], options))
    except ManifestError as e:
        return Source(str(path), None, "\n".join(with_code(str(d), d.code) for d in e.diagnostics))
    except LettaApplyError as e:
        return Source(str(path), None, with_code(f"{path}: {e}", e.code))


def distinct(sources: Sequence[Source]) -> list[Source]:
    """`sources` with each stack named by two or more manifests refused in all of them."""
    count = Counter(s.desired.stack for s in sources if s.desired is not None)
    out = []
    for s in sources:
        if s.desired is not None and count[s.desired.stack] > 1:
            others = [o.origin for o in sources if o is not s and o.desired is not None
                      and o.desired.stack == s.desired.stack]  # fmt: skip
            why = f'{s.origin}: stack "{s.desired.stack}" is also declared by {", ".join(others)}'
            s = replace(s, desired=None, error=why)
        out.append(s)
    return out


def plan_stacks(
    client: LettaClient,
    sources: Sequence[Source],
    *,
    destroy: bool = False,
    concurrency: int = 8,
    ahead: Ahead | None = None,
    policies: Policies = NO_POLICIES,
) -> list[StackRun]:
    """Each stack's plan (with `destroy`, of the deletion of what it owns), the server read
    once for all of them (`ahead`: what was read while they loaded), checked by `policies` and
    the stack's own rules; in the order of `sources`."""
    listings = read_shared(client, [s.desired for s in sources if s.desired is not None], ahead)

    def one(source: Source) -> StackRun:
        desired = source.desired
        if desired is None:
            return StackRun(source.origin, "", error=source.error)
        try:
            # Popped: each stack's listings are freed once it is planned.
            plan = plan_for(
                client, desired, destroy=destroy, listings=listings.pop(desired.stack, None)
            )
            plan = check_plan(plan, desired, stack_policies(policies, desired, source.policy_files))
        except LettaApplyError as e:
            return StackRun(source.origin, desired.stack, error=with_code(str(e), e.code))
        except Exception as e:  # a bug in one stack's plan ends no other's
            return StackRun(source.origin, desired.stack, error=_unexpected(e))
        return StackRun(source.origin, desired.stack, plan)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, sources))


@dataclass(frozen=True)
class Settings:
    """How `apply_stacks` applies each stack (as `apply` does one)."""

    destroy: bool = False
    concurrency: int = 8  # stacks planned and applied at once
    parallelism: int = 4  # writes at once within one stack
    lock: bool = True
    lock_timeout: float = 60.0
    backups: Path | None = None  # where deletes are saved first, a folder per stack and run
    policies: Policies = NO_POLICIES  # the rules every stack is checked by (and then its own)


def apply_stacks(
    client: LettaClient,
    sources: Sequence[Source],
    settings: Settings = Settings(),
    *,
    plans: Mapping[str, Plan] | None = None,
    on_stack: Callable[[StackRun], None] | None = None,
    stop: threading.Event | None = None,
    ahead: Ahead | None = None,
) -> list[StackRun]:
    """Plan and apply each stack, the server read once for all of them, each under its own
    lock, `settings.concurrency` at a time; in the order of `sources`. With `plans` (by stack,
    as a `plan_stacks` made them and a person approved), a stack whose plan no longer matches
    the server is not applied (StalePlanError, its error), nor is a stack `plans` lacks.
    `on_stack` is told of each stack as it ends (from the workers' threads). Once `stop` is
    set, no new stack starts and no new change starts in those under way (their locks are
    released as usual). `ahead`: what was read while they loaded."""
    listings = read_shared(client, [s.desired for s in sources if s.desired is not None], ahead)

    def one(source: Source) -> StackRun:
        if stop is not None and stop.is_set():
            stack = source.desired.stack if source.desired else ""
            run = StackRun(source.origin, stack, error="not started: the run was stopped")
        else:
            run = _apply_one(client, source, settings, listings, plans, stop)
        if on_stack is not None:
            on_stack(run)
        return run

    with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
        return list(pool.map(one, sources))


def _apply_one(
    client: LettaClient,
    source: Source,
    settings: Settings,
    listings: dict[str, dict[str, object]],
    plans: Mapping[str, Plan] | None,
    stop: threading.Event | None = None,
) -> StackRun:
    desired = source.desired
    if desired is None:
        return StackRun(source.origin, "", error=source.error)
    stack = desired.stack
    shared: Mapping[str, object] | None = listings.pop(stack, None)
    given = None if plans is None else plans.get(stack)
    if plans is not None and given is None:
        return StackRun(source.origin, stack, error=f'stack "{stack}": no approved plan')

    def make() -> Planned:
        nonlocal shared
        plan = plan_for(client, desired, destroy=settings.destroy, listings=shared)
        shared = None  # read before the lock: a plan made again under it reads afresh
        # A violation at `error` blocks the plan: run_apply writes nothing, the lock neither.
        plan = check_plan(plan, desired, rules)
        if given is not None and given.changes != plan.changes:
            raise StalePlanError(
                f'stale plan: stack "{stack}" changed on the server since the plan was made; '
                "nothing was applied to it, plan again",
                code="LA610",
            )
        return plan, desired

    operation = "destroy" if settings.destroy else "apply"
    try:
        rules = stack_policies(settings.policies, desired, source.policy_files)
    except LettaApplyError as e:
        return StackRun(source.origin, stack, error=with_code(str(e), e.code))
    saver = None
    if settings.backups is not None:
        saver = Backups(
            settings.backups, stack, masker=Masker(desired.secrets), operation=operation,
            server=client.base_url,
        )  # fmt: skip
    try:
        result = run_apply(
            client, make, operation=operation, lock=settings.lock,
            lock_timeout=settings.lock_timeout, parallelism=settings.parallelism,
            backups=saver, stop=stop,
        )  # fmt: skip
    except LettaApplyError as e:
        return StackRun(source.origin, stack, error=with_code(str(e), e.code))
    except Exception as e:  # a bug in one stack's run ends no other's
        return StackRun(source.origin, stack, error=_unexpected(e))
    return StackRun(source.origin, stack, result.plan, result, _why_failed(result))


def _unexpected(e: Exception) -> str:
    return f"unexpected error (a bug: please report it): {type(e).__name__}: {e}"


def _why_failed(result: ApplyResult) -> str:
    failed = result.refusal or result.failure
    return "" if failed is None else with_code(str(failed), failed.code)
