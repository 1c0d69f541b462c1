"""Three keras-io programs, ported with renames plus at most one configuration line (on small data:
the point is that they run and learn, not their accuracy). Renames: `keras` -> `pn`,
`keras.layers` -> `pn.layers`, `keras.utils.to_categorical` -> `pn.datasets.to_categorical`."""
import numpy as np
import pytest

import portanet as pn
from portanet import backend as B

keras = pn
layers = pn.layers
rng = np.random.default_rng(0)


@pytest.fixture
def channels_last(monkeypatch):
    monkeypatch.setattr(pn.config, "_image_data_format", pn.config.image_data_format())
    pn.config.set_image_data_format("channels_last")   # the one configuration line


def test_functional_api_guide_toy_resnet(channels_last):
    """keras-io "The Functional API", section "A toy ResNet model" (CIFAR-10, channels last)."""
    with B.use("numpy"):
        inputs = keras.Input(shape=(32, 32, 3), name="img")
        x = layers.Conv2D(32, 3, activation="relu")(inputs)
        x = layers.Conv2D(64, 3, activation="relu")(x)
        block_1_output = layers.MaxPooling2D(3)(x)

        x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_1_output)
        x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
        block_2_output = layers.add([x, block_1_output])

        x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_2_output)
        x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
        block_3_output = layers.add([x, block_2_output])

        x = layers.Conv2D(64, 3, activation="relu")(block_3_output)
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dense(256, activation="relu")(x)
        x = layers.Dropout(0.5)(x)
        outputs = layers.Dense(10)(x)

        model = keras.Model(inputs, outputs, name="toy_resnet")
        model.summary()
        assert model.count_params() == 223242   # Keras' summary of this model: 223,242

        x_train = rng.random((40, 32, 32, 3)).astype("float32")
        y_train = pn.datasets.to_categorical(rng.integers(0, 10, 40), 10)
        model.compile(optimizer=keras.optimizers.RMSprop(1e-3),
                      loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["acc"])
        history = model.fit(x_train, y_train, batch_size=8, epochs=1, validation_split=0.2, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and "val_loss" in history.history


def test_clothing_classification_tutorial():
    """tensorflow.org "Basic classification: Classify images of clothing" (Fashion-MNIST)."""
    with B.use("numpy"):
        try:
            (train_images, train_labels), (test_images, test_labels) = pn.datasets.fashion_mnist()
        except pn.datasets.DatasetNotFoundError:
            pytest.skip("no Fashion-MNIST installed")
        train_images, test_images = train_images[:2000] / 255.0, test_images[:500] / 255.0
        train_labels, test_labels = train_labels[:2000], test_labels[:500]
        model = keras.Sequential([
            keras.layers.Flatten(input_shape=(28, 28)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10),
        ])
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        model.fit(train_images, train_labels, epochs=3, verbose=0)
        test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=0)
        probability_model = keras.Sequential([model, keras.layers.Softmax()])
        predictions = probability_model.predict(test_images)
    assert test_acc > 0.7
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-5)
    assert np.mean(np.argmax(predictions, axis=1) == test_labels) == pytest.approx(test_acc, abs=1e-6)


def test_convnet_with_batch_normalization_channels_last(channels_last):
    """keras-io "Simple MNIST convnet", with BatchNormalization after each convolution."""
    num_classes, input_shape = 10, (28, 28, 1)
    x_train = rng.random((64, 28, 28)).astype("float32")
    y_train = pn.datasets.to_categorical(rng.integers(0, num_classes, 64), num_classes)
    x_train = np.expand_dims(x_train, -1)
    with B.use("numpy"):
        model = keras.Sequential([
            keras.Input(shape=input_shape),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(num_classes, activation="softmax"),
        ])
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        history = model.fit(x_train, y_train, batch_size=16, epochs=2, validation_split=0.1, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.layers[1].get_weights()[2].std() > 0   # the moving mean moved


def gan_curves(backend_name, steps=30):
    """A classic Keras GAN written with train_on_batch (the discriminator frozen inside the
    combined model, trained on its own): the losses of every step."""
    with B.use(backend_name, floatx="float32"):
        pn.set_seed(0)
        latent = 4
        generator = pn.Sequential([pn.Input((latent,)), pn.layers.Dense(16, activation="relu"), pn.layers.Dense(2)])
        discriminator = pn.Sequential([pn.Input((2,)), pn.layers.Dense(16, activation="relu"),
                                       pn.layers.Dense(1, activation="sigmoid")])
        discriminator.compile(optimizer=pn.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
        discriminator.trainable = False
        gan = pn.Sequential([generator, discriminator])
        gan.compile(optimizer=pn.optimizers.Adam(1e-3), loss="binary_crossentropy")
        rng = np.random.default_rng(0)
        d_losses, g_losses = [], []
        for _ in range(steps):
            real = rng.normal([2.0, -1.0], 0.5, (32, 2))
            fake = generator.predict_on_batch(rng.standard_normal((32, latent)))
            x = np.concatenate([real, fake])
            y = np.concatenate([np.ones((32, 1)), np.zeros((32, 1))])
            d_losses.append(discriminator.train_on_batch(x, y)[0])
            frozen = discriminator.get_weights()
            g_losses.append(gan.train_on_batch(rng.standard_normal((32, latent)), np.ones((32, 1))))
            for got, want in zip(discriminator.get_weights(), frozen):  # frozen inside the GAN
                np.testing.assert_array_equal(got, want)
        return np.array(d_losses), np.array(g_losses)


def test_gan_with_train_on_batch_has_the_same_curves_on_numpy_and_jax():
    pytest.importorskip("jax")
    numpy_curves, jax_curves = gan_curves("numpy"), gan_curves("jax")
    for got, want in zip(jax_curves, numpy_curves):
        np.testing.assert_allclose(got, want, rtol=2e-3)
    d_losses, g_losses = numpy_curves
    assert d_losses[-5:].mean() < d_losses[:5].mean()   # the discriminator learns
    assert not np.allclose(g_losses[:5], g_losses[-5:])  # the generator is trained
