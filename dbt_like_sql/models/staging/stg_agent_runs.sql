-- One row per held-out prefix the agent answered: outcome and cost; texts and steps stay in ark.
select
    batch,
    conversation_id,
    turn_index,
    language,
    status,
    final_action,
    reference_is_asking,
    retrievals,
    retries,
    forced_final,
    prompt_tokens,
    completion_tokens,
    seconds
from {{ source('ark', 'agent_smoke') }}
