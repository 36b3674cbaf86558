"""A named prompt set's texts from a real server (``GetPromptSet``: bounded pages, NOT_FOUND with
"did you mean", the same token rule as every call), and a sweep that keeps them in its store so the
completions, the report and the exports show each prompt's text."""

from __future__ import annotations

import csv
import dataclasses
import io

import grpc
import pytest
from serving import running_server

from safety_landscape.client.errors import InvalidArgumentError, NotFoundError
from safety_landscape.client.export import export
from safety_landscape.client.store import ResultStore
from safety_landscape.client.sweep import preset, run_sweep
from safety_landscape.common.prompt_files import PromptSet
from safety_landscape.v1 import landscape_pb2 as pb
from safety_landscape.v1 import landscape_pb2_grpc as pb_grpc

PAGE = 7  # the server's max_prompt_set_page here: harmful-mini's 40 prompts take 6 pages


@pytest.fixture(scope="module")
def server():
    with running_server(limits={"max_prompt_set_page": PAGE}) as s:
        yield s


def test_a_set_is_read_in_bounded_pages_and_whole_matches_its_hash(server):
    with server.client() as c:
        listed = {s.name: s for s in c.list_prompt_sets()}["harmful-mini"]
        page = c.get_prompt_set("harmful-mini", offset=3, limit=2)
        assert (page.offset, len(page.prompts), page.next_offset) == (3, 2, 5)
        assert page.info.sha256 == listed.sha256 and page.info.size == 40 and page.info.kind == "harmful"
        capped = c.get_prompt_set("harmful-mini", limit=1000)  # more than a page: one page
        assert len(capped.prompts) == PAGE and capped.next_offset == PAGE
        assert len(c.get_prompt_set("harmful-mini", offset=38).prompts) == 2  # the last page is short
        end = c.get_prompt_set("harmful-mini", offset=500)
        assert end.prompts == () and end.next_offset == 40 and end.offset == 40
        whole = c.prompt_texts("harmful-mini")
    assert len(whole.prompts) == 40 and whole.prompts[3:5] == page.prompts
    assert PromptSet("x", whole.prompts, "", "harmful").sha256 == listed.sha256  # the texts the hash names


def test_an_unknown_name_is_not_found_with_did_you_mean_and_bad_bounds_are_invalid(server):
    with server.client() as c:
        with pytest.raises(NotFoundError, match='Did you mean "harmful-mini"'):
            c.get_prompt_set("harmfull-mini")
        with pytest.raises(InvalidArgumentError, match="offset -1"):
            c.get_prompt_set("harmful-mini", offset=-1)
        with pytest.raises(InvalidArgumentError, match="max_name_chars"):
            c.get_prompt_set("x" * 1000)


def test_get_prompt_set_needs_a_token_like_every_call():
    with running_server(tokens_env="alice:alice-token-123") as server:
        stub = pb_grpc.LandscapeServiceStub(grpc.insecure_channel(server.target))
        with pytest.raises(grpc.RpcError) as info:
            stub.GetPromptSet(pb.GetPromptSetRequest(name="harmful-mini"), timeout=30)
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
        reply = stub.GetPromptSet(pb.GetPromptSetRequest(name="benign-mini", limit=2), timeout=30,
                                  metadata=[("authorization", "Bearer alice-token-123")])
        assert len(reply.prompts) == 2 and reply.info.kind == "benign"


def test_a_sweep_keeps_the_texts_so_completions_and_exports_show_each_prompt(server, tmp_path):
    quick = preset("quick")
    assert quick.benign is not None and quick.prompts.set and quick.benign.set  # both sets held by the server
    spec = quick.replace(name="texts", grid=dataclasses.replace(quick.grid, points=3, directions=1),
                         prompts=dataclasses.replace(quick.prompts, limit=3),
                         benign=dataclasses.replace(quick.benign, limit=2), max_new_tokens=2)
    with server.client() as c:
        harmful = c.prompt_texts(spec.prompts.set).prompts[:3]
        benign = c.prompt_texts(spec.benign.set).prompts[:2]
    with ResultStore(tmp_path / "results.sqlite") as store:
        run_sweep(spec, store, targets=[server.target], bar=False)
        for record in store.records("texts"):
            prompts = [c.prompt for c in store.completions(record.key)]
            assert prompts == list(harmful if record.metric == "asr" else benign), record.metric
        buffer = tmp_path / "completions.csv"
        export(store, buffer, fmt="csv", completions=True)
    rows = list(csv.DictReader(io.StringIO(buffer.read_text(encoding="utf-8"))))
    assert rows and all(r["prompt"] for r in rows)
    assert {r["prompt"] for r in rows if r["metric"] == "asr"} == set(harmful)
