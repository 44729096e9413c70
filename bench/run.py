"""make bench: how long mldeploy's `pulumi up` takes, against Pulumi's own floor and the same work done by hand.

    make bench                          # full run: 5 repetitions, 1 GB model, scale 1/10/50
    python bench/run.py --quick         # 2 repetitions (1 for cold ups), 100 MB model, scale 1/10
    python bench/run.py --reps 3        # repetitions for every scenario
    python bench/run.py --only floor,noop,serving     # a subset (see SCENARIOS)

Run it from `make bench` (or after `source scripts/lib.sh`): it needs the
project's PATH, the Pulumi file backend and Docker, as `make demo` does.

Scenarios (all on copies of stacks/demo in a temporary directory, with their
own project name `mldeploy-bench`, stack names, service names and ports
18990-18994, so they never touch the demo's stack `local` on port 8890):

  floor      the true floor: `pulumi preview` / `up` of an empty program run with a virtualenv
             holding only the pulumi SDK (made by the bench, cached under .mldeploy/cache);
             beside it the same empty program in the project's .venv, one importing mldeploy,
             and the floor without PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION
  noop       no-op `preview` and `up` of the demo stack; the preview again as a user's own shell
             runs it (.venv on PATH, no guard variable); one more run profiled (bench/pyprof)
  serving    wrk against `/score` of the deployed container vs the same score.py served on the host
  edit       `up` after a score.py edit, and after a Dockerfile edit, each vs the raw equivalent
  bigmodel   no-op `preview` with a 1 GB file in the model (digest cache hit, and after `touch`: a miss)
  cold       `up` of a fresh stack vs the raw script (layer cache busted on both sides), then `destroy`
  coldwarm   the same with Docker's layer cache warm on both sides (fresh stack and repositories)
  scale      `preview` and no-op `up` with 1, 10 and 50 ModelVersions in one stack

Every `pulumi up` runs as `make demo` runs it: `pulumi up --yes --skip-preview`, in make's
environment (scripts/lib.sh: .venv first on PATH, automatic plugin downloads off).
No-op runs alternate with a floor run (floor first on odd repetitions); their ratio
is the median of the per-repetition ratios, so a machine whose load changes during
the run still compares like with like. CPU seconds (user+sys of pulumi and all its
processes) are recorded beside the wall times.
No-op runs pass `--expect-no-changes`, so a run that would change something fails
the benchmark instead of timing the wrong thing.

Fairness of the cold runs (scenario cold): each repetition gets a fresh stack,
fresh service name and so fresh registry repositories (nothing to adopt), and
a copy of base/Dockerfile with one `LABEL bench.nonce=<random>` line after FROM,
different on each side and repetition. That busts Docker's layer cache for
every step after FROM on both sides alike: apt-get and pip really run, the
base OS image is present (as it is after `make setup`). The raw script
(bench/raw_docker.py) builds the same Dockerfile and the same derived layers.
Scenario coldwarm is the same without the nonce: both sides hit the layer cache.

Ratios for `up`s that do real work are against raw + the floor's `up`
(the issue's floor: the raw work itself plus Pulumi's own overhead), and also
against the raw work alone.

Results: a table on stdout, bench/results/latest.{json,md} (quick runs:
bench/results/quick.{json,md}; with --only, *-partial.{json,md}). Everything created is removed at the end
(stacks, containers, images, registry manifests, identities, temporary
directories), also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "stacks" / "demo"
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "bench"))

import pyprof  # noqa: E402
import raw_docker  # noqa: E402

SCENARIOS = ("floor", "noop", "serving", "edit", "bigmodel", "cold", "coldwarm", "scale")
PROJECT = "mldeploy-bench"
PORT_STACK, PORT_RAW, PORT_HOST, PORT_COLD, PORT_RAW_COLD = 18990, 18991, 18992, 18993, 18994
GUARD = "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"
BODY = '{"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def nonce() -> str:
    return uuid.uuid4().hex[:8]


def stale_bytecode(package: Path) -> list[str]:
    """The package's modules whose __pycache__ bytecode is missing or older than the source."""
    import importlib.util

    stale = []
    for src in sorted(package.rglob("*.py")):
        pyc = Path(importlib.util.cache_from_source(str(src)))
        if not pyc.exists() or pyc.stat().st_mtime < src.stat().st_mtime:
            stale.append(str(src.relative_to(package.parent)))
    return stale


# -- results -------------------------------------------------------------------------------
@dataclass
class Row:
    key: str
    label: str
    unit: str = "s"
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    def as_dict(self) -> dict[str, Any]:
        s = self.samples
        return {"key": self.key, "label": self.label, "unit": self.unit, "n": len(s), "samples": [round(x, 4) for x in s],
                "median": round(statistics.median(s), 4) if s else None,
                "min": round(min(s), 4) if s else None, "max": round(max(s), 4) if s else None}


@dataclass
class Ratio:
    label: str
    num: str
    den: str
    target: str = ""              # e.g. "<= 1.5" or ">= 0.95"; empty: reported only
    value: float | None = None
    paired: bool = False          # the median of per-repetition ratios (each sample over the floor run next to it)

    def met(self) -> bool | None:
        if self.value is None or not self.target:
            return None
        op, bound = self.target.split()
        return self.value <= float(bound) if op == "<=" else self.value >= float(bound)


class Results:
    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.ratios: list[Ratio] = []
        self.notes: list[str] = []
        self.errors: list[str] = []
        self.pairs: dict[str, list[float]] = {}
        self.steps: list[dict[str, Any]] = []  # measured step costs (where the time over the floor goes)

    def pair(self, key: str, num: float, den: float) -> None:
        """One repetition's ratio: a scenario sample over the floor sample taken right before or after it."""
        self.pairs.setdefault(key, []).append(num / den)

    def add(self, key: str, label: str, value: float, unit: str = "s") -> None:
        self.rows.setdefault(key, Row(key, label, unit)).samples.append(value)

    def ratio(self, label: str, num: str, den: str, target: str = "", paired: bool = False) -> None:
        self.ratios.append(Ratio(label, num, den, target, paired=paired))

    def compute(self) -> None:
        for r in self.ratios:
            if r.paired:
                got = self.pairs.get(f"{r.num}/{r.den}")
                r.value = statistics.median(got) if got else None
                continue
            a = self.rows.get(r.num)
            dens = [self.rows.get(k) for k in r.den.split("+")]  # "x+y": the sum of the medians (raw work + Pulumi's floor)
            if a and a.median is not None and all(d and d.median for d in dens):
                r.value = a.median / sum(d.median for d in dens)  # type: ignore[union-attr,misc]


# -- pulumi ------------------------------------------------------------------------------------
class PulumiFailed(RuntimeError):
    pass


LOG: Path | None = None  # every pulumi command's output, appended (set by Bench)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


@dataclass
class Stack:
    dir: Path
    name: str
    created: bool = False
    env: dict[str, str] | None = None  # None: the bench's own environment (make's: scripts/lib.sh)
    last_cpu: float = 0.0             # CPU seconds (user+sys) of the last command and its processes

    def run(self, *args: str, timeout: float = 1800) -> tuple[float, str]:
        cmd = ["pulumi", *args, "--non-interactive", "--cwd", str(self.dir), "--stack", self.name]
        c0, t0 = _cpu(), time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=self.env)
        took = time.perf_counter() - t0
        self.last_cpu = _cpu() - c0
        if LOG is not None:
            with open(LOG, "a", encoding="utf-8") as f:
                f.write(f"\n$ {' '.join(cmd)}   # exit {proc.returncode}, {took:.2f}s\n{proc.stdout}{proc.stderr}")
        if proc.returncode != 0:
            raise PulumiFailed(f"{' '.join(cmd)} exited {proc.returncode} after {took:.1f}s\n{(proc.stdout + proc.stderr)[-5000:]}")
        return took, proc.stdout

    def init(self, config: dict[str, str] | None = None) -> "Stack":
        subprocess.run(["pulumi", "stack", "init", self.name, "--non-interactive", "--cwd", str(self.dir)],
                       check=True, capture_output=True, text=True, env=self.env)
        self.created = True
        for k, v in (config or {}).items():
            self.run("config", "set", k, v)
        return self

    def preview(self, noop: bool = True) -> float:
        return self.run("preview", *(["--expect-no-changes"] if noop else []))[0]

    def up(self, noop: bool = False) -> float:
        return self.run("up", "--yes", "--skip-preview", *(["--expect-no-changes"] if noop else []))[0]

    def destroy(self) -> float:
        return self.run("destroy", "--yes", "--skip-preview")[0]

    def export(self) -> dict[str, Any]:
        return json.loads(self.run("stack", "export")[1])

    def remove(self) -> None:
        """Destroy (if anything is left) and remove the stack. Best effort: used in cleanup."""
        if not self.created:
            return
        for args in (["destroy", "--yes", "--skip-preview"], ["stack", "rm", "--yes", "--force"]):
            try:
                self.run(*args)
            except (PulumiFailed, subprocess.TimeoutExpired) as exc:
                say(f"cleanup of stack {self.name}: {str(exc).splitlines()[0]}")
        self.created = False


#: The demo's resource graph with providers that do nothing (the SDK's default check and diff; create echoes its
#: inputs): two identities and a model, a base image using the push identity, a deployment using all of them. Its
#: no-op costs what the engine and a Python dynamic provider cost for that graph, whatever the provider does.
DYNAMIC_FLOOR = """\
import pulumi
from pulumi import dynamic


class Nothing(dynamic.ResourceProvider):
    def create(self, props):
        return dynamic.CreateResult(props["name"], {**props, "out": props["name"]})


class Thing(dynamic.Resource):
    out: pulumi.Output[str]

    def __init__(self, name, **inputs):
        super().__init__(Nothing(), name, {"name": name, "out": None, **inputs})


push, pull, model = Thing("push"), Thing("pull"), Thing("model")
base = Thing("base", user=push.out)
Thing("deployment", base=base.out, push=push.out, pull=pull.out, model=model.out)
"""

#: The same providers, 50 resources without dependencies (as the scale scenario's 50 ModelVersions).
DYNAMIC_FLOOR_50 = DYNAMIC_FLOOR.split("push, pull, model =")[0] + "for i in range(50):\n    Thing(f\"m{i}\")\n"


def demo_copy(dest: Path, port: int, cache_bust: str | None = None) -> Path:
    """A copy of stacks/demo with its own project name and port; optionally a cache-busting LABEL in base/Dockerfile."""
    shutil.copytree(DEMO, dest, ignore=shutil.ignore_patterns("Pulumi.*.yaml", "__pycache__", ".venv"))
    py = (dest / "Pulumi.yaml").read_text()
    (dest / "Pulumi.yaml").write_text(re.sub(r"(?m)^name: .*$", f"name: {PROJECT}", py))
    dc = json.loads((dest / "deploymentconfig.json").read_text())
    dc["port"] = port
    (dest / "deploymentconfig.json").write_text(json.dumps(dc, indent=3) + "\n")
    if cache_bust:
        bust_cache(dest / "base" / "Dockerfile", cache_bust)
    return dest


def bust_cache(dockerfile: Path, value: str) -> None:
    lines = dockerfile.read_text().splitlines(keepends=True)
    out, done = [], False
    for line in lines:
        out.append(line)
        if not done and re.match(r"^\s*FROM\s", line, re.I):
            out.append(f"LABEL bench.nonce={value}\n")
            done = True
    assert done, f"no FROM line in {dockerfile}"
    dockerfile.write_text("".join(out))


def environment_lock(state: dict[str, Any], cache_dir: Path) -> str:
    """The deployment's pinned lock as a pip requirements file with hashes.

    The state carries the lock's summary (``environment``: its digest, wheel count and named
    packages); the lock itself is in the cache by digest (``mldeploy.environment.load_lock``).
    """
    from mldeploy.environment import load_lock

    for res in state["deployment"].get("resources", []):
        summary = (res.get("outputs") or {}).get("environment")
        if isinstance(summary, dict) and isinstance(summary.get("digest"), str):
            lock = load_lock(cache_dir, summary["digest"])
            if lock is None:
                raise RuntimeError(f"the lock {summary['digest']} is not in {cache_dir}")
            return lock.requirements_txt()
    raise RuntimeError("no environment summary found in the stack's state")


# -- the bench ---------------------------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quick: bool = args.quick
        self.reps: int = args.reps or (2 if self.quick else 5)
        self.cold_reps: int = args.reps or (1 if self.quick else 3)
        self.big_mb: int = args.big_mb or (100 if self.quick else 1024)
        self.scale: list[int] = [1, 10] if self.quick else [1, 10, 50]
        self.only = set(args.only.split(",")) if args.only else set(SCENARIOS)
        self.res = Results()
        self.tmp = Path(tempfile.mkdtemp(prefix="mldeploy-bench-"))
        self.tag = nonce()
        self.cleanups: list[tuple[str, Callable[[], None]]] = []
        self.stack_w: Stack | None = None
        self.stack_f: Stack | None = None
        self.lock_text: str | None = None
        self.auth: dict[str, str] | None = None
        self.machine: dict[str, Any] = {}
        self.services: list[str] = []
        self.defer("local images left by destroyed stacks", self.remove_local_images)
        from mldeploy.settings import Settings

        self.settings = Settings.from_env()
        global LOG
        LOG = self.settings.logs_dir / "bench" / f"bench-{dt.datetime.now().strftime('%Y%m%dT%H%M%S')}-{self.tag}.log"
        LOG.parent.mkdir(parents=True, exist_ok=True)

    # -- lifecycle -------------------------------------------------------------
    def defer(self, what: str, fn: Callable[[], None]) -> None:
        self.cleanups.append((what, fn))

    def cleanup(self) -> None:
        while self.cleanups:
            what, fn = self.cleanups.pop()
            try:
                fn()
            except Exception as exc:  # cleanup must go on
                say(f"cleanup {what}: {exc}")
        shutil.rmtree(self.tmp, ignore_errors=True)

    def service(self, prefix: str) -> str:
        name = f"{prefix}-{nonce()}"
        self.services.append(name)
        return name

    def remove_local_images(self) -> None:
        """`destroy` removes the derived image by digest (``repo@sha256:...``), which leaves its ``repo:tag`` locally."""
        import docker

        client = docker.from_env()
        repos = {f"{self.settings.registry}/mldeploy/{s}{suffix}" for s in self.services for suffix in ("", "-base")}
        for image in client.images.list():
            for tag in image.tags:
                if tag.rsplit(":", 1)[0] in repos:
                    with contextlib.suppress(docker.errors.APIError):
                        client.images.remove(tag, force=True)

    def stack(self, dirname: str, name: str, config: dict[str, str] | None = None, env: dict[str, str] | None = None) -> Stack:
        st = Stack(self.tmp / dirname, name, env=env)
        st.init(config)
        self.defer(f"stack {name}", st.remove)
        return st

    def raw_identity(self) -> dict[str, str]:
        if self.auth is None:
            from mldeploy.backends.htpasswd import HtpasswdIdentityStore

            store = HtpasswdIdentityStore(self.settings.registry_dir, self.settings.registry)
            ident, secret = store.create(f"bench-raw-{self.tag}", "AcrPush", None)
            self.defer("raw identity", lambda: store.delete(ident.client_id))
            self.auth = {"username": ident.client_id, "password": secret}
        return self.auth

    def raw(self, workdir: Path, port: int, nocache: bool = False) -> raw_docker.RawDeployment:
        assert self.lock_text, "the lock comes from the warm stack (scenario noop's setup)"
        d = raw_docker.RawDeployment(workdir=workdir, registry=self.settings.registry, namespace=f"bench-raw-{nonce()}", port=port,
                                     auth=self.raw_identity(), wheelhouse_url=self.settings.wheelhouse_url,
                                     lock_text=self.lock_text, nocache=nocache)
        self.defer(f"raw deployment {d.namespace}", d.teardown)
        return d

    # -- setup ----------------------------------------------------------------
    def preflight(self) -> None:
        for var in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "MLDEPLOY_HOME", GUARD):
            if var not in os.environ and not (var == "PULUMI_CONFIG_PASSPHRASE" and os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")):
                sys.exit(f"bench: {var} is not set; run `make bench` (or `source scripts/lib.sh` first)")
        if not (DEMO / "model" / "model.joblib").exists():
            subprocess.run([sys.executable, str(DEMO / "make_model.py")], check=True)
        if "serving" in self.only and not shutil.which("wrk"):
            say("wrk is missing: installing Debian's wrk")
            sudo = [] if os.geteuid() == 0 else ["sudo"]
            subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "wrk"], check=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        for port in (PORT_STACK, PORT_RAW, PORT_HOST, PORT_COLD, PORT_RAW_COLD) if self.only - {"floor", "scale"} else ():
            from mldeploy.backends.docker_runtime import port_in_use

            if port_in_use(port):
                sys.exit(f"bench: port {port} is in use; is another bench running? (ports {PORT_STACK}-{PORT_RAW_COLD})")
        self.machine = machine_info()
        self.machine["registry_data_mb_before"] = du_mb(self.settings.registry_dir / "data")

    def warm_stack(self) -> Stack:
        """The demo stack deployed once (untimed setup for noop, serving, edit, bigmodel); also yields the lock."""
        if self.stack_w is None:
            d = demo_copy(self.tmp / "warm", PORT_STACK)
            st = self.stack("warm", f"warm-{self.tag}", {"serviceName": self.service("bench-w")})
            say("warm stack: first up (setup, not a measurement)")
            self.res.add("setup.warm_up", "setup: first `up` of the warm stack", st.up())
            self.stack_w = st
            self.lock_text = environment_lock(st.export(), self.settings.cache_dir)
            assert d.exists()
        return self.stack_w

    # -- the floor ------------------------------------------------------------------
    def floor_venv(self) -> Path:
        """A virtualenv holding only the pulumi SDK (the project's version and pip), made once and cached."""
        venv = self.settings.cache_dir / "bench-floor-venv"
        pins = [f"pulumi=={importlib.metadata.version('pulumi')}", f"pip=={importlib.metadata.version('pip')}"]
        want = " ".join(pins) + f" python {platform.python_version()}"
        stamp = venv / ".bench-stamp"
        if not (stamp.exists() and stamp.read_text() == want):
            say(f"floor: making {venv} ({' '.join(pins)}; cached)")
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *pins], check=True)
            stamp.write_text(want)
        return venv

    def env_with_venv(self, venv: Path, guard: bool = True) -> dict[str, str]:
        """The bench's environment with ``venv`` instead of the project's .venv first on PATH."""
        own = {str(ROOT / ".venv" / "bin"), str(Path(sys.prefix) / "bin")}
        rest = [p for p in os.environ.get("PATH", "").split(":") if p and p not in own]
        env = {**os.environ, "PATH": ":".join([str(venv / "bin"), *rest])}
        env.pop("VIRTUAL_ENV", None)
        if not guard:
            env.pop(GUARD, None)
        return env

    def floor_stack(self) -> Stack:
        """The true floor: an empty program, run with a virtualenv holding only the pulumi SDK."""
        if self.stack_f is None:
            d = self.tmp / "floor"
            d.mkdir()
            (d / "Pulumi.yaml").write_text(f"name: {PROJECT}-floor\nruntime: python\n")
            (d / "__main__.py").write_text("import pulumi\n")
            st = self.stack("floor", f"floor-{self.tag}", env=self.env_with_venv(self.floor_venv()))
            st.up()  # creates the Stack resource; the timed ups are no-ops
            self.stack_f = st
        return self.stack_f

    def floor_run(self, op: str) -> float:
        st = self.floor_stack()
        took = st.preview() if op == "preview" else st.up(noop=True)
        self.res.add(f"floor.{op}", f"floor: empty program, pulumi-only virtualenv: `{op}`", took)
        self.res.add(f"floor.{op}.cpu", f"floor: empty program, pulumi-only virtualenv: `{op}`, CPU", st.last_cpu, "cpu s")
        return took

    def paired(self, key: str, label: str, op: str, st: Stack, i: int) -> float:
        """Repetition ``i`` of a no-op ``op`` on ``st`` and of the floor's ``op``, in alternating order."""
        def mine() -> float:
            took = st.preview() if op == "preview" else st.up(noop=True)
            self.res.add(key, label, took)
            self.res.add(f"{key}.cpu", f"{label}, CPU", st.last_cpu, "cpu s")
            return took

        if i % 2 == 0:
            a, f = mine(), self.floor_run(op)
        else:
            f, a = self.floor_run(op), mine()
        self.res.pair(f"{key}/floor.{op}", a, f)
        return a

    # -- scenarios --------------------------------------------------------------
    def s_floor(self) -> None:
        """The true floor, and what the project's environment and importing mldeploy add to it."""
        self.floor_stack()
        for key, label, program, env in (
            ("floor_project", "empty program in the project's .venv", "import pulumi\n", None),
            ("floor_import", "empty program importing mldeploy", "import pulumi\nimport mldeploy  # noqa: F401\n", None),
            ("floor_noguard", f"floor without {GUARD}", "import pulumi\n", self.env_with_venv(self.floor_venv(), guard=False)),
            ("floor_dynamic", "5 do-nothing dynamic resources shaped like the demo's, pulumi-only virtualenv", DYNAMIC_FLOOR,
             self.env_with_venv(self.floor_venv())),
            ("floor_dynamic50", "50 independent do-nothing dynamic resources, pulumi-only virtualenv", DYNAMIC_FLOOR_50,
             self.env_with_venv(self.floor_venv())),
        ):
            d = self.tmp / key
            d.mkdir()
            (d / "Pulumi.yaml").write_text(f"name: {PROJECT}-{key.replace('_', '-')}\nruntime: python\n")
            (d / "__main__.py").write_text(program)
            st = self.stack(key, f"{key.replace('_', '-')}-{self.tag}", env=env)
            st.up()
            for i in range(self.reps):
                for op in ("preview", "up"):
                    self.paired(f"{key}.{op}", f"{label}: `{op}`", op, st, i)
            say(f"{label}: preview {self.res.rows[key + '.preview'].median:.2f}s, up {self.res.rows[key + '.up'].median:.2f}s")
        say(f"floor: preview {self.res.rows['floor.preview'].median:.2f}s, up {self.res.rows['floor.up'].median:.2f}s")
        # What the floor itself spends: the plugins the language host reports (none means no download to wait on).
        for what, env in (("floor", self.stack_f.env if self.stack_f else None), ("project .venv", None)):
            about = subprocess.run(["pulumi", "about", "--json", "--cwd", str(self.tmp / "floor")], capture_output=True, text=True, env=env)
            with contextlib.suppress(ValueError):
                text = about.stdout
                plugins = json.JSONDecoder().raw_decode(text[text.index("{"):])[0].get("plugins") or []
                wanted = sorted(p["name"] for p in plugins if p.get("kind") == "resource")
                self.res.notes.append(f"`pulumi about` in the {what} environment: resource plugins required: {wanted or 'none'}")

    def s_noop(self) -> None:
        st = self.warm_stack()
        for i in range(self.reps):
            self.paired("noop.preview", "demo stack: no-op `preview`", "preview", st, i)
            self.paired("noop.up", "demo stack: no-op `up`", "up", st, i)
        # As a user runs it from their own shell: the project's .venv first on PATH, no guard variable.
        user = Stack(st.dir, st.name, created=False, env=self.env_with_venv(ROOT / ".venv", guard=False))
        for i in range(self.reps):
            self.paired("noop_user.preview", f"demo stack: no-op `preview`, .venv on PATH, no {GUARD}", "preview", user, i)
        say(f"no-op: preview {self.res.rows['noop.preview'].median:.2f}s, up {self.res.rows['noop.up'].median:.2f}s "
            f"(floor {self.res.rows['floor.preview'].median:.2f}s / {self.res.rows['floor.up'].median:.2f}s)")
        self.profile_noop(st)

    def profile_noop(self, st: Stack) -> None:
        """Where a no-op preview's time over the floor goes: one untimed run under bench/pyprof, and import costs."""
        prof = self.tmp / "profile"
        env = {**os.environ, "PULUMI_PYTHON_CMD": str(ROOT / "bench" / "pyprof"), "MLDEPLOY_PROFILE_DIR": str(prof)}
        Stack(st.dir, st.name, env=env).preview()
        self.res.steps = pyprof.summary(str(prof))
        py_floor = self.floor_venv() / "bin" / "python"

        def best(python: Path | str, code: str) -> float:
            times = []
            for _ in range(5):
                out = subprocess.run([str(python), "-c", f"import time; t=time.perf_counter(); {code}; print(time.perf_counter()-t)"],
                                     capture_output=True, text=True, check=True).stdout
                times.append(float(out))
            return min(times)

        base = best(py_floor, "import pulumi")
        self.res.steps += [
            {"step": "program: `import pulumi` (floor virtualenv; in the floor too)", "s": base},
            {"step": "program: `import mldeploy` after pulumi (project .venv)", "s": best(sys.executable, "import pulumi; t=time.perf_counter(); import mldeploy")},
            {"step": "provider process: Python start + pulumi.dynamic's imports (not in the floor)",
             "s": best(sys.executable, "import dill, grpc, pulumi.runtime, pulumi.dynamic; from pulumi.runtime.proto import provider_pb2_grpc")},
        ]

    def s_edit(self) -> None:
        st = self.warm_stack()
        w = self.tmp / "warm"
        rawdir = demo_copy(self.tmp / "raw-edit", PORT_RAW)
        raw = self.raw(rawdir, PORT_RAW)
        say("raw deployment for the edit baselines: cold deploy (setup)")
        raw.cold_deploy()
        score_w, score_r = (w / "src" / "score.py").read_text(), (rawdir / "src" / "score.py").read_text()
        for i in range(self.reps):
            mark = f"\n# bench edit {nonce()}\n"
            first_raw = i % 2 == 1
            for side in (("raw", "provider") if first_raw else ("provider", "raw")):
                if side == "provider":
                    (w / "src" / "score.py").write_text(score_w + mark)
                    self.res.add("edit_score.up", "`up` after a score.py edit", st.up())
                else:
                    (rawdir / "src" / "score.py").write_text(score_r + mark)
                    t0 = time.perf_counter()
                    raw.redeploy_code()
                    self.res.add("edit_score.raw", "raw: rebuild derived, push, replace container", time.perf_counter() - t0)
        df_w, df_r = (w / "base" / "Dockerfile").read_text(), (rawdir / "base" / "Dockerfile").read_text()
        for i in range(self.reps):
            line = f"RUN echo {nonce()} > /etc/bench-edit\n"
            first_raw = i % 2 == 1
            for side in (("raw", "provider") if first_raw else ("provider", "raw")):
                if side == "provider":
                    (w / "base" / "Dockerfile").write_text(df_w + line)
                    self.res.add("edit_docker.up", "`up` after a Dockerfile edit", st.up())
                else:
                    (rawdir / "base" / "Dockerfile").write_text(df_r + line)
                    t0 = time.perf_counter()
                    raw.redeploy_base()
                    self.res.add("edit_docker.raw", "raw: rebuild base+derived, push both, replace container", time.perf_counter() - t0)
        say(f"edits: score.py up {self.res.rows['edit_score.up'].median:.1f}s (raw {self.res.rows['edit_score.raw'].median:.1f}s), "
            f"Dockerfile up {self.res.rows['edit_docker.up'].median:.1f}s (raw {self.res.rows['edit_docker.raw'].median:.1f}s)")

    def s_bigmodel(self) -> None:
        st = self.warm_stack()
        if "noop.preview" not in self.res.rows:  # the small-model reference, measured on the same stack
            for _ in range(self.reps):
                self.res.add("noop.preview", "demo stack: no-op `preview`", st.preview())
        big = self.tmp / "warm" / "model" / "weights.bin"
        say(f"big model: writing {self.big_mb} MB and deploying it (setup)")
        with open(big, "wb") as f:  # zeros: hashing reads every byte all the same, and the registry keeps few blob bytes
            block = bytes(1024 * 1024)
            for _ in range(self.big_mb):
                f.write(block)
        self.res.add("setup.big_up", f"setup: `up` adding a {self.big_mb} MB model file", st.up())
        for _ in range(self.reps):
            self.res.add("big.preview", f"no-op `preview`, {self.big_mb} MB model (digest cache hit)", st.preview())
        for _ in range(self.reps):
            os.utime(big)  # same content, new mtime: the cache misses and the file is read again
            self.res.add("big.preview_miss", f"no-op `preview`, {self.big_mb} MB model after `touch` (cache miss)", st.preview())
        say(f"big model preview {self.res.rows['big.preview'].median:.2f}s, after touch {self.res.rows['big.preview_miss'].median:.2f}s")

    def _cold(self, key: str, bust: bool) -> None:
        if self.lock_text is None:
            self.warm_stack()  # the raw side installs the same lock the provider resolved
        what = "layer cache busted" if bust else "layer cache warm"
        for i in range(self.cold_reps):
            first_raw = i % 2 == 1
            for side in (("raw", "provider") if first_raw else ("provider", "raw")):
                if side == "provider":
                    dirname = f"{key}-{i}"
                    demo_copy(self.tmp / dirname, PORT_COLD, cache_bust=nonce() if bust else None)
                    st = self.stack(dirname, f"{key}-{i}-{self.tag}", {"serviceName": self.service(f"bench-{key}")})
                    say(f"{key} {i + 1}/{self.cold_reps}: pulumi up ({what})")
                    self.res.add(f"{key}.up", f"cold `up` from nothing ({what})", st.up())
                    self.res.add(f"{key}.destroy", f"`destroy` ({what} run)", st.destroy())
                    st.remove()
                else:
                    d = demo_copy(self.tmp / f"{key}-raw-{i}", PORT_RAW_COLD, cache_bust=nonce() if bust else None)
                    raw = self.raw(d, PORT_RAW_COLD)
                    say(f"{key} {i + 1}/{self.cold_reps}: raw docker SDK ({what})")
                    t0 = time.perf_counter()
                    raw.cold_deploy()
                    self.res.add(f"{key}.raw", f"raw: build base, push, build derived, push, run, healthy ({what})", time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    raw.teardown()
                    self.res.add(f"{key}.raw_teardown", f"raw: remove container, manifests, local images ({what} run)", time.perf_counter() - t0)
        say(f"{key}: up {self.res.rows[key + '.up'].median:.1f}s vs raw {self.res.rows[key + '.raw'].median:.1f}s")

    def s_cold(self) -> None:
        self._cold("cold", bust=True)

    def s_coldwarm(self) -> None:
        self._cold("coldwarm", bust=False)

    def s_serving(self) -> None:
        st = self.warm_stack()
        venv = self.tmp / "hostvenv"
        say("serving: host virtualenv from the wheelhouse with the deployment's own lock (setup)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        (self.tmp / "host-lock.txt").write_text(self.lock_text or "")
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links", str(self.settings.wheelhouse),
                        "--require-hashes", "--no-deps", "-r", str(self.tmp / "host-lock.txt")], check=True)
        w = self.tmp / "warm"
        env = {**os.environ, "AZUREML_MODEL_DIR": str(w), "PYTHONDONTWRITEBYTECODE": "1"}  # w/model/model.joblib: the folder keeps its name, as on Azure ML
        env.pop("WORKER_COUNT", None)
        proc = subprocess.Popen([str(venv / "bin" / "azmlinfsrv"), "--entry_script", str(w / "src" / "score.py"), "--port", str(PORT_HOST)],
                                cwd=str(w / "src"), env=env, stdout=open(self.tmp / "host-server.log", "wb"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.defer("host server", lambda: stop_group(proc))
        wait_http(f"http://127.0.0.1:{PORT_HOST}/", 120, proc, self.tmp / "host-server.log")
        lua = self.tmp / "post.lua"
        lua.write_text(f"wrk.method = 'POST'\nwrk.body = '{BODY}'\nwrk.headers['Content-Type'] = 'application/json'\n")
        duration = 5 if self.quick else 15
        conns = self.args.connections
        targets = {"container": f"http://127.0.0.1:{PORT_STACK}/score", "host": f"http://127.0.0.1:{PORT_HOST}/score"}
        for url in targets.values():  # both answer the same prediction
            out = subprocess.run(["curl", "-sS", "-X", "POST", "-H", "Content-Type: application/json", "-d", BODY, url],
                                 capture_output=True, text=True, check=True).stdout
            assert "setosa" in out, f"{url} answered {out!r}"
            wrk(url, lua, 2, conns)  # warm-up
        for i in range(self.reps):
            order = list(targets.items()) if i % 2 == 0 else list(reversed(targets.items()))
            for side, url in order:
                r = wrk(url, lua, duration, conns)
                if r["errors"]:
                    self.res.notes.append(f"serving {side} rep {i}: {r['errors']} errors/non-2xx")
                label = "deployed container" if side == "container" else "same score.py started on the host"
                self.res.add(f"serve.{side}.rps", f"`/score` req/s, {label}", r["rps"], "req/s")
                self.res.add(f"serve.{side}.p50", f"`/score` p50 latency, {label}", r["p50_ms"], "ms")
                self.res.add(f"serve.{side}.p99", f"`/score` p99 latency, {label}", r["p99_ms"], "ms")
        self.res.notes.append(f"serving: wrk -t2 -c{conns} -d{duration}s, POST {BODY}; 1 worker on both sides (azmlinfsrv's default); "
                              "alternating order; wrk shares the 2 cores with the server")
        say(f"serving: container {self.res.rows['serve.container.rps'].median:.0f} req/s, host {self.res.rows['serve.host.rps'].median:.0f} req/s")

    def s_scale(self) -> None:
        for n in self.scale:
            d = self.tmp / f"scale-{n}"
            (d / "models").mkdir(parents=True)
            (d / "Pulumi.yaml").write_text(f"name: {PROJECT}-scale\nruntime: python\n")
            (d / "__main__.py").write_text(SCALE_PROGRAM)
            prefix = f"bench-scale-{self.tag}-{n}"
            for i in range(n):
                (d / "models" / f"m{i}").mkdir()
                (d / "models" / f"m{i}" / "model.txt").write_text(f"{prefix} model {i}\n")
            st = self.stack(f"scale-{n}", f"scale-{n}-{self.tag}", {"count": str(n), "prefix": prefix})
            self.res.add(f"scale{n}.create", f"{n} ModelVersions: first `up` (create)", st.up())
            for i in range(self.reps):
                self.paired(f"scale{n}.preview", f"{n} ModelVersions: no-op `preview`", "preview", st, i)
                self.paired(f"scale{n}.up", f"{n} ModelVersions: no-op `up`", "up", st, i)
            self.res.add(f"scale{n}.destroy", f"{n} ModelVersions: `destroy`", st.destroy())
            st.remove()
            say(f"scale {n}: preview {self.res.rows[f'scale{n}.preview'].median:.2f}s, up {self.res.rows[f'scale{n}.up'].median:.2f}s")

    def finish_warm(self) -> None:
        if self.stack_w is not None:
            self.res.add("warm.destroy", "`destroy` of the demo stack (after the edits and the big model)", self.stack_w.destroy())
            self.stack_w.remove()
            self.stack_w = None

    # -- run ----------------------------------------------------------------------
    def run(self) -> int:
        started = dt.datetime.now(dt.timezone.utc)
        self.preflight()
        say(f"mode {'quick' if self.quick else 'full'}: {self.reps} reps ({self.cold_reps} for cold ups), "
            f"{self.big_mb} MB model, scale {self.scale}; work dir {self.tmp}; pulumi output in {LOG}")
        stale = stale_bytecode(ROOT / "provider" / "mldeploy")
        self.res.notes.append(
            f"mldeploy modules without current bytecode (compiled from source by every process when PYTHONDONTWRITEBYTECODE "
            f"is set; `make setup` compiles them): {len(stale)}{' (' + ', '.join(stale[:5]) + ')' if stale else ''}; "
            f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '(unset)')}"
        )
        order = [s for s in ("floor", "noop", "serving", "edit", "bigmodel", "cold", "coldwarm", "scale") if s in self.only]
        warm_users = [s for s in order if s in ("noop", "serving", "edit", "bigmodel")]
        for name in order:
            say(f"== {name}")
            t0 = time.perf_counter()
            try:
                getattr(self, f"s_{name}")()
            except Exception as exc:
                self.res.errors.append(f"{name}: {exc}")
                say(f"{name} FAILED: {exc}")
                traceback.print_exc()
            self.res.notes.append(f"scenario {name} took {time.perf_counter() - t0:.0f}s")
            if warm_users and name == warm_users[-1]:
                self.finish_warm()  # the warm stack is no longer needed: free its port and images
        self.finish_warm()
        self.machine["load_avg_end"] = os.getloadavg()
        self.machine["registry_data_mb_after"] = du_mb(self.settings.registry_dir / "data")
        self.define_ratios()
        self.res.compute()
        self.write(started)
        return 1 if self.res.errors else 0

    def define_ratios(self) -> None:
        r = self.res.ratio
        # Against the true floor (an empty program with a pulumi-only virtualenv), each repetition over the floor run next to it.
        r("no-op `preview` / floor `preview`", "noop.preview", "floor.preview", "<= 1.3", paired=True)
        r("no-op `up` / floor `up`", "noop.up", "floor.up", "<= 1.3", paired=True)
        r(f"no-op `preview`, .venv on PATH without {GUARD} / floor", "noop_user.preview", "floor.preview", paired=True)
        for n in self.scale:
            target = "<= 1.5" if n == 50 else ""
            r(f"{n} ModelVersions: no-op `preview` / floor `preview`", f"scale{n}.preview", "floor.preview", target, paired=True)
            r(f"{n} ModelVersions: no-op `up` / floor `up`", f"scale{n}.up", "floor.up", target, paired=True)
        r("empty program in the project's .venv / floor (`preview`)", "floor_project.preview", "floor.preview", paired=True)
        r(f"floor without {GUARD} / floor (`preview`)", "floor_noguard.preview", "floor.preview", paired=True)
        r("empty program importing mldeploy / floor (`preview`)", "floor_import.preview", "floor.preview", paired=True)
        # What any pulumi.dynamic stack of the demo's shape costs: the least a no-op of the demo could take.
        r("5 do-nothing dynamic resources / floor (`preview`)", "floor_dynamic.preview", "floor.preview", paired=True)
        r("5 do-nothing dynamic resources / floor (`up`)", "floor_dynamic.up", "floor.up", paired=True)
        r("no-op `preview` / 5 do-nothing dynamic resources (medians)", "noop.preview", "floor_dynamic.preview")
        r("no-op `up` / 5 do-nothing dynamic resources (medians)", "noop.up", "floor_dynamic.up")
        r("50 do-nothing dynamic resources / floor (`preview`)", "floor_dynamic50.preview", "floor.preview", paired=True)
        r("50 do-nothing dynamic resources / floor (`up`)", "floor_dynamic50.up", "floor.up", paired=True)
        r("50 ModelVersions no-op `preview` / 50 do-nothing dynamic resources (medians)", "scale50.preview", "floor_dynamic50.preview")
        r("50 ModelVersions no-op `up` / 50 do-nothing dynamic resources (medians)", "scale50.up", "floor_dynamic50.up")
        # CPU seconds (user+sys of pulumi and its processes) hardly change with the machine's load; wall times do.
        r("no-op `preview` CPU / floor `preview` CPU", "noop.preview.cpu", "floor.preview.cpu")
        r("no-op `up` CPU / floor `up` CPU", "noop.up.cpu", "floor.up.cpu")
        for n in self.scale:
            r(f"{n} ModelVersions: no-op `preview` CPU / floor CPU", f"scale{n}.preview.cpu", "floor.preview.cpu")
        r(f"no-op `preview` with {self.big_mb} MB model / with the small model", "big.preview", "noop.preview", "<= 1.1")
        r(f"(no cache) `preview` after touch of {self.big_mb} MB / small model", "big.preview_miss", "noop.preview")
        # The floor of an `up` that does real work: the raw work plus the floor's `up` (medians over the whole run).
        r("cold `up` / (raw + floor `up`), layer cache busted", "cold.up", "cold.raw+floor.up", "<= 1.15")
        r("cold `up` / raw alone, layer cache busted", "cold.up", "cold.raw")
        r("cold `up` / (raw + floor `up`), layer cache warm", "coldwarm.up", "coldwarm.raw+floor.up", "<= 1.3")
        r("cold `up` / raw alone, layer cache warm", "coldwarm.up", "coldwarm.raw")
        r("`up` after score.py edit / (raw + floor `up`)", "edit_score.up", "edit_score.raw+floor.up", "<= 1.3")
        r("`up` after score.py edit / raw alone", "edit_score.up", "edit_score.raw")
        r("`up` after Dockerfile edit / (raw + floor `up`)", "edit_docker.up", "edit_docker.raw+floor.up")
        r("`up` after Dockerfile edit / raw alone", "edit_docker.up", "edit_docker.raw")
        r("`destroy` / (raw teardown + floor `up`)", "cold.destroy", "cold.raw_teardown+floor.up")
        r("serving req/s: container / host", "serve.container.rps", "serve.host.rps", ">= 0.95")
        r("serving p50: container / host", "serve.container.p50", "serve.host.p50", "<= 1.05")
        r("serving p99: container / host", "serve.container.p99", "serve.host.p99")
        big = self.scale[-1]
        r(f"no-op `preview`: {big} / 1 ModelVersions", f"scale{big}.preview", "scale1.preview")
        r(f"no-op `up`: {big} / 1 ModelVersions", f"scale{big}.up", "scale1.up")

    # -- output -----------------------------------------------------------------------
    def write(self, started: dt.datetime) -> None:
        finished = dt.datetime.now(dt.timezone.utc)
        rows = list(self.res.rows.values())
        scale_slopes = {}
        if f"scale{self.scale[-1]}.preview" in self.res.rows and "scale1.preview" in self.res.rows:
            n = self.scale[-1]
            for op in ("preview", "up"):
                a, b = self.res.rows[f"scale{n}.{op}"].median, self.res.rows[f"scale1.{op}"].median
                if a is not None and b is not None:
                    scale_slopes[op] = (a - b) / (n - 1)
        doc = {
            "mode": "quick" if self.quick else "full",
            "reps": self.reps, "cold_reps": self.cold_reps, "big_model_mb": self.big_mb, "scale": self.scale,
            "started": started.isoformat(timespec="seconds"), "finished": finished.isoformat(timespec="seconds"),
            "machine": self.machine,
            "rows": [r.as_dict() for r in rows],
            "ratios": [{"label": q.label, "num": q.num, "den": q.den, "value": round(q.value, 3) if q.value is not None else None,
                        "target": q.target or None, "met": q.met()} for q in self.res.ratios],
            "per_model_version_s": {k: round(v, 4) for k, v in scale_slopes.items()},
            "steps": [{"step": x["step"], "s": round(float(x["s"]), 3)} for x in self.res.steps],
            "notes": self.res.notes, "errors": self.res.errors,
        }
        md = markdown(doc)
        RESULTS.mkdir(parents=True, exist_ok=True)
        stem = ("quick" if self.quick else "latest") + ("" if self.only == set(SCENARIOS) else "-partial")
        (RESULTS / f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
        (RESULTS / f"{stem}.md").write_text(md)
        print()
        print(md)
        say(f"wrote {RESULTS / (stem + '.json')} and {RESULTS / (stem + '.md')}")


SCALE_PROGRAM = '''\
"""bench scale: N ModelVersions in one stack."""
from pathlib import Path

import pulumi

from mldeploy import ModelVersion

HERE = Path(__file__).parent
cfg = pulumi.Config()
for i in range(cfg.require_int("count")):
    ModelVersion(f"m{i}", model_name=f"{cfg.require('prefix')}-{i}", path=str(HERE / "models" / f"m{i}"))
'''


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "req/s":
        return f"{v:.0f}"
    if unit == "ms":
        return f"{v:.2f}"
    return f"{v:.2f}"


def markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    out = [f"# mldeploy bench ({doc['mode']})", "",
           f"{doc['started']} to {doc['finished']}; {doc['reps']} repetitions ({doc['cold_reps']} for cold ups); "
           f"big model {doc['big_model_mb']} MB; scale {doc['scale']}.", "",
           f"Machine: {m.get('cpu')} ({m.get('cores')} cores), {m.get('mem_gb')} GB RAM, {m.get('kernel')}; "
           f"Docker {m.get('docker')}, Pulumi {m.get('pulumi')}, Python {m.get('python')}; "
           f"load average at start {m.get('load_avg_start')}, at end {m.get('load_avg_end')}.", "",
           "| scenario | unit | n | median | min | max |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in doc["rows"]:
        out.append(f"| {r['label']} | {r['unit']} | {r['n']} | {fmt(r['median'], r['unit'])} | {fmt(r['min'], r['unit'])} | {fmt(r['max'], r['unit'])} |")
    out += ["", "| ratio (paired: median of per-repetition ratios; else of medians) | value | target | met |", "| --- | ---: | --- | --- |"]
    for q in doc["ratios"]:
        met = {True: "yes", False: "**no**", None: ""}[q["met"]]
        out.append(f"| {q['label']} | {'-' if q['value'] is None else format(q['value'], '.2f')} | {q['target'] or ''} | {met} |")
    if doc.get("steps"):
        out += ["", "Where a no-op `preview` of the demo stack spends its time beyond the floor (one run under bench/pyprof, "
                "2 ms stack samples of every thread; imports measured apart, best of 5):", "",
                "| step | s |", "| --- | ---: |"] + [f"| {x['step']} | {x['s']:.3f} |" for x in doc["steps"]]
    if doc["per_model_version_s"]:
        out += ["", "Marginal cost per ModelVersion: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in doc["per_model_version_s"].items()) + "."]
    if doc["notes"] or doc["errors"]:
        out += ["", "Notes:", ""] + [f"- {n}" for n in doc["notes"]] + [f"- ERROR {e}" for e in doc["errors"]]
    return "\n".join(out) + "\n"


# -- helpers -----------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0.0
    with contextlib.suppress(OSError, ValueError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024

    def cmd(*a: str) -> str:
        try:
            return subprocess.run(list(a), capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gb": round(mem, 1), "kernel": platform.release(),
            "docker": cmd("docker", "version", "--format", "{{.Server.Version}}"), "pulumi": cmd("pulumi", "version"),
            "python": platform.python_version(), "wrk": cmd("sh", "-c", "wrk -v 2>&1 | head -1"), "load_avg_start": os.getloadavg()}


def du_mb(path: Path) -> float:
    total = 0
    for p in path.rglob("*"):
        with contextlib.suppress(OSError):
            if p.is_file():
                total += p.stat().st_size
    return round(total / 1024 / 1024, 1)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s:\n{log.read_text()[-3000:]}")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, lua: Path, duration: int, conns: int) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency", "-s", str(lua), url],
                         capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return {"rps": rps, "p50_ms": _ms(lat["50"]), "p99_ms": _ms(lat["99"]), "errors": errors}


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 repetitions (1 for cold ups), a 100 MB model, scale up to 10")
    p.add_argument("--reps", type=int, default=0, help="repetitions per scenario (default 5, quick 2; cold ups 3, quick 1)")
    p.add_argument("--big-mb", type=int, default=0, help="size of the big model file in MB (default 1024, quick 100)")
    p.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    p.add_argument("--only", default="", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    args = p.parse_args(argv)
    unknown = set(filter(None, args.only.split(","))) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios {sorted(unknown)}; choose from {','.join(SCENARIOS)}")
    bench = Bench(args)
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Started in the background, SIGINT is ignored and every pulumi would inherit that: each command
        # then waits 5 s for a language host that ignores the CLI (tests/integration/harness.default_sigint).
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return bench.run()
    except KeyboardInterrupt:
        say("interrupted: cleaning up")
        return 130
    finally:
        bench.cleanup()


if __name__ == "__main__":
    sys.exit(main())
