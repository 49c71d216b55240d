-- One row per SFT example not kept.
select
    batch,
    conversation_id,
    turn_index,
    step,
    rule,
    n_tokens
from {{ source('ark', 'sft_quarantine') }}
