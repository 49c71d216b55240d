-- Promise: a conversation is on one side of the SFT split only (train or held out), so nothing
-- held out for evaluation and DPO was trained on. Fails on each conversation with examples on
-- both sides.
select conversation_id, list(distinct split) as splits
from {{ ref('stg_sft_records') }}
group by conversation_id
having count(distinct split) > 1
