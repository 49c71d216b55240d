-- One row per knowledge-base query a path made (conversation, turn, round, query). The query
-- text is passed on, for kb_query_topics: the teacher wrote it from de-identified dialogues.
with paths as (
    select batch, conversation_id, turn_index, {{ ark_rounds('rounds_json') }} as rounds
    from {{ source('ark', 'ark_paths') }}
),

rounds as (
    select
        batch,
        conversation_id,
        turn_index,
        unnest(rounds) as round,
        generate_subscripts(rounds, 1) - 1 as round_index
    from paths
),

queries as (
    select
        batch,
        conversation_id,
        turn_index,
        round_index,
        unnest(round.results) as result,
        generate_subscripts(round.results, 1) - 1 as query_index
    from rounds
)

select
    batch,
    conversation_id,
    turn_index,
    round_index,
    query_index,
    result.query as query,
    len(result.hits) as n_hits,
    coalesce(result.refined::varchar <> 'null', false) as refined,
    [hit.doc_id for hit in result.hits] as doc_ids
from queries
