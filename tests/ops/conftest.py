from tests.e2e.conftest import moto

__all__ = ["moto"]
