"""Nanoparticles from four views: detection, matching, 3D points and g(r) (DESIGN 3.7).

Modules: :mod:`.geometry` (the four-view shift model), :mod:`.detection`,
:mod:`.matching`, :mod:`.fit` (one least-squares fit of many particles to all views,
with uncertainties), :mod:`.refine` (the fit, the residual search for missed particles,
the split of merged ones), :mod:`.rdf`, :mod:`.evaluation`, :mod:`.points_csv` (the one
reader and writer of particle tables), :mod:`.pipeline`.
"""

from .detection import detect_particles
from .evaluation import score_particles
from .geometry import project_particles
from .matching import ParticleReconstruction, match_particles
from .points_csv import read_points_csv, write_points_csv
from .pipeline import ParticleResult, reconstruct_particles, reconstruct_particles_iter, write_particle_result
from .rdf import radial_distribution

__all__ = [
    "detect_particles",
    "match_particles",
    "ParticleReconstruction",
    "radial_distribution",
    "project_particles",
    "score_particles",
    "ParticleResult",
    "reconstruct_particles",
    "reconstruct_particles_iter",
    "write_particle_result",
    "read_points_csv",
    "write_points_csv",
]
