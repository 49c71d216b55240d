-- One row per de-identified conversation: the spans replaced in it, and the types of the
-- placeholders its text carries (never the text).
select
    batch,
    conversation_id,
    medark_key,
    source,
    language,
    n_turns,
    phi_findings,
    {{ phi_placeholders('turns_json') }} as phi_placeholders
from {{ source('ark', 'deidentified_dialogues') }}
