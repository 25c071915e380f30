"""The transit app as the brief runs it: beat in Sydney's zone, given as the brief's pytz
zone object, with the verbatim ``CELERYBEAT_SCHEDULE`` as its beat schedule."""
from celery import Celery

from tests.tasks.importers.transit_schedule import CELERYBEAT_SCHEDULE, SYDNEY_TZ

app = Celery("transit", set_as_current=False)
app.conf.timezone = SYDNEY_TZ
app.conf.beat_schedule = CELERYBEAT_SCHEDULE
