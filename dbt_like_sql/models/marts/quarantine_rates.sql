-- One row per (batch, rule): records of the batch that broke the rule, and their share of the
-- batch's records (accepted + quarantined).
with records as (
    select batch, count(*) as n from {{ ref('stg_raw_dialogues') }} group by batch
    union all
    select batch, count(*) as n from {{ ref('stg_quarantined_records') }} group by batch
),

per_batch as (
    select batch, sum(n)::bigint as batch_records from records group by batch
)

select
    quarantined.batch,
    quarantined.rule,
    any_value(quarantined.source_file) as source_file,
    count(*) as quarantined,
    any_value(per_batch.batch_records) as batch_records,
    count(*) / any_value(per_batch.batch_records) as quarantine_rate
from {{ ref('stg_quarantined_records') }} as quarantined
inner join per_batch on quarantined.batch = per_batch.batch
group by quarantined.batch, quarantined.rule
