"""The application ``docs/consumer-service.rst`` deploys: ``--handler myapp.consumers:handle``.

With ``examples/guide`` on ``PYTHONPATH`` the docs' command lines run as they are.
"""
