"""The Kubernetes daemon's settings: the environment, the shipped example, and where the client's configuration
comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemons.k8s_daemon import DEFAULT_LABEL_SELECTOR, kube_configuration, load_settings
from draas_actors.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
BASE = {"CONTROL_PLANE_URL": "http://127.0.0.1:8088", "DRAAS_API_KEY": "k" * 32}
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: aks
  cluster: {server: "https://aks.example.com:443", insecure-skip-tls-verify: true}
users:
- name: daemon
  user: {token: "t0ken"}
contexts:
- name: aks
  context: {cluster: aks, user: daemon}
current-context: aks
"""


def test_settings_have_defaults_for_all_but_the_url_and_key() -> None:
    settings = load_settings(BASE)
    assert settings.control_plane_url == "http://127.0.0.1:8088"
    assert settings.namespace is None
    assert settings.label_selector == DEFAULT_LABEL_SELECTOR == "app=drasi,managed-by=draas"
    assert settings.node_name is None
    assert settings.field_selector is None
    assert settings.spool_path == Path("var/k8s-daemon.spool")
    assert (settings.watch_timeout, settings.request_timeout) == (300, 330.0)
    assert (settings.shutdown_flush, settings.reconnect_max, settings.log_level) == (5.0, 30.0, "INFO")
    assert settings.resync_interval == 600.0  # ten minutes
    assert settings.store_check_interval == 5.0  # a quiet daemon meets a new store within 10 s
    push = settings.push_settings()
    assert (push.url, push.api_key, push.spool_path) == ("http://127.0.0.1:8088", "k" * 32, settings.spool_path)


@pytest.mark.parametrize(("text", "namespace"), [("", None), ("*", None), ("all", None), (" ALL ", None),
                                                  ("drasi", "drasi"), ("team-a-1", "team-a-1")])
def test_one_namespace_or_all(text: str, namespace: str | None) -> None:
    assert load_settings({**BASE, "WATCH_NAMESPACE": text}).namespace == namespace


@pytest.mark.parametrize(
    "selector",
    [
        "app=drasi,managed-by=draas",
        "app.kubernetes.io/name==drasi, tier in (a, b),!legacy",
        "env!=prod,canary,release notin (v1,v2)",
        "app=",
    ],
)
def test_a_label_selector_is_kept_as_written(selector: str) -> None:
    assert load_settings({**BASE, "DRAAS_LABEL_SELECTOR": selector}).label_selector == selector


def test_a_blank_label_selector_means_the_default() -> None:
    assert load_settings({**BASE, "DRAAS_LABEL_SELECTOR": "  "}).label_selector == DEFAULT_LABEL_SELECTOR


def test_the_node_name_becomes_a_field_selector() -> None:
    settings = load_settings({**BASE, "DRAAS_NODE_NAME": "aks-nodepool1-12345678-vmss000000"})
    assert settings.node_name == "aks-nodepool1-12345678-vmss000000"
    assert settings.field_selector == "spec.nodeName=aks-nodepool1-12345678-vmss000000"


def test_the_request_timeout_follows_the_watch_timeout_unless_set() -> None:
    settings = load_settings({**BASE, "DRAAS_WATCH_TIMEOUT_SECONDS": "60"})
    assert (settings.watch_timeout, settings.request_timeout) == (60, 90.0)
    settings = load_settings({**BASE, "DRAAS_WATCH_TIMEOUT_SECONDS": "60", "DRAAS_REQUEST_TIMEOUT_SECONDS": "61.5"})
    assert settings.request_timeout == 61.5


def test_the_shared_settings_are_read_as_for_the_docker_daemon() -> None:
    settings = load_settings(
        {
            **BASE,
            "DRAAS_SPOOL_PATH": "/var/lib/draas/k8s.spool",
            "DRAAS_SPOOL_MAX_ITEMS": "10",
            "DRAAS_SHUTDOWN_FLUSH_SECONDS": "0",
            "DRAAS_RECONNECT_MAX_SECONDS": "2.5",
            "DRAAS_LOG_LEVEL": "debug",
            "DRAAS_RESYNC_INTERVAL": "0.5",
            "DRAAS_STORE_CHECK_INTERVAL": " 1.5 ",
        }
    )
    assert (settings.resync_interval, settings.store_check_interval) == (0.5, 1.5)
    assert settings.spool_path == Path("/var/lib/draas/k8s.spool")
    assert (settings.spool_max_items, settings.shutdown_flush, settings.reconnect_max) == (10, 0.0, 2.5)
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("override", "variable"),
    [
        ({"CONTROL_PLANE_URL": ""}, "CONTROL_PLANE_URL"),
        ({"CONTROL_PLANE_URL": "127.0.0.1:8088"}, "CONTROL_PLANE_URL"),
        ({"DRAAS_API_KEY": " "}, "DRAAS_API_KEY"),
        ({"WATCH_NAMESPACE": "Drasi"}, "WATCH_NAMESPACE"),
        ({"WATCH_NAMESPACE": "a_b"}, "WATCH_NAMESPACE"),
        ({"WATCH_NAMESPACE": "x" * 64}, "WATCH_NAMESPACE"),
        ({"WATCH_NAMESPACE": "a,b"}, "WATCH_NAMESPACE"),
        ({"DRAAS_LABEL_SELECTOR": "=drasi"}, "DRAAS_LABEL_SELECTOR"),
        ({"DRAAS_LABEL_SELECTOR": "app=drasi,,x"}, "DRAAS_LABEL_SELECTOR"),
        ({"DRAAS_LABEL_SELECTOR": "my app=drasi"}, "DRAAS_LABEL_SELECTOR"),
        ({"DRAAS_LABEL_SELECTOR": "tier in a,b"}, "DRAAS_LABEL_SELECTOR"),
        ({"DRAAS_LABEL_SELECTOR": "app=-x"}, "DRAAS_LABEL_SELECTOR"),
        ({"DRAAS_NODE_NAME": "Node_1"}, "DRAAS_NODE_NAME"),
        ({"DRAAS_WATCH_TIMEOUT_SECONDS": "0"}, "DRAAS_WATCH_TIMEOUT_SECONDS"),
        ({"DRAAS_WATCH_TIMEOUT_SECONDS": "1.5"}, "DRAAS_WATCH_TIMEOUT_SECONDS"),
        ({"DRAAS_WATCH_TIMEOUT_SECONDS": "soon"}, "DRAAS_WATCH_TIMEOUT_SECONDS"),
        ({"DRAAS_REQUEST_TIMEOUT_SECONDS": "300"}, "DRAAS_REQUEST_TIMEOUT_SECONDS"),
        ({"DRAAS_WATCH_TIMEOUT_SECONDS": "60", "DRAAS_REQUEST_TIMEOUT_SECONDS": "30"}, "DRAAS_REQUEST_TIMEOUT_SECONDS"),
        ({"DRAAS_REQUEST_TIMEOUT_SECONDS": "nan"}, "DRAAS_REQUEST_TIMEOUT_SECONDS"),
        ({"DRAAS_SPOOL_MAX_ITEMS": "0"}, "DRAAS_SPOOL_MAX_ITEMS"),
        ({"DRAAS_SHUTDOWN_FLUSH_SECONDS": "-1"}, "DRAAS_SHUTDOWN_FLUSH_SECONDS"),
        ({"DRAAS_RECONNECT_MAX_SECONDS": "inf"}, "DRAAS_RECONNECT_MAX_SECONDS"),
        ({"DRAAS_LOG_LEVEL": "LOUD"}, "DRAAS_LOG_LEVEL"),
        *(({"DRAAS_RESYNC_INTERVAL": text}, "DRAAS_RESYNC_INTERVAL") for text in ("0", "-5", "inf", "nan", "often")),
        *(({"DRAAS_STORE_CHECK_INTERVAL": text}, "DRAAS_STORE_CHECK_INTERVAL")
          for text in ("0", "-1", "inf", "nan", "5s")),
    ],
)
def test_a_bad_setting_is_refused_naming_its_variable(override: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, **override})
    assert caught.value.field == variable
    assert caught.value.message.startswith(variable)


def test_the_shipped_example_loads_once_the_key_is_filled_in() -> None:
    environ: dict[str, str] = {}
    for line in (ROOT / "config" / "k8s-daemon.env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            environ[name.strip()] = value.strip()
    assert environ["DRAAS_API_KEY"] == ""
    settings = load_settings({**environ, "DRAAS_API_KEY": "k" * 32})
    assert settings.namespace is None
    assert settings.label_selector == DEFAULT_LABEL_SELECTOR
    assert (settings.watch_timeout, settings.request_timeout) == (300, 330.0)


# -- access to the API server -----------------------------------------------------------------------


def test_outside_a_cluster_the_kubeconfig_is_used(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    configuration = kube_configuration({"KUBECONFIG": str(path)})
    assert configuration.host == "https://aks.example.com:443"
    assert "Bearer t0ken" in configuration.api_key.values()


def test_a_missing_kubeconfig_is_a_configuration_error_naming_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        kube_configuration({"KUBECONFIG": str(tmp_path / "nowhere")})
    assert caught.value.field == "KUBECONFIG"
    assert str(tmp_path / "nowhere") in caught.value.message


def test_a_broken_kubeconfig_is_a_configuration_error_naming_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("clusters: [unclosed")
    with pytest.raises(ConfigError) as caught:
        kube_configuration({"KUBECONFIG": str(path)})
    assert caught.value.field == "KUBECONFIG"


def test_inside_a_pod_without_a_service_account_token_the_error_names_the_in_cluster_variable() -> None:
    # KUBERNETES_SERVICE_HOST says "in a pod"; this machine has no service account token to read.
    if Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists():
        pytest.skip("this machine has a service account token")
    with pytest.raises(ConfigError) as caught:
        kube_configuration({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBECONFIG": "/dev/null"})
    assert caught.value.field == "KUBERNETES_SERVICE_HOST"
