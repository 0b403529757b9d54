"""Nanoparticles from four views: detection, matching, 3D points and g(r) (DESIGN 3.7).

Modules: :mod:`.geometry` (the four-view shift model), :mod:`.detection`,
:mod:`.matching`, :mod:`.refine` (one fit of touching particles to all views),
:mod:`.rdf`, :mod:`.evaluation`, :mod:`.pipeline`.
"""

from .detection import detect_particles
from .evaluation import score_particles
from .geometry import project_particles
from .matching import ParticleReconstruction, match_particles
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
]
