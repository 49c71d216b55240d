-- One row per replaced PHI span: where and what kind, never the value (the source holds none).
select
    batch,
    conversation_id,
    turn,
    role,
    "type" as phi_type,
    detector,
    "length" as chars_replaced,
    "start" as span_start
from {{ source('ark', 'phi_findings') }}
