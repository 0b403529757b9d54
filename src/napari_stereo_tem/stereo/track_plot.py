"""Speed and length over time of tracked dislocations, drawn into a matplotlib figure (no pyplot, no backend).

The same drawing serves ``stereo-tem track`` (``tracks.png``) and the Track dock in napari::

    from matplotlib.figure import Figure
    figure = Figure(figsize=(9, 3.5), layout="constrained")
    draw_tracks(figure, track_rows(result))
    figure.savefig("tracks.png")
"""

from __future__ import annotations

import numpy as np

__all__ = ["draw_tracks", "tracks_shown", "track_colors"]


def tracks_shown(rows: list[dict], *, min_frames: int = 3, max_tracks: int = 12) -> tuple[list[int], int]:
    """The tracks a plot shows, those seen in most frames (then the longest lines), and how many qualified.

    A real series can hold a hundred tracks, which no legend can name; every track is in the table.
    """
    by_track: dict[int, list[dict]] = {}
    for r in rows:
        by_track.setdefault(r["track_id"], []).append(r)
    long_lived = [t for t, mine in by_track.items() if len(mine) >= min_frames]
    shown = sorted(long_lived, key=lambda t: (-len(by_track[t]), -float(np.mean([r["length"] for r in by_track[t]])),
                                              t))[:max_tracks]
    return sorted(shown), len(long_lived)


def draw_tracks(figure, rows: list[dict], *, physical: bool = False, min_frames: int = 3, max_tracks: int = 12,
                legend: bool = True, stacked: bool = False, colors: dict | None = None) -> None:
    """Speed (left) and length (right) over the frames, one curve per track seen in ``min_frames`` frames or more.

    In nm/s and nm when ``physical`` (the rows carry ``velocity_x_nm_s`` and ``length_nm``,
    :func:`~napari_stereo_tem.stereo.tracking.in_physical_units`), else px/frame and px. At most
    ``max_tracks`` curves (:func:`tracks_shown`); ``stacked`` puts the length below the speed (a narrow dock);
    ``colors`` maps track ids to colours (e.g. those of napari's Tracks layer). The figure is cleared first.
    """
    figure.clear()
    speed_axis, length_axis = figure.subplots(2, 1, sharex=True) if stacked else figure.subplots(1, 2)
    vx, vy, length = (("velocity_x_nm_s", "velocity_y_nm_s", "length_nm") if physical
                      else ("velocity_x", "velocity_y", "length"))
    shown, n_long = tracks_shown(rows, min_frames=min_frames, max_tracks=max_tracks)
    for track_id in shown:
        mine = [r for r in rows if r["track_id"] == track_id]
        frames = [r["frame"] for r in mine]
        speed = [float(np.hypot(r[vx], r[vy])) for r in mine]
        line, = speed_axis.plot(frames, speed, marker="o", ms=3, label=str(track_id),
                                color=None if colors is None else colors.get(track_id))
        length_axis.plot(frames, [r[length] for r in mine], marker="o", ms=3, color=line.get_color())
    speed_axis.set(xlabel="" if stacked else "frame",
                   ylabel=f"speed ({'nm/s' if physical else 'px/frame'}" + (")" if stacked else ", drift removed)"))
    length_axis.set(xlabel="frame", ylabel=f"length ({'nm' if physical else 'px'})")
    if len(shown) < n_long:
        figure.suptitle(f"{len(shown)} of {n_long} tracks seen in {min_frames} frames or more "
                        "(those seen longest); all are in the table", fontsize="medium")
    if legend and speed_axis.lines:
        figure.legend(*speed_axis.get_legend_handles_labels(), title="track", fontsize="small", loc="outside right")


def track_colors(track_ids, *, colormap: str = "turbo") -> dict:
    """The colour of each track id as napari's Tracks layer draws it by default (``color_by="track_id"``:
    the ids scaled from their smallest to their largest over ``colormap``)."""
    from matplotlib import colormaps

    ids = sorted({int(t) for t in track_ids})
    if not ids:
        return {}
    low, span = ids[0], max(ids[-1] - ids[0], 1)
    cmap = colormaps[colormap]
    return {t: cmap((t - low) / span) for t in ids}
