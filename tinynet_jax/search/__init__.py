"""The Rubik's cube search: sample twisted models, train them, find the frontier, fit the tiny formula.

    sampler   random (r, d, w) at FLOPs levels, B^-k baselines, TinyNets; shards of a plan
    frontier  the accuracy-vs-MACs Pareto frontier
    gp        Gaussian-process regression (tinygp, float64 scoped to the fit)
    formula   r = R(c), d = D(c), w solved from the budget; the paper preset
    runner    train every model of a sweep resumably, then analyse
    analysis  frontier + formula + figures + report over a results file
"""
