"""How long the napari window stops answering during each action of the stereo widgets, first use included.

Run under a display, in a fresh process (first use is what is measured)::

    xvfb-run -a .venv/bin/python benchmarks/bench_ui_freeze.py [--only NAME ...] [--stacks]

A Qt timer ticks every 5 ms on the UI thread; while an action runs (the click's
own call, then the event loop until its background work ends), the longest gap
between two ticks is the longest time the window could not repaint or take a
click. Prints, per action, its wall time and that longest gap; the goal is no
gap above 0.2 s. The actions, in the order a first-time user meets them:
opening the plugin's docks, the stereo sample, Reconstruct (the first run, then
a second), switching to 3D, Crystal frame, Re-project, Detect, "Polylines from
labels", tracking a small synthetic movie (the Track dock), and a fine-tune
started then cancelled. ``--stacks`` tells, for the longest gaps of each action,
which functions the UI thread was in.

Every run starts from napari's default settings in a temporary file
(``NAPARI_CONFIG``): napari restores the window size of its last session, and
earlier runs had left it 3400 px tall (six docks stacked at their full height),
so that every frame drew a canvas that tall. The docks open as tabs of one dock
area, so the window stays within the screen, as it would on a user's monitor.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

GOAL_S = 0.2


class _AllRun(Exception):
    """Every action given to ``--only`` has run."""


class StackSampler:
    """Where the UI thread is during each gap: every 10 ms while it has not ticked for ``after`` s.

    :meth:`report` prints, for the gaps of the last action with the most samples, the functions
    the UI thread was in (how many samples had each on the stack, outermost
    callers included) and its innermost frames, with what the other threads did
    meanwhile. A sample is taken only when this thread gets the interpreter: time
    the UI thread spends in C++ holding it (or another thread does) shows as
    fewer samples than the gap's length.
    """

    def __init__(self, meter, after=0.03, interval=0.01):
        import threading

        self.meter, self.after, self.interval = meter, after, interval
        self.gaps = {}  # the gap's start -> [(UI stack, other threads' stacks)]
        self._ui = threading.get_ident()
        threading.Thread(target=self._watch, daemon=True).start()

    @staticmethod
    def _stack(frame) -> list[str]:
        names = []
        while frame is not None:
            code = frame.f_code
            names.append(f"{os.path.basename(code.co_filename)}:{frame.f_lineno}:{code.co_name}")
            frame = frame.f_back
        return names

    def _watch(self):
        import threading

        me = threading.get_ident()
        while True:
            time.sleep(self.interval)
            last = self.meter.last
            if last is None or not self.meter.timer_active or time.perf_counter() - last < self.after:
                continue
            frames = sys._current_frames()
            names = {thread.ident: thread.name for thread in threading.enumerate()}
            others = [[f"[{names.get(ident, '?')}]", *self._stack(f)[:4]] for ident, f in frames.items()
                      if ident not in (self._ui, me)]
            self.gaps.setdefault(last, []).append((self._stack(frames.get(self._ui)), others))

    def clear(self):
        self.gaps.clear()

    def report(self, gaps=2, top=20):
        from collections import Counter

        longest = sorted(self.gaps.values(), key=len, reverse=True)[:gaps]
        for samples in longest:
            print(f"  a gap with {len(samples)} samples ({len(samples) * self.interval:.2f} s of UI-thread Python):")
            inclusive, inner, other = Counter(), Counter(), Counter()
            for ui, others in samples:
                inclusive.update({name.split(":")[0] + ":" + name.split(":")[2] for name in ui})
                inner[" <- ".join(ui[:4])] += 1
                other.update(" <- ".join(o) for o in others)
            for name, n in inclusive.most_common(top):
                print(f"    {n:4d}  in  {name}")
            for name, n in inner.most_common(6):
                print(f"    {n:4d}  at  {name[:300]}")
            for name, n in other.most_common(4):
                print(f"    {n:4d}  other thread  {name[:300]}")
        self.gaps.clear()


class GapMeter:
    """Longest interval between two runs of a 5 ms timer on the UI thread."""

    def __init__(self, app):
        from qtpy.QtCore import QTimer

        self.app = app
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)
        self.last = None
        self.longest = 0.0
        self.timer_active = False

    def _tick(self):
        now = time.perf_counter()
        if self.last is not None:
            self.longest = max(self.longest, now - self.last)
        self.last = now

    def measure(self, action, done=lambda: True, timeout=900.0):
        """Run ``action()`` on the UI thread, then the event loop until ``done()``; return (wall, longest gap)."""
        self.last, self.longest = time.perf_counter(), 0.0
        self.timer.start()
        self.timer_active = True
        t0 = time.perf_counter()
        action()
        self._tick()  # the action's own call counts as a gap
        while not done():
            self.app.processEvents()
            time.sleep(0.001)
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError("the action did not end")
        # a few more turns of the loop: what the result's arrival queued (new layers drawn)
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            self.app.processEvents()
            time.sleep(0.001)
        self.timer.stop()
        self.timer_active = False
        return time.perf_counter() - t0, self.longest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", action="store_true",
                        help="after each action, where the UI thread (and the other threads) were during its "
                             "two longest gaps")
    parser.add_argument("--only", nargs="*", default=None,
                        help="names of the actions to report (default: all); the actions before them still run, "
                             "unreported, since later ones need their layers, and those after the last are left out")
    args = parser.parse_args(argv)
    os.environ.pop("NAPARI_STEREO_TEM_SYNC", None)
    os.environ.setdefault("NAPARI_STEREO_TEM_MODELS", tempfile.mkdtemp(prefix="bench-ui-models-"))
    # napari's default settings, not the window size (or anything else) of an earlier session
    os.environ["NAPARI_CONFIG"] = os.path.join(tempfile.mkdtemp(prefix="bench-ui-napari-"), "settings.yaml")
    import napari

    import napari_stereo_tem

    t_import = time.perf_counter()
    print(f"napari-stereo-tem from {os.path.dirname(napari_stereo_tem.__file__)}; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} (other processes make the gaps longer)", flush=True)
    viewer = napari.Viewer(show=True)
    app = napari.qt.get_qapp()
    window = viewer.window._qt_window
    meter = GapMeter(app)
    sampler = StackSampler(meter) if args.stacks else None
    rows = []
    state = {}

    wanted = None if args.only is None else set(args.only)

    def run(name, action, done=lambda: True):
        if wanted is not None and not wanted:
            raise _AllRun  # every action asked for has run: leave the rest out
        wall, gap = meter.measure(action, done)
        if wanted is not None and name not in wanted:
            if sampler is not None:
                sampler.clear()
            return
        if wanted is not None:
            wanted.discard(name)
        rows.append((name, wall, gap))
        print(f"{name:<34s} wall {wall:7.2f} s   longest gap {gap:6.3f} s  {'ok' if gap <= GOAL_S else 'FREEZE'}",
              flush=True)
        if sampler is not None:
            sampler.report()

    def actions():
        def dock(display_name):
            return viewer.window.add_plugin_dock_widget("napari-stereo-tem", display_name, tabify=True)[1]

        run("open sample stereo pair", lambda: viewer.open_sample("napari-stereo-tem", "stereo_pair"))
        run("open dock Reconstruct", lambda: state.setdefault("rec", dock("Reconstruct 3D dislocations")))
        rec = state["rec"]
        if rec.left.value is rec.right.value:
            print("  (the dock chose one layer as both views: set by hand)")
            rec.left.value, rec.right.value = viewer.layers["left (synthetic)"], viewer.layers["right (synthetic)"]
        rec.rectify.value = False

        def reconstruct():
            state["task"] = rec.start()

        run("Reconstruct (first)", reconstruct, lambda: state["task"].finished)
        print("  report:", rec.report.value.replace("\n", " | ")[:300])
        run("Reconstruct (second)", reconstruct, lambda: state["task"].finished)
        run("switch to 3D", lambda: setattr(viewer.dims, "ndisplay", 3))
        run("switch to 2D", lambda: setattr(viewer.dims, "ndisplay", 2))

        run("open dock Crystal frame", lambda: state.setdefault("crystal", dock("Crystal frame")))
        if "crystal" in state:
            crystal = state["crystal"]
            crystal.lines.value = viewer.layers["3D lines"]
            run("Crystal frame", lambda: crystal())
        run("open dock Re-project", lambda: state.setdefault("reproject", dock("Re-project into another view")))
        if "reproject" in state:
            rep = state["reproject"]
            rep.lines.value = viewer.layers["3D lines"]
            rep.image.value = viewer.layers["right (synthetic)"]
            run("Re-project", lambda: rep())

        run("open dock Detect", lambda: state.setdefault("detect", dock("Detect dislocations")))
        if "detect" in state:
            det = state["detect"]
            det.image.value = viewer.layers["left (synthetic)"]

            def detect():
                state["task"] = det.start()

            run("Detect", detect, lambda: state["task"] is None or state["task"].finished)

        run("open dock Correct", lambda: state.setdefault("correct", dock("Correct and add to training set")))
        if "correct" in state:
            cor = state["correct"]
            def polylines():
                state["task"] = cor.polylines_from_labels()

            run("Polylines from labels", polylines,  # a task (added in a worker) or, in older versions, the layers
                lambda: not hasattr(state["task"], "finished") or state["task"].finished)
            cor.set_dir.value = tempfile.mkdtemp(prefix="bench-ui-set-")
            run("Add to training set", lambda: cor.add_to_training_set())

        run("open dock Track", lambda: state.setdefault("track", dock("Track dislocations (in-situ movie)")))
        if "track" in state:
            from napari_stereo_tem.synth.timeseries import make_time_series

            viewer.add_image(make_time_series(3, shape=(256, 256), n_frames=6).frames, name="movie (synthetic)")
            trk = state["track"]
            trk.movie.value = viewer.layers["movie (synthetic)"]

            def track():
                state["task"] = trk.start()

            run("Track", track, lambda: state["task"] is None or state["task"].finished)
            viewer.layers["movie (synthetic)"].visible = False

        run("open dock Fine-tune", lambda: state.setdefault("tune", dock("Fine-tune and model versions")))
        if "tune" in state:
            tune = state["tune"]
            if "correct" in state:
                tune.set_dir.value = state["correct"].set_dir.value
            tune.steps.value = 1000

            def finetune():
                state["task"] = tune.start()

            def cancel_soon():
                if state["task"] is None:
                    return True
                state.setdefault("cancel_at", time.perf_counter() + 5.0)
                if time.perf_counter() > state["cancel_at"] and not state["task"].cancelled:
                    tune.cancel()
                return state["task"].finished

            run("Fine-tune, cancel after 5 s", finetune, cancel_soon)

    try:
        actions()
    except _AllRun:
        pass
    worst = max(rows, key=lambda r: r[2])
    print(f"\nlongest gap: {worst[2]:.3f} s ({worst[0]}); goal {GOAL_S} s; "
          f"{sum(r[2] > GOAL_S for r in rows)} of {len(rows)} actions above it; "
          f"total {time.perf_counter() - t_import:.0f} s; load average {os.getloadavg()[0]:.1f}; "
          f"window {window.width()}x{window.height()} px")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
