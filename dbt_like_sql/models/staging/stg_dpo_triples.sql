-- One row per DPO triple (conversation, turn); the rendered prompt and completions stay in ark.
select
    batch,
    conversation_id,
    medark_key,
    turn_index,
    language,
    pair_type,
    chosen_action,
    rejected_action,
    rejection_mode,
    prompt_tokens,
    chosen_tokens,
    rejected_tokens,
    prompt_version
from {{ source('ark', 'dpo_triples') }}
