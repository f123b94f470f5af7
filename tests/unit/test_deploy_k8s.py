"""Kubernetes manifests: every overlay renders, every object validates against the Kubernetes
JSON schemas (kubernetes-validate ships them) or the KEDA / Prometheus Operator CRD models
(cloudcoil-models-*), and the Deployments carry what a production pod needs."""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.registry import SHOP_SERVICES
from shared.settings import RuntimeSettings, ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy"))

import catalog  # noqa: E402

K8S = ROOT / "k8s"
MONITOR = "monitor"
"""The live-quality monitor: a Deployment like the shop services, with no model and no GPU."""
WITH_OUTCOMES = ("recommendation", "ad_ctr", "pricing", "fraud")
"""The services whose predictions go to the monitor (support's messages have no outcome yet)."""
BUILDS = ("base", "overlays/gpu", "overlays/keda", "overlays/gpu-keda")
K8S_VERSIONS = ("1.29.0", "1.33.0")
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}
Obj = dict[str, Any]


@functools.cache
def render(build: str) -> tuple[Obj, ...]:
    """``kustomize build``: the standalone binary if present, else kubectl's built-in kustomize."""
    tool = ["kustomize", "build"] if shutil.which("kustomize") else ["kubectl", "kustomize"]
    assert shutil.which(tool[0]), "needs kustomize or kubectl on PATH"
    out = subprocess.run([*tool, str(K8S / build)], capture_output=True, text=True, timeout=120, check=True)
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def of_kind(build: str, kind: str) -> list[Obj]:
    return [o for o in render(build) if o["kind"] == kind]


@functools.cache
def crd_models() -> dict[str, Any]:
    from cloudcoil.models.keda import v1alpha1 as keda
    from cloudcoil.models.prometheus_operator import v1 as monitoring

    return {"ScaledObject": keda.ScaledObject, "TriggerAuthentication": keda.TriggerAuthentication,
            "PodMonitor": monitoring.PodMonitor, "PrometheusRule": monitoring.PrometheusRule}


def validate(obj: Obj) -> None:
    """Schema-validate one object; CRDs must also survive a round trip (no unknown fields)."""
    if obj["kind"] in crd_models():
        model = crd_models()[obj["kind"]].model_validate(obj)
        assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == obj, "unknown CRD fields"
        return
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("build", BUILDS)
def test_every_rendered_object_is_schema_valid_and_namespaced(build: str) -> None:
    objects = render(build)
    assert {o["kind"] for o in objects} >= {"Deployment", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy",
                                            "PodMonitor", "PrometheusRule", "ServiceAccount", "Namespace"}
    for obj in objects:
        validate(obj)
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "shopstream", obj["metadata"]["name"]


def test_the_validators_reject_broken_objects() -> None:
    deployment = copy.deepcopy(of_kind("base", "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    scaled = copy.deepcopy(of_kind("overlays/keda", "ScaledObject")[0])
    scaled["spec"]["maxReplicaCont"] = 3
    with pytest.raises(AssertionError):
        validate(scaled)


def test_the_secret_example_is_valid_but_not_deployed() -> None:
    example = yaml.safe_load((K8S / "base" / "kafka-sasl-secret.example.yaml").read_text(encoding="utf-8"))
    validate(example)
    assert set(example["stringData"]) == {"username", "password"}
    assert all(v.startswith("REPLACE-WITH-") for v in example["stringData"].values())
    assert all(o["kind"] != "Secret" for b in BUILDS for o in render(b)), "no credentials in git"


def container(deployment: Obj) -> Obj:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(c)


@pytest.mark.parametrize("build", BUILDS)
def test_deployments_are_hardened_probed_and_drain_in_time(build: str) -> None:
    deadline = RuntimeSettings().shutdown_deadline_s
    for deployment in of_kind(build, "Deployment"):
        pod, c = deployment["spec"]["template"]["spec"], container(deployment)
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert deadline < pod["terminationGracePeriodSeconds"] <= deadline + 30
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": 9100}
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and "memory" in c["resources"]["limits"]
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


def service_env(build: str, deployment: Obj) -> dict[str, str]:
    """The container's environment as the pod sees it (ConfigMap + env, secrets as dummies)."""
    configmaps = {cm["metadata"]["name"]: cm["data"] for cm in of_kind(build, "ConfigMap")}
    c = container(deployment)
    env = {k: v for ref in c["envFrom"] for k, v in configmaps[ref["configMapRef"]["name"]].items()}
    for var in c["env"]:
        env[var["name"]] = var.get("value") or f"dummy-{var['name'].lower()}"
    return env


def settings_from(env: dict[str, str], cls: type[ServiceSettings], monkeypatch: pytest.MonkeyPatch) -> Any:
    for key in [k for k in os.environ if k.startswith("SHOPSTREAM_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return cls()


@pytest.mark.parametrize("build", BUILDS)
def test_every_service_reads_its_pod_environment_into_its_settings(build: str, monkeypatch: pytest.MonkeyPatch) -> None:
    by_service = {container(d)["args"][1]: d for d in of_kind(build, "Deployment")}
    assert set(by_service) == {*SHOP_SERVICES, MONITOR}
    loaded = {}
    for name, deployment in by_service.items():
        assert container(deployment)["args"] == ["serve", name]
        env = service_env(build, deployment)
        cls = catalog.settings_class(name)
        prefix = catalog.env_prefix(cls)
        assert all(key.startswith(prefix) for key in env), f"{name}: env outside {prefix}"
        settings = loaded[name] = settings_from(env, cls, monkeypatch)
        assert settings.kafka.security_protocol == "SASL_SSL" and settings.kafka.sasl_password is not None
        assert settings.metrics.port == 9100
        assert settings.instance_id is not None and settings.instance_id.startswith("dummy-")
        if name == MONITOR:
            continue
        assert str(settings.models_dir) == "/app/models"
        providers = settings.execution_providers
        assert providers == (["cuda", "cpu"] if "gpu" in build else ["cpu"])
    monitor = loaded[MONITOR]
    assert (monitor.input_topic, monitor.output_topic) == ("shop.feedback", "shop.quality")
    assert {loaded[name].feedback_topic for name in WITH_OUTCOMES} == {monitor.input_topic}, (
        "every shop service with outcomes copies its predictions to the topic the monitor reads")
    assert loaded["support"].feedback_topic is None


def test_poddisruptionbudgets_and_the_podmonitor_select_the_deployments() -> None:
    templates = [d["spec"]["template"]["metadata"]["labels"] for d in of_kind("base", "Deployment")]
    for pdb in of_kind("base", "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert sum(selector.items() <= labels.items() for labels in templates) == 1
    (monitor,) = of_kind("base", "PodMonitor")
    assert all(monitor["spec"]["selector"]["matchLabels"].items() <= labels.items() for labels in templates)
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["honorLabels"]) == ("metrics", "/metrics", True)
    assert all(labels[monitor["spec"]["jobLabel"]] == "shopstream" for labels in templates)  # alerts use job


@pytest.mark.parametrize("build", ["overlays/gpu", "overlays/gpu-keda"])
def test_gpu_overlay_requests_a_gpu_on_gpu_nodes(build: str) -> None:
    for deployment in of_kind(build, "Deployment"):
        pod, c = deployment["spec"]["template"]["spec"], container(deployment)
        if c["args"] == ["serve", MONITOR]:  # no model to run: no GPU, any node
            assert "nvidia.com/gpu" not in c["resources"]["limits"] and "nodeSelector" not in pod
            continue
        assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        assert c["image"].endswith("-gpu")


@pytest.mark.parametrize("build", ["overlays/keda", "overlays/gpu-keda"])
def test_keda_scales_each_service_on_its_own_lag_up_to_the_partition_count(build: str) -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind(build, "Deployment")}
    assert all("replicas" not in d["spec"] for d in deployments.values()), "the HPA owns replicas"
    scaled = of_kind(build, "ScaledObject")
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled} == set(deployments)
    (auth,) = of_kind(build, "TriggerAuthentication")
    for obj in scaled:
        deployment = deployments[obj["spec"]["scaleTargetRef"]["name"]]
        name = container(deployment)["args"][1]
        settings = catalog.settings_class(name)()
        (trigger,) = obj["spec"]["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka" and trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
        assert meta["consumerGroup"] == settings.resolved_group_id
        assert meta["topic"] == settings.input_topic
        assert obj["spec"]["maxReplicaCount"] == RuntimeSettings().default_partitions
        env = service_env(build, deployment)
        prefix = catalog.env_prefix(type(settings))
        assert meta["bootstrapServers"] == env[f"{prefix}KAFKA__BOOTSTRAP_SERVERS"]
        assert meta["sasl"] == KEDA_SASL[env[f"{prefix}KAFKA__SASL_MECHANISM"]]
        assert meta["tls"] == ("enable" if env[f"{prefix}KAFKA__SECURITY_PROTOCOL"].endswith("SSL") else "disable")


def test_the_support_encoder_gets_more_cpu_and_memory_than_the_tabular_services() -> None:
    """The common patch gives every service 500m and 1Gi; a 22M-parameter encoder needs more."""
    by_service = {container(d)["args"][1]: container(d)["resources"] for d in of_kind("base", "Deployment")}
    assert by_service["support"]["requests"] == {"cpu": "2", "memory": "1536Mi"}
    assert by_service["fraud"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
