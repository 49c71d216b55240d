-- One row per conversation; text as its size only.
select
    batch,
    conversation_id,
    medark_key,
    dialogue_sha256,
    source_file,
    record_index,
    source,
    language,
    n_turns,
    {{ turn_chars('turns_json') }} as n_chars,
    occurrences
from {{ source('ark', 'tagged_dialogues') }}
