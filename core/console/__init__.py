"""The tenant console (``/admin``): a reseller runs their white-label portal without the operator.

Part of the core (tenant administration is host functionality, not a section a tenant can
switch off). ``console_handlers()`` builds the ``/admin`` router (tenant admins only, see
``guard.py``) and the platform route ``/_tls/ask`` for the TLS proxy; ``TEMPLATE_DIR`` is
added to every theme's loader chain so themes can override the console's templates too.
"""

from core.console.routes import TEMPLATE_DIR, console_handlers

__all__ = ["TEMPLATE_DIR", "console_handlers"]
