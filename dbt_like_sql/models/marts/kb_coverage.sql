-- One row per knowledge-base document: how often the teacher's queries returned it, over how
-- many paths and conversations; never_retrieved marks the documents no path has used.
with hits as (
    select
        doc_id,
        count(*) as times_retrieved,
        count(distinct (conversation_id, turn_index)) as paths,
        count(distinct conversation_id) as conversations
    from {{ ref('stg_kb_hits') }}
    group by doc_id
)

select
    documents.doc_id,
    documents.question,
    documents.source,
    documents.language,
    documents.source_file,
    coalesce(hits.times_retrieved, 0) as times_retrieved,
    coalesce(hits.paths, 0) as paths,
    coalesce(hits.conversations, 0) as conversations,
    hits.doc_id is null as never_retrieved
from {{ ref('stg_kb_sources') }} as documents
left join hits on documents.doc_id = hits.doc_id
