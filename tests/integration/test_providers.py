"""BYOK providers against the real server, the provider being a local OpenAI-compatible endpoint
(llmstub.py, on 127.0.0.1) that Letta asks for its models with the provider's key: made from
empty to zero writes, the key rotated in place (the endpoint then asked with the new key) and
never shown in any output, the endpoint changed in place, a change made by hand on the server
shown as drift and undone, a new name replacing the provider, an agent on one of its models made
with it in one apply (the provider first) and destroyed before it, the provider kept while an
agent the manifest still declares stays on one of its models, a same-named provider the stack
does not own never touched until `imports:` adopts it, prune and destroy, and runs killed
(SIGKILL) right after the create or right before it, recovered by a plain re-run with no
duplicate. Everything is checked through Letta's own API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from letta_apply.kinds.provider.kind import MARK_LABEL
from tests.integration.conftest import ROOT, Result, Run
from tests.integration.crashproxy import CrashProxy
from tests.integration.llmstub import LlmStub

KEY = "sk-first-Zq8vWm3kQ1"
ROTATED = "sk-second-Hs5Rt8LpX2"

MANIFEST = """\
version: 1
stack: {stack}
variables:
  key: {sensitive: true}
providers:
  local:
    name: {stack}-local
    provider_type: openai
    api_key: ${var.key}
    base_url: BASE_URL
"""


def providers(api: httpx.Client, stack: str) -> dict[str, dict[str, Any]]:
    """The server's providers named after the stack, by name."""
    listed = api.get("/v1/providers/", params={"limit": 1000}).json()
    return {p["name"]: p for p in listed if p["name"].startswith(stack)}


def marks(api: httpx.Client, stack: str) -> list[dict[str, Any]]:
    tagged = api.get("/v1/blocks/", params={"tags": [f"letta-apply:{stack}"]}).json()
    return [b for b in tagged if b["label"] == MARK_LABEL]


def handles(api: httpx.Client) -> dict[str, str | None]:
    """The model handles the server serves, with the provider serving each."""
    return {m["handle"]: m.get("provider_name") for m in api.get("/v1/models/").json()}


@pytest.fixture
def llm() -> Iterator[LlmStub]:
    stub = LlmStub(["stub-chat"]).start()
    yield stub
    stub.stop()


@pytest.fixture
def cleanup(api: httpx.Client, stack: str) -> Iterator[None]:
    """Delete every provider and agent named after the stack, whoever made it."""
    yield
    for a in api.get("/v1/agents/", params={"name": f"{stack}-agent"}).json():
        api.delete(f"/v1/agents/{a['id']}")
    for p in providers(api, stack).values():
        api.delete(f"/v1/providers/{p['id']}")


@pytest.fixture
def write(
    manifest: Callable[[str], str],
    llm: LlmStub,
    stack: str,
) -> Callable[..., str]:
    # Models named after the stack: Letta serves every OpenAI-compatible provider's models as
    # `openai-proxy/<model>`, so a handle two providers serve belongs to the first one made.
    llm.models = [f"{stack}-chat"]

    def _write(text: str = MANIFEST) -> str:
        return manifest(text.replace("BASE_URL", llm.url))

    return _write


def cli(run: Run, *args: str, key: str = KEY) -> Result:
    return run(*args, "--var", f"key={key}")


def test_made_rotated_changed_drifted_renamed_and_destroyed(
    run: Run, write: Callable[..., str], api: httpx.Client, stack: str, llm: LlmStub,
    tmp_path: Path, cleanup: None,
) -> None:  # fmt: skip
    path = write()
    r = cli(run, "apply", "-f", path, "--auto-approve")
    assert r.code == 0, r.out + r.err
    made = providers(api, stack)[f"{stack}-local"]
    assert (made["provider_type"], made["base_url"]) == ("openai", llm.url)
    # Letta 0.16.8 keeps the key in plain, and asked the endpoint for its models with it.
    assert made["api_key_enc"] == KEY and set(llm.keys) == {KEY}
    assert handles(api).get(f"openai-proxy/{stack}-chat") == f"{stack}-local"
    (mark,) = marks(api, stack)
    assert mark["metadata"]["letta_apply"]["provider"] == made["id"]
    assert KEY not in json.dumps(mark)
    r = cli(run, "plan", "-f", path, "--detailed-exitcode")
    assert r.code == 0 and r.writes == 0, r.out + r.err

    # The key rotated: in place, shown in no output format, the models listed with the new key.
    saved = tmp_path / "rotate.json"
    outputs = [
        cli(run, "plan", "-f", path, key=ROTATED),
        cli(run, "plan", "-f", path, "--format", "json", key=ROTATED),
        cli(run, "plan", "-f", path, "--format", "markdown", key=ROTATED),
        cli(run, "plan", "-f", path, "--out", str(saved), key=ROTATED),
    ]
    assert all(o.code == 0 for o in outputs), [o.err for o in outputs]
    assert "api_key: (sensitive value changed)" in outputs[0].out, outputs[0].out
    r = cli(run, "apply", str(saved), "-f", path, "--auto-approve", key=ROTATED)
    assert r.code == 0, r.out + r.err
    outputs += [r, cli(run, "show", "-f", path, key=ROTATED)]
    outputs += [cli(run, "drift", "-f", path, key=ROTATED)]
    texts = [o.out + o.err for o in outputs] + [saved.read_text(encoding="utf-8")]
    for text in texts:
        assert KEY not in text and ROTATED not in text, text
    after = providers(api, stack)[f"{stack}-local"]
    assert after["id"] == made["id"] and after["api_key_enc"] == ROTATED
    assert llm.keys[-1] == ROTATED
    assert cli(run, "plan", "-f", path, "--detailed-exitcode", key=ROTATED).code == 0

    # Another endpoint: in place; its models listed.
    other = LlmStub([f"{stack}-other"]).start()
    try:
        moved = write(MANIFEST.replace("BASE_URL", other.url))
        r = cli(run, "apply", "-f", moved, "--auto-approve", key=ROTATED)
        assert r.code == 0 and f'base_url: "{llm.url}" -> "{other.url}"' in r.out, r.out
        assert providers(api, stack)[f"{stack}-local"]["id"] == made["id"]
        assert set(other.keys) == {ROTATED}
        assert handles(api).get(f"openai-proxy/{stack}-other") == f"{stack}-local"

        # Changed by hand on the server: drift, undone by the next apply.
        edited = api.patch(
            f"/v1/providers/{made['id']}", json={"api_key": ROTATED, "base_url": llm.url}
        )
        assert edited.status_code == 200, edited.text
        r = cli(run, "drift", "-f", moved, key=ROTATED)
        assert r.code == 2 and "provider.local.base_url was changed on the server" in r.out
        assert cli(run, "apply", "-f", moved, "--auto-approve", key=ROTATED).code == 0
        assert providers(api, stack)[f"{stack}-local"]["base_url"] == other.url
        api.patch(f"/v1/providers/{made['id']}", json={"api_key": "sk-by-hand-Mn3Bv8Cx"})
        r = cli(run, "drift", "-f", moved, key=ROTATED)
        assert r.code == 2 and "provider.local.api_key" in r.out and "by-hand" not in r.out
        assert cli(run, "apply", "-f", moved, "--auto-approve", key=ROTATED).code == 0
        assert providers(api, stack)[f"{stack}-local"]["api_key_enc"] == ROTATED
    finally:
        other.stop()

    # A new name: Letta cannot rename a provider; the new one is made, then the old deleted.
    renamed = write(MANIFEST.replace("{stack}-local", f"{stack}-renamed"))
    r = cli(run, "apply", "-f", renamed, "--auto-approve", key=ROTATED)
    assert r.code == 0 and "-/+ provider.local" in r.out, r.out + r.err
    found = providers(api, stack)
    assert list(found) == [f"{stack}-renamed"] and found[f"{stack}-renamed"]["id"] != made["id"]
    (mark,) = marks(api, stack)
    assert mark["metadata"]["letta_apply"]["provider"] == found[f"{stack}-renamed"]["id"]
    r = cli(run, "plan", "-f", renamed, "--detailed-exitcode", key=ROTATED)
    assert r.code == 0 and r.writes == 0, r.out

    r = cli(run, "destroy", "-f", renamed, "--auto-approve", key=ROTATED)
    assert r.code == 0, r.out + r.err
    assert not providers(api, stack) and not marks(api, stack)


AGENT = (
    "agents:\n"
    "  assistant:\n"
    "    name: {stack}-agent\n"
    "    model: MODEL\n"
    "    embedding: letta/letta-free\n"
)


@pytest.mark.parametrize(
    "model", ["{provider: local, name: {stack}-chat}", "openai-proxy/{stack}-chat"]
)
def test_one_apply_makes_the_provider_then_an_agent_on_its_model(
    run: Run, write: Callable[..., str], api: httpx.Client, stack: str, llm: LlmStub,
    proxy: CrashProxy, model: str, cleanup: None,
) -> None:  # fmt: skip
    """From an empty server: the model named by the provider's key, or by the handle Letta
    lists it under (`openai-proxy/...`); `--target` the agent keeps the provider it runs on. A
    handle nothing will serve is refused."""
    # A handle no declared provider serves is still refused, before anything is written.
    r = cli(run, "apply", "-f", write(MANIFEST + AGENT.replace("MODEL", "elsewhere/m")))
    assert r.code == 1 and "is not served by this server" in r.out and "[LA633]" in r.out, r.out
    assert not providers(api, stack)
    path = write(MANIFEST + AGENT.replace("MODEL", model))
    proxy.arm(None)
    r = run(
        "apply", "-f", path, "--auto-approve", "--target", "agent.assistant",
        "--var", f"key={KEY}", base_url=proxy.url,
    )  # fmt: skip
    assert r.code == 0, r.out + r.err
    print(f"one apply: {r.reads} reads, {r.writes} writes")
    sent = [(s.method, s.path) for s in proxy.seen]
    # The provider is made (Letta lists its models then), then the agent on one of them.
    assert sent.index(("POST", "/v1/providers/")) < sent.index(("POST", "/v1/agents/"))
    (agent,) = api.get("/v1/agents/", params={"name": f"{stack}-agent"}).json()
    assert agent["llm_config"]["handle"] == f"openai-proxy/{stack}-chat"
    assert agent["llm_config"]["provider_name"] == f"{stack}-local"
    assert agent["llm_config"]["model_endpoint"] == llm.url
    r = cli(run, "plan", "-f", path, "--detailed-exitcode")
    assert r.code == 0 and r.writes == 0 and "No changes." in r.out, r.out + r.err
    # Destroy deletes the agent, then the provider it ran on.
    proxy.arm(None)
    r = run("destroy", "-f", path, "--auto-approve", "--var", f"key={KEY}", base_url=proxy.url)
    assert r.code == 0, r.out + r.err
    sent = [(s.method, s.path) for s in proxy.seen]
    assert sent.index(("DELETE", f"/v1/agents/{agent['id']}")) < next(
        i for i, (m, p) in enumerate(sent) if m == "DELETE" and p.startswith("/v1/providers/")
    )
    assert not providers(api, stack)
    assert not api.get("/v1/agents/", params={"name": f"{stack}-agent"}).json()


def test_a_provider_an_agent_of_the_stack_stays_on_is_not_deleted(
    run: Run, write: Callable[..., str], api: httpx.Client, stack: str, cleanup: None
) -> None:
    """Taken out of the manifest while the stack's agent keeps its handle: a problem naming the
    agent, nothing deleted (the agent would fail on its next step). Moved to another model in
    the same change, the agent is changed, then the provider deleted."""
    on_it = AGENT.replace("MODEL", "openai-proxy/{stack}-chat")
    assert cli(run, "apply", "-f", write(MANIFEST + on_it), "--auto-approve").code == 0
    (agent,) = api.get("/v1/agents/", params={"name": f"{stack}-agent"}).json()
    assert agent["llm_config"]["provider_name"] == f"{stack}-local"
    made = providers(api, stack)[f"{stack}-local"]
    alone = "version: 1\nstack: {stack}\n"
    r = run("apply", "-f", write(alone + on_it), "--auto-approve")
    assert r.code == 1, r.out + r.err
    assert (
        "provider.local: not deleted: agents of this stack stay on its models: "
        f"agent.assistant ({agent['id']}) on openai-proxy/{stack}-chat [LA643]" in r.out
    ), r.out
    still = providers(api, stack)[f"{stack}-local"]
    assert (still["id"], still["updated_at"]) == (made["id"], made["updated_at"])
    assert len(marks(api, stack)) == 1
    moved = AGENT.replace("MODEL", "letta/letta-free")
    r = run("apply", "-f", write(alone + moved), "--auto-approve")
    assert r.code == 0, r.out + r.err
    assert not providers(api, stack) and not marks(api, stack)
    (after,) = api.get("/v1/agents/", params={"name": f"{stack}-agent"}).json()
    assert (after["id"], after["llm_config"]["handle"]) == (agent["id"], "letta/letta-free")


def test_a_provider_of_that_name_not_owned_is_never_touched_until_imported(
    run: Run, write: Callable[..., str], api: httpx.Client, stack: str, llm: LlmStub,
    cleanup: None,
) -> None:  # fmt: skip
    made = api.post(
        "/v1/providers/",
        json={"name": f"{stack}-local", "provider_type": "openai", "api_key": "sk-hand-Kp2Lq9Xw",
              "base_url": llm.url},
    )  # fmt: skip
    assert made.status_code == 200, made.text
    hand = made.json()
    path = write()
    r = cli(run, "plan", "-f", path)
    assert r.code == 1, r.out + r.err
    assert f"a provider named '{stack}-local' already exists" in r.out + r.err
    assert f"{{to: provider.local, name: {stack}-local}}" in r.out + r.err
    assert cli(run, "apply", "-f", path, "--auto-approve").code == 1
    assert cli(run, "destroy", "-f", path, "--auto-approve").code == 0
    still = providers(api, stack)[f"{stack}-local"]
    assert (still["id"], still["updated_at"]) == (hand["id"], hand["updated_at"])
    assert not marks(api, stack)

    adopting = write(MANIFEST + f"imports:\n  - {{to: provider.local, name: {stack}-local}}\n")
    r = cli(run, "apply", "-f", adopting, "--auto-approve")
    assert r.code == 0 and "= provider.local" in r.out, r.out + r.err
    adopted = providers(api, stack)[f"{stack}-local"]
    assert adopted["id"] == hand["id"] and adopted["api_key_enc"] == KEY
    assert cli(run, "plan", "-f", adopting, "--detailed-exitcode").code == 0
    assert cli(run, "destroy", "-f", adopting, "--auto-approve").code == 0
    assert not providers(api, stack)


def test_pruned_with_its_mark(
    run: Run, write: Callable[..., str], api: httpx.Client, stack: str, cleanup: None
) -> None:
    second = MANIFEST + MANIFEST.split("providers:\n")[1].replace("local", "spare")
    assert cli(run, "apply", "-f", write(second), "--auto-approve").code == 0
    assert sorted(providers(api, stack)) == [f"{stack}-local", f"{stack}-spare"]
    r = cli(run, "apply", "-f", write(), "--auto-approve")
    assert r.code == 0 and "- provider.spare" in r.out, r.out
    assert list(providers(api, stack)) == [f"{stack}-local"] and len(marks(api, stack)) == 1


# -- runs killed: SIGKILL at a request boundary (test_crash.py's CrashProxy) -------------------


def _start(proxy: CrashProxy, path: str, root: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    argv = ["apply", "-f", path, "--auto-approve", "--var", f"key={KEY}", "--parallelism", "1"]
    with (root / "run.out").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "letta_apply.cli", *argv, *args, "--base-url", proxy.url],
            stdout=out, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def _killed_at(proxy: CrashProxy, path: str, root: Path, n: int) -> None:
    """Run an apply through `proxy`, held after its request `n` and killed there."""
    proxy.arm(n)
    p = _start(proxy, path, root)
    deadline = time.monotonic() + 300
    while not proxy.held.wait(0.05):
        assert p.poll() is None and time.monotonic() < deadline, "the run ended before request n"
    os.kill(p.pid, signal.SIGKILL)
    p.wait(60)
    proxy.release()


@pytest.fixture
def proxy(server: str) -> Iterator[CrashProxy]:
    p = CrashProxy(httpx.URL(server).port or 80).start()
    yield p
    p.stop()


@pytest.mark.parametrize("after", ["create", "intent"])
def test_a_run_killed_around_the_create_is_recovered_without_a_duplicate(
    run: Run, write: Callable[..., str], api: httpx.Client, stack: str, proxy: CrashProxy,
    tmp_path: Path, after: str, cleanup: None,
) -> None:  # fmt: skip
    path = write()
    # The boundary: the create itself, or the intent written right before it.
    proxy.arm(None)
    # A reference run of the same manifest for another stack counts the requests.
    ref = write(MANIFEST.replace("stack: {stack}", "stack: {stack}-ref").replace("-local", "-ref"))
    reference = _start(proxy, ref, tmp_path)
    assert reference.wait(300) == 0, (tmp_path / "run.out").read_text()
    sent = [(s.method, s.path) for s in proxy.seen]
    assert cli(run, "destroy", "-f", ref, "--auto-approve").code == 0
    create = sent.index(("POST", "/v1/providers/")) + 1
    assert sent[create - 2] == ("POST", "/v1/blocks/")  # the intent, right before it
    _killed_at(proxy, path, tmp_path, create if after == "create" else create - 1)

    found = providers(api, stack)
    assert (f"{stack}-local" in found) == (after == "create")
    (intent,) = marks(api, stack)  # the killed run's intent, its mark never written
    assert "intent" in intent["metadata"]["letta_apply"]
    r = cli(run, "apply", "-f", path, "--auto-approve")  # a plain re-run takes the dead lock
    assert r.code == 0, r.out + r.err
    if after == "create":
        assert "adopted, made by a run that stopped before marking it" in r.out, r.out
    found = providers(api, stack)
    assert list(found) == [f"{stack}-local"]  # no duplicate, nothing else
    (mark,) = marks(api, stack)
    assert mark["id"] == intent["id"]
    assert mark["metadata"]["letta_apply"]["provider"] == found[f"{stack}-local"]["id"]
    r = cli(run, "apply", "-f", path, "--auto-approve")
    assert r.code == 0 and r.writes == 0, r.out + r.err
    assert cli(run, "destroy", "-f", path, "--auto-approve").code == 0
    assert not providers(api, stack) and not marks(api, stack)
