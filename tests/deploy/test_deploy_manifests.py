"""The deployment files in deploy/: the Kubernetes manifests validate against the
Kubernetes schemas (kubernetes-validate, which ships them: checked with the network
blocked), the compose file and the manifests are wired consistently (seed names, ports,
volumes, probes), and every flag the Dockerfile, the compose file and the manifests give
``dynago node`` is one it accepts (``--print-config`` with those flags exits 0 and prints
the values meant)."""

from __future__ import annotations

import copy
import json
import re
import socket
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cluster_support import run_dynago  # tests/ is on sys.path under pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
"""The oldest release we claim (native gRPC probes are GA since 1.27) and the newest
whose schemas the package ships."""

POD_ENV = {"POD_IP": "10.1.2.3", "POD_NAME": "dynago-0", "POD_NAMESPACE": "prod"}
"""Values the downward API would give, for the ``$(VAR)`` references in the args."""


# ---------------------------------------------------------------- reading the files


def dockerfile() -> dict[str, list[str]]:
    """The final stage's instructions: name -> its arguments (exec form parsed as JSON;
    the last ENTRYPOINT and CMD win, as in Docker)."""
    text = (DEPLOY / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    stage: dict[str, list[str]] = {}
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(" ")
        name = name.upper()
        if name == "FROM":
            stage = {}
        if name in ("ENTRYPOINT", "CMD", "VOLUME"):
            stage[name] = json.loads(rest)
        elif name == "HEALTHCHECK":
            cmd = rest[rest.index("CMD ") + 4:]
            stage[name] = json.loads(cmd)
        else:
            stage.setdefault(name, []).append(rest.strip())
    return stage


def entrypoint_flags() -> list[str]:
    """The flags the image's entrypoint gives (after ``dynago node``)."""
    entrypoint = dockerfile()["ENTRYPOINT"]
    assert entrypoint[:2] == ["dynago", "node"]
    return entrypoint[2:]


def k8s_documents() -> dict[str, list[dict[str, Any]]]:
    """Every Kubernetes manifest (file name -> its documents); kustomization.yaml is
    kustomize's, not a Kubernetes resource."""
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found[path.name] = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return found


def k8s_resource(kind: str) -> list[dict[str, Any]]:
    return [d for docs in k8s_documents().values() for d in docs if d["kind"] == kind]


def statefulset() -> dict[str, Any]:
    (found,) = k8s_resource("StatefulSet")
    return found


def container() -> dict[str, Any]:
    (found,) = statefulset()["spec"]["template"]["spec"]["containers"]
    return found


def k8s_args() -> list[str]:
    """The container's args with every ``$(VAR)`` replaced as the kubelet would."""
    declared = {e["name"] for e in container().get("env", [])}
    args = []
    for arg in container()["args"]:
        for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", arg):
            # The kubelet leaves an undeclared $(VAR) as it is: the node would get it.
            assert var in declared, f"{arg!r} uses $({var}), which the container does not set"
            arg = arg.replace(f"$({var})", POD_ENV[var])
        args.append(arg)
    return args


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return document


def flag(args: list[str], name: str) -> list[str]:
    """Every value of ``--name VALUE`` in ``args``."""
    return [args[i + 1] for i, arg in enumerate(args) if arg == name]


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def print_config(args: list[str]) -> dict[str, Any]:
    """``dynago node ARGS --print-config``: must exit 0; its output parsed as TOML."""
    done = run_dynago(["node", *args, "--print-config"])
    assert done.returncode == 0, f"dynago node {' '.join(args)}: {done.stderr}"
    return tomllib.loads(done.stdout)


# ---------------------------------------------------------------- Kubernetes


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection or name lookup fails the test: what must work offline does."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network use: {args!r}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_deploy_k8s_manifests_validate_against_the_kubernetes_schemas(version: str) -> None:
    kinds = []
    for documents in k8s_documents().values():
        for document in documents:
            # Strict: a misspelled or misplaced field is an error, not ignored.
            kubernetes_validate.validate(document, version, strict=True)
            kinds.append(document["kind"])
    assert sorted(kinds) == ["PodDisruptionBudget", "Service", "Service", "StatefulSet"]


@pytest.mark.usefixtures("no_network")
def test_deploy_k8s_validation_rejects_a_misspelled_or_mistyped_field() -> None:
    """The schema check can fail: it is what catches a broken manifest."""
    for mutate in (lambda c: c.__setitem__("readinesProbe", c.pop("readinessProbe")),
                   lambda c: c["livenessProbe"]["grpc"].__setitem__("port", "7001"),
                   lambda c: c.__setitem__("args", " ".join(c["args"]))):
        broken = copy.deepcopy(statefulset())
        mutate(broken["spec"]["template"]["spec"]["containers"][0])
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_deploy_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(k8s_documents())


def test_deploy_k8s_statefulset_is_wired_to_its_services_probes_and_volume() -> None:
    sts, spec = statefulset(), statefulset()["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    services = {s["metadata"]["name"]: s for s in k8s_resource("Service")}
    headless = services[spec["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True  # seeds before readiness
    for service in services.values():
        assert service["spec"]["selector"].items() <= labels.items()
    (pdb,) = k8s_resource("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1

    args = container()["args"]
    assert flag(args, "--bind") == ["0.0.0.0:7001"]
    assert flag(args, "--http") == ["0.0.0.0:8001"]
    assert flag(args, "--advertise") == ["$(POD_IP):7001"]
    assert flag(args, "--seed") == [
        f"dns:{headless['metadata']['name']}.$(POD_NAMESPACE).svc.cluster.local:7001"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container()["env"]}
    assert env == {"POD_IP": "status.podIP", "POD_NAME": "metadata.name",
                   "POD_NAMESPACE": "metadata.namespace"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container()[probe]["grpc"]["port"] == 7001, probe
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    assert ports == {"grpc": 7001, "http": 8001}

    data_dir = flag(entrypoint_flags(), "--data-dir")
    (claim,) = spec["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container()["volumeMounts"]}
    assert [mounts[claim["metadata"]["name"]]] == data_dir
    assert pod["securityContext"]["runAsNonRoot"] is True
    # The node leaves and exits within 2 s of SIGTERM: the grace period must cover it.
    assert 2 < pod["terminationGracePeriodSeconds"] <= 30
    resources = container()["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    assert sts["metadata"]["name"] == "dynago"


def test_deploy_k8s_node_flags_are_accepted() -> None:
    args = [*entrypoint_flags(), *k8s_args()]
    config = print_config(args)
    assert config["bind"] == "0.0.0.0:7001" and config["http"] == "0.0.0.0:8001"
    assert config["advertise"] == "10.1.2.3:7001" and config["name"] == "dynago-0"
    assert config["seeds"] == ["dns:dynago-headless.prod.svc.cluster.local:7001"]
    assert config["tags"] == ["http=10.1.2.3:8001"]
    assert config["data_dir"] == "/data" and config["log_format"] == "json"


# ---------------------------------------------------------------- the image


def test_deploy_dockerfile_runs_a_non_root_node_on_the_data_volume() -> None:
    stage = dockerfile()
    assert stage["FROM"] == ["python:3.11-slim"]
    user = stage["USER"][-1].split(":")[0]
    assert user.isdigit() and int(user) != 0  # numeric: runAsNonRoot can verify it
    assert stage["VOLUME"] == ["/data"] and flag(entrypoint_flags(), "--data-dir") == ["/data"]
    pod_user = statefulset()["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert pod_user == int(user)
    # The health check dials the port the default command binds, on loopback.
    health = stage["HEALTHCHECK"]
    assert health[:3] == ["python", "-m", "dynago.ops.healthcheck"]
    (bind,) = flag(stage["CMD"], "--bind")
    assert health[3] == f"127.0.0.1:{port_of(bind)}"


def test_deploy_dockerfile_default_flags_are_accepted() -> None:
    stage = dockerfile()
    config = print_config([*entrypoint_flags(), *stage["CMD"]])
    assert (config["bind"], config["http"], config["data_dir"]) == (
        "0.0.0.0:7001", "0.0.0.0:8001", "/data")


def test_deploy_dockerignore_lets_in_what_pip_install_needs() -> None:
    """The build context is the repository root; its .dockerignore is an allowlist that
    must let in what the Dockerfile copies (pyproject's readme included)."""
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = set()
    for copy_line in dockerfile().get("COPY", []) + _build_stage_copies():
        if not copy_line.startswith("--from"):
            copied.update(copy_line.split()[:-1])
    assert copied == {"pyproject.toml", "README.md", "dynago"}
    assert copied <= allowed
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["readme"] in allowed


def _build_stage_copies() -> list[str]:
    text = (DEPLOY / "Dockerfile").read_text()
    first_stage = text.split("\nFROM ")[1]
    return [line[5:] for line in first_stage.splitlines() if line.startswith("COPY ")]


# ---------------------------------------------------------------- compose


def compose_flags(service: dict[str, Any]) -> list[str]:
    return [*entrypoint_flags(), *service["command"]]


def test_deploy_compose_cluster_is_five_nodes_seeding_through_one() -> None:
    document = compose()
    services = document["services"]
    assert len(services) == 5
    seedless = [name for name, s in services.items() if not flag(s["command"], "--seed")]
    assert len(seedless) == 1
    (seed,) = seedless
    seed_port = port_of(flag(services[seed]["command"], "--bind")[0])
    names = set()
    published = set()
    for name, service in services.items():
        args = service["command"]
        build = service["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (
            DEPLOY / "Dockerfile").resolve()
        if name != seed:
            assert flag(args, "--seed") == [f"dns:{seed}:{seed_port}"]
        # Advertised as its own service name (what the other containers resolve).
        (advertise,) = flag(args, "--advertise")
        (bind,) = flag(args, "--bind")
        assert advertise == f"{service['hostname']}:{port_of(bind)}"
        assert service["hostname"] == name
        names.update(flag(args, "--name"))
        # HTTP published on loopback only, and tagged with that address for `status`.
        (http,) = flag(args, "--http")
        (mapping,) = service["ports"]
        host, host_port, container_port = mapping.split(":")
        assert host == "127.0.0.1" and int(container_port) == port_of(http)
        assert f"http={host}:{host_port}" in flag(args, "--tag")
        published.add(host_port)
        (volume,) = service["volumes"]
        source, target = volume.split(":")
        assert source in document["volumes"]
        assert [target] == flag(entrypoint_flags(), "--data-dir")
    assert len(names) == len(published) == 5


@pytest.mark.parametrize("service", sorted(yaml.safe_load(
    (DEPLOY / "compose.yaml").read_text())["services"]))
def test_deploy_compose_node_flags_are_accepted(service: str) -> None:
    args = compose_flags(compose()["services"][service])
    config = print_config(args)
    assert config["name"] == service and config["advertise"] == f"{service}:7001"
    assert config["data_dir"] == "/data"
    assert {tag.partition("=")[0] for tag in config["tags"]} == {"zone", "http"}
