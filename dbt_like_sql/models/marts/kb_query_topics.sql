-- One row per query topic (the query text, trimmed and lower-cased): how often the teacher asked
-- it, in how many conversations, how often it found something and how many documents it found.
select
    lower(trim(query)) as topic,
    count(*) as times_queried,
    count(distinct conversation_id) as conversations,
    count(*) filter (where n_hits > 0) as queries_with_hits,
    count(*) filter (where n_hits > 0) / count(*) as hit_rate,
    len(list_distinct(flatten(list(doc_ids)))) as documents_returned
from {{ ref('stg_kb_queries') }}
group by lower(trim(query))
