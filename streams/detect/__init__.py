"""The anomaly detectors: pure detectors and alert logic, and the faust app that runs them.

``sessionwarden detect`` calls :func:`streams.detect.app.run`; ``python -m streams.detect``
does the same with settings from the environment.
"""
