r"""Fine-tune the shipped FER2013 model (or any workdir) on your own
labeled faces, your own class set included.

  # a folder per split, a sub-folder per class (any image size, colour
  # or grey: resized to 48x48 grey like the shipped model's input):
  #   ~/faces/train/<class>/*.jpg   ~/faces/test/<class>/*.jpg
  python -m jaxfer.main --config finetune \
      --config.data.path=~/faces --config.data.num_classes=3 \
      --workdir /tmp/jaxfer/mine
  python -m jaxfer.predict --workdir /tmp/jaxfer/mine photo.jpg
  # a CSV per split (image,label rows; labels by name or index into
  # --config.data.class_table, e.g. "fer2013" or your own names):
  python -m jaxfer.main --config finetune:csv --config.data.path=~/faces \
      --config.data.class_table="calm,happy,tense" \
      --config.data.num_classes=3 --workdir /tmp/jaxfer/mine_csv
  # from another start: --config.init_from=/tmp/jaxfer/other_workdir

Starts every layer but the head from the shipped model (`init_from` =
`zoo:fer2013_vgg`; a head of another class count starts fresh, logged),
then 300 steps of SGD-Nesterov lr 0.01 (20 warm-up steps, cosine), batch
32, random crops and flips, label smoothing 0.1; it evaluates on the test
split every 100 steps and keeps the last checkpoint (no choice on the
test split). `:ferplus` is the worked example on real data: FER+'s 8
classes (contempt is new to the shipped head) on FER2013's faces, 300
steps. Expected (`:ferplus`, FER+'s PrivateTest majority labels, 3,521
faces, one seed): accuracy 78.33%, mean class accuracy 48.49%, macro-F1
0.491 (the shipped model on the 7 classes it knows: 66.52%, 68.02%,
0.583; docs, Inference), 4 min 12 s on 2 CPU cores. `:smoke` is a
seconds-long variant for tests.
"""

from jaxfer.core import defaults
from jaxfer.core import presets
from jaxfer.core import variants

VARIANTS = dict(
  csv="a labeled CSV per split (source labeled_csv)",
  ferplus="the worked example: FER+'s 8 classes on FER2013's faces",
  smoke="seconds-long, for tests",
)


def get_config(arg: str = ""):
  v = variants.parse(arg, VARIANTS)
  c = defaults.base()
  c.model = presets.vgg()  # the shipped model's network
  c.init_from = "zoo:fer2013_vgg"
  c.data.source = "labeled_csv" if "csv" in v else "image_folder"
  c.data.path = ""  # yours: --config.data.path=...
  c.data.train_split, c.data.eval_splits = "train", ("test",)
  c.data.mean, c.data.std = (0.508,), (0.255,)  # the shipped model's
  c.data.batch_size = 32
  c.label_smoothing = 0.1
  c.optimizer.lr = 0.01
  c.optimizer.warmup_steps = 20
  presets.schedule(c, 300, log=50, every=100, checkpoint=100, best="")
  if "ferplus" in v:
    presets.fer2013(c.data)
    c.data.ferplus, c.data.num_classes = "majority", 8
    c.data.eval_splits = ("PrivateTest",)
  if "smoke" in v:
    presets.schedule(c, 4, log=2, every=4, checkpoint=4, best="")
    c.data.batch_size, c.data.eval_batch_size = 4, 16
    c.optimizer.warmup_steps = 1
  return c
