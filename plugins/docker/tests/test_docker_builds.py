"""Build options, Dockerfiles and cluster labels: no engine needed."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest
from clipper_docker import cluster as lb
from clipper_docker.builds import CA_FILE, BuildOptions, model_dockerfile
from clipper_docker.images import ProjectImages, wheel_requirements, write_context

from clipper_core.errors import BuildError
from clipper_core.launch import IMAGE_ROLE_LABEL, IMAGE_TITLE, IMAGE_TITLE_LABEL


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ("CLIPPER_BUILD_CA_BUNDLE", "CLIPPER_PIP_ARGS", "CLIPPER_PIP_INDEX_URL",
                "CLIPPER_BUILD_NETWORK", "CLIPPER_PYTHON_BASE_IMAGE"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_defaults_work_for_docker_hub_users(clean_env: pytest.MonkeyPatch) -> None:
    options = BuildOptions.from_env()
    assert options == BuildOptions(ca_bundle=None, pip_args=(), network_mode=None,
                                   python_base_image="python:3.11-slim")
    assert options.pip_install(["numpy"]) == (
        "pip install --no-cache-dir --disable-pip-version-check numpy")


def test_options_from_environment(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "corp.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    clean_env.setenv("CLIPPER_BUILD_CA_BUNDLE", str(ca))
    clean_env.setenv("CLIPPER_PIP_ARGS", "--retries 2 --proxy 'http://p:3128'")
    clean_env.setenv("CLIPPER_PIP_INDEX_URL", "https://pypi.corp/simple")
    clean_env.setenv("CLIPPER_BUILD_NETWORK", "host")
    clean_env.setenv("CLIPPER_PYTHON_BASE_IMAGE", "corp/python:3.11")
    options = BuildOptions.from_env()
    assert options.pip_args == ("--index-url", "https://pypi.corp/simple", "--retries", "2",
                                "--proxy", "http://p:3128")
    assert (options.network_mode, options.python_base_image) == ("host", "corp/python:3.11")
    assert f"--cert /tmp/{CA_FILE}" in options.pip_install(["x"])
    # explicit arguments win over the environment
    explicit = BuildOptions.from_env(pip_args=["-q"], python_base_image="b:1")
    assert (explicit.pip_args, explicit.python_base_image) == (("-q",), "b:1")


def test_missing_ca_bundle_is_a_build_error(clean_env: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="is not a file"):
        BuildOptions.from_env(ca_bundle=str(tmp_path / "nope.pem"))


def test_model_dockerfile(tmp_path: Path) -> None:
    plain = model_dockerfile("base:1", BuildOptions(), tmp_path, [])
    assert plain == "FROM base:1\nCOPY model /model/\n"
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    options = BuildOptions(ca_bundle=str(ca), pip_args=("--index-url", "https://i/simple"))
    text = model_dockerfile("base:1", options, tmp_path, ["numpy==1.26", "a b"])
    assert text.splitlines() == [
        "FROM base:1", "COPY model /model/", f"COPY {CA_FILE} /tmp/{CA_FILE}",
        f"RUN pip install --no-cache-dir --disable-pip-version-check --cert /tmp/{CA_FILE} "
        f"--index-url https://i/simple numpy==1.26 'a b' && rm -f /tmp/{CA_FILE}"]
    assert (tmp_path / CA_FILE).read_text() == "pem"


def test_project_image_context_holds_wheel_and_requirements(tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    write_context(context, BuildOptions(python_base_image="py:3"))
    (wheel,) = (context / "wheels").iterdir()
    assert wheel.name.startswith("clipper_core-") and wheel.suffix == ".whl"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    assert any(n.startswith("clipper_frontends/query") for n in names)
    assert "clipper_core/runtime.py" in names
    requirements = (context / "requirements.txt").read_text().splitlines()
    assert requirements == wheel_requirements(wheel)
    assert any(r.startswith("pyzmq") for r in requirements)
    assert not any("pytest" in r for r in requirements)  # extras are left out
    dockerfile = (context / "Dockerfile").read_text()
    assert dockerfile.startswith("FROM py:3 AS core\n")
    for stage in ProjectImages().targets():
        assert f"AS {stage}\nLABEL {IMAGE_ROLE_LABEL}=\"{stage}\"\n" in dockerfile
    assert f'LABEL {IMAGE_TITLE_LABEL}="{IMAGE_TITLE}"' in dockerfile


def test_cluster_info_round_trips_through_labels() -> None:
    info = lb.ClusterInfo(cluster="c1", network="clipper-c1", admin_port=1338,
                          query_port=1337, rpc_port=7000,
                          store_url="redis://clipper-c1-redis:6379/0?prefix=c1",
                          frontends=("clipper-c1-query:7000",),
                          query_endpoints=((1337, 7000), (1337, 7000)))
    labels = {**info.to_labels(), lb.CLUSTER: "c1"}
    assert lb.ClusterInfo.from_labels(labels) == info
    assert info.rpc_targets().env() == {"CLIPPER_IP": "clipper-c1-query", "CLIPPER_PORT": "7000"}
    host = lb.ClusterInfo(cluster="c1", network="host", admin_port=1, query_port=2, rpc_port=3,
                          store_url="redis://127.0.0.1:4/0?prefix=c1",
                          frontends=("127.0.0.1:3", "127.0.0.1:5"))
    assert host.rpc_targets().env() == {"CLIPPER_FRONTENDS": "127.0.0.1:3,127.0.0.1:5"}


def test_plugin_offers_the_docker_manager() -> None:
    from clipper_core.plugins import build_plugin_manager, get_backend

    pm = build_plugin_manager(only=["docker"])
    backend = get_backend("container_managers", "docker", pm)
    assert backend.plugin == "docker"
    manager = backend.factory(cluster_name="from-plugin", clipper_query_port=1)
    assert type(manager).__name__ == "DockerContainerManager"
    assert manager.cluster_name == "from-plugin"


def test_clippers_parameters_in_clippers_order() -> None:
    from clipper_docker import DockerContainerManager

    cm = DockerContainerManager("pos", "127.0.0.2", False, 24224, 11, 12, 13, "10.0.0.9", 14,
                                9090, "my_net", {"mem_limit": "1g", "labels": {"team": "a"}})
    assert (cm.cluster_name, cm.docker_ip_address) == ("pos", "127.0.0.2")
    assert (cm.clipper_query_port, cm.clipper_management_port, cm.clipper_rpc_port) == (
        11, 12, 13)
    assert (cm.redis_ip, cm.redis_port, cm.docker_network) == ("10.0.0.9", 14, "my_net")
    assert cm.extra_container_kwargs == {"mem_limit": "1g"} and cm.labels == {"team": "a"}
    default = DockerContainerManager()
    assert (default.cluster_name, default.docker_network, default.prometheus_port) == (
        "default-cluster", "clipper_network", 9090)


@pytest.mark.parametrize(("option", "value"), [
    ("use_centralized_log", True), ("fluentd_port", 24225), ("prometheus_port", 9091)])
def test_parameters_we_cannot_honour_warn_once(option: str, value: object) -> None:
    import warnings

    from clipper_docker import DockerContainerManager

    from clipper_core.launch.compat import reset_warnings

    reset_warnings()
    with pytest.warns(UserWarning, match=option):
        DockerContainerManager(cluster_name="warns", **{option: value})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DockerContainerManager(cluster_name="warns", **{option: value})  # once only
        reset_warnings()
        DockerContainerManager(cluster_name="quiet")  # Clipper's defaults never warn


def test_top_level_import_is_cheap_and_lazy() -> None:
    import subprocess
    import sys

    code = ("import sys, clipper_docker; assert 'docker' not in sys.modules; "
            "assert 'clipper_docker.manager' not in sys.modules; "
            "cls = clipper_docker.DockerContainerManager; "
            "assert cls.__module__ == 'clipper_docker.manager'; "
            "assert 'docker' not in sys.modules, 'the SDK loads when a client is needed'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_plugin_offers_the_docker_image_builder() -> None:
    from clipper_docker.registry import DockerRegistry

    from clipper_core.launch import ModelImageBuilder, get_image_builder
    from clipper_core.plugins import build_plugin_manager, get_backend

    pm = build_plugin_manager(only=["docker"])
    assert get_backend("registries", "docker", pm).plugin == "docker"
    builder = get_image_builder("docker", container_registry="reg.test:5000/")
    assert isinstance(builder, DockerRegistry) and isinstance(builder, ModelImageBuilder)
    assert builder.reference("m", "2") == "reg.test:5000/m:2"


class _Images:
    def __init__(self, labels: dict[str, str] | None) -> None:
        self.labels = labels

    def get(self, image: str) -> Any:
        if self.labels is None:
            import docker.errors

            raise docker.errors.ImageNotFound(image)
        return self

    @property
    def images(self) -> Any:
        return self


def test_a_local_image_of_our_name_is_used_only_with_our_label() -> None:
    from clipper_docker.registry import DockerRegistry

    from clipper_core.errors import ClusterStartError
    from clipper_core.launch import DEFAULT_IMAGES, IMAGE_TITLE, IMAGE_TITLE_LABEL

    ours = DockerRegistry(client=_Images({IMAGE_TITLE_LABEL: IMAGE_TITLE}))
    tag = DEFAULT_IMAGES.query_frontend
    assert ours.project_image(None, tag) == tag
    foreign = DockerRegistry(client=_Images({IMAGE_TITLE_LABEL: "clipper"}))
    with pytest.raises(ClusterStartError, match="not clipper-core's"):
        foreign.project_image(None, tag, ClusterStartError)
    assert foreign.project_image("clipper/query_frontend:0.4.0", tag) == \
        "clipper/query_frontend:0.4.0", "an image the user names is theirs to choose"


def test_unreachable_engine_is_a_container_error(tmp_path: Path) -> None:
    from clipper_docker.manager import DockerContainerManager

    from clipper_core.errors import ContainerError

    sock = tmp_path / "no-engine.sock"
    cm = DockerContainerManager(cluster_name="nowhere",
                                docker_client_kwargs={"base_url": f"unix://{sock}"})
    with pytest.raises(ContainerError, match="Cannot reach the Docker engine at unix://"):
        cm.connect()
    with pytest.raises(ContainerError, match="Cannot reach the Docker engine"):
        cm.stop_all_model_containers()
