"""easycv: image classification and object detection on Lingjie's shared trainer.

``domain: cv`` experiments are validated by :mod:`easycv.schema` (stdlib only) and run by
the shared lifecycle (trainer.lifecycle: train | evaluate | predict | export) with easycv's
part, :class:`easycv.recipe.CVRecipe` (:mod:`easycv.domain` is the seam trainer.domains finds),
on the shared TrainLoop, torch engine, launchers, callbacks and run-directory layout.
"""
