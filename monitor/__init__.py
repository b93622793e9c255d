"""policy-monitor: catches link-policy changes of online platforms and tells people in time."""

__version__ = "0.1.0"
