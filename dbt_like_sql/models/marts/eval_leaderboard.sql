-- One row per (test set, system): predictions, answers, failures, and action accuracy (the
-- predicted ask/tell equals the item's reference action; a missing answer counts as wrong),
-- ranked within each test set.
with items as (
    select distinct test_set, item_id, reference_action from {{ ref('stg_heldout_eval_items') }}
    union
    select distinct test_set, item_id, reference_action from {{ ref('stg_eval_items') }}
),

scored as (
    select predictions.*, items.reference_action
    from {{ ref('stg_eval_predictions') }} as predictions
    left join items
        on predictions.test_set = items.test_set and predictions.item_id = items.item_id
),

per_system as (
    select
        test_set,
        system,
        count(*) as predictions,
        count(*) filter (where answered) as answered,
        count(*) filter (where failed) as failed,
        count(*) filter (where reference_action is not null) as scored,
        count(*) filter (where "action" = reference_action) as correct_action,
        count(*) filter (where "action" = 'ask') as ask
    from scored
    group by test_set, system
)

select
    test_set,
    system,
    predictions,
    answered,
    failed,
    scored,
    correct_action,
    correct_action / nullif(scored, 0) as action_accuracy,
    ask / nullif(answered, 0) as ask_rate,
    rank() over (partition by test_set order by correct_action / nullif(scored, 0) desc nulls last)
        as rank_in_test_set
from per_system
