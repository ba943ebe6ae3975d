"""easycv: image classification and object detection on Lingjie's shared trainer.

``domain: cv`` experiments are validated by :mod:`easycv.schema` (stdlib only) and run by
:mod:`easycv.domain` (train | evaluate | predict | export) on the shared TrainLoop, torch
engine, launchers, AutoML sweeper and run-directory layout.
"""
