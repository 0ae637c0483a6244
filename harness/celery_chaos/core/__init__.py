"""The pure core: history events, the scenario schema, the checker and expectations.

Nothing here imports Redis, Celery or pytest (an import contract in the tests enforces it).
"""
