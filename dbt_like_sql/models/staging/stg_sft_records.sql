-- One row per SFT example (conversation, turn, step); tokens and messages stay in ark.
select
    batch,
    conversation_id,
    medark_key,
    turn_index,
    step,
    action,
    split,
    n_tokens,
    prompt_tokens,
    label_tokens,
    prompt_version,
    {{ phi_placeholders('messages_json') }} as phi_placeholders
from {{ source('ark', 'sft_records') }}
