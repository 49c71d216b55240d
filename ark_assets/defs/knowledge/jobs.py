"""Jobs of the knowledge layer."""

import dagster as dg

kb_sources_job = dg.define_asset_job(
    "kb_sources_job",
    selection=dg.AssetSelection.assets("kb_sources", "kb_quarantined_records"),
    description="Reloads the knowledge base from the KB inbox; kb_index and kb_retrieval_eval "
    "follow through their eager automation conditions.",
)
