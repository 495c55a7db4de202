"""The classic Keras example ``mnist_transfer_cnn.py``, ported literally to Keras 3: the baseline of
``benchmarks/mnist_transfer.py``.

Train a CNN on digits 0-4 for 5 epochs, freeze the convolutional features, train the dense head on
digits 5-9 for 5 epochs: batch 128, Adadelta at learning rate 1.0 (the Keras 2 default the script relied
on), numpy arrays into ``fit``, the test digits as validation data, as the original did. The one change:
MNIST is read from ``DATA_DIR/mnist/mnist.npz`` (the ``keras.datasets.mnist`` file) instead of downloaded.

    python benchmarks/classic_mnist_transfer_cnn.py DATA_DIR

The last line is JSON: each stage's training seconds, samples/s and test accuracy.
"""

import json
import sys
import time

import keras
import numpy as np
from keras.layers import Activation, Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D

batch_size = 128
num_classes = 5
epochs = 5
img_rows, img_cols = 28, 28
filters = 32
pool_size = 2
kernel_size = 3
input_shape = (img_rows, img_cols, 1)


def train_model(model, train, test, num_classes):
    x_train = train[0].reshape((train[0].shape[0],) + input_shape).astype("float32") / 255
    x_test = test[0].reshape((test[0].shape[0],) + input_shape).astype("float32") / 255
    y_train = keras.utils.to_categorical(train[1], num_classes)
    y_test = keras.utils.to_categorical(test[1], num_classes)
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adadelta(learning_rate=1.0),
                  metrics=["accuracy"])
    t = time.perf_counter()
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=0, validation_data=(x_test, y_test))
    seconds = time.perf_counter() - t
    score = model.evaluate(x_test, y_test, verbose=0)
    return {"seconds": seconds, "samples_per_second": epochs * len(x_train) / seconds, "accuracy": float(score[1])}


def main(data_dir):
    with np.load(f"{data_dir}/mnist/mnist.npz") as arrays:
        (x_train, y_train), (x_test, y_test) = ((arrays["x_train"], arrays["y_train"]),
                                                (arrays["x_test"], arrays["y_test"]))
    x_train_lt5, y_train_lt5 = x_train[y_train < 5], y_train[y_train < 5]
    x_test_lt5, y_test_lt5 = x_test[y_test < 5], y_test[y_test < 5]
    x_train_gte5, y_train_gte5 = x_train[y_train >= 5], y_train[y_train >= 5] - 5
    x_test_gte5, y_test_gte5 = x_test[y_test >= 5], y_test[y_test >= 5] - 5

    feature_layers = [Conv2D(filters, kernel_size, padding="valid"), Activation("relu"),
                      Conv2D(filters, kernel_size), Activation("relu"), MaxPooling2D(pool_size=pool_size),
                      Dropout(0.25), Flatten()]
    classification_layers = [Dense(128), Activation("relu"), Dropout(0.5), Dense(num_classes),
                             Activation("softmax")]
    model = keras.Sequential([Input(input_shape), *feature_layers, *classification_layers])
    out = {"pretrain": train_model(model, (x_train_lt5, y_train_lt5), (x_test_lt5, y_test_lt5), num_classes)}
    for layer in feature_layers:
        layer.trainable = False
    out["finetune"] = train_model(model, (x_train_gte5, y_train_gte5), (x_test_gte5, y_test_gte5), num_classes)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
