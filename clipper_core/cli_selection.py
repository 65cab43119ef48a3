"""``clipper policy``: choose an application's selection policy and read its
current weights.

``clipper policy set APP POLICY`` calls the admin API's
``set_selection_policy`` (the policy must accept the app's linked models and
the parameters: a bad one is refused before anything is stored);
``clipper policy show APP`` prints the policy, its parameters, the
confidence threshold and each linked model's current weight.  Nothing heavy
is imported at module level, so ``clipper --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

#: ``_command(sub, name, summary, description, examples)`` of cli_args
CommandFactory = Callable[..., argparse.ArgumentParser]


def _param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``; the value read as JSON when it parses (``eta=0.2`` is a
    number, ``weights='{"a": 90, "b": 10}'`` an object), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def add_policy_commands(sub: Any, command: CommandFactory) -> None:
    """Add ``clipper policy set`` and ``clipper policy show`` to ``sub``
    (``command`` builds a command's parser with the global options)."""
    group = command(sub, "policy", "choose an application's selection policy; show its weights",
                    "Model selection: an application on a policy other than 'single' links "
                    "several models and the policy picks or combines them per query "
                    "(exp3, exp4, epsilon_greedy, split, shadow, or a plugin's).",
                    ["clipper policy set digits exp4 --confidence-threshold 0.6",
                     "clipper policy show digits"])
    actions = group.add_subparsers(dest="policy_action", required=True, metavar="ACTION")

    p = command(actions, "set", "set an application's selection policy and parameters",
                "Set APP's selection policy.  With --param, the parameters become exactly "
                "those given; without, they are kept when POLICY is the current policy and "
                "reset to the policy's defaults when it changes.  The policy must accept the "
                "app's linked models and the parameters ('single' serves one model).",
                ["clipper policy set digits exp3 --param eta=0.2",
                 "clipper policy set web split --param weights='{\"stable\": 90, "
                 "\"canary\": 10}'",
                 "clipper policy set digits exp4 --confidence-threshold 0.6"])
    p.set_defaults(command="policy")
    p.add_argument("app", metavar="APP", help="application name")
    p.add_argument("policy", metavar="POLICY",
                   help="a selection policy name (clipper plugins lists them)")
    p.add_argument("--param", action="append", type=_param, metavar="KEY=VALUE",
                   help="a policy parameter, read as JSON when it parses (repeatable)")
    p.add_argument("--confidence-threshold", type=_threshold, metavar="X",
                   help="below this confidence the default output answers (0 to 1)")

    p = command(actions, "show", "show an application's policy, parameters and weights",
                "Print APP's selection policy, its parameters, the confidence threshold "
                "and each linked model's current weight (from the policy state the query "
                "frontends learn through POST /APP/update).",
                ["clipper policy show digits", "clipper policy show digits --json"])
    p.set_defaults(command="policy")
    p.add_argument("app", metavar="APP", help="application name")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def set_policy(conn: Any, app: str, policy: str, params: dict[str, Any] | None,
               threshold: float | None) -> dict[str, Any]:
    """Apply ``clipper policy set`` through ``conn``; the app's new weights."""
    current = conn.get_selection_weights(app)  # NotFoundError for an unknown app
    if params is None:
        params = (dict(current.get("policy_params") or {})
                  if current.get("selection_policy") == policy else {})
    conn.set_selection_policy(app, policy, policy_params=params,
                              confidence_threshold=threshold)
    shown: dict[str, Any] = conn.get_selection_weights(app)
    return shown


def describe(app: str, info: dict[str, Any]) -> str:
    """``clipper policy show`` as text."""
    params = info.get("policy_params") or {}
    shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(params.items())) or "defaults"
    lines = [f"application {app}: policy {info.get('selection_policy')} ({shown}), "
             f"confidence threshold {info.get('confidence_threshold', 0.0)}"]
    weights = info.get("weights") or {}
    if not info.get("linked_models"):
        lines.append("  no linked models")
    for model in info.get("linked_models") or []:
        lines.append(f"  {model:<32} weight {float(weights.get(model, 0.0)):.4f}")
    if info.get("user_states"):
        lines.append(f"  per-user states: {info['user_states']}")
    if info.get("error"):
        lines.append(f"  error: {info['error']}")
    return "\n".join(lines)


def cmd_policy(args: argparse.Namespace, connect: Callable[[argparse.Namespace], Any]) -> int:
    """``clipper policy set|show``; ``connect(args)`` gives a connected
    ClipperConnection (the CLI's own, passed in: this module is imported by it)."""
    from clipper_core.models import validate_name

    validate_name("application name", args.app)
    conn = connect(args)
    if args.policy_action == "set":
        params = dict(args.param) if args.param else None
        info = set_policy(conn, args.app, args.policy, params, args.confidence_threshold)
        print(f"Application {args.app!r} now selects models with {args.policy!r}.")
        print(describe(args.app, info))
        return 0
    info = conn.get_selection_weights(args.app)
    print(json.dumps(info, indent=2) if args.json else describe(args.app, info))
    return 0
