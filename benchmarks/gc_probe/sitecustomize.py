"""Times Python's garbage collections in every process started with this folder on PYTHONPATH.

How the README's collector figures were measured (the soak, before and after ``gc.freeze``)::

    PYTHONPATH=benchmarks/gc_probe GCPROBE_OUT=/tmp/gc.log \
        nice .venv/bin/python benchmarks/reliability.py --soak-seconds 90 --skip-tests --out /tmp/soak.json

Each collection of the oldest generation, and each other one over 2 ms, appends a line
``pid unix-time gen<N> <ms>ms collected=<n>`` to ``GCPROBE_OUT``; without that variable
nothing is recorded. Python imports ``sitecustomize`` at start-up from the path, so the
backend and its job process are timed without a change to their code.
"""

import gc
import os
import time

_OUT = os.environ.get("GCPROBE_OUT")
_started: list[float] = []


def _time_collection(phase: str, info: dict) -> None:
    if phase == "start":
        _started[:] = [time.perf_counter()]
        return
    ms = (time.perf_counter() - (_started[0] if _started else time.perf_counter())) * 1000
    if ms > 2 or info["generation"] == 2:
        with open(_OUT, "a") as out:
            out.write(f"{os.getpid()} {time.time():.3f} gen{info['generation']} {ms:.1f}ms "
                      f"collected={info['collected']}\n")


if _OUT:
    gc.callbacks.append(_time_collection)
