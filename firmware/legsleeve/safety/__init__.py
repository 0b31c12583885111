"""The safety supervisor and its rules (SAFE-4..SAFE-14): standard library and `legsleeve.core` only.

`Supervisor` runs every monitor each tick and may only make the controller's wish safer; each rule family lives in
its own module (overpressure, progress, occlusion, leak, venting, sensors, exposure, estop). The requirements are
in docs/safety-requirements.md.
"""

from legsleeve.safety.supervisor import Supervisor
from legsleeve.safety.trip import Monitor, Priority, Trip

__all__ = ["Monitor", "Priority", "Supervisor", "Trip"]
