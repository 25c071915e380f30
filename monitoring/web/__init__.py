"""The schedule dashboard the monitor serves beside ``/metrics``: server-rendered pages (no
JavaScript), their JSON, per-entry SVG badges and the actions behind confirmation and CSRF.
``monitoring.web.app.dashboard_app`` is the WSGI app; ``monitoring.web.actions`` the protocol
the app's composition root implements."""
