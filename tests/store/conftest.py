from tests.support.postgres import postgres

__all__ = ["postgres"]  # the session's PostgreSQL server, for the stores' shared tests
