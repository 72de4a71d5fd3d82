"""kinv performance runner: ``python benchmarks/run.py [--quick] [--only NAME] [--out FILE]``.

Runs each section, prints a table and writes JSON (default benchmarks/results/latest.json).
Timings are measured here and never asserted in tests. Each explorer measurement runs in a
fresh child process so that its peak RSS is its own.

Exit status: 0 every section ran or was skipped, 1 a section failed or disagreed with its
peer, 2 bad usage.

Adding a section: write ``def my_section(quick: bool) -> Section`` and add it to SECTIONS.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # run as a script from a checkout, installed or not

SCHEMA = "kinv.benchmarks/1"


@dataclass
class Section:
    """One section's outcome: ``rows`` for the table and the JSON, or why it was skipped."""

    status: str = "ok"  # "ok", "skipped", "failed" (a peer disagrees, or the run broke)
    reason: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)


# ---- Explorer runs, one per child process ----------------------------------------------------


def _two_phase_commit(param: str) -> tuple[Any, list[Any]]:
    from invariants import Invariant
    from model.calibration.two_phase_commit import ABORTED, COMMITTED, TwoPhaseConfig, TwoPhaseModel

    def consistent(s: Any) -> list[str]:
        return ["an RM committed while another aborted"] if COMMITTED in s.rm_state and ABORTED in s.rm_state else []

    inv = Invariant("two_phase_commit.consistent", "two_phase_commit",
                    "No RM has committed while another has aborted.", "TwoPhase.tla TCConsistent", consistent)
    return TwoPhaseModel(TwoPhaseConfig(rms=int(param))), [inv]


def _registry_model(param: str) -> tuple[Any, list[Any]]:
    """``name:profile`` of a model in model.MODELS, with its registered invariants."""
    import invariants
    from model import model_class

    name, profile = param.split(":")
    return model_class(name).from_profile(profile), invariants.for_model(name)


CHILD_MODELS: dict[str, Callable[[str], tuple[Any, list[Any]]]] = {
    "two_phase_commit": _two_phase_commit,
    "registry": _registry_model,
}


def _child(spec: dict[str, Any]) -> None:
    from checkers.explore import explore

    model, invs = CHILD_MODELS[spec["kind"]](spec["param"])
    bounds = {k: spec[k] for k in ("max_states",) if k in spec}
    show = sys.stderr.isatty()

    def progress(p: dict[str, Any]) -> None:
        if show:
            line = f"{model.name} {spec['param']}: {p['states']:,} states, depth {p['depth']}, {p['seconds']:.1f}s"
            print(f"\r  {line} ", end="", file=sys.stderr, flush=True)

    rss_before = _peak_rss()
    result = explore(model, invs, progress=progress, measure_memory=True, **bounds)
    if show:
        print(file=sys.stderr)
    stats = dict(result.stats)
    # Peak RSS growth over the run: the visited table, the frontier's states, allocator slack.
    stats["rss_delta_bytes"] = _peak_rss() - rss_before
    stats["rss_bytes_per_state"] = round(stats["rss_delta_bytes"] / stats["states"], 1)
    print(json.dumps({"model": model.name, "status": result.status, "strength": result.strength,
                      "stats": stats, "error": result.error}))


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def run_child(kind: str, param: str, **bounds: Any) -> dict[str, Any]:
    spec = json.dumps({"kind": kind, "param": param, **bounds})
    proc = subprocess.run([sys.executable, str(Path(__file__)), "--child", spec], stdout=subprocess.PIPE,
                          text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"explorer run {spec} exited {proc.returncode}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ---- Spin peer --------------------------------------------------------------------------------


@dataclass
class SpinRun:
    states_stored: int
    errors: int
    compile_seconds: float  # spin -a and gcc
    pan_seconds: float  # wall time of ./pan, measured here
    pan_reported_seconds: float | None  # pan's own "elapsed time"
    output: str = ""  # pan's report, for the kinds of error found


def spin_missing() -> str | None:
    for tool in ("spin", "gcc"):
        if shutil.which(tool) is None:
            return f"{tool} not found on PATH"
    return None


def run_spin(pml: Path, defines: dict[str, int], pan_args: tuple[str, ...] = ("-m100000",)) -> SpinRun:
    """Compile and run a Promela model exhaustively: no partial-order reduction (the 2PC
    twin has one process, so it would not apply anyway), safety only, assertions checked."""
    with tempfile.TemporaryDirectory(prefix="kinv-spin-") as tmp:
        t0 = time.perf_counter()
        subprocess.run(["spin", "-a", *(f"-D{k}={v}" for k, v in defines.items()), str(pml)], cwd=tmp,
                       check=True, capture_output=True)
        subprocess.run(["gcc", "-O2", "-DNOREDUCE", "-DSAFETY", "-o", "pan", "pan.c"], cwd=tmp, check=True,
                       capture_output=True)
        t1 = time.perf_counter()
        text = subprocess.run(["./pan", *pan_args], cwd=tmp, capture_output=True, text=True).stdout
        t2 = time.perf_counter()
    stored = re.search(r"(\d+) states, stored", text)
    errors = re.search(r"errors: (\d+)", text)
    elapsed = re.search(r"elapsed time ([\d.e+-]+) seconds", text)
    if stored is None or errors is None:
        raise RuntimeError(f"unexpected pan output:\n{text}")
    return SpinRun(int(stored.group(1)), int(errors.group(1)), round(t1 - t0, 3), round(t2 - t1, 3),
                   float(elapsed.group(1)) if elapsed else None, text)


def spin_version() -> str | None:
    if shutil.which("spin") is None:
        return None
    return subprocess.run(["spin", "-V"], capture_output=True, text=True).stdout.strip()


# ---- Sections ---------------------------------------------------------------------------------

PUBLISHED_2PC = {3: 288, 5: 8_832, 7: 296_448, 8: 1_745_408}  # TLC and Stateright

# The kernel models' small profiles are not exhausted in minutes: each run does a fixed amount
# of work (the ci profile's state budget), so its seconds compare from machine to machine.
MODEL_BOUNDS = {"quick": {"max_states": 20_000}, "full": {"max_states": 200_000}}


def explore_figures(stats: dict[str, Any]) -> dict[str, Any]:
    """The figures of one explorer run that the tables show."""
    return {
        "states": stats["states"],
        "transitions": stats["transitions"],
        "seconds": stats["seconds"],
        "states_per_second": stats["states_per_second"],
        "table_bytes_per_state": stats["bytes_per_state"],
        "rss_bytes_per_state": stats["rss_bytes_per_state"],
        "peak_frontier": stats["peak_frontier"],
    }


def explore_2pc(quick: bool) -> Section:
    """The explorer on two-phase commit, beside Spin on its Promela twin."""
    section = Section()
    missing = spin_missing()
    for rms in (7,) if quick else (7, 8):
        ours = run_child("two_phase_commit", str(rms))
        stats = ours["stats"]
        row: dict[str, Any] = {"case": f"2pc rms={rms}", "published": PUBLISHED_2PC.get(rms), **explore_figures(stats)}
        if stats["states"] != PUBLISHED_2PC.get(rms, stats["states"]) or ours["status"] != "pass":
            section.status = "failed"
            section.reason = f"rms={rms}: {stats['states']:,} states, status {ours['status']}"
        if missing:
            row["spin"] = f"skipped: {missing}"
        else:
            spin = run_spin(HERE / "spin" / "two_phase_commit.pml", {"N": rms})
            row.update(
                spin_states=spin.states_stored,
                spin_seconds=spin.pan_seconds,
                spin_reported_seconds=spin.pan_reported_seconds,
                spin_compile_seconds=spin.compile_seconds,
                spin_states_per_second=round(spin.states_stored / spin.pan_seconds) if spin.pan_seconds else None,
                ratio=round(stats["seconds"] / spin.pan_seconds, 1) if spin.pan_seconds else None,
            )
            if spin.states_stored != stats["states"] or spin.errors:
                section.status = "failed"
                section.reason = f"rms={rms}: Spin stored {spin.states_stored:,} states ({spin.errors} errors)"
        section.rows.append(row)
    return section


def explore_model(name: str, quick: bool) -> Section:
    """The explorer on a model's small profile with its registered invariants."""
    ours = run_child("registry", f"{name}:small", **MODEL_BOUNDS["quick" if quick else "full"])
    stats = ours["stats"]
    row = {"case": f"{name} small", "status": ours["status"], "strength": ours["strength"], **explore_figures(stats)}
    ok = ours["status"] in ("pass", "bounded-pass")
    return Section(status="ok" if ok else "failed", reason=ours.get("error"), rows=[row])


def stateful_model(name: str, quick: bool) -> Section:
    """Hypothesis steps/s on a model's machines, every invariant checked after every step."""
    import invariants
    from checkers.stateful import Profile, run_stateful
    from model import model_class

    section = Section()
    profile = Profile(max_examples=50 if quick else 200, steps=60)
    for config in ("small", "large"):
        r = run_stateful(model_class(name).from_profile(config), invariants.for_model(name),
                         profile=profile, seed_value=0)
        section.rows.append({"case": f"{name} {config}", "status": r.status, "runs": r.stats["runs"],
                             "steps": r.stats["steps"], "seconds": r.stats["seconds"],
                             "steps_per_second": r.stats["steps_per_second"]})
        if r.status != "bounded-pass":
            section.status, section.reason = "failed", f"{config}: {r.status}"
    return section


def stateful_kernel(quick: bool) -> Section:
    """Hypothesis steps/s on the whole kernel (large: 2 CPUs, up to 8 tasks, 1,024 pages), and
    the model's memory: a populated large machine (2,000 random forks, mmaps, stores, pipes
    and pipe writes, and ticks), pickled, and the peak RSS of this section's process."""
    import pickle
    import random

    from model.kernel import LARGE, NR, KernelModel

    section = stateful_model("kernel", quick)
    model = KernelModel(LARGE)
    state, rng = model.init_state(), random.Random(0)
    # Pipes made O_NONBLOCK, so that no write sleeps for a reader that never comes.
    grow = {("syscall", NR["fork"]), ("syscall", NR["mmap"]), ("fs_syscall", NR["pipe2"]), ("fs_syscall", NR["write"])}
    for _ in range(500 if quick else 2_000):
        moves = [(a, args) for a, args in model.enabled(state)
                 if a.name in ("store", "tick") or (a.name, args[1] if len(args) > 1 else None) in grow]
        act, args = rng.choice(moves)
        state, _ = model.step(state, act, args)
    section.rows.append({"case": "kernel large, populated", "tasks": len(state.procs),
                         "anonymous_pages": len(state.mapcount), "pipes": len(state.pipes),
                         "pages_allocated": sum(1 << o for _, o in state.mm.allocated),
                         "state_pickled_bytes": len(pickle.dumps(state)), "peak_rss_bytes": _peak_rss()})
    return section


def prove_all(quick: bool) -> Section:
    """z3 solve time and cross-check time of every proof."""
    from checkers.prove import bench_prove

    bench = bench_prove(samples=200 if quick else 2_000, seed=0)
    section = Section()
    for name, p in bench["proofs"].items():
        section.rows.append({"case": name, "status": p["status"],
                             "solve_seconds": p["solve_seconds"], "crosscheck_seconds": p["crosscheck_seconds"]})
        if p["status"] != "pass":
            section.status, section.reason = "failed", f"{name}: {p['status']}"
    return section


def explore_tcp(quick: bool) -> Section:
    """The explorer on TCP sessions, every invariant and the deadlock check: the handshake and
    close alone, then a 3-byte transfer, each without and with a loss and a duplicate; then
    the handshake and close while two other peers flood a listener of backlog 1."""
    import invariants
    from checkers.explore import explore
    from model.tcp.model import TcpConfig, TcpModel

    section = Section()
    cases = [(writes, faults, 0) for writes in ((), (1, 1, 1)) for faults in (0, 1)] + [((), 0, 2)]
    for writes, faults, flood in cases:
        config = TcpConfig(client_writes=writes, losses=faults, duplicates=faults, syn_flood=flood)
        r = explore(TcpModel(config), invariants.for_model("tcp"), max_states=50_000 if quick else 300_000,
                    measure_memory=True)
        section.rows.append({
            "case": f"{len(writes)} bytes, {faults} loss + {faults} dup" + (f", {flood} peers flooding" if flood else ""),
            "status": r.status,
            "strength": r.strength, "states": r.stats["states"], "transitions": r.stats["transitions"],
            "seconds": r.stats["seconds"], "states_per_second": r.stats["states_per_second"],
            "table_bytes_per_state": r.stats["bytes_per_state"],
        })
        if r.status not in ("pass", "bounded-pass"):
            section.status, section.reason = "failed", f"{section.rows[-1]['case']}: {r.status}"
    return section


def kinv_check(quick: bool) -> Section:
    """Wall time of ``kinv check MODEL`` on the ci profile, model by model, each in a fresh
    process as a user runs it (``--quick``: the three quickest models only; a smaller budget
    would leave goals unreached and time a failing run)."""
    from checkers.mutants.generate import read_summary
    from model import MODELS

    section = Section()
    for name in ("buddy", "slub", "sync") if quick else MODELS:
        with tempfile.TemporaryDirectory(prefix="kinv-bench-") as tmp:
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "checkers.cli", "check", name, "--reports", tmp],
                                  capture_output=True, text=True, cwd=ROOT)
            seconds = time.perf_counter() - start
            summary = read_summary(Path(tmp)) or {}
        section.rows.append({"case": name, "status": summary.get("status"), "exit_code": proc.returncode,
                             "results": len(summary.get("results", [])), "seconds": round(seconds, 1)})
        if proc.returncode not in (0, 3):
            section.status, section.reason = "failed", f"{name}: exit {proc.returncode}"
    return section


# ---- Lock and wake-up protocols ---------------------------------------------------------------

PROTOCOLS = ROOT / "model" / "sync" / "protocols"
MEMORIES = ("sc", "tso")


def protocol_verdict(r: Any) -> str:
    """A protocol run in a few words: "holds", or what went wrong."""
    if not r.complete:
        return "bounded"
    wrong = [what for what, n in (("BUG_ON", r.bugs), ("lost wakeup", r.lost_wakeups),
                                  ("deadlock", r.deadlocks), ("loop bound", r.cut)) if n]
    if not r.holds:
        wrong.append("clause fails")
    return ", ".join(wrong) or "holds"


def reductions() -> tuple[str, ...]:
    """The reductions checkers.litmus.run offers besides none."""
    from checkers.litmus import REDUCTIONS

    return tuple(r for r in REDUCTIONS if r != "none")


def sync_protocols(quick: bool) -> Section:
    """The operational engine on every lock and wake-up protocol, under SC and TSO."""
    from checkers.litmus import run
    from model.sync.litmus import parse_file

    section = Section()
    extra = reductions()
    for path in sorted(PROTOCOLS.glob("*.litmus")):
        program = parse_file(path)
        for memory in MEMORIES:
            r = run(program, memory)
            row: dict[str, Any] = {
                "case": f"{path.stem} {memory}", "states": r.states, "transitions": r.transitions,
                "seconds": r.seconds, "states_per_second": round(r.states / r.seconds) if r.seconds else None,
                "verdict": protocol_verdict(r),
            }
            for name in extra:
                reduced = run(program, memory, reduction=name)
                row[f"states_{name}"] = reduced.states
                row[f"seconds_{name}"] = reduced.seconds
                if protocol_verdict(reduced) != row["verdict"]:
                    section.status = "failed"
                    section.reason = f"{path.stem} {memory}: {name} gives {protocol_verdict(reduced)}"
            section.rows.append(row)
    return section


def _with_threads(text: str, threads: int) -> str:
    """lll-mutex.litmus with more threads: copies of P1 and the final count raised."""
    body = re.search(r"^P1\(.*?^}\n", text, re.M | re.S)
    assert body is not None
    copies = "".join("\n" + body.group(0).replace("P1(", f"P{i}(", 1) for i in range(2, threads))
    text = text[: body.end()] + copies + text[body.end():]
    return text.replace("cnt=2", f"cnt={threads}").replace("C lll-mutex", f"C lll-mutex-{threads}", 1)


def _spin_verdict(run: SpinRun) -> str:
    if not run.errors:
        return "holds"
    kinds = [what for what, text in (("assertion", "assertion violated"), ("invalid end state", "invalid end state"))
             if text in run.output]
    return ", ".join(kinds) or "errors"


# Twin, defines, protocol file, threads (None: as in the file).
SPIN_TWINS: list[tuple[str, dict[str, int], str, int | None]] = [
    ("sleep_wake.pml", {"MB": 1}, "sleep-wake", None),
    ("sleep_wake.pml", {"MB": 0}, "sleep-wake+no-mb", None),
    ("lll_mutex.pml", {"NT": 2}, "lll-mutex", 2),
    ("lll_mutex.pml", {"NT": 2, "WAKE_ON": 1}, "lll-mutex+wake-on-1", 2),
    ("lll_mutex.pml", {"NT": 3}, "lll-mutex", 3),
]


def sync_spin(quick: bool) -> Section:
    """Spin on the Promela twins of sleep/wake and the lowlevellock mutex, beside kinv."""
    from checkers.litmus import run
    from model.sync.litmus import parse, parse_file

    missing = spin_missing()
    if missing:
        return Section(status="skipped", reason=missing)
    section = Section()
    extra = reductions()
    for pml, defines, stem, threads in SPIN_TWINS:
        if quick and threads == 3:
            continue
        path = PROTOCOLS / f"{stem}.litmus"
        program = parse_file(path) if threads in (None, 2) else parse(_with_threads(path.read_text(), threads))
        for memory in MEMORIES:
            ours = run(program, memory)
            tso = {"TSO": 1} if memory == "tso" else {}
            # -c0: go on past errors, so that the state count is the whole space's.
            spin = run_spin(HERE / "promela" / pml, {**defines, **tso}, ("-m100000", "-c0"))
            row = {
                "case": f"{stem}{f' x{threads}' if threads else ''} {memory}",
                "states": ours.states, "seconds": ours.seconds, "verdict": protocol_verdict(ours),
                "spin_states": spin.states_stored, "spin_seconds": spin.pan_seconds,
                "spin_reported_seconds": spin.pan_reported_seconds, "spin_errors": spin.errors,
                "spin_verdict": _spin_verdict(spin),
                "agree": ours.correct == (spin.errors == 0),
            }
            for name in extra:
                row[f"states_{name}"] = run(program, memory, reduction=name).states
            if not row["agree"]:
                section.status = "failed"
                section.reason = f"{row['case']}: kinv {row['verdict']}, Spin {row['spin_verdict']}"
            section.rows.append(row)
    return section


def litmus_z3(quick: bool) -> Section:
    """z3 solve time of the axiomatic engine on every litmus test and protocol, SC and TSO."""
    import statistics

    from checkers.axiomatic import Unsupported, axiomatic_verdict
    from checkers.litmus import litmus_files
    from model.sync.litmus import LitmusError, parse_file

    shared = Path("/work/shared/litmus/linux")
    suites = {"linux" if shared.is_dir() else "tests": shared if shared.is_dir() else ROOT / "tests" / "litmus",
              "protocols": PROTOCOLS}
    section = Section()
    for suite, folder in suites.items():
        for memory in MEMORIES:
            times: dict[str, float] = {}
            unsupported = 0
            for path in litmus_files([folder])[: 10 if quick else None]:
                try:
                    times[str(path.relative_to(folder))] = axiomatic_verdict(parse_file(path), memory).seconds
                except (Unsupported, LitmusError):
                    unsupported += 1
            slowest = max(times, key=times.__getitem__, default=None)
            section.rows.append({
                "case": f"{suite} {memory}", "tests": len(times), "unsupported": unsupported,
                "total_seconds": round(sum(times.values()), 3),
                "median_seconds": round(statistics.median(times.values()), 4) if times else None,
                "slowest": slowest, "slowest_seconds": times.get(slowest) if slowest else None,
            })
    return section


# Section name -> function(quick) -> Section, run in this order.
SECTIONS: dict[str, Callable[[bool], Section]] = {
    "explore_2pc": explore_2pc,
    "explore_buddy": functools.partial(explore_model, "buddy"),
    "explore_slub": functools.partial(explore_model, "slub"),
    "explore_sched": functools.partial(explore_model, "sched"),
    "stateful_buddy": functools.partial(stateful_model, "buddy"),
    "stateful_slub": functools.partial(stateful_model, "slub"),
    "stateful_sched": functools.partial(stateful_model, "sched"),
    "explore_tcp": explore_tcp,
    "stateful_tcp": functools.partial(stateful_model, "tcp"),
    "stateful_cgroup": functools.partial(stateful_model, "cgroup"),
    "explore_kernel": functools.partial(explore_model, "kernel"),
    "stateful_kernel": stateful_kernel,
    "prove": prove_all,
    "sync_protocols": sync_protocols,
    "sync_spin": sync_spin,
    "litmus_z3": litmus_z3,
    "kinv_check": kinv_check,
}


# ---- Report -----------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    cpu = None
    with contextlib.suppress(OSError):  # not Linux
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), None)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),  # other work on the machine skews the timings
        "spin": spin_version(),
        "commit": commit.stdout.strip() or None,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def print_table(name: str, section: Section) -> None:
    """One line per figure, one column per case: reads better than a very wide table."""
    print(f"\n{name}: {section.status}" + (f" ({section.reason})" if section.reason else ""))
    if not section.rows:
        return
    keys = list(dict.fromkeys(k for row in section.rows for k in row))
    cols = [[_cell(row.get(k)) for k in keys] for row in section.rows]
    label = max(map(len, keys))
    widths = [max(map(len, col)) for col in cols]
    for i, key in enumerate(keys):
        print(f"  {key:<{label}}  " + "  ".join(f"{col[i]:>{w}}" for col, w in zip(cols, widths, strict=True)))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description="kinv performance runner")
    parser.add_argument("--quick", action="store_true", help="smaller cases, for a quick look")
    parser.add_argument("--only", metavar="NAME", action="append",
                        help=f"run only this section (repeatable): {', '.join(SECTIONS)}")
    parser.add_argument("--out", metavar="FILE", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)  # one explorer run, as JSON
    args = parser.parse_args(argv)
    if args.child:
        _child(json.loads(args.child))
        return 0
    unknown = [n for n in args.only or [] if n not in SECTIONS]
    if unknown:
        print(f"benchmarks/run.py: unknown section {unknown[0]!r} (known: {', '.join(SECTIONS)})", file=sys.stderr)
        return 2

    report: dict[str, Any] = {"schema": SCHEMA, "quick": args.quick, "environment": environment(), "sections": {}}
    failed = False
    for name, fn in SECTIONS.items():
        if args.only and name not in args.only:
            continue
        try:
            section = fn(args.quick)
        except Exception as exc:
            section = Section(status="failed", reason=f"{type(exc).__name__}: {exc}")
        failed |= section.status == "failed"
        report["sections"][name] = asdict(section)
        print_table(name, section)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(args.out)  # atomic: never a half-written file
    print(f"\nwrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
