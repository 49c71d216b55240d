"""The ark-assets code location: everything under ``defs/`` plus the automation sensor."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    automation = dg.AutomationConditionSensorDefinition(
        "ark_automation_sensor",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Evaluates the assets' automation conditions (e.g. tagged_pkl after ingest).",
    )
    return dg.Definitions.merge(loaded, dg.Definitions(sensors=[automation]))
