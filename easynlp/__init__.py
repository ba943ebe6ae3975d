"""easynlp: text classification, sentence-pair matching and token classification (NER),
declared in YAML and trained offline on the shared Lingjie trainer.

Entry points: ``python -m trainer +experiment=chnsenti_textcnn`` (see README: text models);
``easynlp.export.TextPredictor`` / ``python -m easynlp.export EXPORT_DIR --text ...`` for
raw-text prediction from an export. The domain seam is :mod:`easynlp.domain`.
"""
