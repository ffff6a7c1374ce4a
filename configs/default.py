r"""Supervised training on the built-in synthetic faces: the out-of-box job.

No download: procedurally drawn 48x48 grey faces whose expression is one of
the 7 FER2013 classes, with identity, pose and lighting variation.

  python -m jaxfer.main --workdir /tmp/jaxfer/default
  python -m jaxfer.main --config default:smoke --workdir /tmp/s

Expected: test accuracy 88.6% at step 600 (chance 14.3%; mean class
accuracy 88.6%, macro-F1 0.886), the same to the last digit run to run.
Wall time 78 s on 2 CPU cores, compilation included (docs: Getting
started). `:smoke` is a seconds-long variant for tests; `:tpu` the same job sized
for a TPU v2-8 / v3-8 (on paper: `defaults.tpu_sized`).
"""

from jaxfer.core import defaults
from jaxfer.core import presets
from jaxfer.core import variants

VARIANTS = {
  "smoke": "seconds-long, for tests",
  "tpu": "sized for a TPU v2-8 / v3-8 (on paper)",
}


def get_config(arg: str = ""):
  v = variants.parse(arg, VARIANTS)
  smoke = "smoke" in v
  c = defaults.base()
  if smoke:
    presets.schedule(c, 20, log=5, every=10)
  else:
    presets.schedule(c, 600, log=50, every=300)
  c.data.synthetic.sizes = (
    dict(train=256, test=64) if smoke else dict(train=8000, test=1400)
  )
  c.data.batch_size = 16 if smoke else 64
  c.data.eval_batch_size = 32 if smoke else 256
  c.model.width = 8 if smoke else 32
  if "tpu" in v:  # sized on paper: defaults.tpu_sized
    defaults.tpu_sized(c)
  return c
