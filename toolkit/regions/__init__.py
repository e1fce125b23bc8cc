"""Exact activation regions of piecewise-linear networks: plane partitions and region geometry."""
from .geometry import Inradius, SegmentRegions, boundary_distance, inradius, segment_regions
from .network import PLNet, pl_network
from .partition import Decision, Partition, partition
from .plane import Plane, check_anchor_indices, plane_from_anchors

__all__ = [
    "Decision",
    "Inradius",
    "PLNet",
    "Partition",
    "Plane",
    "SegmentRegions",
    "boundary_distance",
    "check_anchor_indices",
    "inradius",
    "partition",
    "pl_network",
    "plane_from_anchors",
    "segment_regions",
]
