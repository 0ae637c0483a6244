"""``celery-chaos matrix``: the same scenarios once per set of library versions, workers running
from a virtual environment per set (built with uv, cached), and one table of what changed."""
