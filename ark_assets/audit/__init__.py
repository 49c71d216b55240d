"""`ark audit` and the ``compliance_audit`` asset: the lineage of one artifact, collected from
Dagster's event log and the project's own metadata into a JSON-serialisable dict that
``lib/audit_report.py`` checks and renders.

Only identifiers are collected (keys, run ids, hashes, file names, conversation keys): no
dialogue text, no PHI value.

- ``build.py`` assembles an audit; ``command.py`` is ``ark audit``;
- ``targets.py`` resolves what was asked for, ``events.py`` reads materializations from the
  instance and ``lineage.py`` walks from the artifact to the materializations it was built from;
- one module per group of sections: ``artifact.py`` (artifact, upstream, checks), ``sources.py``,
  ``conversations.py``, ``provenance.py`` (teacher, knowledge base, base model), ``privacy.py``
  (PHI, deletion) and ``reproduce.py``; ``stores.py`` holds what they read besides the instance.
"""

from ark_assets.audit.build import audit_collection, build_audit, write_report
from ark_assets.audit.command import audit_command
from ark_assets.audit.stores import MANIFEST_ENV, AuditStores, default_manifest_path
from ark_assets.audit.targets import AuditError

__all__ = [
    "MANIFEST_ENV",
    "AuditError",
    "AuditStores",
    "audit_collection",
    "audit_command",
    "build_audit",
    "default_manifest_path",
    "write_report",
]
