"""Virtual-detector dock, ranking: which discs to use, by the topological score of their segmentation.

Adds to :class:`~._napari.virtual_widget.VirtualDetectorWidget` a ``Rank detectors``
action: the candidates are the sweep radii around the selected disc (or disc 0), or all
the discs; each gives a virtual image, the line detector segments it, and
:func:`~napari_stereo_tem.fourdstem.ranking.iter_rank_detectors` (the call ``stereo-tem
rank-detectors`` makes) ranks them against a Labels layer of the scan, or the consensus of
the candidates. The ranking fills a table in the dock, best first.
"""

from __future__ import annotations

import napari
import numpy as np
from magicgui.widgets import ComboBox, PushButton, Table

from ..checks import InputError
from ..fourdstem.ranking import iter_rank_detectors, sweep_discs
from .notify import report_input_errors
from .task_widget import wrapping_label

__all__ = ["RankingPanel", "add_ranking_panel"]

SWEEP = "sweep radii around the selected disc"
ALL_DISCS = "all discs"
CONSENSUS = "consensus of the candidates"


class RankingPanel:
    """The ranking action and table of a virtual-detector dock (``host``)."""

    def __init__(self, host):
        self.host = host
        self.candidates = ComboBox(choices=[SWEEP, ALL_DISCS], value=SWEEP, label="rank candidates")
        self.reference = ComboBox(choices=self._references, label="rank reference",
                                  tooltip="a Labels layer of the scan (non-zero = line), or the consensus of the "
                                          "candidates' segmentations")
        self.rank_button = PushButton(text="Rank detectors")
        self.table = Table(value={"rank": [], "detector": [], "distance": []})
        self.table.min_height = 190
        from qtpy.QtWidgets import QHeaderView, QStyledItemDelegate

        self.table.native.setItemDelegate(QStyledItemDelegate(self.table.native))  # our text, as formatted
        self.table.native.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.native.verticalHeader().setVisible(False)
        self.advice = wrapping_label("")
        self.use_button = PushButton(text="Use the best", enabled=False,
                                     tooltip="sweep: give the disc the best radius; all discs: select the best disc")
        self.widgets = [self.candidates, self.reference, self.rank_button, self.table, self.advice, self.use_button]
        self.rank_button.changed.connect(self.rank)
        self.use_button.changed.connect(self.use_best)
        self.result = None
        self._swept: int | None = None  # the disc whose radius the last sweep varied

    def _references(self, *_) -> list:
        labels = [(layer.name, layer) for layer in self.host._viewer.layers
                  if isinstance(layer, napari.layers.Labels) and layer.ndim == 2]
        return [(CONSENSUS, None), *labels]

    def _candidates(self) -> tuple[list, list]:
        """The candidate discs and their names (short: they fill a column of the table)."""
        host = self.host
        if not host._discs:
            raise InputError("place a disc first (or press 'Mean pattern'): the candidates are its sweep radii, "
                             "or all the discs")
        if self.candidates.value == ALL_DISCS:
            discs = list(host._discs)
            return discs, [f"disc {k} (r {d.radius:g})" for k, d in enumerate(discs)]
        layer = host.discs_layer
        selected = sorted(layer.selected_data) if layer is not None else []
        self._swept = selected[0] if selected else 0
        centre = host._discs[self._swept]
        discs = sweep_discs(centre.centre, host._radii())
        return discs, [f"r {d.radius:g} px" for d in discs]

    @report_input_errors()
    def rank(self, *_):
        """Rank the candidates in the background; the table fills when it is done."""
        self.reference.reset_choices()
        layer = self.reference.value
        reference = None if layer is None else np.asarray(layer.data) > 0
        self.use_button.enabled = False
        self._swept = None
        discs, names = self._candidates()
        work = iter_rank_detectors(self.host._dataset(), discs, reference=reference, names=names,
                                   executor=self.host._executor())
        return self.host._start(work, self.show, "rank detectors")

    def show(self, ranking) -> None:
        self.result = ranking
        self.table.value = {"rank": [row["rank"] for row in ranking.ranking],
                            "detector": [row["name"] for row in ranking.ranking],
                            "distance": [f"{row['distance']:.3f}" for row in ranking.ranking]}
        best = ranking.ranking[0]
        self.advice.value = (f"use: {best['name']} (topological distance {best['distance']:.3f} from the "
                             f"{ranking.reference_kind}; 0 = same topology, lower is better)"
                             + (f"\nnote: {ranking.params['note']}" if ranking.params.get("note") else ""))
        self.host.show_result(f"ranked {len(ranking.ranking)} detectors")
        self.use_button.enabled = True

    @report_input_errors()
    def use_best(self, *_) -> None:
        """Apply the ranking: the swept disc takes the best radius, or the best of the discs is selected."""
        host, ranking = self.host, self.result
        if ranking is None:
            raise InputError("rank the detectors first")
        best = ranking.best
        discs = list(host._discs)
        if self._swept is not None:
            if self._swept >= len(discs):
                raise InputError("the swept disc was removed since the ranking; rank again")
            discs[self._swept] = best
            host.set_discs(discs)
            return
        layer = host.discs_layer
        index = ranking.ranking[0]["index"]
        if layer is None or index >= len(discs) or discs[index] != best:
            raise InputError("the discs changed since the ranking; rank again")
        layer.selected_data = {index}


def add_ranking_panel(host) -> RankingPanel:
    """Build the panel and append its widgets to ``host``, above its progress line."""
    panel = RankingPanel(host)
    at = list(host).index(host.progress.widgets[0])
    for k, widget in enumerate(panel.widgets):
        host.insert(at + k, widget)
    return panel
