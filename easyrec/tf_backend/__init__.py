"""The TensorFlow (tf.keras, Keras 3) backend: the same loop, checkpoints and run directory."""

import logging as _logging

# absl logs every tf.function argument rename at WARNING during SavedModel export; the renames
# are expected (see easyrec.serving) and handled.
_logging.getLogger("absl").setLevel(_logging.ERROR)
