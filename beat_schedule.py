"""Entry point kept beside celeryconfig.py. Not installed: the schedule is built from `Settings`
in lash_tasks/worker/beat_schedule.py."""

from lash_tasks.settings import Settings
from lash_tasks.worker.beat_schedule import beat_schedule_for

beat_schedule = beat_schedule_for(Settings.from_env())
