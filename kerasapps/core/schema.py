"""Every hyper-parameter key every recipe has, and every choice the package takes, in one place.

A recipe's schema is :data:`COMMON_HPARAMS` plus the keys it declares itself
(:class:`kerasapps.core.recipe.Recipe`). The choice tuples below are the single source for the
hyper-parameters, the layers that act on them (optimizers, schedules, losses, augmentation,
distribution) and the command line's ``click.Choice`` lists.
"""

from __future__ import annotations

from kerasapps.core.hparams import HParam

# optimizers: the mini-batch ones, which ``fit`` steps, and full-batch L-BFGS, which only ``train`` drives
MINI_BATCH = ("sgd", "adagrad", "rmsprop", "adam", "adamw", "adadelta")
FULL_BATCH = ("lbfgs",)
OPTIMIZERS = MINI_BATCH + FULL_BATCH

# schedules: evaluated per optimizer step inside the optimizer, or set by a callback per epoch/iteration
STEP_SCHEDULES = ("constant", "cosine")
EPOCH_SCHEDULES = ("step", "time", "exponential")
LR_SCHEDULES = STEP_SCHEDULES + EPOCH_SCHEDULES

LOSSES = ("auto", "sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy",
          "hinge", "squared_hinge", "mean_squared_error", "mean_absolute_error",
          "mean_absolute_percentage_error", "mean_squared_logarithmic_error")

FLIPS = ("none", "horizontal", "vertical", "horizontal_and_vertical")

# tf.distribute strategies by name (kerasapps.training.distribute); multi_worker trains in a custom loop
STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "parameter_server", "tpu")

SPLITS = ("train", "validation", "test")
QUANTIZATIONS = ("none", "float16", "int8")  # export --quantize (LiteRT)

# What a recipe takes (Recipe.task), and so which --data SOURCE fits it
TASKS = ("image_classification", "text_classification", "text_corpus", "tabular", "captioned_images")
CACHES = ("none", "memory", "disk")  # where decoded files are kept between epochs
CACHE_FEATURES = ("auto", "true", "false")  # frozen features computed once (kerasapps.training.features)
PRECISIONS = ("float32", "mixed_bfloat16", "auto")  # compute dtype while training (kerasapps.training.precision)
BAD_FILES = ("error", "skip")  # what a file that does not decode does: stop the run, or be left out
CLASS_WEIGHTS = ("none", "balanced", "sampler")  # from the training split's class counts: loss weights or draws
TTAS = ("none", "flip")  # test-time augmentation of image classifiers (evaluation and the export)
AUTO = "auto"  # epochs=auto: the epochs follow the size of the data (kerasapps.training.stage.epochs_for)
ADAMW_WEIGHT_DECAY = 0.01  # optimizer=adamw without weight_decay: PyTorch's AdamW default

# `diagnose init`: the initialisation experiment's activations and weight scales
INIT_ACTIVATIONS = ("sigmoid", "tanh", "relu")
INIT_SCHEMES = ("normal", "small", "glorot", "he")

EXPORT_ROOT = "saved_models"  # TF Serving's model base: EXPORT_ROOT/NAME/VERSION/

TRAINING_HPARAMS: dict[str, HParam] = {
    "epochs": HParam(5, int, "epochs per stage; auto: ceil(auto_examples / training examples) between min_epochs "
                     "and max_epochs (a stage then sees at least as many examples as the defaults were chosen "
                     "with, whatever the size of the data)", minimum=1, words=(AUTO,)),
    "auto_examples": HParam(100_000, int, "epochs=auto: training examples each stage sees (the recipe's default: "
                            "its built-in set's size x the epochs chosen on it)", minimum=1),
    "min_epochs": HParam(1, int, "epochs=auto: the fewest epochs a stage trains (a large data set)", minimum=1),
    "max_epochs": HParam(100, int, "epochs=auto: the most epochs a stage trains (a small data set)", minimum=1),
    "batch_size": HParam(128, int, "examples per batch on each replica (the global batch is batch_size x replicas; "
                         "one replica without --strategy)", minimum=1),
    "steps_per_epoch": HParam(None, int, "cap on training steps per epoch (null: the whole split)",
                              optional=True, minimum=1),
    "seed": HParam(1234, int, "seed for weights, shuffling, dropout and validation carving"),
    "deterministic": HParam(False, bool, "make TensorFlow ops deterministic (slower; bitwise-repeatable runs)"),
    "validation_split": HParam(0.1, float, "fraction of the training split held out for validation "
                               "(when the data has no validation split)", minimum=0.0, maximum=0.5),
    "test_split": HParam(0.1, float, "--data without a test split: fraction of the files held out for the test "
                         "metrics (seeded)", minimum=0.0, maximum=0.5),
    "optimizer": HParam("adam", str, "optimizer (adamw: Adam with decoupled weight decay, Loshchilov & Hutter "
                        "2019)", choices=OPTIMIZERS),
    "lbfgs_iterations": HParam(100, int, "L-BFGS iterations per stage (optimizer=lbfgs: full-batch, small models; "
                               "epochs and batch_size do not apply)", minimum=1),
    "learning_rate": HParam(1e-3, float, "initial learning rate", minimum=0.0),
    "momentum": HParam(0.0, float, "momentum (sgd, rmsprop)", minimum=0.0, maximum=1.0),
    "nesterov": HParam(False, bool, "Nesterov momentum (sgd)"),
    "lr_schedule": HParam("constant", str, "learning-rate schedule within each stage",
                          choices=LR_SCHEDULES),
    "warmup_epochs": HParam(0.0, float, "linear warm-up from learning_rate/10 to learning_rate over this many "
                            "epochs, then lr_schedule (cosine or constant)", minimum=0.0),
    "clipnorm": HParam(None, float, "clip each gradient to this L2 norm", optional=True, minimum=0.0),
    "clipvalue": HParam(None, float, "clip each gradient element to [-v, v]", optional=True, minimum=0.0),
    "loss": HParam("auto", str, "loss: auto (the recipe's own) or a classification loss by name, checked against "
                   "the model's head (logits use the stable from_logits form)", choices=LOSSES),
    "keep_checkpoints": HParam(2, int, "per-epoch checkpoints kept per stage (the newest)", minimum=1),
}

PRACTICE_HPARAMS: dict[str, HParam] = {
    "lr_drop": HParam(0.5, float, "step decay: lr = learning_rate * lr_drop^floor(epoch / lr_every_epochs)",
                      minimum=0.0, exclusive_minimum=True, maximum=1.0),
    "lr_every_epochs": HParam(10, int, "step/exponential decay: epochs per drop (step) or per factor lr_rate",
                              minimum=1),
    "lr_rate": HParam(0.96, float, "exponential decay: lr = learning_rate * lr_rate^(epoch / lr_every_epochs)",
                      minimum=0.0, exclusive_minimum=True, maximum=1.0),
    "lr_decay": HParam(1e-4, float, "time decay: lr = learning_rate / (1 + lr_decay * iterations)", minimum=0.0),
    "early_stopping": HParam(False, bool, "stop when early_stopping_monitor stops improving; keep the best weights"),
    "early_stopping_monitor": HParam("val_loss", str, "metric early stopping watches"),
    "early_stopping_patience": HParam(5, int, "epochs without improvement before stopping", minimum=1),
    "early_stopping_min_delta": HParam(0.0, float, "smallest change that counts as improvement", minimum=0.0),
    "max_norm": HParam(None, float, "after every update, clip each unit's incoming weight vector to this L2 norm",
                       optional=True, minimum=0.0),
    "l1": HParam(0.0, float, "L1 penalty on Dense/Conv kernels (with l2: elastic net)", minimum=0.0),
    "l2": HParam(0.0, float, "L2 penalty on Dense/Conv kernels", minimum=0.0),
    "augment_shift": HParam(0.0, float, "random shift, fraction of height/width (image recipes)",
                            minimum=0.0, maximum=0.99),
    "augment_rotation": HParam(0.0, float, "random rotation, max degrees either way (image recipes)",
                               minimum=0.0, maximum=180.0),
    "augment_zoom": HParam(0.0, float, "random zoom, fraction (image recipes)", minimum=0.0, maximum=0.99),
    "augment_flip": HParam("none", str, "random flips (image recipes)", choices=FLIPS),
    "elastic_alpha": HParam(0.0, float, "elastic distortion scale alpha, pixels (Simard 2003: 34)", minimum=0.0),
    "elastic_sigma": HParam(4.0, float, "elastic distortion smoothing sigma, pixels (Simard 2003: 4)",
                            minimum=0.01),
    "label_smoothing": HParam(0.0, float, "classifiers: cross-entropy against (1 - e) x one-hot + e / classes "
                              "(Szegedy et al. 2016, Inception-v3 sec. 7); auto: 0.1 when the loss is a cross-entropy "
                              "over classes, 0 with any other loss (hinge, a regression's)", minimum=0.0, maximum=0.5,
                              words=(AUTO,), legacy=0.0),
    "mixup": HParam(0.0, float, "image recipes: MixUp (Zhang et al. 2018) alpha; a mixed batch blends each image "
                    "and its label with another's, weight ~ Beta(alpha, alpha); 0: off", minimum=0.0, legacy=0.0),
    "mixup_prob": HParam(1.0, float, "mixup: probability that a batch is mixed (with cutmix too and a sum over 1, "
                         "both are scaled to add up to 1)", minimum=0.0, maximum=1.0, legacy=1.0),
    "cutmix": HParam(0.0, float, "image recipes: CutMix (Yun et al. 2019) alpha; a mixed batch pastes a box of "
                     "another image, labels mixed by its area; 0: off", minimum=0.0, maximum=1.0, legacy=0.0),
    "cutmix_prob": HParam(1.0, float, "cutmix: probability that a batch is cut and mixed (see mixup_prob)",
                          minimum=0.0, maximum=1.0, legacy=1.0),
    "rand_augment_ops": HParam(0, int, "image recipes: RandAugment (Cubuk et al. 2020), operations applied to each "
                               "batch (keras.layers.RandAugment, on the pixels before standardisation); 0: off",
                               minimum=0, legacy=0),
    "rand_augment_magnitude": HParam(0.5, float, "rand_augment_ops: strength of each operation, 0 to 1",
                                     minimum=0.0, maximum=1.0, legacy=0.5),
    "random_erasing": HParam(0.0, float, "image recipes: probability of erasing a random box of each image with "
                             "noise (Zhong et al. 2020; keras.layers.RandomErasing, on the pixels); 0: off",
                             minimum=0.0, maximum=1.0, legacy=0.0),
    "weight_decay": HParam(None, float, "decoupled weight decay (Loshchilov & Hutter 2019): each update also "
                           "takes learning_rate x weight_decay x w from kernels and embeddings, never from biases "
                           "or normalisation parameters (as timm and torchvision); null: "
                           f"{ADAMW_WEIGHT_DECAY} with adamw, 0 otherwise", optional=True, minimum=0.0, legacy=None),
    "ema": HParam(None, float, "keep an exponential moving average of the weights with this decay per batch "
                  "(Polyak & Juditsky 1992; timm's model EMA); validation, early stopping, the saved model and "
                  "the export use the averaged weights; null: off", optional=True, minimum=0.0, maximum=0.99999,
                  legacy=None),
    "gradient_accumulation": HParam(1, int, "batches whose gradients are averaged into one optimizer update "
                                    "(an effective batch of batch_size x this on the memory of one batch)",
                                    minimum=1, legacy=1),
    "class_weight": HParam("none", str, "balanced: each training example's loss weighs n / (classes x its class's "
                           "count) in the training split, so every class counts alike (King & Zeng 2001; "
                           "scikit-learn's 'balanced'); sampler: weights 1, and each epoch draws its examples with "
                           "replacement, every class equally often in expectation (a balanced sampler)",
                           choices=CLASS_WEIGHTS, legacy="none"),
    "tta": HParam("none", str, "image classifiers: test-time augmentation in evaluation and the export; flip: "
                  "the mean of the probabilities for the image and its mirror", choices=TTAS, legacy="none"),
    "monitor": HParam(False, bool, "record update/weight ratios, weight and gradient norms and activation "
                      "statistics on a probe batch (RUN_DIR/monitors.json, TensorBoard)"),
    "monitor_every_steps": HParam(50, int, "monitor: optimizer steps between records", minimum=1),
    "monitor_probe_size": HParam(64, int, "monitor: validation examples in the fixed probe batch", minimum=1),
    "cache_features": HParam("auto", str, "a stage that freezes the bottom of the model computes the frozen "
                             "layers' outputs once per example and trains the rest on them (auto: where it can "
                             "and they fit in 2 GiB; true: in every stage that freezes, or refuse; false: never)",
                             choices=CACHE_FEATURES),
    "precision": HParam("float32", str, "compute dtype while training: float32, mixed_bfloat16 (bfloat16 "
                        "maths, float32 weights; every model a stage hands on is float32) or auto "
                        "(mixed_bfloat16 on a CPU with AMX-BF16 and no GPU, else float32)", choices=PRECISIONS),
}

DATA_HPARAMS: dict[str, HParam] = {
    "cache": HParam("none", str, "--data files: decode every epoch (none), once into memory, or once into "
                    "files under the cache directory (disk: memory stays flat)", choices=CACHES),
    "bad_files": HParam("error", str, "--data: a file that is not a decodable image or UTF-8 text stops the run "
                        "before it writes anything (error), or is left out with a count (skip)", choices=BAD_FILES),
    "label_column": HParam("label", str, "--data table: the column holding each row's label"),
    "image_column": HParam("image", str, "--data table: the column of image paths (relative to the table)"),
    "text_column": HParam("text", str, "--data table: the column of texts"),
    "image_key": HParam(None, str, "--data tfds:NAME: the image feature (default: the supervised keys)",
                        optional=True),
    "text_key": HParam(None, str, "--data tfds:NAME: the text feature (default: the supervised keys)",
                       optional=True),
    "label_key": HParam(None, str, "--data tfds:NAME: the label feature (default: the supervised keys)",
                        optional=True),
}

COMMON_HPARAMS: dict[str, HParam] = {**TRAINING_HPARAMS, **PRACTICE_HPARAMS, **DATA_HPARAMS}

# Defaults of the commands' options (the CLI and the Python API both read these)
TUNE_VALIDATION_SPLIT = 0.1
OVERFIT_EXAMPLES, OVERFIT_MAX_EPOCHS = 100, 200
LR_RANGE = {"min_lr": 1e-6, "max_lr": 1.0, "steps": 200}
INIT_EXPERIMENT = {"activation": "tanh", "init": "small", "layers": 5, "units": 100, "examples": 10_000, "seed": 0}
GENERATION = {"length": 200, "temperature": 0.8, "seed": 0}
