-- Promise: no held-out evaluation item comes from a conversation SFT trained on. Fails on each
-- item whose conversation has train-split examples.
{{ config(meta={'dagster': {'ref': {'name': 'stg_heldout_eval_items'}}}) }}

select items.test_set, items.item_id, items.conversation_id
from {{ ref('stg_heldout_eval_items') }} as items
inner join {{ ref('stg_sft_records') }} as records
    on items.conversation_id = records.conversation_id
where records.split = 'train'
group by all
