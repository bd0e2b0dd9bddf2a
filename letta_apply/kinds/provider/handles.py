"""How Letta 0.16.8 names a BYOK provider's models (kinds.provider's ServesModels): the handle
`<base>/<model>` each model is listed under (letta/schemas/providers/base.py `get_handle`), whose
base is the provider's name, but for an `openai` provider whose base_url is not OpenAI's own: its
chat models are `openai-proxy/<model>` (`baseten/<model>` for Baseten's endpoint), whatever its
name (letta/schemas/providers/openai.py `_list_llm_models`). A handle written `<name>/<model>`
for such a provider is refused by Letta with an HTTP 500 (an assertion: the handle it finds is
not the one asked for). A few chat models of the providers named `anthropic`, `openai` and
`together` are listed under a shorter name (letta/schemas/llm_config_overrides.py); no embedding
model is."""

from __future__ import annotations

OPENAI_URL = "https://api.openai.com/v1"
"""The base_url Letta gives an `openai` provider made without one (its default OPENAI_API_BASE)."""
_BASETEN = "api.baseten.co/environments/production/sync/v1"

# fmt: off
OVERRIDES: dict[str, dict[str, str]] = {
    "anthropic": {
        "claude-3-5-haiku-20241022": "claude-3-5-haiku",
        "claude-haiku-4-5-20251001": "claude-haiku-4-5",
        "claude-3-5-sonnet-20241022": "claude-3-5-sonnet",
        "claude-3-opus-20240229": "claude-3-opus",
    },
    "openai": {
        "chatgpt-4o-latest": "chatgpt-4o",
        "gpt-3.5-turbo-0125": "gpt-3.5-turbo-jan",
        "gpt-3.5-turbo-1106": "gpt-3.5-turbo-nov",
        "gpt-4-0125-preview": "gpt-4-preview-jan",
        "gpt-4-0613": "gpt-4-june",
        "gpt-4-1106-preview": "gpt-4-preview-nov",
        "gpt-4-turbo-2024-04-09": "gpt-4-turbo-apr",
        "gpt-4o-2024-05-13": "gpt-4o-may",
        "gpt-4o-2024-08-06": "gpt-4o-aug",
        "gpt-4o-mini-2024-07-18": "gpt-4o-mini-jul",
    },
    "together": {
        "Qwen/Qwen2.5-72B-Instruct-Turbo": "qwen-2.5-72b-instruct",
        "meta-llama/Llama-3-70b-chat-hf": "llama-3-70b",
        "meta-llama/Meta-Llama-3-70B-Instruct-Turbo": "llama-3-70b-instruct",
        "meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo": "llama-3.1-405b-instruct",
        "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo": "llama-3.1-70b-instruct",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo": "llama-3.3-70b-instruct",
        "mistralai/Mistral-7B-Instruct-v0.2": "mistral-7b-instruct-v2",
        "mistralai/Mistral-7B-Instruct-v0.3": "mistral-7b-instruct-v3",
        "mistralai/Mixtral-8x22B-Instruct-v0.1": "mixtral-8x22b-instruct",
        "mistralai/Mixtral-8x7B-Instruct-v0.1": "mixtral-8x7b-instruct",
        "mistralai/Mixtral-8x7B-v0.1": "mixtral-8x7b",
        "NousResearch/Nous-Hermes-2-Mixtral-8x7B-DPO": "hermes-2-mixtral",
    },
}
# fmt: on


def base(name: str, provider_type: str, base_url: str | None, *, embedding: bool) -> str:
    """What a provider's handles start with (before the `/`)."""
    if embedding or provider_type != "openai":
        return name
    url = base_url or OPENAI_URL
    if url.endswith(_BASETEN):
        return "baseten"
    return name if url == OPENAI_URL else "openai-proxy"


def handle(
    name: str, provider_type: str, base_url: str | None, model: str, *, embedding: bool
) -> str:
    """The handle Letta lists the model `model` of a provider under."""
    head = base(name, provider_type, base_url, embedding=embedding)
    if not embedding:
        model = OVERRIDES.get(head, {}).get(model, model)
    return f"{head}/{model}"


def serves(
    name: str, provider_type: str, base_url: str | None, handle: str, *, embedding: bool
) -> bool:
    """Whether `handle` is one Letta names a model of such a provider with."""
    head = base(name, provider_type, base_url, embedding=embedding)
    return handle.startswith(f"{head}/") and len(handle) > len(head) + 1
