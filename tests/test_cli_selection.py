"""``clipper policy set|show``: the parser, and the commands against a real
local_process cluster (models registered without replicas: the policy and its
weights are admin state, no model has to answer)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_cluster import running_cluster

from clipper_core.cli import build_parser, main
from clipper_core.cli_selection import describe
from clipper_core.connection import ClipperConnection

CLUSTER = "cli-policy"


def test_policy_set_parses_params_as_json_and_checks_the_threshold() -> None:
    args = build_parser().parse_args([
        "policy", "set", "web", "split", "--param", "salt=blue", "--param",
        'weights={"stable": 90, "canary": 10}', "--confidence-threshold", "0.6",
        "--cluster", "c1"])
    assert (args.command, args.policy_action, args.app, args.policy) == (
        "policy", "set", "web", "split")
    assert dict(args.param) == {"salt": "blue", "weights": {"stable": 90, "canary": 10}}
    assert args.confidence_threshold == 0.6 and args.cluster == "c1"
    for bad in (["policy", "set", "web", "exp3", "--confidence-threshold", "1.5"],
                ["policy", "set", "web", "exp3", "--param", "noequals"],
                ["policy"], ["policy", "show"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)


def test_every_policy_command_has_help_and_an_example(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    for argv in (["policy", "--help"], ["policy", "set", "--help"],
                 ["policy", "show", "--help"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)
        out = capsys.readouterr().out
        assert "examples:\n  clipper policy " in out


def test_describe_lists_each_linked_model_with_its_weight() -> None:
    text = describe("digits", {"selection_policy": "exp3", "policy_params": {"eta": 0.2},
                               "confidence_threshold": 0.0, "linked_models": ["a", "b"],
                               "weights": {"a": 0.75, "b": 0.25}, "user_states": 2})
    assert text.splitlines() == [
        "application digits: policy exp3 (eta=0.2), confidence threshold 0.0",
        f"  {'a':<32} weight 0.7500", f"  {'b':<32} weight 0.2500", "  per-user states: 2"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClipperConnection,
                                                                         list[str]]]:
    tmp = tmp_path_factory.mktemp("clipol")
    with running_cluster(tmp, CLUSTER) as conn:
        for name in ("m-a", "m-b"):
            conn.register_model(name, 1, "doubles")
        conn.register_application("app", "doubles", "-1", 100_000)
        conn.link_model_to_app("app", "m-a")
        yield conn, ["--cluster", CLUSTER, "--state-dir", str(Path(tmp) / CLUSTER)]


def clipper(cluster: tuple[ClipperConnection, list[str]], capsys: pytest.CaptureFixture[str],
            *argv: str) -> tuple[int, str, str]:
    code = main([*argv, *cluster[1]])
    out, err = capsys.readouterr()
    return code, out, err


def test_policy_set_and_show_against_a_cluster(cluster: Any,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    conn = cluster[0]
    code, out, _ = clipper(cluster, capsys, "policy", "set", "app", "exp3", "--param",
                           "eta=0.2", "--confidence-threshold", "0.25")
    assert code == 0 and "now selects models with 'exp3'" in out
    assert "policy exp3 (eta=0.2), confidence threshold 0.25" in out
    conn.link_model_to_app("app", "m-b")
    info = conn.get_app_info("app")
    assert info is not None and info["selection_policy"] == "exp3"
    assert info["policy_params"] == {"eta": 0.2} and info["confidence_threshold"] == 0.25
    code, out, _ = clipper(cluster, capsys, "policy", "show", "app", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["linked_models"] == ["m-a", "m-b"]
    assert shown["weights"] == {"m-a": pytest.approx(0.5), "m-b": pytest.approx(0.5)}
    # Same policy, no --param: the parameters stay; another policy: its defaults.
    assert clipper(cluster, capsys, "policy", "set", "app", "exp3")[0] == 0
    assert conn.get_app_info("app")["policy_params"] == {"eta": 0.2}
    code, out, _ = clipper(cluster, capsys, "policy", "show", "app")
    assert code == 0 and f"  {'m-b':<32} weight 0.5000" in out
    assert clipper(cluster, capsys, "policy", "set", "app", "split", "--param",
                   'weights={"m-a": 90, "m-b": 10}')[0] == 0
    code, out, _ = clipper(cluster, capsys, "policy", "show", "app")
    assert f"  {'m-a':<32} weight 0.9000" in out
    assert clipper(cluster, capsys, "policy", "set", "app", "exp4")[0] == 0
    assert conn.get_app_info("app")["policy_params"] == {}


def test_policy_set_refuses_what_the_admin_api_refuses(cluster: Any,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    code, _, err = clipper(cluster, capsys, "policy", "set", "app", "nope")
    assert code == 1 and "nope" in err and "exp4" in err
    code, _, err = clipper(cluster, capsys, "policy", "set", "app", "split", "--param",
                           'weights={"zz": 1}')
    assert code == 1 and "not linked" in err
    code, _, err = clipper(cluster, capsys, "policy", "show", "missing")
    assert code == 1 and "missing" in err
