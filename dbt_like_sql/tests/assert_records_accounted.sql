-- Promise: every record of every arrived file is accounted for, once: records read (counted from
-- the landed file by the platform's independent counter) = accepted + quarantined + forgotten.
-- Fails on each batch where the warehouse holds more rows than the file has records, holds
-- fewer with no deletion request that could explain it, holds rows of a file under a deletion
-- request, or holds rows of a file that was never landed. (Which records a conversation
-- tombstone removed is not stored, by design: tombstones hold identifiers only.)
{{ config(meta={'dagster': {'ref': {'name': 'stg_landed_files'}}}) }}

with landed as (
    select batch, file_sha256, records_read from {{ ref('stg_landed_files') }}
),

accepted as (
    select batch, count(*) as n from {{ ref('stg_raw_dialogues') }} group by batch
),

quarantined as (
    select batch, count(*) as n from {{ ref('stg_quarantined_records') }} group by batch
),

requests as (
    select * from {{ ref('stg_deletion_requests') }}
),

batches as (
    select batch from landed
    union
    select batch from accepted
    union
    select batch from quarantined
),

accounting as (
    select
        batches.batch,
        landed.records_read,
        coalesce(accepted.n, 0) as accepted,
        coalesce(quarantined.n, 0) as quarantined,
        landed.records_read - coalesce(accepted.n, 0) - coalesce(quarantined.n, 0) as forgotten,
        exists (
            select 1 from requests
            where requests.kind = 'source_file'
                and (requests.batch = batches.batch or requests.file_sha256 = landed.file_sha256)
        ) as file_forgotten,
        exists (select 1 from requests where requests.kind = 'conversation') as any_forgotten
    from batches
    left join landed on batches.batch = landed.batch
    left join accepted on batches.batch = accepted.batch
    left join quarantined on batches.batch = quarantined.batch
)

select
    *,
    case
        when file_forgotten and accepted + quarantined > 0 then 'rows of a forgotten file'
        when file_forgotten then null
        when records_read is null then 'rows without a landed file'
        when forgotten < 0 then 'more rows than the file has records'
        when forgotten > 0 and not any_forgotten then 'records lost: read > accepted + quarantined'
    end as problem
from accounting
where problem is not null
