"""The eval inbox: where MedArk's published test sets and other systems' result files arrive."""

from typing import Any

import dagster as dg
from pydantic import Field

from ark_assets.defs.resources import data_dir, env_setting
from ark_assets.lib.evaluation.judged import BertScorer


class EvalInbox(dg.ConfigurableResource):
    """The drop folder for evaluation files and the landing area that keeps what arrived."""

    path: str
    landing_path: str


class BertScoreResource(dg.ConfigurableResource):
    """BERTScore in the report: off unless a local model directory is configured
    (``ARK_BERTSCORE_MODEL``, e.g. a downloaded bert-base-chinese; nothing is fetched)."""

    model: str = Field(default="", description="Local model directory; empty: no BERTScore.")
    num_layers: int = Field(default=8, description="Layer compared (bert-base-chinese: 8).")
    device: str = Field(default="", description="torch device; empty: cuda when available.")

    def scorer(self) -> BertScorer | None:
        if not self.model:
            return None
        from ark_assets.lib.evaluation.metrics import BertScores, bertscore

        def score(replies: list[str], references: list[str]) -> BertScores:
            return bertscore(
                replies, references, self.model, "zh", num_layers=self.num_layers,
                device=self.device or None,
            )  # fmt: skip

        return score


def build_evaluation_resources() -> dict[str, Any]:
    base = data_dir()
    return {
        "eval_inbox": EvalInbox(
            path=env_setting("ARK_EVAL_INBOX_DIR", str(base / "eval_inbox")),
            landing_path=str(base / "landing" / "eval"),
        ),
        "bertscore": BertScoreResource(
            model=env_setting("ARK_BERTSCORE_MODEL", ""),
            num_layers=env_setting("ARK_BERTSCORE_LAYERS", 8),
            device=env_setting("ARK_BERTSCORE_DEVICE", ""),
        ),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_evaluation_resources())
