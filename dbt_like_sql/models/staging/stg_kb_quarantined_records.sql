-- One row per quarantined knowledge-base record; excerpt and message stay in ark.
select
    source_file,
    file_sha256,
    record_index,
    rule,
    quarantined_at
from {{ source('ark', 'kb_quarantined_records') }}
