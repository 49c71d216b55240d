"""Agent runs as warehouse rows (one per prefix), and the summary an asset reports."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import polars as pl

from ark_assets.lib.agent.loop import OK, AgentRun, LoopSettings
from ark_assets.lib.agent.parse import FORMS
from ark_assets.lib.agent.policy import PolicyIdentity
from ark_assets.lib.tables import BATCH, MEDARK_KEY, Column, frame

AGENT_RUNS = (
    BATCH,
    Column("conversation_id", pl.Utf8, "tagged_dialogues.conversation_id of the prefix."),
    MEDARK_KEY,
    Column("turn_index", pl.Int64, "0-based turn whose doctor reply the agent replaces."),
    Column("language", pl.Utf8, "zh or en."),
    Column("status", pl.Utf8, "ok (a final action) or failed."),
    Column("failure", pl.Utf8, "Why the row failed (malformed output, retrieval, refine)."),
    Column("final_action", pl.Utf8, "AskAction or TellAction; null when failed."),
    Column("final_text", pl.Utf8, "What the agent says to the patient."),
    Column("final_arguments_json", pl.Utf8, "The final call's validated arguments."),
    Column("final_logprobs_json", pl.Utf8, "Log-probability of each token of the final call."),
    Column("reference_is_asking", pl.Boolean, "Whether the real doctor reply asks (detector)."),
    Column("retrievals", pl.Int64, "RetrievalAction calls the agent made."),
    Column("retries", pl.Int64, "Malformed generations retried."),
    Column("forced_final", pl.Boolean, "The final call was constrained after the retrieval cap."),
    Column("parse_forms_json", pl.Utf8, "Form of each parsed call: tool_call, fenced or bare."),
    Column("steps_json", pl.Utf8, "Every generation: raw text, parsed call, queries, hits."),
    Column("prompt_tokens", pl.Int64, "Prompt tokens over all generations of the row."),
    Column("completion_tokens", pl.Int64, "Generated tokens over all generations of the row."),
    Column("seconds", pl.Float64, "Wall time of the batched steps the row took part in."),
    Column("policy_json", pl.Utf8, "Policy identity {backend, model, adapter}."),
    Column("settings_json", pl.Utf8, "Loop and decoding settings."),
)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def runs_frame(
    runs: Sequence[AgentRun],
    policy: PolicyIdentity,
    settings: LoopSettings,
    reference_is_asking: Sequence[bool | None] | None = None,
) -> pl.DataFrame:
    references = reference_is_asking or [None] * len(runs)
    rows = []
    for run, reference in zip(runs, references, strict=True):
        prefix, final = run.prefix, run.final
        rows.append(
            {
                "batch": prefix.batch,
                "conversation_id": prefix.conversation_id,
                "medark_key": prefix.medark_key,
                "turn_index": prefix.turn_index,
                "language": prefix.language,
                "status": run.status,
                "failure": run.failure,
                "final_action": final.name if final else None,
                "final_text": final.arguments.get("text") if final else None,
                "final_arguments_json": _json(final.arguments) if final else None,
                "final_logprobs_json": _json(run.final_logprobs),
                "reference_is_asking": reference,
                "retrievals": run.retrievals,
                "retries": run.retries,
                "forced_final": run.forced_final,
                "parse_forms_json": _json(run.forms),
                "steps_json": _json([s.as_dict() for s in run.steps]),
                "prompt_tokens": run.prompt_tokens,
                "completion_tokens": run.completion_tokens,
                "seconds": round(run.seconds, 4),
                "policy_json": _json(policy.as_dict()),
                "settings_json": _json(settings.as_dict()),
            }
        )
    return frame(rows, AGENT_RUNS)


def summary(runs: Sequence[AgentRun], wall_seconds: float) -> dict[str, Any]:
    """Action mix, parse forms, failure rate and throughput of one batch of runs."""
    finals = Counter(r.final.name for r in runs if r.final)
    forms = Counter(form for r in runs for form in r.forms)
    failed = sum(r.status != OK for r in runs)
    generated = sum(r.completion_tokens for r in runs)
    return {
        "prefixes": len(runs),
        "ok": len(runs) - failed,
        "failed": failed,
        "failure_rate": round(failed / len(runs), 4) if runs else 0.0,
        "actions": {"AskAction": finals["AskAction"], "TellAction": finals["TellAction"]},
        "retrievals": sum(r.retrievals for r in runs),
        "forced_final": sum(r.forced_final for r in runs),
        "retries": sum(r.retries for r in runs),
        "parse_forms": {form: forms[form] for form in FORMS},
        "failures": dict(Counter((r.failure or "").split(":")[0] for r in runs if r.failure)),
        "generated_tokens": generated,
        "wall_seconds": round(wall_seconds, 3),
        "tokens_per_s": round(generated / wall_seconds, 2) if wall_seconds else 0.0,
        "prefixes_per_s": round(len(runs) / wall_seconds, 4) if wall_seconds else 0.0,
    }
