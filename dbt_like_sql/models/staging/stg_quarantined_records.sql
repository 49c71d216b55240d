-- One row per quarantined record. The excerpt (the raw record) and the message (which may quote
-- it) stay in ark.
select
    batch,
    source_file,
    file_sha256,
    record_index,
    rule,
    quarantined_at
from {{ source('ark', 'quarantined_records') }}
