-- Promise: DPO learns only from held-out conversations (the SFT adapter never saw them). Fails
-- on each triple whose conversation has train-split SFT examples.
{{ config(meta={'dagster': {'ref': {'name': 'stg_dpo_triples'}}}) }}

select triples.conversation_id, triples.turn_index
from {{ ref('stg_dpo_triples') }} as triples
inner join {{ ref('stg_sft_records') }} as records
    on triples.conversation_id = records.conversation_id
where records.split = 'train'
group by all
