from __future__ import annotations

import stat
from pathlib import Path

import pytest

from draas_actors.actors.store import Durability
from draas_actors.errors import ConfigError
from draas_actors.model import Platform
from draas_actors.policy import RestartMode
from draas_actors.settings import Settings, ensure_keys, load_settings
from draas_actors.system import SystemSettings
from draas_actors.webhooks import WebhookSettings

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "draas.toml"
DAEMON_KEY = "d" * 32
OPERATOR_KEY = "o" * 32


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "draas.toml"
    path.write_text(text)
    return path


def _config_error(path: Path | None, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=environ or {})
    return caught.value


# -- the shipped file and the environment -------------------------------------------------------------


def test_the_shipped_config_loads_with_its_demo_instance() -> None:
    settings = load_settings(SHIPPED, environ={})
    assert settings.host == "127.0.0.1"
    assert settings.port == 8088
    assert settings.system.data_dir == Path("./var")
    assert settings.stop_processes_on_exit is False
    assert settings.system.supervision.auto_create is True
    assert settings.system.retention.max_changes == 100_000
    (demo,) = settings.instances
    assert demo.instance_id == "demo-ticker"
    assert demo.platform is Platform.PROCESS
    assert demo.process is not None and demo.process.command[0] == "sh"
    assert demo.restart_policy.mode is RestartMode.ON_FAILURE


def test_no_file_gives_the_defaults() -> None:
    settings = load_settings(None, environ={})
    assert (settings.host, settings.port, settings.instances) == ("127.0.0.1", 8088, ())
    assert settings.system.data_dir == Path("./var")


def test_environment_variables_override_the_file(tmp_path: Path) -> None:
    settings = load_settings(
        SHIPPED,
        environ={
            "DRAAS_PORT": "9191",
            "DRAAS_HOST": "0.0.0.0",
            "DRAAS_DATA_DIR": str(tmp_path / "data"),
            "DRAAS_OPERATOR_API_KEY": OPERATOR_KEY,
            "DRAAS_DAEMON_API_KEY": DAEMON_KEY,
            "DRAAS_AUTO_CREATE": "off",
            "DRAAS_STOP_PROCESSES_ON_EXIT": "yes",
            "DRAAS_STORE_MAX_CHANGES": "50",
            "DRAAS_SWEEP_INTERVAL": "0.5",
        },
    )
    assert settings.port == 9191
    assert settings.host == "0.0.0.0"
    assert settings.system.data_dir == tmp_path / "data"
    assert settings.operator_keys == (OPERATOR_KEY,)
    assert settings.daemon_keys == (DAEMON_KEY,)
    assert settings.system.supervision.auto_create is False
    assert settings.stop_processes_on_exit is True
    assert settings.system.retention.max_changes == 50
    assert settings.system.sweep_interval == 0.5


def test_an_empty_key_variable_gives_no_key(tmp_path: Path) -> None:
    settings = load_settings(None, environ={"DRAAS_OPERATOR_API_KEY": "", "DRAAS_DAEMON_API_KEY": "  "})
    assert (settings.operator_keys, settings.daemon_keys) == ((), ())


def test_command_line_overrides_beat_the_environment(tmp_path: Path) -> None:
    settings = load_settings(
        SHIPPED,
        environ={"DRAAS_PORT": "9191"},
        overrides={"port": 7000, "host": "127.0.0.2", "dataDir": str(tmp_path), "threads": None},
    )
    assert (settings.port, settings.host, settings.system.data_dir) == (7000, "127.0.0.2", tmp_path)
    assert settings.threads == 8  # None means "not given"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DRAAS_AUTO_CREATE", "maybe"),
        ("DRAAS_STOP_PROCESSES_ON_EXIT", "2"),
        ("DRAAS_PORT", "eighty"),
        ("DRAAS_STORE_MAX_AGE", "a week"),
    ],
)
def test_an_unparseable_environment_variable_is_named(variable: str, value: str) -> None:
    error = _config_error(SHIPPED, {variable: value})
    assert error.field == variable
    assert variable in error.message


@pytest.mark.parametrize(("text", "expected"), [("1", True), ("TRUE", True), ("on", True), ("No", False), ("0", False)])
def test_boolean_variables_accept_the_usual_spellings(text: str, expected: bool) -> None:
    assert load_settings(None, environ={"DRAAS_AUTO_CREATE": text}).system.supervision.auto_create is expected


def test_an_out_of_range_environment_value_is_named_by_its_setting() -> None:
    assert _config_error(None, {"DRAAS_PORT": "70000"}).field == "server.port"


def test_a_short_api_key_from_the_environment_is_refused() -> None:
    error = _config_error(None, {"DRAAS_DAEMON_API_KEY": "short"})
    assert error.field == "DRAAS_DAEMON_API_KEY"
    assert "short" not in error.message  # a key, even a bad one, is never echoed


def test_durability_defaults_to_a_process_crash_and_power_loss_is_a_setting(tmp_path: Path) -> None:
    assert load_settings(SHIPPED, environ={}).system.durability is Durability.PROCESS_CRASH
    assert load_settings(None, environ={}).system.durability is Durability.PROCESS_CRASH
    strict = load_settings(_config(tmp_path, "[store]\ndurability = 'power-loss'\n"), environ={})
    assert strict.system.durability is Durability.POWER_LOSS
    from_env = load_settings(None, environ={"DRAAS_STORE_DURABILITY": "power-loss"})
    assert from_env.system.durability is Durability.POWER_LOSS


# -- errors in the file -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[server]\ncolour = 'blue'\n", "server.colour"),
        ("[store]\nretention = 5\n", "store.retention"),
        ("[store]\ndurability = 'forever'\n", "store.durability"),
        ("unknownTopLevel = 1\n", "unknownTopLevel"),
        ("[server]\nport = 'eighty'\n", "server.port"),
        ("[server]\nport = 99999\n", "server.port"),
        ("[supervisor]\nautoCreate = 'yes'\n", "supervisor.autoCreate"),
        ("[monitor]\nsweepInterval = 0\n", "monitor.sweepInterval"),
        ("logLevel = 'LOUD'\n", "logLevel"),
        ("server = 5\n", "server"),
        ("instances = 'none'\n", "instances"),
        ("[webhooks]\nretryHorizon = 0\n", "webhooks.retryHorizon"),
        ("[webhooks]\nallowedHosts = ''\n", "webhooks.allowedHosts"),
        ("[webhooks]\ncolour = 'red'\n", "webhooks.colour"),
        ("[ui]\nsessionSeconds = 5\n", "ui.sessionSeconds"),
    ],
)
def test_a_bad_setting_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    error = _config_error(_config(tmp_path, text))
    assert error.field == field
    assert str(tmp_path / "draas.toml") in error.message


@pytest.mark.parametrize(
    ("instance", "field"),
    [
        (
            (
                'instanceId = "a"\nplatform = "process"\nprocess = { command = ["x"] }\n'
                'restartPolicy = { mode = "sometimes" }'
            ),
            "instances[0].restartPolicy.mode",
        ),
        (
            (
                'instanceId = "a"\nplatform = "process"\nprocess = { command = ["x"] }\n'
                "restartPolicy = { initialBackoff = 5, maxBackoff = 1 }"
            ),
            "instances[0].restartPolicy.maxBackoff",
        ),
        ('instanceId = "a"\nplatform = "process"', "instances[0].process"),
        ('instanceId = "a"\nplatform = "process"\nprocess = { cwd = "/" }', "instances[0].process.command"),
        ('platform = "docker"', "instances[0].instanceId"),
        ('instanceId = "a"\nplatform = "vm"', "instances[0].platform"),
    ],
)
def test_a_bad_instance_names_its_field(tmp_path: Path, instance: str, field: str) -> None:
    assert _config_error(_config(tmp_path, f"[[instances]]\n{instance}\n")).field == field


def test_a_bad_second_instance_is_named_by_its_index(tmp_path: Path) -> None:
    text = (
        '[[instances]]\ninstanceId = "a"\nplatform = "docker"\n'
        '[[instances]]\ninstanceId = "b"\nplatform = "docker"\nrestartPolicy = { jitter = 2 }\n'
    )
    assert _config_error(_config(tmp_path, text)).field == "instances[1].restartPolicy.jitter"


def test_duplicate_instance_ids_are_refused_naming_the_second(tmp_path: Path) -> None:
    text = (
        '[[instances]]\ninstanceId = "same"\nplatform = "docker"\n'
        '[[instances]]\ninstanceId = "other"\nplatform = "docker"\n'
        '[[instances]]\ninstanceId = "same"\nplatform = "kubernetes"\n'
    )
    error = _config_error(_config(tmp_path, text))
    assert error.field == "instances[2].instanceId"
    assert "same" in error.message


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    error = _config_error(missing)
    assert error.field == "--config"
    assert str(missing) in error.message
    assert "no such configuration file" in error.message


def test_invalid_toml_is_a_clear_error(tmp_path: Path) -> None:
    error = _config_error(_config(tmp_path, "[server\nport = 1\n"))
    assert "not valid TOML" in error.message
    assert "draas.toml" in error.message


# -- API keys -----------------------------------------------------------------------------------------


def _settings(
    data_dir: Path, *, daemon_keys: tuple[str, ...] = (), operator_keys: tuple[str, ...] = ()
) -> Settings:
    return Settings(system=SystemSettings(data_dir=data_dir), daemon_keys=daemon_keys, operator_keys=operator_keys)


def test_missing_keys_are_generated_into_owner_only_files(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"  # does not exist yet
    settings, written = ensure_keys(_settings(data_dir))
    assert sorted(written) == [data_dir / "daemon.key", data_dir / "operator.key"]
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert settings.daemon_keys == ((data_dir / "daemon.key").read_text().strip(),)
    assert settings.operator_keys == ((data_dir / "operator.key").read_text().strip(),)
    assert len(settings.daemon_keys[0]) >= 32
    assert settings.daemon_keys != settings.operator_keys


def test_generated_keys_are_written_once_and_reused(tmp_path: Path) -> None:
    first, written = ensure_keys(_settings(tmp_path))
    second, written_again = ensure_keys(_settings(tmp_path))
    assert len(written) == 2
    assert written_again == []
    assert (second.daemon_keys, second.operator_keys) == (first.daemon_keys, first.operator_keys)


def test_configured_keys_are_kept_and_no_file_is_written_for_them(tmp_path: Path) -> None:
    settings, written = ensure_keys(_settings(tmp_path, operator_keys=(OPERATOR_KEY,)))
    assert settings.operator_keys == (OPERATOR_KEY,)
    assert written == [tmp_path / "daemon.key"]
    assert not (tmp_path / "operator.key").exists()


def test_ensure_keys_changes_nothing_else(tmp_path: Path) -> None:
    before = _settings(tmp_path, daemon_keys=(DAEMON_KEY,), operator_keys=(OPERATOR_KEY,))
    after, written = ensure_keys(before)
    assert written == []
    assert after == before


# -- kubernetes ---------------------------------------------------------------------------------------------

KUBECONFIG_TEXT = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: one, context: {cluster: c, user: u}}, {name: two, context: {cluster: c, user: u}}]
current-context: one
"""


def _kubeconfig(tmp_path: Path, name: str = "kubeconfig") -> Path:
    path = tmp_path / name
    path.write_text(KUBECONFIG_TEXT)
    return path


def test_without_kubernetes_settings_the_client_default_is_used_outside_a_cluster() -> None:
    kubernetes = load_settings(None, environ={}).system.kubernetes
    assert (kubernetes.kubeconfig, kubernetes.context, kubernetes.in_cluster) == (None, None, False)
    assert kubernetes.request_timeout == 10.0
    assert kubernetes.replacement_grace == 5.0


def test_the_kubernetes_section_is_read(tmp_path: Path) -> None:
    kubeconfig = _kubeconfig(tmp_path)
    path = _config(
        tmp_path,
        f'[kubernetes]\nkubeconfig = "{kubeconfig}"\ncontext = "two"\nrequestTimeout = 3\nreplacementGrace = 0\n',
    )
    kubernetes = load_settings(path, environ={}).system.kubernetes
    assert (kubernetes.kubeconfig, kubernetes.context) == (str(kubeconfig), "two")
    assert (kubernetes.request_timeout, kubernetes.replacement_grace) == (3, 0)


def test_draas_kubeconfig_beats_the_file_which_beats_kubeconfig(tmp_path: Path) -> None:
    from_file, from_draas, from_kube = (_kubeconfig(tmp_path, name) for name in ("file", "draas", "kube"))
    path = _config(tmp_path, f'[kubernetes]\nkubeconfig = "{from_file}"\n')
    assert load_settings(path, environ={"KUBECONFIG": str(from_kube)}).system.kubernetes.kubeconfig == str(from_file)
    environ = {"KUBECONFIG": str(from_kube), "DRAAS_KUBECONFIG": str(from_draas), "DRAAS_KUBE_CONTEXT": "two"}
    kubernetes = load_settings(path, environ=environ).system.kubernetes
    assert (kubernetes.kubeconfig, kubernetes.context) == (str(from_draas), "two")
    assert load_settings(None, environ={"KUBECONFIG": str(from_kube)}).system.kubernetes.kubeconfig == str(from_kube)


def test_in_a_pod_the_service_account_is_used_unless_a_kubeconfig_is_given_explicitly(tmp_path: Path) -> None:
    in_pod = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBECONFIG": "/nowhere"}
    assert load_settings(None, environ=in_pod).system.kubernetes.in_cluster is True
    explicit = {**in_pod, "DRAAS_KUBECONFIG": str(_kubeconfig(tmp_path))}
    kubernetes = load_settings(None, environ=explicit).system.kubernetes
    assert kubernetes.in_cluster is False
    assert kubernetes.kubeconfig == str(tmp_path / "kubeconfig")


def test_a_kubeconfig_that_is_not_there_is_named_but_only_when_it_was_asked_for(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    error = _config_error(_config(tmp_path, f'[kubernetes]\nkubeconfig = "{missing}"\n'))
    assert error.field == "kubernetes.kubeconfig"
    assert str(missing) in error.message
    assert _config_error(None, {"DRAAS_KUBECONFIG": str(missing)}).field == "kubernetes.kubeconfig"
    # An ambient KUBECONFIG is not ours to judge: a control plane without Kubernetes still starts.
    assert load_settings(None, environ={"KUBECONFIG": str(missing)}).system.kubernetes.kubeconfig == str(missing)


@pytest.mark.parametrize("text", ["a: [\n", "just a string\n", "contexts: 5\n"])
def test_a_file_that_is_not_a_kubeconfig_is_named(tmp_path: Path, text: str) -> None:
    bad = tmp_path / "bad"
    bad.write_text(text)
    error = _config_error(None, {"DRAAS_KUBECONFIG": str(bad)})
    assert error.field == "kubernetes.kubeconfig"
    assert str(bad) in error.message


def test_a_context_the_kubeconfig_does_not_have_is_named_with_the_ones_it_has(tmp_path: Path) -> None:
    error = _config_error(None, {"DRAAS_KUBECONFIG": str(_kubeconfig(tmp_path)), "DRAAS_KUBE_CONTEXT": "three"})
    assert error.field == "kubernetes.context"
    assert "'three'" in error.message
    assert "one, two" in error.message


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[kubernetes]\ncolour = 'blue'\n", "kubernetes.colour"),
        ("[kubernetes]\nkubeconfig = ''\n", "kubernetes.kubeconfig"),
        ("[kubernetes]\ncontext = 5\n", "kubernetes.context"),
        ("[kubernetes]\nrequestTimeout = 0\n", "kubernetes.requestTimeout"),
        ("[kubernetes]\nreplacementGrace = -1\n", "kubernetes.replacementGrace"),
        ("kubernetes = 'yes'\n", "kubernetes"),
    ],
)
def test_a_bad_kubernetes_setting_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    assert _config_error(_config(tmp_path, text)).field == field


def test_the_webhooks_section_is_read_and_unset_keys_keep_their_defaults(tmp_path: Path) -> None:
    path = tmp_path / "draas.toml"
    path.write_text('[webhooks]\nallowedHosts = ["hooks.example.com", "10.0.0.0/8"]\nretryHorizon = 3600\n')
    loaded = load_settings(path, environ={}).system.webhooks
    assert loaded == WebhookSettings(allowed_hosts=("hooks.example.com", "10.0.0.0/8"), retry_horizon=3600.0)
    assert load_settings(None, environ={}).system.webhooks == WebhookSettings()


def test_the_container_stop_timeout_is_10_s_unless_docker_stop_timeout_says(tmp_path: Path) -> None:
    assert load_settings(None, environ={}).system.docker.stop_timeout == 10.0
    path = tmp_path / "draas.toml"
    path.write_text("[docker]\nstopTimeout = 2.5\n")
    assert load_settings(path, environ={}).system.docker.stop_timeout == 2.5
    assert load_settings(path, environ={"DRAAS_DOCKER_STOP_TIMEOUT": "30"}).system.docker.stop_timeout == 30.0


@pytest.mark.parametrize("text", ["-1", "3601", "inf"])
def test_a_container_stop_timeout_out_of_range_is_named(tmp_path: Path, text: str) -> None:
    path = tmp_path / "draas.toml"
    path.write_text(f"[docker]\nstopTimeout = {text}\n")
    assert _config_error(path, {}).field == "docker.stopTimeout"


# -- actors --------------------------------------------------------------------------------------------


def test_instance_actors_run_on_the_pool_unless_configured_onto_threads(tmp_path: Path) -> None:
    assert load_settings(None, environ={}).system.actors.runtime == "pool"
    path = tmp_path / "draas.toml"
    path.write_text('[actors]\nruntime = "threads"\npoolThreads = 4\npoolMaxThreads = 6\n')
    actors = load_settings(path, environ={}).system.actors
    assert (actors.runtime, actors.pool_threads, actors.pool_max_threads) == ("threads", 4, 6)
    path.write_text("[actors]\npoolThreads = 64\n")
    assert load_settings(path, environ={}).system.actors.pool_max_threads == 64  # the ceiling follows


def test_a_pool_ceiling_below_its_size_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "draas.toml"
    path.write_text("[actors]\npoolThreads = 8\npoolMaxThreads = 4\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert caught.value.field == "actors.poolMaxThreads"
