"""KerasHub's own test harness (`keras_hub.src.tests.test_case.TestCase`,
private, hence the pinned keras-hub) on the backbones and the classifier:
`run_vision_backbone_test` (serialization, eager and compiled calls,
pyramid outputs, quantization, channels_first where the backend runs it),
its mixed-precision check, `run_task_test`, `run_preset_test` on locally
saved presets and `run_model_saving_test`. CI runs this module on
TensorFlow and JAX."""

import keras
import numpy as np
import pytest

pytest.importorskip(
    "keras_hub", reason="keras-hub is not installed (the hub extra)"
)
from keras_hub.src.tests.test_case import TestCase  # noqa: E402

from keras_aff import hub  # noqa: E402

# One block per stage: the harness builds each backbone ~10 times and
# compiles predict and train steps; depth changes none of what it checks.
CIFAR = {
    "architecture": "aff_resnet32",
    "blocks_per_stage": (1, 1, 1),
    "image_shape": (32, 32, 3),
}
IMAGENET = {
    "architecture": "iaff_resnet50",
    "blocks_per_stage": (1, 1, 1, 1),
    "image_shape": (32, 32, 3),
}


def _images(shape=(2, 32, 32, 3), high=1.0):
    rng = np.random.default_rng(0)
    return keras.ops.convert_to_tensor(
        rng.uniform(0, high, size=shape).astype("float32")
    )


def _classifier(num_classes=2, **kwargs):
    backbone = hub.AFFBackbone(**{**CIFAR, "image_shape": (16, 16, 3)})
    preprocessor = hub.AFFImageClassifierPreprocessor(
        hub.AFFImageConverter.official("cifar")
    )
    return {
        "backbone": backbone,
        "num_classes": num_classes,
        "preprocessor": preprocessor,
        **kwargs,
    }


class BackboneHarnessTest(TestCase):
    def test_cifar_backbone(self):
        self.run_vision_backbone_test(
            cls=hub.AFFBackbone,
            init_kwargs=CIFAR,
            input_data=_images(),
            expected_output_shape=(2, 8, 8, 256),
            expected_pyramid_output_keys=["P0", "P1", "P2"],
            expected_pyramid_image_sizes=[(32, 32), (16, 16), (8, 8)],
        )

    def test_imagenet_backbone(self):
        self.run_vision_backbone_test(
            cls=hub.AFFBackbone,
            init_kwargs=IMAGENET,
            input_data=_images(),
            expected_output_shape=(2, 1, 1, 2048),
            expected_pyramid_output_keys=["P2", "P3", "P4", "P5"],
            expected_pyramid_image_sizes=[(8, 8), (4, 4), (2, 2), (1, 1)],
        )

    def test_saving(self):
        self.run_model_saving_test(
            cls=hub.AFFBackbone, init_kwargs=CIFAR, input_data=_images()
        )


class TaskHarnessTest(TestCase):
    def test_classifier_task(self):
        images = _images((4, 16, 16, 3), high=255.0)
        labels = keras.ops.convert_to_tensor([0, 1, 1, 0])
        self.run_task_test(
            cls=hub.AFFImageClassifier,
            init_kwargs=_classifier(),
            train_data=(images, labels),
            expected_output_shape=(4, 2),
        )

    def test_classifier_saving(self):
        self.run_model_saving_test(
            cls=hub.AFFImageClassifier,
            init_kwargs=_classifier(preprocessor=None),
            input_data=_images((2, 16, 16, 3)),
        )

    def test_presets_saved_here(self):
        classifier = hub.AFFImageClassifier(**_classifier())
        preset = self.get_temp_dir() + "/preset"
        classifier.save_to_preset(preset)
        images = _images((2, 16, 16, 3))
        expected = classifier(images)
        self.run_preset_test(
            cls=hub.AFFImageClassifier,
            preset=preset,
            input_data=images,
            expected_output=expected,
        )
        self.run_preset_test(
            cls=hub.AFFBackbone,
            preset=preset,
            input_data=images,
            expected_output=classifier.backbone(images),
        )
        self.run_preset_test(
            cls=hub.AFFImageConverter,
            preset=preset,
            input_data=images * 255.0,
            expected_output=classifier.preprocessor(images * 255.0),
        )
