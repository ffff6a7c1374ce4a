r"""Dataset distillation of FER2013 (48x48 grey, 7 classes) into 1 or 10
synthetic images per class, then the standard evaluation: 5 fresh ConvNets
trained only on them, mean +- std of their test accuracy.

  python -m jaxfer.main --config distill_fer2013 \
      --workdir /tmp/jaxfer/distill_1
  # Variants (comma-separated): 10ipc (10 images per class), krr (FRePo
  # objective instead of the exact unroll), random (no distillation: the
  # same number of random real images, the baseline), smoke (tests).
  python -m jaxfer.main --config distill_fer2013:10ipc,krr ...

The distilled set lands in `<workdir>/distilled/` (arrays, metadata, a PNG
per class); train on labeled + distilled with
`configs/supervised_fer2013.py --config.data.distilled.path=<it>
--config.data.distilled.ratio=0.1`. Expected (PrivateTest accuracy of the 5 fresh ConvNets, mean +- std over
them, 2 CPU cores): 1 image per class, `unroll`: 24.22 +- 0.92% in 3 min
39 s; 10 per class, `krr`: 34.13 +- 0.48% in 4 min 59 s; 10 per class,
`unroll`: 31.47 +- 0.42% in 28 min 52 s; the same number of random real
images: 12.81% / 24.29% (docs: Dataset distillation).
"""

from jaxfer.core import defaults
from jaxfer.core import presets
from jaxfer.core import variants

VARIANTS = {
  "smoke": "seconds-long, on the 210 shipped synthetic faces",
  "10ipc": "10 images per class (else 1)",
  "krr": "the kernel-ridge (FRePo) objective with learned labels",
  "random": "one outer step that changes nothing (random real images)",
}
COMBINED = ("10ipc,krr",)


def get_config(arg: str = ""):
  v = variants.parse(arg, VARIANTS)
  c = defaults.base()
  c.method = "distill"
  presets.fer2013(c.data)
  c.data.batch_size = 128  # real images per outer step
  c.data.crop_padding, c.data.flip = 0, False
  # The ConvNet of DC/DSA/MTT (instance norm), narrower for the CPU.
  c.model = dict(
    name="convnet", depth=3, width=32, norm="instance", dtype="float32"
  )
  d = c.distill
  d.images_per_class = 10 if "10ipc" in v else 1
  d.epochs = 10
  d.augment = True
  d.lr_init = 0.02
  d.eval.steps = 300
  presets.schedule(c, 200, log=25, every=200, checkpoint=100, best="PublicTest")
  if "krr" in v:
    d.objective = "krr"
    d.learn_labels = True
  if "random" in v:  # one outer step that changes nothing
    d.lr_images = d.lr_lrs = d.lr_labels = 0.0
    c.total_steps = c.eval_every = c.checkpoint.every = 1
  if "smoke" in v:
    c.data.path = presets.FER2013_SMOKE
    c.data.cache_dir = ""
    c.data.image_size = 16
    c.data.batch_size, c.data.eval_batch_size = 16, 32
    c.model.width, c.model.depth = 4, 2
    d.epochs, d.eval.nets, d.eval.steps = 3, 2, 5
    d.pool_size = 2
    presets.schedule(c, 4, log=2, every=4, checkpoint=2)
  return c
