"""The limb under the bladders (legsleeve.sim.physics): veins that empty under compression and refill after release,
seen as a held bladder's pressure rising to a plateau; the gas's re-warming after a vent; and, with no limb model,
the rigid leg exactly as before."""

from __future__ import annotations

import hashlib

from legsleeve.sim.physics import Pneumatics

# The digest of _rigid_trace on the shipped config, recorded with the physics as it was before the limb model
# (commit aa80738): with no `simulation.limbs` every pressure must stay the same to the last bit.
RIGID_DIGEST = "4706bb2c67992e1a7444a5f849eaa185e6d9e57af1ccd90dd1200ab2df40f6d9"


def _model(sim, names):
    return Pneumatics(sim, names, pump_stall_duty=sim.pump_stall_duty)


def _rigid_trace(model: Pneumatics) -> str:
    """Fills, holds, a dead-headed pump on the relief valve, vents, then the same with zone faults and a pump stuck
    on: the manifold's, each sensor tee's and each bladder's pressure every 20 ms, as a digest of their exact bits."""
    n = len(model.names)
    digest = hashlib.sha256()
    steps = [  # (seconds, pump duty, inlets open, exhausts open)
        (3.0, 1.0, (1, 1, 0, 0), (0, 0, 1, 1)),
        (2.0, 0.8, (0, 0, 1, 0), (0, 0, 0, 1)),
        (2.0, 0.5, (0, 0, 0, 1), (0, 0, 0, 0)),  # below the stall duty
        (1.5, 1.0, (0, 0, 0, 0), (0, 0, 0, 0)),  # dead-headed: the relief valve opens
        (4.0, 0.0, (0, 0, 0, 0), (0, 0, 0, 0)),
        (3.0, 0.0, (0, 0, 0, 0), (1, 1, 1, 1)),
    ]
    t_s = 0.0

    def run() -> None:
        nonlocal t_s
        for seconds, duty, inlets, exhausts in steps:
            model.set_inputs(duty, [bool(x) for x in inlets], [bool(x) for x in exhausts])
            for _ in range(round(seconds / 0.02)):
                t_s += 0.02
                model.advance_to(t_s)
                values = (model.manifold_mmhg, *map(model.zone_mmhg, range(n)), *map(model.bladder_mmhg, range(n)))
                digest.update("".join(float(v).hex() for v in values).encode())

    run()
    model.set_zone_fault(0, "leak")
    model.set_zone_fault(1, "blocked")
    run()
    model.set_zone_fault(0, "inlet-stuck-open")
    model.set_zone_fault(2, "disconnected")
    model.set_zone_fault(3, "exhaust-stuck-closed")
    model.set_pump_fault("pump-stuck-on")
    run()
    return digest.hexdigest()


def test_no_limb_model_is_the_rigid_leg_to_the_last_bit(cfg):
    assert _rigid_trace(_model(cfg.simulation, cfg.zone_names)) == RIGID_DIGEST
