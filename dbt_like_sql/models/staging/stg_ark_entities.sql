-- One row per asking reply with regenerated entities: how many of each kind, not which.
select
    batch,
    conversation_id,
    turn_index,
    language,
    len(disease) as diseases,
    len(symptom) as symptoms,
    len(medcine) as medicines,
    len(surgery) as surgeries,
    len(body_part) as body_parts,
    len(medical_check) as medical_checks,
    len(concept) as concepts,
    n_entities,
    teacher_backend
from {{ source('ark', 'ark_entities') }}
