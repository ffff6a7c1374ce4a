r"""Meta-Face2Exp on RAF-DB basic (7 classes, aligned 100x100 RGB faces).

  python -m jaxfer.main --config face2exp_rafdb \
      --config.data.path=/data/RAF-DB/basic --workdir /tmp/jaxfer/f2e_rafdb
  # LFW (or any identity-folder face pool) as the unlabeled faces:
  ... --config.data.unlabeled.source=unlabeled_folder \
      --config.data.unlabeled.center_crop=0.5

`data.path` holds `EmoLabel/list_patition_label.txt` and `Image/aligned/`.
The 10% class-balanced subset of the 12,271 training images is labeled (the
Face2Exp protocol); the rest, labels dropped, are the unlabeled faces.
ResNet-18 (small stem) at 96x96, batch 64, mu 7, teacher and student
SGD-Nesterov lr 0.05 cosine over 20k steps with 500 warm-up steps,
RandAugment(2, 16), the exact one-step feedback, a generic normalisation
(0.5 +- 0.25: RAF-DB statistics not computed here). Evaluated on the 3,068
test images (student, student EMA, teacher). Not run here (no RAF-DB on the
development machine). Expected: no measured result yet; the wall time
would be hours on one GPU. On FER2013: docs, Meta-Face2Exp.
"""

from jaxfer.core import defaults
from jaxfer.core import presets
from jaxfer.core import variants

VARIANTS = {"smoke": "seconds-long, for a small tree of this layout"}


def get_config(arg: str = ""):
  v = variants.parse(arg, VARIANTS)
  c = defaults.base()
  presets.rgb_faces(
    c, "face2exp", "rafdb", size=96, mean=(0.5,) * 3, std=(0.25,) * 3, padding=8
  )
  c.data.train_split, c.data.eval_splits = "train", ("test",)
  c.data.labeled_fraction = 0.1
  c.data.batch_size, c.data.eval_batch_size = 64, 256
  c.model = dict(
    name="resnet", depth=18, stem="small", norm="batch", dtype="float32"
  )
  c.optimizer.update(lr=0.05, warmup_steps=500)
  c.face2exp.student_optimizer.update(lr=0.05, warmup_steps=500)
  c.face2exp.feedback = "exact_jvp"
  c.face2exp.uda.steps = 2_000
  c.ema_decay = 0.999
  presets.schedule(c, 20_000, log=100, every=1_000)
  if "smoke" in v:
    presets.smoke_rgb(c, 32)
  return c
