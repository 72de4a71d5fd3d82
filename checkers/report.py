"""Run reports: ``reports/<run-id>/`` with its artefacts (DESIGN.md, "Reports").

- ``summary.json``: the versioned record of what the run established, which the other
  artefacts are rendered from. It holds nothing that depends on the machine's speed or the
  hour, so that the same command and seed give a byte-identical file anywhere;
- ``timings.json``: the rest: the run id, when it ran, and each engine's seconds and rates;
- ``junit.xml``: one testsuite per (model, engine), one testcase per invariant, for CI;
- ``report.html``: self-contained, offline; counterexamples replayed as steps with diffs;
- ``summary.md``: a short table for CI job summaries;
- ``counterexamples/*.json``: what ``kinv replay`` reads;
- ``tracebacks/*.txt``: where the model or kinv raised, for each result in error.

Statuses (``checkers.results.STATUSES``) are shown in every artefact as themselves: a
bounded pass is never drawn as a pass.

A model that draws its traces (``Model.diagram``: the sync model's per-CPU columns) has the
drawing of each counterexample in summary.json, junit.xml, report.html and summary.md.

A run directory is written atomically: everything goes into a hidden temporary directory
inside ``reports/`` named after the writing process, which is renamed into place only once
complete (and removed if anything raises), so a reader never sees half a run; one left by a
process that died is removed by the next run. ``reports/latest`` is then pointed at
the newest run: a relative symlink, built under a temporary name and swapped in with
``os.replace`` (atomic on POSIX); where symlinks are unavailable it is a one-line file
holding the run id. Run ids are UTC timestamps with a random suffix, so names sort by time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import tempfile
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2

import invariants
from checkers.replay import ABSENT, Replay, plain, replay, show
from checkers.results import STATUSES, SUMMARY_SCHEMA, Counterexample, EngineResult, exit_code, worst

TMP_PREFIX = ".tmp-"
LATEST = "latest"
RUN_ID = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{4}$")
DEADLOCK_STATEMENT = "Every reachable state has an enabled action or is an intended end state."

# Worst first: the status an invariant gets from several engines' checks. "stopped" means
# the engine ended at another invariant's violation before checking this one to its end.
SEVERITY = (*STATUSES, "stopped")
# Markdown: CI pages render emoji. HTML: marks in the common text fonts.
MARK = {"pass": "✅", "bounded-pass": "🔷", "fail": "❌", "error": "⚠️", "incomplete": "⏸️", "stopped": "➖"}
HTML_MARK = {"pass": "✔", "bounded-pass": "◇", "fail": "✘", "error": "!", "incomplete": "‖", "stopped": "–"}


def write_run(
    results: list[EngineResult], *, reports_dir: Path, meta: dict[str, Any], coverage: dict[str, Any] | None = None
) -> Path:
    """Write ``reports_dir/<run-id>/`` atomically, point ``latest`` at it, return its path.

    ``meta`` carries what the caller knows about the run: ``command`` (argv list or string),
    ``selectors``, ``seed``, ``started`` and ``finished`` (datetimes, ISO strings or epoch
    seconds); any other keys are recorded as given.
    """
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    remove_stale(reports_dir)
    run_id = new_run_id()
    while (reports_dir / run_id).exists():
        run_id = new_run_id()
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=reports_dir))
    try:
        _write_artefacts(tmp, reports_dir / run_id, results, meta, coverage)
        tmp.chmod(0o755)  # mkdtemp makes it private; a run dir is for everyone to read
        final = reports_dir / run_id
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    update_latest(reports_dir)
    return final


def remove_stale(reports_dir: Path) -> None:
    """Remove the temporary directories of writers that died (their pid is in the name)."""
    for p in reports_dir.iterdir():
        m = re.match(rf"^{re.escape(TMP_PREFIX)}(\d+)-", p.name)
        if m and p.is_dir() and not p.is_symlink() and not _alive(int(m.group(1))):
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def new_run_id() -> str:
    now = dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%S.%f}Z-{secrets.token_hex(2)}"


def update_latest(reports_dir: Path) -> None:
    """Point ``reports_dir/latest`` at the newest run directory, atomically."""
    runs = sorted(p.name for p in reports_dir.iterdir() if RUN_ID.match(p.name) and p.is_dir())
    if not runs:
        return
    tmp = reports_dir / f"{TMP_PREFIX}{LATEST}-{secrets.token_hex(4)}"
    try:
        try:
            os.symlink(runs[-1], tmp, target_is_directory=True)
        except (OSError, NotImplementedError):
            tmp.write_text(runs[-1] + "\n", encoding="utf-8")
        os.replace(tmp, reports_dir / LATEST)
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()


def latest_run(reports_dir: Path) -> Path | None:
    """The run directory ``latest`` names, or None when there is none."""
    link = Path(reports_dir) / LATEST
    if link.is_symlink():
        target = link.parent / os.readlink(link)
    elif link.is_file():
        target = link.parent / link.read_text(encoding="utf-8").strip()
    else:
        return None
    return target if target.is_dir() else None


# Writing.


def _write_artefacts(
    out: Path, final: Path, results: list[EngineResult], meta: dict[str, Any], coverage: dict[str, Any] | None
) -> None:
    """Write every artefact into ``out``; ``final`` is where it will live, for the replay
    commands the artefacts print."""
    files = _counterexample_files(results)
    replays = replay_all(results, files)
    diagrams = [rep.diagram if isinstance(rep, Replay) else None for rep in replays]
    tracebacks = _traceback_files(results)
    summary = build_summary(results, meta=meta, files=files, diagrams=diagrams, tracebacks=tracebacks)
    if coverage is not None:
        summary["coverage"] = coverage
    timings = build_timings(results, run_id=final.name, meta=meta)
    if any(files):
        (out / "counterexamples").mkdir()
    for res, name in zip(results, files, strict=True):
        if name and res.counterexample:
            _write_json(out / name, res.counterexample.to_json())
    if any(tracebacks):
        (out / "tracebacks").mkdir()
    for res, name in zip(results, tracebacks, strict=True):
        if name:
            (out / name).write_text(res.traceback or "", encoding="utf-8")
    _write_json(out / "summary.json", summary)
    _write_json(out / "timings.json", timings)
    ET.ElementTree(junit(summary, timings, run_dir=final)).write(
        out / "junit.xml", encoding="utf-8", xml_declaration=True
    )
    (out / "summary.md").write_text(markdown(summary), encoding="utf-8")
    (out / "report.html").write_text(html(summary, timings, replays, run_dir=final), encoding="utf-8")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _traceback_files(results: list[EngineResult]) -> list[str | None]:
    """``tracebacks/<model>-<engine>[-<n>].txt`` per result that raised with a traceback."""
    names: list[str | None] = []
    for i, res in enumerate(results):
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{res.model}-{res.engine}-{i + 1}")
        names.append(f"tracebacks/{stem}.txt" if res.traceback else None)
    return names


def _counterexample_files(results: list[EngineResult]) -> list[str | None]:
    """``counterexamples/<model>-<engine>-<invariant>.json`` per failed result; a mutant's name
    is appended, and a counter if two results still collide."""
    taken: set[str] = set()
    names: list[str | None] = []
    for res in results:
        cex = res.counterexample
        if cex is None:
            names.append(None)
            continue
        stem = re.sub(
            r"[^A-Za-z0-9._-]+",
            "_",
            "-".join(filter(None, (res.model, res.engine, cex.invariant, cex.mutant))),
        )
        name, n = stem, 1
        while name in taken:
            n += 1
            name = f"{stem}-{n}"
        taken.add(name)
        names.append(f"counterexamples/{name}.json")
    return names


# summary.json: the one record the other artefacts are rendered from.


def build_summary(
    results: list[EngineResult],
    *,
    meta: dict[str, Any],
    files: list[str | None] | None = None,
    diagrams: list[list[str] | None] | None = None,
    tracebacks: list[str | None] | None = None,
) -> dict[str, Any]:
    """The ``summary.json`` document (schema ``kinv.summary/2``): ``status`` of the run (the
    worst of its results' statuses) and the ``exit_code`` it gives, ``run`` metadata,
    ``counts``, one entry per engine ``results``, per-name ``invariants`` and ``proofs`` with
    each engine's check of them, and per-model ``goals`` with where each engine reached them.
    ``files``, ``diagrams`` and ``tracebacks`` are, per result, its counterexample's file, the
    model's drawing of it (a replay's ``diagram``) and its traceback's file. Nothing in it
    depends on time: that is ``build_timings``'s."""
    files = files if files is not None else [None] * len(results)
    diagrams = diagrams if diagrams is not None else [None] * len(results)
    tracebacks = tracebacks if tracebacks is not None else [None] * len(results)
    registry = invariants.load_all()
    checks: dict[str, list[dict[str, Any]]] = {}
    for res in results:
        for name, status in _checks(res):
            checks.setdefault(name, []).append(
                {"model": res.model, "engine": res.engine, "status": status, "strength": res.strength}
            )
    order = {name: i for i, name in enumerate([*registry, *invariants.PROOFS])}
    names = sorted(checks, key=lambda n: order.get(n, len(order)))
    proof_engine = {n for res in results if res.engine == "prove" for n in res.invariants}
    is_proof = {n: n in invariants.PROOFS or (n not in registry and n in proof_engine) for n in names}
    statuses = [r.status for r in results]
    strict = bool(meta.get("strict"))
    status = worst(statuses) if results else "pass"
    code = exit_code(statuses, strict=strict)
    # A mutant run's results fail by design: the run passes when every mutant is killed.
    meta = dict(meta)
    mutants = meta.pop("mutants", None)
    orphans = meta.pop("orphans", [])
    if mutants is not None:
        undecided = any(m.get("undecided") for m in mutants)
        killed = all(m["killed"] for m in mutants) and not orphans
        status = "pass" if killed else "incomplete" if undecided else "fail"
        code = {"pass": 0, "incomplete": 3, "fail": 1}[status]
    return {
        "schema": SUMMARY_SCHEMA,
        "status": status,
        "exit_code": code,
        "run": _run_meta(meta),
        "counts": {s: statuses.count(s) for s in STATUSES} | {"results": len(results)},
        "results": [
            _result_json(r, f, d, t) for r, f, d, t in zip(results, files, diagrams, tracebacks, strict=True)
        ],
        "invariants": [_invariant_json(n, checks[n], results) for n in names if not is_proof[n]],
        "proofs": [_proof_json(n, checks[n]) for n in names if is_proof[n]],
        "goals": _goals_json(results),
    } | ({"mutants": mutants, "orphans": orphans} if mutants is not None else {})


def build_timings(results: list[EngineResult], *, run_id: str, meta: dict[str, Any]) -> dict[str, Any]:
    """``timings.json``: when the run ran and how fast each engine went, per result in the
    order of summary.json's; none of it is part of a verdict."""
    started = _when(meta.get("started"))
    finished = _when(meta.get("finished")) or dt.datetime.now(dt.UTC)
    return {
        "schema": TIMINGS_SCHEMA,
        "run": run_id,
        "started": started.isoformat() if started else None,
        "finished": finished.isoformat(),
        "duration_s": round((finished - started).total_seconds(), 3) if started else None,
        "results": [{k: plain(v) for k, v in r.stats.items() if is_timing(k)} for r in results],
    }


TIMINGS_SCHEMA = "kinv.timings/1"


def is_timing(stat: str) -> bool:
    """Stats measured in seconds, or per second: they vary from run to run."""
    return stat.endswith(("seconds", "per_second")) and not stat.startswith("max_")


def _goals_json(results: list[EngineResult]) -> list[dict[str, Any]]:
    """Per goal the engines looked for: its statement and where each engine reached it."""
    goals = invariants.GOALS
    out: dict[str, dict[str, Any]] = {}
    for res in results:
        for name, where in res.goals.items():
            g = goals.get(name)
            entry = out.setdefault(
                name,
                {"name": name, "model": res.model, "statement": g.statement if g else None, "engines": {}},
            )
            entry["engines"][res.engine] = {"reached": where is not None, "at": _where(res.engine, where)}
    for entry in out.values():
        entry["status"] = "reached" if all(e["reached"] for e in entry["engines"].values()) else "unreached"
    order = {name: i for i, name in enumerate(goals)}
    return sorted(out.values(), key=lambda e: order.get(e["name"], len(order)))


def _where(engine: str, where: Any) -> str | None:
    if where is None:
        return None
    if isinstance(where, dict):  # stateful: {"run", "step"}
        return f"run {where['run']}, step {where['step']}"
    return f"depth {where}"


def _checks(res: EngineResult) -> list[tuple[str, str]]:
    cex = res.counterexample
    status = res.status
    if status == "fail" and cex is None and res.refutation is None:  # vacuous: the goals say why
        status = "pass" if res.complete else "bounded-pass"
    return case_statuses(status, res.invariants, cex.invariant if cex else None)


def case_statuses(status: str, names: list[str], failed: str | None) -> list[tuple[str, str]]:
    """(invariant, status) for every invariant one engine result speaks for: the one its
    counterexample violates fails, the others were left unfinished ("stopped"). A failed
    result without a counterexample (a refuted proof) fails every name it carries."""
    names = list(names)
    if failed is not None and failed not in names:
        names.append(failed)  # a deadlock, which no invariant list names
    if status != "fail" or failed is None:
        return [(n, status) for n in names]
    return [(n, "fail" if n == failed else "stopped") for n in names]


def _result_json(
    res: EngineResult, file: str | None, diagram: list[str] | None, traceback: str | None
) -> dict[str, Any]:
    cex = res.counterexample
    return {
        "model": res.model,
        "engine": res.engine,
        "status": res.status,
        "strength": res.strength,
        "invariants": list(res.invariants),
        "stats": {str(k): plain(v) for k, v in res.stats.items() if not is_timing(str(k))},
        "error": res.error,
        "traceback": traceback,
        "stopped": res.stopped,
        "unreached": list(res.unreached),
        "counterexample": None if cex is None else _cex_json(cex, file, diagram),
        "refutation": None if res.refutation is None else plain(res.refutation),
    }


def _cex_json(cex: Counterexample, file: str | None, diagram: list[str] | None) -> dict[str, Any]:
    return {
        "file": file,
        "invariant": cex.invariant,
        "kind": cex.kind,
        "mutant": cex.mutant,
        "seed": cex.seed,
        "steps": len(cex.steps),
        "violations": list(cex.violations),
    } | ({"diagram": list(diagram)} if diagram is not None else {})


def _invariant_json(name: str, checks: list[dict[str, Any]], results: list[EngineResult]) -> dict[str, Any]:
    inv = invariants.REGISTRY.get(name)
    deadlock = any(
        r.counterexample and r.counterexample.invariant == name and r.counterexample.kind == "deadlock"
        for r in results
    )
    return {
        "name": name,
        "model": inv.model if inv else checks[0]["model"],
        "statement": inv.statement if inv else (DEADLOCK_STATEMENT if deadlock else None),
        "source": inv.source if inv else None,
        "transition": inv.transition if inv else False,
        "status": worst((c["status"] for c in checks), SEVERITY),
        "checks": checks,
    }


def _proof_json(name: str, checks: list[dict[str, Any]]) -> dict[str, Any]:
    prf = invariants.PROOFS.get(name)
    return {
        "name": name,
        "statement": prf.statement if prf else None,
        "bounds": prf.bounds if prf else None,
        "source": prf.source if prf else None,
        "status": worst((c["status"] for c in checks), SEVERITY),
        "checks": checks,
    }


def _run_meta(meta: dict[str, Any]) -> dict[str, Any]:
    command = meta.get("command")
    run: dict[str, Any] = {
        "kinv_version": _version(),
        "python": platform.python_version(),
        "command": shlex.join(command) if isinstance(command, list | tuple) else command,
        "selectors": list(meta.get("selectors") or []),
        "seed": meta.get("seed"),
    }
    for key, value in meta.items():
        if key not in ("started", "finished"):
            run.setdefault(str(key), plain(value))
    return run


def _when(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)  # naive times are taken as UTC


def _version() -> str:
    try:
        return metadata.version("kinv")
    except metadata.PackageNotFoundError:
        return "unknown"


# junit.xml


def junit(summary: dict[str, Any], timings: dict[str, Any], *, run_dir: Path) -> ET.Element:
    """JUnit XML: one testsuite per (model, engine) result, one testcase per invariant, and
    one per reachability goal the engine looked for. A bounded pass passes (unless the run
    is strict) but says so: a ``kinv.status`` property on the testcase and the strength in
    its system-out; an incomplete check is skipped, with why in the message."""
    suites = ET.Element("testsuites", name="kinv")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    total_time = 0.0
    strict = bool(summary["run"].get("strict"))
    goals = {g["name"]: g for g in summary.get("goals", [])}
    for res, timing in zip(summary["results"], timings["results"], strict=True):
        cex = res["counterexample"]
        classname = f"kinv.{res['model']}.{res['engine']}"
        seconds = _seconds(timing)
        total_time += seconds
        suite = ET.SubElement(suites, "testsuite", name=classname, time=f"{seconds:.3f}")
        if timings["started"]:
            suite.set("timestamp", timings["started"][:19])  # JUnit wants no zone
        props = ET.SubElement(suite, "properties")
        for key, value in (
            ("status", res["status"]),
            ("strength", res["strength"]),
            ("run", timings["run"]),
            ("seed", summary["run"]["seed"]),
        ):
            if value is not None:
                ET.SubElement(props, "property", name=key, value=str(value))
        counts = dict.fromkeys(totals, 0)
        status = res["status"]
        if status == "fail" and cex is None and res["refutation"] is None:
            status = "bounded-pass"  # vacuous: the goal testcases fail, the invariants held
        cases = case_statuses(status, res["invariants"], cex["invariant"] if cex else None)
        cases += [
            (name, "fail" if name in res["unreached"] else "pass")
            for name, g in goals.items()
            if res["engine"] in g["engines"] and g["model"] == res["model"]
        ]
        for name, case_status in cases:
            case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0.000")
            counts["tests"] += 1
            if name in goals:
                outcome = _goal_outcome(goals[name], res["engine"])
            else:
                outcome = _outcome(res, case_status, run_dir, strict)
            if outcome is not None:
                case.append(outcome)
                counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[outcome.tag]] += 1
            if case_status in ("pass", "bounded-pass") and outcome is None:
                case_props = ET.SubElement(case, "properties")
                ET.SubElement(case_props, "property", name="kinv.status", value=case_status)
                ET.SubElement(case, "system-out").text = f"{case_status}: {res['strength']}"
        for key, n in counts.items():
            suite.set(key, str(n))
            totals[key] += n
    for key, n in totals.items():
        suites.set(key, str(n))
    suites.set("time", f"{total_time:.3f}")
    ET.indent(suites)
    return suites


def _goal_outcome(goal: dict[str, Any], engine: str) -> ET.Element | None:
    where = goal["engines"][engine]
    if where["reached"]:
        return None
    element = ET.Element("failure", message=f"never reached: {goal['statement']}", type="kinv.vacuous")
    element.text = f"{goal['name']}: {engine} never reached it, so its pass says nothing there"
    return element


def _outcome(res: dict[str, Any], status: str, run_dir: Path, strict: bool) -> ET.Element | None:
    """The <failure>, <error> or <skipped> child of a testcase; None when it passed."""
    cex = res["counterexample"]
    if status == "error":
        element = ET.Element("error", message=_first_line(res["error"]), type="kinv.error")
        element.text = res["error"] + (f"\ntraceback: {run_dir / res['traceback']}" if res.get("traceback") else "")
    elif status == "stopped":
        message = f"not checked to the end: the engine stopped at {cex['invariant']}"
        element = ET.Element("skipped", message=message)
    elif status == "incomplete":
        element = ET.Element("skipped", message=res["strength"])
    elif status == "bounded-pass" and strict:
        element = ET.Element("failure", message=f"not exhaustive (--strict): {res['strength']}", type="kinv.bounded")
    elif status == "fail" and cex is None:  # a refuted proof: no trace, a solver model
        element = ET.Element("failure", message=res["strength"], type="kinv.refutation")
        element.text = f"{res['strength']}\nrefutation: {json.dumps(res['refutation'])}"
    elif status == "fail":
        lines = list(cex["violations"]) or ["(no violation sentence recorded)"]
        lines += cex.get("diagram", [])
        if cex["mutant"]:
            lines.append(f"under mutant {cex['mutant']}")
        if cex["file"]:
            lines.append(f"replay the {cex['steps']} steps with: kinv replay {run_dir / cex['file']}")
        element = ET.Element("failure", message=lines[0], type=f"kinv.{cex['kind']}")
        element.text = "\n".join(lines)
    else:
        return None
    return element


def _seconds(stats: dict[str, Any]) -> float:
    """The engine's wall time from its timings: ``seconds``, or the sum of its ``*_seconds``
    phases."""
    numbers = {k: v for k, v in stats.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    if "seconds" in numbers:
        return float(numbers["seconds"])
    return float(sum(v for k, v in numbers.items() if k.endswith("_seconds") and not k.startswith("max_")))


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else "error"


# summary.md


def markdown(summary: dict[str, Any]) -> str:
    """A short Markdown summary: verdict, an invariant x engine table, the goals, and
    counterexample headlines. Each cell names its status in words beside the mark. Like
    summary.json it holds no time, so the same run gives the same page."""
    run = summary["run"]
    status = summary["status"]
    engines = list(dict.fromkeys(r["engine"] for r in summary["results"]))
    strict = " (not accepted: --strict)" if status == "bounded-pass" and summary["exit_code"] else ""
    lines = [f"### kinv: {MARK[status]} {status}{strict}", ""]
    counts = summary["counts"]
    facts = [f"{counts['results']} engine results"]
    facts += [f"{counts[s]} {s}" for s in STATUSES if counts.get(s)]
    if run["seed"] is not None:
        facts.append(f"seed {run['seed']}")
    lines += [" · ".join(facts), ""]
    if "mutants" in summary:
        lines += ["| mutant | must break | engine | verdict |", "|---|---|---|---|"]
        for m in summary["mutants"]:
            mark = MARK["pass" if m["killed"] else "incomplete" if m.get("undecided") else "fail"]
            lines.append(f"| `{m['name']}` | `{m['breaks']}` | {m['engine']} | {mark} {_md(m['detail'])} |")
        lines += [f"- no mutant breaks `{name}`" for name in summary["orphans"]]
        lines.append("")
        return "\n".join(lines)
    lines += ["| engine | model | status | strength |", "|---|---|---|---|"]
    for r in summary["results"]:
        who = r["model"] + (f" `{r['invariants'][0]}`" if r["engine"] == "prove" else "")
        lines.append(f"| {r['engine']} | {who} | {MARK[r['status']]} {r['status']} | {_md(r['strength'])} |")
    lines.append("")
    rows = summary["invariants"] + summary["proofs"]
    if rows and engines:
        lines.append("| invariant | " + " | ".join(engines) + " |")
        lines.append("|---|" + "---|" * len(engines))
        for row in rows:
            cells = []
            for engine in engines:
                found = [c["status"] for c in row["checks"] if c["engine"] == engine]
                if found:
                    status = worst(found, SEVERITY)
                    cells.append(f"{MARK[status]} {status}")
                else:
                    cells.append("")
            lines.append(f"| `{row['name']}` | " + " | ".join(cells) + " |")
        lines.append("")
    goals = summary.get("goals", [])
    if goals:
        lines += ["| goal | " + " | ".join(engines) + " |", "|---|" + "---|" * len(engines)]
        for g in goals:
            cells = []
            for engine in engines:
                where = g["engines"].get(engine)
                if where is None:
                    cells.append("")
                else:
                    cells.append(f"✅ {where['at']}" if where["reached"] else "❌ not reached")
            lines.append(f"| `{g['name']}` | " + " | ".join(cells) + " |")
        lines.append("")
    refuted = [r for r in summary["results"] if r["refutation"] is not None]
    if refuted:
        lines += ["**Refuted proofs**", ""]
        lines += [f"- **{', '.join(r['invariants'])}**: {_md(r['strength'])}" for r in refuted]
        lines.append("")
    failed = [r for r in summary["results"] if r["counterexample"]]
    if failed:
        lines += ["**Counterexamples**", ""]
        for r in failed:
            cex = r["counterexample"]
            head = _md(cex["violations"][0]) if cex["violations"] else "(no sentence)"
            where = f" · `{cex['file']}`" if cex["file"] else ""
            under = f", mutant {cex['mutant']}" if cex["mutant"] else ""
            lines.append(
                f"- **{cex['invariant']}** ({r['engine']}, {cex['steps']} steps{under}): {head}{where}"
            )
            if "diagram" in cex:
                lines += ["", *_fenced(cex["diagram"], indent="  ")]
        lines.append("")
    if "coverage" in summary:
        from checkers.coverage import markdown_table

        lines += [*markdown_table(summary["coverage"]), ""]
    errored = [r for r in summary["results"] if r["status"] == "error"]
    if errored:
        lines += ["**Errors**", ""]
        for r in errored:
            where = f" · `{r['traceback']}`" if r.get("traceback") else ""
            lines.append(f"- {r['model']} / {r['engine']}: {_md(_first_line(r['error']))}{where}")
        lines.append("")
    return "\n".join(lines)


def _fenced(text: list[str], indent: str = "") -> list[str]:
    """A fenced code block (in a list item when indented), its fence longer than any run of
    backticks in the text."""
    fence = "```"
    while any(fence in line for line in text):
        fence += "`"
    return [indent + fence + "text", *(indent + line if line else line for line in text), indent + fence]


def _md(text: str) -> str:
    """One line of table-safe text; CI summaries render inline HTML, so ``<`` is escaped."""
    return " ".join(text.split()).replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")


# report.html


def html(
    summary: dict[str, Any], timings: dict[str, Any], replays: list[Replay | str | None], *, run_dir: Path
) -> str:
    """``replays`` as ``replay_all`` gives them, one per result of ``summary``."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    views = [
        _cex_view(entry, rep)
        for entry, rep in zip(summary["results"], replays, strict=True)
        if rep is not None
    ]
    coverage_rows = None
    if "coverage" in summary:
        from checkers.coverage import rows

        coverage_rows = rows(summary["coverage"])
    return env.get_template("report.html.j2").render(
        summary=summary, timings=timings, counterexamples=views, mark=HTML_MARK, run_dir=str(run_dir),
        statuses=STATUSES, coverage=coverage_rows,
    )


def replay_all(results: list[EngineResult], files: list[str | None]) -> list[Replay | str | None]:
    """Each result's counterexample replayed, once for every artefact that shows it: the
    Replay, or the sentence saying why there is none, or None for a result without one."""
    replays: list[Replay | str | None] = []
    for res, file in zip(results, files, strict=True):
        cex = res.counterexample
        if cex is None:
            replays.append(None)
        elif res.engine == "prove":
            replays.append("a solver model, not a trace: nothing to replay")
        else:
            try:
                replays.append(replay(cex, source=file or "counterexample"))
            except Exception as e:  # a broken model must not take the report down with it
                replays.append(f"replay failed: {e}" if str(e) else f"replay failed: {type(e).__name__}")
    return replays


def _cex_view(entry: dict[str, Any], rep: Replay | str) -> dict[str, Any]:
    """What the template shows for one counterexample: its replay, or why there is none."""
    view: dict[str, Any] = {"result": entry, "cex": entry["counterexample"], "replay": None, "error": None}
    if isinstance(rep, str):
        view["error"] = rep
    else:
        view["replay"] = _replay_view(rep)
    return view


def _replay_view(rep: Replay) -> dict[str, Any]:
    return {
        "reproduced": rep.reproduced,
        "violations": rep.violations,
        "initial": _pretty(rep.initial),
        "diagram": rep.diagram,
        "steps": [
            {
                "index": s.index,
                "label": s.label,
                "result": None if s.result is None else show(s.result),
                "diff": [
                    (c.path, show(c.old), show(c.new), c.old is ABSENT, c.new is ABSENT) for c in s.diff
                ],
                "state": _pretty(s.state),
            }
            for s in rep.steps
        ],
    }


def _pretty(value: Any, indent: str = "") -> str:
    """Indented JSON that keeps short lists and objects on one line, so that a state with
    per-page arrays stays readable."""
    flat = json.dumps(value, ensure_ascii=False, default=repr)
    if len(indent) + len(flat) <= 100 or not isinstance(value, dict | list) or not value:
        return flat
    inner = indent + "  "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {_pretty(v, inner).lstrip()}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    return "[\n" + ",\n".join(inner + _pretty(v, inner).lstrip() for v in value) + f"\n{indent}]"
