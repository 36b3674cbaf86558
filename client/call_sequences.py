"""What a :class:`~.client.Client` method does in several calls: a whole prompt set read page by
page (checked against its content hash), a candidate polled until it has loaded. Each takes the
one-call method it repeats, so this module needs no client."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from safety_landscape.common.prompt_files import PromptSet
from safety_landscape.v1 import landscape_pb2 as pb

from .call_results import PromptSetPage
from .errors import DeadlineExceededError, NotFoundError, ValidationError
from .server_state import CandidateInfo, CandidateList

__all__ = ["poll_candidate", "read_prompt_set"]


def read_prompt_set(get_page: Callable[..., PromptSetPage], name: str, target: str) -> PromptSetPage:
    """Every prompt of the set ``name``, read with ``get_page(name, offset=...)`` and checked against
    the set's ``sha256`` (a set that changed while it was read is an error, never a mixed list)."""
    first = page = get_page(name)
    prompts = list(page.prompts)
    while page.next_offset < page.info.size and page.prompts:
        page = get_page(name, offset=page.next_offset)
        prompts += page.prompts
    read = PromptSet(name, tuple(prompts), first.info.source_format, first.info.kind)
    if len(prompts) != first.info.size or read.sha256 != first.info.sha256 or page.info.sha256 != first.info.sha256:
        raise ValidationError(f"prompt set {name!r} changed on {target} while it was read: read it again")
    whole = pb.GetPromptSetResponse(info=first.info.proto, offset=0, prompts=prompts, next_offset=len(prompts))
    return PromptSetPage.from_proto(whole)


def poll_candidate(list_candidates: Callable[[], CandidateList], name: str, target: str, *, timeout: float,
                   poll: float) -> CandidateInfo:
    """The candidate ``name`` once it is no longer loading (ready or failed: check ``state``);
    NotFoundError if it is gone, DeadlineExceededError if still loading after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = [c for c in list_candidates().candidates if c.name == name]
        if not found:
            raise NotFoundError(f"no candidate named {name!r} on {target}", code=grpc.StatusCode.NOT_FOUND)
        if found[0].state != "loading":
            return found[0]
        if time.monotonic() > deadline:
            raise DeadlineExceededError(f"{name!r} still loading after {timeout:g} s", code=grpc.StatusCode.DEADLINE_EXCEEDED)
        time.sleep(poll)
