"""Knowledge-base resources: the KB inbox, the ``embedder`` and the ``vector_store``.

Configured from the environment like the foundation's resources (``defs/resources.py``):

- ``ARK_KB_INBOX_DIR``: where QA files are dropped (default ``<ARK_DATA_DIR>/kb_inbox``);
- ``ARK_EMBEDDER``: ``hashing`` | ``multilingual_e5`` (default) | ``sentence_transformers`` |
  ``openai``; ``ARK_EMBEDDER_MODEL`` (model directory, or the endpoint's model name),
  ``ARK_EMBEDDER_BASE_URL``, ``ARK_EMBEDDER_API_KEY`` (never defaulted),
  ``ARK_EMBEDDER_QUERY_PREFIX``;
- ``ARK_CHROMA_DIR``: the embedded store (default ``<ARK_DATA_DIR>/chroma``), or
  ``ARK_CHROMA_HOST`` / ``ARK_CHROMA_PORT`` / ``ARK_CHROMA_SSL`` for a Chroma server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
from chromadb.api import ClientAPI
from pydantic import Field

from ark_assets.defs.resources import data_dir, env_setting
from ark_assets.lib.knowledge.embedders import BACKENDS, Embedder, EmbedderSpec, make_embedder
from ark_assets.lib.knowledge.retrieval import KnowledgeRetriever
from ark_assets.lib.knowledge.store import KnowledgeIndex, http_client, persistent_client

# The demo default: multilingual-e5 beats hashing on the Chinese sample (docs/knowledge-base.md,
# kb_retrieval_eval); tests use ``hashing`` (ark_assets.testing.resources).
DEFAULT_EMBEDDER = "multilingual_e5"


class KbInbox(dg.ConfigurableResource):
    """The drop folder for QA files and the landing area that keeps a copy of each version."""

    path: str
    landing_path: str


class EmbedderResource(dg.ConfigurableResource):
    """Which embedding model turns questions into vectors (see lib/knowledge/embedders.py)."""

    backend: str = Field(default="hashing", description=f"One of {', '.join(BACKENDS)}.")
    model: str = Field(
        default="",
        description="sentence_transformers: local model directory (empty: the bundled "
        "all-MiniLM-L6-v2); openai: the endpoint's model name.",
    )
    base_url: str = Field(default="", description="openai: the endpoint, e.g. a vLLM server.")
    # repr=False: a resolved resource's repr (error messages, debuggers) would print the key.
    api_key: str = Field(
        default="", repr=False, description="openai: the key (from ARK_EMBEDDER_API_KEY)."
    )
    query_prefix: str = Field(
        default="", description="sentence_transformers: instruction put before each query."
    )
    hashing_dim: int = Field(default=1024, description="hashing: vector length.")
    batch_size: int = Field(
        default=64, description="Texts per embedding call; one progress log line per batch."
    )

    def spec(self, backend: str | None = None) -> EmbedderSpec:
        return EmbedderSpec(
            backend=backend or self.backend,
            model=self.model,
            base_url=self.base_url,
            api_key=self.api_key,
            query_prefix=self.query_prefix,
            hashing_dim=self.hashing_dim,
        )

    def build(self, backend: str | None = None) -> Embedder:
        """The embedder (loaded once per process); ``backend`` overrides the configured one."""
        return make_embedder(self.spec(backend))


class VectorStoreResource(dg.ConfigurableResource):
    """Chroma: an embedded ``PersistentClient`` at ``path``, or a server when ``host`` is set."""

    path: str = Field(default="", description="Directory of the embedded store.")
    host: str = Field(default="", description="Chroma server host; empty: embedded store.")
    port: int = Field(default=8000, description="Chroma server port.")
    ssl: bool = Field(default=False, description="Use https to reach the server.")

    @property
    def location(self) -> str:
        scheme = "https" if self.ssl else "http"
        return f"{scheme}://{self.host}:{self.port}" if self.host else self.path

    def location_metadata(self) -> dict[str, dg.MetadataValue]:
        if self.host:
            return {"url": dg.MetadataValue.url(self.location)}
        return {"path": dg.MetadataValue.path(self.location)}

    def client(self) -> ClientAPI:
        if self.host:
            return http_client(self.host, self.port, self.ssl)
        if not self.path:
            raise ValueError("vector_store needs a path (ARK_CHROMA_DIR) or a host")
        return persistent_client(Path(self.path))

    def index(self, embedder: EmbedderResource | Embedder) -> KnowledgeIndex:
        """The knowledge-base collection of ``embedder`` (created empty if it does not exist)."""
        model = embedder.build() if isinstance(embedder, EmbedderResource) else embedder
        return KnowledgeIndex(self.client(), model)

    def retriever(
        self,
        embedder: EmbedderResource | Embedder,
        *,
        medark_filter: bool = True,
        hybrid: bool = False,
    ) -> KnowledgeRetriever:
        """Search the collection ``kb_index`` built for ``embedder``.

        ``medark_filter`` (on, as in the Ark loop) keeps hits sharing ≥3 characters with the
        query; ``hybrid`` fuses BM25 with the vectors.
        """
        return self.index(embedder).retriever(medark_filter=medark_filter, hybrid=hybrid)


def build_knowledge_resources() -> dict[str, Any]:
    """The KB resources for the environment: inbox, embedder, vector store (embedded Chroma
    under ``ARK_DATA_DIR`` unless ``ARK_CHROMA_HOST`` names a server)."""
    base = data_dir()
    setting = env_setting
    store: dict[str, Any] = {"path": setting("ARK_CHROMA_DIR", str(base / "chroma"))}
    if "ARK_CHROMA_HOST" in os.environ:
        store.update(
            host=dg.EnvVar("ARK_CHROMA_HOST"),
            port=env_setting("ARK_CHROMA_PORT", 8000),
            ssl=os.environ.get("ARK_CHROMA_SSL", "").lower() in ("1", "true", "yes"),
        )
    return {
        "kb_inbox": KbInbox(
            path=setting("ARK_KB_INBOX_DIR", str(base / "kb_inbox")),
            landing_path=str(base / "landing" / "kb"),
        ),
        "embedder": EmbedderResource(
            backend=setting("ARK_EMBEDDER", DEFAULT_EMBEDDER),
            model=setting("ARK_EMBEDDER_MODEL", ""),
            base_url=setting("ARK_EMBEDDER_BASE_URL", ""),
            api_key=setting("ARK_EMBEDDER_API_KEY", ""),
            query_prefix=setting("ARK_EMBEDDER_QUERY_PREFIX", ""),
        ),
        "vector_store": VectorStoreResource(**store),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_knowledge_resources())
