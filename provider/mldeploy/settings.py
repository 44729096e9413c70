"""Where things are on this machine: the state directory and the local endpoints.

Read from the environment each time a provider method runs (providers keep
nothing on ``self``, since they are pickled into state). ``scripts/lib.sh``
sets the same variables for the Makefile and for running pulumi by hand.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


def _default_home() -> Path:
    env = os.environ.get("MLDEPLOY_HOME")
    if env:
        return Path(env)
    # An editable install: <repo>/provider/mldeploy/settings.py -> <repo>/.mldeploy
    here = Path(__file__).resolve()
    repo = here.parents[2]
    if (repo / "pyproject.toml").exists() and (repo / "scripts" / "lib.sh").exists():
        return repo / ".mldeploy"
    return Path.home() / ".mldeploy"


def private_umask() -> None:
    """Everything this process creates from now on is private to its user (0600 files, 0700 dirs).

    Every provider method starts with ``Settings.from_env()``, so the state, logs, caches and the
    MLflow artifact store the provider writes are private even when pulumi was not started from
    ``scripts/lib.sh`` (which sets ``umask 077`` too). It only ever tightens the umask.
    """
    os.umask(os.umask(0o077) | 0o077)


def swarm_publish_mode() -> str:
    """Where swarm fronts listen, as the environment asks (``MLDEPLOY_SWARM_PUBLISH_MODE``; ``loopback`` unless set).

    Unchecked here (``docker_swarm.publish_mode`` refuses a bad value at deploy): ``diff`` compares it with the mode a
    deployment was made in, so that changing it updates the deployment."""
    return os.environ.get("MLDEPLOY_SWARM_PUBLISH_MODE") or "loopback"


@dataclass(frozen=True)
class Settings:
    """The local target's locations. All of it lives under ``home``.

    A plain dataclass, not a pydantic model: every provider call and the program read it, and it
    validates nothing (``from_env`` builds it from the environment), so it must not cost pydantic's import.
    """

    home: Path
    registry: str
    wheelhouse: Path
    base_os_image: str
    # Where image builds run (``make setup`` writes registry/build.json; README "Security model").
    build_network: str = "host"

    @classmethod
    def from_env(cls) -> "Settings":
        private_umask()
        home = _default_home()
        port = os.environ.get("MLDEPLOY_REGISTRY_PORT", "5000")
        try:
            build = json.loads((home / "registry" / "build.json").read_text())
        except (OSError, ValueError):
            build = {}  # a setup from before build networks: builds on the host network
        return cls(
            home=home,
            registry=os.environ.get("MLDEPLOY_REGISTRY", f"127.0.0.1:{port}"),
            wheelhouse=Path(os.environ.get("MLDEPLOY_WHEELHOUSE", str(home / "wheelhouse"))),
            base_os_image=os.environ.get("MLDEPLOY_BASE_OS_IMAGE", "mldeploy/debian:bookworm"),
            build_network=build.get("network") or "host",
        )

    @property
    def registry_dir(self) -> Path:
        return self.home / "registry"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def wheelhouse_url(self) -> str:
        """The wheelhouse as image builds see it: on their loopback (the wheelhouse container's, or the host's)."""
        return f"http://{self.registry}/wheels/"
