"""Activation Pattern DAG toolkit: record, store and analyse activation patterns of piecewise-linear networks."""
