"""The HTTP face of the change log (``policy-monitor serve``, or the daemon with ``[http] listen``):
web pages for people, a JSON API for scripts, Atom for feed readers and iCalendar for calendars.
``app.create_app`` builds it; ``server`` runs it on uvicorn."""
