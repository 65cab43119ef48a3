"""Built models on disk: the local equivalent of a model image.

An artifact is a directory::

    artifact.json   {"name", "version", "packages", "python"}
    model/          a copy of the model directory (func.pkl or predict.py, ...)
    venv/           only with pkgs_to_install: an isolated virtual environment

The virtual environment is made with ``--system-site-packages`` and also sees
the site-packages of the interpreter that built it (when that is itself a
virtual environment), so ``clipper_core.runtime`` and its dependencies import,
while the packages installed for the model stay private to it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import attrs

from clipper_core.errors import BuildError, ContainerError

ARTIFACT_FILE = "artifact.json"
MODEL_FILES = ("func.pkl", "predict.py")

Progress = Callable[[str], None]


def stderr_progress(message: str) -> None:
    """Default progress reporter: one line on stderr."""
    print(message, file=sys.stderr, flush=True)


@attrs.frozen(kw_only=True)
class Artifact:
    """A runnable model: where its files are and which Python runs it."""

    path: Path
    model_path: Path
    #: The venv's interpreter, or None to use the manager's.
    python: str | None = None
    packages: tuple[str, ...] = ()

    @classmethod
    def load(cls, reference: str) -> Artifact:
        """Read the artifact at ``reference``: an artifact directory, or a plain
        model directory (run with the manager's Python).  Raises ContainerError
        for anything else (this manager cannot run images)."""
        path = Path(reference).expanduser()
        meta = path / ARTIFACT_FILE
        if meta.is_file():
            data = json.loads(meta.read_text())
            python = path / "venv" / "bin" / "python" if data.get("venv") else None
            return cls(path=path, model_path=path / "model",
                       python=str(python) if python else None,
                       packages=tuple(data.get("packages") or ()))
        if path.is_dir() and any((path / f).exists() for f in MODEL_FILES):
            return cls(path=path, model_path=path)
        raise ContainerError(
            f"The local_process manager cannot run {reference!r}: it is neither a model "
            "artifact built by build_model nor a model directory holding func.pkl or "
            "predict.py (container images need the docker, k8s or nomad manager)",
            image=reference)


def build_artifact(name: str, version: str, model_data_path: str, staging_root: Path,
                   pkgs_to_install: list[str] | None, python: str,
                   progress: Progress = stderr_progress) -> Path:
    """Build an artifact for name:version in a new directory under
    ``staging_root``; return that directory (publish it with a registry).

    Raises :class:`BuildError` saying what failed (a missing model directory,
    the venv, or pip with its last output lines).
    """
    src = Path(model_data_path).expanduser()
    if not src.is_dir():
        raise BuildError(f"Model data path {model_data_path!r} is not a directory",
                         path=model_data_path)
    pkgs = list(pkgs_to_install or [])
    if not all(isinstance(p, str) and p.strip() for p in pkgs):
        raise BuildError("pkgs_to_install must be a list of package names (strings)",
                         packages=pkgs)
    staging_root.mkdir(parents=True, exist_ok=True)
    out = staging_root / f".staging-{name}-{version}-{uuid.uuid4().hex[:8]}"
    try:
        progress(f"Building model {name}:{version}: copying {src}")
        shutil.copytree(src, out / "model", symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        if pkgs:
            (out / "model" / "requirements.txt").write_text("\n".join(pkgs) + "\n")
            _make_venv(out / "venv", python, progress)
            _pip_install(out / "venv" / "bin" / "python", pkgs, progress)
        (out / ARTIFACT_FILE).write_text(json.dumps(
            {"name": name, "version": version, "packages": pkgs, "venv": bool(pkgs),
             "source": str(src.resolve())}, indent=1))
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return out


def _run(argv: list[str], what: str, progress: Progress, *, stream: bool = False) -> None:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip())
        if stream and line.strip():
            progress(f"  {line.rstrip()}")
    if proc.wait() != 0:
        tail = "\n".join(lines[-15:])
        raise BuildError(f"{what} failed (exit {proc.returncode}):\n{tail}", command=argv)


def _make_venv(venv: Path, python: str, progress: Progress) -> None:
    progress(f"  creating virtual environment {venv}")
    _run([python, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
         "Creating the model's virtual environment", progress)
    # Let the venv also see the builder's own site-packages (when the builder
    # runs in a virtual environment, --system-site-packages would skip them).
    query = ("import json, site, sys; print(json.dumps(site.getsitepackages() + "
             "[site.getusersitepackages()]))")
    parent_sites = json.loads(subprocess.check_output([python, "-c", query], text=True))
    venv_python = venv / "bin" / "python"
    own_site = subprocess.check_output(
        [str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True).strip()
    lines = [f"import site; site.addsitedir({p!r})" for p in parent_sites if Path(p).is_dir()]
    Path(own_site, "_clipper_parent_site.pth").write_text("\n".join(lines) + "\n")
    has_pip = subprocess.run([str(venv_python), "-c", "import pip"],
                             capture_output=True).returncode == 0
    if not has_pip:
        _run([str(venv_python), "-m", "ensurepip", "--default-pip"], "ensurepip", progress)


def _pip_install(venv_python: Path, pkgs: list[str], progress: Progress) -> None:
    progress(f"  pip install {' '.join(pkgs)}")
    _run([str(venv_python), "-m", "pip", "install", "--progress-bar", "off",
          "--disable-pip-version-check", *pkgs], f"pip install {' '.join(pkgs)}", progress,
         stream=True)
