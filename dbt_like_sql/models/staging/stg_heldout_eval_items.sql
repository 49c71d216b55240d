-- One row per test item built from our held-out dialogues; texts stay in ark.
select
    test_set,
    item_id,
    language,
    reference_action,
    medark_key,
    conversation_id
from {{ source('ark', 'heldout_eval_items') }}
