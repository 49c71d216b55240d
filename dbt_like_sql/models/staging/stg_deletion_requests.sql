-- One row per tombstone, identifiers only: who asked and why (people's names, ticket text) stay
-- in ark. No table yet means no deletion request yet.
select
    request_id,
    kind,
    conversation_id,
    dialogue_sha256,
    file_sha256,
    batch,
    requested_at
from {{ source_or_empty('deletion_requests', {
    'request_id': 'varchar', 'kind': 'varchar', 'conversation_id': 'varchar',
    'dialogue_sha256': 'varchar', 'file_sha256': 'varchar', 'batch': 'varchar',
    'requested_at': 'timestamp with time zone'}) }}
