"""A local PayPal (Orders v2 subset) for development, demos and tests: see ``server.py`` for its routes.

Run it with ``python manage.py run_paypal_simulator``, or in a thread with
``PayPalSimulator(port=0).start()``. Nothing in this package imports Django.
"""

from payments.simulator.client import SimulatorClient
from payments.simulator.server import PayPalSimulator

__all__ = ["PayPalSimulator", "SimulatorClient"]
