"""The eval inbox: where MedArk's published test sets and other systems' result files arrive."""

from typing import Any

import dagster as dg

from ark_assets.defs.resources import data_dir, env_setting


class EvalInbox(dg.ConfigurableResource):
    """The drop folder for evaluation files and the landing area that keeps what arrived."""

    path: str
    landing_path: str


def build_evaluation_resources() -> dict[str, Any]:
    base = data_dir()
    return {
        "eval_inbox": EvalInbox(
            path=env_setting("ARK_EVAL_INBOX_DIR", str(base / "eval_inbox")),
            landing_path=str(base / "landing" / "eval"),
        )
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_evaluation_resources())
