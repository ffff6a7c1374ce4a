"""Mining confident faces from an unlabeled pool (omni-supervised FER).

`score`: what the primitive model says of each face (pure jnp); `rules`:
which faces are kept (numpy, on the pass's score tables); `pool`: pool faces
as the model sees them (pixels, hash, source, identity); `output`: the
mined set and summary written. The pass that streams a pool through the
model is `jaxfer.loop.mine`.
"""
