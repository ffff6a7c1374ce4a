"""What the primitive model says of a batch of faces: pure functions.

A face's penultimate features are L2-normalised; a class prototype is the
normalised mean of the normalised features of that class's labeled faces;
similarity is the cosine (a dot product of unit vectors). The optional
k-NN vote takes the `knn` labeled faces most similar to the face and
counts their labels.
"""

import jax
import jax.numpy as jnp


def normalize(x, eps: float = 1e-12):
  """Rows of `x` scaled to unit L2 norm (a zero row stays zero)."""
  x = jnp.asarray(x, jnp.float32)
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def prototypes(features, labels, num_classes: int, mask=None):
  """[C, D] unit class means of the unit `features` of labeled faces.

  `mask` (1 real, 0 padding) leaves padded rows out. A class without
  labeled faces gets a zero prototype (similarity 0 to everything).
  """
  f = normalize(features)
  w = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  if mask is not None:
    w = w * jnp.asarray(mask, jnp.float32)[:, None]
  return normalize(w.T @ f)


def score(
  logits, features, protos, bank=None, bank_labels=None, *, knn: int = 0
) -> dict:
  """Per face: softmax confidence and class, prototype similarities, and
  (knn > 0) the k-NN vote among the `bank` of labeled unit features.

  Returns a dict of [B] arrays: "confidence", "pred", "proto" (the most
  similar prototype), "similarity" (cosine to the predicted class's
  prototype), "max_similarity", and with knn "knn_pred", "knn_share"
  (share of the k neighbours voting for knn_pred); plus "feature" [B, D].
  """
  probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  pred = jnp.argmax(probs, -1)
  f = normalize(features)
  sims = f @ protos.T
  out = {
    "confidence": jnp.max(probs, -1),
    "pred": pred.astype(jnp.int32),
    "proto": jnp.argmax(sims, -1).astype(jnp.int32),
    "similarity": jnp.take_along_axis(sims, pred[:, None], 1)[:, 0],
    "max_similarity": jnp.max(sims, -1),
    "feature": f,
  }
  if knn:
    _, idx = jax.lax.top_k(f @ bank.T, knn)
    votes = jax.nn.one_hot(bank_labels[idx], protos.shape[0]).sum(1)
    out["knn_pred"] = jnp.argmax(votes, -1).astype(jnp.int32)
    out["knn_share"] = jnp.max(votes, -1) / knn
  return out


def score_fn(apply_fn, *, knn: int = 0):
  """(variables, images, protos, bank, bank_labels) -> `score` of a model."""

  def fn(variables, images, protos, bank, bank_labels):
    logits, features = apply_fn(variables, images)
    return score(logits, features, protos, bank, bank_labels, knn=knn)

  return fn


def features_fn(apply_fn):
  """(variables, images) -> unit penultimate features of a model."""

  def fn(variables, images):
    return normalize(apply_fn(variables, images)[1])

  return fn
