-- Promise: every PHI span replaced is recorded in phi_findings (type, place, detector), and only
-- those: the placeholders left in a de-identified conversation equal its findings, by type.
-- Fails on each conversation and type where the two counts differ.
{{ config(meta={'dagster': {'ref': {'name': 'stg_phi_findings'}}}) }}

with placeholders as (
    select conversation_id, phi_type, count(*) as placeholders
    from {{ ref('stg_deidentified_dialogues') }}, unnest(phi_placeholders) as types (phi_type)
    group by conversation_id, phi_type
),

findings as (
    select conversation_id, phi_type, count(*) as findings
    from {{ ref('stg_phi_findings') }}
    group by conversation_id, phi_type
)

select
    coalesce(placeholders.conversation_id, findings.conversation_id) as conversation_id,
    coalesce(placeholders.phi_type, findings.phi_type) as phi_type,
    coalesce(placeholders.placeholders, 0) as placeholders,
    coalesce(findings.findings, 0) as findings
from placeholders
full outer join findings
    on placeholders.conversation_id = findings.conversation_id
    and placeholders.phi_type = findings.phi_type
where coalesce(placeholders.placeholders, 0) <> coalesce(findings.findings, 0)
