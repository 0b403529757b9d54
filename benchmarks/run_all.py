"""Run the main ``benchmarks/bench_*.py`` at a report size and write their figures to one page.

Each script runs in its own process (so one failure or one slow import does not
spoil the others), with the arguments of :data:`REPORT` (or :data:`QUICK` with
``--quick``); its printed figures go into the page verbatim, next to the exact
command and its wall time. The page starts with the machine (cores, RAM, CPU
model), the date and the versions of Python, numpy, torch, napari and pyxem, and
ends with notes on where the project loses.

The page is written to ``benchmarks/results/run_all.md`` by default, never over
an existing file without ``--overwrite``: ``docs/benchmarks.md`` began as such a
page but has since gained sections written by hand (before/after comparisons,
diagnoses, what was tried), which a regenerated page would drop. Compare the
figures and carry them over by hand.

Run::

    python benchmarks/run_all.py                 # report size, writes benchmarks/results/run_all.md
    python benchmarks/run_all.py --quick         # smoke test of every script
    python benchmarks/run_all.py --only tomography,tables --out /tmp/b.md

Budget: the report size is chosen to finish in under 20 minutes on 2 CPU cores.
Table 2 (loss ablation) needs five trainings: the report reads a saved run
(``benchmarks/results/table2.json``, made by the command recorded in it) when it
exists, else trains with a token budget and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TABLE2_JSON = HERE / "results" / "table2.json"

#: script name -> (arguments at report size, arguments for --quick). ``{table2}`` is filled in at run time.
REPORT = {
    "synth": ["--repeat", "5"],
    "rectification": ["--n", "50", "--n-dislocations", "10", "--size", "512", "--overlay"],
    "detector": ["--n-test", "50", "--n-plain", "10", "--n-dark", "10", "--n-wide", "30", "--size", "256"],
    "real_detector": [],
    "line_statistics": ["--n-synth", "200"],
    "matcher": ["--n", "10", "--repeats", "3"],
    "virtual": ["--skip-disk", "--small", "--repeats", "2"],
    "particles": [],
    "tomography": ["--seeds", "5"],
    "tables": ["--table1", "--n", "6", "--size", "256", "{table2}"],
    "lines3d": ["--n", "5", "--size", "384"],
    "multiview": ["--datasets", "6"],
    "instances": ["--seeds", "8"],
    "tracking": ["--seeds", "8"],
    "topology_rank": [],
    "particles_4dstem": [],
}
QUICK = {
    "synth": ["--repeat", "1"],
    "rectification": ["--n", "2", "--size", "256", "--source", "foil"],
    "detector": ["--n-test", "2", "--n-plain", "1", "--n-dark", "1", "--n-wide", "1", "--size", "128"],
    "real_detector": [],
    "line_statistics": ["--n-synth", "5"],
    "matcher": ["--n", "1", "--no-timing"],
    "virtual": ["--skip-disk", "--small", "--repeats", "1"],
    "particles": ["--quick"],
    "tomography": ["--quick"],
    "tables": ["--quick", "--table1", "{table2}"],
    "lines3d": ["--n", "1", "--size", "256"],
    "multiview": ["--datasets", "1"],
    "instances": ["--seeds", "1", "--spacings", "5"],
    "tracking": ["--seeds", "1"],
    "topology_rank": ["--seeds", "2"],
    "particles_4dstem": ["--seeds", "1"],
}
#: What each section shows (the page's headings).
TITLES = {
    "synth": "Synthetic data generator: speed",
    "rectification": "Rectification accuracy: any tilt axis, quarter-field shifts, contrast changes, overlays",
    "detector": "Dislocation detector (UNet): segmentation accuracy and speed",
    "real_detector": "Dislocation detector on real micrographs: centreline F1 against hand-drawn lines",
    "line_statistics": "Real micrographs beside the training generator: line width, contrast, noise",
    "matcher": "Stereo matcher: disparity accuracy, SGBM baseline, per-stage timings of the reconstruction",
    "virtual": "Virtual imaging (4D-STEM): speed against numpy and pyxem",
    "particles": "Nanoparticles: recall, precision, 3D error, g(r)",
    "tomography": "Stereo from 2 views against tomography (WBP, SART) from n views (thesis Fig. 3.8)",
    "tables": "The paper's Table 1 (depth error vs stereo angle) and Table 2 (loss ablation)",
    "lines3d": "3D lines: coverage, precision, depth error and calibrated uncertainty",
    "multiview": "Multi-view 3D lines from one 4D-STEM scan",
    "instances": "Single dislocations inside pile-ups: instances",
    "tracking": "In-situ time series: tracking accuracy and velocity error",
    "topology_rank": "Ranking virtual detectors by a topological score",
    "particles_4dstem": "Particles from one 4D-STEM scan",
}


def machine() -> dict:
    info = {"cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)), "cpu": platform.processor()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()
        info["ram_gib"] = round(int(mem[1]) / 2 ** 20, 1)
    except OSError:
        pass
    info["platform"] = platform.platform()
    return info


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("numpy", "torch", "napari", "pyxem", "scikit-image", "napari-stereo-tem"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_script(name: str, args: list[str], *, timeout: float, cores: int | None) -> dict:
    cmd = [sys.executable, str(HERE / f"bench_{name}.py"), *args]

    def pin():  # run on the first ``cores`` CPUs only
        if cores:
            os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])

    env = {**os.environ, "OMP_NUM_THREADS": str(cores or os.cpu_count()), "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, preexec_fn=pin, env=env)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = "timeout", (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or ""), ""
    wall = time.perf_counter() - t0
    result = None
    lines = []
    for line in out.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
        else:
            lines.append(line)
    shown = " ".join(["python", f"benchmarks/bench_{name}.py", *args])
    return {"name": name, "command": shown, "rc": rc, "wall_s": wall, "stdout": "\n".join(lines).strip(),
            "stderr_tail": "\n".join(err.strip().splitlines()[-15:]), "result": result}


def notes(runs: dict) -> list[str]:
    """Where the project loses, read off the figures."""
    out = []
    tomo = (runs.get("tomography") or {}).get("result") or {}
    verdict = tomo.get("verdict", {})
    for method in ("stereo (truth disparity)", "stereo (pipeline)"):
        v = verdict.get(method)
        if isinstance(v, dict):
            word = "is lower than" if v["beats_all_tomography_n_le_8"] else "is NOT lower than"
            per_seed = tomo.get("per_seed") or [tomo]
            wins = sum(bool(r.get("verdict", {}).get(method, {}).get("beats_all_tomography_n_le_8")) for r in per_seed)
            out.append(f"Tomography comparison: {method} ({v['mean']:.2f} px, mean symmetric 3D distance) {word} the "
                       f"best WBP/SART reconstruction from n <= 8 views ({verdict['best_tomography_n_le_8']:.2f} px); "
                       f"lower on {wins} of {len(per_seed)} synthetic specimens.")
    rows = {(r["method"], r["n_views"]): r for r in tomo.get("rows", []) if "mean" in r}
    pipe = rows.get(("stereo (pipeline)", 2))
    if pipe:
        better = sorted(f"{m} n={n}" for (m, n), r in rows.items() if m in ("wbp", "sirt") and r["mean"] < pipe["mean"])
        if better:
            out.append("Tomography reconstructions better than the stereo pipeline: " + ", ".join(better)
                       + " (tomography needs those views and the dose that comes with them).")
    tables = (runs.get("tables") or {}).get("result") or {}
    t1 = tables.get("table1")
    if t1:
        rows1 = t1["rows"]
        worse = [a for a, r in rows1.items() if r["lines_refined"] > r["lines_raw"]]
        if worse:
            out.append(f"Table 1: refinement does not lower the 3D-line depth error at {', '.join(worse)} degrees.")
        best_angle = min(rows1, key=lambda a: rows1[a]["lines_refined"])
        out.append(f"Table 1: our lowest refined 3D-line depth error is at {best_angle} degrees (paper: 8 degrees).")
        out.append(f"Table 1 uses only {t1['n_pairs']} synthetic pairs per angle at {t1['size']} px: the figures "
                   "are noisy, and synthetic depths are not comparable in scale with the paper's real TiAl pairs.")
    t2 = tables.get("table2")
    if t2:
        epe = {k: v["epe"] for k, v in t2["rows"].items()}
        best = min(epe, key=epe.get)
        if best != "disp+var+warp":
            out.append(f"Table 2: with {t2['budget_steps']} training steps per row the lowest EPE is '{best}', "
                       "not the paper's disp+var+warp; the budget is far below the paper's, so the ranking is weak.")
        if "warp" in epe and epe["warp"] != max(epe.values()):
            out.append("Table 2: warp-only is not the worst row here, unlike the paper.")
    for name, run in runs.items():
        if run["rc"] != 0:
            out.append(f"bench_{name}.py did not finish cleanly (exit {run['rc']}); see its section.")
        elif "SOME TARGETS MISSED" in run["stdout"]:
            out.append(f"bench_{name}.py: some of its targets are missed; see its section.")
    return out


def render(runs: dict, *, total_s: float, quick: bool, cores) -> str:
    mach, vers = machine(), versions()
    text = ["# Benchmarks", "",
            f"Generated by `python benchmarks/run_all.py{' --quick' if quick else ''}` on "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; total wall time **{total_s / 60:.1f} min**"
            f"{f' (pinned to {cores} cores)' if cores else ''}. Every figure below is printed by the script named "
            "in its section and can be re-run with the command shown. All accuracy figures use synthetic data "
            "from the held-out `TEST_SEEDS`.", "",
            "## Machine and versions", "",
            f"- CPU: {mach.get('cpu')}, {mach['cores']} cores ({mach['usable_cores']} usable), "
            f"RAM {mach.get('ram_gib', '?')} GiB, {mach['platform']}",
            "- " + ", ".join(f"{k} {v}" for k, v in vers.items()), "",
            "The machine was shared with other work while these ran: timings are upper bounds.", "",
            "## How the 3D figures are defined", "",
            "- **Symmetric 3D distance** (`napari_stereo_tem.evaluation.line_set_distance`): both line sets are "
            "densified to points every 0.5 px; every predicted point's distance to the nearest true point and every "
            "true point's distance to the nearest predicted point are averaged together (px). `pred->true` alone "
            "measures stray lines, `true->pred` alone missed lines.",
            "- **Depth error**: `|z - z_true|` of each predicted point against the true point nearest in `(x, y)` "
            "(within 3 px), i.e. the depth given to a line seen at that place, as in the paper's Table 1.",
            "- The stereo depth origin is free (rectification); where noted, the global depth offset is removed "
            "first (median of the depth differences).",
            "- `stereo-tem evaluate DIR` gives the same figures, plus segmentation, disparity, re-projection and "
            "particle figures, for any folder of cases with truth.", ""]
    lost = notes(runs)
    text += ["## Verdicts, and where the project loses (read off the figures below)", ""]
    text += [f"- {n}" for n in lost] if lost else ["- Nothing flagged automatically; read the tables."]
    text += [""]
    for name, run in runs.items():
        text += [f"## {TITLES.get(name, name)}", "", f"`{run['command']}` — {run['wall_s']:.0f} s, exit {run['rc']}", ""]
        if name in ("tomography", "tables"):  # these print Markdown
            text += [run["stdout"] or "(no output)", ""]
        else:
            text += ["```text", run["stdout"] or "(no output)", "```", ""]
        if run["rc"] != 0 and run["stderr_tail"]:
            text += ["Error output (last lines):", "", "```text", run["stderr_tail"], "```", ""]
    return "\n".join(text) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of every script")
    parser.add_argument("--only", default=None, help="comma-separated script names (e.g. tomography,tables)")
    parser.add_argument("--out", default=str(HERE / "results" / "run_all.md"))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--cores", type=int, default=2, help="pin the scripts to this many CPUs (0: no pinning)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per script")
    parser.add_argument("--table2-budget", type=int, default=None,
                        help="train Table 2 with this many steps per row instead of reading the saved run")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        parser.error(f"{out} exists; give another --out or --overwrite (docs/benchmarks.md holds sections "
                     "written by hand that a regenerated page would drop)")
    plan = QUICK if args.quick else REPORT
    names = [n for n in plan if args.only is None or n in args.only.split(",")]
    missing = [n for n in names if not (HERE / f"bench_{n}.py").is_file()]
    if missing:
        print(f"skipping missing scripts: {missing}")
        names = [n for n in names if n not in missing]
    if args.table2_budget is None and TABLE2_JSON.is_file():
        table2 = ["--table2", "--from-json", str(TABLE2_JSON.relative_to(REPO))]
    else:
        table2 = ["--table2", "--budget", str(args.table2_budget or (10 if args.quick else 30))]
    runs = {}
    t0 = time.perf_counter()
    for name in names:
        argv_ = [a for arg in plan[name] for a in (table2 if arg == "{table2}" else [arg])]
        print(f"[{time.strftime('%H:%M:%S')}] bench_{name}.py {' '.join(argv_)}", flush=True)
        runs[name] = run_script(name, argv_, timeout=args.timeout, cores=args.cores or None)
        print(f"    exit {runs[name]['rc']} after {runs[name]['wall_s']:.0f} s", flush=True)
    total = time.perf_counter() - t0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(runs, total_s=total, quick=args.quick, cores=args.cores or None))
    print(f"total {total / 60:.1f} min; wrote {out}")
    return {"total_s": total, "runs": {k: {"rc": v["rc"], "wall_s": v["wall_s"]} for k, v in runs.items()}}


if __name__ == "__main__":
    main(sys.argv[1:])
