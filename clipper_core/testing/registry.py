"""The contract every :class:`~clipper_core.interfaces.ModelRegistry` must meet.

Subclass :class:`RegistryContract` in a registry backend's tests, name the
backend and provide what it publishes::

    class TestDirectoryRegistry(RegistryContract):
        registry_name = "directory"

        @pytest.fixture
        def registry_options(self, tmp_path):
            return {"root": str(tmp_path / "registry")}

        @pytest.fixture
        def make_artifact(self, tmp_path):
            return lambda tag: build_test_artifact(tmp_path / tag)

Fixtures:

- ``registry_options`` (default none): keyword options of the factory
  registered under :attr:`RegistryContract.registry_name`;
- ``make_artifact`` (required): ``make_artifact(tag)`` returns a new
  artifact the registry can publish (a built model directory, a local image
  tag...); different tags give different artifacts;
- ``missing_artifact`` (default: an artifact reference nothing was built
  under): what ``publish`` must refuse;
- ``registry`` and ``second_registry`` (default: built by name through the
  plugin manager with ``registry_options``; the second stands in for
  another process using the same registry).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from ..errors import ClipperException, ValidationError
from ..interfaces import ModelRegistry
from ..plugins import backends

MakeArtifact = Callable[[str], str]


class RegistryContract:
    """Tests every method of the ModelRegistry Protocol; see the module docstring."""

    #: The name the registry is registered under (``register_registries``).
    registry_name: str = ""

    @pytest.fixture
    def registry_options(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def make_artifact(self) -> MakeArtifact:
        raise NotImplementedError("a RegistryContract subclass must provide make_artifact")

    @pytest.fixture
    def missing_artifact(self, make_artifact: MakeArtifact) -> str:
        return f"{make_artifact('present')}-missing-{uuid.uuid4().hex[:8]}"

    @pytest.fixture
    def build_registry(self, registry_options: dict[str, Any]) -> Callable[[], ModelRegistry]:
        if not self.registry_name:
            raise NotImplementedError("a RegistryContract subclass must set registry_name")
        factory = backends("registries")[self.registry_name].factory

        def build() -> ModelRegistry:
            registry: ModelRegistry = factory(**registry_options)
            return registry
        return build

    @pytest.fixture
    def registry(self, build_registry: Callable[[], ModelRegistry]) -> ModelRegistry:
        return build_registry()

    @pytest.fixture
    def second_registry(self, build_registry: Callable[[], ModelRegistry],
                        registry: ModelRegistry) -> ModelRegistry:
        return build_registry()

    @staticmethod
    def model_name() -> str:
        """A model name no other test uses."""
        return f"contract-{uuid.uuid4().hex[:8]}"

    # -- the Protocol ---------------------------------------------------------
    def test_implements_protocol(self, registry: ModelRegistry) -> None:
        assert isinstance(registry, ModelRegistry)

    def test_publish_returns_a_reference_that_exists(self, registry: ModelRegistry,
                                                     make_artifact: MakeArtifact) -> None:
        ref = registry.publish(self.model_name(), "1", make_artifact("one"))
        assert isinstance(ref, str) and ref, f"publish returned {ref!r}"
        assert registry.exists(ref) is True

    def test_versions_and_models_get_references_of_their_own(
            self, registry: ModelRegistry, make_artifact: MakeArtifact) -> None:
        name, other = self.model_name(), self.model_name()
        refs = [registry.publish(name, "1", make_artifact("a")),
                registry.publish(name, "2", make_artifact("b")),
                registry.publish(other, "1", make_artifact("c"))]
        assert len(set(refs)) == 3, refs
        assert all(registry.exists(ref) for ref in refs)

    def test_publishing_a_version_again_replaces_it(self, registry: ModelRegistry,
                                                    make_artifact: MakeArtifact) -> None:
        name = self.model_name()
        first = registry.publish(name, "1", make_artifact("first"))
        again = registry.publish(name, "1", make_artifact("second"))
        assert again == first and registry.exists(again)

    def test_a_reference_never_published_does_not_exist(
            self, registry: ModelRegistry, make_artifact: MakeArtifact) -> None:
        name = self.model_name()
        ref = registry.publish(name, "1", make_artifact("one"))
        never = ref.replace(name, self.model_name())
        assert never != ref
        assert registry.exists(never) is False
        assert registry.exists("") is False

    def test_another_process_sees_what_was_published(
            self, registry: ModelRegistry, second_registry: ModelRegistry,
            make_artifact: MakeArtifact) -> None:
        ref = registry.publish(self.model_name(), "3", make_artifact("shared"))
        assert second_registry.exists(ref) is True

    @pytest.mark.parametrize("name, version", [("Bad Name", "1"), ("m", "bad/version"),
                                               ("", "1")])
    def test_invalid_names_are_validation_errors(self, registry: ModelRegistry,
                                                 make_artifact: MakeArtifact, name: str,
                                                 version: str) -> None:
        artifact = make_artifact("valid")
        with pytest.raises(ValidationError):
            registry.publish(name, version, artifact)

    def test_a_missing_artifact_is_a_clipper_error(self, registry: ModelRegistry,
                                                   missing_artifact: str) -> None:
        """Backends raise the core's errors, never their SDK's."""
        name = self.model_name()
        with pytest.raises(ClipperException):
            registry.publish(name, "1", missing_artifact)
