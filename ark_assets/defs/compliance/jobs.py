"""A deletion request from the UI: the `ark forget` of users who work in the Launchpad."""

import dagster as dg
from pydantic import Field

from ark_assets.defs.knowledge.resources import KbInbox
from ark_assets.defs.resources import DialogueInbox, Warehouse
from ark_assets.lib.compliance.targets import InvalidTarget
from ark_assets.lib.compliance.tombstones import NothingToForget


class DeletionRequestConfig(dg.Config):
    target: str = Field(
        description="Conversation key, a source file's exact name as it arrived, or its path in "
        "an inbox or landing area."
    )
    requested_by: str = Field(description="Who asks (recorded in ark.deletion_requests).")
    reason: str = Field(default="", description="Why, e.g. a ticket number; no personal data.")


@dg.op(description="Records the tombstones of one deletion request and deletes file copies.")
def record_deletion_request(
    context: dg.OpExecutionContext,
    config: DeletionRequestConfig,
    warehouse: Warehouse,
    inbox: DialogueInbox,
    kb_inbox: KbInbox,
) -> None:
    from ark_assets.defs.compliance.deletion import forget

    resources = {"warehouse": warehouse, "inbox": inbox, "kb_inbox": kb_inbox}
    try:
        request = forget(
            config.target,
            resources,
            context.instance,
            requested_by=config.requested_by,
            reason=config.reason,
        )
    except (InvalidTarget, NothingToForget) as err:
        # The Launchpad shows a Failure's description; anything else as a stack trace.
        raise dg.Failure(description=str(err)) from err
    context.log.info(
        f"deletion request {request.request_id}: {len(request.tombstones)} tombstone(s); "
        f"rematerialize batches {request.batches or 'none'}"
        + (" and kb_sources" if request.knowledge_base else "")
        + " (or run `ark forget ... --rebuild`); adapters stay tainted until retrained"
    )


@dg.job(
    description="Deletion request (as `ark forget`): tombstones a conversation or a source file. "
    "Then rematerialize the batches it names; the audit marks older adapters as tainted.",
    tags={"ark/compliance": "deletion_request"},
)
def deletion_request_job() -> None:
    record_deletion_request()
