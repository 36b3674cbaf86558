"""The names a user writes for the contract's choices, as plain strings (torch-free, grpc-free).

Sweep specs, gate configs and CLI flags validate against these tables; the client's request
builders (``safety_landscape.client.builders``) map each name to its protobuf enum. The order of
each tuple is the order shown to users in messages and ``--help``.
"""

from __future__ import annotations

__all__ = ["CHAT_FORMATS", "JUDGES", "NORMALIZATIONS", "SELECTIONS", "STREAMS", "SYSTEM_PROMPT_PRESETS"]

#: How prompts are wrapped into the model's input: its tokenizer's chat template, none, or a fixed format.
CHAT_FORMATS: tuple[str, ...] = ("tokenizer", "none", "llama2", "vicuna", "mistral", "llama3")
#: How a random direction is scaled to the weights it perturbs.
NORMALIZATIONS: tuple[str, ...] = ("layer", "filter", "none")
#: Which tensors a random direction perturbs.
SELECTIONS: tuple[str, ...] = ("reference", "biasbn", "all")
#: Where a random direction's numbers come from: one stream per tensor (fast on a GPU) or the
#: authors' single CPU stream (their exact draws).
STREAMS: tuple[str, ...] = ("per_tensor", "reference")
#: System prompts known by name; any other text is sent as a custom system prompt.
SYSTEM_PROMPT_PRESETS: tuple[str, ...] = ("default", "empty", "llama2", "roleplay", "vicuna", "mistral")
#: How a completion is judged: refusal keywords, or the server's classifier.
JUDGES: tuple[str, ...] = ("keyword", "classifier")
