"""The Kubernetes manifests in config/kubernetes/: valid for the client's models, and consistent with each other.

No cluster is involved: every YAML document is deserialised into the official client's model for its kind and
serialised back, so a misspelt or misplaced field (which the models drop without a word) shows up as a
difference; then the set is checked as a whole (names, namespaces, labels, RBAC, env, volumes).
"""

from __future__ import annotations

import configparser
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient

from daemons import k8s_daemon

pytestmark = pytest.mark.kubernetes

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "config" / "kubernetes"
VARIANT_DIRS = ("deployment", "daemonset")

DAEMON_NAMESPACE = "draas-system"
DAEMON_ENV = {"CONTROL_PLANE_URL", "WATCH_NAMESPACE", "DRAAS_LABEL_SELECTOR", "DRAAS_API_KEY", "DRAAS_SPOOL_PATH"}
NODE_ENV = "DRAAS_NODE_NAME"
POD_LABELS = {"app": "drasi", "managed-by": "draas"}

# (apiVersion, kind) -> the client's model. Anything else in the directory is a mistake, not a new kind to guess.
MODELS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "Secret"): "V1Secret",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
WORKLOADS = {"Deployment", "DaemonSet"}


@dataclass(frozen=True)
class Manifest:
    path: Path
    index: int  # the document's position in its file
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.data.get("kind"))

    @property
    def name(self) -> str:
        return str(self.data.get("metadata", {}).get("name"))

    @property
    def namespace(self) -> str | None:
        namespace = self.data.get("metadata", {}).get("namespace")
        return None if namespace is None else str(namespace)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}#{self.index} ({self.kind} {self.name})"


def manifest_files() -> list[Path]:
    """The shared files in apply order, then each variant's: what `kubectl apply -f DIR -f DIR/<variant>/` reads."""
    files = sorted(p for p in MANIFESTS.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    for variant in VARIANT_DIRS:
        files += sorted(p for p in (MANIFESTS / variant).iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    return files


def load_manifests() -> list[Manifest]:
    manifests = []
    for path in manifest_files():
        with path.open(encoding="utf-8") as handle:
            for index, data in enumerate(yaml.safe_load_all(handle)):
                if data is None:  # an empty document, e.g. after a trailing '---'
                    continue
                assert isinstance(data, dict), f"{path.relative_to(ROOT)}#{index}: expected a mapping"
                manifests.append(Manifest(path, index, data))
    return manifests


ALL = load_manifests()


def to_model(api: ApiClient, manifest: Manifest) -> Any:
    """The client's model for a manifest, built the way the client builds one from an API response.

    The private ``__deserialize`` is the one entry point every client version that setup.cfg allows has (the
    newer pydantic models also have ``from_dict``, the older ones do not); the public ``deserialize`` wants an
    HTTP response.
    """
    key = (manifest.data.get("apiVersion"), manifest.data.get("kind"))
    assert key in MODELS, f"{manifest.where}: no model for apiVersion/kind {key}"
    return api._ApiClient__deserialize(manifest.data, MODELS[key])  # type: ignore[attr-defined]


def lost_in_round_trip(api: ApiClient, manifest: Manifest) -> list[str]:
    """What the manifest says that its model, serialised back the way the client sends it, does not."""
    serialised = api.sanitize_for_serialization(to_model(api, manifest))
    return sorted(differences(manifest.data, serialised))


def differences(original: Any, round_trip: Any, path: str = "") -> Iterator[str]:
    """Where the model's serialisation differs from the manifest: fields it dropped, added or changed."""
    if isinstance(original, dict) and isinstance(round_trip, dict):
        for key in original.keys() | round_trip.keys():
            where = f"{path}.{key}" if path else str(key)
            if key not in round_trip:
                yield f"{where}: not a field of the model (dropped)"
            elif key not in original:
                yield f"{where}: added by the model"
            else:
                yield from differences(original[key], round_trip[key], where)
    elif isinstance(original, list) and isinstance(round_trip, list) and len(original) == len(round_trip):
        for i, (a, b) in enumerate(zip(original, round_trip, strict=True)):
            yield from differences(a, b, f"{path}[{i}]")
    elif original != round_trip or type(original) is not type(round_trip):
        yield f"{path}: {original!r} became {round_trip!r}"


def find(kind: str, name: str | None = None) -> list[Manifest]:
    return [m for m in ALL if m.kind == kind and (name is None or m.name == name)]


def one(kind: str, name: str | None = None) -> Manifest:
    found = find(kind, name)
    assert len(found) == 1, f"expected exactly one {kind} {name or ''}, found {[m.where for m in found]}"
    return found[0]


def workloads() -> list[Manifest]:
    return [m for m in ALL if m.kind in WORKLOADS]


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload.data["spec"]["template"]["spec"]
    return spec


def daemon_container(workload: Manifest) -> dict[str, Any]:
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1, f"{workload.where}: expected one container"
    container: dict[str, Any] = containers[0]
    return container


def env_of(workload: Manifest) -> dict[str, dict[str, Any]]:
    env = daemon_container(workload).get("env", [])
    names = [e["name"] for e in env]
    assert len(names) == len(set(names)), f"{workload.where}: an env var is set twice: {names}"
    return {e["name"]: e for e in env}


def control_plane_service_account() -> Manifest:
    return one("ServiceAccount", "draas-control-plane")


def daemon_service_account() -> Manifest:
    return one("ServiceAccount", "draas-k8s-daemon")


@pytest.fixture(scope="module")
def api() -> Iterator[ApiClient]:
    with ApiClient() as client:
        yield client


# -- each document on its own ----------------------------------------------------------------------------------


def test_the_directory_holds_the_shared_objects_and_one_workload_per_variant() -> None:
    kinds = Counter(m.kind for m in ALL)
    assert kinds == {
        "Namespace": 1,
        "Secret": 1,
        "ServiceAccount": 2,
        "ClusterRole": 1,
        "ClusterRoleBinding": 1,
        "Role": 1,
        "RoleBinding": 1,
        "Deployment": 1,
        "DaemonSet": 1,
    }
    # The two variants must never be applied together, so neither is in the directory `kubectl apply -f` reads.
    for m in workloads():
        assert m.path.parent.name in VARIANT_DIRS, f"{m.where}: a workload belongs in a variant's directory"
    assert {m.path.parent.name for m in workloads()} == set(VARIANT_DIRS)
    for m in ALL:
        if m.kind not in WORKLOADS:
            assert m.path.parent == MANIFESTS, f"{m.where}: shared objects live in config/kubernetes/ itself"


def test_each_file_holds_one_object_and_is_numbered_in_apply_order() -> None:
    per_file = Counter(m.path for m in ALL)
    assert all(count == 1 for count in per_file.values()), per_file
    for path in per_file:
        assert path.name[:2].isdigit() and path.name[2] == "-", f"{path.name}: expected NN-name.yaml"
    shared = [m for m in ALL if m.path.parent == MANIFESTS]
    order = [m.kind for m in shared]
    assert order[0] == "Namespace", "the namespace must exist before anything is created in it"
    assert order.index("ClusterRole") < order.index("ClusterRoleBinding")
    assert order.index("Role") < order.index("RoleBinding")
    # Workloads are numbered after every shared file, so their ServiceAccount and Secret come first anyway.
    last_shared = max(m.path.name for m in shared)
    assert all(m.path.name > last_shared for m in workloads())


@pytest.mark.parametrize("manifest", ALL, ids=[f"{m.path.name}#{m.index}" for m in ALL])
def test_every_document_deserialises_into_the_client_model_without_losing_a_field(
    api: ApiClient, manifest: Manifest
) -> None:
    assert type(to_model(api, manifest)).__name__ == MODELS[(manifest.data["apiVersion"], manifest.kind)]
    lost = lost_in_round_trip(api, manifest)
    assert not lost, f"{manifest.where}:\n  " + "\n  ".join(lost)


def test_the_round_trip_check_catches_a_misspelt_field(api: ApiClient) -> None:
    deployment = one("Deployment")
    data = {**deployment.data, "spec": {**deployment.data["spec"], "replica": 1}}
    broken = Manifest(deployment.path, deployment.index, data)
    assert lost_in_round_trip(api, broken) == ["spec.replica: not a field of the model (dropped)"]


def test_every_object_carries_the_common_labels() -> None:
    for m in ALL:
        labels = m.data["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/name") == "draas-actors", m.where
        assert labels.get("app.kubernetes.io/part-of") == "draas-actors", m.where
        if m.kind != "Namespace":
            assert labels.get("app.kubernetes.io/component") in ("k8s-daemon", "control-plane"), m.where


# -- namespaces and references ---------------------------------------------------------------------------------


def test_every_object_is_in_the_namespace_it_belongs_to() -> None:
    assert one("Namespace").name == DAEMON_NAMESPACE
    watched = {env_of(w)["WATCH_NAMESPACE"]["value"] for w in workloads()}
    assert len(watched) == 1, f"the variants watch different namespaces: {watched}"
    for m in ALL:
        if m.kind in CLUSTER_SCOPED:
            assert m.namespace is None, f"{m.where}: cluster-scoped, must have no namespace"
        elif m.kind in ("Role", "RoleBinding"):
            # The control plane deletes pods where they are: in the namespace the daemon watches.
            assert m.namespace in watched, f"{m.where}: expected the watched namespace {watched}"
        else:
            assert m.namespace == DAEMON_NAMESPACE, f"{m.where}: expected namespace {DAEMON_NAMESPACE}"


@pytest.mark.parametrize("binding", find("ClusterRoleBinding") + find("RoleBinding"), ids=lambda m: m.name)
def test_every_binding_points_at_a_role_and_service_accounts_in_the_set(binding: Manifest) -> None:
    ref = binding.data["roleRef"]
    assert ref["apiGroup"] == "rbac.authorization.k8s.io"
    role = one(ref["kind"], ref["name"])
    if ref["kind"] == "Role":
        assert role.namespace == binding.namespace, "a RoleBinding can only use a Role of its own namespace"
    subjects = binding.data["subjects"]
    assert subjects, f"{binding.where}: no subjects"
    for subject in subjects:
        assert subject["kind"] == "ServiceAccount", f"{binding.where}: only our ServiceAccounts are bound"
        account = one("ServiceAccount", subject["name"])
        assert subject.get("namespace") == account.namespace, f"{binding.where}: {subject} is not {account.where}"


def test_the_daemon_pods_run_as_the_daemon_service_account_bound_to_the_read_only_cluster_role() -> None:
    account = daemon_service_account()
    for w in workloads():
        assert pod_spec(w)["serviceAccountName"] == account.name, w.where
        assert w.namespace == account.namespace, w.where
        assert pod_spec(w).get("automountServiceAccountToken", True), f"{w.where}: in-cluster config needs the token"
    binding = one("ClusterRoleBinding")
    assert binding.data["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                       "name": one("ClusterRole").name}
    assert binding.data["subjects"] == [{"kind": "ServiceAccount", "name": account.name,
                                         "namespace": account.namespace}]


def test_the_daemon_cluster_role_allows_exactly_get_list_and_watch_on_pods() -> None:
    rules = one("ClusterRole").data["rules"]
    assert len(rules) == 1
    (rule,) = rules
    assert rule["apiGroups"] == [""]
    assert rule["resources"] == ["pods"]
    assert sorted(rule["verbs"]) == ["get", "list", "watch"]
    assert set(rule) == {"apiGroups", "resources", "verbs"}, "no resourceNames or nonResourceURLs expected"


def test_the_control_plane_role_allows_deleting_and_reading_pods_and_nothing_else() -> None:
    role = one("Role")
    assert role.data["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "delete"]}]
    binding = one("RoleBinding")
    account = control_plane_service_account()
    assert binding.data["roleRef"]["name"] == role.name
    assert binding.data["subjects"] == [{"kind": "ServiceAccount", "name": account.name,
                                         "namespace": account.namespace}]


def test_only_the_control_plane_may_delete_pods_and_no_rule_uses_a_wildcard() -> None:
    deleters = set()
    for binding in find("ClusterRoleBinding") + find("RoleBinding"):
        role = one(binding.data["roleRef"]["kind"], binding.data["roleRef"]["name"])
        for rule in role.data["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{role.where}: wildcard in {field}"
            if "delete" in rule["verbs"]:
                deleters |= {s["name"] for s in binding.data["subjects"]}
    assert deleters == {control_plane_service_account().name}


# -- the workloads ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("workload", workloads(), ids=lambda m: m.kind)
def test_the_selector_matches_the_pod_template_labels(workload: Manifest) -> None:
    selector = workload.data["spec"]["selector"]
    assert set(selector) == {"matchLabels"}, "match expressions would need checking too"
    template_labels = workload.data["spec"]["template"]["metadata"]["labels"]
    assert selector["matchLabels"], f"{workload.where}: an empty selector selects every pod"
    assert selector["matchLabels"].items() <= template_labels.items(), workload.where
    # The daemon's own pods must never be mistaken for watched ones.
    assert not POD_LABELS.items() <= template_labels.items(), workload.where
    assert "draas.instanceId" not in template_labels


def test_the_deployment_runs_exactly_one_daemon_and_replaces_it_without_overlap() -> None:
    spec = one("Deployment").data["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("workload", workloads(), ids=lambda m: m.kind)
def test_every_secret_reference_names_a_key_of_the_secret_in_the_set(workload: Manifest) -> None:
    env = env_of(workload).values()
    refs = [e["valueFrom"]["secretKeyRef"] for e in env if "secretKeyRef" in e.get("valueFrom", {})]
    assert refs, f"{workload.where}: the API key should come from a Secret"
    for ref in refs:
        secret = one("Secret", ref["name"])
        assert secret.namespace == workload.namespace
        keys = set(secret.data.get("data", {})) | set(secret.data.get("stringData", {}))
        assert ref["key"] in keys, f"{workload.where}: Secret {ref['name']} has no key {ref['key']!r}"
        assert not ref.get("optional", False), "a missing key must stop the pod, not start it without a key"


def test_the_secret_value_is_an_obvious_placeholder() -> None:
    secret = one("Secret")
    assert "data" not in secret.data, "no real key, even base64-encoded, belongs in the repository"
    (value,) = secret.data["stringData"].values()
    assert "REPLACE" in value


def test_the_deployment_sets_exactly_the_daemon_env_and_the_daemonset_adds_the_node_from_the_downward_api() -> None:
    deployment, daemonset = env_of(one("Deployment")), env_of(one("DaemonSet"))
    assert set(deployment) == DAEMON_ENV
    assert set(daemonset) == DAEMON_ENV | {NODE_ENV}
    assert daemonset[NODE_ENV] == {"name": NODE_ENV, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
    assert deployment["DRAAS_API_KEY"] == daemonset["DRAAS_API_KEY"]
    assert "valueFrom" in deployment["DRAAS_API_KEY"] and "value" not in deployment["DRAAS_API_KEY"]
    assert deployment["DRAAS_LABEL_SELECTOR"]["value"] == "app=drasi,managed-by=draas"
    for name in DAEMON_ENV - {"DRAAS_API_KEY"}:
        assert deployment[name] == daemonset[name], f"{name} differs between the variants"


class RecordingEnviron(Mapping[str, str]):
    """An environment that remembers which variables were read."""

    def __init__(self, given: dict[str, str]) -> None:
        self.given = given
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self.given[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return self.given.get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return key in self.given

    def __iter__(self) -> Iterator[str]:
        return iter(self.given)

    def __len__(self) -> int:
        return len(self.given)


@pytest.mark.parametrize("workload", workloads(), ids=lambda m: m.kind)
def test_the_daemon_reads_and_accepts_every_variable_the_manifest_sets(workload: Manifest) -> None:
    # What the kubelet would hand the container, with the Secret and the downward API filled in.
    filled = {"DRAAS_API_KEY": "k" * 32, NODE_ENV: "aks-nodepool1-0"}
    environ = RecordingEnviron(
        {name: str(var.get("value", filled.get(name))) for name, var in env_of(workload).items()}
    )
    settings = k8s_daemon.load_settings(environ)
    assert set(environ.given) <= environ.read, f"set but never read: {set(environ.given) - environ.read}"
    assert settings.control_plane_url == environ.given["CONTROL_PLANE_URL"]
    assert settings.namespace == environ.given["WATCH_NAMESPACE"]
    assert settings.label_selector == environ.given["DRAAS_LABEL_SELECTOR"]
    assert settings.api_key == filled["DRAAS_API_KEY"]
    assert str(settings.spool_path) == environ.given["DRAAS_SPOOL_PATH"]
    if workload.kind == "DaemonSet":
        assert settings.field_selector == "spec.nodeName=aks-nodepool1-0"
    else:
        assert settings.node_name is None and settings.field_selector is None


def test_the_manifest_default_label_selector_is_the_daemon_default() -> None:
    assert env_of(one("Deployment"))["DRAAS_LABEL_SELECTOR"]["value"] == k8s_daemon.DEFAULT_LABEL_SELECTOR


def test_both_variants_run_the_same_image_command_and_container_as_the_same_named_workload() -> None:
    deployment, daemonset = one("Deployment"), one("DaemonSet")
    assert deployment.name == daemonset.name
    a, b = daemon_container(deployment), daemon_container(daemonset)
    for field in ("name", "image", "imagePullPolicy", "command", "resources", "securityContext", "volumeMounts"):
        assert a.get(field) == b.get(field), f"{field} differs between the variants"
    for field in ("securityContext", "volumes", "serviceAccountName", "terminationGracePeriodSeconds"):
        assert pod_spec(deployment).get(field) == pod_spec(daemonset).get(field), f"pod {field} differs"
    assert deployment.data["spec"]["selector"] == daemonset.data["spec"]["selector"]


def test_the_command_is_the_console_script_that_runs_the_kubernetes_daemon() -> None:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    lines = parser["options.entry_points"]["console_scripts"].splitlines()
    scripts = {name.strip(): target.strip() for name, _, target in (line.partition("=") for line in lines if line)}
    for w in workloads():
        (command,) = daemon_container(w)["command"]
        assert scripts.get(command) == "daemons.k8s_daemon:main", f"{w.where}: {command} is not the k8s daemon"


@pytest.mark.parametrize("workload", workloads(), ids=lambda m: m.kind)
def test_the_daemon_runs_as_non_root_on_a_read_only_root_with_its_spool_on_a_writable_volume(
    workload: Manifest,
) -> None:
    spec, container = pod_spec(workload), daemon_container(workload)
    pod_security = spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] != 0
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert "limits" in container["resources"] and "requests" in container["resources"]
    assert "livenessProbe" not in container, "the daemon has no probe endpoint"

    spool = env_of(workload)["DRAAS_SPOOL_PATH"]["value"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = [m for m in container["volumeMounts"] if os.path.commonpath([spool, m["mountPath"]]) == m["mountPath"]]
    assert len(mounts) == 1, f"{workload.where}: {spool} is on no mounted volume (the root is read-only)"
    (mount,) = mounts
    assert not mount.get("readOnly", False)
    # emptyDir, not hostPath: allowed by the restricted Pod Security Standard and writable without root.
    assert set(volumes[mount["name"]]) == {"name", "emptyDir"}
    assert all("hostPath" not in v for v in spec["volumes"])


def test_the_namespace_enforces_the_restricted_pod_security_standard_the_pods_meet() -> None:
    labels = one("Namespace").data["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
