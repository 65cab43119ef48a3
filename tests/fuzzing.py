"""Schemathesis against a live API from its OpenAPI document, with bounded examples.

:func:`fuzz` sends, for every operation of the document, ``examples``
generated requests that follow the schemas (positive) and as many that break
them (negative), and checks every answer: no 5xx, a documented status and
content type, a body and headers that conform to the document, and, for the
negative ones, a 4xx.  It returns the failures, one line each, so a test can
show all of them at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import hypothesis
import hypothesis.errors
import schemathesis
from hypothesis import HealthCheck, strategies
from schemathesis import GenerationMode
from schemathesis import checks as sc
from schemathesis.core.failures import FailureGroup

CHECKS = [sc.not_a_server_error, sc.status_code_conformance, sc.content_type_conformance,
          sc.response_schema_conformance, sc.response_headers_conformance]


def fuzz(document: dict[str, Any], base_url: str, *, examples: int,
         headers: Mapping[str, str] | None = None,
         path_values: Mapping[str, list[str]] | None = None) -> list[str]:
    """Fuzz every operation of ``document`` at ``base_url``; the failures.

    :param path_values: for a path parameter, real values (e.g. registered
        application names) to use besides generated ones, so that requests
        reach more than the 404 of an unknown name.
    """
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            cases = _cases(operation, mode, path_values or {})
            failures += _run(operation.label, mode, cases, base_url, dict(headers or {}),
                             examples)
    return failures


def _cases(operation: Any, mode: GenerationMode, path_values: Mapping[str, list[str]]) -> Any:
    options = [operation.as_strategy(generation_mode=mode)]
    names = [p.name for p in operation.path_parameters]
    for name in names:
        for value in path_values.get(name, []):
            options.append(operation.as_strategy(generation_mode=mode,
                                                 path_parameters={name: value}))
    return strategies.one_of(options)


def _run(label: str, mode: GenerationMode, cases: Any, base_url: str,
         headers: dict[str, str], examples: int) -> list[str]:
    failures: list[str] = []
    checks = [*CHECKS, sc.negative_data_rejection] if mode is GenerationMode.NEGATIVE \
        else CHECKS

    @hypothesis.settings(max_examples=examples, deadline=None, database=None,
                         derandomize=True, suppress_health_check=list(HealthCheck),
                         phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
    @hypothesis.given(case=cases)
    def run(case: Any) -> None:
        try:
            case.call_and_validate(base_url=base_url, headers=headers, checks=checks,
                                   timeout=30)
        except (Exception, FailureGroup) as exc:  # noqa: BLE001 - collected and shown
            text = " ".join(str(exc).split())
            line = f"{label} [{mode.value}]: {text[:600]}"
            if line not in failures:
                failures.append(line)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        # Nothing of this mode exists (e.g. no negative request of an
        # operation without parameters or body): nothing to send.
        pass
    return failures
