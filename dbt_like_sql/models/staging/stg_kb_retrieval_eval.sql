-- One row per embedder and mode.
select
    embedder,
    "mode" as retrieval_mode,
    queries,
    recall_at_1,
    recall_at_5,
    mrr,
    recall_at_5_question,
    recall_at_5_perturbed,
    recall_at_5_answer,
    queries_per_s
from {{ source('ark', 'kb_retrieval_eval') }}
