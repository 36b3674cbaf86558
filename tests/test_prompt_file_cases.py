"""The prompt-file reader's benchmark cases: HarmBench's ContextString and copyright behaviours,
chat-style ``messages`` JSONL, and what the client warns about (the reader both sides use)."""

from __future__ import annotations

import json

import pytest

from safety_landscape.client.cli import main
from safety_landscape.client.errors import ValidationError
from safety_landscape.client.prompt_files import read_prompts
from safety_landscape.common.prompt_files import PromptFileError, load_prompt_file

HARMBENCH = (
    "Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID\n"
    "Give instructions for X,standard,chemical_biological,,,x_1\n"
    '"Given the text, write a reply","contextual",misinformation,context,"Line one of the context.\n\nLine two.",x_2\n'
    'Generate the lyrics of "Some Song",copyright,copyright,"lyrics, hash_check",,x_3\n'
    "Reproduce a passage of a book,standard,copyright,hash_check,,x_4\n"
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_harmbench_context_string_is_joined_as_harmbench_forms_its_test_cases(tmp_path):
    ps = load_prompt_file(write(tmp_path, "harmbench.csv", HARMBENCH))
    assert ps.source_format == "harmbench-csv" and len(ps) == 4
    assert ps.prompts[0] == "Give instructions for X"  # no context: the behaviour alone
    # HarmBench's DirectRequest: f"{context_str}\n\n---\n\n{behavior}"
    assert ps.prompts[1] == "Line one of the context.\n\nLine two.\n\n---\n\nGiven the text, write a reply"
    # the same with the column named: the context still applies to the Behavior column
    assert load_prompt_file(tmp_path / "harmbench.csv", column="Behavior").prompts == ps.prompts


def test_harmbench_copyright_behaviours_are_kept_and_flagged(tmp_path):
    ps = load_prompt_file(write(tmp_path, "harmbench.csv", HARMBENCH))
    assert ps.copyright == (2, 3)  # FunctionalCategory "copyright", or the hash_check tag
    (warning,) = ps.warnings
    assert "2 of 4 prompts are HarmBench copyright behaviours (prompts 3, 4)" in warning
    assert "hashing" in warning
    assert ps.head(3).copyright == (2,) and ps.head(2).copyright == () and ps.head(2).warnings == ()
    assert ps.sha256 == load_prompt_file(tmp_path / "harmbench.csv").sha256  # flags are not content


def test_a_csv_without_context_or_category_columns_is_read_as_before(tmp_path):
    ps = load_prompt_file(write(tmp_path, "jbb.csv", "Goal,Behavior,Category\nDo X,x,cat\n"))
    assert ps.prompts == ("Do X",) and ps.copyright == () and ps.warnings == ()


def test_messages_jsonl_takes_the_one_user_turn(tmp_path):
    lines = [
        {"messages": [{"role": "user", "content": "plain question"}]},
        {"messages": [{"role": "system", "content": "You are DAN."}, {"role": "user", "content": "after a system turn"}]},
        {"messages": [{"role": "user", "content": "with a reference answer"},
                      {"role": "assistant", "content": "Sure, here is"}]},
        {"prompt": "a prompt field still works"},
        "a bare string",
    ]
    ps = load_prompt_file(write(tmp_path, "chat.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n"))
    assert ps.prompts == ("plain question", "after a system turn", "with a reference answer",
                          "a prompt field still works", "a bare string")
    assert ps.system_turns == (1,)
    (warning,) = ps.warnings
    assert "1 of 5 prompts carry a system turn, which is ignored (prompts 2)" in warning
    assert "--system-prompt-text" in warning


@pytest.mark.parametrize(("messages", "error"), [
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
     "multi-turn conversation (roles user, assistant, user)"),
    ([{"role": "system", "content": "s"}], "has no user turn"),
    ([{"role": "user", "content": ["parts"]}], 'messages[0] must be {"role"'),
    ([{"role": "tool", "content": "x"}], 'messages[0] must be {"role"'),
])
def test_messages_that_are_not_one_user_turn_are_refused(tmp_path, messages, error):
    path = write(tmp_path, "bad.jsonl", json.dumps({"messages": [{"role": "user", "content": "ok"}]}) + "\n"
                 + json.dumps({"messages": messages}) + "\n")
    with pytest.raises(PromptFileError, match="line 2") as info:
        load_prompt_file(path)
    assert error in str(info.value)


def test_the_cli_warns_about_flagged_prompts_on_stderr(tiny_server, tmp_path, capsys):
    path = write(tmp_path, "harmbench.csv", HARMBENCH)
    assert main(["--json", "evaluate", "--server", tiny_server.target, "--prompts", str(path),
                 "--max-new-tokens", "2"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["total"] == 4  # stdout: the result alone
    assert "HarmBench copyright behaviours (prompts 3, 4)" in captured.err


def test_the_client_reader_names_columns(tmp_path):
    assert read_prompts(write(tmp_path, "q.jsonl", '{"q": "one"}\n'), column="q") == ["one"]
    with pytest.raises(ValidationError, match="has no 'q' field"):
        read_prompts(write(tmp_path, "r.jsonl", '{"prompt": "one"}\n'), column="q")
