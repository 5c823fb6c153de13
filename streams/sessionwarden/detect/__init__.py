"""The anomaly detectors: pure detectors and alert logic, and the faust app that runs them.

``sessionwarden detect`` calls :func:`sessionwarden.detect.app.run`; ``python -m
sessionwarden.detect`` does the same with settings from the environment.
"""
