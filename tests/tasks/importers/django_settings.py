"""The least Django settings under which django-celery-beat migrates and saves its models
(test only: beatkeeper reads the tables with SQLAlchemy, never through Django)."""
import os

SECRET_KEY = "tests-only-not-secret"
INSTALLED_APPS = ["django_celery_beat"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["BEATKEEPER_TEST_DJANGO_DB"]}}
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
