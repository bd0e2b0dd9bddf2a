"""Show Letta's shared memory on the agents a manifest created: the worker writes to the shared
`organization` block through the core-memory route, and the supervisor reads the update.

    python scripts/demo_shared_memory.py examples/shared-memory.yaml
"""

from __future__ import annotations

import os
import sys

from letta_apply import LettaClient, load_manifest, plan_for

TEXT = "Organization: Letta"


def main(path: str) -> int:
    desired = load_manifest(path)
    base_url = os.environ.get("LETTA_BASE_URL", "http://127.0.0.1:8283")
    with LettaClient(base_url, api_key=os.environ.get("LETTA_API_KEY")) as client:
        ids = plan_for(client, desired).ids
        worker, supervisor = ids["agent.worker"], ids["agent.supervisor"]
        print(f'worker ({worker}) writes "{TEXT}" into its organization block ...')
        client.write_memory(worker, "organization", TEXT)
        seen = client.agent_block(supervisor, "organization")["value"]
        print(f'supervisor ({supervisor}) reads its organization block: "{seen}"')
    if seen != TEXT:
        print("the supervisor did not see the worker's write", file=sys.stderr)
        return 1
    print("Shared memory works: both agents hold the same block.")
    print("Run `letta-apply plan -f examples/shared-memory.yaml` to see this write reported as")
    print("agent-written memory that apply keeps.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "examples/shared-memory.yaml"))
