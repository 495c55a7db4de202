"""Serving: a TensorFlow Serving-compatible REST server over a model base (:mod:`.server`, with the model
store in :mod:`.repository`, JSON tensors in :mod:`.codec`, dynamic batching in :mod:`.batching` and its
options in :mod:`.options`), and a client for any such server (:mod:`.client`)."""
