"""The fleet's broker queues (DESIGN §9): their names, and which tasks go to which.

Separate queues keep a flood of turns from starving maintenance. Every one is declared in
the Celery configuration, so a worker started without `-Q` consumes them all.
"""

from __future__ import annotations

TURNS = "lash.turns"
INGRESS = "lash.ingress"
PROCESSES = "lash.processes"
MAINTENANCE = "lash.maintenance"
ALL = (TURNS, INGRESS, PROCESSES, MAINTENANCE)

# Task name patterns to their queue. A sender that does not use our configuration (another
# service's Celery app, plain kombu) must name the queue itself: Celery would otherwise put
# the message in its default queue, `celery`, which no lash worker consumes.
ROUTES = {
    "lash.ingress.*": INGRESS,
    "lash.session.*": TURNS,
    "lash.process.*": PROCESSES,
    "lash.maintenance.*": MAINTENANCE,
}
