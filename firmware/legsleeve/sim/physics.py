"""The pneumatic model of the sleeve: pump, check valve, manifold, relief valve, valves, bladders and leaks.

State is gauge pressure (mmHg) per node. Air is counted as volume at ambient pressure, so a node of volume V(P)
at absolute pressure Pa + P holds (Pa + P)·V(P)/Pa litres of free air. With a bladder V = V0 + C·P the node's
pressure moves as

    dP/dt = Pa · Q_in / (V0 + C·(Pa + 2P))        (Q_in: net inflow, free-air L/s)

Every flow is linear in the pressures (a valve or leak is a conductance in L/min per mmHg; the pump's flow falls
linearly from free flow at 0 to nothing at dead-head), so each node, with its neighbours held for one short
substep, follows an exponential towards its equilibrium. The model integrates exactly that, node by node
(exponential Euler): unconditionally stable, so a stiff manifold behind a wide-open relief valve needs no tiny
steps.

The limb (`simulation.limbs`, none by default: a rigid leg). Under each bladder lie veins holding V_t of the limb's
venous volume; with them full (V_t = V_full, the zone's share) the bladder is as configured, and every millilitre
they lose leaves the gas that much more room: V = V0 + C·P + (V_full − V_t). They move towards an equilibrium set by
the bladder's pressure, V_eq(P) = V_full · clamp(1 − P/empty_mmhg, 0, 1), as

    dV_t/dt = (V_eq(P) − V_t) / τ        τ = empty_s while emptying, refill_s / ln 10 while refilling

and veins filling at r L/s squeeze the gas as free air flowing in at (Pa + P)/Pa · r would: a held bladder's pressure
rises as they refill after a compression (explicit per substep, on the substep's starting pressure). A bladder's gas
also cools as its pressure falls (expansion) and re-warms against the skin: each mmHg fallen adds thermal_mmhg/45 to
a deficit, the pressure the gas would regain closed, released as an inflow of cap·d(deficit) over thermal_s.

The model is lazy: `advance_to` integrates up to a time with the inputs last given by `set_inputs`; the world
calls it whenever a pressure is looked at and whenever the actuators change, so what the pins say during an
interval is what the air feels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from legsleeve.config.model import SimLimbSpec, SimSpec, SimZoneSpec
from legsleeve.core.units import MMHG_PER_HPA

MAX_SUBSTEP_S = 0.005
HOSE_VOLUME_L = 0.004  # the tube between valve block, sensor tee and bladder port
OPEN_PORT_LPM_PER_MMHG = 0.6  # a pulled-off hose: wider than any valve
LEAK_FAULT_LPM_PER_MMHG = 0.03  # a pin-hole in a bladder: loses several mmHg/s at 45 mmHg
THERMAL_FALL_MMHG = 45.0  # a limb's thermal_mmhg is what a fall of this much would let a closed bladder regain


@dataclass
class ZoneFaults:
    leak: bool = False
    blocked: bool = False  # hose kinked between the sensor tee and the bladder
    disconnected: bool = False  # hose pulled off the bladder
    inlet_stuck_open: bool = False
    exhaust_stuck_closed: bool = False


@dataclass
class PumpFaults:
    dead: bool = False
    stuck_on: bool = False


@dataclass
class _Tissue:
    """The limb under one bladder: its veins (litres) and its gas's thermal deficit (mmHg)."""

    limb: str
    spec: SimLimbSpec
    full_l: float  # this zone's share of the limb's venous volume
    venous_l: float  # in its veins now
    deficit_mmhg: float = 0.0  # what the gas would regain, closed, once re-warmed
    thermal_per_mmhg: float = field(init=False)  # deficit gained per mmHg fallen
    per_empty_mmhg: float = field(init=False)  # 1 / empty_mmhg
    # (time constant, its decay over a full substep): nearly every substep is a full one
    emptying: tuple[float, float] = field(init=False)
    refilling: tuple[float, float] = field(init=False)
    warming: tuple[float, float] = field(init=False)

    def __post_init__(self) -> None:
        self.thermal_per_mmhg = self.spec.thermal_mmhg / THERMAL_FALL_MMHG
        self.per_empty_mmhg = 1.0 / self.spec.empty_mmhg
        taus = (self.spec.empty_s, self.spec.refill_s / math.log(10.0), self.spec.thermal_s)
        self.emptying, self.refilling, self.warming = ((tau, math.exp(-MAX_SUBSTEP_S / tau)) for tau in taus)


@dataclass
class _Zone:
    spec: SimZoneSpec
    hose_mmhg: float = 0.0  # what the sensor and valves see
    bladder_mmhg: float = 0.0  # the chamber on the leg
    faults: ZoneFaults = field(default_factory=ZoneFaults)
    tissue: _Tissue | None = None  # None: a rigid leg under this bladder

    @property
    def split(self) -> bool:
        return self.faults.blocked or self.faults.disconnected


# The planned paths' plans (see `_plan_rigid`, `_plan_general`), typed: compiled (make compiled), their arithmetic
# then runs on unboxed floats and their zones' attributes are read and written directly.
# (zone, its inlet's conductance) per open inlet
_Feeding = list[tuple[_Zone, float]]
# per zone: (zone, inlet open, its conductance, total conductance, volume with hose, compliance)
_RigidNode = tuple[_Zone, bool, float, float, float, float]
# per zone: (zone, split from its hose, inlet open, its conductance, the hose's conductance, the bladder's, the hose's
# capacitance)
_GeneralNode = tuple[_Zone, bool, bool, float, float, float, float]
# (pump flow at zero back pressure, the manifold's conductance, feeding, relief setting, relief conductance, the
# manifold's capacitance, nodes)
_RigidPlan = tuple[float, float, _Feeding, float, float, float, list[_RigidNode]]
_GeneralPlan = tuple[float, float, _Feeding, float, float, float, list[_GeneralNode]]


class Pneumatics:
    """The air side of the rig. Reads actuators through callbacks; exposes pressures in gauge mmHg."""

    def __init__(self, spec: SimSpec, zone_names: Sequence[str], *, pump_stall_duty: float, start_s: float = 0.0):
        self.spec = spec
        self.names = list(zone_names)
        self.zones = [_Zone(spec.zones[name]) for name in self.names]
        self.manifold_mmhg = 0.0
        self.pump = PumpFaults()
        self._stall = pump_stall_duty
        self._t = start_s
        # actuator inputs, held until set_inputs() changes them
        self._duty = 0.0
        self._inlets: tuple[bool, ...] = (False,) * len(self.names)
        self._exhausts: tuple[bool, ...] = (True,) * len(self.names)
        self._planned = False  # the plans below are the inputs' and the faults' (set_inputs, set_*_fault: not)
        self._rigid_plan: _RigidPlan | None = None  # _plan_rigid's (None: the rigid path does not apply)
        self._general_plan: _GeneralPlan | None = None  # _plan_general's, where the rigid path does not apply
        self._pa = spec.ambient_hpa * MMHG_PER_HPA  # ambient, mmHg absolute
        # conductances in L/s per mmHg: each zone's valves (a zone may have its own)
        self._g_in = [_lps(z.spec.inlet_lpm_per_mmhg, spec.inlet_lpm_per_mmhg) for z in self.zones]
        self._g_ex = [_lps(z.spec.exhaust_lpm_per_mmhg, spec.exhaust_lpm_per_mmhg) for z in self.zones]
        self._g_relief = spec.relief_lpm_per_mmhg / 60.0
        self._q_free = spec.pump_free_flow_lpm / 60.0
        for limb, limb_spec in spec.limbs.items():
            self._add_limb(limb, limb_spec)

    def _add_limb(self, limb: str, spec: SimLimbSpec) -> None:
        """Veins, full, under each of the limb's zones, its venous volume shared in proportion to their flat volumes."""
        total_l = sum(self.spec.zones[name].volume_l for name in spec.zones)
        for i, name in enumerate(self.names):
            if name in spec.zones:
                full_l = spec.venous_ml / 1000.0 * self.zones[i].spec.volume_l / total_l
                self.zones[i].tissue = _Tissue(limb, spec, full_l, full_l)

    def set_inputs(self, pump_duty: float, inlets_open: Sequence[bool], exhausts_open: Sequence[bool]) -> None:
        """What the actuators do from the current model time on (call `advance_to` up to the change first)."""
        self._duty = pump_duty
        self._inlets = tuple(inlets_open)
        self._exhausts = tuple(exhausts_open)
        self._planned = False

    # -- queries -------------------------------------------------------------------------------------------
    @property
    def now_s(self) -> float:
        return self._t

    def zone_mmhg(self, index: int) -> float:
        """Pressure where the zone's sensor sits (the hose tee)."""
        return self.zones[index].hose_mmhg

    def bladder_mmhg(self, index: int) -> float:
        """Pressure on the leg."""
        return self.zones[index].bladder_mmhg

    def index(self, name: str) -> int:
        return self.names.index(name)

    @property
    def limb_names(self) -> tuple[str, ...]:
        """The limbs with a venous model (`simulation.limbs`); empty: a rigid leg."""
        return tuple(self.spec.limbs)

    def limb_of(self, index: int) -> str | None:
        """The limb modelled under a zone, None where the leg is rigid."""
        tissue = self.zones[index].tissue
        return None if tissue is None else tissue.limb

    def refill_s(self, limb: str) -> float:
        """The limb's true refill time: seconds for its veins to refill to 90 % at a constant pressure."""
        return self.spec.limbs[limb].refill_s

    def closed_refill_s(self, index: int, hold_mmhg: float) -> float:
        """The 90 % time of the rise a bladder held closed at about hold_mmhg (below its limb's empty_mmhg) shows as
        the veins under it refill: shorter than the limb's refill_s, because the rise itself lowers the veins'
        equilibrium as it builds. Closed, the node gains k mmHg per litre the veins take (k = (Pa + P)/gas volume
        over the capacitance), so the veins relax k·V_full/empty_mmhg faster: refill_s / (1 + k·V_full/empty_mmhg).
        The rise's size δ tells the same: k·V_full/empty_mmhg = δ / (empty_mmhg − hold_mmhg − δ)."""
        z = self.zones[index]
        t = z.tissue
        if t is None:
            raise ValueError(f"zone {self.names[index]!r} has no limb model (simulation.limbs)")
        p = hold_mmhg
        v_t = t.full_l * (1.0 - p / t.spec.empty_mmhg)  # at rest at that pressure
        volume_l = z.spec.volume_l + (0.0 if z.split else HOSE_VOLUME_L) + t.full_l - v_t
        k = (self._pa + p) / self._pa / self._capacitance(volume_l, z.spec.compliance_l_per_mmhg, p)
        return t.spec.refill_s / (1.0 + k * t.full_l / t.spec.empty_mmhg)

    def venous_ml(self, index: int) -> float:
        """Blood in the veins under a zone now, mL (its share of the limb's `venous_ml` when full)."""
        tissue = self.zones[index].tissue
        if tissue is None:
            raise ValueError(f"zone {self.names[index]!r} has no limb model (simulation.limbs)")
        return tissue.venous_l * 1000.0

    def pump_flow_lps(self, duty: float, manifold_mmhg: float) -> float:
        """Free-air flow the pump delivers into the manifold at this duty and back pressure (check valve)."""
        if self.pump.dead:
            return 0.0
        if self.pump.stuck_on:
            duty = 1.0
        if duty < self._stall:
            return 0.0  # a small diaphragm pump stalls at low duty (safety-requirements §B1)
        return max(0.0, self._q_free * duty * (1.0 - manifold_mmhg / self.spec.pump_deadhead_mmhg))

    # -- integration -------------------------------------------------------------------------------------
    def advance_to(self, t_s: float) -> None:
        remaining = t_s - self._t
        if remaining > 1e-12:
            if not self._planned:
                self._rigid_plan = self._plan_rigid()
                self._general_plan = self._plan_general() if self._rigid_plan is None else None
                self._planned = True
            plan = self._rigid_plan
            if plan is not None:
                self._advance_rigid(remaining, plan)
            else:
                general = self._general_plan
                assert general is not None
                self._advance_general(remaining, general)
        self._t = t_s

    def _plan_sums(self) -> tuple[list[bool], float, float, _Feeding, list[tuple[float, float]]]:
        """The sums both planned paths share, in `_step`'s order (so the same values): each inlet open (or stuck
        so), the pump's flow at zero back pressure, the manifold's conductance with every open inlet, (zone, its
        inlet's conductance) per open inlet, and per zone (its valves' conductance, its leak's)."""
        zones = self.zones
        inlets = [open_ or z.faults.inlet_stuck_open for open_, z in zip(self._inlets, zones, strict=False)]
        q0 = self.pump_flow_lps(self._duty, 0.0)
        g_open = q0 / self.spec.pump_deadhead_mmhg if q0 > 0.0 else 0.0  # the pump's flow falls by this per mmHg
        feeding: _Feeding = []
        for open_, z, g_in in zip(inlets, zones, self._g_in, strict=False):
            if open_:
                g_open += g_in
                feeding.append((z, g_in))
        valves = []
        for i, z in enumerate(zones):
            g = 0.0
            if inlets[i]:
                g += self._g_in[i]
            if self._exhausts[i] and not z.faults.exhaust_stuck_closed:
                g += self._g_ex[i]
            leak = z.spec.leak_lpm_per_mmhg / 60.0
            if z.faults.leak:
                leak += LEAK_FAULT_LPM_PER_MMHG / 60.0
            valves.append((g, leak))
        return inlets, q0, g_open, feeding, valves

    def _plan_rigid(self) -> _RigidPlan | None:
        """What `_advance_rigid` needs that changes only with the inputs and the faults (worked out again after
        `set_inputs`, `set_zone_fault` and `set_pump_fault`), or None where the rigid leg's loop does not apply (a limb
        model, or a hose split from its bladder): `_advance_general` then."""
        zones = self.zones
        if not all(z.tissue is None and not z.split for z in zones):
            return None
        inlets, q0, g_open, feeding, valves = self._plan_sums()
        nodes: list[_RigidNode] = []
        for i, z in enumerate(zones):
            g, leak = valves[i]
            nodes.append(
                (
                    z,
                    inlets[i],
                    self._g_in[i] if inlets[i] else 0.0,
                    g + leak,
                    z.spec.volume_l + HOSE_VOLUME_L,
                    z.spec.compliance_l_per_mmhg,
                )
            )
        spec = self.spec
        return (q0, g_open, feeding, spec.relief_mmhg, self._g_relief, spec.manifold_volume_l / self._pa, nodes)

    def _advance_rigid(self, remaining: float, plan: _RigidPlan) -> None:
        """`_step` over `remaining` seconds, in the same substeps and the same arithmetic, for the common case of a
        rigid leg with every hose on its bladder. What cannot change within one call (the inputs, the faults, the
        pump's flow at zero back pressure, each zone's conductance) comes worked out from `_plan_rigid`."""
        q0, g_open, feeding, relief, g_relief, cap_m, nodes = plan
        pa = self._pa
        exp = math.exp
        pm = self.manifold_mmhg
        while remaining > 1e-12:
            dt = remaining if remaining < MAX_SUBSTEP_S else MAX_SUBSTEP_S
            pm, pm_mid = _manifold_substep(pm, dt, q0, g_open, feeding, relief, g_relief, cap_m)
            # the zones (as _step's unsplit, rigid branch)
            for z, fills, g_fill, g, volume_l, compliance in nodes:
                p = z.hose_mmhg
                drive = 0.0 + g_fill * pm_mid if fills else 0.0
                cap = (volume_l + compliance * (pa + 2.0 * (p if p > 0.0 else 0.0))) / pa
                if g <= 0.0:
                    p = p + drive * dt / cap
                else:
                    p_eq = drive / g
                    p = p_eq + (p - p_eq) * exp(-g * dt / cap)
                z.hose_mmhg = z.bladder_mmhg = p
            remaining -= dt
        self.manifold_mmhg = pm

    def _plan_general(self) -> _GeneralPlan:
        """What `_advance_general` needs that changes only with the inputs and the faults: `_step`'s sums worked out
        once, in the same order (so the same values), per zone with the branch of `_step` it takes."""
        zones = self.zones
        spec = self.spec
        inlets, q0, g_open, feeding, valves = self._plan_sums()
        nodes: list[_GeneralNode] = []
        for i, z in enumerate(zones):
            g, leak = valves[i]
            g_fill = self._g_in[i] if inlets[i] else 0.0
            if z.split:
                if z.faults.disconnected:
                    g += OPEN_PORT_LPM_PER_MMHG / 60.0
                g_b = leak + (OPEN_PORT_LPM_PER_MMHG / 60.0 if z.faults.disconnected else 0.0)
                nodes.append((z, True, inlets[i], g_fill, g, g_b, HOSE_VOLUME_L / self._pa))
            else:
                nodes.append((z, False, inlets[i], g_fill, g + leak, 0.0, 0.0))
        return (q0, g_open, feeding, spec.relief_mmhg, self._g_relief, spec.manifold_volume_l / self._pa, nodes)

    def _advance_general(self, remaining: float, plan: _GeneralPlan) -> None:
        """`_step` over `remaining` seconds, in the same substeps and the same arithmetic, for any build (a limb model,
        a hose split from its bladder): what cannot change within one call comes worked out from `_plan_general`."""
        q0, g_open, feeding, relief, g_relief, cap_m, nodes = plan
        relax_on_limb = self._relax_on_limb
        capacitance = self._capacitance
        pm = self.manifold_mmhg
        while remaining > 1e-12:
            dt = remaining if remaining < MAX_SUBSTEP_S else MAX_SUBSTEP_S
            pm, pm_mid = _manifold_substep(pm, dt, q0, g_open, feeding, relief, g_relief, cap_m)
            self.manifold_mmhg = pm  # (as _step: the zones' limbs read nothing of it, but keep the order of writes)
            # the zones (as _step)
            for z, split, fills, g_fill, g, g_b, cap_h in nodes:
                drive = 0.0 + g_fill * pm_mid if fills else 0.0
                tissue = z.tissue
                if split:
                    z.hose_mmhg = _relax(z.hose_mmhg, drive, g, cap_h, dt)
                    if tissue is None:
                        cap_b = capacitance(z.spec.volume_l, z.spec.compliance_l_per_mmhg, z.bladder_mmhg)
                        z.bladder_mmhg = _relax(z.bladder_mmhg, 0.0, g_b, cap_b, dt)
                    else:
                        z.bladder_mmhg = relax_on_limb(tissue, z.spec, z.bladder_mmhg, 0.0, g_b, dt, hose=False)
                else:
                    if tissue is None:
                        cap = capacitance(z.spec.volume_l + HOSE_VOLUME_L, z.spec.compliance_l_per_mmhg, z.hose_mmhg)
                        z.hose_mmhg = _relax(z.hose_mmhg, drive, g, cap, dt)
                    else:
                        z.hose_mmhg = relax_on_limb(tissue, z.spec, z.hose_mmhg, drive, g, dt, hose=True)
                    z.bladder_mmhg = z.hose_mmhg
            remaining -= dt
        self.manifold_mmhg = pm

    def _capacitance(self, volume_l: float, compliance: float, p: float) -> float:
        """d(free air)/dP in L per mmHg, times Pa: the denominator of dP/dt."""
        return (volume_l + compliance * (self._pa + 2.0 * max(p, 0.0))) / self._pa

    def _step(self, dt: float) -> None:
        duty = self._duty
        inlets = [open_ or z.faults.inlet_stuck_open for open_, z in zip(self._inlets, self.zones, strict=False)]
        pm = self.manifold_mmhg

        # Manifold: pump in (a + b·pm form), inlets out towards each open zone, relief above its setting.
        q0 = self.pump_flow_lps(duty, 0.0)
        slope = q0 / self.spec.pump_deadhead_mmhg if q0 > 0.0 else 0.0  # pump flow falls by this per mmHg
        g_total = slope
        drive = q0
        for open_, z, g_in in zip(inlets, self.zones, self._g_in, strict=False):
            if open_:
                g_total += g_in
                drive += g_in * z.hose_mmhg
        if pm > self.spec.relief_mmhg:
            g_total += self._g_relief
            drive += self._g_relief * self.spec.relief_mmhg
        cap_m = self.spec.manifold_volume_l / self._pa
        # The pump's linear fall reaches zero flow at dead-head, so the manifold settles there at most: the
        # check valve's no-backflow needs no separate branch.
        pm_new = _relax(pm, drive, g_total, cap_m, dt)
        pm_mid = 0.5 * (pm + pm_new)
        self.manifold_mmhg = pm_new

        # Zones, each against the manifold's mean pressure over the substep.
        for i, z in enumerate(self.zones):
            ex_open = self._exhausts[i] and not z.faults.exhaust_stuck_closed
            g = 0.0
            drive = 0.0
            if inlets[i]:
                g += self._g_in[i]
                drive += self._g_in[i] * pm_mid
            if ex_open:
                g += self._g_ex[i]
            leak = z.spec.leak_lpm_per_mmhg / 60.0
            if z.faults.leak:
                leak += LEAK_FAULT_LPM_PER_MMHG / 60.0
            tissue = z.tissue  # the rigid leg's arithmetic stays exactly as it was without a limb model
            if z.split:
                # The hose tee is its own small node; the bladder beyond the fault goes its own way (with the limb).
                if z.faults.disconnected:
                    g += OPEN_PORT_LPM_PER_MMHG / 60.0
                cap_h = HOSE_VOLUME_L / self._pa
                z.hose_mmhg = _relax(z.hose_mmhg, drive, g, cap_h, dt)
                g_b = leak + (OPEN_PORT_LPM_PER_MMHG / 60.0 if z.faults.disconnected else 0.0)
                if tissue is None:
                    cap_b = self._capacitance(z.spec.volume_l, z.spec.compliance_l_per_mmhg, z.bladder_mmhg)
                    z.bladder_mmhg = _relax(z.bladder_mmhg, 0.0, g_b, cap_b, dt)
                else:
                    z.bladder_mmhg = self._relax_on_limb(tissue, z.spec, z.bladder_mmhg, 0.0, g_b, dt, hose=False)
            else:
                g += leak
                if tissue is None:
                    cap = self._capacitance(z.spec.volume_l + HOSE_VOLUME_L, z.spec.compliance_l_per_mmhg, z.hose_mmhg)
                    z.hose_mmhg = _relax(z.hose_mmhg, drive, g, cap, dt)
                else:
                    z.hose_mmhg = self._relax_on_limb(tissue, z.spec, z.hose_mmhg, drive, g, dt, hose=True)
                z.bladder_mmhg = z.hose_mmhg

    def _relax_on_limb(
        self, t: _Tissue, spec: SimZoneSpec, p: float, drive: float, g: float, dt: float, *, hose: bool
    ) -> float:
        """`_relax` for a bladder node (with its hose unless split from it) on a limb: its veins and its gas's warmth
        move the air too (see the module docstring). Returns the node's pressure after dt."""
        # (written out, not with min/max and helpers: this runs per zone every 5 ms substep)
        filled = 1.0 - p * t.per_empty_mmhg
        v_eq = t.full_l if filled >= 1.0 else t.full_l * filled if filled > 0.0 else 0.0
        v = t.venous_l
        tau_s, decay = t.emptying if v > v_eq else t.refilling
        if dt != MAX_SUBSTEP_S:
            decay = math.exp(-dt / tau_s)
        v_new = t.venous_l = v_eq + (v - v_eq) * decay
        pa = self._pa
        # veins filling (or emptying) move the gas like free air flowing in (or out)
        drive += (pa + p) * (v_new - v) / (pa * dt)
        volume_l = spec.volume_l + (HOSE_VOLUME_L if hose else 0.0) + (t.full_l - v)  # emptied veins: more room
        cap = (volume_l + spec.compliance_l_per_mmhg * (pa + 2.0 * (p if p > 0.0 else 0.0))) / pa  # _capacitance
        if t.thermal_per_mmhg == 0.0:
            return _relax(p, drive, g, cap, dt)
        tau_s, decay = t.warming
        warmed = t.deficit_mmhg * (1.0 - (decay if dt == MAX_SUBSTEP_S else math.exp(-dt / tau_s)))
        t.deficit_mmhg -= warmed
        drive += cap * warmed / dt  # re-warming: a closed bladder regains the deficit released
        p_new = _relax(p, drive, g, cap, dt)
        if p_new < p:
            t.deficit_mmhg += (p - p_new) * t.thermal_per_mmhg  # the gas expanded: it cooled
        return p_new

    # -- faults ------------------------------------------------------------------------------------------
    def set_zone_fault(self, index: int, name: str) -> None:
        z = self.zones[index]
        if name in ("blocked", "disconnected") and not z.split:
            z.bladder_mmhg = z.hose_mmhg  # the two nodes part at the same pressure
        setattr(z.faults, name.replace("-", "_"), True)
        self._planned = False

    def set_pump_fault(self, name: str) -> None:
        self._planned = False
        if name == "pump-dead":
            self.pump.dead = True
        elif name == "pump-stuck-on":
            self.pump.stuck_on = True
        else:
            raise ValueError(name)


def _lps(zone_lpm_per_mmhg: float | None, build_lpm_per_mmhg: float) -> float:
    """A valve's conductance in L/s per mmHg: the zone's own, else the build's."""
    return (build_lpm_per_mmhg if zone_lpm_per_mmhg is None else zone_lpm_per_mmhg) / 60.0


def _manifold_substep(
    pm: float,
    dt: float,
    q0: float,
    g_open: float,
    feeding: _Feeding,
    relief: float,
    g_relief: float,
    cap_m: float,
) -> tuple[float, float]:
    """One substep of the manifold, as `_step` computes it, for the planned paths (rigid and general): its pressure
    after `dt` and the mean over it, which the zones see. `feeding`: (zone, its inlet's conductance) per open inlet."""
    g_total = g_open
    drive = q0
    for z, g_in in feeding:
        drive += g_in * z.hose_mmhg
    if pm > relief:
        g_total += g_relief
        drive += g_relief * relief
    if g_total <= 0.0:
        pm_new = pm + drive * dt / cap_m
    else:
        p_eq = drive / g_total
        pm_new = p_eq + (pm - p_eq) * math.exp(-g_total * dt / cap_m)
    return pm_new, 0.5 * (pm + pm_new)


def _relax(p: float, drive: float, g: float, cap: float, dt: float) -> float:
    """Exact solution over dt of cap·dP/dt = drive − g·P (a node with linear in- and outflows)."""
    if g <= 0.0:
        return p + drive * dt / cap
    p_eq = drive / g
    return p_eq + (p - p_eq) * math.exp(-g * dt / cap)
