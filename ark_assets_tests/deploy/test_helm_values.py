"""The Helm values for the official Dagster chart, read as the chart reads them.

No cluster and no ``helm`` binary here: the values are checked against the chart's own schema
models as read from dagster-io/dagster (``helm/dagster/schema/schema/charts/…``: the
``UserDeployment``, ``K8sRunLauncherConfig``, ``RunK8sConfig``, ``PostgreSQL``, ``Concurrency``
and ``Global`` models, most of them ``extra="forbid"``, so an unknown key fails ``helm
install``), the Kubernetes objects in them against the Kubernetes API's models, and the
instance they make against the local ``dagster.yaml``. Rendering the chart is not tested.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import yaml

from ark_assets.defs.training.resources import IMAGE_UID
from ark_assets_tests.deploy.conftest import REPO, code_deployment, deployment_env, helm_values
from ark_assets_tests.deploy.kubernetes_api import api_errors, keys_named

# Field names of the chart's values models (see the module docstring).
CHART_TOP_LEVEL = {
    "dagsterWebserver", "dagster-user-deployments", "postgresql",
    "generatePostgresqlPasswordSecret", "generateCeleryConfigSecret", "rabbitmq", "redis",
    "flower", "ingress", "imagePullSecrets", "computeLogManager", "scheduler", "runLauncher",
    "pythonLogs", "dagsterDaemon", "busybox", "migrate", "telemetry", "serviceAccount",
    "global", "retention", "additionalInstanceConfig", "concurrency",
}  # fmt: skip
USER_DEPLOYMENT = {
    "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns",
    "port", "env", "envConfigMaps", "envSecrets", "annotations", "nodeSelector", "affinity",
    "tolerations", "podSecurityContext", "securityContext", "resources", "livenessProbe",
    "readinessProbe", "startupProbe", "labels", "volumeMounts", "volumes", "schedulerName",
}  # fmt: skip
K8S_RUN_LAUNCHER = {
    "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
    "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
    "failPodOnRunFailure", "resources", "schedulerName", "securityContext", "runK8sConfig",
}  # fmt: skip
RUN_K8S_CONFIG = {
    "containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata",
}  # fmt: skip
POSTGRESQL = {
    "image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
    "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service",
}  # fmt: skip
GLOBAL = {"postgresqlSecretName", "dagsterHome", "serviceAccountName", "celeryConfigSecretName"}
# What the chart's instance template (templates/configmap-instance.yaml) reads of runMonitoring.
RUN_MONITORING = {
    "enabled", "startTimeoutSeconds", "cancelTimeoutSeconds", "maxResumeRunAttempts",
    "pollIntervalSeconds", "freeSlotsAfterRunEndSeconds",
}  # fmt: skip


def _camel(value: Any) -> Any:
    """dagster.yaml's snake_case keys as the chart spells them."""
    if isinstance(value, dict):
        return {re.sub(r"_(\w)", lambda m: m[1].upper(), k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(item) for item in value]
    return value


def test_every_key_is_one_the_chart_defines() -> None:
    values = helm_values()
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    sections = {
        "top level": (values, CHART_TOP_LEVEL),
        "user deployment": (code_deployment(), USER_DEPLOYMENT),
        "k8sRunLauncher": (launcher, K8S_RUN_LAUNCHER),
        "runK8sConfig": (launcher["runK8sConfig"], RUN_K8S_CONFIG),
        "postgresql": (values["postgresql"], POSTGRESQL),
        "global": (values["global"], GLOBAL),
        "runMonitoring": (values["dagsterDaemon"]["runMonitoring"], RUN_MONITORING),
    }
    unknown = {name: set(section) - known for name, (section, known) in sections.items()}
    assert not any(unknown.values()), unknown
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagster-user-deployments"]["enabled"] is True


def test_the_kubernetes_objects_are_valid_api_objects() -> None:
    deployment = code_deployment()
    launcher = helm_values()["runLauncher"]["config"]["k8sRunLauncher"]
    objects = [
        (deployment["env"], "list[V1EnvVar]"),
        (deployment["volumes"], "list[V1Volume]"),
        (deployment["volumeMounts"], "list[V1VolumeMount]"),
        (deployment["podSecurityContext"], "V1PodSecurityContext"),
        (launcher["resources"], "V1ResourceRequirements"),
        (launcher["runK8sConfig"]["podSpecConfig"], "V1PodSpec"),
    ]
    assert [error for value, kind in objects for error in api_errors(value, kind)] == []
    assert keys_named(helm_values(), "hostPath") == []


def test_the_code_server_serves_the_package_definitions_from_the_image() -> None:
    deployment = code_deployment()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dg"]["project"]
    assert deployment["dagsterApiGrpcArgs"] == [
        "--module-name",
        project["code_location_target_module"],
    ]
    image = deployment["image"]
    assert deployment_env()["ARK_TRAINING_IMAGE"] == f"{image['repository']}:{image['tag']}"
    # Run pods get the deployment's env and volumes: the same data directory everywhere.
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    (mount,) = deployment["volumeMounts"]
    assert mount["mountPath"] == deployment_env()["ARK_DATA_DIR"]


def test_every_pod_writes_the_data_volume_as_the_image_user() -> None:
    launcher = helm_values()["runLauncher"]["config"]["k8sRunLauncher"]
    assert code_deployment()["podSecurityContext"]["fsGroup"] == IMAGE_UID
    assert launcher["runK8sConfig"]["podSpecConfig"]["securityContext"]["fsGroup"] == IMAGE_UID


def test_the_chart_instance_has_the_local_instance_limits() -> None:
    values, local = helm_values(), yaml.safe_load((REPO / "dagster.yaml").read_text())
    concurrency = dict(values["concurrency"])
    assert concurrency.pop("enabled") is True
    assert concurrency == _camel(local["concurrency"])
    # Plus: a run whose pod died is failed, not resumed (docs/runbook.md, shared instance).
    assert values["dagsterDaemon"]["runMonitoring"] == {
        **_camel(local["run_monitoring"]),
        "maxResumeRunAttempts": 0,
    }
    assert values["telemetry"] == local["telemetry"]


def test_postgres_is_external_with_its_password_in_a_secret() -> None:
    values = helm_values()
    sample = yaml.safe_load((REPO / "ark_assets" / "deploy" / "dagster.postgres.yaml").read_text())
    postgresql = values["postgresql"]
    assert postgresql["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert "postgresqlPassword" not in postgresql
    assert postgresql["postgresqlScheme"] == sample["storage"]["postgres"]["postgres_db"]["scheme"]
