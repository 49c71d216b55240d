"""The ark-assets code location: everything under ``defs/`` plus the automation sensor."""

from pathlib import Path

import dagster as dg

import ark_assets.defs

PACKAGE = Path(__file__).parent


@dg.definitions
def defs() -> dg.Definitions:
    # The component tree of the defs/ package itself (what load_from_defs_folder builds), so the
    # code location loads the same from a checkout and from an installed wheel, which has no
    # pyproject.toml for load_from_defs_folder to find the project by.
    tree = dg.ComponentTree(
        defs_module=ark_assets.defs, project_root=PACKAGE.parent, code_location_name="ark_assets"
    )
    loaded = tree.build_defs()
    automation = dg.AutomationConditionSensorDefinition(
        "ark_automation_sensor",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Evaluates the assets' automation conditions (e.g. tagged_pkl after ingest).",
    )
    return dg.Definitions.merge(loaded, dg.Definitions(sensors=[automation]))
