"""What the fleet costs: prices from the spec, throughput llmfleet measured itself.

The flow: ``catalogue`` (public prices, data) + the spec's ``costs:`` -> ``prices``
(which price applies to a replica) -> ``formulas`` (the arithmetic) -> ``report``
(per service and for the fleet, with ``measured``: which measurement prices
it, and ``agents``: what each agent's calls to the models cost) and ``delta``
(what a plan does to the bill). ``gather`` is the one module with I/O: the state
store's revisions and measurements.
"""
