"""``visage info|health|generate|direction|set|evaluate|prompt-sets|registry``: one call each."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from safety_landscape.common.names import (
    CHAT_FORMATS,
    JUDGES,
    NORMALIZATIONS,
    SELECTIONS,
    STREAMS,
    SYSTEM_PROMPT_PRESETS,
    TIED_RULES,
)

from .common import add_connection_args, connect, message_to_dict, parse_at, print_json

if TYPE_CHECKING:
    from safety_landscape.v1 import landscape_pb2 as pb

    from ..server_state import MemoryPlan
    from .common import Subparsers

__all__ = ["register"]

AT_HELP = ("perturbation term DIRECTION=COEF (repeatable): seed:N[,stream:S][,index:I][,normalization:N]"
           "[,selection:S][,tied:T][,include:P][,exclude:P] (default: per_tensor stream, draw 0; a sweep's d<I> is "
           "seed:SEED,stream:reference,index:I), interp:NAME, adapter:NAME or d-<id>")


def register(sub: Subparsers) -> None:
    _simple(sub, "info", "model, tokenizer, fingerprints and limits of a server", cmd_info)
    _simple(sub, "health", "the server's health status (SERVING / NOT_SERVING)", cmd_health)
    _register_generate(sub)
    _register_direction(sub)
    p = _simple(sub, "set", "set the interactive weight state (absolute coefficients; admin)", cmd_set)
    p.add_argument("--at", action="append", default=[], help=AT_HELP + "; none = theta0")
    p.add_argument("--verify", action="store_true", help="also hash the actual weights")
    _register_evaluate(sub)
    _simple(sub, "prompt-sets", "the named prompt sets a server knows", cmd_prompt_sets)
    _simple(sub, "registry", "checkpoints and adapters the server's operator registered", cmd_registry)


def _simple(sub: Subparsers, name: str, helptext: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=helptext)
    add_connection_args(p)
    p.set_defaults(func=func)
    return p


def _register_generate(sub: Subparsers) -> None:
    p = sub.add_parser("generate", help="generate completions, optionally at perturbed weights")
    add_connection_args(p)
    p.add_argument("--prompt", action="append", required=True, help="a prompt (repeatable)")
    _add_prompting_args(p)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--at", action="append", default=[], help=AT_HELP)
    p.set_defaults(func=cmd_generate)


def _register_direction(sub: Subparsers) -> None:
    p = sub.add_parser("direction", help="create, list or delete perturbation directions (admin)")
    dsub = p.add_subparsers(dest="direction_command", required=True)
    c = dsub.add_parser("create", help="create a direction from its spec (idempotent)")
    add_connection_args(c)
    kind = c.add_mutually_exclusive_group(required=True)
    kind.add_argument("--seed", type=int, help="a random direction with this seed")
    kind.add_argument("--interpolation", metavar="NAME", help="toward a registered checkpoint")
    kind.add_argument("--adapter", metavar="NAME", help="a registered LoRA adapter's merged delta")
    c.add_argument("--normalization", default="layer", choices=NORMALIZATIONS)
    c.add_argument("--selection", default="reference", choices=SELECTIONS)
    c.add_argument("--include", action="append", default=[], help="only tensors matching this pattern")
    c.add_argument("--exclude", action="append", default=[], help="never tensors matching this pattern")
    c.add_argument("--stream", default="per_tensor", choices=STREAMS)
    c.add_argument("--index", type=int, default=0, help="which draw of the reference stream")
    c.add_argument("--tied", default="once", choices=TIED_RULES,
                   help="tied embeddings: perturb once, or as the authors (a draw per name; --stream reference)")
    c.set_defaults(func=cmd_direction_create)
    ls = dsub.add_parser("list", help="directions the server holds, and its memory")
    add_connection_args(ls)
    ls.set_defaults(func=cmd_direction_list)
    rm = dsub.add_parser("delete", help="forget a direction")
    add_connection_args(rm)
    rm.add_argument("direction_id")
    rm.set_defaults(func=cmd_direction_delete)


def _register_evaluate(sub: Subparsers) -> None:
    p = sub.add_parser("evaluate", help="attack success rate of a prompt set at a perturbation")
    add_connection_args(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompts", metavar="FILE",
                     help="a prompt file (AdvBench/HarmBench/JailbreakBench CSV, JSONL with prompt/goal/messages, text)")
    src.add_argument("--set", metavar="NAME", help="a prompt set the server knows (see visage prompt-sets)")
    p.add_argument("--column", metavar="NAME", help="the prompt column (CSV) or field (JSONL) of --prompts")
    p.add_argument("--limit", type=int, default=0, help="only the first N prompts (AdvBench's first 80 is the paper's)")
    _add_prompting_args(p)
    p.add_argument("--judge", default="keyword", choices=JUDGES)
    p.add_argument("--keyword", action="append", default=[], help="replace the paper's refusal keywords (repeatable)")
    gen = p.add_mutually_exclusive_group()
    gen.add_argument("--max-new-tokens", type=int, default=128)
    gen.add_argument("--preset", choices=("paper",), help="paper: greedy, 512 new tokens")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--sample-seed", type=int, default=0, help="sampling seed (with --sample)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (with --sample)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (with --sample)")
    p.add_argument("--at", action="append", default=[], help=AT_HELP)
    p.add_argument("--completions", action="store_true", help="return the completions (large)")
    p.add_argument("--no-early-stop", action="store_true", help="generate the full length even with the keyword judge")
    p.add_argument("--no-referee", action="store_true",
                   help="turn the server's coherence referee off: the ASR only, no outcomes (cheaper on a CPU)")
    p.add_argument("--expect-model", metavar="FINGERPRINT",
                   help="refuse, before evaluating, unless the server holds this model (its fingerprint as visage info "
                        "shows it, or its first 12+ characters): a stored point's command names the model it measured")
    p.set_defaults(func=cmd_evaluate)


def _add_prompting_args(p: argparse.ArgumentParser) -> None:
    system = p.add_mutually_exclusive_group()
    system.add_argument("--system-prompt", default=None,
                        help=f"a preset ({', '.join(SYSTEM_PROMPT_PRESETS)}) or a custom text (a sentence: a preset "
                             "lookalike or a single word is refused)")
    system.add_argument("--system-prompt-text", default=None, metavar="TEXT",
                        help="a custom system prompt taken as given, never read as a preset")
    p.add_argument("--chat-format", default="tokenizer", choices=CHAT_FORMATS)


def _system_prompt(args: argparse.Namespace) -> str | None:
    """The system prompt the flags name (None: the default preset), checked by the spec's rule."""
    from ..errors import ValidationError
    from ..sweep.spec.rules import system_prompt_problem, system_prompt_text_problem

    if args.system_prompt_text is not None:
        problem = system_prompt_text_problem(args.system_prompt_text)
        if problem:
            raise ValidationError(f"--system-prompt-text: {problem}")
        return str(args.system_prompt_text)
    if args.system_prompt is not None:
        problem = system_prompt_problem(args.system_prompt)
        if problem:
            raise ValidationError(f"--system-prompt: {problem}")
    return args.system_prompt  # type: ignore[no-any-return]


def cmd_info(args: argparse.Namespace) -> int:
    with connect(args) as client:
        info = client.info()
    if args.json:
        print_json(message_to_dict(info.proto))
        return 0
    print(f"model        {info.model_name} ({info.architecture}, {info.parameter_count:,} parameters)")
    print(f"device       {info.device} {info.dtype}   torch {info.torch_version}")
    print(f"fingerprint  {info.model_fingerprint}")
    print(f"tokenizer    {info.tokenizer.tokenizer_class}, vocab {info.tokenizer.vocab_size}, "
          f"chat template {'yes' if info.tokenizer.has_chat_template else 'no'}")
    print(f"server       {info.server_version}, loaded in {info.load_seconds:.1f} s, directions: {info.limits.direction_storage}")
    lim = info.limits
    print(f"limits       batch {lim.max_batch_size}, max_new_tokens {lim.max_new_tokens}, prompts/request "
          f"{lim.max_prompts_per_request}, directions {lim.max_directions}, |c| <= {lim.max_abs_coefficient}")
    print(f"inputs       text {lim.max_text_chars} chars, prompt {lim.max_prompt_tokens} tokens, Score {lim.max_score_tokens} "
          f"tokens ({lim.max_score_candidates} candidates), keywords {lim.max_keywords} ({lim.max_keyword_bytes} bytes), "
          f"terms {lim.max_terms}, patterns {lim.max_direction_patterns}, reference index <= {lim.max_reference_index}, "
          f"names {lim.max_name_chars} chars, points {lim.max_points_per_request}, request {lim.max_message_bytes} bytes")
    print(f"sharing      queue {lim.max_queued_jobs} ({lim.max_queued_jobs_per_tenant} per tenant, {lim.queue_reserve} kept "
          f"for tenants with none), streams {lim.max_streams} ({lim.max_streams_per_tenant} per tenant, cancelled after "
          f"{lim.stream_send_timeout_seconds:g} s unread), health watches {lim.max_health_watches}, direction slots per "
          f"tenant {lim.tenant_direction_slots}")
    print(f"memory       {lim.max_job_memory_bytes / 2**30:.2f} GiB per job, "
          f"{lim.max_batch_tokens} prompt tokens per forward pass")
    _print_memory_plan(info.memory_plan)
    return 0


def _print_memory_plan(plan: MemoryPlan) -> None:
    """The server's memory plan, a line per device (GiB)."""
    if not plan.devices:
        return
    print(f"memory plan  directions {plan.direction_storage}, pristine {plan.pristine}, batch {plan.batch_size} x "
          f"({plan.prompt_tokens} prompt + {plan.new_tokens} new tokens): {'fits' if plan.fits else 'DOES NOT FIT'}")
    for d in plan.devices:
        parts = [("model", d.model_bytes), ("pristine", d.pristine_bytes), ("directions", d.directions_bytes),
                 ("scratch", d.scratch_bytes), ("KV cache", d.kv_cache_bytes), ("activations", d.activation_bytes),
                 ("runtime", d.runtime_bytes)]
        figures = ", ".join(f"{name} {value / 2**30:.2f}" for name, value in parts)
        print(f"  {d.device:<10} {figures} -> {d.total_bytes / 2**30:.2f} of {d.capacity_bytes / 2**30:.2f} GiB"
              f"{'' if d.fits else '  DOES NOT FIT'}")


def cmd_health(args: argparse.Namespace) -> int:
    with connect(args) as client:
        status = client.health()
    print_json({"status": status}) if args.json else print(status)
    return 0 if status == "SERVING" else 1


def cmd_generate(args: argparse.Namespace) -> int:
    from ..builders import generation

    settings = generation(args.max_new_tokens, do_sample=args.sample, seed=args.seed, temperature=args.temperature,
                          top_p=args.top_p)
    system, at = _system_prompt(args), parse_at(args.at)  # bad input fails before any connection
    with connect(args) as client:
        resp = client.generate(args.prompt, system=system, chat=args.chat_format, settings=settings, at=at)
    if args.json:
        print_json(message_to_dict(resp.proto))
        return 0
    for prompt, completion in zip(args.prompt, resp.completions, strict=False):
        print(f"> {prompt}\n{completion.text}\n")
    secs = resp.timings.prefill_seconds + resp.timings.decode_seconds
    print(f"[{resp.generated_tokens} tokens in {secs:.2f} s; weights {resp.weight_state.fingerprint[:16]}]")
    return 0


def cmd_direction_create(args: argparse.Namespace) -> int:
    from ..builders import adapter_direction, interpolation_direction, random_direction

    if args.seed is not None:
        spec = random_direction(args.seed, normalization=args.normalization, selection=args.selection,
                                include=args.include, exclude=args.exclude, stream=args.stream, index=args.index,
                                tied=args.tied)
    elif args.interpolation:
        spec = interpolation_direction(args.interpolation)
    else:
        spec = adapter_direction(args.adapter)
    with connect(args) as client:
        d = client.create_direction(spec)
    if args.json:
        print_json(message_to_dict(d.proto))
    else:
        state = "created" if d.created else "already held"
        print(f"{d.id}  {state}  fingerprint {d.fingerprint[:16]}  norm {d.norm:.4g}  "
              f"{d.perturbed_tensors}/{d.total_tensors} tensors  {d.bytes_held / 2**20:.1f} MiB  {d.create_seconds:.2f} s")
    return 0


def cmd_direction_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        resp = client.list_directions()
    if args.json:
        print_json(message_to_dict(resp.proto))
        return 0
    for d in resp.directions:
        print(f"{d.id}  {d.spec.WhichOneof('kind')}  fingerprint {d.fingerprint[:16]}  {d.bytes_held / 2**20:.1f} MiB")
    m = resp.memory
    print(f"memory: model {m.model_bytes / 2**20:.1f} MiB, pristine {m.pristine_bytes / 2**20:.1f} MiB, "
          f"directions {m.directions_bytes / 2**20:.1f} MiB")
    return 0


def cmd_direction_delete(args: argparse.Namespace) -> int:
    with connect(args) as client:
        client.delete_direction(args.direction_id)
    print_json({"deleted": args.direction_id}) if args.json else print(f"deleted {args.direction_id}")
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    at = parse_at(args.at)
    with connect(args) as client:
        state = client.set_coefficients(at, verify=args.verify)
    if args.json:
        print_json(message_to_dict(state.proto))
    else:
        print(f"weights {state.fingerprint}" + (f"\nsha256  {state.weights_sha256}" if state.weights_sha256 else ""))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..builders import evaluation_settings, generation
    from ..errors import ValidationError
    from ..prompt_files import read_prompts

    if args.column and not args.prompts:
        raise ValidationError("--column names a column of --prompts FILE; give the file")
    prompts = read_prompts(args.prompts, column=args.column) if args.prompts else None
    if prompts is not None and args.limit > 0:  # sent as a sweep sends them: the first N, no limit
        prompts = prompts[:args.limit]
    settings = evaluation_settings(
        prompts=prompts, prompt_set=args.set, limit=0 if prompts is not None and args.limit > 0 else args.limit,
        system=_system_prompt(args), chat=args.chat_format,
        max_new_tokens=args.max_new_tokens, generation_preset=args.preset or "", keywords=args.keyword,
        judge=args.judge, return_completions=args.completions, disable_early_stop=args.no_early_stop,
        referee=not args.no_referee,
    )
    if args.sample:
        if args.preset:
            raise ValidationError("--sample and --preset paper (greedy) exclude each other")
        settings.generation.CopyFrom(generation(args.max_new_tokens, do_sample=True, seed=args.sample_seed,
                                                temperature=args.temperature, top_p=args.top_p))
    at = parse_at(args.at)
    with connect(args) as client:
        if args.expect_model:
            _check_model(client.info().model_fingerprint, args.expect_model, client.target)
        resp = client.evaluate(settings, at=at)
    if args.json:
        print_json(message_to_dict(resp.proto))
        return 0
    t = resp.timings
    print(f"ASR {resp.asr:.2f}%  ({resp.jailbroken}/{resp.total} jailbroken, judge {resp.judge})")
    if resp.coherent_asr is None:  # said, never left out: a reader must not take the ASR for harm alone
        print("coherent ASR: not measured (the server's coherence referee did not run)")
    else:
        print(f"coherent ASR {resp.coherent_asr:.2f}%  ({resp.refused} refused, {resp.complied} complied, "
              f"{resp.incoherent} incoherent)")
    print(f"at {_at_text(at)}")
    print(f"prompt set {resp.prompt_set.name} ({resp.prompt_set.size}, sha256 {resp.prompt_set.sha256[:12]})  "
          f"weights {resp.weight_state.fingerprint[:16]}")
    print(f"{resp.generated_tokens} tokens generated, {resp.tokens_saved} saved by early stop; "
          f"{t.total_seconds:.1f} s (prefill {t.prefill_seconds:.1f}, decode {t.decode_seconds:.1f})")
    return 0


def _check_model(held: str, expected: str, target: str) -> None:
    """Refuse unless the server's model fingerprint is ``expected`` (or starts with it, 12+ characters)."""
    from ..errors import ValidationError

    if len(expected) < 12 or not held.startswith(expected):
        raise ValidationError(f"--expect-model {expected}: {target} holds another model (fingerprint {held}); "
                              "evaluate on a server that holds the model the point was measured on")


def _at_text(at: pb.Perturbation) -> str:
    """The weights a perturbation names, each term in --at's grammar: ``theta0 + 0.5 x seed:1,...``."""
    from ..direction_text import direction_text

    terms = [f"{t.coefficient!r} x {direction_text(t.spec if t.HasField('spec') else t.direction_id)}" for t in at.terms]
    return " + ".join(["theta0", *terms])


def cmd_prompt_sets(args: argparse.Namespace) -> int:
    with connect(args) as client:
        sets = client.list_prompt_sets()
    if args.json:
        print_json([message_to_dict(s.proto) for s in sets])
    else:
        for s in sets:
            print(f"{s.name:20s} {s.kind:8s} {s.size:5d}  {s.source_format:18s} {s.sha256[:12]}")
    return 0


def cmd_registry(args: argparse.Namespace) -> int:
    with connect(args) as client:
        entries = client.list_registry()
    if args.json:
        print_json([message_to_dict(e.proto) for e in entries])
    else:
        for e in entries:
            print(f"{e.name:24s} {e.kind}")
    return 0
