"""The core: typed hyper-parameters (:mod:`.hparams`) and every common key and choice (:mod:`.schema`),
the recipe contract (:mod:`.recipe`), the registry (:mod:`.registry`), the errors users see
(:mod:`.errors`), how a command's options are declared (:mod:`.options`) and every command's options
(:mod:`.commands`). Nothing here imports TensorFlow or Keras."""
