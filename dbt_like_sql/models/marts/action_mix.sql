-- One row per (batch, source): how the teacher's paths end (ask or tell), how much they
-- retrieve (rounds, queries, hits) and why they stop; prefixes that got no path as failures.
with paths as (
    select paths.*, coalesce(dialogues.source, '(unspecified)') as source
    from {{ ref('stg_ark_paths') }} as paths
    left join {{ ref('stg_tagged_dialogues') }} as dialogues
        on paths.conversation_id = dialogues.conversation_id
),

queries as (
    select
        conversation_id,
        turn_index,
        count(*) as queries,
        count(*) filter (where n_hits > 0) as queries_with_hits
    from {{ ref('stg_kb_queries') }}
    group by conversation_id, turn_index
),

per_source as (
    select
        paths.batch,
        paths.source,
        count(*) as paths,
        count(*) filter (where paths.is_asking) as ask,
        count(*) filter (where not paths.is_asking) as tell,
        count(*) filter (where paths.is_asking = paths.detector_is_asking) as detector_agrees,
        sum(paths.n_rounds)::bigint as retrieval_rounds,
        count(*) filter (where paths.n_rounds = 0) as paths_without_retrieval,
        count(*) filter (where paths.stop_reason = 'deducible') as stop_deducible,
        count(*) filter (where paths.stop_reason = 'too many retrievals') as stop_too_many_retrievals,
        count(*) filter (where paths.stop_reason = 'no new query request') as stop_no_new_query,
        coalesce(sum(queries.queries), 0)::bigint as queries,
        coalesce(sum(queries.queries_with_hits), 0)::bigint as queries_with_hits
    from paths
    left join queries
        on paths.conversation_id = queries.conversation_id
        and paths.turn_index = queries.turn_index
    group by paths.batch, paths.source
),

failures as (
    select failures.batch, coalesce(dialogues.source, '(unspecified)') as source, count(*) as failures
    from {{ ref('stg_ark_failures') }} as failures
    left join {{ ref('stg_tagged_dialogues') }} as dialogues
        on failures.conversation_id = dialogues.conversation_id
    group by failures.batch, dialogues.source
)

select
    coalesce(per_source.batch, failures.batch) as batch,
    coalesce(per_source.source, failures.source) as source,
    coalesce(per_source.paths, 0) as paths,
    coalesce(per_source.ask, 0) as ask,
    coalesce(per_source.tell, 0) as tell,
    per_source.ask / per_source.paths as ask_rate,
    per_source.detector_agrees / per_source.paths as detector_agreement,
    coalesce(per_source.retrieval_rounds, 0) as retrieval_rounds,
    per_source.retrieval_rounds / per_source.paths as rounds_per_path,
    coalesce(per_source.paths_without_retrieval, 0) as paths_without_retrieval,
    coalesce(per_source.stop_deducible, 0) as stop_deducible,
    coalesce(per_source.stop_too_many_retrievals, 0) as stop_too_many_retrievals,
    coalesce(per_source.stop_no_new_query, 0) as stop_no_new_query,
    coalesce(per_source.queries, 0) as queries,
    coalesce(per_source.queries_with_hits, 0) as queries_with_hits,
    per_source.queries_with_hits / nullif(per_source.queries, 0) as query_hit_rate,
    coalesce(failures.failures, 0) as failures
from per_source
full outer join failures
    on per_source.batch = failures.batch and per_source.source = failures.source
