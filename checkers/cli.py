"""The ``kinv`` command: check, list, explore, prove, replay, mutants, litmus.

Exit codes (``checkers.results``): 0 every check passed (exhaustively, proved, or within its
budget), 1 a violation (or a surviving mutant, or a vacuous run), 2 bad usage or input (one
line naming the input and the problem, and nothing written), 3 incomplete (interrupted, a
wall-clock or memory cap met, z3's budget spent; with ``--strict``, also a bounded pass),
4 an internal error (the model or kinv raised: one line, and the traceback in a file).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from checkers import plan
from checkers.control import CONTROL, default_max_memory, install_signal_handlers, keep_stderr
from checkers.errors import UsageError
from checkers.results import COLOURS, EXIT_INCOMPLETE, EXIT_INTERNAL, EXIT_USAGE, exit_code

DEFAULT_REPORTS = "reports"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def seed_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def workers(text: str) -> str:
    return text if text in ("auto", "logical") else str(positive_int(text))


def memory_size(text: str) -> int:
    """Bytes, with an optional K, M, G or T suffix (powers of 1024): ``8G``."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    number, unit = text.rstrip("KMGTkmgt"), text[len(text.rstrip("KMGTkmgt")):].upper()
    if unit not in units:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 4096, 512M or 8G")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 4096, 512M or 8G") from None
    if not value >= 1 << 20:
        raise argparse.ArgumentTypeError(f"{text!r} is less than a megabyte")
    return int(value)


def caps(q: argparse.ArgumentParser) -> None:
    """The safety caps: they end a run as incomplete (exit 3), never decide a verdict."""
    q.add_argument("--max-seconds", type=positive_int, default=None, metavar="S",
                   help="wall-clock cap: stop within a second of it and report the run incomplete")
    q.add_argument("--max-memory", type=memory_size, default=None, metavar="SIZE",
                   help="resident memory per process (512M, 8G) at which a search stops, incomplete "
                   "(default: half the machine's memory, shared between the workers)")


def build_parser() -> Parser:
    p = Parser(prog="kinv", description="Check the Linux kernel model's invariants.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--seed", type=seed_int, default=0, help="seed of the random engines (default 0)")
        q.add_argument("--reports", default=DEFAULT_REPORTS, metavar="DIR", help="where runs write reports/")

    c = sub.add_parser("check", help="run the engines over the built-in models and write reports")
    c.add_argument("selectors", nargs="*", metavar="SELECTOR", help="model, invariant, proof or pattern (default: all)")
    c.add_argument("--engine", default=",".join(plan.ENGINES), help="comma-separated engines (default: all)")
    c.add_argument("--profile", choices=plan.PROFILES, default="ci", help="search effort (default ci)")
    c.add_argument("-n", "--workers", type=workers, default=None, help="parallel workers (pytest-xdist), or auto")
    c.add_argument("-v", "--verbose", action="store_true", help="pytest's verbose output")
    c.add_argument("--strict", action="store_true",
                   help="fail the run (exit 3) unless every check is exhaustive or proved")
    c.add_argument("--coverage", action="store_true",
                   help="record which lines and branches of model/ each engine executed (coverage.py), "
                   "per file in the report with the functions never entered; runs about three times slower")
    c.add_argument("--budget", default="", metavar="KEY=N,...",
                   help="override the profile's work budget: states (explore), runs and steps (stateful), "
                   "samples and rlimit (prove), e.g. states=50000,runs=50")
    caps(c)
    common(c)

    ls = sub.add_parser("list", help="list the invariants, proofs and mutants")
    ls.add_argument("selectors", nargs="*", metavar="SELECTOR")

    e = sub.add_parser("explore", help="exhaustive search of one model")
    e.add_argument("selectors", nargs="+", metavar="SELECTOR")
    e.add_argument("--config", choices=("small", "large"), default="small", help="model config profile (default small)")
    e.add_argument("--max-states", type=positive_int, default=None, help="budget: states stored")
    e.add_argument("--max-depth", type=positive_int, default=None, help="budget: steps from the initial state")
    e.add_argument("--graph", type=Path, default=None, metavar="FILE", help="write the state graph (.dot or .graphml)")
    e.add_argument("--strict", action="store_true", help="exit 3 unless the search is exhaustive")
    caps(e)
    common(e)

    pr = sub.add_parser("prove", help="run the z3 proofs")
    pr.add_argument("selectors", nargs="*", metavar="SELECTOR")
    pr.add_argument("--samples", type=positive_int, default=plan.BUDGETS["ci"].samples, help="cross-check inputs")
    pr.add_argument("--rlimit", type=positive_int, default=plan.BUDGETS["ci"].rlimit,
                    help="z3 resource units per query (a budget of work, the same on any machine)")
    caps(pr)
    common(pr)

    r = sub.add_parser("replay", help="reproduce a saved counterexample step by step")
    r.add_argument("file", type=Path)
    r.add_argument("--json", action="store_true", help="print the replay as JSON")

    m = sub.add_parser("mutants", help="run the mutant catalog (every mutant must be killed), or generated mutants")
    m.add_argument("selectors", nargs="*", metavar="SELECTOR",
                   help="mutant names or patterns (default: all); with --generate, one model")
    m.add_argument("--generate", action="store_true",
                   help="mutate the model's own source (comparisons, operators, constants, conditions, "
                   "statements, return values) and run `kinv check MODEL` on each mutant")
    m.add_argument("--sample", type=positive_int, default=30, metavar="N",
                   help="with --generate: mutants drawn with --seed from all sites (default 30)")
    m.add_argument("--profile", choices=plan.PROFILES, default="ci", help="with --generate: each check's profile")
    m.add_argument("--budget", default="", metavar="KEY=N,...", help="with --generate: each check's budget override")
    m.add_argument("-j", "--jobs", type=positive_int, default=1, metavar="J",
                   help="with --generate: mutants checked at once (default 1)")
    m.add_argument("--timeout", type=positive_int, default=None, metavar="S",
                   help="with --generate: wall-clock cap on one mutant's check, which is then timed out "
                   "(default: ten times the unmutated check's, at least 60)")
    m.add_argument("--equivalent", type=Path, default=None, metavar="FILE",
                   help="with --generate: mutant ids judged equivalent, one per line, left out of the score "
                   "(default: checkers/mutants/equivalent.txt)")
    m.add_argument("--fail-under", type=float, default=None, metavar="PCT",
                   help="with --generate: exit 1 when under PCT%% of the mutants are killed by an invariant")
    caps(m)
    common(m)

    lt = sub.add_parser(
        "litmus",
        help="run litmus tests under memory models, every interleaving",
        description="Exit 1 when a verdict disagrees with the expected one, the engines disagree, a "
        "search stops at --max-states, or a program hangs (lost wakeup, deadlock) or fires a BUG_ON.",
    )
    lt.add_argument("paths", nargs="+", metavar="PATH", help=".litmus files or directories of them")
    lt.add_argument("--model", default="sc,tso", help="comma-separated memory models (default sc,tso)")
    lt.add_argument("--json", type=Path, default=None, metavar="FILE", help="write one record per test")
    lt.add_argument("--max-states", type=positive_int, default=None, help="stop a search after this many states")
    lt.add_argument("-v", "--verbose", action="store_true", help="show each test's outcomes and witness")
    lt.add_argument(
        "--reduction",
        default="none",
        help="none, sleep (sleep sets), por (sleep and persistent sets), symmetry, or por+symmetry: the "
        "reduced search gives the verdict and its states, the full one the shortest witnesses and its "
        "states beside them (default none)",
    )
    lt.add_argument(
        "--engine",
        default="operational",
        help="comma-separated engines: operational (every interleaving), axiomatic (z3 over candidate "
        "executions); with both, any disagreement between them fails the run (default operational)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    # CI logs are no terminal: give tables room rather than rich's default 80 columns.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    keep_stderr()
    try:
        args = build_parser().parse_args(argv)
        return int(COMMANDS[args.command](args, console))
    except UsageError as e:
        print(f"kinv: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("kinv: interrupted; nothing written", file=sys.stderr)
        return EXIT_INCOMPLETE
    except Exception as e:  # a bug in kinv itself: never a verdict, never a traceback on the terminal
        path = save_traceback(e)
        print(f"kinv: internal error: {type(e).__name__}: {e} (traceback: {path})", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        CONTROL.reset()


def save_traceback(e: BaseException) -> str:
    import tempfile
    import traceback

    with tempfile.NamedTemporaryFile("w", prefix="kinv-traceback-", suffix=".txt", delete=False) as f:
        f.write("".join(traceback.format_exception(e)))
    return f.name


def start_control(args: argparse.Namespace, workers: int = 1) -> None:
    """The safety caps and signal handling of a command that runs in this process."""
    CONTROL.reset()
    CONTROL.configure(
        max_seconds=getattr(args, "max_seconds", None),
        max_memory=getattr(args, "max_memory", None) or default_max_memory(workers),
    )
    install_signal_handlers(CONTROL)


def cmd_check(args: argparse.Namespace, console: Console) -> int:
    import pytest

    engines = plan.parse_engines(args.engine)
    plan.resolve(args.selectors, engines)  # bad selectors and budgets fail here, before anything runs
    plan.parse_budget(args.budget)
    reports = Path(args.reports)
    check_reports_dir(reports)
    pytest_args = [
        "--kinv-only",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        f"--kinv-engine={','.join(engines)}",
        f"--kinv-profile={args.profile}",
        f"--kinv-seed={args.seed}",
        f"--kinv-reports={reports}",
        "-p",
        "no:cacheprovider",
        "-q" if not args.verbose else "-v",
        # The user's own pytest configuration (addopts, testpaths) is not this run's.
        "-c",
        os.devnull,
        "--rootdir",
        str(Path.cwd()),
    ]
    pytest_args += [f"--kinv-select={s}" for s in args.selectors]
    if args.strict:
        pytest_args.append("--kinv-strict")
    if args.budget:
        pytest_args.append(f"--kinv-budget={args.budget}")
    if args.max_seconds is not None:
        pytest_args.append(f"--kinv-max-seconds={args.max_seconds}")
    if args.max_memory is not None:
        pytest_args.append(f"--kinv-max-memory={args.max_memory}")
    if args.workers:
        pytest_args += ["-n", args.workers]
    from checkers.pytest_plugin import LAST_RUN

    LAST_RUN.clear()
    with contextlib.ExitStack() as stack:
        if args.coverage:
            import tempfile

            data = stack.enter_context(tempfile.TemporaryDirectory(prefix="kinv-coverage-"))
            pytest_args.append(f"--kinv-coverage={data}")
        code = pytest.main(pytest_args)
    if "statuses" in LAST_RUN:
        return exit_code(LAST_RUN["statuses"], strict=args.strict)
    if code == pytest.ExitCode.INTERRUPTED:
        print("kinv: interrupted before every job had a result; no report written", file=sys.stderr)
        return EXIT_INCOMPLETE
    if code == pytest.ExitCode.USAGE_ERROR:
        raise UsageError(f"pytest stopped with exit code {int(code)}; no report written")
    print(f"kinv: internal error: pytest stopped with exit code {int(code)}; no report written", file=sys.stderr)
    return EXIT_INTERNAL


def check_reports_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise UsageError(f"--reports {path}: not a directory")


def cmd_list(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    import invariants
    from checkers import mutants

    jobs = plan.resolve(args.selectors, plan.ENGINES)
    chosen = {n for j in jobs for n in j.names}
    muts = mutants.load_all()
    table = Table("name", "kind", "statement", "source", "mutants", title="kinv invariants and proofs")
    for name in sorted(chosen):
        inv = invariants.REGISTRY.get(name)
        pf = invariants.PROOFS.get(name)
        killers = ", ".join(m.name for m in muts.values() if m.breaks == name) or "-"
        if inv is not None:
            kind = "transition" if inv.transition else "state"
            table.add_row(name, kind, inv.statement, inv.source, killers)
        elif pf is not None:
            table.add_row(name, "proof", f"{pf.statement} ({pf.bounds})", pf.source, killers)
    console.print(table)
    return 0


def cmd_explore(args: argparse.Namespace, console: Console) -> int:
    from checkers.explore import explore
    from model import model_class

    jobs = plan.resolve(args.selectors, ("explore",))
    if len({j.model for j in jobs}) != 1:
        raise UsageError(f"selectors {' '.join(args.selectors)!r}: explore takes one model at a time")
    if args.graph is not None and args.graph.suffix not in (".dot", ".graphml"):
        raise UsageError(f"--graph {args.graph}: the file name must end in .dot or .graphml")
    check_reports_dir(Path(args.reports))
    job = jobs[0]
    import invariants

    invs = [invariants.REGISTRY[n] for n in job.names]
    model = model_class(job.model).from_profile(args.config)
    start_control(args)
    with live_progress(console, f"explore {job.model}") as progress:
        result = explore(
            model,
            invs,
            max_states=args.max_states,
            max_depth=args.max_depth,
            goals=invariants.goals_for(job.model, "explore") if args.config == "small" else [],
            keep_graph=args.graph is not None,
            progress=progress,
        )
    if args.graph is not None:
        from checkers import graph as graphs

        (graphs.to_dot if args.graph.suffix == ".dot" else graphs.to_graphml)(result.graph, args.graph)
        console.print(f"state graph: {args.graph}")
    return finish([result], args, console)


def cmd_prove(args: argparse.Namespace, console: Console) -> int:
    import invariants
    from checkers.prove import prove

    check_reports_dir(Path(args.reports))
    jobs = plan.resolve(args.selectors, ("prove",))
    start_control(args)
    results = []
    for job in jobs:
        with console.status(f"proving {job.names[0]}"):
            results.append(
                prove(invariants.PROOFS[job.names[0]], samples=args.samples, seed=args.seed, rlimit=args.rlimit)
            )
    return finish(results, args, console)


def finish(results: list[Any], args: argparse.Namespace, console: Console) -> int:
    """Print one line per result, write the run's reports, and give the exit code."""
    from checkers.report import write_run

    for r in results:
        console.print(
            f"[{COLOURS[r.status]}]{r.status.upper():12}[/] {r.model} {r.engine} {', '.join(r.invariants)}: {r.strength}"
        )
        if r.counterexample:
            console.print(f"      {r.counterexample.invariant}: {r.counterexample.violations[0]}")
        if r.unreached and not r.counterexample:
            console.print(f"      never reached: {', '.join(r.unreached)}")
    strict = getattr(args, "strict", False)
    meta = {"command": " ".join(sys.argv), "selectors": args.selectors, "seed": args.seed, "strict": strict}
    run = write_run(results, reports_dir=Path(args.reports), meta=meta)
    console.print(f"report: {run / 'report.html'}")
    return exit_code([r.status for r in results], strict=strict)


def cmd_replay(args: argparse.Namespace, console: Console) -> int:
    import json

    from checkers.replay import load_counterexample, print_replay, replay

    cex = load_counterexample(args.file)
    rep = replay(cex, source=args.file)
    if args.json:
        print(json.dumps(rep.to_json(), indent=2))
    else:
        print_replay(rep, console)
    return 1 if rep.reproduced else 0


def cmd_mutants(args: argparse.Namespace, console: Console) -> int:
    if args.generate:
        return cmd_generated(args, console)
    from checkers.mutants.run import print_outcomes, run_mutants
    from checkers.report import write_run

    check_reports_dir(Path(args.reports))
    start_control(args)
    with live_progress(console, "mutants") as progress:
        outcomes, orphans = run_mutants(args.selectors, seed=args.seed, progress=progress)
    print_outcomes(outcomes, orphans, console)
    meta = {
        "command": " ".join(sys.argv),
        "selectors": args.selectors,
        "seed": args.seed,
        "mutants": [
            {
                "name": o.mutant.name,
                "description": o.mutant.description,
                "breaks": o.mutant.breaks,
                "engine": o.mutant.engine,
                "killed": o.killed,
                "undecided": o.undecided,
                "work": o.work,
                "detail": o.detail,
            }
            for o in outcomes
        ],
        "orphans": orphans,
    }
    run = write_run([o.result for o in outcomes], reports_dir=Path(args.reports), meta=meta)
    console.print(f"report: {run / 'report.html'}")
    if all(o.killed for o in outcomes) and not orphans:
        return 0
    return EXIT_INCOMPLETE if any(o.undecided for o in outcomes) and not orphans else 1


def cmd_generated(args: argparse.Namespace, console: Console) -> int:
    """``kinv mutants --generate MODEL``: the mutation score of the model's own code."""
    from checkers import sources
    from checkers.mutants import generate

    if len(args.selectors) != 1:
        raise UsageError("--generate takes one model: kinv mutants --generate MODEL")
    model = args.selectors[0]
    plan.parse_budget(args.budget)
    equivalent = generate.read_equivalent(args.equivalent)
    reports = Path(args.reports)
    check_reports_dir(reports)
    all_sites = [s for path in sources.model_sources(model) for s in generate.sites(path)]
    chosen = generate.sample(all_sites, args.sample, args.seed)
    command = f"kinv check {model} --profile {args.profile}" + (f" --budget {args.budget}" if args.budget else "")
    with live_progress(console, f"{command}, unmutated") as _:
        failing, seconds = generate.baseline(model, profile=args.profile, seed=args.seed, budget=args.budget,
                                             timeout_s=args.timeout or 1800)
    if failing:
        raise UsageError(f"`{command}` does not pass on the unmutated model ({failing}): a mutation score "
                         "needs a passing baseline; give a budget that reaches the goals")
    timeout = args.timeout or generate.mutant_timeout(seconds)
    console.print(f"{model}: {len(chosen)} of {len(all_sites):,} mutation sites (seed {args.seed}), "
                  f"each checked with `{command}`, which passes unmutated in {seconds:.0f} s "
                  f"(a mutant's check is timed out after {timeout} s)")
    with live_progress(console, f"mutants --generate {model}") as progress, generate.sigterm_as_interrupt():
        outcomes, interrupted = generate.run_generated(
            model, chosen, seed=args.seed, profile=args.profile, budget=args.budget,
            timeout_s=timeout, progress=progress, jobs=args.jobs,
        )
    generate.print_generated(outcomes, console, equivalent)
    if interrupted:
        console.print(f"[yellow]interrupted: {len(outcomes)} of {len(chosen)} mutants checked[/]")
    score = generate.score(outcomes, equivalent)
    out = reports / "generated" / f"{model}-seed{args.seed}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomically(out, {
        "command": " ".join(sys.argv), "model": model, "seed": args.seed, "profile": args.profile,
        "budget": args.budget, "timeout_s": timeout, "sites": len(all_sites), "sampled": len(chosen), "interrupted": interrupted,
        "score": score,
        "mutants": [o.to_json() | {"equivalent": o.site.id in equivalent} for o in outcomes],
    })
    console.print(f"report: {out}")
    if interrupted:
        return EXIT_INCOMPLETE
    rate = score["killed_by_invariant_rate"]
    if args.fail_under is not None and (rate is None or rate * 100 < args.fail_under):
        return 1
    return 0


def _states_cell(res: Any) -> str:
    """A search's states, with the full search's after them when it was reduced."""
    if res.unreduced_states is None:
        return f"{res.states:,}"
    return f"{res.states:,} of {res.unreduced_states:,}"


def cmd_litmus(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    from checkers import litmus
    from model.sync.litmus import LitmusError, parse_file
    from model.sync.machine import LitmusConfig, LitmusModel
    from model.sync.memory import MEMORY_MODELS
    from model.sync.trace import diagram

    models = list(dict.fromkeys(m.strip() for m in args.model.split(",")))
    for m in models:
        if m not in MEMORY_MODELS:
            raise UsageError(f"--model {args.model}: unknown memory model {m!r} (known: {', '.join(MEMORY_MODELS)})")
    known = ("operational", "axiomatic")
    engines = list(dict.fromkeys(e.strip() for e in args.engine.split(",")))
    for e in engines:
        if e not in known:
            raise UsageError(f"--engine {args.engine}: unknown engine {e!r} (known: {', '.join(known)})")
    operational, axiomatic = "operational" in engines, "axiomatic" in engines
    if args.json is not None and not args.json.parent.is_dir():
        raise UsageError(f"--json {args.json}: no directory {args.json.parent}")
    if args.reduction not in litmus.REDUCTIONS:
        raise UsageError(
            f"--reduction {args.reduction}: unknown reduction (known: {', '.join(litmus.REDUCTIONS)})"
        )
    max_states = args.max_states or litmus.DEFAULT_MAX_STATES
    start = time.perf_counter()
    try:
        reports = litmus.run_paths(
            args.paths, models if operational else (), max_states=max_states, reduction=args.reduction
        )
    except LitmusError as e:
        raise UsageError(str(e)) from None
    ax_results: dict[str, dict[str, Any]] = {}
    if axiomatic:
        from checkers.axiomatic import Unsupported, agrees, run_reports

        ax_results = run_reports(reports, models)
    seconds = time.perf_counter() - start

    columns = [name for m in models for name, on in ((m, operational), (f"{m} axiomatic", axiomatic)) if on]
    table = Table("test", "expected", *columns, *(["states"] if operational else []), title="kinv litmus")
    tally = {litmus.AGREES: 0, litmus.STRONGER: 0, litmus.DISAGREES: 0, "unsupported": 0, "bounded": 0}
    engines_differ: list[str] = []
    ax_unsupported = 0
    styles = {litmus.AGREES: "green", litmus.STRONGER: "cyan", litmus.DISAGREES: "red"}
    for r in reports:
        if r.unsupported is not None:
            tally["unsupported"] += 1
            cells = [f"[yellow]unsupported: {r.unsupported}[/]"] * len(columns)
            table.add_row(r.name, r.expected, *cells, *(["-"] if operational else []))
            continue
        cells = []
        for m in models:
            if operational:
                res, verdict = r.results[m], r.judgement(m)
                if not res.complete:
                    tally["bounded"] += 1
                    cells.append(f"[red]Unknown: stopped at {res.states:,} states[/]")
                else:
                    if verdict:
                        tally[verdict] += 1
                    style = styles.get(verdict, "")
                    text = f"{res.shown}: {verdict}" if verdict else res.shown
                    cells.append(f"[{style}]{text}[/]" if style else text)
            if not axiomatic:
                continue
            ax = ax_results[r.file][m]
            if isinstance(ax, Unsupported):
                ax_unsupported += 1
                cells.append(f"[yellow]unsupported: {ax.feature}[/]")
                continue
            text = ax.shown + ("" if ax.complete else " (loops unrolled)")
            if operational:
                same = agrees(r.results[m], ax)
                if same is False:
                    engines_differ.append(f"{r.name} under {m}")
                cells.append(
                    text if same is None else f"[green]{text}: same[/]" if same else f"[red]{text}: DISAGREES[/]"
                )
            else:
                verdict = litmus.judge(r.expected, ax)  # an AxiomaticResult has shown and complete too
                if verdict:
                    tally[verdict] += 1
                style = styles.get(verdict, "")
                text = f"{text}: {verdict}" if verdict else text
                cells.append(f"[{style}]{text}[/]" if style else text)
        state_cells = ["/".join(_states_cell(r.results[m]) for m in models)] if operational else []
        table.add_row(r.name, r.expected, *cells, *state_cells)
    console.print(table)
    for r in reports:
        for m, res in r.results.items():
            for count, what in (
                (res.lost_wakeups, "a task sleeps forever with no waker left (lost wakeup)"),
                (res.deadlocks, "a thread waits forever (deadlock)"),
                (res.bugs, "a BUG_ON fires"),
            ):
                if count:
                    console.print(
                        f"[yellow]{r.name} under {m}: {count} terminal state(s) where {what}[/]"
                        + ("" if args.verbose else " (-v shows how)")
                    )
    if args.verbose:
        for r in reports:
            for m, res in r.results.items():
                console.print(f"{r.name} under {m}: {res.verdict} (positive {res.positive}, negative {res.negative})")
                for o in res.outcomes:
                    console.print(f"    {o}")
                machine = LitmusModel(LitmusConfig(parse_file(r.file), m))
                for what, trace in (
                    ("the witness", res.witness_steps),
                    ("a lost wakeup", res.lost_wakeup_steps),
                    ("a deadlock", res.deadlock_steps),
                    ("a BUG_ON", res.bug_steps),
                ):
                    if trace:
                        console.print(f"  {what}:", highlight=False)
                        for line in diagram(machine, trace):
                            console.print(line, highlight=False, markup=False)
                if res.hang:
                    console.print(f"  {res.hang}")
            for m, ax in ax_results.get(r.file, {}).items():
                if isinstance(ax, Unsupported):
                    continue
                console.print(f"{r.name} under {m} (axiomatic): {ax.shown}, z3 {ax.seconds:.3f} s")
                if ax.witness:
                    console.print("    " + "; ".join(f"{k}={v}" for k, v in ax.witness.items()))
                for n, line in enumerate(ax.reads_from, 1):
                    console.print(f"    {n:2}. {line}")
    states = sum(res.states for r in reports for res in r.results.values())
    full = sum(res.unreduced_states or 0 for r in reports for res in r.results.values())
    verdicts = sum(len(r.results) for r in reports) or sum(
        not isinstance(ax, Unsupported) for per in ax_results.values() for ax in per.values()
    )
    console.print(
        f"{len(reports)} tests ({tally['unsupported']} unsupported); {verdicts} verdicts under {', '.join(models)}: "
        f"{tally[litmus.AGREES]} agree with LKMM, {tally[litmus.STRONGER]} stronger than LKMM, "
        f"{tally[litmus.DISAGREES]} disagree, {tally['bounded']} stopped at the state bound; "
        + (f"{states:,} states " if operational else "")
        + (f"({full:,} without {args.reduction}) " if operational and args.reduction != "none" else "")
        + f"in {seconds:.2f} s"
    )
    if axiomatic:
        solved = [
            (ax.seconds, f"{r.name} under {m}")
            for r in reports
            for m, ax in ax_results.get(r.file, {}).items()
            if not isinstance(ax, Unsupported)
        ]
        slowest = max(solved, default=(0.0, "-"))
        console.print(
            f"axiomatic: {len(solved)} verdicts ({ax_unsupported} unsupported by the encoding)"
            + (f", {len(engines_differ)} disagree with the operational engine" if operational else "")
            + f"; z3 {sum(s for s, _ in solved):.2f} s, slowest {slowest[0]:.3f} s ({slowest[1]})"
        )
        for name in engines_differ:
            console.print(f"[red]{name}: the axiomatic and operational engines disagree[/]")
    if args.json is not None:
        tests = []
        for r in reports:
            record = r.to_json()
            if r.file in ax_results:
                record["axiomatic"] = {
                    m: {"unsupported": ax.feature}
                    if isinstance(ax, Unsupported)
                    else {**ax.to_json(), **({"agrees": agrees(r.results[m], ax)} if operational else {})}
                    for m, ax in ax_results[r.file].items()
                }
            tests.append(record)
        write_json_atomically(args.json, {"models": models, "engines": engines, "tests": tests})
        console.print(f"results: {args.json}")
    # A protocol that hangs or fires a BUG_ON fails the run, whatever its final clause says.
    broken = any(res.lost_wakeups or res.deadlocks or res.bugs for r in reports for res in r.results.values())
    return 1 if tally[litmus.DISAGREES] or tally["bounded"] or engines_differ or broken else 0


def write_json_atomically(path: Path, data: Any) -> None:
    import json
    import tempfile

    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
        json.dump(data, f, indent=2)
    os.replace(f.name, path)


class live_progress:
    """A transient status line while a long run works (shown only at a terminal)."""

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.title = title
        self.status: Any = None

    def __enter__(self) -> Any:
        if not self.console.is_terminal:
            return None
        self.status = self.console.status(self.title)
        self.status.__enter__()

        def update(p: dict[str, Any]) -> None:
            text = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in p.items())
            self.status.update(f"{self.title}: {text}")

        return update

    def __exit__(self, *exc: Any) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)


COMMANDS = {
    "check": cmd_check,
    "list": cmd_list,
    "explore": cmd_explore,
    "prove": cmd_prove,
    "replay": cmd_replay,
    "mutants": cmd_mutants,
    "litmus": cmd_litmus,
}


if __name__ == "__main__":
    sys.exit(main())
