"""A KubeVirt simulator for decentralized live migration tests (spec: ../shared/reference/dlm-state-machine.md).

Entry points: `sim.KubeVirtSim` and the pytest fixture `kubevirt_sim` in `fixtures.py`. Nothing is
imported here, so loading the fixture plugin costs nothing until a test asks for the simulator.
"""
