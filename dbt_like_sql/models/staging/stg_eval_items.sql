-- One row per test item of an imported evaluation file; the dialogue texts stay in ark.
select
    eval_file,
    test_set,
    item_id,
    source_file,
    language,
    reference_action,
    medark_key,
    conversation_id
from {{ source('ark', 'eval_items') }}
