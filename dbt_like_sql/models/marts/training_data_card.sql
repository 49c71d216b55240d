-- One row per trained adapter: what its card says it was trained on (examples, conversations,
-- batches, data digest, steps, loss), beside what the warehouse holds for those batches now
-- (SFT examples per split, tokens, prompt versions): a gap between the two is data removed or
-- added since, e.g. by a deletion request (the adapter is then tainted: `ark audit`).
with examples as (
    select
        batch,
        count(*) filter (where split = 'train') as train_examples,
        count(*) filter (where split = 'heldout') as heldout_examples,
        sum(n_tokens) filter (where split = 'train')::bigint as train_tokens,
        sum(label_tokens) filter (where split = 'train')::bigint as train_label_tokens,
        list(distinct prompt_version) as prompt_versions
    from {{ ref('stg_sft_records') }}
    group by batch
),

per_card as (
    select
        cards.adapter_kind,
        cards.fingerprint,
        sum(examples.train_examples)::bigint as sft_train_examples_now,
        sum(examples.heldout_examples)::bigint as sft_heldout_examples_now,
        sum(examples.train_tokens)::bigint as sft_train_tokens_now,
        sum(examples.train_label_tokens)::bigint as sft_train_label_tokens_now,
        list_sort(list_distinct(flatten(list(examples.prompt_versions)))) as prompt_versions_now
    from {{ ref('stg_adapter_cards') }} as cards,
        unnest(cards.record_batches) as batches (batch)
    left join examples on batches.batch = examples.batch
    group by cards.adapter_kind, cards.fingerprint
)

select
    cards.adapter_kind,
    cards.fingerprint,
    cards.adapter_path,
    cards.base_model,
    cards.trained_at,
    cards.examples as trained_examples,
    cards.conversations as trained_conversations,
    len(cards.record_batches) as source_batches,
    cards.record_batches,
    cards.train_data_sha256,
    cards.global_step,
    cards.train_loss,
    coalesce(per_card.sft_train_examples_now, 0) as sft_train_examples_now,
    coalesce(per_card.sft_heldout_examples_now, 0) as sft_heldout_examples_now,
    coalesce(per_card.sft_train_tokens_now, 0) as sft_train_tokens_now,
    coalesce(per_card.sft_train_label_tokens_now, 0) as sft_train_label_tokens_now,
    per_card.prompt_versions_now
from {{ ref('stg_adapter_cards') }} as cards
left join per_card
    on cards.adapter_kind = per_card.adapter_kind and cards.fingerprint = per_card.fingerprint
