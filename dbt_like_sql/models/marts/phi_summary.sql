-- One row per (layer, batch, PHI type): in de-identified_dialogues, the spans the detectors
-- replaced (phi_findings) and the placeholders left in the text; in ark_paths and sft_records,
-- the placeholders those layers carry on. Counts only: no value, no text, no hash of either.
with replaced as (
    select batch, phi_type, count(*) as spans_replaced, count(distinct conversation_id) as rows_with
    from {{ ref('stg_phi_findings') }}
    group by batch, phi_type
),

placeholders as (
    select 'deidentified_dialogues' as layer, batch, conversation_id as row_id, phi_placeholders
    from {{ ref('stg_deidentified_dialogues') }}
    union all
    select 'ark_paths', batch, conversation_id || ':' || turn_index, phi_placeholders
    from {{ ref('stg_ark_paths') }}
    union all
    select 'sft_records', batch, conversation_id || ':' || turn_index || ':' || step, phi_placeholders
    from {{ ref('stg_sft_records') }}
),

carried as (
    select layer, batch, phi_type, count(*) as placeholders, count(distinct row_id) as rows_with
    from placeholders, unnest(phi_placeholders) as types (phi_type)
    group by layer, batch, phi_type
),

layers as (
    select layer, batch, phi_type from carried
    union
    select 'deidentified_dialogues', batch, phi_type from replaced
)

select
    layers.layer,
    layers.batch,
    layers.phi_type,
    case when layers.layer = 'deidentified_dialogues' then coalesce(replaced.spans_replaced, 0) end
        as spans_replaced,
    coalesce(carried.placeholders, 0) as placeholders,
    coalesce(carried.rows_with, replaced.rows_with, 0) as rows_with
from layers
left join carried
    on layers.layer = carried.layer
    and layers.batch = carried.batch
    and layers.phi_type = carried.phi_type
left join replaced
    on layers.layer = 'deidentified_dialogues'
    and layers.batch = replaced.batch
    and layers.phi_type = replaced.phi_type
