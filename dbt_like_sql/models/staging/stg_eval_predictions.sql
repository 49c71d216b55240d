-- One row per (test set, system, item): whether it answered, which action; the reply stays in ark.
select
    test_set,
    system,
    item_id,
    "text" is not null as answered,
    "action",
    action_source,
    failure is not null as failed
from {{ source('ark', 'eval_predictions') }}
