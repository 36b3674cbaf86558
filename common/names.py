"""The names a user writes for the contract's choices, as plain strings (torch-free, grpc-free).

Sweep specs, gate configs and CLI flags validate against these tables; the client's request
builders (``safety_landscape.client.builders``) map each name to its protobuf enum. The order of
each tuple is the order shown to users in messages and ``--help``.
"""

from __future__ import annotations

__all__ = ["CHAT_FORMATS", "JUDGES", "NORMALIZATIONS", "PAPER_FAMILIES", "SELECTIONS", "STREAMS", "SYSTEM_PROMPT_PRESETS",
           "TIED_RULES"]

#: How prompts are wrapped into the model's input: its tokenizer's chat template, none, or a fixed format.
CHAT_FORMATS: tuple[str, ...] = ("tokenizer", "none", "llama2", "vicuna", "mistral", "llama3")
#: The model families whose reference configuration the sweep preset ``paper`` reproduces (each
#: one's literal chat format and ``-base`` system prompt).
PAPER_FAMILIES: tuple[str, ...] = ("llama2", "vicuna", "mistral", "llama3")
#: How a random direction is scaled to the weights it perturbs.
NORMALIZATIONS: tuple[str, ...] = ("layer", "filter", "none")
#: Which tensors a random direction perturbs.
SELECTIONS: tuple[str, ...] = ("reference", "biasbn", "all")
#: Where a random direction's numbers come from: one stream per tensor (fast on a GPU) or the
#: authors' single CPU stream (their exact draws).
STREAMS: tuple[str, ...] = ("per_tensor", "reference")
#: How a tensor held under two names (tied embeddings) is perturbed: once, or as the authors do
#: (a draw for each name in state-dict order, all added to the shared tensor; reference stream only).
TIED_RULES: tuple[str, ...] = ("once", "reference")
#: System prompts known by name (the paper's Table 2, and the reference's safety-tuned Mistral
#: prompts); any other text is sent as a custom system prompt.
SYSTEM_PROMPT_PRESETS: tuple[str, ...] = ("default", "empty", "llama2", "roleplay", "vicuna", "mistral",
                                          "mistral-v01-safe", "mistral-v02-safe")
#: How a completion is judged: refusal keywords, or the server's classifier.
JUDGES: tuple[str, ...] = ("keyword", "classifier")
