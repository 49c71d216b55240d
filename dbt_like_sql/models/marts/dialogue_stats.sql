-- One row per (batch, source): what each arrived file brought, by corpus. The batch's quarantine
-- is repeated on each of its rows (quarantined records have no trustworthy source);
-- quarantine_rates splits it by rule.
with accepted as (
    select
        batch,
        coalesce(source, '(unspecified)') as source,
        any_value(source_file) as source_file,
        count(*) as dialogues,
        sum(n_turns)::bigint as turns,
        sum(n_chars)::bigint as characters,
        count(*) filter (where language = 'zh') as zh_dialogues,
        count(*) filter (where language = 'en') as en_dialogues
    from {{ ref('stg_raw_dialogues') }}
    group by batch, source
),

quarantined as (
    select batch, any_value(source_file) as source_file, count(*) as quarantined
    from {{ ref('stg_quarantined_records') }}
    group by batch
),

per_batch as (
    select batch, sum(dialogues)::bigint as accepted from accepted group by batch
),

batches as (
    select batch from per_batch
    union
    select batch from quarantined
)

select
    batches.batch,
    coalesce(accepted.source, '(none accepted)') as source,
    coalesce(accepted.source_file, quarantined.source_file) as source_file,
    coalesce(accepted.dialogues, 0) as dialogues,
    coalesce(accepted.turns, 0) as turns,
    coalesce(accepted.characters, 0) as characters,
    accepted.turns / accepted.dialogues as turns_per_dialogue,
    coalesce(accepted.zh_dialogues, 0) as zh_dialogues,
    coalesce(accepted.en_dialogues, 0) as en_dialogues,
    coalesce(per_batch.accepted, 0) + coalesce(quarantined.quarantined, 0) as batch_records,
    coalesce(quarantined.quarantined, 0) as batch_quarantined,
    coalesce(quarantined.quarantined, 0)
    / (coalesce(per_batch.accepted, 0) + coalesce(quarantined.quarantined, 0))
        as batch_quarantine_rate
from batches
left join accepted on batches.batch = accepted.batch
left join per_batch on batches.batch = per_batch.batch
left join quarantined on batches.batch = quarantined.batch
