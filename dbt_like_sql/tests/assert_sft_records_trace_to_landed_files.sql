-- Promise: every SFT example traces back to a file that arrived and is still landed: its
-- conversation is in tagged_dialogues, whose record is in raw_dialogues, whose file is in the
-- landing area with the same sha256. Fails on each example that breaks the chain, saying where.
{{ config(meta={'dagster': {'ref': {'name': 'stg_sft_records'}}}) }}

with chain as (
    select
        records.batch,
        records.conversation_id,
        records.turn_index,
        records.step,
        dialogues.conversation_id is not null as tagged,
        raw.file_sha256 as record_file_sha256,
        landed.file_sha256 as landed_file_sha256
    from {{ ref('stg_sft_records') }} as records
    left join {{ ref('stg_tagged_dialogues') }} as dialogues
        on records.conversation_id = dialogues.conversation_id
    left join {{ ref('stg_raw_dialogues') }} as raw
        on dialogues.batch = raw.batch and dialogues.record_index = raw.record_index
    left join {{ ref('stg_landed_files') }} as landed
        on dialogues.batch = landed.batch
)

select
    *,
    case
        when not tagged then 'conversation not in tagged_dialogues'
        when record_file_sha256 is null then 'record not in raw_dialogues'
        when landed_file_sha256 is null then 'file not in the landing area'
        when landed_file_sha256 <> record_file_sha256 then 'landed file differs from the one read'
    end as problem
from chain
where problem is not null
