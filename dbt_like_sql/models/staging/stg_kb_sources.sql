-- One row per knowledge-base document. The question is kept (reference text, not patient
-- data): kb_coverage lists the documents never retrieved by it.
select
    doc_id,
    question,
    source,
    language,
    source_file,
    file_sha256,
    record_index,
    source_format,
    occurrences,
    loaded_at
from {{ source('ark', 'kb_sources') }}
