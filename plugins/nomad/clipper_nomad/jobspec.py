"""The Nomad JSON job specification, as a schema plus the cross-field rules.

Written from Nomad's documentation of the JSON job format (the body of
``POST /v1/jobs``) and the job/group/task/service/check/restart/network/
template blocks.  Only the fields clipper-nomad uses, and their documented
neighbours, are listed; an unknown field is rejected, so a typo in a job
builder ("Service" for "Services") fails here instead of being silently
ignored by Nomad.  Durations are integers in nanoseconds, as in the API.

:func:`job_problems` lists what is wrong with a job; :func:`validate_job`
raises :class:`~clipper_core.errors.ValidationError` with all of them.  The
fake Nomad API used by the tests applies the same rules and answers 400.
"""

from __future__ import annotations

import re
from typing import Any

from clipper_core.errors import ValidationError

SECOND = 1_000_000_000

_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_STR_LIST = {"type": ["array", "null"], "items": _STR}
_STR_MAP = {"type": ["object", "null"], "additionalProperties": _STR}
_DURATION = {"type": "integer", "minimum": 0}


def _obj(props: dict[str, Any], required: tuple[str, ...] = (), *,
         nullable: bool = True) -> dict[str, Any]:
    return {"type": ["object", "null"] if nullable else "object", "properties": props,
            "required": list(required), "additionalProperties": False}


def _list(item: dict[str, Any], *, min_items: int = 0) -> dict[str, Any]:
    return {"type": ["array", "null"], "items": item, "minItems": min_items}


_PORT = _obj({
    "Label": {"type": "string", "pattern": r"^[a-zA-Z0-9_]+$"},
    "Value": {"type": "integer", "minimum": 0, "maximum": 65535},
    "To": {"type": "integer", "minimum": -1, "maximum": 65535},
    "HostNetwork": _STR,
}, ("Label",), nullable=False)

_NETWORK = _obj({
    "Mode": {"type": "string", "pattern": r"^(host|bridge|none|cni/.+)$"},
    "DynamicPorts": _list(_PORT),
    "ReservedPorts": _list(_PORT),
    "MBits": _INT,
    "Hostname": _STR,
}, nullable=False)

_CHECK = {
    **_obj({
        "Name": _STR,
        "Type": {"enum": ["http", "tcp", "grpc", "script"]},
        "Path": _STR,
        "Method": {"enum": ["GET", "POST", "HEAD", "PUT"]},
        "Protocol": {"enum": ["http", "https"]},
        "PortLabel": _STR,
        "Interval": {"type": "integer", "minimum": SECOND},
        "Timeout": {"type": "integer", "minimum": SECOND},
        "Header": {"type": ["object", "null"],
                   "additionalProperties": {"type": "array", "items": _STR}},
        "OnUpdate": {"enum": ["require_healthy", "ignore_warnings", "ignore"]},
        "SuccessBeforePassing": {"type": "integer", "minimum": 0},
        "FailuresBeforeCritical": {"type": "integer", "minimum": 0},
    }, ("Type", "Interval", "Timeout"), nullable=False),
    "allOf": [{"if": {"properties": {"Type": {"const": "http"}}},
               "then": {"required": ["Path"]}}],
}

_SERVICE = _obj({
    "Name": {"type": "string", "pattern": r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"},
    "PortLabel": _STR,
    "Provider": {"enum": ["nomad", "consul"]},
    "AddressMode": {"enum": ["auto", "host", "driver", "alloc"]},
    "Address": _STR,
    "Tags": _STR_LIST,
    "Meta": _STR_MAP,
    "Checks": _list(_CHECK),
}, ("Name",), nullable=False)

_RESTART = _obj({
    "Attempts": {"type": "integer", "minimum": -1},
    "Interval": _DURATION,
    "Delay": _DURATION,
    "Mode": {"enum": ["delay", "fail"]},
    "RenderTemplates": _BOOL,
})

_RESCHEDULE = _obj({
    "Attempts": {"type": "integer", "minimum": 0},
    "Interval": _DURATION,
    "Delay": _DURATION,
    "DelayFunction": {"enum": ["constant", "exponential", "fibonacci"]},
    "MaxDelay": _DURATION,
    "Unlimited": _BOOL,
})

_UPDATE = _obj({
    "MaxParallel": {"type": "integer", "minimum": 0},
    "HealthCheck": {"enum": ["checks", "task_states", "manual"]},
    "MinHealthyTime": _DURATION,
    "HealthyDeadline": _DURATION,
    "ProgressDeadline": _DURATION,
    "AutoRevert": _BOOL,
    "AutoPromote": _BOOL,
    "Canary": {"type": "integer", "minimum": 0},
    "Stagger": _DURATION,
})

_TEMPLATE = _obj({
    "EmbeddedTmpl": _STR,
    "SourcePath": _STR,
    "DestPath": {"type": "string", "minLength": 1},
    "ChangeMode": {"enum": ["restart", "noop", "signal", "script"]},
    "ChangeSignal": _STR,
    "Envvars": _BOOL,
    "Perms": _STR,
    "Splay": _DURATION,
    "LeftDelim": _STR,
    "RightDelim": _STR,
}, ("DestPath",), nullable=False)

_RESOURCES = _obj({
    "CPU": {"type": "integer", "minimum": 1},
    "Cores": {"type": ["integer", "null"], "minimum": 0},
    "MemoryMB": {"type": "integer", "minimum": 10},
    "MemoryMaxMB": {"type": ["integer", "null"], "minimum": 0},
    "DiskMB": {"type": ["integer", "null"], "minimum": 0},
}, ("CPU", "MemoryMB"), nullable=False)

_CONSTRAINT = _obj({"LTarget": _STR, "RTarget": _STR, "Operand": _STR}, ("Operand",),
                   nullable=False)

_TASK = _obj({
    "Name": {"type": "string", "minLength": 1},
    "Driver": {"type": "string", "minLength": 1},
    "User": _STR,
    "Config": {"type": "object"},
    "Env": _STR_MAP,
    "Services": _list(_SERVICE),
    "Resources": _RESOURCES,
    "RestartPolicy": _RESTART,
    "Templates": _list(_TEMPLATE),
    "Meta": _STR_MAP,
    "KillTimeout": _DURATION,
    "KillSignal": _STR,
    "LogConfig": _obj({"MaxFiles": {"type": "integer", "minimum": 1},
                       "MaxFileSizeMB": {"type": "integer", "minimum": 1}}),
    "Constraints": _list(_CONSTRAINT),
    "Leader": _BOOL,
}, ("Name", "Driver", "Config", "Resources"), nullable=False)

_GROUP = _obj({
    "Name": {"type": "string", "minLength": 1},
    "Count": {"type": "integer", "minimum": 0},
    "Tasks": _list(_TASK, min_items=1),
    "Networks": _list(_NETWORK),
    "Services": _list(_SERVICE),
    "RestartPolicy": _RESTART,
    "ReschedulePolicy": _RESCHEDULE,
    "Update": _UPDATE,
    "Meta": _STR_MAP,
    "Constraints": _list(_CONSTRAINT),
    "EphemeralDisk": _obj({"SizeMB": _INT, "Sticky": _BOOL, "Migrate": _BOOL}),
}, ("Name", "Count", "Tasks"), nullable=False)

#: JSON schema (draft 7) of a Nomad job as sent to ``POST /v1/jobs``.
JOB_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    **_obj({
        "ID": {"type": "string", "minLength": 1, "pattern": r"^[^\s\x00]+$"},
        "Name": {"type": "string", "minLength": 1},
        "Type": {"enum": ["service", "batch", "system", "sysbatch"]},
        "Region": _STR,
        "Namespace": _STR,
        "Priority": {"type": "integer", "minimum": 1, "maximum": 100},
        "Datacenters": {"type": "array", "items": {"type": "string", "minLength": 1},
                        "minItems": 1},
        "NodePool": _STR,
        "TaskGroups": {"type": "array", "items": _GROUP, "minItems": 1},
        "Update": _UPDATE,
        "Meta": _STR_MAP,
        "Constraints": _list(_CONSTRAINT),
        "AllAtOnce": _BOOL,
    }, ("ID", "Name", "Type", "Datacenters", "TaskGroups"), nullable=False),
}


def job_problems(job: object) -> list[str]:
    """Every reason Nomad would refuse ``job`` (the inner job dict), or []."""
    import jsonschema

    validator = jsonschema.Draft7Validator(JOB_SCHEMA)
    problems = [f"{_where(err.absolute_path)}: {err.message}"
                for err in sorted(validator.iter_errors(job), key=lambda e: list(e.path))]
    if problems or not isinstance(job, dict):
        return problems
    return _semantic_problems(job)


def validate_job(job: object) -> None:
    """Raise ValidationError listing every problem of ``job``; return if valid."""
    problems = job_problems(job)
    if problems:
        name = job.get("ID", "?") if isinstance(job, dict) else "?"
        raise ValidationError(f"Invalid Nomad job {name!r}: " + "; ".join(problems),
                              job=name, problems=problems)


def _where(path: Any) -> str:
    out = "Job"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


_INTERP = re.compile(r"\$\{NOMAD_(?:PORT|ADDR|IP|HOST_PORT|HOST_IP|HOST_ADDR|ALLOC_PORT)_([A-Za-z0-9_]+)\}")


def _semantic_problems(job: dict[str, Any]) -> list[str]:
    """Rules the schema cannot say: unique names, known port labels, restart budget."""
    problems: list[str] = []
    seen_groups: set[str] = set()
    for gi, group in enumerate(job["TaskGroups"]):
        where = f"Job.TaskGroups[{gi}]"
        if group["Name"] in seen_groups:
            problems.append(f"{where}: duplicate task group name {group['Name']!r}")
        seen_groups.add(group["Name"])
        labels: set[str] = set()
        for net in group.get("Networks") or ():
            for port in (net.get("DynamicPorts") or []) + (net.get("ReservedPorts") or []):
                if port["Label"] in labels:
                    problems.append(f"{where}: port label {port['Label']!r} defined twice")
                labels.add(port["Label"])
        problems += _restart_problems(f"{where}.RestartPolicy", group.get("RestartPolicy"))
        problems += _update_problems(f"{where}.Update", group.get("Update"))
        problems += _service_problems(where, group.get("Services"), labels)
        seen_tasks: set[str] = set()
        for ti, task in enumerate(group["Tasks"]):
            twhere = f"{where}.Tasks[{ti}]"
            if task["Name"] in seen_tasks:
                problems.append(f"{twhere}: duplicate task name {task['Name']!r}")
            seen_tasks.add(task["Name"])
            problems += _restart_problems(f"{twhere}.RestartPolicy", task.get("RestartPolicy"))
            problems += _service_problems(twhere, task.get("Services"), labels)
            problems += _driver_problems(twhere, task, labels)
            for tmpl in task.get("Templates") or ():
                if not tmpl.get("EmbeddedTmpl") and not tmpl.get("SourcePath"):
                    problems.append(f"{twhere}.Templates: one of EmbeddedTmpl or SourcePath "
                                    "is required")
    return problems


def _restart_problems(where: str, policy: dict[str, Any] | None) -> list[str]:
    if not policy:
        return []
    attempts, delay, interval = (policy.get("Attempts", 0), policy.get("Delay", 0),
                                 policy.get("Interval", 0))
    if interval and attempts > 0 and attempts * delay > interval:
        return [f"{where}: Nomad can't restart the task {attempts} times in an interval "
                f"of {interval / SECOND:g}s with a delay of {delay / SECOND:g}s"]
    return []


def _update_problems(where: str, update: dict[str, Any] | None) -> list[str]:
    if not update:
        return []
    problems = []
    min_healthy, healthy = update.get("MinHealthyTime"), update.get("HealthyDeadline")
    progress = update.get("ProgressDeadline")
    if min_healthy is not None and healthy is not None and min_healthy >= healthy:
        problems.append(f"{where}: Minimum healthy time must be less than healthy deadline")
    if progress and healthy is not None and healthy >= progress:
        problems.append(f"{where}: Healthy deadline must be less than progress deadline")
    return problems


def _service_problems(where: str, services: list[dict[str, Any]] | None,
                      labels: set[str]) -> list[str]:
    problems = []
    for si, svc in enumerate(services or ()):
        port = svc.get("PortLabel")
        if port and not port.isdigit() and port not in labels:
            problems.append(f"{where}.Services[{si}]: port label {port!r} is not defined in "
                            "the group's network")
        for ci, check in enumerate(svc.get("Checks") or ()):
            cport = check.get("PortLabel")
            if cport and not cport.isdigit() and cport not in labels:
                problems.append(f"{where}.Services[{si}].Checks[{ci}]: port label {cport!r} "
                                "is not defined in the group's network")
            if check.get("Type") in ("http", "tcp") and not (cport or port):
                problems.append(f"{where}.Services[{si}].Checks[{ci}]: a {check['Type']} "
                                "check needs a port")
            if svc.get("Provider") == "nomad" and check.get("Type") not in ("http", "tcp"):
                problems.append(f"{where}.Services[{si}].Checks[{ci}]: the nomad service "
                                "provider only supports http and tcp checks")
    return problems


def _driver_problems(where: str, task: dict[str, Any], labels: set[str]) -> list[str]:
    problems = []
    config, driver = task["Config"], task["Driver"]
    if driver == "docker":
        if not isinstance(config.get("image"), str) or not config.get("image"):
            problems.append(f"{where}.Config: the docker driver needs a string 'image'")
        entrypoint = config.get("entrypoint")
        if entrypoint is not None and (not isinstance(entrypoint, list) or not all(
                isinstance(a, str) for a in entrypoint)):
            problems.append(f"{where}.Config.entrypoint: must be a list of strings")
        for port in config.get("ports") or ():
            if port not in labels:
                problems.append(f"{where}.Config.ports: port label {port!r} is not defined "
                                "in the group's network")
    elif driver in ("raw_exec", "exec"):
        if not isinstance(config.get("command"), str) or not config.get("command"):
            problems.append(f"{where}.Config: the {driver} driver needs a string 'command'")
    args = config.get("args")
    if args is not None and (not isinstance(args, list)
                             or not all(isinstance(a, str) for a in args)):
        problems.append(f"{where}.Config.args: must be a list of strings")
    texts = list(args or []) if isinstance(args, list) else []
    texts += list((task.get("Env") or {}).values())
    for text in texts:
        for label in _INTERP.findall(str(text)):
            if label not in labels:
                problems.append(f"{where}: ${{NOMAD_*_{label}}} refers to an undefined "
                                f"port label {label!r}")
    return problems
