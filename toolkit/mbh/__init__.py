"""MBH specialization: maximal patterns per class, their minimal blankets on exact plane
partitions, and s = 1 - blanket area / box area, stored back into the graph."""
from .blanket import blanket_area, blanket_mask, specialization
from .pattern import MaximalPatterns, maximal_patterns

__all__ = ["MaximalPatterns", "blanket_area", "blanket_mask", "maximal_patterns", "specialization"]
