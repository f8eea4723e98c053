"""pytest fixture: `kubevirt_sim`, a running KubeVirtSim for one test.

At teardown the test fails if the simulator hit an internal error or recorded a webhook denial the
test did not declare with `kubevirt_sim.expect_violations("...")`: on a real cluster that request
would have been rejected, so whatever passed after it proves nothing.
"""
from __future__ import annotations

import pytest


@pytest.fixture
def kubevirt_sim(clusters, namespaces):
    # `namespaces` first, so the simulator stops before the test's namespaces are torn down
    from .sim import KubeVirtSim

    sim = KubeVirtSim(clusters).start()
    try:
        yield sim
    finally:
        sim.stop()
    problems = sim.problems()
    if problems:
        pytest.fail("kubevirt-sim:\n" + "\n".join(problems), pytrace=False)
