"""The core: typed hyper-parameters (:mod:`.hparams`) and every common key and choice (:mod:`.schema`),
the recipe contract (:mod:`.recipe`), the registry (:mod:`.registry`) and the errors users see
(:mod:`.errors`). Nothing here imports TensorFlow or Keras."""
