"""A tiny real Django project whose Celery app stores results with django-celery-results
(``django-db``): tests/integration/test_django_results.py."""
