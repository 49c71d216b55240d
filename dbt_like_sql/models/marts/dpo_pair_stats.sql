-- One row per (batch, outcome, detail): the DPO pairs kept, by pair type, with their token
-- lengths; the pairs dropped, by rule.
select
    batch,
    'kept' as outcome,
    pair_type as detail,
    count(*) as pairs,
    avg(prompt_tokens) as avg_prompt_tokens,
    avg(chosen_tokens) as avg_chosen_tokens,
    avg(rejected_tokens) as avg_rejected_tokens
from {{ ref('stg_dpo_triples') }}
group by batch, pair_type

union all

select
    batch,
    'dropped' as outcome,
    rule as detail,
    count(*) as pairs,
    null as avg_prompt_tokens,
    null as avg_chosen_tokens,
    null as avg_rejected_tokens
from {{ ref('stg_dpo_drops') }}
group by batch, rule
