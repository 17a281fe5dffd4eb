"""Analytic costs over a spec: parameters, MACs (the paper's FLOPs), and their inverses."""
from tinynet_jax.costs.counter import (FLOPS_CLASSES, LayerCost, StageCost, conv_output_size, count_macs,
                                       count_params, layer_costs, reference_macs, stage_costs)
from tinynet_jax.costs.solve import Solution, solve_phi, solve_width

__all__ = ["FLOPS_CLASSES", "LayerCost", "Solution", "StageCost", "conv_output_size", "count_macs", "count_params",
           "layer_costs", "reference_macs", "solve_phi", "solve_width", "stage_costs"]
