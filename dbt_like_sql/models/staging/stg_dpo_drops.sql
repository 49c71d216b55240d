-- One row per DPO pair not kept, with the rule.
select
    batch,
    conversation_id,
    turn_index,
    rule
from {{ source('ark', 'dpo_drops') }}
