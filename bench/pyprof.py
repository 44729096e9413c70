"""A sampling profiler for the Python processes a `pulumi` command starts (the program and the dynamic provider).

    PULUMI_PYTHON_CMD=$PWD/bench/pyprof MLDEPLOY_PROFILE_DIR=/tmp/prof pulumi preview
    python bench/pyprof.py --report /tmp/prof         # the top functions of each profiled process

Pulumi's language host and the dynamic-provider launcher (pulumi-resource-pulumi-python)
run ``$PULUMI_PYTHON_CMD`` (default python3) for every Python process they start.
``bench/pyprof`` (a shell wrapper) runs this file for the program
(``pulumi-language-python-exec``) and the provider (``-m pulumi.dynamic``) and plain
Python for everything else (``pip list``, ``--version``).

Every 2 ms a thread samples the stacks of all threads of the process (the
provider serves gRPC calls on worker threads, which cProfile would miss) and
counts each stack whose innermost frame is not an idle wait. The counts are
written to ``<dir>/<role>-<pid>.json`` every half second and at exit (the
engine kills the provider; the last half second may be missing). Also written:
the time from interpreter start to the first line of the program or provider
(``t_start``) and each process's wall time (``t_end``).
"""

from __future__ import annotations

import collections
import json
import os
import sys
import threading
import time

IDLE = {
    ("threading.py", "wait"), ("threading.py", "_wait_for_tstate_lock"), ("selectors.py", "select"),
    ("queue.py", "get"), ("thread.py", "_worker"), ("_channel.py", "_next"), ("_server.py", "_serve"),
    ("_common.py", "wait"), ("_server.py", "wait_for_termination"), ("base_events.py", "_run_once"),
    ("threading.py", "join"), ("_channel.py", "_blocking"), ("events.py", "_run"), ("threading.py", "_bootstrap_inner"),
    # mldeploy's watchdog thread sleeps between checks of the engine: the sampler sees its frame at time.sleep
    ("watchdog.py", "_watch"),
}


def _key(frame) -> str:  # type: ignore[no-untyped-def]
    parts = []
    while frame is not None:
        co = frame.f_code
        parts.append(f"{os.path.basename(co.co_filename)}:{co.co_name}")
        frame = frame.f_back
    return ";".join(reversed(parts))


def _busy(frame) -> bool:  # type: ignore[no-untyped-def]
    co = frame.f_code
    return (os.path.basename(co.co_filename), co.co_name) not in IDLE


def _run(role: str, out_dir: str, argv: list[str]) -> None:
    started = time.time()
    interp_start = float(os.environ.get("PYPROF_T0", started))
    counts: collections.Counter[str] = collections.Counter()
    path = os.path.join(out_dir, f"{role}-{os.getpid()}.json")
    lock = threading.Lock()

    def dump() -> None:
        with lock:
            doc = {"role": role, "argv": argv, "interval_s": 0.002, "t_start": started - interp_start,
                   "t_end": time.time() - interp_start, "cpu_s": time.process_time(), "samples": dict(counts)}
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, path)

    def sampler() -> None:
        me = threading.get_ident()
        last = time.monotonic()
        while True:
            time.sleep(0.002)
            for tid, frame in sys._current_frames().items():
                if tid != me and _busy(frame):
                    with lock:
                        counts[_key(frame)] += 1
            if time.monotonic() - last > 0.5:
                dump()
                last = time.monotonic()

    import atexit
    import runpy

    threading.Thread(target=sampler, name="pyprof", daemon=True).start()
    atexit.register(dump)
    if argv[0] == "-m":
        sys.path[0] = os.getcwd()  # as `python -m` would have it
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
        sys.argv = argv
        runpy.run_path(argv[0], run_name="__main__")


def report(out_dir: str, top: int = 25) -> str:
    lines = []
    for name in sorted(os.listdir(out_dir)):
        if not name.endswith(".json"):
            continue
        doc = json.load(open(os.path.join(out_dir, name)))
        samples: dict[str, int] = doc["samples"]
        dt = doc["interval_s"]
        total = sum(samples.values())
        inclusive: collections.Counter[str] = collections.Counter()
        for stack, n in samples.items():
            for fn in set(stack.split(";")):
                inclusive[fn] += n
        lines.append(f"== {name}: start {doc['t_start']:.2f}s after the interpreter, lived {doc['t_end']:.2f}s, "
                     f"busy samples {total} (~{total * dt:.2f}s)")
        for fn, n in inclusive.most_common(top):
            lines.append(f"  {n * dt:6.2f}s  {fn}")
    return "\n".join(lines)


def summary(out_dir: str) -> list[dict[str, object]]:
    """Step costs from the profiles in ``out_dir``: per process, its busy time, imports, and each provider method."""
    steps: list[dict[str, object]] = []
    names = sorted(n for n in os.listdir(out_dir) if n.endswith(".json"))
    for role in ("program", "provider"):
        steps.append({"step": f"{role} processes started by the command (count, not seconds)", "s": sum(n.startswith(role) for n in names)})
    for name in names:
        doc = json.load(open(os.path.join(out_dir, name)))
        role, dt, samples = doc["role"], doc["interval_s"], doc["samples"]
        steps.append({"step": f"{role}: lifetime (interpreter start to last sample)", "s": doc["t_end"]})
        steps.append({"step": f"{role}: busy, all threads (sampled)", "s": sum(samples.values()) * dt})
        if "cpu_s" in doc:
            steps.append({"step": f"{role}: CPU time of the process", "s": doc["cpu_s"]})
        imports = sum(n for stack, n in samples.items() if "_find_and_load" in stack)
        steps.append({"step": f"{role}: of which importing modules", "s": imports * dt})
        methods: collections.Counter[str] = collections.Counter()
        for stack, n in samples.items():
            for fn in set(stack.split(";")):
                file, _, func = fn.partition(":")
                if func in ("check", "diff", "read", "__init__", "create", "update", "delete") and file not in ("__main__.py",) and file.endswith(".py") \
                        and file[:-3] in ("model_version", "service_principal", "base_image", "inference_deployment", "model_service"):
                    methods[fn] += n
        for fn, n in sorted(methods.items()):
            steps.append({"step": f"{role}: of which {fn} (all calls)", "s": n * dt})
    return steps


def main() -> None:
    if sys.argv[1:2] == ["--report"]:
        print(report(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 25))
        return
    argv = sys.argv[1:]
    if argv and argv[0] == "-u":
        argv = argv[1:]
    role = "provider" if argv[:2] == ["-m", "pulumi.dynamic"] else "program"
    out_dir = os.environ.get("MLDEPLOY_PROFILE_DIR") or "/tmp/mldeploy-profile"
    os.makedirs(out_dir, exist_ok=True)
    _run(role, out_dir, argv)


if __name__ == "__main__":
    main()
