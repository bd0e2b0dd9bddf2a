"""LA5xx: problems with the server (connections, its answers, projects), with what each
means and what to do."""

from __future__ import annotations

from ..errors import define

# fmt: off

# LA5xx: the server
define("LA501", "ServerUnreachable", "server unreachable",
       "No connection to the Letta server: refused, a name that does not resolve, a timeout, "
       "a connection lost (after the retries of --max-retries).",
       "Check --base-url (LETTA_BASE_URL) and that the server runs; a run can be repeated.")
define("LA502", "ApiError", "credentials refused",
       "The server answered 401 or 403: the API key is missing, wrong, or may not do this.",
       "Check --api-key (LETTA_API_KEY), and --project on Letta Cloud.")
define("LA503", "ApiError", "not found on the server",
       "The server answered 404 for a resource: it was deleted while the command ran, or an "
       "id given (imports, force-unlock) names nothing.",
       "Plan again; check the ids the manifest gives.")
define("LA504", "ApiError", "conflict on the server",
       "The server answered 409 or 423: what was asked clashes with what it holds now (a "
       "name taken, a resource busy).",
       "Read the server's message; plan again once the clash is gone.")
define("LA505", "ApiError", "server busy",
       "The server kept answering 408 or 429 (too many requests) past the retries allowed.",
       "Run again later, or raise --max-retries and --retry-max-time.")
define("LA506", "ApiError", "server error",
       "The server answered 5xx: it failed (after retries, where retrying is safe).",
       "Look at the server's logs; apply again to converge (nothing is made twice).")
define("LA507", "ApiError", "request refused",
       "The server refused a request as wrong (400, 422 and other 4xx): sending it again gets "
       "the same answer.",
       "Fix what the server's message names, in the manifest or on the server.")
define("LA508", "RouteGone", "the server does not offer this kind",
       "A route a kind of resource needs answered 404 or 410: this server (or Letta Cloud) "
       "does not offer the kind.",
       "Remove that section from the manifest for this server, or use a server that has it.")
define("LA510", "ApiError", "an answer letta-apply cannot use",
       "A request succeeded but its answer is not what it should be (not JSON, not a list), "
       "or a change could not be made as planned for a reason the message gives.",
       "Read the message; check that --base-url is a Letta server of a supported version.")
define("LA511", "ServerStateError", "no such project",
       "--project names no project on the server, or more than one.",
       "Give a project's id, slug or name as the message lists them.")
define("LA512", "ServerStateError", "a server without projects",
       "--project is given, but the server has no projects (projects are Letta Cloud's).",
       "Leave out --project (LETTA_PROJECT) for a self-hosted server.")
# fmt: on
