-- One row per document a query returned (query, rank).
with hits as (
    select
        batch,
        conversation_id,
        turn_index,
        round_index,
        query_index,
        unnest(doc_ids) as doc_id,
        generate_subscripts(doc_ids, 1) as hit_rank
    from {{ ref('stg_kb_queries') }}
)

select * from hits
