-- One row per prefix without a path: which stage failed, how; the error text stays in ark.
select
    batch,
    conversation_id,
    turn_index,
    language,
    stage,
    error_type,
    attempts,
    teacher_backend
from {{ source('ark', 'ark_failures') }}
