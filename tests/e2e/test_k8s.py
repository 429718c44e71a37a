"""deploy/k8s/ is valid Kubernetes and starts as shipped, checked without a cluster.

Every manifest is validated against the Kubernetes schemas of the `kubernetes-validate` package (strict:
an unknown or misspelt field fails), for the oldest and the newest Kubernetes version it ships that we
support. Then the pod's filesystem is laid out as the kubelet would mount the Deployment's volumes (the
ConfigMaps' files behind `..data` links), its environment built from the Deployment and the example
Secret, and `rarewatch rules check --config` and `rarewatch once --config` run there: a mount path, a
rules path, a Secret key or a `${VAR}` that does not line up fails here. Only what cannot exist outside a
cluster is swapped: the Secret's Redis becomes a real redis-server of the test's, the internet sources a
local feed, the example webhook a local receiver.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import redis.asyncio as aioredis
from ruamel.yaml import YAML
from standardwebhooks.webhooks import Webhook

from tests.e2e.test_cli import story
from tests.k8s_layout import K8S, REPO, RULES_CONFIGMAP, load_documents, project_configmap, rules_configmap
from tests.support import feed_server, rss, webhook_receiver

# The Kubernetes versions the manifests must be valid for (kubernetes-validate 1.37.0 ships 1.30-1.37).
KUBERNETES_VERSIONS = ("1.30", "1.37")
KUSTOMIZATION = K8S / "kustomization.yaml"
SECRET_EXAMPLE = K8S / "secret.example.yaml"
CONFIGMAP_LIMIT = 1024 * 1024  # bytes of data the API server accepts in one ConfigMap


def manifests() -> list[Path]:
    """Every Kubernetes manifest of deploy/k8s (the kustomization file is kustomize's, not the API's)."""
    return sorted(p for p in K8S.glob("*.yaml") if p != KUSTOMIZATION)


def resources() -> dict[str, dict[str, Any]]:
    """The manifests' objects by `kind/name`."""
    found = {}
    for path in manifests():
        for doc in load_documents(path):
            found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = resources()["Deployment/rarewatch"]["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    [only] = pod_spec()["containers"]
    assert isinstance(only, dict)
    return only


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_passes_the_kubernetes_schemas(version: str) -> None:
    checked = []
    for path in manifests():
        for doc in load_documents(path):
            try:  # raises SchemaNotFoundError for an unknown kind or apiVersion: no silent pass
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{path.name}: {doc['kind']} {where}: {exc.message}")
            checked.append(doc["kind"])
    wanted = {"Deployment", "ConfigMap", "Secret", "Service", "PodDisruptionBudget"}
    assert wanted <= set(checked)


def test_the_validation_is_strict_and_knows_every_kind() -> None:
    deployment = copy.deepcopy(resources()["Deployment/rarewatch"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(
            {**deployment, "kind": "Deploymnet"}, KUBERNETES_VERSIONS[0], strict=True
        )


def test_the_kustomization_applies_every_manifest_but_the_secret_example() -> None:
    [kustomization] = load_documents(KUSTOMIZATION)
    assert sorted(kustomization["resources"]) == sorted(p.name for p in manifests() if p != SECRET_EXAMPLE)
    assert "secret" not in " ".join(kustomization["resources"]), "applying it must not overwrite the Secret"
    assert "deploy/k8s/secret.yaml" in (REPO / ".gitignore").read_text(encoding="utf-8")


def test_the_rules_configmap_is_the_rule_pack_and_fits() -> None:
    [shipped] = load_documents(RULES_CONFIGMAP)
    assert shipped == rules_configmap(), "deploy/k8s/rules-configmap.yaml differs from rules/: make k8s-rules"
    size = sum(len(v.encode("utf-8")) for v in shipped["data"].values())
    assert size < CONFIGMAP_LIMIT * 0.8, f"{size} bytes: too close to the 1 MiB ConfigMap limit"


def test_the_pod_runs_non_root_read_only_with_resources_and_probes() -> None:
    deployment = resources()["Deployment/rarewatch"]
    assert deployment["spec"]["replicas"] >= 2, "the Redis store's leases make a second replica safe"
    pod, box = pod_spec(), container()
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    [image_user] = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    assert pod["enableServiceLinks"] is False, "no injected RAREWATCH_SERVICE_* beside the configuration's"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (str(pod["securityContext"]["runAsUser"]), str(pod["securityContext"]["runAsGroup"])) == image_user
    assert box["securityContext"]["readOnlyRootFilesystem"] is True
    assert box["securityContext"]["allowPrivilegeEscalation"] is False
    assert box["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(box["resources"]["requests"]) and "memory" in box["resources"]["limits"]
    ports = {p["name"] for p in box["ports"]}
    assert box["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert box["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {box[p]["httpGet"]["port"] for p in ("livenessProbe", "readinessProbe", "startupProbe")} <= ports


def test_the_service_and_the_budget_select_the_pods() -> None:
    found = resources()
    labels = found["Deployment/rarewatch"]["spec"]["template"]["metadata"]["labels"]
    service, budget = found["Service/rarewatch"], found["PodDisruptionBudget/rarewatch"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {p["name"] for p in container()["ports"]}
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] < found["Deployment/rarewatch"]["spec"]["replicas"], "drainable"


def pod_env(secret: dict[str, str]) -> dict[str, str]:
    """The container's environment: literal values, and Secret keys read from the example Secret."""
    env = {}
    for var in container()["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "rarewatch", f"{var['name']}: the Secret is `rarewatch`"
        assert ref["key"] in secret, f"{var['name']}: the example Secret has no key {ref['key']}"
        env[var["name"]] = secret[ref["key"]]
    return env


def example_secret() -> dict[str, str]:
    [secret] = load_documents(SECRET_EXAMPLE)
    data: dict[str, str] = secret["stringData"]
    return data


def lay_out_pod(root: Path) -> None:
    """The Deployment's volumes at their mount paths under `root`, as the kubelet mounts them."""
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    configmaps = {
        name.split("/")[1]: doc for name, doc in resources().items() if name.startswith("ConfigMap/")
    }
    for mount in container()["volumeMounts"]:
        volume, where = volumes[mount["name"]], root / mount["mountPath"].lstrip("/")
        where.mkdir(parents=True)
        if "configMap" in volume:
            ref = volume["configMap"]
            assert ref["name"] in configmaps, f"volume {mount['name']}: no ConfigMap {ref['name']}"
            project_configmap(configmaps[ref["name"]]["data"], where, ref.get("items"))
        else:
            assert "emptyDir" in volume, f"volume {mount['name']}: only ConfigMaps and emptyDirs"


def config_path(root: Path) -> Path:
    args = container()["args"]
    config = root / args[args.index("--config") + 1].lstrip("/")
    assert config.is_file(), f"{K8S}: the args' --config is not where the volumes put a file"
    return config


def test_every_variable_the_config_reads_is_set_by_the_pod() -> None:
    [config_map] = [doc for doc in load_documents(K8S / "configmap.yaml")]
    lines = config_map["data"]["rarewatch.yaml"].splitlines()
    values = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    wanted = set(re.findall(r"\$\{(\w+)\}", values))
    assert wanted, "the secrets come from the environment"
    assert wanted <= set(pod_env(example_secret()))


async def run(root: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    workdir = root / "var" / "lib" / "rarewatch"  # the image's WORKDIR (an emptyDir)
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rarewatch", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**base, **env, "HOME": str(workdir)}, cwd=workdir,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_configmap_rules_check_where_the_pod_mounts_them(tmp_path: Path) -> None:
    root = tmp_path / "pod"
    lay_out_pod(root)
    env = pod_env(example_secret())
    code, out, err = await run(root, env, "rules", "check", "--config", str(config_path(root)))
    assert code == 0, out + err  # the config's rule paths exist in the pod and its routes fit the pack
    config = YAML(typ="safe").load(config_path(root).read_text(encoding="utf-8"))
    assert config["watch_rules"] is True, "a rules ConfigMap update reaches every pod without a restart"
    code, repo_out, repo_err = await run(root, {}, "rules", "check", str(REPO / "rules"))
    assert code == 0, repo_err
    [pack] = re.findall(r"\(rule pack (\w+)\)", out + err)
    assert re.findall(r"\(rule pack (\w+)\)", repo_out + repo_err) == [pack], "the pod has the repo's rules"


@pytest.mark.redis
async def test_rarewatch_once_runs_against_the_pod_layout(tmp_path: Path, redis_url: str) -> None:
    root = tmp_path / "pod"
    lay_out_pod(root)
    config = config_path(root)
    secret = example_secret()
    env = pod_env(secret)
    store = urlsplit(env["RAREWATCH_STORE"])
    assert store.scheme in ("redis", "rediss"), "several replicas need the shared Redis store"
    assert "store" not in YAML(typ="safe").load(config.read_text(encoding="utf-8")), "one home: the Secret"

    own_db = (
        urlsplit(redis_url)._replace(path="/11").geturl()
    )  # the suite's other tests claim this story in /0
    client = aioredis.from_url(own_db)
    await client.flushdb()
    await client.aclose()
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss([story(1, "Rare earth export licence regime widened")])
        env.update(
            RAREWATCH_STORE=own_db,  # the Secret's Redis exists only in the cluster
            RAREWATCH_SOURCES=json.dumps([{"name": "wire", "type": "feed", "url": feeds.url("/wire.xml")}]),
            TICKETS_WEBHOOK_URL=hook.url,
        )
        code, out, err = await run(root, env, "once", "--config", str(config))
    assert code == 0, err
    assert "1 sources (0 failed), 1 new alerts" in err
    assert "Rare earth export licence regime widened" in out + err, "the console destination logged it"
    [(headers, body, _)] = hook.requests
    Webhook(secret["tickets-webhook-secret"]).verify(body, headers)  # signed with the Secret's key
    assert headers["authorization"] == f"Bearer {secret['tickets-token']}"
