"""What a batch of studies brings to a model, and the checks it passes first:

- `cknet.inputs.checks`: images, token ids and parts that must agree, each refused with
  a message naming the argument and what was expected;
- `cknet.inputs.features`: `StudyFeatures`, a frozen backbone's cached maps (and each
  study's G) that `CKNet.encode` takes instead of images, and `encode_inputs`, the one
  place that tells a batch of images from one of cached features.

Images themselves are read and preprocessed by `cknet.data.images` (`prepare_images`).
"""
