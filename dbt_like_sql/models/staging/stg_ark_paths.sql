-- One row per dialogue prefix (conversation, turn): the path's shape and outcome. The texts
-- (history, messages, replies, rounds, the teacher's reasoning) stay in ark.
select
    batch,
    conversation_id,
    medark_key,
    turn_index,
    language,
    n_rounds,
    max_queries_per_round,
    n_hits,
    stop_reason,
    is_asking,
    detector_is_asking,
    teacher_backend,
    teacher_model,
    kb,
    {{ phi_placeholders("history_json || patient_message || doctor_reply") }} as phi_placeholders
from {{ source('ark', 'ark_paths') }}
