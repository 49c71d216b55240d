-- One row per accepted record of an arrived file. The dialogue text stays in ark: only its
-- size (n_chars) is passed on.
select
    batch,
    source_file,
    file_sha256,
    record_index,
    source,
    source_id,
    language,
    language_detected,
    source_format,
    n_turns,
    {{ turn_chars('turns_json') }} as n_chars,
    medark_key,
    dialogue_sha256,
    ingested_at
from {{ source('ark', 'raw_dialogues') }}
